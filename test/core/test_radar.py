"""Radar parsing: field mapping, the nuScenes .pcd and Astyx readers on the real files, bad files."""

import numpy as np
import pytest

from rcdepth_ros.core.messages.radar import radar_from_structured, RadarFieldMap, radial_velocity_from_vxy
from rcdepth_ros.data.radar_files import pcd_dtype, read_astyx_radar, read_nuscenes_pcd, read_pcd
from rcdepth_ros.errors import RadarFormatError, RcdepthError

NUSCENES_FIELDS = ['x', 'y', 'z', 'dyn_prop', 'id', 'rcs', 'vx', 'vy', 'vx_comp', 'vy_comp', 'is_quality_valid',
                   'ambig_state', 'x_rms', 'y_rms', 'invalid_state', 'pdh0', 'vx_rms', 'vy_rms']


def _pcd_files(nuscenes_pcd_dir):
    files = sorted(nuscenes_pcd_dir.glob('*.pcd'))
    assert len(files) == 2, f'expected the two nuScenes radar files in {nuscenes_pcd_dir}, found {files}'
    return files


def test_nuscenes_pcd_real_files_parse_to_125_plausible_points(nuscenes_pcd_dir):
    for path in _pcd_files(nuscenes_pcd_dir):
        records, radar = read_nuscenes_pcd(path)
        assert list(records.dtype.names) == NUSCENES_FIELDS
        assert records.dtype.itemsize == 43
        assert len(records) == 125 and len(radar) == 125
        assert radar.frame_id == 'radar'
        assert radar.stamp_ns == int(path.name.rsplit('__', 1)[1][:-4]) * 1000
        for name in ('xyz', 'rcs', 'v_radial', 'vxy'):
            assert np.all(np.isfinite(getattr(radar, name))), name
        # Continental ARS 408: range up to 250 m, a planar sensor (z == 0), RCS in about [-64, 64] dBsm.
        assert np.all(np.linalg.norm(radar.xyz, axis=1) < 260)
        assert np.all(radar.xyz[:, 2] == 0)
        assert np.all(radar.xyz[:, 0] > 0), 'returns are in front of the sensor'
        assert np.all((radar.rcs > -64) & (radar.rcs < 64))
        assert np.all(np.abs(radar.vxy) < 80) and np.all(np.abs(radar.v_radial) < 80)
        assert np.array_equal(radar.rcs, records['rcs'])
        assert np.array_equal(radar.vxy[:, 0], records['vx_comp'])
        assert np.array_equal(radar.vxy[:, 1], records['vy_comp'])
        # Radial velocity is the compensated velocity along the line of sight.
        xyz = np.stack([records['x'], records['y'], records['z']], 1).astype(np.float64)
        expected = (xyz[:, 0] * records['vx_comp'] + xyz[:, 1] * records['vy_comp']) / np.linalg.norm(xyz, axis=1)
        np.testing.assert_allclose(radar.v_radial, expected, rtol=1e-5, atol=1e-6)
        # Integer state fields hold the documented enumerations.
        assert set(np.unique(records['invalid_state'])) <= set(range(18))
        assert set(np.unique(records['dyn_prop'])) <= set(range(8))
        assert np.all(np.diff(records['id'].astype(int)) >= 0)


def test_nuscenes_pcd_matches_nuscenes_devkit(nuscenes_pcd_dir):
    data_classes = pytest.importorskip('nuscenes.utils.data_classes')
    cloud_cls = data_classes.RadarPointCloud
    for path in _pcd_files(nuscenes_pcd_dir):
        cloud_cls.disable_filters()
        try:
            reference = cloud_cls.from_file(str(path)).points
        finally:
            cloud_cls.default_filters()
        records, _ = read_nuscenes_pcd(path)
        mine = np.stack([records[n].astype(np.float32) for n in records.dtype.names])
        assert np.array_equal(mine, reference)


def test_astyx_radar_real_files(astyx_root):
    files = sorted((astyx_root / 'radar_6455').glob('*.txt'))[:20]
    assert len(files) == 20
    for path in files:
        radar = read_astyx_radar(path)
        rows = np.loadtxt(path, skiprows=1, ndmin=2)
        assert len(radar) == rows.shape[0] > 0
        assert radar.frame_id == 'radar'
        np.testing.assert_allclose(radar.xyz, rows[:, :3], atol=1e-6)
        np.testing.assert_allclose(radar.v_radial, rows[:, 3], atol=1e-6)
        np.testing.assert_allclose(radar.rcs, rows[:, 4], atol=1e-6)
        assert np.all(np.isnan(radar.vxy))
        assert np.all(np.isfinite(radar.xyz)) and np.all(np.linalg.norm(radar.xyz, axis=1) < 300)


def test_astyx_reader_options(tmp_path):
    path = tmp_path / 'r.txt'
    path.write_text('X Y Z V_r Mag\n1 2 3 -0.5 40\nnan 0 0 0 1\n\n')
    radar = read_astyx_radar(path, frame_id='astyx_radar', stamp_ns=7)
    assert len(radar) == 2 and radar.frame_id == 'astyx_radar' and radar.stamp_ns == 7
    assert len(read_astyx_radar(path, drop_invalid=True)) == 1
    header_only = tmp_path / 'h.txt'
    header_only.write_text('X Y Z V_r Mag\n')
    assert len(read_astyx_radar(header_only)) == 0


@pytest.mark.parametrize('content, problem', [
    (b'', 'empty'),
    (b'1 2 3 4 5\n', 'name the columns'),
    (b'X Y Z V_r Mag\n1 2 3\n', 'line 2 has 3 values'),
    (b'X Y Z V_r Mag\n1 2 3 a 5\n', 'non-numeric'),
    (b'A B C\n1 2 3\n', "required field 'x'"),
    (b'X X Z V_r Mag\n1 2 3 4 5\n', 'name the columns'),
])
def test_astyx_bad_files(tmp_path, content, problem):
    path = tmp_path / 'bad.txt'
    path.write_bytes(content)
    with pytest.raises(RadarFormatError, match=problem) as info:
        read_astyx_radar(path)
    assert str(path) in str(info.value)


def test_missing_file_names_it(tmp_path):
    for reader in (read_astyx_radar, read_nuscenes_pcd):
        with pytest.raises(RadarFormatError, match='cannot read') as info:
            reader(tmp_path / 'nope.txt')
        assert 'nope.txt' in str(info.value)


def _pcd_bytes(fields, sizes, types, counts, width, height, points, body, data='binary'):
    header = (f'# .PCD v0.7\nVERSION 0.7\nFIELDS {" ".join(fields)}\nSIZE {" ".join(map(str, sizes))}\n'
              f'TYPE {" ".join(types)}\nCOUNT {" ".join(map(str, counts))}\nWIDTH {width}\nHEIGHT {height}\n'
              f'VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA {data}\n')
    return header.encode() + body


def test_pcd_layouts_padding_count_organized_ascii(tmp_path):
    dtype = pcd_dtype({'FIELDS': ['x', 'y', 'z', '_', 'rgb', 'n'], 'SIZE': ['4', '4', '4', '1', '2', '8'],
                       'TYPE': ['F', 'F', 'F', 'U', 'U', 'I'], 'COUNT': ['1', '1', '1', '3', '2', '1']})
    assert dtype.itemsize == 12 + 3 + 4 + 8 and dtype.names == ('x', 'y', 'z', 'rgb', 'n')
    assert dtype.fields['rgb'][1] == 15 and dtype.fields['rgb'][0].shape == (2,)
    rng = np.random.default_rng(0)
    records = np.zeros(6, dtype)
    for name in ('x', 'y', 'z'):
        records[name] = rng.normal(size=6)
    records['rgb'] = rng.integers(0, 60000, size=(6, 2))
    records['n'] = rng.integers(-2 ** 40, 2 ** 40, size=6)
    path = tmp_path / 'org.pcd'
    path.write_bytes(_pcd_bytes(['x', 'y', 'z', '_', 'rgb', 'n'], [4, 4, 4, 1, 2, 8], 'F F F U U I'.split(),
                                [1, 1, 1, 3, 2, 1], 3, 2, 6, records.tobytes()))
    back = read_pcd(path)
    assert back.dtype == dtype and np.array_equal(back, records)
    radar = radar_from_structured(back)
    np.testing.assert_array_equal(radar.xyz[:, 1], records['y'].astype(np.float32))
    ascii_rows = '\n'.join(' '.join(repr(float(v)) for v in (r['x'], r['y'], r['z'])) + ' 0 0 0 ' +
                           ' '.join(str(int(v)) for v in r['rgb']) + f' {int(r["n"])}' for r in records)
    ascii_path = tmp_path / 'a.pcd'
    ascii_path.write_bytes(_pcd_bytes(['x', 'y', 'z', '_', 'rgb', 'n'], [4, 4, 4, 1, 2, 8],
                                      'F F F U U I'.split(), [1, 1, 1, 3, 2, 1], 6, 1, 6, ascii_rows.encode(),
                                      'ascii'))
    ascii_back = read_pcd(ascii_path)
    np.testing.assert_array_equal(ascii_back['rgb'], records['rgb'])
    np.testing.assert_array_equal(ascii_back['x'], records['x'])


@pytest.mark.parametrize('mutate, problem', [
    (lambda b: b[:-10], 'truncated'),
    (lambda b: b.replace(b'POINTS 2', b'POINTS 3'), 'does not match POINTS'),
    (lambda b: b.replace(b'DATA binary', b'DATA binary_compressed'), 'not supported'),
    (lambda b: b.replace(b'TYPE F F F', b'TYPE F F Q'), 'unsupported TYPE'),
    (lambda b: b.replace(b'SIZE 4 4 4', b'SIZE 4 4'), 'lengths differ'),
    (lambda b: b.replace(b'WIDTH 2', b'WIDTH two'), 'WIDTH must be an integer'),
    (lambda b: b.split(b'DATA')[0], 'before a DATA line'),
    (lambda b: b.replace(b'FIELDS x y z', b'FIELDS x y y'), 'appears twice'),
    (lambda b: b'garbage\n' + b, 'unexpected header line'),
])
def test_pcd_corrupt_files(tmp_path, mutate, problem):
    good = _pcd_bytes(['x', 'y', 'z'], [4, 4, 4], ['F', 'F', 'F'], [1, 1, 1], 2, 1, 2,
                      np.arange(6, dtype='<f4').tobytes())
    assert len(read_pcd(_write(tmp_path / 'good.pcd', good))) == 2
    path = _write(tmp_path / 'bad.pcd', mutate(good))
    with pytest.raises(RadarFormatError, match=problem) as info:
        read_nuscenes_pcd(path)
    assert 'bad.pcd' in str(info.value)


def _write(path, content):
    path.write_bytes(content)
    return path


def test_nuscenes_pcd_truncated_real_file(nuscenes_pcd_dir, tmp_path):
    raw = _pcd_files(nuscenes_pcd_dir)[0].read_bytes()
    data_start = raw.index(b'DATA binary\n') + len(b'DATA binary\n')
    path = _write(tmp_path / 'cut.pcd', raw[:data_start + 43 * 100])
    with pytest.raises(RcdepthError, match='truncated: 125 points of 43 bytes'):
        read_nuscenes_pcd(path)


def test_field_map_resolution_and_overrides():
    names = ['X', 'Y', 'Z', 'doppler', 'RCS', 'vx', 'vy', 'intensity']
    assert RadarFieldMap().resolve(names) == {'x': 'X', 'y': 'Y', 'z': 'Z', 'rcs': 'RCS', 'v_radial': 'doppler',
                                              'vx': 'vx', 'vy': 'vy'}
    assert RadarFieldMap(rcs='intensity', v_radial='').resolve(names)['rcs'] == 'intensity'
    assert 'v_radial' not in RadarFieldMap(v_radial='').resolve(names)
    assert 'vx' not in RadarFieldMap().resolve(['x', 'y', 'z', 'vx'])   # vx alone is no velocity
    with pytest.raises(RadarFormatError, match=r"'power' configured for rcs is missing; fields present"):
        RadarFieldMap(rcs='power').resolve(names)
    with pytest.raises(RadarFormatError, match=r"required field 'z' \(role z\) is missing.*\['x', 'y', 'rcs'\]"):
        RadarFieldMap().resolve(['x', 'y', 'rcs'], source='topic /radar')
    with pytest.raises(RadarFormatError, match='structured'):
        radar_from_structured(np.zeros((3, 3)))


def test_radar_from_structured_velocity_roles():
    dtype = np.dtype([('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('vx_comp', 'f4'), ('vy_comp', 'f4')])
    rec = np.array([(3, 4, 0, 3, 4), (0, 0, 0, 1, 1), (0, 10, 0, 5, 0)], dtype)
    radar = radar_from_structured(rec)
    np.testing.assert_allclose(radar.v_radial, [5.0, 0.0, 0.0])
    np.testing.assert_allclose(radar.vxy, [[3, 4], [1, 1], [5, 0]])
    assert np.all(radar.rcs == 0)
    empty = radar_from_structured(rec[:0])
    assert len(empty) == 0 and empty.xyz.shape == (0, 3) and empty.vxy.shape == (0, 2)
    subarray = np.zeros(2, [('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('rcs', 'f4', (2,))])
    with pytest.raises(RadarFormatError, match="'rcs' has 2 elements"):
        radar_from_structured(subarray)


def test_radial_velocity_moving_away_is_positive():
    v = radial_velocity_from_vxy(np.array([[10.0, 0, 0], [-10.0, 0, 0], [0, 5, 0]]),
                                 np.array([[2.0, 0], [2.0, 0], [0, -1.0]]))
    np.testing.assert_allclose(v, [2.0, -2.0, -1.0])
