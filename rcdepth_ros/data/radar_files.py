"""
Radar files of the data sets: nuScenes radar ``.pcd`` (PCD v0.7, binary or ASCII) and Astyx HiRes2019 radar text.

Both parse into the columns the file names, then go through ``core.messages.radar.radar_from_structured`` (the
same field-name mapping as a PointCloud2), so a file and a message of the same returns give the same RadarPoints.
"""

from pathlib import Path
import re

import numpy as np

from rcdepth_ros.core.messages.radar import radar_from_structured, RadarFieldMap
from rcdepth_ros.errors import RadarFormatError


# PCD TYPE letter and SIZE -> numpy type (PCD binary data is little-endian).
_PCD_TYPES = {('F', 4): '<f4', ('F', 8): '<f8', ('I', 1): 'i1', ('I', 2): '<i2', ('I', 4): '<i4', ('I', 8): '<i8',
              ('U', 1): 'u1', ('U', 2): '<u2', ('U', 4): '<u4', ('U', 8): '<u8'}
_PCD_HEADER_KEYS = ('VERSION', 'FIELDS', 'SIZE', 'TYPE', 'COUNT', 'WIDTH', 'HEIGHT', 'VIEWPOINT', 'POINTS', 'DATA')
_NUSCENES_STAMP = re.compile(r'__(\d{16})\.pcd$')
# A record larger than this is a corrupt header, not a point (nuScenes radar: 43 bytes, lidar: 20 bytes).
_MAX_RECORD_BYTES = 1 << 20


def _read_bytes(path, what):
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RadarFormatError(f'{what} {path}: cannot read ({exc.strerror or exc})') from exc
    if not raw:
        raise RadarFormatError(f'{what} {path}: file is empty')
    return raw


def _pcd_header(raw, path):
    header = {}
    pos = 0
    while 'DATA' not in header:
        end = raw.find(b'\n', pos)
        if end < 0:
            raise RadarFormatError(f'PCD {path}: header ends before a DATA line (not a PCD file?)')
        line = raw[pos:end].decode('ascii', errors='replace').strip()
        pos = end + 1
        if not line or line.startswith('#'):
            continue
        key, _, value = line.partition(' ')
        if key not in _PCD_HEADER_KEYS:
            raise RadarFormatError(f'PCD {path}: unexpected header line {line[:60]!r}')
        header[key] = value.split()
    for key in ('FIELDS', 'SIZE', 'TYPE', 'WIDTH', 'HEIGHT', 'POINTS'):
        if key not in header:
            raise RadarFormatError(f'PCD {path}: header has no {key} line')
    return header, pos


def _pcd_int(header, key, path):
    try:
        value = int(header[key][0])
    except (IndexError, ValueError):
        raise RadarFormatError(f'PCD {path}: {key} must be an integer, got {header[key]}') from None
    if value < 0:
        raise RadarFormatError(f'PCD {path}: {key} must be >= 0, got {value}')
    return value


def pcd_dtype(header, path='<pcd>'):
    """
    Return the packed (unaligned) structured dtype of one PCD record from a parsed header.

    ``header`` maps FIELDS, SIZE, TYPE and optional COUNT to their lists of tokens. ``COUNT > 1`` becomes a
    subarray field; PCD padding fields named ``_`` take their bytes but are not exposed.
    """
    fields, sizes, types = header['FIELDS'], header['SIZE'], header['TYPE']
    counts = header.get('COUNT', ['1'] * len(fields))
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise RadarFormatError(f'PCD {path}: FIELDS/SIZE/TYPE/COUNT lengths differ ({len(fields)}, {len(sizes)}, '
                               f'{len(types)}, {len(counts)})')
    names, formats, offsets = [], [], []
    offset = 0
    for name, size, kind, count in zip(fields, sizes, types, counts):
        try:
            size, count = int(size), int(count)
        except ValueError:
            raise RadarFormatError(f'PCD {path}: field {name!r} has non-integer SIZE/COUNT {size}/{count}') from None
        key = (kind.upper(), size)
        if key not in _PCD_TYPES or count < 1:
            raise RadarFormatError(f'PCD {path}: field {name!r} has unsupported TYPE {kind} SIZE {size} COUNT '
                                   f'{count}')
        if name != '_':
            if name in names:
                raise RadarFormatError(f'PCD {path}: field {name!r} appears twice')
            names.append(name)
            formats.append((_PCD_TYPES[key], (count,)) if count > 1 else _PCD_TYPES[key])
            offsets.append(offset)
        offset += size * count
        if offset > _MAX_RECORD_BYTES:
            raise RadarFormatError(f'PCD {path}: field {name!r} (SIZE {size} x COUNT {count}) makes a record larger '
                                   f'than {_MAX_RECORD_BYTES} bytes: a corrupt header')
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': offset})


def read_pcd(path):
    """
    Return the records of a PCD v0.7 file (``DATA ascii`` or ``binary``) as a structured array of POINTS records.

    The header's FIELDS/SIZE/TYPE/COUNT define the record (packed, so nuScenes radar's 43-byte records work),
    WIDTH x HEIGHT must equal POINTS, and an organized cloud (HEIGHT > 1) is returned flattened row-major.
    Bytes after the last record are ignored (real nuScenes radar files carry zero padding there).
    """
    raw = _read_bytes(path, 'PCD')
    header, pos = _pcd_header(raw, path)
    dtype = pcd_dtype(header, path)
    width, height, points = (_pcd_int(header, k, path) for k in ('WIDTH', 'HEIGHT', 'POINTS'))
    if width * height != points:
        raise RadarFormatError(f'PCD {path}: WIDTH x HEIGHT = {width} x {height} does not match POINTS {points}')
    if points and not dtype.itemsize:
        raise RadarFormatError(f'PCD {path}: POINTS {points} but FIELDS/SIZE/COUNT give records of 0 bytes')
    data_kind = header['DATA'][0].lower() if header['DATA'] else ''
    body = raw[pos:]
    if data_kind == 'binary':
        need = points * dtype.itemsize
        if len(body) < need:
            raise RadarFormatError(f'PCD {path}: truncated: {points} points of {dtype.itemsize} bytes need {need} '
                                   f'bytes of data, the file has {len(body)}')
        return np.frombuffer(body, dtype=dtype, count=points).copy()
    if data_kind == 'ascii':
        return _pcd_ascii(body, header, dtype, points, path)
    raise RadarFormatError(f'PCD {path}: DATA {" ".join(header["DATA"])!r} is not supported (ascii or binary)')


def _pcd_ascii(body, header, dtype, points, path):
    # Columns follow FIELDS x COUNT, padding fields ('_') included, so walk the header, not the dtype.
    counts = [int(c) for c in header.get('COUNT', ['1'] * len(header['FIELDS']))]
    width = sum(counts)
    rows = [line.split() for line in body.decode('ascii', errors='replace').splitlines() if line.strip()]
    if len(rows) < points:
        raise RadarFormatError(f'PCD {path}: truncated: {len(rows)} ascii rows for POINTS {points}')
    try:
        values = np.array(rows[:points], dtype=np.float64).reshape(points, width)
    except ValueError:
        raise RadarFormatError(f'PCD {path}: ascii rows must hold {width} numbers each') from None
    out = np.zeros(points, dtype=dtype)
    col = 0
    for name, count in zip(header['FIELDS'], counts):
        if name != '_':
            column = values[:, col:col + count]
            kind = out[name].dtype
            if kind.kind in 'iu':
                info = np.iinfo(kind)
                fits = np.isfinite(column) & (column == np.round(column)) & (column >= info.min) & \
                    (column <= info.max)
                if not fits.all():
                    bad = column[~fits][0]
                    raise RadarFormatError(f'PCD {path}: field {name!r} ({kind}) holds {bad!r}, not an integer in '
                                           f'[{info.min}, {info.max}]')
            with np.errstate(over='ignore'):    # beyond float32: inf, i.e. an invalid return, as in binary data
                out[name] = column.reshape(out[name].shape)
        col += count
    return out


def read_nuscenes_pcd(path, field_map=None, frame_id='radar', drop_invalid=False):
    """
    Read a nuScenes radar sweep (binary PCD v0.7, 18 fields, 43-byte records).

    Returns ``(records, radar)``: the structured array of every field as stored, and RadarPoints with
    ``rcs`` <- rcs, ``vxy`` <- (vx_comp, vy_comp) and ``v_radial`` computed from the position and (vx_comp,
    vy_comp). The stamp comes from the file name's microsecond timestamp when it has one (nuScenes naming).
    """
    records = read_pcd(path)
    match = _NUSCENES_STAMP.search(Path(path).name)
    stamp_ns = int(match.group(1)) * 1000 if match else 0
    radar = radar_from_structured(records, field_map or RadarFieldMap(v_radial=''), frame_id, stamp_ns,
                                  drop_invalid, source=f'nuScenes radar {path}')
    return records, radar


def read_astyx_radar(path, field_map=None, frame_id='radar', stamp_ns=0, drop_invalid=False):
    """
    Read an Astyx HiRes2019 radar file: a header line ``X Y Z V_r Mag``, then one detection per row.

    Returns RadarPoints with ``rcs`` <- Mag and ``v_radial`` <- V_r (m/s), in the radar (= Astyx reference)
    frame. A header-only file is a valid empty sweep.
    """
    raw = _read_bytes(path, 'Astyx radar')
    text = raw.decode('ascii', errors='replace')
    lines = text.splitlines()
    names = lines[0].split()
    if not names or any(_is_number(n) for n in names) or len(set(names)) != len(names):
        raise RadarFormatError(f'Astyx radar {path}: first line must name the columns (X Y Z V_r Mag), got '
                               f'{lines[0][:60]!r}')
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != len(names):
            raise RadarFormatError(f'Astyx radar {path}: line {number} has {len(tokens)} values for '
                                   f'{len(names)} columns {names}')
        rows.append(tokens)
    try:
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    except ValueError:
        bad = next(i for i, r in enumerate(rows) if not all(_is_number(t) for t in r))
        raise RadarFormatError(f'Astyx radar {path}: a row holds a non-numeric value: {" ".join(rows[bad])!r}') \
            from None
    dtype = np.dtype([(n, np.float64) for n in names])
    records = np.zeros(len(rows), dtype=dtype)
    for i, name in enumerate(names):
        records[name] = values[:, i]
    return radar_from_structured(records, field_map, frame_id, stamp_ns, drop_invalid,
                                 source=f'Astyx radar {path}')


def _is_number(token):
    try:
        float(token)
    except ValueError:
        return False
    return True
