"""The bag TF helpers: TransformStamped <-> matrix, interpolation, and the buffer's lookups and refusals."""

import numpy as np
import pytest

from rcdepth_ros.core.bags.tf import (interpolate_transform, tf_message, transform_stamped, transform_to_matrix,
                                      TransformBuffer)
from rcdepth_ros.core.geometry.transforms import transform_from_translation_quaternion
from rcdepth_ros.core.messages.msgtypes import rosbags_message_types
from rcdepth_ros.errors import BagError


def rigid(rng):
    q = rng.normal(size=4)
    return transform_from_translation_quaternion(rng.normal(scale=5.0, size=3), q / np.linalg.norm(q))


def yaw(angle, translation=(0.0, 0.0, 0.0)):
    T = np.eye(4)
    T[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    T[:3, 3] = translation
    return T


def test_transform_stamped_round_trip_through_cdr():
    types = rosbags_message_types()
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = rigid(rng)
        msg = tf_message(types, [transform_stamped(types, T, 'base_link', 'radar', 1_700_000_000_123_456_789)])
        raw = types.typestore.serialize_cdr(msg, 'tf2_msgs/msg/TFMessage')
        back = types.typestore.deserialize_cdr(raw, 'tf2_msgs/msg/TFMessage').transforms[0]
        parent, child, stamp, T_back = transform_to_matrix(back)
        assert (parent, child, stamp) == ('base_link', 'radar', 1_700_000_000_123_456_789)
        np.testing.assert_allclose(T_back, T, atol=1e-12)


def test_transform_stamped_refuses_non_rigid_input():
    types = rosbags_message_types()
    with pytest.raises(Exception, match='transform base -> radar'):
        transform_stamped(types, np.full((4, 4), np.nan), 'base', 'radar', 0)


def test_interpolation_is_linear_in_translation_and_slerp_in_rotation():
    T0, T1 = yaw(0.0, (0.0, 0.0, 0.0)), yaw(np.pi / 2, (10.0, -2.0, 4.0))
    np.testing.assert_allclose(interpolate_transform(T0, T1, 0.0), T0, atol=1e-12)
    np.testing.assert_allclose(interpolate_transform(T0, T1, 1.0), T1, atol=1e-12)
    np.testing.assert_allclose(interpolate_transform(T0, T1, 0.25), yaw(np.pi / 8, (2.5, -0.5, 1.0)), atol=1e-12)
    # 350 degrees to 10 degrees goes the short way, through 0
    middle = interpolate_transform(yaw(np.radians(350)), yaw(np.radians(10)), 0.5)
    np.testing.assert_allclose(middle, np.eye(4), atol=1e-12)


def test_static_chain_and_inverse_lookups():
    rng = np.random.default_rng(1)
    T_base_cam, T_base_radar, T_radar_sub = rigid(rng), rigid(rng), rigid(rng)
    buffer = TransformBuffer()
    buffer.set_transform('base', 'cam', T_base_cam, static=True)
    buffer.set_transform('base', 'radar', T_base_radar, static=True)
    buffer.set_transform('radar', 'sub', T_radar_sub, static=True)
    expected = np.linalg.inv(T_base_cam) @ T_base_radar @ T_radar_sub
    np.testing.assert_allclose(buffer.lookup('cam', 'sub'), expected, atol=1e-12)
    np.testing.assert_allclose(buffer.lookup('sub', 'cam'), np.linalg.inv(expected), atol=1e-12)
    np.testing.assert_array_equal(buffer.lookup('cam', 'cam'), np.eye(4))
    assert buffer.root('sub') == 'base' and buffer.root('elsewhere') == 'elsewhere'
    assert buffer.frames() == {'base', 'cam', 'radar', 'sub'} and not buffer.has_dynamic()
    with pytest.raises(BagError, match="no transform from 'other' to 'cam'"):
        buffer.lookup('cam', 'other')


def test_dynamic_edges_interpolate_and_never_extrapolate():
    buffer = TransformBuffer()
    buffer.set_transform('odom', 'base', yaw(0.0), 100)
    buffer.set_transform('odom', 'base', yaw(np.pi / 2, (4.0, 0.0, 0.0)), 300)
    buffer.set_transform('base', 'radar', yaw(0.0, (1.0, 0.0, 0.0)), static=True)
    np.testing.assert_allclose(buffer.lookup('odom', 'base', 300), yaw(np.pi / 2, (4.0, 0.0, 0.0)), atol=1e-12)
    np.testing.assert_allclose(buffer.lookup('odom', 'radar', 200), yaw(np.pi / 4, (2.0, 0.0, 0.0)) @
                               yaw(0.0, (1.0, 0.0, 0.0)), atol=1e-12)
    for stamp in (99, 301):
        with pytest.raises(BagError, match='does not extrapolate'):
            buffer.lookup('odom', 'radar', stamp)
    with pytest.raises(BagError, match='needs a time'):
        buffer.lookup('odom', 'radar')
    # A transform re-sent at a stamp replaces the earlier one
    buffer.set_transform('odom', 'base', yaw(0.1), 100)
    np.testing.assert_allclose(buffer.lookup('odom', 'base', 100), yaw(0.1), atol=1e-12)


def test_lookup_full_moves_a_sensor_fired_earlier_into_the_camera_at_image_time():
    buffer = TransformBuffer()
    T_base_cam, T_base_radar = yaw(-np.pi / 2, (1.5, 0.0, 1.2)), yaw(0.0, (3.0, 0.0, 0.5))
    buffer.set_transform('base', 'cam', T_base_cam, static=True)
    buffer.set_transform('base', 'radar', T_base_radar, static=True)
    pose = {0: yaw(0.0), 50: yaw(0.05, (0.5, 0.0, 0.0)), 100: yaw(0.1, (1.0, 0.1, 0.0))}
    for stamp, T in pose.items():
        buffer.set_transform('odom', 'base', T, stamp)
    buffer.add_message(tf_message(rosbags_message_types(), []), static=False)
    T = buffer.lookup_full('cam', 100, 'radar', 50, 'odom')
    expected = np.linalg.inv(pose[100] @ T_base_cam) @ pose[50] @ T_base_radar
    np.testing.assert_allclose(T, expected, atol=1e-12)
    assert buffer.root('cam', 100) == 'odom' and buffer.has_dynamic()


def test_buffer_refuses_what_tf2_would_flip_between():
    buffer = TransformBuffer()
    buffer.set_transform('base', 'radar', np.eye(4), static=True)
    with pytest.raises(BagError, match="static parent 'base' already"):
        buffer.set_transform('base', 'radar', np.eye(4), 10)
    buffer.set_transform('odom', 'base', np.eye(4), 10)
    with pytest.raises(BagError, match="has parent 'odom' already"):
        buffer.set_transform('map', 'base', np.eye(4), 20)
    with pytest.raises(BagError, match='two different non-empty names'):
        buffer.set_transform('base', 'base', np.eye(4), static=True)
    looped = TransformBuffer()
    looped.set_transform('a', 'b', np.eye(4), static=True)
    looped.set_transform('b', 'a', np.eye(4), static=True)
    with pytest.raises(BagError, match='loop'):
        looped.lookup('a', 'c')
