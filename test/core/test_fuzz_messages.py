"""
Fuzz the message decoders: any fields, sizes and bytes give a result or the package's error, nothing else.

Image, CompressedImage, CameraInfo and PointCloud2 are read duck-typed, so a publisher (or a bag) can hand the
package any object. Each strategy mixes nearly valid messages (a known encoding or datatype, a data length that
fits) with arbitrary values in every field, so both the deep decoding paths and the validation are reached.
"""

import types as pytypes

import cv2
from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from rcdepth_ros.core.messages.camera_info import camera_info_to_intrinsics
from rcdepth_ros.core.messages.clouds import pointcloud2_field_names, POINTFIELD_DTYPES, read_points
from rcdepth_ros.core.messages.images import (compressed_to_numpy, compressed_to_rgb, depth_from_image_msg,
                                              ENCODINGS, image_to_numpy, image_to_rgb)
from rcdepth_ros.core.messages.radar import pointcloud2_to_radar, RadarFieldMap
from rcdepth_ros.errors import RcdepthError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])

# Any value a field of a foreign or broken message might hold.
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=6), st.lists(st.integers(-300, 300), max_size=4),
    st.builds(object))
small = st.integers(0, 6)
size_field = st.one_of(small, small, small, anything)


def _refused_or_fine(call, *args, **kwargs):
    """Run ``call``; return its result, or None when it raised the package's error. Anything else fails the test."""
    try:
        return call(*args, **kwargs)
    except RcdepthError as exc:
        text = str(exc)
        assert text and '\n' not in text, f'not one clear line: {text!r}'
        return None


def _header():
    stamp = st.builds(pytypes.SimpleNamespace, sec=st.one_of(st.integers(-2 ** 31, 2 ** 31), anything),
                      nanosec=st.one_of(st.integers(0, 10 ** 9 - 1), anything))
    return st.one_of(st.none(), anything, st.builds(pytypes.SimpleNamespace, stamp=st.one_of(stamp, anything),
                                                    frame_id=st.one_of(st.text(max_size=5), anything)))


@st.composite
def image_messages(draw):
    encoding = draw(st.one_of(st.sampled_from(sorted(ENCODINGS)), anything))
    height, width = draw(size_field), draw(size_field)
    step = draw(size_field)
    if isinstance(encoding, str) and encoding in ENCODINGS and draw(st.booleans()):
        kind, channels = ENCODINGS[encoding]
        if isinstance(width, int) and 0 <= width < 100:
            step = width * channels * np.dtype(kind).itemsize + draw(st.integers(0, 3))
    data = draw(st.binary(max_size=600))
    if isinstance(step, int) and isinstance(height, int) and 0 <= step * height <= 4000 and draw(st.booleans()):
        data = draw(st.binary(min_size=step * height, max_size=step * height))
    data = draw(st.one_of(st.just(data), st.just(bytearray(data)), st.just(np.frombuffer(data, np.uint8)),
                          anything))
    return pytypes.SimpleNamespace(header=draw(_header()), height=height, width=width, encoding=encoding,
                                   is_bigendian=draw(st.one_of(st.booleans(), anything)), step=step, data=data)


@pytest.mark.filterwarnings('error')    # a value cast with a warning is silently wrong
@FUZZ
@given(msg=image_messages())
def test_image_decoding_raises_only_conversion_errors(msg):
    pixels = _refused_or_fine(image_to_numpy, msg)
    if pixels is not None:
        assert pixels.shape[:2] == (msg.height, msg.width)
        view = _refused_or_fine(image_to_numpy, msg, copy=False)
        assert view is not None and np.array_equal(view, pixels, equal_nan=pixels.dtype.kind == 'f')
    rgb = _refused_or_fine(image_to_rgb, msg)
    if rgb is not None:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    depth = _refused_or_fine(depth_from_image_msg, msg)
    if depth is not None:
        assert depth.dtype == np.float32 and np.all(np.isfinite(depth)) and np.all(depth >= 0)


def _encoded(draw):
    """Return the bytes of a small PNG or JPEG of some depth and channel count, possibly corrupted."""
    channels = draw(st.sampled_from([1, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    fmt = '.png' if dtype == np.uint16 or channels == 4 else draw(st.sampled_from(['.png', '.jpg']))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pixels = np.frombuffer(draw(st.binary(min_size=h * w * channels * np.dtype(dtype).itemsize,
                                          max_size=h * w * channels * np.dtype(dtype).itemsize)), dtype)
    ok, payload = cv2.imencode(fmt, pixels.reshape((h, w) if channels == 1 else (h, w, channels)))
    assert ok
    raw = bytearray(payload.tobytes())
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    if cut is not None:
        raw = raw[:cut]
    for position, value in draw(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=4)):
        if raw:
            raw[position % len(raw)] = value
    return bytes(raw)


@st.composite
def compressed_messages(draw):
    data = draw(st.one_of(st.binary(max_size=300), anything)) if draw(st.booleans()) else _encoded(draw)
    fmt = draw(st.one_of(st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', '16UC1; compressedDepth']),
                         anything))
    return pytypes.SimpleNamespace(header=draw(_header()), format=fmt, data=data)


@pytest.mark.filterwarnings('error')    # a value cast with a warning is silently wrong
@FUZZ
@given(msg=compressed_messages())
def test_compressed_image_decoding_raises_only_conversion_errors(msg):
    _refused_or_fine(compressed_to_numpy, msg)
    rgb = _refused_or_fine(compressed_to_rgb, msg)
    if rgb is not None:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    via_image = _refused_or_fine(image_to_rgb, msg)
    assert (rgb is None) == (via_image is None)


@st.composite
def camera_infos(draw):
    number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 2000), anything)
    k = draw(st.one_of(st.lists(number, min_size=9, max_size=9), st.lists(number, max_size=12), anything,
                       st.just(np.array([500.0, 0, 320, 0, 500, 240, 0, 0, 1]))))
    d = draw(st.one_of(st.lists(number, max_size=6), anything))
    return pytypes.SimpleNamespace(header=draw(_header()), k=k, d=d, width=draw(size_field),
                                   height=draw(size_field), distortion_model=draw(anything))


@pytest.mark.filterwarnings('error')    # a value cast with a warning is silently wrong
@FUZZ
@given(msg=camera_infos())
def test_camera_info_decoding_raises_only_conversion_errors(msg):
    intrinsics = _refused_or_fine(camera_info_to_intrinsics, msg)
    if intrinsics is not None:
        assert intrinsics.K.shape == (3, 3) and np.all(np.isfinite(intrinsics.K))
        assert intrinsics.width > 0 and intrinsics.height > 0


@st.composite
def point_clouds(draw):
    names = st.one_of(st.sampled_from(['x', 'y', 'z', 'rcs', 'v_radial', 'vx_comp', 'vy_comp', 'a_0', '']),
                      st.text(max_size=4), anything)
    fields, offset = [], 0
    for _ in range(draw(st.integers(0, 6))):
        datatype = draw(st.one_of(st.sampled_from(sorted(POINTFIELD_DTYPES)), anything))
        count = draw(st.one_of(st.integers(1, 3), anything))
        field_offset = draw(st.one_of(st.just(offset), st.integers(-2, 40), anything))
        fields.append(draw(st.one_of(
            st.just(pytypes.SimpleNamespace(name=draw(names), offset=field_offset, datatype=datatype, count=count)),
            anything)))
        if isinstance(datatype, int) and datatype in POINTFIELD_DTYPES and isinstance(count, int) and 0 < count < 4:
            offset += np.dtype(POINTFIELD_DTYPES[datatype]).itemsize * count + draw(st.integers(0, 2))
    point_step = draw(st.one_of(st.just(offset), size_field, st.integers(0, 2 ** 32 - 1)))
    height, width = draw(st.one_of(size_field, st.integers(0, 2 ** 32 - 1))), draw(
        st.one_of(size_field, st.integers(0, 2 ** 32 - 1)))
    row_step = draw(st.one_of(size_field, st.integers(0, 2 ** 32 - 1)))
    if isinstance(width, int) and isinstance(point_step, int) and 0 <= width * point_step < 500 and \
            draw(st.booleans()):
        row_step = width * point_step + draw(st.integers(0, 3))
    data = draw(st.binary(max_size=600))
    if isinstance(row_step, int) and isinstance(height, int) and 0 <= row_step * height <= 4000 and \
            draw(st.booleans()):
        data = draw(st.binary(min_size=row_step * height, max_size=row_step * height))
    data = draw(st.one_of(st.just(data), st.just(np.frombuffer(data, np.uint8)), anything))
    return pytypes.SimpleNamespace(header=draw(_header()), height=height, width=width,
                                   fields=draw(st.one_of(st.just(fields), anything)), point_step=point_step,
                                   row_step=row_step, is_bigendian=draw(st.one_of(st.booleans(), anything)),
                                   data=data, is_dense=draw(anything))


@pytest.mark.filterwarnings('error')    # a value cast with a warning is silently wrong
@FUZZ
@given(msg=point_clouds(), skip_nans=st.booleans())
def test_pointcloud2_decoding_raises_only_conversion_errors(msg, skip_nans):
    names = _refused_or_fine(pointcloud2_field_names, msg)
    points = _refused_or_fine(read_points, msg, skip_nans=skip_nans, reshape_organized=True)
    if points is not None:
        assert list(points.dtype.names) == names
        assert points.size <= msg.width * msg.height
    radar = _refused_or_fine(pointcloud2_to_radar, msg)
    if radar is not None:
        assert radar.xyz.shape == (len(radar), 3)
    _refused_or_fine(pointcloud2_to_radar, msg, RadarFieldMap(rcs='rcs', v_radial=''), drop_invalid=True)
