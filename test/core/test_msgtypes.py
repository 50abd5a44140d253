"""Message types of both flavours (rclpy, rosbags): building, bytes wrapping, headers and stamps."""

import array
import os
import subprocess
import sys
import types as pytypes

import numpy as np
import pytest

from rcdepth_ros.core.messages import msgtypes
from rcdepth_ros.core.messages.msgtypes import (convert_header, make_header, NAMES, ros_message_types,
                                                rosbags_message_types, stamp_to_ns)
from rcdepth_ros.errors import ConversionError, RcdepthError

FLAVOURS = ['rclpy', 'rosbags']


def _types(flavour):
    return ros_message_types() if flavour == 'rclpy' else rosbags_message_types()


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_every_class_is_there_and_builds_with_defaults(flavour):
    types = _types(flavour)
    assert types.flavour == flavour
    for name in NAMES:
        msg = types.new(name)
        assert types.is_instance(msg, name)
    info = types.new('CameraInfo')
    assert len(info.k) == 9 and len(info.r) == 9 and len(info.p) == 12
    assert info.header.frame_id == '' and info.roi.width == 0


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_data_wrapping_copies_and_has_the_flavours_type(flavour):
    types = _types(flavour)
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    wrapped = types.data(source)
    expected_type = array.array if flavour == 'rclpy' else np.ndarray
    assert isinstance(wrapped, expected_type)
    assert bytes(wrapped) == source.tobytes()
    source[0, 0] = 99.0
    assert bytes(wrapped) != source.tobytes(), 'the message must not alias the caller array'
    assert bytes(types.data(source[:, ::2])) == np.ascontiguousarray(source[:, ::2]).tobytes()
    assert bytes(types.data(b'abc')) == b'abc' and bytes(types.data(memoryview(b'xy'))) == b'xy'
    assert len(types.data(np.zeros(0, np.float64))) == 0
    msg = types.new('Image', data=b'\x01\x02')
    assert bytes(msg.data) == b'\x01\x02'


def test_rosbags_messages_serialise_to_cdr_and_back():
    types = rosbags_message_types()
    store = types.typestore
    msg = types.new('Image', header=make_header(types, 1_700_000_000_123_456_789, 'cam'), height=1, width=2,
                    encoding='mono8', step=2, data=b'\x05\x06')
    back = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    assert stamp_to_ns(back.header) == 1_700_000_000_123_456_789 and back.header.frame_id == 'cam'
    assert bytes(back.data) == b'\x05\x06'


def test_rclpy_messages_serialise_and_back():
    serialization = pytest.importorskip('rclpy.serialization')
    types = ros_message_types()
    msg = types.new('Image', header=make_header(types, 42, 'cam'), height=1, width=2, encoding='mono8', step=2,
                    data=b'\x05\x06')
    back = serialization.deserialize_message(serialization.serialize_message(msg), types.Image)
    assert back == msg


@pytest.mark.parametrize('flavour', FLAVOURS)
@pytest.mark.parametrize('stamp_ns', [0, 1, 999_999_999, 1_000_000_000, 1_533_152_711_219_287_000, -1,
                                      -1_500_000_000])
def test_stamps_round_trip(flavour, stamp_ns):
    types = _types(flavour)
    header = make_header(types, stamp_ns, 'radar')
    assert 0 <= header.stamp.nanosec < 1_000_000_000
    assert stamp_to_ns(header) == stamp_ns
    assert stamp_to_ns(header.stamp) == stamp_ns


def test_stamp_to_ns_other_forms_and_errors():
    assert stamp_to_ns(pytypes.SimpleNamespace(sec=2, nanosec=5)) == 2_000_000_005
    assert stamp_to_ns(np.int64(7)) == 7
    assert stamp_to_ns(pytypes.SimpleNamespace(nanoseconds=11)) == 11
    with pytest.raises(ConversionError, match='nanosec must be in'):
        stamp_to_ns(pytypes.SimpleNamespace(sec=1, nanosec=2_000_000_000))
    with pytest.raises(ConversionError, match='no sec/nanosec'):
        stamp_to_ns('yesterday')
    with pytest.raises(ConversionError, match='int32 seconds'):
        make_header(rosbags_message_types(), 2 ** 31 * 1_000_000_000, 'x')


def test_convert_header_between_flavours():
    ros, bags = ros_message_types(), rosbags_message_types()
    ros_header = make_header(ros, 123_000_000_456, 'cam')
    bags_header = convert_header(bags, ros_header)
    assert isinstance(bags_header, bags.Header)
    assert stamp_to_ns(bags_header) == 123_000_000_456 and bags_header.frame_id == 'cam'
    assert convert_header(ros, ros_header) is ros_header
    plain = pytypes.SimpleNamespace(stamp=pytypes.SimpleNamespace(sec=1, nanosec=2), frame_id='p')
    assert stamp_to_ns(convert_header(ros, plain)) == 1_000_000_002
    empty = convert_header(bags, None)
    assert stamp_to_ns(empty) == 0 and empty.frame_id == ''


def test_ros_message_types_not_importable_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'sensor_msgs.msg', None)
    msgtypes.ros_message_types.cache_clear()
    try:
        with pytest.raises(RcdepthError, match='ROS 2 message classes are not importable'):
            msgtypes.ros_message_types()
    finally:
        monkeypatch.undo()
        msgtypes.ros_message_types.cache_clear()
    assert msgtypes.ros_message_types().flavour == 'rclpy'


def test_rosbags_store_without_a_type_is_a_clear_error():
    class Store:
        types = {}
    with pytest.raises(ConversionError, match='no message type sensor_msgs/msg/Image'):
        rosbags_message_types(Store())


def test_rclpy_build_works_with_field_checks_enabled():
    """ROS_PYTHON_CHECK_FIELDS=1 makes the generated setters validate every byte; the build must not use them."""
    code = ('import numpy as np\n'
            'from rcdepth_ros.core.messages.clouds import numpy_to_pointcloud2, read_points\n'
            'from rcdepth_ros.core.messages.images import image_to_numpy, numpy_to_image\n'
            'a = np.arange(12, dtype=np.float32).reshape(3, 4)\n'
            'assert np.array_equal(image_to_numpy(numpy_to_image(a, "32FC1")), a)\n'
            'cloud = numpy_to_pointcloud2({"x": np.arange(3, dtype=np.float32)})\n'
            'assert read_points(cloud)["x"].tolist() == [0, 1, 2]\n'
            'print("ok")\n')
    env = dict(os.environ, ROS_PYTHON_CHECK_FIELDS='1')
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == 'ok', done.stderr
