"""The ZJU-4DRadarCam reader on a generated data root with known depths."""

import cv2
import numpy as np
import pytest

from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.core.geometry.projection import project_points
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.data.zju import nominal_K, ZJU_EPOCH_NS, ZJU_FRAME_PERIOD_NS, ZJUReader
from rcdepth_ros.errors import DatasetError


def test_splits_and_frame_ids(zju_fixture):
    root, truth = zju_fixture
    assert ZJUReader(root).frame_ids == truth['stems']                # full.txt
    for split in ('train', 'val', 'test'):
        assert open_reader('zju', root, split=split).frame_ids == truth['splits'][split]
    assert ZJUReader(root, split='train', frames='1-2').frame_ids == truth['splits']['train'][1:3]
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        ZJUReader(root, split='dev')
    with pytest.raises(DatasetError, match='no split list'):
        ZJUReader(root / 'image')


def test_sample_crop_and_depths(zju_fixture):
    root, truth = zju_fixture
    stem = truth['stems'][2]
    sample = ZJUReader(root).sample(stem)
    first, stop = 240, 540
    assert sample.image.shape == (300, 1280, 3) and sample.image.dtype == np.uint8
    # RGB, cropped rows 240:540 of the PNG.
    full = cv2.cvtColor(cv2.imread(str(root / 'image' / f'{stem}.png')), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(sample.image, full[first:stop])
    K = truth['K'].copy()
    K[1, 2] -= first
    np.testing.assert_allclose(sample.intrinsics.K, K)
    # GT: uint16 / 256, cropped; dense GT from gt_interp.
    np.testing.assert_allclose(sample.depth_gt_dense, truth['depth'][stem][first:stop], atol=1 / 512)
    sparse = sample.depth_gt
    assert np.count_nonzero(sparse) > 0 and np.all(np.isin(np.nonzero(sparse)[0] + first, np.arange(0, 720, 12)))
    assert sample.lidar_xyz is None
    # Radar: projecting the stored camera-frame returns gives back the published pixels and depths.
    uvd = truth['radar'][stem]
    hits = project_points(sample.radar.xyz, sample.intrinsics.K, 1280, 300, min_depth=1e-3)
    inside = (uvd[:, 1] >= first) & (uvd[:, 1] < stop)
    assert len(hits) == inside.sum()
    np.testing.assert_array_equal(hits.u, uvd[hits.index, 0])
    np.testing.assert_array_equal(hits.v + first, uvd[hits.index, 1])
    np.testing.assert_allclose(hits.z, uvd[hits.index, 2], rtol=1e-6)
    # The radar image holds each return's depth where it was published, which matches the dense GT there.
    assert sample.radar_channels == ('depth', 'mask')
    rows, cols = hits.v, hits.u
    np.testing.assert_allclose(sample.radar_image[rows, cols, 0], sample.depth_gt_dense[rows, cols], atol=1 / 256)
    assert sample.stamp_ns == ZJU_EPOCH_NS + 2 * ZJU_FRAME_PERIOD_NS
    assert sample.frames['camera'] == sample.radar.frame_id


def test_model_input_radar_lands_on_the_wall_whatever_k(zju_fixture):
    """Radar pixels at model resolution do not depend on the assumed K (back-projection and projection cancel)."""
    root, truth = zju_fixture
    stem = truth['stems'][0]
    cfg = InputConfig(height=96, width=416, crop='bottom', radar_channels=('depth', 'mask'))
    model_inputs = []
    for K in (None, nominal_K(1280, 720, 90.0)):
        sample = ZJUReader(root, intrinsics=K).sample(stem)
        model_inputs.append(prepare_model_input(sample.image, sample.radar, sample.intrinsics.K, cfg))
    np.testing.assert_array_equal(model_inputs[0].radar_raw[..., 1], model_inputs[1].radar_raw[..., 1])
    np.testing.assert_allclose(model_inputs[0].radar_raw[..., 0], model_inputs[1].radar_raw[..., 0], rtol=1e-5)
    wall = model_inputs[0].radar_raw[..., 0]
    assert np.isclose(wall[wall > 0], truth['wall_depth'][stem], atol=0.01).sum() >= 5


def test_full_frames_and_intrinsics_file(zju_fixture, tmp_path):
    root, truth = zju_fixture
    sample = ZJUReader(root, crop_rows=None, radar_image=False).sample(truth['stems'][0])
    assert sample.image.shape == (720, 1280, 3) and sample.radar_image is None
    np.testing.assert_allclose(sample.intrinsics.K, truth['K'])
    k_file = tmp_path / 'K.txt'
    k_file.write_text('1000 0 640\n0 1000 360\n0 0 1\n')
    assert ZJUReader(root, intrinsics=k_file).sample(truth['stems'][0]).intrinsics.K[0, 0] == 1000
    k_file.write_text('1 2 3')
    with pytest.raises(DatasetError, match='expected 9 numbers'):
        ZJUReader(root, intrinsics=k_file)


@pytest.fixture
def zju_copy(zju_fixture, tmp_path):
    import shutil
    root, truth = zju_fixture
    shutil.copytree(root, tmp_path / 'data')
    return tmp_path, truth


@pytest.mark.parametrize('relative, data, message', [
    ('image/000001.png', b'', 'empty file'),
    ('image/000001.png', b'\x89PNG\r\n\x1a\n garbage', 'corrupt or not an image'),
    ('radar/000001.npy', b'not numpy', 'not a readable .npy'),
    ('gt/000001.png', None, 'file not found'),
])
def test_bad_files(zju_copy, relative, data, message):
    root, truth = zju_copy
    path = root / 'data' / relative
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)
    reader = ZJUReader(root)                            # finds root/data
    with pytest.raises(DatasetError, match=message) as info:
        reader.sample('000001')
    assert '000001' in str(info.value) and relative.split('/')[0] in str(info.value)
    assert [s.frame_id for s in reader.iterate(on_error='skip')] == [s for s in truth['stems'] if s != '000001']
    assert [s.frame_id for s in reader.skipped] == ['000001']


def test_bad_radar_shape_and_gt_encoding(zju_copy):
    root, truth = zju_copy
    np.save(root / 'data' / 'radar' / '000002.npy', np.zeros((4, 2)))
    cv2.imwrite(str(root / 'data' / 'gt' / '000003.png'), np.zeros((720, 1280), np.uint8))
    reader = ZJUReader(root)
    with pytest.raises(DatasetError, match=r'expected an \(N, 3\) numeric array'):
        reader.sample('000002')
    with pytest.raises(DatasetError, match='expected a single-channel uint16 PNG'):
        reader.sample('000003')
    with pytest.raises(DatasetError, match="frame 'nope' is not one of the 6 frames"):
        reader.sample('nope')
