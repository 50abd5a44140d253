"""
Fuzz the radar file parsers (nuScenes .pcd, Astyx radar text, the KITTI-style radar set's calib and .bin files).

Any header, size and bytes give points or the package's error, never another exception.

Files are built from a PCD header whose FIELDS / SIZE / TYPE / COUNT / WIDTH / HEIGHT / POINTS / DATA lines are
drawn (sometimes consistent, sometimes not), a body of arbitrary or fitting bytes, and random byte edits; the Astyx
text from column names and rows of numbers and junk.
"""

import os
import tempfile

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from rcdepth_ros.core.messages.radar import RadarFieldMap
from rcdepth_ros.data.radar_files import read_astyx_radar, read_nuscenes_pcd, read_pcd
from rcdepth_ros.errors import RcdepthError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])
PCD_TYPES = [('F', 4), ('F', 8), ('I', 1), ('I', 2), ('I', 4), ('I', 8), ('U', 1), ('U', 2), ('U', 4), ('U', 8)]
token = st.one_of(st.integers(-3, 70).map(str), st.integers(-10 ** 20, 10 ** 20).map(str),
                  st.sampled_from(['F', 'I', 'U', 'x', '_', 'nan', '-', '']),
                  st.text(alphabet='abcxyz019_ .-\t', max_size=5))


def _write(raw):
    handle, path = tempfile.mkstemp(suffix='__1532402927664178.pcd')
    with os.fdopen(handle, 'wb') as out:
        out.write(raw)
    return path


def _parse(call, raw, *args, **kwargs):
    """Write ``raw`` to a file and parse it; return the result or None for the package's error."""
    path = _write(raw)
    try:
        return call(path, *args, **kwargs)
    except RcdepthError as exc:
        text = str(exc)
        assert text and '\n' not in text, f'not one clear line: {text!r}'
        return None
    finally:
        os.unlink(path)


@st.composite
def pcd_files(draw):
    n = draw(st.integers(0, 5))
    names = draw(st.lists(st.sampled_from(['x', 'y', 'z', 'rcs', 'vx_comp', 'vy_comp', '_', 'id']), min_size=n,
                          max_size=n))
    types = [draw(st.sampled_from(PCD_TYPES)) for _ in range(n)]
    counts = [draw(st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2 ** 40))) for _ in range(n)]
    points = draw(st.one_of(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2 ** 62)))
    lines = {
        'VERSION': ['0.7'], 'FIELDS': names, 'SIZE': [str(s) for _, s in types], 'TYPE': [t for t, _ in types],
        'COUNT': [str(c) for c in counts], 'WIDTH': [str(points)], 'HEIGHT': ['1'], 'VIEWPOINT': ['0'] * 7,
        'POINTS': [str(points)], 'DATA': [draw(st.sampled_from(['binary', 'ascii', 'binary_compressed']))]}
    for key in draw(st.lists(st.sampled_from(sorted(lines)), max_size=3)):
        lines[key] = draw(st.lists(token, max_size=4))
    order = draw(st.permutations(sorted(lines))) if draw(st.booleans()) else list(lines)
    dropped = set(draw(st.lists(st.sampled_from(sorted(lines)), max_size=1)))
    header = ''.join(f'{key} {" ".join(lines[key])}\n' for key in order if key not in dropped and key != 'DATA')
    if 'DATA' not in dropped:
        header += f'DATA {" ".join(lines["DATA"])}\n'
    record = sum(s * c for (_, s), c in zip(types, counts))
    if lines['DATA'] == ['ascii'] and sum(counts) < 10 and points < 10:
        value = st.one_of(st.floats(allow_nan=True).map(repr), st.integers(-2 ** 70, 2 ** 70).map(str), token)
        row = st.lists(value, min_size=sum(counts), max_size=sum(counts)).map(' '.join)
        body = '\n'.join(draw(st.lists(row, min_size=points, max_size=points + 1))).encode()
    elif draw(st.booleans()) and record * points < 1000:
        body = draw(st.binary(min_size=record * points, max_size=record * points + 8))
    else:
        body = draw(st.binary(max_size=200))
    raw = bytearray(header.encode() + body)
    for position, value in draw(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=3)):
        if raw:
            raw[position % len(raw)] = value
    return bytes(raw)


@pytest.mark.filterwarnings('error')    # a value cast with a warning is silently wrong
@FUZZ
@given(raw=st.one_of(pcd_files(), st.binary(max_size=300)))
def test_pcd_parsers_raise_only_radar_format_errors(raw):
    records = _parse(read_pcd, raw)
    if records is not None:
        assert records.ndim == 1 and records.dtype.names is not None
    result = _parse(read_nuscenes_pcd, raw)
    if result is not None:
        records, radar = result
        assert len(radar) == len(records) and radar.xyz.shape == (len(records), 3)
        assert radar.stamp_ns == 1532402927664178 * 1000
    _parse(read_nuscenes_pcd, raw, RadarFieldMap(rcs='rcs', vx='vx_comp', vy='vy_comp'), drop_invalid=True)


@st.composite
def astyx_files(draw):
    names = draw(st.one_of(st.just(['X', 'Y', 'Z', 'V_r', 'Mag']),
                           st.lists(st.one_of(st.sampled_from(['X', 'Y', 'Z', 'x', 'V_r', 'Mag', '1', 'nan']),
                                              token), max_size=6)))
    number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10 ** 30, 10 ** 30)
                       .map(str), token)
    rows = draw(st.lists(st.lists(number, min_size=len(names), max_size=len(names) + draw(st.integers(0, 1))),
                         max_size=6))
    newline = draw(st.sampled_from(['\n', '\r\n', '\r']))
    text = newline.join([' '.join(names)] + [' '.join(r) for r in rows])
    raw = bytearray(text.encode('utf-8'))
    for position, value in draw(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=2)):
        if raw:
            raw[position % len(raw)] = value
    return bytes(raw)


@pytest.mark.filterwarnings('error')
@FUZZ
@given(raw=st.one_of(astyx_files(), st.binary(max_size=200)))
def test_astyx_radar_parser_raises_only_radar_format_errors(raw):
    radar = _parse(read_astyx_radar, raw)
    if radar is not None:
        assert radar.xyz.shape == (len(radar), 3) and radar.xyz.dtype == np.float32
    _parse(read_astyx_radar, raw, RadarFieldMap(rcs='Mag', v_radial='V_r'), drop_invalid=True)


@st.composite
def kitti_calibrations(draw):
    key = st.sampled_from(['P2', 'R0_rect', 'Tr_velo_to_cam', 'R_rect', 'Tr_velo_cam', 'P0', 'x'])
    number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 900).map(str),
                       token)
    lines = draw(st.lists(st.tuples(key, st.sampled_from([': ', ' ', ':']), st.lists(number, max_size=13)),
                          max_size=5))
    return '\n'.join(k + sep + ' '.join(values) for k, sep, values in lines).encode()


@pytest.mark.filterwarnings('error')
@FUZZ
@given(raw=st.one_of(kitti_calibrations(), st.binary(max_size=200)), columns=st.integers(1, 8))
def test_kitti_radar_parsers_raise_only_dataset_errors(raw, columns):
    from rcdepth_ros.data.kitti_radar import camera_calibration, read_float32_records, read_kitti_calibration
    calib = _parse(read_kitti_calibration, raw)
    if calib is not None:
        try:
            K, T = camera_calibration(calib, 'fuzz')
        except RcdepthError:
            pass
        else:
            assert np.all(np.isfinite(K)) and np.all(np.isfinite(T))
    records = _parse(read_float32_records, raw, tuple(f'c{i}' for i in range(columns)), 'fuzz')
    if records is not None:
        assert len(records) * 4 * columns == len(raw)
