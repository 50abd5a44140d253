"""RadarCameraDataset: same preprocessing as inference, consistent augmentation, the cache."""

import dataclasses

import numpy as np
import pytest

from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.data.astyx import AstyxReader
from rcdepth_ros.data.augment import AugmentConfig
from rcdepth_ros.data.cache import PreprocessCache, reader_identity
from rcdepth_ros.data.dataset import RadarCameraDataset
from rcdepth_ros.data.nuscenes import NuScenesReader
from rcdepth_ros.data.zju import ZJUReader
from rcdepth_ros.errors import DatasetError

torch = pytest.importorskip('torch')
CFG = InputConfig(height=96, width=320, radar_channels=('depth', 'rcs', 'vx', 'vy', 'mask'))


def _assert_items_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], torch.Tensor):
            assert torch.equal(a[name], b[name]), name
        else:
            assert a[name] == b[name], name


def test_item_equals_the_inference_preprocessing_astyx(astyx_root):
    reader = AstyxReader(astyx_root, radar_image=False, boxes=False).select('0,200')
    cfg = InputConfig()
    dataset = RadarCameraDataset(reader, cfg)
    assert len(dataset) == 2
    for index in range(2):
        item = dataset[index]
        sample = reader[index]
        expected = prepare_model_input(sample.image, sample.radar, sample.intrinsics.K, cfg)
        np.testing.assert_array_equal(item['image'].numpy(), expected.image)
        np.testing.assert_array_equal(item['radar'].numpy(), expected.radar)
        np.testing.assert_array_equal(item['radar_raw'].numpy(), expected.radar_raw.transpose(2, 0, 1))
        np.testing.assert_allclose(item['K'].numpy(), expected.K, rtol=1e-6)
        lidar = sparse_depth_image(sample.lidar_xyz, expected.K, cfg.width, cfg.height)
        np.testing.assert_array_equal(item['depth_gt'][0].numpy(), lidar)
        assert item['image'].shape == (3, 192, 640) and item['radar'].shape == (4, 192, 640)
        assert item['depth_gt'].shape == (1, 192, 640) and item['depth_gt'].dtype == torch.float32
        assert not item['has_dense'] and not item['depth_gt_dense'].any()
        assert item['frame_id'] == sample.frame_id and item['source'] == 'astyx'
        assert 500 < int((item['depth_gt'] > 0).sum()) < 3000


def test_zju_items_gt_from_depth_images(zju_fixture):
    root, truth = zju_fixture
    dataset = RadarCameraDataset(ZJUReader(root), CFG)
    item = dataset[0]
    assert item['has_dense'] and item['depth_gt_dense'].shape == (1, 96, 320)
    sparse, dense = item['depth_gt'][0].numpy(), item['depth_gt_dense'][0].numpy()
    valid = sparse > 0
    assert valid.sum() > 100
    # Sparse and dense GT, resampled separately, agree where both exist (within the road's depth gradient).
    both = valid & (dense > 0)
    assert np.median(np.abs(sparse[both] - dense[both]) / dense[both]) < 0.02


def _wall_consistency(item, wall_depth):
    """Return (fraction of radar wall returns on wall-coloured pixels, fraction whose dense GT is the wall)."""
    raw = item['radar_raw'].numpy()
    on_wall = np.isclose(raw[0], wall_depth, atol=0.02) & (raw[-1] > 0)
    v, u = np.nonzero(on_wall)
    image = item['image'].numpy()
    mean, std = np.array(CFG.image_mean)[:, None], np.array(CFG.image_std)[:, None]
    rgb = (image[:, v, u] * std + mean) * 255.0
    red = (rgb[0] > rgb[1] + 50) & (rgb[0] > rgb[2] + 50)
    dense = item['depth_gt_dense'][0].numpy()[v, u]
    return len(v), red.mean(), np.isclose(dense, wall_depth, atol=0.02).mean()


def test_augmented_items_keep_image_radar_and_gt_together(zju_fixture):
    """On the ZJU fixture the wall is red and at a known depth: after crop, zoom and flip, radar still hits it."""
    root, truth = zju_fixture
    reader = ZJUReader(root, crop_rows=None)
    dataset = RadarCameraDataset(reader, CFG, augment=AugmentConfig(seed=3, zoom=(1.0, 1.6)))
    flips = 0
    counted = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            flips += int(item['flipped'])
            n, red, gt = _wall_consistency(item, truth['wall_depth'][reader.frame_ids[index]])
            if n:
                counted += n
                assert red > 0.9 and gt > 0.9, (epoch, index, n, red, gt)
    assert 0 < flips < 18 and counted > 50


def test_augmented_nuscenes_radar_on_the_red_parked_car(nuscenes_fixture):
    root, _ = nuscenes_fixture
    reader = NuScenesReader(root, split='train', boxes=False)
    dataset = RadarCameraDataset(reader, CFG, augment=AugmentConfig(seed=1, flip_probability=1.0))
    item = dataset[1]
    assert item['flipped']
    raw = item['radar_raw'].numpy()
    rcs_channel = CFG.radar_channels.index('rcs')
    parked = (raw[rcs_channel] == 12.5) & (raw[0] < 30)          # parked-car returns have RCS 12.5, near
    v, u = np.nonzero(parked)
    assert len(v) > 10
    image = item['image'].numpy()
    rgb = (image[:, v, u] * np.array(CFG.image_std)[:, None] + np.array(CFG.image_mean)[:, None]) * 255
    assert ((rgb[0] > rgb[1] + 60) & (rgb[0] > rgb[2] + 60)).mean() > 0.9
    # The parked car is on the right in the world; flipped, its returns are on the left half.
    assert np.median(u) < CFG.width / 2
    # Lidar GT next to each radar return has the same depth (both sample the same car surface).
    depth = item['depth_gt'][0].numpy()
    close = []
    for row, col in zip(v, u):
        window = depth[max(row - 2, 0):row + 3, max(col - 2, 0):col + 3]
        if (window > 0).any():
            close.append(np.min(np.abs(window[window > 0] - raw[0, row, col])) < 0.5)
    assert len(close) > 5 and np.mean(close) > 0.8


def test_determinism_independent_of_access_order_and_workers(zju_fixture):
    root, _ = zju_fixture
    reader = ZJUReader(root)

    def make():
        return RadarCameraDataset(reader, CFG, augment=AugmentConfig(seed=11))

    forward = [make()[i] for i in range(4)]
    backward = make()
    backward_items = {i: backward[i] for i in (3, 2, 1, 0)}
    for i in range(4):
        _assert_items_equal(forward[i], backward_items[i])
    loader = torch.utils.data.DataLoader(make(), batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    for b, batch in enumerate(batches[:2]):
        for j in range(2):
            assert torch.equal(batch['image'][j], forward[2 * b + j]['image'])
            assert torch.equal(batch['depth_gt'][j], forward[2 * b + j]['depth_gt'])
    assert batches[0]['frame_id'] == reader.frame_ids[:2]


def test_cache_gives_identical_items_and_hits(zju_fixture, nuscenes_fixture, tmp_path):
    for root, cls in ((zju_fixture[0], ZJUReader), (nuscenes_fixture[0], NuScenesReader)):
        reader = cls(root).select('0-2')
        cache = PreprocessCache(tmp_path / 'cache')
        plain = RadarCameraDataset(reader, CFG, augment=AugmentConfig(seed=5))
        cached = RadarCameraDataset(reader, CFG, augment=AugmentConfig(seed=5), cache=cache)
        for index in range(3):
            _assert_items_equal(plain[index], cached[index])          # miss: built and stored
            _assert_items_equal(plain[index], cached[index])          # hit
        assert cache.stats() == {'hits': 3, 'misses': 3, 'writes': 3, 'rebuilt': 0}
        files = sorted((tmp_path / 'cache' / reader.source).iterdir())
        assert len(files) == 3 and all(f.suffix == '.npz' for f in files)   # no partial files left


def test_cache_key_and_corrupt_entries(zju_fixture, tmp_path):
    root, _ = zju_fixture
    cache = PreprocessCache(tmp_path)
    reader = ZJUReader(root)
    key = cache.key(reader, '000001', 320)
    assert key == cache.key(ZJUReader(root), '000001', 320)
    assert key != cache.key(ZJUReader(root, split='train'), '000001', 320)     # synthetic splits differ
    assert key != cache.key(reader, '000001', 640)
    assert key != cache.key(reader, '000002', 320)
    assert key != cache.key(ZJUReader(root, crop_rows=None), '000001', 320)
    identity = reader_identity(ZJUReader(root, crop_rows=None))
    assert identity['crop_rows'] is None and identity['source'] == 'zju' and identity['split'] == 'full'
    dataset = RadarCameraDataset(reader, CFG, cache=cache)
    first = dataset[1]
    assert dataset.reader.radar_image is False and reader.radar_image is True   # a copy skips the 20 MB image
    path = cache.path('zju', cache.key(dataset.reader, reader.frame_ids[1], CFG.width))
    path.write_bytes(b'garbage')
    _assert_items_equal(first, dataset[1])
    assert cache.rebuilt == 1 and path.stat().st_size > 1000


def test_cache_write_failure_and_bad_index(zju_fixture, tmp_path):
    root, _ = zju_fixture
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    dataset = RadarCameraDataset(ZJUReader(root), CFG, cache=PreprocessCache(blocker))
    with pytest.raises(DatasetError, match='cannot write'):
        dataset[0]
    with pytest.raises(DatasetError, match='index 6 out of range'):
        RadarCameraDataset(ZJUReader(root), CFG)[6]


def test_cached_base_matches_reader_options(nuscenes_fixture, tmp_path):
    root, _ = nuscenes_fixture
    cache = PreprocessCache(tmp_path)
    single = RadarCameraDataset(NuScenesReader(root, boxes=False), CFG, cache=cache)[0]
    multi = RadarCameraDataset(NuScenesReader(root, boxes=False, gt_sweeps=2), CFG, cache=cache)[0]
    assert not single['has_dense'] and multi['has_dense']
    assert cache.writes == 2
    assert dataclasses.asdict(CFG)['width'] == 320
