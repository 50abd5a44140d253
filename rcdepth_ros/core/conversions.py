"""
Image, CompressedImage, CameraInfo and PointCloud2 messages <-> numpy, without rclpy.

Reading is duck-typed: any object with the message's attributes works (rclpy classes, rosbags dataclasses,
plain objects); ``data`` may be bytes, bytearray, array.array, memoryview or a numpy uint8 array. Building goes
through a ``MessageTypes`` (``types=``, default ``ros_message_types()``), so the same code makes rclpy messages
for the node and rosbags messages for bags.

Decoded arrays own their memory (``copy=True``, the default) or, with ``copy=False``, are read-only views of
the message's buffer (only possible for native byte order); they are (H, W) for one channel, (H, W, C) else.
``step`` (row padding) and ``is_bigendian`` are honoured; output is always native byte order.

When the real ROS tools are importable (a ROS 2 install), Image <-> numpy goes through ``cv_bridge`` and
PointCloud2 decoding through ``sensor_msgs_py.point_cloud2``; the package's own code is used otherwise. Input
is validated by the package in both cases, so errors are the same ``ConversionError`` either way. Set
``RCDEPTH_ROS_TOOLS=0`` to force the package's own code. PointCloud2 building is always the package's own:
it is one ``tobytes()``, and ``create_cloud`` marks every cloud non-dense and cannot express ``count > 1``
fields as one subarray field.
"""

import functools
import os
import sys

import numpy as np

from rcdepth_ros.core.msgtypes import convert_header, make_header, ros_message_types
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import ConversionError

# ----------------------------------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------------------------------

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
POINTFIELD_DTYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
_DTYPE_TO_POINTFIELD = {np.dtype(v).str.lstrip('<>|='): k for k, v in POINTFIELD_DTYPES.items()}


def encoding_info(encoding):
    """Return ``(numpy dtype, channels)`` of an image encoding; ConversionError for an unknown one."""
    try:
        kind, channels = ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ConversionError(f'image: unknown encoding {encoding!r}; known: {sorted(ENCODINGS)}') from None
    return np.dtype(kind), channels


def _nonnegative_int(msg, name, what):
    value = getattr(msg, name, None)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConversionError(f'{what}: {name} must be an integer, got {value!r}') from None
    if number < 0:
        raise ConversionError(f'{what}: {name} must be >= 0, got {number}')
    return number


def _byte_buffer(data, what):
    """Return ``data`` as a 1-D uint8 numpy array sharing its memory where possible."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 1:
            return data
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    try:
        view = memoryview(data)
    except TypeError:
        raise ConversionError(f'{what}: data of type {type(data).__name__} is not a byte buffer') from None
    if view.nbytes == 0:
        return np.zeros(0, np.uint8)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return np.frombuffer(view.cast('B'), dtype=np.uint8)


def _finish(arr, copy):
    if copy:
        return np.array(arr, order='C', copy=True)
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


# ----------------------------------------------------------------------------------------------------------------
# The real ROS tools, when a ROS 2 install provides them
# ----------------------------------------------------------------------------------------------------------------

def _ros_tools_enabled():
    return os.environ.get('RCDEPTH_ROS_TOOLS', '1') not in ('0', 'false', 'no')


@functools.lru_cache(maxsize=None)
def _cv_bridge():
    """Return a ROS 2 ``CvBridge`` that passes a 16UC1 round trip, or None (absent, or ROS 1-era PyPI build)."""
    if not _ros_tools_enabled():
        return None
    try:
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


@functools.lru_cache(maxsize=None)
def _point_cloud2():
    """Return ``sensor_msgs_py.point_cloud2`` when importable, else None."""
    if not _ros_tools_enabled():
        return None
    try:
        from sensor_msgs_py import point_cloud2
    except ImportError:
        return None
    return point_cloud2


# ----------------------------------------------------------------------------------------------------------------
# Image
# ----------------------------------------------------------------------------------------------------------------

def _image_layout(msg):
    """Validate an Image's layout; return (encoding, dtype, channels, height, width, step, data)."""
    what = 'image'
    encoding = getattr(msg, 'encoding', None)
    dtype, channels = encoding_info(encoding)
    height = _nonnegative_int(msg, 'height', what)
    width = _nonnegative_int(msg, 'width', what)
    step = _nonnegative_int(msg, 'step', what)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f'image: step {step} is too small for width {width} x {channels} channel(s) x '
                              f'{dtype.itemsize} byte(s) ({encoding}) = {row_bytes} bytes per row')
    data = _byte_buffer(getattr(msg, 'data', None), what)
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
            raise ConversionError(f'image: cv_bridge cannot decode {encoding} {width}x{height}: {exc}') from exc
        return _finish(arr.astype(arr.dtype.newbyteorder('='), copy=False), copy)
    stored = dtype.newbyteorder('>' if big_endian else '<') if dtype.itemsize > 1 else dtype
    arr = np.ndarray((height, width, channels), dtype=stored, buffer=data,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if channels == 1:
        arr = arr[:, :, 0]
    if not stored.isnative:
        return arr.astype(dtype)
    return _finish(arr, copy)


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
            raise ConversionError(f'image: cv_bridge cannot encode {encoding} {width}x{height}: {exc}') from exc
    return types.new('Image', header=header, height=height, width=width, encoding=encoding,
                     is_bigendian=int(sys.byteorder == 'big'), step=width * channels * dtype.itemsize,
                     data=types.data(arr))


def _to_rgb(arr, encoding):
    """Return an (H, W, 3) uint8 RGB image from decoded pixels ``arr`` of ``encoding``."""
    import cv2
    dtype, channels = encoding_info(encoding)
    if dtype.kind == 'f' or dtype.kind == 'i' or channels == 2 and not encoding.startswith(('yuv', 'uyvy', 'yuyv')):
        raise ConversionError(f'image: encoding {encoding} is not a colour or grey image; cannot make RGB')
    if dtype.itemsize == 2:
        arr = (arr >> 8).astype(np.uint8)     # 16-bit to 8-bit: keep the high byte
    if encoding.startswith('bayer_'):
        return cv2.cvtColor(np.ascontiguousarray(arr), getattr(cv2, _BAYER_TO_RGB[encoding[6:10]]))
    if encoding in ('yuv422', 'uyvy'):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_UYVY)
    if encoding in ('yuv422_yuy2', 'yuyv'):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_YUV2RGB_YUY2)
    if channels == 1:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    # rgb8/rgba8/rgb16/rgba16 and the raw 8UC3 / 8UC4 / 16UC3 / 16UC4, whose channels are taken as RGB(A).
    # Always a copy: for rgb8 the slice is the whole message buffer, and callers may write into the result.
    return np.array(arr[:, :, :3], order='C', copy=True)


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
    import cv2
    fmt = str(getattr(msg, 'format', ''))
    data = _byte_buffer(getattr(msg, 'data', None), 'compressed image')
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
    import cv2
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


# ----------------------------------------------------------------------------------------------------------------
# CameraInfo
# ----------------------------------------------------------------------------------------------------------------

def camera_info_to_intrinsics(msg):
    """
    Return CameraIntrinsics (K, size, distortion model and coefficients, frame id) from a CameraInfo.

    Raises ConversionError for a K that is not 9 finite numbers with positive focal lengths (``k[0] == 0`` is
    an uncalibrated camera) or a zero image size.
    """
    k = np.asarray(getattr(msg, 'k', ()), dtype=np.float64).reshape(-1)
    if k.shape != (9,):
        raise ConversionError(f'camera info: k must hold 9 numbers, got {k.shape[0]}')
    K = k.reshape(3, 3)
    if not np.all(np.isfinite(K)) or not K[0, 0] > 0 or not K[1, 1] > 0:
        raise ConversionError(f'camera info: K must be finite with positive focal lengths (k[0] = fx, k[4] = fy), '
                              f'got fx={K[0, 0]}, fy={K[1, 1]}: uncalibrated camera?')
    width = _nonnegative_int(msg, 'width', 'camera info')
    height = _nonnegative_int(msg, 'height', 'camera info')
    if width == 0 or height == 0:
        raise ConversionError(f'camera info: image size must be positive, got {width}x{height}')
    d = np.asarray(getattr(msg, 'd', ()), dtype=np.float64).reshape(-1)
    header = getattr(msg, 'header', None)
    return CameraIntrinsics(K, width, height, str(getattr(msg, 'distortion_model', '') or 'plumb_bob'), d,
                            str(getattr(header, 'frame_id', '')))


def intrinsics_to_camera_info(intrinsics, header=None, types=None):
    """
    Return a CameraInfo of ``types`` describing rectified images with ``intrinsics``.

    ``d`` is the intrinsics' distortion (five zeros when empty), ``r`` the identity, ``p = [K | 0]``; without a
    ``header`` the frame id is the intrinsics' own.
    """
    types = types or ros_message_types()
    K = np.asarray(intrinsics.K, dtype=np.float64)
    d = np.asarray(intrinsics.distortion, dtype=np.float64).reshape(-1)
    if d.size == 0:
        d = np.zeros(5)
    P = np.zeros((3, 4))
    P[:, :3] = K
    header = make_header(types, 0, intrinsics.frame_id) if header is None else convert_header(types, header)
    return types.new('CameraInfo', header=header, height=int(intrinsics.height), width=int(intrinsics.width),
                     distortion_model=intrinsics.distortion_model or 'plumb_bob', d=_float_array(types, d),
                     k=K.reshape(-1).copy(), r=np.eye(3).reshape(-1), p=P.reshape(-1))


def _float_array(types, values):
    # rclpy's variable-length float64[] wants an array.array or a list, rosbags a numpy array.
    if types.flavour == 'rclpy':
        return [float(v) for v in values]
    return np.asarray(values, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------------------
# PointCloud2
# ----------------------------------------------------------------------------------------------------------------

def pointcloud2_dtype(fields, point_step, is_bigendian=False, what='point cloud'):
    """
    Return the structured dtype of one record of a cloud with ``fields`` (PointField-like) and ``point_step``.

    Offsets are the fields' own (so unaligned layouts such as nuScenes radar's 43-byte records work), the
    itemsize is ``point_step`` (padding honoured), ``count > 1`` becomes a subarray field. Raises
    ConversionError naming the field for an unknown datatype, a zero count, a duplicate name or a field that
    does not fit in ``point_step``.
    """
    names, formats, offsets = [], [], []
    order = '>' if is_bigendian else '<'
    for field in fields:
        name = str(field.name)
        datatype, count, offset = int(field.datatype), int(field.count), int(field.offset)
        if datatype not in POINTFIELD_DTYPES:
            raise ConversionError(f'{what}: field {name!r} has unknown datatype {datatype} (known 1-8: '
                                  f'INT8..FLOAT64)')
        if count < 1:
            raise ConversionError(f'{what}: field {name!r} has count {count}; must be >= 1')
        if name in names:
            raise ConversionError(f'{what}: field {name!r} appears twice')
        base = np.dtype(POINTFIELD_DTYPES[datatype]).newbyteorder(order)
        end = offset + base.itemsize * count
        if offset < 0 or end > point_step:
            raise ConversionError(f'{what}: field {name!r} (offset {offset}, {count} x {base.itemsize} bytes) does '
                                  f'not fit in point_step {point_step}')
        names.append(name)
        formats.append((base, (count,)) if count > 1 else base)
        offsets.append(offset)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': int(point_step)})


def _cloud_layout(msg, what='point cloud'):
    height = _nonnegative_int(msg, 'height', what)
    width = _nonnegative_int(msg, 'width', what)
    point_step = _nonnegative_int(msg, 'point_step', what)
    row_step = _nonnegative_int(msg, 'row_step', what)
    big = bool(getattr(msg, 'is_bigendian', False))
    dtype = pointcloud2_dtype(list(getattr(msg, 'fields', None) or ()), point_step, big, what)
    if row_step < width * point_step:
        raise ConversionError(f'{what}: row_step {row_step} is smaller than width x point_step = {width} x '
                              f'{point_step}')
    data = _byte_buffer(getattr(msg, 'data', None), what)
    if data.shape[0] != row_step * height:
        raise ConversionError(f'{what}: data length {data.shape[0]} does not match row_step x height = '
                              f'{row_step} x {height} = {row_step * height}')
    return height, width, point_step, row_step, dtype, data


def _packed_native(dtype, names):
    formats = []
    for name in names:
        sub = dtype.fields[name][0]
        if sub.subdtype is not None:
            formats.append((sub.subdtype[0].newbyteorder('='), sub.subdtype[1]))
        else:
            formats.append(sub.newbyteorder('='))
    return np.dtype({'names': list(names), 'formats': formats})


def read_points(msg, fields=None, skip_nans=False, reshape_organized=False):
    """
    Return the points of a PointCloud2 as a packed, native-endian structured array (a copy).

    ``fields`` selects and orders fields by name (all by default); a missing one raises ConversionError naming
    it and the fields present. ``skip_nans`` drops points where a selected floating-point field (any element of
    a ``count > 1`` field) is NaN, whatever ``is_dense`` claims. The result has shape (height * width,), or
    (height, width) with ``reshape_organized`` for an organized cloud (ignored when ``skip_nans`` drops points).
    """
    height, width, point_step, row_step, dtype, data = _cloud_layout(msg)
    names = list(dtype.names) if fields is None else [str(f) for f in fields]
    missing = [n for n in names if n not in dtype.names]
    if missing:
        raise ConversionError(f'point cloud: requested field(s) {missing} missing; fields present: '
                              f'{list(dtype.names)}')
    out_dtype = _packed_native(dtype, names)
    out = np.empty(height * width, dtype=out_dtype)
    tool = _point_cloud2()
    if tool is not None and row_step == width * point_step and len(out):
        _read_with_tool(tool, msg, dtype, names, out)
    elif len(out):
        records = np.ndarray((height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
        records = records.reshape(-1)
        for name in names:
            out[name] = records[name]
    if skip_nans and len(out):
        keep = np.ones(len(out), dtype=bool)
        for name in names:
            column = out[name]
            if column.dtype.kind == 'f':
                keep &= ~np.isnan(column.reshape(len(out), -1)).any(axis=1)
        if not keep.all():
            return out[keep]
    if reshape_organized and height > 1:
        out = out.reshape(height, width)
    return out


def _read_with_tool(tool, msg, dtype, names, out):
    """Fill ``out`` through sensor_msgs_py's read_points (it names ``count > 1`` elements ``name_0``, ...)."""
    requested = []
    for name in names:
        sub = dtype.fields[name][0]
        count = int(np.prod(sub.shape)) if sub.shape else 1
        requested.extend([f'{name}_{i}' for i in range(count)] if count > 1 else [name])
    try:
        points = tool.read_points(msg, field_names=requested, skip_nans=False)
    except Exception as exc:  # noqa: B902 - ValueError / AssertionError from the ROS implementation
        raise ConversionError(f'point cloud: sensor_msgs_py cannot read fields {names}: {exc}') from exc
    points = np.asarray(points).reshape(-1)
    for name in names:
        sub = dtype.fields[name][0]
        count = int(np.prod(sub.shape)) if sub.shape else 1
        if count > 1:
            for i in range(count):
                out[name][:, i] = points[f'{name}_{i}']
        else:
            out[name] = points[name]


def pointcloud2_field_names(msg):
    """Return the field names of a PointCloud2 in message order."""
    return [str(f.name) for f in (getattr(msg, 'fields', None) or ())]


def columns_to_structured(columns):
    """
    Return a packed structured array from a mapping of name -> column ((N,) or (N, count) array).

    Every column keeps its dtype (which must be one of the eight PointField datatypes); lengths must agree.
    """
    arrays = {str(k): np.asarray(v) for k, v in columns.items()}
    if not arrays:
        raise ConversionError('point cloud: no columns given')
    lengths = {k: a.shape[0] if a.ndim else -1 for k, a in arrays.items()}
    if len(set(lengths.values())) != 1 or -1 in lengths.values():
        raise ConversionError(f'point cloud: columns must be arrays of one common length, got {lengths}')
    formats = []
    for name, arr in arrays.items():
        if arr.ndim > 2:
            raise ConversionError(f'point cloud: column {name!r} must be (N,) or (N, count), got {arr.shape}')
        base = arr.dtype.newbyteorder('=')
        formats.append((base, (arr.shape[1],)) if arr.ndim == 2 and arr.shape[1] != 1 else base)
    out = np.empty(next(iter(lengths.values())), dtype={'names': list(arrays), 'formats': formats})
    for name, arr in arrays.items():
        out[name] = arr.reshape(out[name].shape)
    return out


def _pointfields(types, dtype, what):
    fields = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base, shape = (sub.subdtype if sub.subdtype is not None else (sub, ()))
        if base.names is not None or base.kind not in 'iuf':
            raise ConversionError(f'{what}: field {name!r} of dtype {base} has no PointField datatype')
        key = base.str.lstrip('<>|=')
        if key not in _DTYPE_TO_POINTFIELD:
            raise ConversionError(f'{what}: field {name!r} of dtype {base} has no PointField datatype (int8..64-bit '
                                  f'float, no 64-bit integers)')
        count = int(np.prod(shape)) if shape else 1
        fields.append(types.new('PointField', name=name, offset=int(offset), datatype=_DTYPE_TO_POINTFIELD[key],
                                count=count))
    return fields


def numpy_to_pointcloud2(points, header=None, types=None, is_dense=None):
    """
    Return a PointCloud2 of ``types`` from a structured array ((N,) or organized (H, W)) or a column mapping.

    The array's field offsets and itemsize become the fields' offsets and ``point_step`` (padding kept);
    subarray fields get ``count > 1``; data is written little-endian. ``is_dense`` defaults to "no NaN or inf
    in any floating field".
    """
    types = types or ros_message_types()
    what = 'point cloud'
    if isinstance(points, dict):
        points = columns_to_structured(points)
    points = np.asarray(points)
    if points.dtype.names is None:
        raise ConversionError(f'{what}: expected a structured array or a dict of columns, got dtype {points.dtype}')
    if points.ndim not in (1, 2):
        raise ConversionError(f'{what}: expected shape (N,) or organized (H, W), got {points.shape}')
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    fields = _pointfields(types, points.dtype, what)
    little = np.dtype({'names': list(points.dtype.names),
                       'formats': [_little(points.dtype.fields[n][0]) for n in points.dtype.names],
                       'offsets': [points.dtype.fields[n][1] for n in points.dtype.names],
                       'itemsize': points.dtype.itemsize})
    if little != points.dtype:
        points = points.astype(little)
    if is_dense is None:
        is_dense = True
        for name in points.dtype.names:
            column = points[name]
            if column.dtype.kind == 'f' and not np.all(np.isfinite(column)):
                is_dense = False
                break
    point_step = points.dtype.itemsize
    return types.new('PointCloud2', header=convert_header(types, header), height=height, width=width,
                     fields=fields, is_bigendian=False, point_step=point_step, row_step=point_step * width,
                     data=types.data(np.ascontiguousarray(points)), is_dense=bool(is_dense))


def _little(sub):
    if sub.subdtype is not None:
        return (sub.subdtype[0].newbyteorder('<'), sub.subdtype[1])
    return sub.newbyteorder('<')
