"""Image, CompressedImage and CameraInfo <-> numpy: every encoding, padding, endianness, both message flavours."""

import array
import types as pytypes

from hypothesis import given, strategies as st
import numpy as np
import pytest

from rcdepth_ros.core.messages.camera_info import camera_info_to_intrinsics, intrinsics_to_camera_info
from rcdepth_ros.core.messages.images import (_cv_bridge, compressed_to_numpy, compressed_to_rgb, depth_from_image_msg,
                                              depth_to_image_msg, encoding_info, ENCODINGS, image_to_numpy,
                                              image_to_rgb, numpy_to_compressed, numpy_to_image)
from rcdepth_ros.core.messages.msgtypes import make_header, ros_message_types, rosbags_message_types, stamp_to_ns
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import ConversionError, RcdepthError

FLAVOURS = ['rclpy', 'rosbags']
REQUIRED_ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC1', '8UC3', '16UC1', '32FC1']


def _types(flavour):
    return ros_message_types() if flavour == 'rclpy' else rosbags_message_types()


def _container(raw, kind):
    """Return the bytes ``raw`` as one of the buffer kinds a message's data can be."""
    if kind == 'bytes':
        return bytes(raw)
    if kind == 'bytearray':
        return bytearray(raw)
    if kind == 'array':
        return array.array('B', raw)
    if kind == 'memoryview':
        return memoryview(bytes(raw))
    if kind == 'list':
        return list(raw)
    return np.frombuffer(bytes(raw), dtype=np.uint8).copy()


def _image_msg(pixels, encoding, padding=0, big_endian=False, kind='bytes'):
    """Return a plain Image-like object written by hand: rows of ``pixels`` + ``padding`` filler bytes."""
    dtype, channels = encoding_info(encoding)
    height, width = pixels.shape[:2]
    stored = np.ascontiguousarray(pixels).astype(dtype.newbyteorder('>' if big_endian else '<'))
    rows = [stored[r].tobytes() + b'\xa5' * padding for r in range(height)]
    return pytypes.SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                                   step=width * channels * dtype.itemsize + padding,
                                   data=_container(b''.join(rows), kind), header=None)


def _random_pixels(rng, encoding, height, width):
    dtype, channels = encoding_info(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)     # every bit pattern, NaNs and infs included for floats


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@given(encoding=st.sampled_from(sorted(ENCODINGS)), height=st.integers(0, 5), width=st.integers(0, 6),
       padding=st.integers(0, 9), big_endian=st.booleans(),
       kind=st.sampled_from(['bytes', 'bytearray', 'array', 'memoryview', 'numpy', 'list']),
       seed=st.integers(0, 2 ** 32 - 1))
def test_image_decoding_property(encoding, height, width, padding, big_endian, kind, seed):
    pixels = _random_pixels(np.random.default_rng(seed), encoding, height, width)
    msg = _image_msg(pixels, encoding, padding, big_endian, kind)
    out = image_to_numpy(msg)
    assert out.dtype.isnative and out.flags.owndata and out.flags.writeable
    assert _same_bits(out, pixels)


@given(encoding=st.sampled_from(sorted(ENCODINGS)), height=st.integers(0, 5), width=st.integers(0, 6),
       seed=st.integers(0, 2 ** 32 - 1), flavour=st.sampled_from(FLAVOURS))
def test_image_build_then_decode_property(encoding, height, width, seed, flavour):
    types = _types(flavour)
    pixels = _random_pixels(np.random.default_rng(seed), encoding, height, width)
    msg = numpy_to_image(pixels, encoding, make_header(types, seed, 'cam'), types)
    assert isinstance(msg, types.Image)
    dtype, channels = encoding_info(encoding)
    assert msg.step == width * channels * dtype.itemsize and len(msg.data) == msg.step * height
    assert stamp_to_ns(msg.header) == seed and msg.header.frame_id == 'cam'
    assert _same_bits(image_to_numpy(msg), pixels)


@pytest.mark.parametrize('encoding', REQUIRED_ENCODINGS)
def test_required_encodings_through_serialised_bytes(encoding):
    rng = np.random.default_rng(0)
    pixels = _random_pixels(rng, encoding, 7, 5)
    bags = rosbags_message_types()
    store = bags.typestore
    msg = numpy_to_image(pixels, encoding, make_header(bags, 5, 'cam'), bags)
    back = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    assert _same_bits(image_to_numpy(back), pixels)
    serialization = pytest.importorskip('rclpy.serialization')
    ros = ros_message_types()
    ros_msg = numpy_to_image(pixels, encoding, None, ros)
    ros_back = serialization.deserialize_message(serialization.serialize_message(ros_msg), ros.Image)
    assert _same_bits(image_to_numpy(ros_back), pixels)


def test_copy_false_is_a_read_only_view():
    pixels = np.arange(24, dtype=np.float32).reshape(4, 6)
    msg = _image_msg(pixels, '32FC1', padding=4, kind='numpy')
    view = image_to_numpy(msg, copy=False)
    assert np.shares_memory(view, msg.data) and not view.flags.writeable
    np.testing.assert_array_equal(view, pixels)
    big = image_to_numpy(_image_msg(pixels, '32FC1', big_endian=True, kind='numpy'), copy=False)
    assert big.dtype.isnative and big.dtype == np.float32   # a byte swap cannot be a view: it is a copy
    np.testing.assert_array_equal(big, pixels)


def test_explicit_big_endian_bytes_decode():
    msg = pytypes.SimpleNamespace(height=1, width=2, encoding='mono16', is_bigendian=1, step=4,
                                  data=b'\x01\x02\xff\x00')
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0102, 0xff00]])
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0201, 0x00ff]])


def test_odd_step_that_is_not_a_multiple_of_the_item_size():
    pixels = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint16)
    msg = _image_msg(pixels, '16UC1', padding=3)
    assert msg.step == 9
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


@pytest.mark.parametrize('field, value, problem', [
    ('encoding', 'rgb9', "unknown encoding 'rgb9'"),
    ('encoding', None, 'unknown encoding None'),
    ('step', 5, 'step 5 is too small for width 2 x 3 channel'),
    ('data', b'\x00' * 11, 'data length 11 does not match step x height = 6 x 2 = 12'),
    ('data', b'\x00' * 13, 'data length 13 does not match'),
    ('height', -1, 'height must be >= 0'),
    ('width', 'two', 'width must be an integer'),
    ('data', 3.5, 'not a byte buffer'),
])
def test_bad_images_raise_conversion_error(field, value, problem):
    msg = _image_msg(np.zeros((2, 2, 3), np.uint8), 'rgb8')
    setattr(msg, field, value)
    with pytest.raises(ConversionError, match=problem):
        image_to_numpy(msg)
    with pytest.raises(RcdepthError):
        image_to_rgb(msg)


def test_building_rejects_mismatched_arrays():
    types = rosbags_message_types()
    with pytest.raises(ConversionError, match='32FC1 needs 1 channel'):
        numpy_to_image(np.zeros((2, 2), np.float64), '32FC1', types=types)
    with pytest.raises(ConversionError, match='rgb8 needs 3 channel'):
        numpy_to_image(np.zeros((2, 2, 4), np.uint8), 'rgb8', types=types)
    with pytest.raises(ConversionError, match=r'\(H, W\) or \(H, W, C\)'):
        numpy_to_image(np.zeros(4, np.uint8), types=types)
    with pytest.raises(ConversionError, match='unknown encoding'):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'jpeg', types=types)
    with pytest.raises(ConversionError, match='cannot infer'):
        numpy_to_image(np.zeros((2, 2, 5), np.uint8), types=types)


def test_encoding_inference_and_big_endian_input():
    types = rosbags_message_types()
    assert numpy_to_image(np.zeros((2, 2, 3), np.uint8), types=types).encoding == 'rgb8'
    assert numpy_to_image(np.zeros((2, 2), np.uint8), types=types).encoding == 'mono8'
    assert numpy_to_image(np.zeros((2, 2, 4), np.uint8), types=types).encoding == 'rgba8'
    assert numpy_to_image(np.zeros((2, 2), np.uint16), types=types).encoding == 'mono16'
    assert numpy_to_image(np.zeros((2, 2), np.float32), types=types).encoding == '32FC1'
    assert numpy_to_image(np.zeros((2, 2, 2), np.int16), types=types).encoding == '16SC2'
    big = np.arange(6, dtype='>f4').reshape(2, 3)
    msg = numpy_to_image(big, '32FC1', types=types)
    assert msg.is_bigendian == 0
    np.testing.assert_array_equal(image_to_numpy(msg), big)


def _rgb_expected(pixels, encoding):
    if encoding in ('bgr8', 'bgra8'):
        return pixels[:, :, 2::-1]
    if encoding in ('rgb8', 'rgba8', '8UC3', '8UC4'):
        return pixels[:, :, :3]
    if encoding in ('mono8', '8UC1'):
        return np.stack([pixels] * 3, axis=2)
    if encoding in ('mono16', '16UC1'):
        return np.stack([pixels // 256] * 3, axis=2).astype(np.uint8)
    if encoding == 'rgb16':
        return (pixels // 256).astype(np.uint8)
    if encoding == 'bgra16':
        return (pixels[:, :, 2::-1] // 256).astype(np.uint8)
    raise AssertionError(encoding)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3', '8UC4', 'mono16',
                                      '16UC1', 'rgb16', 'bgra16'])
def test_image_to_rgb(encoding):
    pixels = _random_pixels(np.random.default_rng(1), encoding, 4, 5)
    rgb = image_to_rgb(_image_msg(pixels, encoding, padding=2, big_endian=True))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert rgb.flags.owndata and rgb.flags.writeable
    np.testing.assert_array_equal(rgb, _rgb_expected(pixels, encoding))
    unpadded = image_to_rgb(_image_msg(pixels, encoding, kind='numpy'))
    assert unpadded.flags.owndata and unpadded.flags.writeable   # never a view of the message buffer


@pytest.mark.parametrize('pattern, layout', [('rggb', [[0, 1], [1, 2]]), ('bggr', [[2, 1], [1, 0]]),
                                             ('gbrg', [[1, 2], [0, 1]]), ('grbg', [[1, 0], [2, 1]])])
def test_bayer_demosaics_a_flat_colour(pattern, layout):
    colour = (200, 100, 50)
    mosaic = np.zeros((8, 10), np.uint8)
    for i in range(2):
        for j in range(2):
            mosaic[i::2, j::2] = colour[layout[i][j]]
    rgb = image_to_rgb(_image_msg(mosaic, f'bayer_{pattern}8'))
    assert np.all(rgb[2:-2, 2:-2] == colour)
    rgb16 = image_to_rgb(_image_msg(mosaic.astype(np.uint16) * 256, f'bayer_{pattern}16'))
    assert np.all(rgb16[2:-2, 2:-2] == colour)


@pytest.mark.parametrize('encoding, macro_pixel', [('uyvy', [128, 200, 128, 200]), ('yuv422', [128, 200, 128, 200]),
                                                   ('yuyv', [200, 128, 200, 128]),
                                                   ('yuv422_yuy2', [200, 128, 200, 128])])
def test_yuv422_grey_decodes_grey(encoding, macro_pixel):
    packed = np.tile(np.array(macro_pixel, np.uint8), 2 * 4).reshape(2, 8, 2)
    rgb = image_to_rgb(_image_msg(packed, encoding))
    assert rgb.shape == (2, 8, 3)
    assert np.all(rgb == rgb[:, :, :1]), 'zero chroma must give grey: the byte order was read wrongly'
    assert 195 <= rgb[0, 0, 0] <= 220


@pytest.mark.parametrize('encoding', ['32FC1', '16SC1', '8UC2', '64FC3'])
def test_image_to_rgb_refuses_non_colour(encoding):
    pixels = _random_pixels(np.random.default_rng(2), encoding, 2, 2)
    with pytest.raises(ConversionError, match=f'{encoding} is not a colour'):
        image_to_rgb(_image_msg(pixels, encoding))


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_depth_image_nan_invalid_and_back(flavour):
    types = _types(flavour)
    depth = np.array([[0.0, 1.5, -2.0], [np.inf, np.nan, 80.25]], dtype=np.float64)
    msg = depth_to_image_msg(depth, make_header(types, 9, 'cam'), types)
    assert msg.encoding == '32FC1' and msg.step == 12 and msg.header.frame_id == 'cam'
    out = image_to_numpy(msg)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), [[True, False, True], [True, True, False]])
    np.testing.assert_array_equal(out[~np.isnan(out)], [1.5, 80.25])
    np.testing.assert_array_equal(depth_from_image_msg(msg), [[0, 1.5, 0], [0, 0, 80.25]])
    mm = numpy_to_image(np.array([[0, 1500]], np.uint16), '16UC1', types=types)
    np.testing.assert_allclose(depth_from_image_msg(mm), [[0, 1.5]])
    with pytest.raises(ConversionError, match='not a depth encoding'):
        depth_from_image_msg(numpy_to_image(np.zeros((1, 1, 3), np.uint8), types=types))
    with pytest.raises(ConversionError, match='expected'):
        depth_to_image_msg(np.zeros((2, 2, 2)), None, types)


# -- CompressedImage ---------------------------------------------------------------------------------------------

def _smooth_rgb(height=24, width=32):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], 2).astype(np.uint8)


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_compressed_png_is_lossless_in_every_colour_order(flavour):
    types = _types(flavour)
    rgb = _smooth_rgb()
    for encoding, pixels in (('rgb8', rgb), ('bgr8', rgb[:, :, ::-1]),
                             ('rgba8', np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]))):
        msg = numpy_to_compressed(pixels, encoding, 'png', make_header(types, 3, 'cam'), types)
        assert isinstance(msg, types.CompressedImage) and msg.format == f'{encoding}; png compressed bgr8'
        np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)
        np.testing.assert_array_equal(image_to_rgb(msg), rgb)
        np.testing.assert_array_equal(compressed_to_numpy(msg), rgb[:, :, ::-1])


def test_compressed_jpeg_grey_and_16_bit():
    types = rosbags_message_types()
    rgb = _smooth_rgb()
    jpeg = numpy_to_compressed(rgb, 'rgb8', 'jpg', types=types, quality=95)
    assert jpeg.format == 'rgb8; jpeg compressed bgr8' and bytes(jpeg.data[:2]) == b'\xff\xd8'
    assert np.abs(compressed_to_rgb(jpeg).astype(int) - rgb).mean() < 3
    grey = rgb[:, :, 0]
    mono = numpy_to_compressed(grey, 'mono8', 'png', types=types)
    np.testing.assert_array_equal(compressed_to_numpy(mono), grey)
    np.testing.assert_array_equal(compressed_to_rgb(mono), np.dstack([grey] * 3))
    deep = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    png16 = numpy_to_compressed(deep, '16UC1', 'png', types=types)
    np.testing.assert_array_equal(compressed_to_numpy(png16), deep)
    np.testing.assert_array_equal(compressed_to_rgb(png16)[:, :, 1], deep >> 8)
    with pytest.raises(ConversionError, match='jpeg holds 8-bit data only'):
        numpy_to_compressed(deep, '16UC1', 'jpeg', types=types)
    with pytest.raises(ConversionError, match="format 'webp' not supported"):
        numpy_to_compressed(rgb, 'rgb8', 'webp', types=types)
    with pytest.raises(ConversionError, match='cannot be compressed'):
        numpy_to_compressed(np.zeros((2, 2), np.float32), '32FC1', 'png', types=types)
    with pytest.raises(ConversionError, match='needs 3 channel'):
        numpy_to_compressed(grey, 'rgb8', types=types)


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_corrupt_compressed_payloads(fmt):
    good = numpy_to_compressed(_smooth_rgb(), 'rgb8', fmt, types=rosbags_message_types())
    payload = bytes(good.data)
    for data, problem in ((payload[:len(payload) // 2], 'could not be decoded'), (b'', 'data is empty'),
                          (bytes(range(256)) * 4, 'could not be decoded')):
        msg = pytypes.SimpleNamespace(format=good.format, data=data)
        with pytest.raises(ConversionError, match=problem) as info:
            compressed_to_rgb(msg)
        assert good.format in str(info.value)
    with pytest.raises(ConversionError, match='compressedDepth'):
        compressed_to_numpy(pytypes.SimpleNamespace(format='16UC1; compressedDepth png', data=payload))


# -- CameraInfo --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('flavour', FLAVOURS)
def test_camera_info_round_trip(flavour):
    types = _types(flavour)
    K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    intrinsics = CameraIntrinsics(K, 1600, 900, frame_id='cam_front')
    msg = intrinsics_to_camera_info(intrinsics, types=types)
    assert isinstance(msg, types.CameraInfo) and msg.header.frame_id == 'cam_front'
    assert msg.distortion_model == 'plumb_bob' and list(msg.d) == [0.0] * 5
    np.testing.assert_array_equal(np.asarray(msg.r), [1, 0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    back = camera_info_to_intrinsics(msg)
    np.testing.assert_array_equal(back.K, K)
    assert (back.width, back.height, back.frame_id, back.distortion_model) == (1600, 900, 'cam_front', 'plumb_bob')
    distorted = CameraIntrinsics(K, 1600, 900, 'rational_polynomial', np.arange(8) * 0.01, 'c')
    header = make_header(types, 77, 'other')
    msg = intrinsics_to_camera_info(distorted, header, types)
    assert msg.header.frame_id == 'other' and stamp_to_ns(msg.header) == 77
    back = camera_info_to_intrinsics(msg)
    assert back.distortion_model == 'rational_polynomial'
    np.testing.assert_allclose(back.distortion, np.arange(8) * 0.01)
    empty_d = CameraIntrinsics(K, 16, 9, distortion=np.zeros(0))
    assert list(intrinsics_to_camera_info(empty_d, types=types).d) == [0.0] * 5


def test_camera_info_survives_cdr():
    types = rosbags_message_types()
    store = types.typestore
    msg = intrinsics_to_camera_info(CameraIntrinsics(np.diag([500.0, 400.0, 1.0]), 64, 48), types=types)
    back = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    np.testing.assert_array_equal(camera_info_to_intrinsics(back).K, np.diag([500.0, 400.0, 1.0]))


def _camera_info(**overrides):
    fields = {'k': [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1], 'width': 640, 'height': 480, 'd': [],
              'distortion_model': '', 'header': pytypes.SimpleNamespace(frame_id='cam')}
    fields.update(overrides)
    return pytypes.SimpleNamespace(**fields)


@pytest.mark.parametrize('overrides, problem', [
    ({'k': [0.0] * 9}, r'positive focal lengths .*fx=0.0'),
    ({'k': [500.0, 0, 320, 0, 0.0, 240, 0, 0, 1]}, 'fy=0.0'),
    ({'k': [-5.0, 0, 320, 0, 500.0, 240, 0, 0, 1]}, 'fx=-5.0'),
    ({'k': [np.nan, 0, 320, 0, 500.0, 240, 0, 0, 1]}, 'finite'),
    ({'k': [500.0, 0, np.inf, 0, 500.0, 240, 0, 0, 1]}, 'finite'),
    ({'k': [500.0, 0, 320]}, 'k must hold 9 numbers, got 3'),
    ({'width': 0}, r'image size must be positive, got 480x0 \(HxW\)'),
    ({'height': -3}, 'height must be >= 0'),
])
def test_bad_camera_info(overrides, problem):
    assert camera_info_to_intrinsics(_camera_info()).K[0, 0] == 500.0
    with pytest.raises(ConversionError, match=problem):
        camera_info_to_intrinsics(_camera_info(**overrides))


# -- cv_bridge delegation (only on a ROS 2 install) -----------------------------------------------------------------

def test_cv_bridge_gives_identical_results_when_installed(monkeypatch):
    if _cv_bridge() is None:
        pytest.skip("ROS 2 cv_bridge is not importable here (not installable from PyPI); the package's own "
                    'Image code is used and tested above')
    ros = ros_message_types()
    for encoding in REQUIRED_ENCODINGS:
        pixels = _random_pixels(np.random.default_rng(3), encoding, 6, 5)
        msg = numpy_to_image(pixels, encoding, types=ros)
        with_bridge = image_to_numpy(msg)
        monkeypatch.setenv('RCDEPTH_ROS_TOOLS', '0')
        _cv_bridge.cache_clear()
        own = image_to_numpy(msg)
        own_msg = numpy_to_image(pixels, encoding, types=ros)
        monkeypatch.delenv('RCDEPTH_ROS_TOOLS')
        _cv_bridge.cache_clear()
        assert _same_bits(with_bridge, own) and _same_bits(with_bridge, pixels)
        assert (own_msg.step, bytes(own_msg.data)) == (msg.step, bytes(msg.data))
