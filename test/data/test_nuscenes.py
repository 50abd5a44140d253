"""The nuScenes reader on a generated data root that the real nuscenes-devkit loads."""

import json
import shutil

import numpy as np
import pytest

from rcdepth_ros.core.geometry.projection import project_points, sparse_depth_image
from rcdepth_ros.core.geometry.transforms import transform_points
from rcdepth_ros.data.boxes import Box3D
from rcdepth_ros.data.nuscenes import NUSCENES_RADAR_CHANNELS, NuScenesReader, read_nuscenes_lidar
from rcdepth_ros.data.radar_files import read_nuscenes_pcd
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import DatasetError

pytest.importorskip('nuscenes')


@pytest.fixture(scope='module')
def builder(fixture_builders):
    return fixture_builders('nuscenes_fixture')


@pytest.fixture(scope='module')
def reader(nuscenes_fixture):
    root, _ = nuscenes_fixture
    return NuScenesReader(root)


def _scene_of(truth, token):
    return next(s for s in truth['scenes'].values() if token in s['samples'])


def _to_start(points_cam, sample, scene):
    """Move camera-frame points into the scene's start frame (through the sample's ego pose)."""
    return transform_points(points_cam, np.linalg.inv(scene['T_world_from_start']) @ sample.ego_pose)


def test_devkit_loads_the_fixture_and_splits_select_scenes(nuscenes_fixture, reader):
    root, truth = nuscenes_fixture
    from nuscenes.nuscenes import NuScenes
    nusc = NuScenes(version='v1.0-trainval', dataroot=str(root), verbose=False)
    assert len(nusc.sample) == 9 and len(nusc.scene) == 3
    expected = [t for name in ('scene-0061', 'scene-0103', 'scene-0077') for t in truth['scenes'][name]['samples']]
    assert reader.frame_ids == expected
    for split, scene in (('train', 'scene-0061'), ('val', 'scene-0103'), ('test', 'scene-0077'),
                         ('mini_train', 'scene-0061'), ('mini_val', 'scene-0103')):
        assert open_reader('nuscenes', root, split=split).frame_ids == truth['scenes'][scene]['samples'], split
    assert NuScenesReader(root, split='val', frames='1-2').frame_ids == truth['scenes']['scene-0103']['samples'][1:]
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        NuScenesReader(root, split='dev')
    with pytest.raises(DatasetError, match='table folder v1.0-mini not found'):
        NuScenesReader(root, version='v1.0-mini')


def test_sample_image_calibration_and_stamps(nuscenes_fixture, reader, builder):
    root, truth = nuscenes_fixture
    token = reader.frame_ids[1]
    sample = reader.sample(token)
    scene = _scene_of(truth, token)
    import cv2
    assert sample.image.shape == (900, 1600, 3)
    np.testing.assert_array_equal(sample.image, cv2.imread(sample.image_path)[..., ::-1])
    np.testing.assert_allclose(sample.intrinsics.K, truth['K'])
    assert sample.frames == {'camera': 'cam_front', 'radar': 'radar_front', 'lidar': 'lidar_top', 'world': 'map'}
    t_cam = scene['camera_times'][token]
    assert sample.stamp_ns == sample.stamps_ns['camera'] == 1_533_151_600_000_000_000 + round(t_cam * 1e9)
    assert sample.stamps_ns['lidar'] == sample.stamp_ns - 12_000_000              # camera fires 12 ms later
    cam, radar, lidar = (builder.sensor_calibration(c) for c in ('CAM_FRONT', 'RADAR_FRONT', 'LIDAR_TOP'))
    np.testing.assert_allclose(sample.extrinsics['radar'], np.linalg.inv(cam) @ radar, atol=1e-9)
    np.testing.assert_allclose(sample.extrinsics['lidar'], np.linalg.inv(cam) @ lidar, atol=1e-9)
    T_world_from_cam = scene['T_world_from_start'] @ builder.ego_in_start(t_cam) @ cam
    np.testing.assert_allclose(sample.ego_pose, T_world_from_cam, atol=1e-6)
    np.testing.assert_allclose(sample.sensor_poses['camera'], T_world_from_cam, atol=1e-6)


def test_radar_returns_land_on_the_world_points_at_the_image_time(nuscenes_fixture, reader, builder):
    root, truth = nuscenes_fixture
    token = reader.frame_ids[4]
    sample = reader.sample(token)
    scene = _scene_of(truth, token)
    radar_sd = reader.nusc.get('sample_data', reader.nusc.get('sample', token)['data']['RADAR_FRONT'])
    records, _ = read_nuscenes_pcd(root / radar_sd['filename'])
    assert len(sample.radar) == len(records)                   # radar_filter='none' keeps every return
    start = _to_start(sample.radar.xyz, sample, scene)
    static = records['id'] < builder.MOVING_ID_BASE
    # Static returns sit exactly on their world points although radar and camera fire 7 ms apart.
    np.testing.assert_allclose(start[static], truth['static_start'][records['id'][static]], atol=2e-3)
    # Moving returns sit on the moving car at the RADAR time (its own motion is not compensated, as on a real car).
    t_radar = (radar_sd['timestamp'] - reader.nusc.get('sample', scene['samples'][0])['timestamp']) * 1e-6
    expected = builder.moving_points_start(t_radar)[::9][records['id'][~static] - builder.MOVING_ID_BASE]
    np.testing.assert_allclose(start[~static], expected, atol=2e-3)
    # Radar channels: depth, RCS, vx, vy (= vx_comp, vy_comp as stored), mask.
    assert sample.radar_channels == NUSCENES_RADAR_CHANNELS
    np.testing.assert_array_equal(sample.radar.vxy, np.stack([records['vx_comp'], records['vy_comp']], axis=1))
    hits = project_points(sample.radar.xyz, sample.intrinsics.K, 1600, 900)
    moving_hit = next(i for i, j in enumerate(hits.index) if not static[j])
    pixel = sample.radar_image[hits.v[moving_hit], hits.u[moving_hit]]
    assert pixel[2] == pytest.approx(records['vx_comp'][hits.index[moving_hit]], abs=1e-5) and pixel[2] > 7
    assert pixel[1] == pytest.approx(7.0) and pixel[4] == 1.0


def test_lidar_matches_the_devkit_chain_and_the_world(nuscenes_fixture, reader, builder):
    root, truth = nuscenes_fixture
    from nuscenes.utils.data_classes import LidarPointCloud
    from pyquaternion import Quaternion
    token = reader.frame_ids[7]
    sample = reader.sample(token)
    nusc = reader.nusc
    record = nusc.get('sample', token)
    lidar_sd, cam_sd = (nusc.get('sample_data', record['data'][c]) for c in ('LIDAR_TOP', 'CAM_FRONT'))
    # The devkit's own chain (as in NuScenesExplorer.map_pointcloud_to_image).
    pc = LidarPointCloud.from_file(str(root / lidar_sd['filename']))
    for table, sd, inverse in (('calibrated_sensor', lidar_sd, False), ('ego_pose', lidar_sd, False),
                               ('ego_pose', cam_sd, True), ('calibrated_sensor', cam_sd, True)):
        rec = nusc.get(table, sd['calibrated_sensor_token' if table == 'calibrated_sensor' else 'ego_pose_token'])
        if inverse:
            pc.translate(-np.array(rec['translation']))
            pc.rotate(Quaternion(rec['rotation']).rotation_matrix.T)
        else:
            pc.rotate(Quaternion(rec['rotation']).rotation_matrix)
            pc.translate(np.array(rec['translation']))
    np.testing.assert_allclose(sample.lidar_xyz, pc.points[:3].T, atol=1e-3)
    depth = sparse_depth_image(sample.lidar_xyz, sample.intrinsics.K, 1600, 900)
    np.testing.assert_array_equal(sample.depth_gt, depth)
    # And with the world: every static lidar point lands on its world point (intensity = its index).
    raw = read_nuscenes_lidar(root / lidar_sd['filename'])
    static = raw[:, 3] >= 0
    start = _to_start(sample.lidar_xyz, sample, _scene_of(truth, token))
    np.testing.assert_allclose(start[static], truth['static_start'][raw[static, 3].astype(int)], atol=2e-3)


def test_accumulated_gt_keeps_static_points_and_drops_moving_ones_from_other_sweeps(nuscenes_fixture, builder):
    root, truth = nuscenes_fixture
    reader = NuScenesReader(root, gt_sweeps=3)
    token = reader.frame_ids[1]                         # key sweep 5 of 11: three sweeps on each side exist
    scene = _scene_of(truth, token)
    nusc = reader.nusc
    key_sd = nusc.get('sample_data', nusc.get('sample', token)['data']['LIDAR_TOP'])
    sweeps, counts = [key_sd], {}
    for direction in ('prev', 'next'):
        current = key_sd
        for _ in range(3):
            current = nusc.get('sample_data', current[direction])
            sweeps.append(current)
    t0 = nusc.get('sample', scene['samples'][0])['timestamp']
    for sd in sweeps:
        raw = read_nuscenes_lidar(root / sd['filename'])
        static = raw[:, 3] >= 0
        counts[sd['token']] = [int((raw[:, 3] < 0).sum())]
        for margin in (reader.box_margin + 0.01, reader.box_margin - 0.01):   # bounds: points on the box faces
            kept = static.copy()
            if sd is not key_sd:
                # Static points inside the moving car's box grown by box_margin are removed with it.
                t = (sd['timestamp'] - t0) * 1e-6
                box = Box3D(builder.moving_center_start(t), builder.MOVING['lwh'], np.eye(3))
                kept &= ~box.contains(truth['static_start'][np.maximum(raw[:, 3], 0).astype(int)], margin)
            counts[sd['token']].append(int(kept.sum()))
    points = reader.accumulated_lidar(token)
    static_low, static_high = (sum(c[i] for c in counts.values()) for i in (1, 2))
    sample = reader.sample(token)
    start = _to_start(points, sample, scene)
    from scipy.spatial import cKDTree
    distance, _ = cKDTree(truth['static_start']).query(start)
    on_static = distance < 2e-3
    assert static_low <= on_static.sum() <= static_high and static_high - static_low < 100
    assert (~on_static).sum() == counts[key_sd['token']][0]
    # What is left is the moving car at the key lidar time, nothing smeared along its path.
    t_key = scene['lidar_key_times'][token]
    car = cKDTree(builder.moving_points_start(t_key)).query(start[~on_static])[0]
    assert np.all(car < 2e-3)
    # The dense map is the accumulated points, projected.
    np.testing.assert_array_equal(sample.depth_gt_dense,
                                  sparse_depth_image(points, sample.intrinsics.K, 1600, 900))
    assert np.count_nonzero(sample.depth_gt_dense) > 1.8 * np.count_nonzero(sample.depth_gt)


def test_without_moving_box_removal_the_car_would_smear(nuscenes_fixture):
    root, _ = nuscenes_fixture
    reader = NuScenesReader(root, gt_sweeps=3)
    token = reader.frame_ids[1]
    with_removal = len(reader.accumulated_lidar(token))
    smeared = NuScenesReader(root, gt_sweeps=3, remove_moving=False).accumulated_lidar(token)
    # Six more sweeps of the moving car, each at another place along its path.
    assert len(smeared) > with_removal + 6 * 500


def test_dense_interpolated_gt(nuscenes_fixture, reader):
    root, _ = nuscenes_fixture
    dense_reader = NuScenesReader(root, gt_sweeps=2, dense_gt=True, dense_window=6)
    sample = dense_reader.sample(reader.frame_ids[1])
    accumulated = sparse_depth_image(dense_reader.accumulated_lidar(sample.frame_id), sample.intrinsics.K,
                                     1600, 900)
    valid = accumulated > 0
    np.testing.assert_array_equal(sample.depth_gt_dense[valid], accumulated[valid])
    assert np.count_nonzero(sample.depth_gt_dense) > 1.5 * np.count_nonzero(accumulated)
    assert sample.depth_gt_dense.max() <= accumulated.max() + 1e-4
    assert np.all(sample.depth_gt_dense[:200] == 0)                 # sky: nothing invented


def test_eval_crop_top_4_rows(nuscenes_fixture, reader):
    root, _ = nuscenes_fixture
    token = reader.frame_ids[0]
    full = reader.sample(token)
    cropped = NuScenesReader(root, crop_top=4).sample(token)
    assert cropped.image.shape == (896, 1600, 3) and cropped.intrinsics.height == 896
    np.testing.assert_array_equal(cropped.image, full.image[4:])
    assert cropped.intrinsics.K[1, 2] == pytest.approx(full.intrinsics.K[1, 2] - 4)
    np.testing.assert_array_equal(cropped.depth_gt, full.depth_gt[4:])
    np.testing.assert_array_equal(cropped.radar_image, full.radar_image[4:])
    assert cropped.image_path is None                    # the pixels are no longer the JPEG's


def test_several_radars_sweeps_and_devkit_filters(nuscenes_fixture, reader):
    root, _ = nuscenes_fixture
    token = reader.frame_ids[2]
    nusc = reader.nusc
    two = NuScenesReader(root, radars=('RADAR_FRONT', 'RADAR_FRONT_LEFT'), radar_sweeps=3).sample(token)
    expected = 0
    for channel in ('RADAR_FRONT', 'RADAR_FRONT_LEFT'):
        sd = nusc.get('sample_data', nusc.get('sample', token)['data'][channel])
        for _ in range(3):
            expected += len(read_nuscenes_pcd(root / sd['filename'])[0])
            sd = nusc.get('sample_data', sd['prev']) if sd['prev'] else None
            if sd is None:
                break
    assert len(two.radar) == expected
    assert set(two.extrinsics) == {'radar', 'radar_front_left', 'lidar'}
    assert two.frames['radar_front_left'] == 'radar_front_left'
    # Devkit filters: the same returns survive as with the devkit's RadarPointCloud defaults.
    from nuscenes.utils.data_classes import RadarPointCloud
    RadarPointCloud.default_filters()
    sd = nusc.get('sample_data', nusc.get('sample', token)['data']['RADAR_FRONT'])
    devkit = RadarPointCloud.from_file(str(root / sd['filename']))
    filtered = NuScenesReader(root, radar_filter='devkit').sample(token)
    assert len(filtered.radar) == devkit.points.shape[1] < len(reader.sample(token).radar)


@pytest.fixture
def nuscenes_copy(nuscenes_fixture, tmp_path):
    root, truth = nuscenes_fixture
    shutil.copytree(root, tmp_path / 'root')
    return tmp_path / 'root', truth


def _file_of(reader, token, channel):
    nusc = reader.nusc
    return reader.root / nusc.get('sample_data', nusc.get('sample', token)['data'][channel])['filename']


@pytest.mark.parametrize('channel, damage, message', [
    ('CAM_FRONT', 'delete', 'file not found'),
    ('CAM_FRONT', 'truncate', 'truncated JPEG'),
    ('RADAR_FRONT', 'halve', 'radar file'),
    ('RADAR_FRONT', 'empty', 'radar file'),
    ('LIDAR_TOP', 'truncate', 'not a whole number of 5 float32 records'),
])
def test_bad_files(nuscenes_copy, channel, damage, message):
    root, _ = nuscenes_copy
    reader = NuScenesReader(root)
    token = reader.frame_ids[3]
    path = _file_of(reader, token, channel)
    if damage == 'delete':
        path.unlink()
    elif damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'halve':
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    else:
        path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match=message) as info:
        reader.sample(token)
    assert token in str(info.value) and path.name in str(info.value)
    assert len(list(reader.iterate(on_error='skip'))) == len(reader) - 1
    assert [s.frame_id for s in reader.skipped] == [token]


def test_camera_without_intrinsics_and_unknown_token(nuscenes_copy):
    root, _ = nuscenes_copy
    table = root / 'v1.0-trainval' / 'calibrated_sensor.json'
    rows = json.loads(table.read_text())
    for row in rows:
        row['camera_intrinsic'] = []
    table.write_text(json.dumps(rows))
    reader = NuScenesReader(root)
    with pytest.raises(DatasetError, match='has no 3x3 camera_intrinsic'):
        reader.sample(reader.frame_ids[0])
    with pytest.raises(DatasetError, match="frame 'f00' is not one of the 9 frames"):
        reader.sample('f00')
    (root / 'v1.0-trainval' / 'sample.json').write_text('[{"token": "x"}]')
    with pytest.raises(DatasetError, match='the devkit cannot load the tables'):
        NuScenesReader(root)
    with pytest.raises(DatasetError, match='unknown radar channel'):
        NuScenesReader(root, radars=('RADAR_TOP',))
