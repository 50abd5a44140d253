"""The KITTI-style 4D-radar reader (View-of-Delft layout) on a generated root: geometry, splits, files, consumers."""

import json
import shutil

import numpy as np
import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.core.bags import bag_frames, bag_info
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.data.kitti_radar import KittiRadarReader, read_kitti_calibration
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import DatasetError
from rcdepth_ros.models import save_checkpoint


def test_frames_splits_and_numbers(kitti_radar_fixture):
    root, truth = kitti_radar_fixture
    reader = open_reader('kitti_radar', root)
    assert isinstance(reader, KittiRadarReader) and reader.frame_ids == truth['stems']
    assert open_reader('kitti_radar', root, split='train').frame_ids == truth['splits']['train']
    assert open_reader('kitti_radar', root, split='val', frames='3').frame_ids == ['00003']
    assert reader.select('1-3,5').frame_ids == ['00001', '00002', '00003', '00005']
    assert reader.sample(5).frame_id == '00005' and reader.stamp_ns('00005') - reader.stamp_ns('00000') == 5 * 10 ** 8
    with pytest.raises(DatasetError, match='no frame number 4'):
        reader.select('4')
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        open_reader('kitti_radar', root, split='dev')


@pytest.mark.parametrize('stem', ['00000', '00003'])
def test_points_land_in_the_camera_frame(kitti_radar_fixture, stem):
    """Lidar and radar come back where they were put in the camera frame (00003: KITTI's P2 offset + R0_rect)."""
    root, truth = kitti_radar_fixture
    frame = truth['frames'][stem]
    sample = KittiRadarReader(root).sample(stem)
    assert sample.source == 'kitti_radar' and sample.image.shape == (200, 320, 3)
    np.testing.assert_allclose(sample.intrinsics.K, truth['K'])
    np.testing.assert_allclose(sample.lidar_xyz[:len(frame['lidar_cam'])], frame['lidar_cam'], atol=1e-4)
    np.testing.assert_allclose(sample.radar.xyz, frame['radar_cam'], atol=1e-4)
    np.testing.assert_array_equal(sample.radar.rcs, frame['rcs'])
    np.testing.assert_array_equal(sample.radar.v_radial, frame['v_r_compensated'])
    assert sample.radar.frame_id == sample.intrinsics.frame_id == 'camera_2'
    # Ground truth: the lidar on the wall at its depth; the two points behind the camera are not in it.
    valid = sample.depth_gt > 0
    assert valid.sum() > 150
    np.testing.assert_allclose(sample.depth_gt[valid], frame['depth'], atol=1e-3)
    expected = sparse_depth_image(frame['lidar_cam'], truth['K'], 320, 200)
    np.testing.assert_array_equal(valid, expected > 0)
    radar_depth = sample.radar_image[:, :, sample.radar_channels.index('depth')]
    np.testing.assert_allclose(radar_depth[radar_depth > 0], frame['depth'], atol=1e-3)


def test_options_radar_velocity_and_columns(kitti_radar_fixture, tmp_path):
    root, truth = kitti_radar_fixture
    raw = open_reader('kitti_radar', root, radar_velocity='v_r').sample('00001')
    np.testing.assert_array_equal(raw.radar.v_radial, truth['frames']['00001']['v_r'])
    copy = tmp_path / 'root'
    shutil.copytree(root, copy)
    (copy / 'radar_3frames').mkdir()
    shutil.copytree(copy / 'radar' / 'training', copy / 'radar_3frames' / 'training')
    records = np.fromfile(copy / 'radar_3frames/training/velodyne/00002.bin', '<f4').reshape(-1, 7)
    records[:, :3].tofile(copy / 'radar_3frames/training/velodyne/00002.bin')
    three = open_reader('kitti_radar', copy, radar_folder='radar_3frames', radar_columns=['x', 'y', 'z'])
    sample = three.sample('00002')
    np.testing.assert_allclose(sample.radar.xyz, truth['frames']['00002']['radar_cam'], atol=1e-4)
    assert np.all(sample.radar.rcs == 0)
    with pytest.raises(DatasetError, match='radar_columns must name x, y and z'):
        open_reader('kitti_radar', root, radar_columns=['x', 'y', 'rcs'])


@pytest.mark.parametrize('relative, data, message', [
    ('radar/training/velodyne/00001.bin', b'\x00' * 30, '30 bytes is not a whole number of 7-float32 records'),
    ('lidar/training/velodyne/00001.bin', None, 'lidar .*00001.bin .*file not found'),
    ('lidar/training/calib/00001.txt', b'P2: 1 2 3\n', 'P2 needs 12 numbers, got 3'),
    ('radar/training/calib/00001.txt', b'P2: ' + b'0 ' * 12 + b'\nTr_velo_to_cam: ' + b'1 ' * 12,
     'P2 has no usable focal lengths'),
    ('lidar/training/calib/00001.txt', b'P2 1 2 3\n', 'line 1 is not "KEY: numbers"'),
    ('lidar/training/image_2/00001.jpg', b'\xff\xd8\xff\xe0 truncated', 'truncated JPEG'),
])
def test_bad_files_name_the_file_and_the_frame(kitti_radar_fixture, tmp_path, relative, data, message):
    root, _ = kitti_radar_fixture
    copy = tmp_path / 'root'
    shutil.copytree(root, copy)
    if data is None:
        (copy / relative).unlink()
    else:
        (copy / relative).write_bytes(data)
    reader = KittiRadarReader(copy)
    with pytest.raises(DatasetError, match=message):
        reader.sample('00001')
    kept = list(reader.iterate(on_error='skip'))
    assert len(kept) == 4 and [s.frame_id for s in reader.skipped] == ['00001']
    with pytest.raises(DatasetError, match='folder lidar/training not found'):
        KittiRadarReader(tmp_path)


def test_calibration_aliases(tmp_path):
    path = tmp_path / 'c.txt'
    path.write_text('P2: ' + ' '.join(['1'] * 12) + '\nR_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_cam: ' +
                    ' '.join(['0'] * 12))
    assert sorted(read_kitti_calibration(path)) == ['P2', 'R0_rect', 'Tr_velo_to_cam']


def test_make_bag_eval_and_the_training_dataset_take_it(kitti_radar_fixture, tmp_path, tiny_student, capsys):
    root, truth = kitti_radar_fixture
    out = tmp_path / 'bag'
    assert main(['make-bag', '--source', 'kitti_radar', '--root', str(root), '--frames', '0-2', str(out)]) == 0
    assert bag_info(out).topics['/camera/image'].count == 3
    frames = list(bag_frames(out))
    np.testing.assert_allclose(frames[1].radar_points().xyz, truth['frames']['00001']['radar_cam'], atol=1e-3)
    capsys.readouterr()
    checkpoint = str(save_checkpoint(tmp_path / 'tiny', *tiny_student))
    assert main(['eval', '--dataset', 'kitti_radar', '--root', str(root), '--split', 'val', '--model', checkpoint,
                 '--device', 'cpu', '--out', str(tmp_path / 'eval')]) == 0
    assert json.loads(capsys.readouterr().out)['frames'] == 2
    torch = pytest.importorskip('torch')
    from rcdepth_ros.data.dataset import RadarCameraDataset
    _, input_cfg, _ = tiny_student
    item = RadarCameraDataset(open_reader('kitti_radar', root, split='train'), input_cfg)[0]
    assert isinstance(item['image'], torch.Tensor) and item['source'] == 'kitti_radar'
    assert (item['depth_gt'] > 0).sum() > 10
