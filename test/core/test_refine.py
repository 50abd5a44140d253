"""Radar-anchored refinement: toward the truth with exact radar, identity without, bounded by ghosts, deterministic."""

import math

import numpy as np
import pytest
from rcdepth_ros.core.inference.bundled_model import bundled_model_path
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.refine import RadarRefiner, RefineSettings
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.data.synthetic import SyntheticReader
from rcdepth_ros.data.synthetic.config import SyntheticConfig
from rcdepth_ros.errors import ConfigError
import torch

# A 96x160 model-resolution scene: a wall at 40 m, a flat ground below the horizon row 40, a car at 12 m.
H, W = 96, 160
K = np.array([[100.0, 0.0, 80.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
WALL, GROUND, CAR = 0, 1, 2
# The network's errors per region: the wall 10 % too near, the ground 10 % and the car 30 % too far.
FACTORS = np.array([0.9, 1.1, 1.3])
UNLIMITED = {'mode': 'radar', 'budget_ms': math.inf}


def _scene(seed=0):
    """Return (truth, prediction, image (3, H, W) normalised, region) of the scene."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    truth = np.full((H, W), 40.0)
    ground = v > 46
    truth[ground] = np.minimum(100.0 * 1.5 / (v[ground] - 40.0), 40.0)
    region = np.where(ground, GROUND, WALL)
    car = (v >= 30) & (v < 62) & (u >= 50) & (u < 100)
    truth[car] = 12.0
    region[car] = CAR
    colours = np.array([[0.2, 0.3, 1.2], [-0.3, -0.3, -0.3], [1.5, -0.8, -0.8]])
    image = colours[region].transpose(2, 0, 1) + 0.05 * rng.standard_normal((3, H, W))
    return (truth.astype(np.float32), (truth * FACTORS[region]).astype(np.float32), image.astype(np.float32),
            region)


def _backproject(u, v, z):
    """Return camera-frame points (N, 3) of pixels (u, v) at depths z."""
    u, v, z = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (u, v, z))
    return np.column_stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z]).astype(np.float32)


def _exact_radar(truth, region, seed=0, per_region=(12, 8, 12)):
    """Return returns exactly on the true surfaces: ``per_region`` random pixels of each region."""
    rng = np.random.default_rng(seed + 1)
    points = []
    for index, count in enumerate(per_region):
        vv, uu = np.nonzero(region == index)
        pick = rng.choice(len(vv), count, replace=False)
        points.append(_backproject(uu[pick], vv[pick], truth[vv[pick], uu[pick]]))
    return np.concatenate(points)


def _refine(pred, image, xyz, rcs=None, uncertainty=None, **settings):
    refiner = RadarRefiner(RefineSettings(**{**UNLIMITED, **settings}))
    return refiner.refine(torch.from_numpy(pred), torch.from_numpy(image), xyz, K, rcs=rcs,
                          uncertainty=None if uncertainty is None else torch.from_numpy(uncertainty))


def _mae(depth, truth, mask=None):
    depth = depth.numpy() if torch.is_tensor(depth) else depth
    error = np.abs(depth - truth)
    return float(error.mean() if mask is None else error[mask].mean())


def test_exact_radar_moves_the_prediction_toward_the_truth():
    truth, pred, image, region = _scene()
    result = _refine(pred, image, _exact_radar(truth, region))
    assert result.status == 'refined' and result.used == 32
    assert result.dropped == {'nonfinite': 0, 'behind_camera': 0, 'out_of_range': 0, 'outside_image': 0}
    assert result.supported_segments > 0 and result.segments > 100
    assert _mae(result.depth, truth) < 0.95 * _mae(pred, truth)
    car = region == CAR
    assert _mae(result.depth, truth, car) < 0.7 * _mae(pred, truth, car)
    # the car was predicted too far: its depth comes nearer, never beyond the clip
    change = np.log(result.depth.numpy() / pred)
    assert np.median(change[car]) < -0.05
    assert np.abs(change).max() <= RefineSettings().max_log_scale + 1e-6


def test_exact_radar_on_synthetic_drives_through_the_engine():
    """The bundled model on generated drives with noise-free radar: every frame's dense error drops."""
    exact = {'radar_range_noise_m': 0.0, 'radar_azimuth_noise_deg': 0.0, 'radar_elevation_noise_deg': 0.0,
             'radar_elevation_flatten': 0.0, 'radar_clutter': False, 'radar_ghosts': False}
    reader = SyntheticReader(SyntheticConfig(num_drives=2, frames_per_drive=2, **exact), split='test')
    model = bundled_model_path()
    plain = InferenceEngine(model, device='cpu')
    # exact returns: their elevation is right (no spread) and nothing beyond a surface is a ghost
    refined = InferenceEngine(model, device='cpu', refine={**UNLIMITED, 'elevation_spread_deg': 0.0,
                                                           'far_cutoff': 1.5})
    errors = []
    for sample in reader.iterate('raise'):
        before = plain.infer(sample.image, sample.radar, sample.intrinsics)
        after = refined.infer(sample.image, sample.radar, sample.intrinsics)
        assert after.refine['status'] == 'refined' and after.refine['supported_segments'] > 0
        assert 'refine' in after.timings and 'refine' not in before.timings
        gt = sample.depth_gt_dense
        valid = np.isfinite(before.depth) & (gt > 0) & (gt < 80)
        errors.append((_mae(before.depth[valid], gt[valid]), _mae(after.depth[valid], gt[valid])))
        assert errors[-1][1] < errors[-1][0], sample.frame_id
        # where the model has a bin distribution its uncertainty is refined with the depth (exactly so at model
        # resolution; restoring to the image size interpolates both across segment borders)
        ratio = after.uncertainty[valid] / before.uncertainty[valid]
        np.testing.assert_allclose(ratio, after.depth[valid] / before.depth[valid], rtol=0.05)
    # and over the drives by a clear margin (a frame the model already gets nearly right gains little)
    assert sum(after for _, after in errors) < 0.97 * sum(before for before, _ in errors)


def test_no_radar_returns_is_the_identity(tiny_student):
    truth, pred, image, region = _scene()
    result = _refine(pred, image, np.zeros((0, 3), np.float32))
    assert result.status == 'no_returns' and not result.refined
    assert torch.equal(result.depth, torch.from_numpy(pred))
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (200, 160, 3), dtype=np.uint8)
    K_image = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 100.0], [0.0, 0.0, 1.0]])
    empty = RadarPoints(np.zeros((0, 3), np.float32))
    off = InferenceEngine(tiny_student, device='cpu').infer(frame, empty, K_image)
    on = InferenceEngine(tiny_student, device='cpu', refine=UNLIMITED).infer(frame, empty, K_image)
    np.testing.assert_array_equal(on.depth, off.depth)
    np.testing.assert_array_equal(on.uncertainty, off.uncertainty)
    assert on.refine['status'] == 'no_returns' and off.refine is None


def test_injected_ghosts_keep_the_change_bounded():
    truth, pred, image, region = _scene()
    exact = _exact_radar(truth, region)
    rng = np.random.default_rng(7)
    # multipath: every exact return seen again 1.3 to 3 times farther along its line of sight, plus far false alarms
    multipath = exact * rng.uniform(1.3, 3.0, (len(exact), 1)).astype(np.float32)
    u, v = rng.uniform(0, W, 20), rng.uniform(0, H, 20)
    false_alarms = _backproject(u, v, rng.uniform(45.0, 95.0, 20))
    clean = _refine(pred, image, exact)
    ghosted = _refine(pred, image, np.concatenate([exact, multipath, false_alarms]))
    assert ghosted.returns == 2 * len(exact) + 20
    assert ghosted.used == ghosted.returns - sum(ghosted.dropped.values()) and ghosted.used > 2 * len(exact)
    # far false alarms change nothing; a multipath copy of a car return can still match the wall rows of its column
    # (elevation spread) as a nearer return, so a few wall segments move, never far
    far_only = _refine(pred, image, np.concatenate([exact, false_alarms]))
    assert torch.equal(far_only.depth, clean.depth)
    difference = np.abs(np.log(ghosted.depth.numpy() / clean.depth.numpy()))
    assert difference.max() < 0.25 and (difference > 0.05).mean() < 0.05 and difference.mean() < 0.01
    assert _mae(ghosted.depth, truth) < 0.99 * _mae(pred, truth)
    # ghosts alone (the surfaces' own returns missing) move nothing by more than the clip, and little on average
    alone = _refine(pred, image, np.concatenate([multipath, false_alarms]))
    assert np.abs(np.log(alone.depth.numpy() / pred)).mean() < 0.02


@pytest.mark.parametrize('factor', [0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
def test_one_nearer_return_moves_its_segment_by_a_bounded_amount(factor):
    """A single return nearer than predicted: its pull a gives at most a |t| / (a + lambda_prior) (module doc)."""
    truth, pred, image, region = _scene()
    s = RefineSettings(**UNLIMITED)
    t = math.log(factor)
    result = _refine(pred, image, _backproject(75, 45, pred[45, 75] * factor))
    agreement = max(0.0, 1.0 - (t / s.near_cutoff) ** 2) ** 2
    pull = s.lambda_radar * agreement ** 2 / (agreement ** 2 + s.support_saturation ** 2)
    bound = min(pull * abs(t) / (pull + s.lambda_prior), s.max_log_scale)
    change = np.abs(np.log(result.depth.numpy() / pred))
    assert 0.0 < change.max() <= bound + 1e-5
    # the neighbours are tied: the change spreads, but it stays smaller there
    assert change[region == GROUND].max() < change.max()


@pytest.mark.parametrize('factor', [1.2, 1.5, 2.0, 3.0])
def test_one_return_beyond_the_far_cutoff_changes_nothing(factor):
    truth, pred, image, region = _scene()
    result = _refine(pred, image, _backproject(75, 45, pred[45, 75] * factor))
    assert result.status == 'refined' and result.supported_segments == 0
    assert torch.equal(result.depth, torch.from_numpy(pred))


def test_bad_returns_are_dropped_and_counted_and_alone_leave_the_depth_unrefined():
    truth, pred, image, region = _scene()
    good = _exact_radar(truth, region)
    bad = np.array([[np.nan, 0.0, 10.0], [0.0, np.inf, 10.0], [1.0, 0.0, -5.0], [0.0, 0.0, 0.5],
                    [0.0, 0.0, 500.0], [60.0, 0.0, 10.0], [0.0, -60.0, 10.0]], np.float32)
    counts = {'nonfinite': 2, 'behind_camera': 2, 'out_of_range': 1, 'outside_image': 2}
    alone = _refine(pred, image, bad)
    assert alone.status == 'no_valid_returns' and alone.dropped == counts and alone.returns == 7
    assert torch.equal(alone.depth, torch.from_numpy(pred))
    mixed = _refine(pred, image, np.concatenate([bad[:4], good, bad[4:]]))
    reference = _refine(pred, image, good)
    assert mixed.status == 'refined' and mixed.dropped == counts and mixed.used == len(good)
    assert torch.equal(mixed.depth, reference.depth)


def test_time_budget_zero_disables_and_an_exhausted_budget_publishes_the_unrefined_depth():
    truth, pred, image, region = _scene()
    xyz = _exact_radar(truth, region)
    disabled = _refine(pred, image, xyz, budget_ms=0.0)
    assert disabled.status == 'disabled' and torch.equal(disabled.depth, torch.from_numpy(pred))
    assert not RefineSettings(mode='radar', budget_ms=0.0).active
    exhausted = _refine(pred, image, xyz, uncertainty=np.ones_like(pred), budget_ms=1e-9)
    assert exhausted.status == 'over_budget' and exhausted.time_ms > 0
    assert torch.equal(exhausted.depth, torch.from_numpy(pred))
    assert torch.equal(exhausted.uncertainty, torch.ones(H, W))


def test_refinement_is_deterministic(tiny_student):
    truth, pred, image, region = _scene()
    xyz = _exact_radar(truth, region)
    rcs = np.linspace(-5.0, 20.0, len(xyz)).astype(np.float32)
    first = _refine(pred, image, xyz, rcs=rcs, rcs_weight=0.5)
    second = _refine(pred, image, xyz, rcs=rcs, rcs_weight=0.5)
    assert torch.equal(first.depth, second.depth)
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (200, 160, 3), dtype=np.uint8)
    K_image = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 100.0], [0.0, 0.0, 1.0]])
    radar = RadarPoints(np.column_stack([rng.uniform(-5, 5, 60), rng.uniform(0, 2, 60), rng.uniform(3, 60, 60)]),
                        rcs=rng.uniform(-10, 20, 60))
    engine = InferenceEngine(tiny_student, device='cpu', refine=UNLIMITED)
    a, b = engine.infer(frame, radar, K_image), engine.infer(frame, radar, K_image)
    assert a.refine['status'] == 'refined'
    np.testing.assert_array_equal(a.depth, b.depth)


def test_rcs_weight_favours_strong_returns():
    """Two conflicting groups of returns on the car: with the RCS weight the strong group wins more of the pull."""
    truth, pred, image, region = _scene()
    vv, uu = np.nonzero(region == CAR)
    rng = np.random.default_rng(2)
    pick = rng.choice(len(vv), 40, replace=False)
    near = _backproject(uu[pick[:20]], vv[pick[:20]], pred[vv[pick[:20]], uu[pick[:20]]] * 0.6)
    less_near = _backproject(uu[pick[20:]], vv[pick[20:]], pred[vv[pick[20:]], uu[pick[20:]]] * 0.9)
    xyz = np.concatenate([near, less_near])
    rcs = np.concatenate([np.full(20, 30.0), np.full(20, -10.0)]).astype(np.float32)
    car = region == CAR
    plain = np.log(_refine(pred, image, xyz, rcs=rcs).depth.numpy() / pred)[car].mean()
    weighted = np.log(_refine(pred, image, xyz, rcs=rcs, rcs_weight=1.0).depth.numpy() / pred)[car].mean()
    assert weighted < plain < 0


def test_uncertainty_is_scaled_with_the_depth():
    truth, pred, image, region = _scene()
    uncertainty = (0.1 * pred + 0.5).astype(np.float32)
    result = _refine(pred, image, _exact_radar(truth, region), uncertainty=uncertainty)
    np.testing.assert_allclose(result.uncertainty.numpy() / uncertainty, result.depth.numpy() / pred, rtol=1e-5)
    np.testing.assert_allclose(result.scale.numpy(), result.depth.numpy() / pred, rtol=1e-5)


def test_segments_follow_depth_and_colour_edges():
    """The 3D SLIC keeps the car's segments off the wall better than the regular grid it starts from."""
    truth, pred, image, region = _scene()
    depth, picture = torch.from_numpy(pred), torch.from_numpy(image)

    def impurity(settings):
        labels, count = RadarRefiner(RefineSettings(**{**UNLIMITED, **settings})).segment_map(depth, picture)
        labels = labels.numpy()
        assert labels.shape == (H, W) and labels.min() >= 0 and labels.max() < count
        mixed = 0
        for label in np.unique(labels):
            inside = region[labels == label]
            mixed += inside.size - np.bincount(inside).max()
        return mixed

    assert impurity({'slic_iterations': 2}) < 0.7 * impurity({'slic_iterations': 0})


def test_settings_are_checked_and_convert_to_plain_data():
    with pytest.raises(ConfigError, match='mode'):
        RefineSettings(mode='lidar')
    with pytest.raises(ConfigError, match='budget_ms'):
        RefineSettings(budget_ms=-1.0)
    with pytest.raises(ConfigError, match='far_cutoff'):
        RefineSettings(far_cutoff=0.0)
    with pytest.raises(ConfigError, match='lambda_prior'):
        RefineSettings(lambda_prior=0.0)
    with pytest.raises(ConfigError, match='unknown'):
        RefineSettings.from_mapping({'segmentz': 10})
    with pytest.raises(ConfigError, match='segments must be a int'):
        RefineSettings.from_mapping({'segments': 'many'})
    settings = RefineSettings.from_mapping({'mode': 'radar', 'budget_ms': 'inf', 'segments': 200.0})
    assert settings.active and settings.segments == 200 and math.isinf(settings.budget_ms)
    assert settings.to_dict()['budget_ms'] == 'inf'
    assert RefineSettings.from_mapping(settings.to_dict()) == settings


def test_engine_switches_the_stage_between_frames(tiny_student):
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 256, (200, 160, 3), dtype=np.uint8)
    K_image = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 100.0], [0.0, 0.0, 1.0]])
    radar = RadarPoints(np.column_stack([rng.uniform(-5, 5, 60), rng.uniform(0, 2, 60), rng.uniform(3, 60, 60)]))
    engine = InferenceEngine(tiny_student, device='cpu')
    assert engine.refine_settings.mode == 'none'
    off = engine.infer(frame, radar, K_image)
    settings = engine.set_refine({'mode': 'radar', 'budget_ms': 'inf'})
    assert settings.active and engine.refine_settings is settings
    on = engine.infer(frame, radar, K_image)
    assert on.refine['status'] == 'refined' and on.timings['refine'] >= 0
    assert set(on.refine) == {'status', 'time_ms', 'returns', 'used', 'dropped', 'segments', 'supported_segments'}
    engine.set_refine('none')
    again = engine.infer(frame, radar, K_image)
    np.testing.assert_array_equal(again.depth, off.depth)
    assert again.refine is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_gives_the_cpu_result():
    truth, pred, image, region = _scene()
    xyz = _exact_radar(truth, region)
    cpu = _refine(pred, image, xyz)
    refiner = RadarRefiner(RefineSettings(**UNLIMITED))
    cuda = refiner.refine(torch.from_numpy(pred).cuda(), torch.from_numpy(image).cuda(), xyz, K)
    assert cuda.status == 'refined' and cuda.depth.device.type == 'cuda'
    np.testing.assert_allclose(cuda.depth.cpu().numpy(), cpu.depth.numpy(), rtol=1e-3, atol=1e-3)
