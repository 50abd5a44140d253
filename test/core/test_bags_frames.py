"""
``bag_frames`` on bags recorded the way a real car records them, written here message by message with rosbags.

A 10 Hz camera with camera_info sent once, a radar at 3x the camera rate and slightly offset, a second radar,
``base_link`` under ``odom`` on ``/tf`` at 20 Hz while the car turns: the records must pick the right clouds,
cache the camera_info, and move each cloud into the camera at the image time by interpolating the ego motion.
"""

import numpy as np
import pytest

from rcdepth_ros.core.bags import bag_frames, BagLayout, offered_qos
from rcdepth_ros.core.bags.tf import tf_message, transform_stamped
from rcdepth_ros.core.geometry.transforms import transform_from_translation_quaternion, transform_points
from rcdepth_ros.core.messages.camera_info import intrinsics_to_camera_info
from rcdepth_ros.core.messages.clouds import numpy_to_pointcloud2
from rcdepth_ros.core.messages.images import numpy_to_image
from rcdepth_ros.core.messages.msgtypes import make_header, rosbags_message_types
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import BagError

T0 = 1_600_000_000_000_000_000
MS = 1_000_000
K = np.array([[50.0, 0.0, 16.0], [0.0, 50.0, 12.0], [0.0, 0.0, 1.0]])
T_BASE_CAM = transform_from_translation_quaternion((1.5, 0.0, 1.3), (-0.5, 0.5, -0.5, 0.5))
T_BASE_RADAR = transform_from_translation_quaternion((3.5, 0.2, 0.5), (0.0, 0.0, 0.0, 1.0))
T_BASE_REAR = transform_from_translation_quaternion((-1.0, 0.0, 0.5), (0.0, 0.0, 1.0, 0.0))


def pose(t_ns):
    """Return T_odom_from_base of a car driving at 10 m/s while yawing at 0.5 rad/s."""
    t = (t_ns - T0) / 1e9
    angle = 0.5 * t
    T = np.eye(4)
    T[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    T[:3, 3] = (10.0 * t, 0.0, 0.0)
    return T


def radar_cloud(types, frame, stamp, marker):
    """Three returns whose rcs carries ``marker`` (which cloud it is)."""
    xyz = np.array([[10.0, 0.0, 0.0], [20.0, 2.0, 0.5], [5.0, -1.0, 0.0]], np.float32)
    columns = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'rcs': np.full(3, marker, np.float32)}
    return numpy_to_pointcloud2(columns, make_header(types, stamp, frame), types)


def write_recorded_bag(path, camera_infos_once=True):
    from rosbags.rosbag2 import StoragePlugin, Writer
    types = rosbags_message_types()
    store = types.typestore
    messages = []
    image = np.zeros((24, 32, 3), np.uint8)
    intrinsics = CameraIntrinsics(K, 32, 24, frame_id='camera')
    statics = [transform_stamped(types, T, 'base_link', child, T0) for child, T in
               (('camera', T_BASE_CAM), ('radar_front', T_BASE_RADAR), ('radar_rear', T_BASE_REAR))]
    messages.append(('/tf_static', 'tf2_msgs/msg/TFMessage', T0, tf_message(types, statics), 'tf_static'))
    for k in range(21):                                      # /tf at 20 Hz over 1 s
        stamp = T0 + k * 50 * MS
        messages.append(('/tf', 'tf2_msgs/msg/TFMessage', stamp,
                         tf_message(types, [transform_stamped(types, pose(stamp), 'odom', 'base_link', stamp)]),
                         'tf'))
    for k in range(1, 10):                                   # camera at 10 Hz from 100 ms
        stamp = T0 + k * 100 * MS
        image[:] = k
        messages.append(('/camera/image', 'sensor_msgs/msg/Image', stamp + 2 * MS,
                         numpy_to_image(image, 'rgb8', make_header(types, stamp, 'camera'), types), 'sensor'))
        if k == 1 or not camera_infos_once:
            info = intrinsics_to_camera_info(intrinsics, make_header(types, stamp, 'camera'), types)
            messages.append(('/camera/camera_info', 'sensor_msgs/msg/CameraInfo', stamp + 1 * MS, info, 'sensor'))
    for k in range(30):                                      # front radar at 30 Hz, 7 ms after each third
        stamp = T0 + k * 33 * MS + 7 * MS
        messages.append(('/radar/points', 'sensor_msgs/msg/PointCloud2', stamp + 3 * MS,
                         radar_cloud(types, 'radar_front', stamp, k), 'sensor'))
    for k in range(5):                                       # rear radar at 5 Hz
        stamp = T0 + k * 200 * MS + 150 * MS
        messages.append(('/rear/points', 'sensor_msgs/msg/PointCloud2', stamp,
                         radar_cloud(types, 'radar_rear', stamp, 100 + k), 'sensor'))
    messages.sort(key=lambda m: m[2])
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, msgtype, log_time, msg, kind in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store,
                                                           offered_qos_profiles=offered_qos(kind))
            writer.write(connections[topic], log_time, store.serialize_cdr(msg, msgtype))
    return path


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    return write_recorded_bag(tmp_path_factory.mktemp('recorded') / 'drive')


def test_nearest_cloud_per_radar_topic_and_cached_camera_info(recorded):
    frames = list(bag_frames(recorded))
    assert [f.stamp_ns for f in frames] == [T0 + k * 100 * MS for k in range(1, 10)]
    assert [f.frame_id for f in frames] == [str(i) for i in range(9)], 'no stored ids: positions'
    for k, frame in enumerate(frames, start=1):
        assert int(frame.rgb()[0, 0, 0]) == k
        np.testing.assert_array_equal(frame.intrinsics().K, K)
        assert stamp_of(frame.camera_info) == T0 + 100 * MS, 'the one camera_info, cached'
        front = [m for m in frame.radar if m.topic == '/radar/points']
        nearest = min(range(30), key=lambda j: abs(j * 33 + 7 - k * 100))
        assert [stamp_of(m) for m in front] == [T0 + (nearest * 33 + 7) * MS]
        rear = [m for m in frame.radar if m.topic == '/rear/points']
        rear_stamps = [T0 + (j * 200 + 150) * MS for j in range(5)]
        expected = [s for s in rear_stamps if abs(s - frame.stamp_ns) <= 100 * MS]
        expected = [min(expected, key=lambda s: abs(s - frame.stamp_ns))] if expected else []
        assert [stamp_of(m) for m in rear] == expected


def stamp_of(message):
    return message.msg.header.stamp.sec * 1_000_000_000 + message.msg.header.stamp.nanosec


def test_radar_points_are_motion_compensated_through_tf(recorded):
    frame = list(bag_frames(recorded))[4]                 # image at 500 ms
    cloud = frame.radar[0]
    stamp = stamp_of(cloud)
    assert stamp != frame.stamp_ns
    # The expected transform from the analytic ego motion (not sampled): the buffer interpolates /tf at 20 Hz.
    T_expected = np.linalg.inv(pose(frame.stamp_ns) @ T_BASE_CAM) @ pose(stamp) @ T_BASE_RADAR
    radar = frame.radar_points()
    xyz = np.array([[10.0, 0.0, 0.0], [20.0, 2.0, 0.5], [5.0, -1.0, 0.0]])
    front = radar.xyz[:3]
    np.testing.assert_allclose(front, transform_points(xyz, T_expected), atol=2e-3)
    assert radar.frame_id == 'camera' and len(radar) == 3 * len(frame.radar)
    static_only = np.linalg.inv(T_BASE_CAM) @ T_BASE_RADAR
    assert np.abs(transform_points(xyz, static_only) - front).max() > 0.01, 'motion matters here'
    extrinsics = frame.extrinsics()
    np.testing.assert_allclose(extrinsics['radar_front'], static_only, atol=1e-12)
    np.testing.assert_allclose(extrinsics['base_link'], np.linalg.inv(T_BASE_CAM), atol=1e-12)


def test_all_sweeps_of_the_window_up_to_the_image(recorded):
    frames = list(bag_frames(recorded, window_s=0.1, radar_select='all', radar_topics=['/radar/points']))
    for frame in frames:
        stamps = [stamp_of(m) for m in frame.radar]
        expected = [T0 + (j * 33 + 7) * MS for j in range(30)
                    if 0 <= frame.stamp_ns - (T0 + (j * 33 + 7) * MS) <= 100 * MS]
        assert stamps == expected and len(stamps) >= 3
        assert len(frame.radar_points()) == 3 * len(stamps)


def test_frames_before_any_camera_info_and_without_ground_truth(tmp_path):
    path = write_recorded_bag(tmp_path / 'late_info', camera_infos_once=False)
    frames = list(bag_frames(path, layout=BagLayout(camera_info_topic='/nothing')))
    assert all(f.camera_info is None for f in frames)
    with pytest.raises(BagError, match='no camera_info at or before the image'):
        frames[0].intrinsics()
    assert frames[0].lidar is None and frames[0].ground_truth() is None and frames[0].dense_ground_truth() is None
    with pytest.raises(BagError, match='no image topic'):
        list(bag_frames(path, layout=BagLayout(image_topic='/cam', compressed_image_topic='/cam/compressed')))
