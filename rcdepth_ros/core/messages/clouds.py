"""
PointCloud2 messages <-> numpy structured arrays, without rclpy.

Fields are read by name, offset and datatype (unaligned layouts and ``count > 1`` fields included); decoded
arrays are packed, native-endian copies, and the message is never written to. Reading and building are always
the package's own, also where ``sensor_msgs_py`` is installed:

- its ``read_points`` refuses every object that is not rclpy's ``sensor_msgs.msg.PointCloud2`` (clouds from
  rosbags or any other class), and for a cloud whose byte order is not the machine's it byte-swaps the message's
  own buffer in place, so a second read of the same message returns other values. Handing it only rclpy
  messages, and only copies of them, would cost a full copy of every cloud to get what the structured view
  below already gives; it also ignores ``row_step`` padding and cannot take a field named like another's
  ``count > 1`` element (``a`` with count 2 beside ``a_0``). The tests compare this reader with its PyPI port
  and, where it is installed, with the real one.
- its ``create_cloud`` marks every cloud non-dense and cannot express ``count > 1`` fields as one subarray field;
  building is one ``tobytes()``.
"""

import numpy as np

from rcdepth_ros.core.messages.buffers import byte_buffer, nonnegative_int
from rcdepth_ros.core.messages.msgtypes import convert_header, ros_message_types
from rcdepth_ros.errors import ConversionError


POINTFIELD_DTYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
_DTYPE_TO_POINTFIELD = {np.dtype(v).str.lstrip('<>|='): k for k, v in POINTFIELD_DTYPES.items()}
# numpy describes a record of at most this many bytes (a C int).
_MAX_POINT_STEP = 2 ** 31 - 1


def _field_list(fields, what):
    """Return ``fields`` (PointField-like objects) as a list; ConversionError for anything that is not a sequence."""
    if fields is None:
        return []
    if isinstance(fields, (str, bytes, dict)) or not hasattr(fields, '__iter__'):
        raise ConversionError(f'{what}: fields must be a sequence of PointField, got {type(fields).__name__}')
    return list(fields)


def _field_name(field, what):
    name = getattr(field, 'name', None)
    if not isinstance(name, str):
        raise ConversionError(f'{what}: a field has no string name (got {type(field).__name__} with name '
                              f'{str(name)[:40]!r})')
    return name


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
    for field in _field_list(fields, what):
        name = _field_name(field, what)
        datatype = nonnegative_int(field, 'datatype', f'{what}: field {name!r}')
        count = nonnegative_int(field, 'count', f'{what}: field {name!r}')
        offset = nonnegative_int(field, 'offset', f'{what}: field {name!r}')
        if datatype not in POINTFIELD_DTYPES:
            raise ConversionError(f'{what}: field {name!r} has unknown datatype {datatype} (known 1-8: '
                                  f'INT8..FLOAT64)')
        if count < 1:
            raise ConversionError(f'{what}: field {name!r} has count {count}; must be >= 1')
        if name in names:
            raise ConversionError(f'{what}: field {name!r} appears twice')
        base = np.dtype(POINTFIELD_DTYPES[datatype]).newbyteorder(order)
        end = offset + base.itemsize * count
        if end > point_step:
            raise ConversionError(f'{what}: field {name!r} (offset {offset}, {count} x {base.itemsize} bytes) does '
                                  f'not fit in point_step {point_step}')
        names.append(name)
        formats.append((base, (count,)) if count > 1 else base)
        offsets.append(offset)
    if point_step > _MAX_POINT_STEP:
        raise ConversionError(f'{what}: point_step {point_step} is larger than any record can be '
                              f'({_MAX_POINT_STEP} bytes)')
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': int(point_step)})


def _cloud_layout(msg, what='point cloud'):
    height = nonnegative_int(msg, 'height', what)
    width = nonnegative_int(msg, 'width', what)
    point_step = nonnegative_int(msg, 'point_step', what)
    row_step = nonnegative_int(msg, 'row_step', what)
    big = bool(getattr(msg, 'is_bigendian', False))
    dtype = pointcloud2_dtype(getattr(msg, 'fields', None), point_step, big, what)
    if row_step < width * point_step:
        raise ConversionError(f'{what}: row_step {row_step} is smaller than width x point_step = {width} x '
                              f'{point_step}')
    data = byte_buffer(getattr(msg, 'data', None), what)
    if data.shape[0] != row_step * height:
        raise ConversionError(f'{what}: data length {data.shape[0]} does not match row_step x height = '
                              f'{row_step} x {height} = {row_step * height}')
    if point_step == 0 and width * height > 0:
        raise ConversionError(f'{what}: point_step is 0 for {width} x {height} points (a point takes at least one '
                              f'byte)')
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
    if len(out):
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


def pointcloud2_field_names(msg):
    """Return the field names of a PointCloud2 in message order; ConversionError for fields that have none."""
    return [_field_name(f, 'point cloud') for f in _field_list(getattr(msg, 'fields', None), 'point cloud')]


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
