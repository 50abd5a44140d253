"""SyntheticReader: configuration, frame ids, the Sample format, determinism, splits, the registry."""

import pickle

import numpy as np
import pytest

from rcdepth_ros.config import from_dict, InputConfig, RADAR_CHANNELS
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.data.synthetic import synthetic_config, SyntheticConfig, SyntheticReader
from rcdepth_ros.errors import ConfigError, DatasetError

SMALL = {'height': 96, 'width': 160, 'num_drives': 2, 'frames_per_drive': 4}


def small_reader(**overrides):
    return SyntheticReader(SyntheticConfig(**{**SMALL, **overrides}))


def test_config_is_strict_and_checks_ranges():
    assert synthetic_config({'seed': 3, 'height': 96}).height == 96
    with pytest.raises(ConfigError, match='unknown key'):
        synthetic_config({'fog_prob': 0.5})
    with pytest.raises(ConfigError, match='synthetic.height'):
        synthetic_config({'height': 'tall'})
    with pytest.raises(ConfigError, match='fog_probability'):
        synthetic_config({'fog_probability': 1.5})
    with pytest.raises(ConfigError, match='speed_range'):
        synthetic_config({'speed_range': [10.0, 5.0]})
    with pytest.raises(ConfigError, match='radar_channels'):
        synthetic_config({'radar_channels': ['depth', 'colour']})
    with pytest.raises(ConfigError, match='height'):
        SyntheticConfig(height=8)
    # Embeddable in a larger YAML schema via from_dict, and the reader accepts the plain-data form too.
    assert from_dict(SyntheticConfig, {'num_drives': 1}).num_drives == 1
    assert SyntheticReader({'num_drives': 1, 'frames_per_drive': 2}).frame_ids == ['drive0000/0000',
                                                                                   'drive0000/0001']
    with pytest.raises(ConfigError):
        SyntheticReader(config=42)


def test_frame_ids_and_lookup():
    reader = small_reader()
    assert len(reader) == 8
    assert reader.frame_ids[:5] == ['drive0000/0000', 'drive0000/0001', 'drive0000/0002', 'drive0000/0003',
                                    'drive0001/0000']
    assert reader.resolve_frame_id((1, 2)) == 'drive0001/0002'
    assert 'drive0001/0003' in reader and 'drive0002/0000' not in reader
    with pytest.raises(DatasetError, match='drive0009/0000'):
        reader.sample('drive0009/0000')
    assert reader.select('5-6').frame_ids == ['drive0001/0001', 'drive0001/0002']


def test_sample_format():
    reader = small_reader()
    sample = reader.sample('drive0001/0002')
    assert isinstance(sample, Sample) and sample.source == 'synthetic' and sample.frame_id == 'drive0001/0002'
    h, w = 96, 160
    assert sample.image.shape == (h, w, 3) and sample.image.dtype == np.uint8
    K = sample.intrinsics.K
    assert (sample.intrinsics.width, sample.intrinsics.height) == (w, h)
    assert K[0, 0] == pytest.approx(0.8 * w) and K[0, 2] == pytest.approx((w - 1) / 2)
    assert sample.depth_gt_dense.shape == (h, w) and sample.depth_gt_dense.dtype == np.float32
    assert sample.depth_gt.shape == (h, w) and sample.depth_gt.dtype == np.float32
    assert 0.0 < (sample.depth_gt_dense > 0).mean() < 1.0           # sky has no depth
    assert sample.depth_gt_dense.max() <= reader.config.max_depth
    assert sample.lidar_xyz.dtype == np.float32 and sample.lidar_xyz.shape[1] == 3
    assert sample.radar.xyz.dtype == np.float32 and len(sample.radar) > 0
    assert sample.radar.frame_id == sample.frames['camera'] == sample.intrinsics.frame_id
    assert np.isfinite(sample.radar.vxy).all() and np.isfinite(sample.radar.rcs).all()
    assert sample.radar_channels == ('depth', 'rcs', 'v_radial', 'mask')
    assert sample.radar_image.shape == (h, w, 4) and sample.radar_image.dtype == np.float32
    assert 0 < sample.radar_image[..., 3].sum() <= len(sample.radar)
    every = small_reader(radar_channels=list(RADAR_CHANNELS)).sample('drive0001/0002')
    assert every.radar_channels == RADAR_CHANNELS and every.radar_image.shape == (h, w, len(RADAR_CHANNELS))
    assert set(sample.extrinsics) == {'radar', 'lidar', 'base'}
    assert set(sample.frames) == {'camera', 'radar', 'lidar', 'base', 'world'}
    for role, T in sample.extrinsics.items():
        assert T.shape == (4, 4)
        # The static calibration agrees with the poses in the world frame at this instant.
        np.testing.assert_allclose(np.linalg.inv(sample.ego_pose) @ sample.sensor_poses[role], T, atol=1e-9)
    # Lidar above the camera (y up is negative in the optical frame), radar below it and ahead.
    assert sample.extrinsics['lidar'][1, 3] < 0 < sample.extrinsics['radar'][1, 3]
    assert sample.extrinsics['radar'][2, 3] > 1.0
    assert all(box.frame_id == sample.frames['camera'] for box in sample.boxes)
    # The model input can be built from it.
    model_input = prepare_model_input(sample.image, sample.radar, K, InputConfig(height=64, width=128))
    assert model_input.image.shape == (3, 64, 128)


def test_timestamps_are_10_hz_and_ego_moves():
    reader = small_reader()
    a, b = reader.sample('drive0000/0001'), reader.sample('drive0000/0002')
    assert b.stamp_ns - a.stamp_ns == 100_000_000
    assert a.stamps_ns == {'camera': a.stamp_ns, 'radar': a.stamp_ns, 'lidar': a.stamp_ns}
    # the drives follow one another, 1 s apart (not hours of nothing a bag player would wait through)
    assert reader.sample('drive0001/0000').stamp_ns - reader.sample('drive0000/0003').stamp_ns == 1_100_000_000
    assert [reader.stamp_ns(f) for f in ('drive0000/0001', 'drive0001/0000')] == \
        [a.stamp_ns, reader.sample('drive0001/0000').stamp_ns]            # known without generating the frame
    moved = np.linalg.norm(b.ego_pose[:3, 3] - a.ego_pose[:3, 3])
    speed_range = reader.config.speed_range
    assert 0.1 * speed_range[0] * 0.9 < moved < 0.1 * speed_range[1] * 1.1


def test_same_seed_same_bytes_in_any_order():
    first = small_reader(seed=7)
    second = small_reader(seed=7)
    ids = ['drive0001/0003', 'drive0000/0001']
    a = [first.sample(i) for i in ids]
    b = [second.sample(i) for i in reversed(ids)][::-1]
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes()
        assert x.depth_gt_dense.tobytes() == y.depth_gt_dense.tobytes()
        assert x.radar.xyz.tobytes() == y.radar.xyz.tobytes() and x.radar.rcs.tobytes() == y.radar.rcs.tobytes()
        assert x.lidar_xyz.tobytes() == y.lidar_xyz.tobytes()
    other = small_reader(seed=8).sample(ids[0])
    assert other.image.tobytes() != a[0].image.tobytes()


def test_splits_are_different_drives_and_registry_opens_them():
    train = small_reader().sample('drive0000/0000')
    val = SyntheticReader(SyntheticConfig(**SMALL), split='val').sample('drive0000/0000')
    assert train.image.tobytes() != val.image.tobytes()
    with pytest.raises(DatasetError, match='split'):
        SyntheticReader(SyntheticConfig(**SMALL), split='holdout')
    reader = open_reader('synthetic', split='val', frames='1-2', config=SMALL, radar_image=False)
    assert reader.frame_ids == ['drive0000/0001', 'drive0000/0002']
    assert reader.sample('drive0000/0001').radar_image is None


def test_iteration_yields_every_frame():
    reader = small_reader(num_drives=1, frames_per_drive=3)
    assert [s.frame_id for s in reader] == reader.frame_ids
    assert reader.skipped == []


def test_reader_pickles_for_worker_processes():
    reader = small_reader()
    before = reader.sample('drive0000/0002')
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.sample('drive0000/0002').image.tobytes() == before.image.tobytes()


def test_threaded_and_single_thread_generation_agree():
    config = SyntheticConfig(**SMALL)
    a = SyntheticReader(config, threads=True).sample('drive0001/0001')
    b = SyntheticReader(config, threads=False).sample('drive0001/0001')
    assert a.image.tobytes() == b.image.tobytes() and a.radar.xyz.tobytes() == b.radar.xyz.tobytes()
    assert a.lidar_xyz.tobytes() == b.lidar_xyz.tobytes()


def test_parallel_iteration_matches_sequential():
    reader = small_reader(num_drives=2, frames_per_drive=2)
    sequential = list(reader.iterate())
    parallel = list(reader.iterate(workers=2))
    assert [s.frame_id for s in parallel] == reader.frame_ids
    for a, b in zip(sequential, parallel):
        assert a.image.tobytes() == b.image.tobytes() and a.radar.xyz.tobytes() == b.radar.xyz.tobytes()
