"""
The bag format as ROS 2 reads it.

metadata.yaml (rosbag2 v9 and v8), the MCAP file through the official ``mcap`` library (a second, independent
implementation), and the raw CDR bytes through rclpy's own serialisation.

``ros2 bag info`` / ``ros2 bag play`` cannot run here; these are the things they read: the metadata fields rosbag2's
YAML decoder requires, the MCAP channels' encoding and ``offered_qos_profiles`` (where ``ros2 bag play`` takes the
QoS it republishes with, ``/tf_static`` TRANSIENT_LOCAL), and CDR bytes that rclpy deserialises and re-serialises
to the same bytes.
"""

from pathlib import Path
import time

import numpy as np
import pytest

from rcdepth_ros.core.bags import bag_info, BagWriteOptions, read_bag, read_bag_messages, write_bag
from rcdepth_ros.data.registry import open_reader
from rosbags.typesys import get_typestore, Stores
import yaml

SYNTHETIC_CONFIG = {'num_drives': 1, 'frames_per_drive': 3, 'height': 64, 'width': 96, 'lidar_beams': 4,
                    'lidar_azimuth_step_deg': 2.0, 'seed': 5}
# rmw's names for the QoS policies (rmw_qos_*_policy_to_str), what rosbag2 v9 metadata holds.
RMW_HISTORY = ('system_default', 'keep_last', 'keep_all', 'unknown')
RMW_RELIABILITY = ('system_default', 'reliable', 'best_effort', 'unknown', 'best_available')
RMW_DURABILITY = ('system_default', 'transient_local', 'volatile', 'unknown', 'best_available')
RMW_LIVELINESS = ('system_default', 'automatic', 'manual_by_topic', 'unknown', 'best_available')


@pytest.fixture(scope='module')
def samples():
    return list(open_reader('synthetic', config=SYNTHETIC_CONFIG, radar_image=False, boxes=False))


@pytest.fixture(scope='module')
def bag(samples, tmp_path_factory):
    path = tmp_path_factory.mktemp('format') / 'drive'
    write_bag(samples, path, BagWriteOptions(dense_gt=True))
    return path


def _metadata(path):
    return yaml.safe_load((Path(path) / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def _check_qos_v9(topic, profiles):
    assert isinstance(profiles, list) and len(profiles) == 1, topic
    qos = profiles[0]
    assert set(qos) == {'history', 'depth', 'reliability', 'durability', 'deadline', 'lifespan', 'liveliness',
                        'liveliness_lease_duration', 'avoid_ros_namespace_conventions'}
    assert qos['history'] in RMW_HISTORY and qos['reliability'] in RMW_RELIABILITY
    assert qos['durability'] in RMW_DURABILITY and qos['liveliness'] in RMW_LIVELINESS
    for key in ('deadline', 'lifespan', 'liveliness_lease_duration'):
        assert set(qos[key]) == {'sec', 'nsec'} and all(isinstance(v, int) for v in qos[key].values())
    expected = {'/tf_static': ('keep_last', 1, 'reliable', 'transient_local'),
                '/tf': ('keep_last', 100, 'reliable', 'volatile')}
    expected = expected.get(topic, ('keep_last', 10, 'reliable', 'volatile'))
    assert (qos['history'], qos['depth'], qos['reliability'], qos['durability']) == expected, topic


def test_metadata_yaml_is_rosbag2_v9_mcap_cdr(bag):
    meta = _metadata(bag)
    messages = list(read_bag(bag))
    times = [t for _, _, t, _ in messages]
    assert meta['version'] == 9 and meta['storage_identifier'] == 'mcap'
    assert meta['compression_format'] == '' and meta['compression_mode'] == ''
    assert isinstance(meta['ros_distro'], str)
    files = meta['relative_file_paths']
    assert len(files) == 1 and files[0].endswith('.mcap') and (bag / files[0]).is_file()
    assert meta['files'][0]['path'] == files[0] and meta['files'][0]['message_count'] == len(messages)
    assert meta['message_count'] == len(messages)
    assert meta['starting_time']['nanoseconds_since_epoch'] == times[0]
    assert meta['duration']['nanoseconds'] == times[-1] - times[0]
    store = get_typestore(Stores.ROS2_JAZZY)
    counts = {}
    for _, msgtype, _, _ in messages:
        counts[msgtype] = counts.get(msgtype, 0) + 1
    seen = {}
    for entry in meta['topics_with_message_count']:
        topic = entry['topic_metadata']
        seen[topic['name']] = entry['message_count']
        assert topic['serialization_format'] == 'cdr'
        assert topic['type_description_hash'] == store.hash_rihs01(topic['type'])
        _check_qos_v9(topic['name'], topic['offered_qos_profiles'])
    assert seen == {topic: sum(1 for m in messages if m[0] == topic) for topic in {m[0] for m in messages}}
    assert set(seen) == {'/tf_static', '/tf', '/camera/image', '/camera/camera_info', '/radar/points',
                         '/lidar/points', '/ground_truth/depth_dense'}
    custom = meta['custom_data']
    assert custom['rcdepth.source'] == 'synthetic' and len(yaml.safe_load(custom['rcdepth.frame_ids'])) == 3


def test_bag_info_reports_topics_qos_and_custom_data(bag, samples):
    info = bag_info(bag)
    assert (info.storage, info.version, info.message_count) == ('mcap', 9, sum(t.count for t in info.topics.values()))
    assert info.topics['/tf_static'].offered_qos == [{'history': 'keep_last', 'depth': 1, 'reliability': 'reliable',
                                                      'durability': 'transient_local', 'liveliness': 'automatic'}]
    assert info.topics['/camera/image'].msgtype == 'sensor_msgs/msg/Image' and info.topics['/camera/image'].count == 3
    assert info.frame_ids() == [s.frame_id for s in samples]
    assert info.layout_data()['radar_topic'] == '/radar/points'
    assert info.start_ns == samples[0].stamp_ns and info.end_ns == samples[-1].stamp_ns
    assert info.duration_s == pytest.approx(0.2)


def test_version_8_metadata_holds_qos_as_a_string_of_integers(samples, tmp_path):
    """Humble's rosbag2 reads offered_qos_profiles as a YAML string with rmw's integer enums."""
    write_bag(samples[:1], tmp_path / 'v8', BagWriteOptions(version=8, lidar=False))
    meta = _metadata(tmp_path / 'v8')
    assert meta['version'] == 8
    by_name = {e['topic_metadata']['name']: e['topic_metadata'] for e in meta['topics_with_message_count']}
    static = by_name['/tf_static']['offered_qos_profiles']
    assert isinstance(static, str)
    qos = yaml.safe_load(static)[0]
    # rmw enums: KEEP_LAST 1, RELIABLE 1, TRANSIENT_LOCAL 1, VOLATILE 2, AUTOMATIC 1
    assert (qos['history'], qos['depth'], qos['reliability'], qos['durability'], qos['liveliness']) == (1, 1, 1, 1, 1)
    assert yaml.safe_load(by_name['/camera/image']['offered_qos_profiles'])[0]['durability'] == 2
    assert [m[0] for m in read_bag(tmp_path / 'v8')][0] == '/tf_static'


def test_official_mcap_reader_decodes_every_message_from_the_file_schemas(bag):
    mcap_reader = pytest.importorskip('mcap.reader')
    decoder = pytest.importorskip('mcap_ros2.decoder')
    store = get_typestore(Stores.ROS2_JAZZY)
    ours = list(read_bag_messages(bag))
    with open(bag / _metadata(bag)['relative_file_paths'][0], 'rb') as handle:
        reader = mcap_reader.make_reader(handle, decoder_factories=[decoder.DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        assert summary.statistics.message_count == len(ours)
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == 'cdr' and schema.encoding == 'ros2msg'
            assert schema.name == next(m.msgtype for m in ours if m.topic == channel.topic)
            assert schema.data.decode() == store.generate_msgdef(schema.name, ros_version=2)[0]
            qos = yaml.safe_load(channel.metadata['offered_qos_profiles'])
            _check_qos_v9(channel.topic, qos)
        records = {m.name: m.metadata for m in reader.iter_metadata()}
        assert yaml.safe_load(records['rosbag2']['serialized_metadata'])['version'] == 9
        decoded = list(reader.iter_decoded_messages(log_time_order=True))
    assert len(decoded) == len(ours)
    for (_, channel, message, msg), mine in zip(decoded, ours):
        assert (channel.topic, message.log_time, message.publish_time) == \
            (mine.topic, mine.log_time_ns, mine.log_time_ns)
        assert bytes(message.data) == mine.raw
        if hasattr(msg, 'header'):
            assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == \
                (mine.msg.header.frame_id, mine.msg.header.stamp.sec, mine.msg.header.stamp.nanosec)
        if hasattr(msg, 'data'):
            assert bytes(msg.data) == np.asarray(mine.msg.data).tobytes()
        if channel.topic == '/camera/camera_info':
            np.testing.assert_array_equal(msg.k, mine.msg.k)
        if channel.topic in ('/tf', '/tf_static'):
            for a, b in zip(msg.transforms, mine.msg.transforms):
                assert a.child_frame_id == b.child_frame_id and a.transform.rotation.w == b.transform.rotation.w


def _same_fields(a, b, where):
    """Compare two messages of either flavour field by field (arrays by value)."""
    if hasattr(a, 'get_fields_and_field_types'):
        names = list(a.get_fields_and_field_types())
    else:
        names = [n for n in a.__dataclass_fields__ if n != '__msgtype__']
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if hasattr(x, 'get_fields_and_field_types') or hasattr(x, '__dataclass_fields__'):
            _same_fields(x, y, f'{where}.{name}')
        elif isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float)):
            assert len(x) == len(y), f'{where}.{name}'
            for i, (u, v) in enumerate(zip(x, y)):
                _same_fields(u, v, f'{where}.{name}[{i}]')
        else:
            assert np.array_equal(np.asarray(x), np.asarray(y)), f'{where}.{name}'


def test_raw_bytes_are_rclpy_cdr(bag, astyx_root, tmp_path):
    """
    Check that rclpy deserialises the raw bytes a player would publish, field for field what was written.

    Re-serialised by rclpy they have the same length and deserialise with rosbags to the same message (Fast CDR
    leaves its alignment padding uninitialised, so the bytes themselves may differ there).
    """
    pytest.importorskip('rclpy')
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
    classes = {'sensor_msgs/msg/Image': Image, 'sensor_msgs/msg/CameraInfo': CameraInfo,
               'sensor_msgs/msg/PointCloud2': PointCloud2, 'sensor_msgs/msg/CompressedImage': CompressedImage}
    write_bag(open_reader('astyx', astyx_root, frames='0', radar_image=False, boxes=False), tmp_path / 'astyx',
              BagWriteOptions(compressed=True))
    store = get_typestore(Stores.ROS2_JAZZY)
    checked = set()
    for path in (bag, tmp_path / 'astyx'):
        for message in read_bag_messages(path):
            cls = classes.get(message.msgtype)
            if cls is None:
                continue
            msg = deserialize_message(message.raw, cls)
            _same_fields(msg, message.msg, message.topic)
            again = serialize_message(msg)
            assert len(again) == len(message.raw), message.topic
            _same_fields(store.deserialize_cdr(again, message.msgtype), message.msg, message.topic)
            checked.add(message.msgtype)
    assert checked == set(classes)


def test_raw_bytes_publish_as_they_are_over_rclpy(bag):
    """A player publishes ``read_bag``'s bytes with ``publisher.publish(raw)``; subscribers get the messages."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    topics = {'/camera/image': Image, '/camera/camera_info': CameraInfo, '/radar/points': PointCloud2}
    expected = {}
    for message in read_bag_messages(bag, topics=list(topics)):
        expected.setdefault(message.topic, []).append(message)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('bag_raw_publish_test', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        received = {topic: [] for topic in topics}
        publishers = {}
        for topic, cls in topics.items():
            publishers[topic] = node.create_publisher(cls, topic, qos)
            node.create_subscription(cls, topic, received[topic].append, qos)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(p.get_subscription_count() == 0 for p in publishers.values()):
            executor.spin_once(timeout_sec=0.05)
        for topic, messages in expected.items():
            for message in messages:
                publishers[topic].publish(message.raw)
        while time.monotonic() < deadline and any(len(received[t]) < len(expected[t]) for t in topics):
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    for topic in topics:
        assert len(received[topic]) == len(expected[topic]), topic
        for got, sent in zip(received[topic], expected[topic]):
            _same_fields(got, sent.msg, topic)


def test_sqlite3_storage_holds_the_same_messages(bag, samples, tmp_path):
    write_bag(samples, tmp_path / 'db', BagWriteOptions(dense_gt=True, storage='sqlite3'))
    meta = _metadata(tmp_path / 'db')
    assert meta['storage_identifier'] == 'sqlite3' and meta['relative_file_paths'][0].endswith('.db3')
    assert list(read_bag(tmp_path / 'db')) == list(read_bag(bag))


def test_read_bag_takes_a_bare_mcap_file_and_filters(bag, samples):
    mcap_file = bag / _metadata(bag)['relative_file_paths'][0]
    assert list(read_bag(mcap_file)) == list(read_bag(bag))
    images = list(read_bag(bag, topics=['/camera/image']))
    assert [t for _, _, t, _ in images] == [s.stamp_ns for s in samples]
    assert all(isinstance(raw, bytes) for _, _, _, raw in images)
    window = list(read_bag(bag, topics=['/camera/image'], start_ns=samples[1].stamp_ns, stop_ns=samples[2].stamp_ns))
    assert [t for _, _, t, _ in window] == [samples[1].stamp_ns]
