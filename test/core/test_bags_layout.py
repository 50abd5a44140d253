"""BagLayout: the package's topic layout, frame renames, validation, and the offered QoS per topic kind."""

import pytest

from rcdepth_ros.core.bags import BagLayout, offered_qos, RADAR_FIELDS
from rcdepth_ros.core.messages.radar import RadarFieldMap
from rcdepth_ros.errors import BagError, ConfigError


def test_default_topics_and_radar_topics():
    layout = BagLayout()
    assert (layout.image_topic, layout.compressed_image_topic, layout.camera_info_topic) == \
        ('/camera/image', '/camera/image/compressed', '/camera/camera_info')
    assert (layout.radar_topic, layout.lidar_topic, layout.tf_topic, layout.tf_static_topic) == \
        ('/radar/points', '/lidar/points', '/tf', '/tf_static')
    assert layout.radar_topic_for('radar') == '/radar/points'
    assert layout.radar_topic_for('radar_front_left') == '/radar/radar_front_left/points'
    assert BagLayout(radar_topic='/sensors/radar/cloud').radar_topic_for('radar_2') == '/sensors/radar/radar_2/cloud'


def test_frames_come_from_the_layout_then_the_sample_then_the_defaults():
    layout = BagLayout(frames={'camera': 'cam_optical'})
    sample_frames = {'camera': 'camera_front', 'radar': 'radar_6455'}
    assert layout.frame('camera', sample_frames) == 'cam_optical'
    assert layout.frame('radar', sample_frames) == 'radar_6455'
    assert layout.frame('lidar', sample_frames) == 'lidar' and layout.frame('world') == 'map'


def test_round_trip_through_plain_data_and_strictness():
    layout = BagLayout(lidar_topic='/velodyne_points', frames={'world': 'odom'})
    assert BagLayout.from_dict(layout.to_dict()) == layout
    with pytest.raises(ConfigError, match='unknown key'):
        BagLayout.from_dict({'image': '/camera/image'})


@pytest.mark.parametrize('bad, match', [
    ({'image_topic': 'camera/image'}, 'absolute topic name'),
    ({'lidar_topic': '/lidar/'}, 'absolute topic name'),
    ({'radar_topic': '/radar points'}, 'absolute topic name'),
    ({'radar_topic': '/camera/image'}, 'are both'),
    ({'frames': {'camera': '/camera'}}, 'without a leading slash'),
])
def test_bad_layouts_are_refused(bad, match):
    with pytest.raises(BagError, match=match):
        BagLayout(**bad)


def test_offered_qos_latches_tf_static_only():
    from rosbags.interfaces import QosDurability, QosHistory, QosReliability
    (static,), (dynamic,), (sensor,) = offered_qos('tf_static'), offered_qos('tf'), offered_qos('sensor')
    assert (static.durability, static.history, static.depth) == (QosDurability.TRANSIENT_LOCAL, QosHistory.KEEP_LAST,
                                                                 1)
    assert dynamic.durability == sensor.durability == QosDurability.VOLATILE
    assert {static.reliability, dynamic.reliability, sensor.reliability} == {QosReliability.RELIABLE}
    assert (dynamic.depth, sensor.depth) == (100, 10)


def test_radar_field_names_resolve_without_configuration():
    for source, fields in RADAR_FIELDS.items():
        roles = RadarFieldMap().resolve([name for _, name in fields], source)
        assert roles == dict(fields), source
