"""PointCloud2 <-> structured numpy: all datatypes, count, unaligned records, padding, organized, endianness."""

import struct
import types as pytypes

from hypothesis import given, strategies as st
import numpy as np
import pytest

from rcdepth_ros.core.messages.clouds import (columns_to_structured, numpy_to_pointcloud2, pointcloud2_dtype,
                                              pointcloud2_field_names, POINTFIELD_DTYPES, read_points)
from rcdepth_ros.core.messages.msgtypes import make_header, ros_message_types, rosbags_message_types
from rcdepth_ros.core.messages.radar import pointcloud2_to_radar, radar_to_pointcloud2, RadarFieldMap
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.data.radar_files import read_nuscenes_pcd
from rcdepth_ros.errors import ConversionError, RadarFormatError
from support.ros_libraries import forget_cached_imports, install_sensor_msgs_py

FLAVOURS = ['rclpy', 'rosbags']
STRUCT_CODES = {1: 'b', 2: 'B', 3: 'h', 4: 'H', 5: 'i', 6: 'I', 7: 'f', 8: 'd'}


def _types(flavour):
    return ros_message_types() if flavour == 'rclpy' else rosbags_message_types()


def _field(name, offset, datatype, count=1):
    return pytypes.SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def _random_value(rng, datatype):
    if datatype in (7, 8):
        return float(rng.normal() * 100)
    info = np.iinfo(POINTFIELD_DTYPES[datatype])
    return int(rng.integers(info.min, info.max, endpoint=True))


def _cloud_by_hand(specs, height, width, gap, point_pad, row_pad, big_endian, seed):
    """
    Return (message, expected values) for a cloud whose bytes are written with ``struct``, field by field.

    ``specs`` is a list of (datatype, count); fields are laid out in order with ``gap`` bytes between them (so
    they are unaligned when gap is odd), ``point_pad`` bytes after the last field and ``row_pad`` after a row.
    """
    rng = np.random.default_rng(seed)
    fields, offset = [], 0
    for i, (datatype, count) in enumerate(specs):
        fields.append(_field(f'f{i}', offset, datatype, count))
        offset += struct.calcsize(STRUCT_CODES[datatype]) * count + gap
    point_step = offset + point_pad
    row_step = point_step * width + row_pad
    data = bytearray(b'\x5a' * (row_step * height))
    expected = {f.name: [] for f in fields}
    order = '>' if big_endian else '<'
    for row in range(height):
        for col in range(width):
            base = row * row_step + col * point_step
            for f in fields:
                values = [_random_value(rng, f.datatype) for _ in range(f.count)]
                struct.pack_into(order + STRUCT_CODES[f.datatype] * f.count, data, base + f.offset, *values)
                stored = struct.unpack_from(order + STRUCT_CODES[f.datatype] * f.count, data, base + f.offset)
                expected[f.name].append(stored if f.count > 1 else stored[0])
    msg = pytypes.SimpleNamespace(header=None, height=height, width=width, fields=fields,
                                  is_bigendian=big_endian, point_step=point_step, row_step=row_step,
                                  data=bytes(data), is_dense=False)
    return msg, expected


layouts = st.lists(st.tuples(st.sampled_from(sorted(POINTFIELD_DTYPES)), st.integers(1, 3)), min_size=1,
                   max_size=5)


@given(specs=layouts, height=st.integers(0, 3), width=st.integers(0, 5), gap=st.integers(0, 3),
       point_pad=st.integers(0, 5), row_pad=st.integers(0, 7), big_endian=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_read_points_property(specs, height, width, gap, point_pad, row_pad, big_endian, seed):
    msg, expected = _cloud_by_hand(specs, height, width, gap, point_pad, row_pad, big_endian, seed)
    points = read_points(msg)
    assert points.shape == (height * width,)
    assert points.dtype.isalignedstruct is False and points.dtype.names == tuple(expected)
    for i, (datatype, count) in enumerate(specs):
        column = points[f'f{i}']
        assert column.dtype.base == np.dtype(POINTFIELD_DTYPES[datatype]) and column.dtype.base.isnative
        assert column.shape == ((height * width, count) if count > 1 else (height * width,))
        np.testing.assert_array_equal(column, np.array(expected[f'f{i}'], dtype=column.dtype.base).reshape(
            column.shape))
    if height > 1:
        organized = read_points(msg, reshape_organized=True)
        assert organized.shape == (height, width)
        assert organized.tobytes() == points.tobytes()


@given(specs=layouts, height=st.integers(1, 3), width=st.integers(0, 5), flavour=st.sampled_from(FLAVOURS),
       seed=st.integers(0, 2 ** 32 - 1))
def test_build_then_read_property(specs, height, width, flavour, seed):
    types = _types(flavour)
    source, _ = _cloud_by_hand(specs, height, width, 1, 2, 0, False, seed)
    records = read_points(source, reshape_organized=True)
    if height == 1:
        records = records.reshape(-1)
    msg = numpy_to_pointcloud2(records, make_header(types, 1, 'lidar'), types)
    assert isinstance(msg, types.PointCloud2)
    assert (msg.height, msg.width) == ((1, width) if height == 1 else (height, width))
    assert msg.point_step == records.dtype.itemsize and msg.row_step == msg.point_step * msg.width
    layout = [(f.name, f.datatype, f.count) for f in source.fields]
    assert [(f.name, f.datatype, f.count) for f in msg.fields] == layout
    back = read_points(msg)
    assert back.tobytes() == records.reshape(-1).tobytes()


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_round_trip_through_serialised_bytes(flavour):
    types = _types(flavour)
    records = columns_to_structured({'x': np.arange(4, dtype=np.float32), 'ring': np.arange(4, dtype=np.uint16),
                                     'normal': np.arange(12, dtype=np.float64).reshape(4, 3)})
    msg = numpy_to_pointcloud2(records, make_header(types, 5, 'lidar'), types)
    if flavour == 'rosbags':
        store = types.typestore
        back_msg = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    else:
        serialization = pytest.importorskip('rclpy.serialization')
        back_msg = serialization.deserialize_message(serialization.serialize_message(msg), types.PointCloud2)
    back = read_points(back_msg)
    assert back.tobytes() == records.tobytes()
    assert back_msg.point_step == 4 + 2 + 24 and back_msg.is_dense


def test_field_selection_order_skip_nans_and_density():
    records = columns_to_structured({'x': np.array([1, np.nan, 3, 4], np.float32),
                                     'v': np.array([[0, 0], [0, 0], [np.nan, 1], [2, 2]], np.float64),
                                     'id': np.array([7, 8, 9, 10], np.int32)})
    msg = numpy_to_pointcloud2(records, types=rosbags_message_types())
    assert msg.is_dense is False
    assert pointcloud2_field_names(msg) == ['x', 'v', 'id']
    selected = read_points(msg, fields=['id', 'x'])
    assert selected.dtype.names == ('id', 'x') and selected.dtype.itemsize == 8
    np.testing.assert_array_equal(read_points(msg, fields=['id'], skip_nans=True)['id'], [7, 8, 9, 10])
    np.testing.assert_array_equal(read_points(msg, fields=['x', 'id'], skip_nans=True)['id'], [7, 9, 10])
    np.testing.assert_array_equal(read_points(msg, skip_nans=True)['id'], [7, 10])
    msg.is_dense = True    # a publisher that lies about density: NaNs are still skipped
    np.testing.assert_array_equal(read_points(msg, skip_nans=True)['id'], [7, 10])
    dense = numpy_to_pointcloud2({'x': np.ones(3, np.float32)}, types=rosbags_message_types())
    assert dense.is_dense is True


def test_empty_clouds():
    for flavour in FLAVOURS:
        types = _types(flavour)
        msg = numpy_to_pointcloud2({'x': np.zeros(0, np.float32), 'y': np.zeros(0, np.float32),
                                    'z': np.zeros(0, np.float32)}, types=types)
        assert msg.width == 0 and len(msg.data) == 0
        points = read_points(msg)
        assert points.shape == (0,) and points.dtype.names == ('x', 'y', 'z')
        radar = pointcloud2_to_radar(msg)
        assert len(radar) == 0 and radar.xyz.shape == (0, 3)
    no_fields = pytypes.SimpleNamespace(height=1, width=0, fields=[], point_step=0, row_step=0, data=b'',
                                        is_bigendian=False)
    assert read_points(no_fields).shape == (0,)


def _xyz_msg(**overrides):
    fields = [_field('x', 0, 7), _field('y', 4, 7), _field('z', 8, 7)]
    values = {'header': None, 'height': 1, 'width': 2, 'fields': fields, 'is_bigendian': False, 'point_step': 12,
              'row_step': 24, 'data': np.arange(6, dtype='<f4').tobytes(), 'is_dense': True}
    values.update(overrides)
    return pytypes.SimpleNamespace(**values)


@pytest.mark.parametrize('overrides, problem', [
    ({'data': b'\x00' * 23}, 'data length 23 does not match row_step x height = 24 x 1 = 24'),
    ({'point_step': 8, 'row_step': 16}, r"field 'z' \(offset 8, 1 x 4 bytes\) does not fit in point_step 8"),
    ({'fields': [_field('x', 0, 9)]}, "field 'x' has unknown datatype 9"),
    ({'fields': [_field('x', 0, 7, 0)]}, "field 'x' has count 0"),
    ({'fields': [_field('x', 0, 7), _field('x', 4, 7)]}, "field 'x' appears twice"),
    ({'row_step': 20}, 'row_step 20 is smaller than width x point_step = 2 x 12'),
    ({'width': -2}, 'width must be >= 0'),
    ({'data': None}, 'not a byte buffer'),
])
def test_bad_clouds_raise_conversion_error(overrides, problem):
    assert len(read_points(_xyz_msg())) == 2
    with pytest.raises(ConversionError, match=problem):
        read_points(_xyz_msg(**overrides))


def test_missing_requested_field_names_it():
    with pytest.raises(ConversionError, match=r"requested field\(s\) \['rcs'\] missing; fields present: "
                                              r"\['x', 'y', 'z'\]"):
        read_points(_xyz_msg(), fields=['x', 'rcs'])


def test_building_rejects_what_pointcloud2_cannot_hold():
    types = rosbags_message_types()
    with pytest.raises(ConversionError, match="field 'big' of dtype int64 has no PointField datatype"):
        numpy_to_pointcloud2({'x': np.zeros(2, np.float32), 'big': np.zeros(2, np.int64)}, types=types)
    with pytest.raises(ConversionError, match='structured array or a dict'):
        numpy_to_pointcloud2(np.zeros((2, 3), np.float32), types=types)
    with pytest.raises(ConversionError, match='one common length'):
        columns_to_structured({'x': np.zeros(2), 'y': np.zeros(3)})
    with pytest.raises(ConversionError, match='no columns'):
        columns_to_structured({})


def test_pointcloud2_dtype_big_endian_and_padding():
    dtype = pointcloud2_dtype([_field('a', 1, 3), _field('b', 5, 8, 2)], 24, is_bigendian=True)
    assert dtype.itemsize == 24 and dtype.fields['a'][1] == 1 and dtype.fields['b'][0].shape == (2,)
    assert dtype.fields['a'][0].byteorder == '>'


def test_nuscenes_radar_layout_as_pointcloud2(nuscenes_pcd_dir):
    """The real 43-byte unaligned nuScenes records, carried as a PointCloud2, read back field by field."""
    path = sorted(nuscenes_pcd_dir.glob('*.pcd'))[0]
    records, radar = read_nuscenes_pcd(path)
    for flavour in FLAVOURS:
        types = _types(flavour)
        msg = numpy_to_pointcloud2(records, make_header(types, radar.stamp_ns, 'radar_back_right'), types)
        assert msg.point_step == 43 and msg.width == 125
        assert [f.offset for f in msg.fields][:6] == [0, 4, 8, 12, 13, 15]
        back = read_points(msg)
        assert back.tobytes() == records.tobytes()
        parsed = pointcloud2_to_radar(msg)
        assert parsed.frame_id == 'radar_back_right' and parsed.stamp_ns == radar.stamp_ns
        np.testing.assert_array_equal(parsed.xyz, radar.xyz)
        np.testing.assert_array_equal(parsed.rcs, radar.rcs)
        np.testing.assert_array_equal(parsed.vxy, radar.vxy)
        np.testing.assert_allclose(parsed.v_radial, radar.v_radial, atol=1e-6)


# -- radar <-> PointCloud2 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('flavour', FLAVOURS)
def test_radar_pointcloud2_round_trip_and_mapping(flavour):
    types = _types(flavour)
    radar = RadarPoints(np.array([[10, 1, 0.5], [np.nan, 0, 0], [20, -3, 1], [np.inf, 2, 0]], np.float32),
                        rcs=[5, 6, 7, 8], v_radial=[-1, 0, 2, 3], vxy=[[1, 0], [np.nan, np.nan], [0, 1], [0, 0]],
                        frame_id='radar_front', stamp_ns=1_234_567_890_123)
    msg = radar_to_pointcloud2(radar, types=types)
    assert pointcloud2_field_names(msg) == ['x', 'y', 'z', 'rcs', 'v_radial', 'vx', 'vy']
    assert msg.header.frame_id == 'radar_front' and msg.is_dense is False
    back = pointcloud2_to_radar(msg)
    assert back.stamp_ns == radar.stamp_ns and back.frame_id == 'radar_front' and len(back) == 4
    for name in ('xyz', 'rcs', 'v_radial', 'vxy'):
        np.testing.assert_array_equal(getattr(back, name), getattr(radar, name))
    kept = pointcloud2_to_radar(msg, drop_invalid=True)    # NaN and inf positions are kept unless asked
    assert len(kept) == 2 and kept.rcs.tolist() == [5, 7]
    renamed = radar_to_pointcloud2(radar, types=types, fields={'rcs': 'RCS', 'v_radial': 'doppler'})
    assert pointcloud2_field_names(renamed) == ['x', 'y', 'z', 'RCS', 'doppler']
    parsed = pointcloud2_to_radar(renamed)
    np.testing.assert_array_equal(parsed.rcs, radar.rcs)
    np.testing.assert_array_equal(parsed.v_radial, radar.v_radial)
    assert np.all(np.isnan(parsed.vxy))
    no_rcs = pointcloud2_to_radar(renamed, RadarFieldMap(rcs=''))
    assert np.all(no_rcs.rcs == 0)
    with pytest.raises(RadarFormatError, match='unknown role'):
        radar_to_pointcloud2(radar, types=types, fields=['x', 'speed'])


def test_radar_cloud_without_z_names_the_fields():
    msg = numpy_to_pointcloud2({'x': np.zeros(2, np.float32), 'y': np.zeros(2, np.float32),
                                'doppler': np.zeros(2, np.float32)}, types=rosbags_message_types())
    with pytest.raises(RadarFormatError, match=r"required field 'z' .* fields present: \['x', 'y', 'doppler'\]"):
        pointcloud2_to_radar(msg)


# -- against sensor_msgs_py.point_cloud2 (its PyPI port, pointcloud2 0.6.0) ----------------------------------------

def _reference_values(reference, msg, names):
    """Return {name: values} from the reference reader, gathering its name_0, name_1, ... for count > 1."""
    points = reference.read_points(msg)
    out = {}
    for f in msg.fields:
        if f.name not in names:
            continue
        if f.count > 1:
            out[f.name] = np.stack([points[f'{f.name}_{i}'] for i in range(f.count)], axis=1)
        else:
            out[f.name] = points[f.name]
    return out


REFERENCE_LAYOUTS = [
    ([(7, 1), (7, 1), (7, 1)], 1, 6, 0, 0, 0, False),            # plain xyz float32
    ([(7, 1), (7, 1), (7, 1), (2, 1), (8, 1)], 1, 5, 1, 3, 0, False),   # unaligned, padded point_step
    ([(1, 1), (3, 1), (4, 2), (5, 1), (6, 3)], 3, 4, 0, 2, 5, False),   # every int type, count, organized, row pad
    ([(7, 1), (8, 2), (4, 1)], 2, 3, 1, 1, 0, True),             # big-endian, unaligned
]


@pytest.mark.parametrize('layout', REFERENCE_LAYOUTS)
def test_read_points_identical_to_sensor_msgs_py_port(layout):
    reference = pytest.importorskip('pointcloud2')
    msg, _ = _cloud_by_hand(*layout, seed=11)
    names = [f.name for f in msg.fields]
    expected = _reference_values(reference, msg, names)
    own = read_points(msg)
    for name in names:
        np.testing.assert_array_equal(own[name], expected[name])
        assert own[name].dtype.base == expected[name].dtype.newbyteorder('=')


def test_built_clouds_match_the_port_byte_for_byte():
    reference = pytest.importorskip('pointcloud2')
    rng = np.random.default_rng(5)
    records = columns_to_structured({'x': rng.normal(size=7).astype(np.float32),
                                     'y': rng.normal(size=7).astype(np.float32),
                                     'intensity': rng.integers(0, 255, 7).astype(np.uint8),
                                     't': rng.normal(size=7)})
    ours = numpy_to_pointcloud2(records, types=rosbags_message_types())
    header = pytypes.SimpleNamespace(frame_id='', stamp=pytypes.SimpleNamespace(sec=0, nanosec=0))
    theirs = reference.create_cloud(header, ours.fields, records)
    assert bytes(ours.data) == bytes(theirs.data)
    assert (ours.point_step, ours.row_step, ours.width, ours.height) == (theirs.point_step, theirs.row_step,
                                                                         theirs.width, theirs.height)
    np.testing.assert_array_equal(reference.read_points(ours), records)


# -- where the real sensor_msgs_py is installed (issue 11, items 1-2) ----------------------------------------------
#
# sensor_msgs_py is not installable here; test/support/ros_libraries.py has a stand-in with the behaviour of its
# read_points that broke the package: it refuses every cloud that is not rclpy's PointCloud2 and byte-swaps a
# big-endian message's buffer in place.

@pytest.fixture
def sensor_msgs_py_installed(monkeypatch):
    """Make ``sensor_msgs_py.point_cloud2`` importable as the stand-in; forget any cached import of it."""
    pytest.importorskip('sensor_msgs.msg')
    yield install_sensor_msgs_py(monkeypatch)
    monkeypatch.undo()
    forget_cached_imports()


def _big_endian_cloud(types):
    msg, expected = _cloud_by_hand([(7, 1), (7, 1), (7, 1), (8, 2), (4, 1)], 2, 3, 1, 1, 0, True, seed=3)
    built = types.new('PointCloud2', header=make_header(types, 7, 'radar'), height=msg.height, width=msg.width,
                      fields=[types.new('PointField', name=f.name, offset=f.offset, datatype=f.datatype,
                                        count=f.count) for f in msg.fields],
                      is_bigendian=True, point_step=msg.point_step, row_step=msg.row_step,
                      data=types.data(msg.data), is_dense=False)
    return built, expected


def test_the_stand_in_behaves_like_sensor_msgs_py(sensor_msgs_py_installed):
    """The stand-in must refuse other classes and swap in place, or the tests below could not fail."""
    with pytest.raises(AssertionError, match='not a sensor_msgs.msg.PointCloud2'):
        sensor_msgs_py_installed.read_points(numpy_to_pointcloud2({'x': np.ones(2, np.float32)},
                                                                  types=rosbags_message_types()))
    msg, expected = _big_endian_cloud(ros_message_types())
    before = bytes(msg.data)
    first = sensor_msgs_py_installed.read_points(msg)['f0'].copy()
    np.testing.assert_array_equal(first, np.array(expected['f0'], np.float32))
    assert bytes(msg.data) != before, 'read_points rewrote the message buffer'
    assert not np.array_equal(sensor_msgs_py_installed.read_points(msg)['f0'], first)


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_clouds_of_every_class_read_where_sensor_msgs_py_is_installed(sensor_msgs_py_installed, flavour):
    types = _types(flavour)
    records = columns_to_structured({'x': np.arange(5, dtype=np.float32), 'y': np.ones(5, np.float32),
                                     'z': np.zeros(5, np.float32), 'rcs': np.arange(5, dtype=np.int16)})
    msg = numpy_to_pointcloud2(records, make_header(types, 3, 'radar'), types)
    assert read_points(msg).tobytes() == records.tobytes()
    plain = pytypes.SimpleNamespace(**{name: getattr(msg, name) for name in (
        'header', 'height', 'width', 'fields', 'is_bigendian', 'point_step', 'row_step', 'data', 'is_dense')})
    assert read_points(plain, fields=['rcs', 'x']).tolist() == records[['rcs', 'x']].tolist()
    np.testing.assert_array_equal(pointcloud2_to_radar(msg).rcs, records['rcs'])


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_reading_a_big_endian_cloud_never_changes_the_message(sensor_msgs_py_installed, flavour):
    msg, expected = _big_endian_cloud(_types(flavour))
    before = bytes(msg.data)
    first = read_points(msg)
    second = read_points(msg, fields=['f3', 'f0'])
    assert bytes(msg.data) == before
    np.testing.assert_array_equal(first['f0'], np.array(expected['f0'], np.float32))
    np.testing.assert_array_equal(second['f3'], first['f3'])
    assert read_points(msg).tobytes() == first.tobytes()


def test_read_points_agrees_with_the_real_sensor_msgs_py_when_installed():
    """On a ROS 2 install: the real read_points, given a copy of the message, reads the same values."""
    try:
        from sensor_msgs_py import point_cloud2 as real
    except ImportError:
        pytest.skip('sensor_msgs_py (ROS 2) is not importable here (not on PyPI); the stand-in tests above cover '
                    'its type check and in-place swap')
    import copy
    for big in (False, True):
        msg, _ = _big_endian_cloud(ros_message_types())
        msg.is_bigendian = big
        theirs = real.read_points(copy.deepcopy(msg))
        ours = read_points(msg)
        for f in msg.fields:
            if f.count > 1:
                values = np.stack([theirs[f'{f.name}_{k}'] for k in range(f.count)], axis=1)
            else:
                values = theirs[f.name]
            np.testing.assert_array_equal(ours[f.name], values)
