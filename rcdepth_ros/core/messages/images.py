"""
Image and CompressedImage messages <-> numpy, and depth images (32FC1 metres, REP 118), without rclpy.

Decoded arrays own their memory (``copy=True``, the default) or, with ``copy=False``, are read-only views of
the message's buffer (only possible for native byte order); they are (H, W) for one channel, (H, W, C) else.
``step`` (row padding) and ``is_bigendian`` are honoured; output is always native byte order. Building goes
through a ``MessageTypes`` (``types=``, default ``ros_message_types()``), so the same code makes rclpy messages
for the node and rosbags messages for bags.

Where ROS 2's ``cv_bridge`` is importable it does the Image <-> numpy work (``messages.buffers``); input is
validated by the package in both cases, so errors are the same ``ConversionError`` either way.
"""

import functools
import sys

import cv2
import numpy as np

from rcdepth_ros.core.messages.buffers import byte_buffer, finish_array, nonnegative_int, ros_tools_enabled
from rcdepth_ros.core.messages.msgtypes import convert_header, ros_message_types
from rcdepth_ros.errors import ConversionError


_NAMED_ENCODINGS = {
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1), 'mono16': ('u2', 1),
    'rgb16': ('u2', 3), 'bgr16': ('u2', 3), 'rgba16': ('u2', 4), 'bgra16': ('u2', 4),
    'yuv422': ('u1', 2), 'uyvy': ('u1', 2), 'yuv422_yuy2': ('u1', 2), 'yuyv': ('u1', 2),
}
for _pattern in ('rggb', 'bggr', 'gbrg', 'grbg'):
    _NAMED_ENCODINGS[f'bayer_{_pattern}8'] = ('u1', 1)
    _NAMED_ENCODINGS[f'bayer_{_pattern}16'] = ('u2', 1)
_DEPTH_PREFIXES = {'8U': 'u1', '8S': 'i1', '16U': 'u2', '16S': 'i2', '32S': 'i4', '32F': 'f4', '64F': 'f8'}
ENCODINGS = dict(_NAMED_ENCODINGS)
for _prefix, _dtype in _DEPTH_PREFIXES.items():
    for _channels in (1, 2, 3, 4):
        ENCODINGS[f'{_prefix}C{_channels}'] = (_dtype, _channels)
# OpenCV's Bayer names are shifted by one pixel with respect to ROS's (the same mapping cv_bridge uses).
_BAYER_TO_RGB = {'rggb': 'COLOR_BayerBG2RGB', 'bggr': 'COLOR_BayerRG2RGB', 'gbrg': 'COLOR_BayerGR2RGB',
                 'grbg': 'COLOR_BayerGB2RGB'}


def encoding_info(encoding):
    """Return ``(numpy dtype, channels)`` of an image encoding; ConversionError for an unknown one."""
    try:
        kind, channels = ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ConversionError(f'image: unknown encoding {encoding!r}; known: {sorted(ENCODINGS)}') from None
    return np.dtype(kind), channels


@functools.lru_cache(maxsize=None)
def _cv_bridge():
    """Return a ROS 2 ``CvBridge`` that passes a 16UC1 round trip, or None (absent, or ROS 1-era PyPI build)."""
    if not ros_tools_enabled():
        return None
    try:
        # cv_bridge: an optional ROS library (not on PyPI), used when present
        from cv_bridge import CvBridge
        bridge = CvBridge()
        probe = np.array([[1, 65535], [258, 4096]], dtype=np.uint16)
        msg = bridge.cv2_to_imgmsg(probe, encoding='16UC1')
        if not isinstance(msg, ros_message_types().Image):
            return None
        if not np.array_equal(np.asarray(bridge.imgmsg_to_cv2(msg, desired_encoding='passthrough')), probe):
            return None
        return bridge
    except Exception:  # noqa: B902 - any failure means: do not delegate, use the package's own code
        return None


# ----------------------------------------------------------------------------------------------------------------
# Image
# ----------------------------------------------------------------------------------------------------------------

def _image_layout(msg):
    """Validate an Image's layout; return (encoding, dtype, channels, height, width, step, data)."""
    what = 'image'
    encoding = getattr(msg, 'encoding', None)
    dtype, channels = encoding_info(encoding)
    height = nonnegative_int(msg, 'height', what)
    width = nonnegative_int(msg, 'width', what)
    step = nonnegative_int(msg, 'step', what)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f'image: step {step} is too small for width {width} x {channels} channel(s) x '
                              f'{dtype.itemsize} byte(s) ({encoding}) = {row_bytes} bytes per row')
    data = byte_buffer(getattr(msg, 'data', None), what)
    if data.shape[0] != step * height:
        raise ConversionError(f'image: data length {data.shape[0]} does not match step x height = {step} x '
                              f'{height} = {step * height} ({encoding})')
    return encoding, dtype, channels, height, width, step, data


def image_to_numpy(msg, copy=True):
    """
    Return the pixels of an Image message as numpy: (H, W) for one channel, (H, W, C) otherwise.

    The dtype follows the encoding (``rgb8`` uint8, ``mono16`` uint16, ``32FC1`` float32, ...), in native byte
    order. Raises ConversionError for an unknown encoding, a ``step`` smaller than a row, or a data length other
    than ``step * height``.
    """
    encoding, dtype, channels, height, width, step, data = _image_layout(msg)
    big_endian = bool(getattr(msg, 'is_bigendian', False)) and dtype.itemsize > 1
    bridge = _cv_bridge()
    if bridge is not None and isinstance(msg, ros_message_types().Image) and \
            step % (dtype.itemsize * channels) == 0:
        try:
            arr = np.asarray(bridge.imgmsg_to_cv2(msg, desired_encoding='passthrough'))
        except Exception as exc:  # noqa: B902 - CvBridgeError and numpy errors alike
            raise ConversionError(f'image: cv_bridge cannot decode {encoding} {height}x{width} (HxW): {exc}') from exc
        return finish_array(arr.astype(arr.dtype.newbyteorder('='), copy=False), copy)
    stored = dtype.newbyteorder('>' if big_endian else '<') if dtype.itemsize > 1 else dtype
    arr = np.ndarray((height, width, channels), dtype=stored, buffer=data,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if channels == 1:
        arr = arr[:, :, 0]
    if not stored.isnative:
        return arr.astype(dtype)
    return finish_array(arr, copy)


def _infer_encoding(arr):
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype == np.uint8 and channels in (1, 3, 4):
        return {1: 'mono8', 3: 'rgb8', 4: 'rgba8'}[channels]
    if arr.dtype == np.uint16 and channels == 1:
        return 'mono16'
    for prefix, kind in _DEPTH_PREFIXES.items():
        if np.dtype(kind) == arr.dtype.newbyteorder('=') and 1 <= channels <= 4:
            return f'{prefix}C{channels}'
    raise ConversionError(f'image: cannot infer an encoding for dtype {arr.dtype} with {channels} channel(s)')


def numpy_to_image(arr, encoding=None, header=None, types=None):
    """
    Return an Image message of ``types`` holding ``arr`` ((H, W) or (H, W, C)) with ``encoding``.

    Without ``encoding`` it is inferred (uint8: mono8 / rgb8 / rgba8, uint16: mono16, else ``<depth>C<n>``).
    The array's dtype and channel count must match the encoding (no silent casts). Rows are packed
    (``step = W * C * itemsize``), native byte order. ``header`` may be a header of either flavour or None.
    """
    types = types or ros_message_types()
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3):
        raise ConversionError(f'image: array must be (H, W) or (H, W, C), got shape {arr.shape}')
    if encoding is None:
        encoding = _infer_encoding(arr)
    dtype, channels = encoding_info(encoding)
    got_channels = 1 if arr.ndim == 2 else arr.shape[2]
    if got_channels != channels or arr.dtype.newbyteorder('=') != dtype:
        raise ConversionError(f'image: encoding {encoding} needs {channels} channel(s) of {dtype}, got an array '
                              f'of shape {arr.shape} and dtype {arr.dtype}')
    if not arr.dtype.isnative:
        arr = arr.astype(dtype)
    height, width = arr.shape[:2]
    header = convert_header(types, header)
    bridge = _cv_bridge()
    if bridge is not None and types.flavour == 'rclpy':
        try:
            return bridge.cv2_to_imgmsg(np.ascontiguousarray(arr), encoding=encoding, header=header)
        except Exception as exc:  # noqa: B902 - CvBridgeError and numpy errors alike
            raise ConversionError(f'image: cv_bridge cannot encode {encoding} {height}x{width} (HxW): {exc}') from exc
    return types.new('Image', header=header, height=height, width=width, encoding=encoding,
                     is_bigendian=int(sys.byteorder == 'big'), step=width * channels * dtype.itemsize,
                     data=types.data(arr))


def _to_rgb(arr, encoding):
    """Return an (H, W, 3) uint8 RGB image from decoded pixels ``arr`` of ``encoding``."""
    dtype, channels = encoding_info(encoding)
    if dtype.kind == 'f' or dtype.kind == 'i' or channels == 2 and not encoding.startswith(('yuv', 'uyvy', 'yuyv')):
        raise ConversionError(f'image: encoding {encoding} is not a colour or grey image; cannot make RGB')
    if dtype.itemsize == 2:
        arr = (arr >> 8).astype(np.uint8)     # 16-bit to 8-bit: keep the high byte
    if encoding.startswith('bayer_'):
        return _opencv_rgb(arr, getattr(cv2, _BAYER_TO_RGB[encoding[6:10]]), encoding)
    if encoding in ('yuv422', 'uyvy'):
        return _opencv_rgb(arr, cv2.COLOR_YUV2RGB_UYVY, encoding)
    if encoding in ('yuv422_yuy2', 'yuyv'):
        return _opencv_rgb(arr, cv2.COLOR_YUV2RGB_YUY2, encoding)
    if channels == 1:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    # rgb8/rgba8/rgb16/rgba16 and the raw 8UC3 / 8UC4 / 16UC3 / 16UC4, whose channels are taken as RGB(A).
    # Always a copy: for rgb8 the slice is the whole message buffer, and callers may write into the result.
    return np.array(arr[:, :, :3], order='C', copy=True)


def _opencv_rgb(arr, code, encoding):
    """Return ``cv2.cvtColor(arr, code)``; an image without pixels stays empty, OpenCV's refusals are named."""
    if arr.size == 0:
        return np.zeros(arr.shape[:2] + (3,), np.uint8)
    try:
        return cv2.cvtColor(np.ascontiguousarray(arr), code)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else 'refused'
        raise ConversionError(f'image: OpenCV cannot convert {encoding} {arr.shape[0]}x{arr.shape[1]} (HxW) to '
                              f'RGB ({reason})') from None


def image_to_rgb(msg):
    """
    Return a new (H, W, 3) uint8 RGB array (owning its memory) from an Image or a CompressedImage message.

    Colour encodings are reordered, alpha dropped, grey replicated, 16-bit reduced to the high byte, Bayer and
    YUV 4:2:2 converted with OpenCV. ``8UC3``/``8UC4`` channels are taken as RGB(A). Float and signed
    encodings (depth) raise ConversionError.
    """
    if not hasattr(msg, 'encoding') and hasattr(msg, 'format'):
        return compressed_to_rgb(msg)
    arr = image_to_numpy(msg, copy=False)
    return _to_rgb(arr, msg.encoding)


def depth_to_image_msg(depth, header=None, types=None):
    """
    Return a 32FC1 Image (metres, NaN invalid, REP 118) from a depth map in metres.

    Pixels that are 0, negative or not finite (the pipeline's "no measurement") become NaN.
    """
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ConversionError(f'depth image: expected (H, W), got shape {depth.shape}')
    depth = depth.astype(np.float32, copy=False)
    with np.errstate(invalid='ignore'):
        valid = (depth > 0) & (depth < np.inf)       # False for NaN, 0, negatives and inf
    if not valid.all():
        depth = np.where(valid, depth, np.float32(np.nan))
    return numpy_to_image(depth, '32FC1', header, types)


def depth_from_image_msg(msg):
    """
    Return an (H, W) float32 depth map in metres with 0 = invalid from a depth Image.

    ``32FC1``/``64FC1`` are metres (NaN, inf and values <= 0 become 0); ``16UC1``/``mono16`` are millimetres.
    """
    arr = image_to_numpy(msg)
    if msg.encoding in ('32FC1', '64FC1'):
        depth = arr.astype(np.float32)
        with np.errstate(invalid='ignore'):
            depth[~(depth > 0) | ~np.isfinite(depth)] = 0.0
        return depth
    if msg.encoding in ('16UC1', 'mono16'):
        return arr.astype(np.float32) / 1000.0
    raise ConversionError(f'depth image: encoding {msg.encoding} is not a depth encoding (32FC1, 64FC1, 16UC1)')


# ----------------------------------------------------------------------------------------------------------------
# CompressedImage
# ----------------------------------------------------------------------------------------------------------------

def compressed_to_numpy(msg):
    """
    Return the decoded pixels of a CompressedImage as OpenCV gives them: BGR(A) for colour, (H, W) for grey.

    16-bit PNGs stay uint16. An empty or corrupt payload raises ConversionError naming the format and size.
    """
    fmt = str(getattr(msg, 'format', ''))
    data = byte_buffer(getattr(msg, 'data', None), 'compressed image')
    if data.shape[0] == 0:
        raise ConversionError(f'compressed image ({fmt!r}): data is empty')
    if 'compresseddepth' in fmt.lower():
        raise ConversionError(f'compressed image: format {fmt!r} (compressed_depth_image_transport) is not '
                              f'supported; publish 16UC1 PNG as plain CompressedImage instead')
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ConversionError(f'compressed image ({fmt!r}): {data.shape[0]} bytes could not be decoded (corrupt '
                              f'or unsupported payload)')
    return arr


def compressed_to_rgb(msg):
    """Return an (H, W, 3) uint8 RGB image from a CompressedImage (jpeg or png, colour or grey, 8 or 16 bit)."""
    arr = compressed_to_numpy(msg)
    if arr.ndim == 2:
        encoding = 'mono16' if arr.dtype == np.uint16 else 'mono8'
    else:
        depth = '16' if arr.dtype == np.uint16 else '8'
        encoding = {3: 'bgr', 4: 'bgra'}.get(arr.shape[2], 'bgr') + depth
        if arr.shape[2] not in (3, 4):
            raise ConversionError(f'compressed image: decoded {arr.shape[2]} channels; expected 1, 3 or 4')
    return _to_rgb(arr, encoding)


def numpy_to_compressed(arr, encoding='rgb8', fmt='jpeg', header=None, types=None, quality=90):
    """
    Return a CompressedImage of ``types`` holding ``arr`` (given in ``encoding``) compressed as jpeg or png.

    Colour is stored BGR as image_transport does; ``format`` reads like image_transport's
    (``'rgb8; jpeg compressed bgr8'``). 16-bit images (mono16, 16UC1) need png.
    """
    types = types or ros_message_types()
    fmt = {'jpg': 'jpeg'}.get(fmt, fmt)
    if fmt not in ('jpeg', 'png'):
        raise ConversionError(f'compressed image: format {fmt!r} not supported (jpeg, png)')
    arr = np.asarray(arr)
    dtype, channels = encoding_info(encoding)
    if (1 if arr.ndim == 2 else arr.shape[-1]) != channels or arr.dtype != dtype or arr.ndim not in (2, 3):
        raise ConversionError(f'compressed image: encoding {encoding} needs {channels} channel(s) of {dtype}, '
                              f'got shape {arr.shape} dtype {arr.dtype}')
    if channels == 1 and dtype.kind == 'u':
        pixels, target = arr, encoding
    elif encoding in ('rgb8', 'rgba8', '8UC3', '8UC4'):
        pixels, target = np.ascontiguousarray(arr[:, :, 2::-1]), 'bgr8'
    elif encoding in ('bgr8', 'bgra8'):
        pixels, target = arr[:, :, :3], 'bgr8'
    else:
        raise ConversionError(f'compressed image: encoding {encoding} cannot be compressed as {fmt}')
    if fmt == 'jpeg' and pixels.dtype != np.uint8:
        raise ConversionError(f'compressed image: jpeg holds 8-bit data only; use png for {encoding}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, payload = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', pixels, params)
    if not ok:
        raise ConversionError(f'compressed image: OpenCV could not encode {encoding} {arr.shape} as {fmt}')
    return types.new('CompressedImage', header=convert_header(types, header),
                     format=f'{encoding}; {fmt} compressed {target}', data=types.data(payload))
