"""Synthetic radar: sparse, strongest on vehicles and metal, Doppler from relative motion, clutter, ghosts."""

import collections

import numpy as np
import pytest

from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.data.synthetic.generator import SceneGenerator
from rcdepth_ros.data.synthetic.layout import make_vehicle
from rcdepth_ros.data.synthetic.radar import detection_probability, KIND_CODE, KIND_NAMES
from rcdepth_ros.data.synthetic.scenes import bare_drive, pole

SMALL = {'height': 96, 'width': 160, 'num_drives': 3, 'frames_per_drive': 40}


@pytest.fixture(scope='module')
def scans():
    """Radar scans of 3 drives x 6 frames of the default scene content (small images: radar ignores them)."""
    reader = SyntheticReader(SyntheticConfig(**SMALL))
    frames = [reader.frame(f'drive{d:04d}/{f:04d}') for d in range(3) for f in range(0, 40, 7)]
    return [frame.radar for frame in frames]


def test_returns_are_sparse(scans):
    counts = np.array([len(scan) for scan in scans])
    assert counts.min() >= 10 and counts.max() <= 200
    assert 20 <= np.median(counts) <= 150


def test_vehicles_and_metal_are_stronger_than_buildings(scans):
    rcs = collections.defaultdict(list)
    per_object = collections.defaultdict(list)
    for scan in scans:
        for code in (KIND_CODE['vehicle'], KIND_CODE['building'], KIND_CODE['pole']):
            mine = scan.kind == code
            rcs[KIND_NAMES[code]].extend(scan.rcs[mine])
            per_object[KIND_NAMES[code]].extend(np.unique(scan.instance[mine], return_counts=True)[1])
    assert np.mean(rcs['vehicle']) > np.mean(rcs['building']) + 5.0
    assert np.mean(rcs['pole']) > np.mean(rcs['building'])
    assert np.mean(per_object['vehicle']) > np.mean(per_object['building'])


def test_some_visible_objects_are_missed(scans):
    seen = detected = 0
    for scan in scans:
        seen += scan.visible.size
        detected += np.unique(scan.instance[scan.instance >= 0]).size
    assert 0.2 * seen < detected < 0.9 * seen
    near, far = detection_probability(10.0, [20.0, 200.0])
    assert near > 0.9 and far < near


def test_clutter_and_ghosts_only_when_enabled(scans):
    kinds = np.concatenate([scan.kind for scan in scans])
    for name in ('clutter', 'noise', 'ghost'):
        assert (kinds == KIND_CODE[name]).sum() > 0, name
    config = SyntheticConfig(**SMALL, radar_clutter=False, radar_ghosts=False)
    reader = SyntheticReader(config)
    quiet = np.concatenate([reader.frame(f'drive0000/{f:04d}').radar.kind for f in range(0, 40, 10)])
    assert set(quiet.tolist()) <= {KIND_CODE[k] for k in ('vehicle', 'building', 'pole', 'pedestrian', 'tree',
                                                          'sign')}


def test_ghosts_lie_beyond_their_vehicle(scans):
    for scan in scans:
        for i in np.flatnonzero(scan.kind == KIND_CODE['ghost']):
            real = (scan.instance == scan.instance[i]) & (scan.kind == KIND_CODE['vehicle'])
            if real.any():
                assert np.linalg.norm(scan.xyz[i]) > np.linalg.norm(scan.xyz[real], axis=1).min()


def test_doppler_sign_of_approaching_and_receding_vehicles():
    config = SyntheticConfig(height=96, width=160, radar_clutter=False, radar_ghosts=False, radar_velocity_noise=0.0)
    rng = np.random.default_rng(0)
    oncoming = make_vehicle(rng, s=45.0, d=1.75, speed=-8.0, yaw=np.pi, kind='car')
    leading = make_vehicle(rng, s=30.0, d=-1.75, speed=15.0, kind='van')
    post = pole(s=25.0, d=-7.0, radius=0.15)
    drive = bare_drive(config, [oncoming, leading, post], speed=10.0)
    generator = SceneGenerator(config)
    v = collections.defaultdict(list)
    for frame in range(6):
        scan = generator.render(drive, frame).radar
        for instance, name in enumerate(('oncoming', 'leading', 'pole')):
            v[name].extend(scan.v_radial[scan.instance == instance])
    # Positive = moving away. Closing speed 10 + 8 m/s, opening 15 - 10 m/s, a static pole at -10 cos(angle).
    assert len(v['oncoming']) >= 3 and len(v['leading']) >= 3 and len(v['pole']) >= 1
    assert np.median(v['oncoming']) == pytest.approx(-18.0, abs=1.0)
    assert np.median(v['leading']) == pytest.approx(5.0, abs=0.5)
    assert -10.0 <= np.median(v['pole']) < -8.5


def test_elevation_is_flattened():
    config = SyntheticConfig(**SMALL, radar_elevation_flatten=1.0, radar_elevation_noise_deg=0.0)
    scan = SyntheticReader(config).frame('drive0001/0010').radar
    assert len(scan) > 0
    np.testing.assert_allclose(scan.xyz[:, 2], 0.0, atol=1e-5)
