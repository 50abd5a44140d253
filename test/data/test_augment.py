"""Augmentations: geometric consistency of crop and flip, photometric ranges, determinism."""

import dataclasses

import numpy as np
import pytest

from rcdepth_ros.config import from_dict
from rcdepth_ros.core.geometry.projection import project_points, sparse_depth_image
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.data.augment import (augment_view, AugmentConfig, crop_window, horizontal_flip, photometric,
                                      random_crop, rng_for, View)
from rcdepth_ros.errors import ConfigError

K = np.array([[300.0, 0.0, 150.3], [0.0, 300.0, 60.7], [0.0, 0.0, 1.0]])


def _view(seed=0):
    rng = np.random.default_rng(seed)
    xyz = np.stack([rng.uniform(-8, 8, 200), rng.uniform(-2, 2, 200), rng.uniform(3, 40, 200)], axis=1)
    vxy = rng.normal(size=(200, 2))
    radar = RadarPoints(xyz, rng.uniform(0, 30, 200), rng.normal(size=200), vxy)
    image = rng.integers(0, 256, size=(120, 320, 3), dtype=np.uint8)
    depth = sparse_depth_image(xyz, K, 320, 120)
    return View(image=image, K=K.copy(), radar=radar, lidar_xyz=xyz.astype(np.float32), depth=depth,
                dense=depth.copy())


def _pixels(points, K, width, height):
    hits = project_points(points, K, width, height)
    return hits.u, hits.v, hits.index


def test_flip_mirrors_every_projection_and_twice_is_identity():
    view = _view()
    flipped = horizontal_flip(view)
    u, v, index = _pixels(view.radar.xyz, view.K, 320, 120)
    fu, fv, findex = _pixels(flipped.radar.xyz, flipped.K, 320, 120)
    order, forder = np.argsort(index), np.argsort(findex)
    np.testing.assert_array_equal(index[order], findex[forder])
    np.testing.assert_array_equal(fu[forder], 319 - u[order])
    np.testing.assert_array_equal(fv[forder], v[order])
    np.testing.assert_array_equal(flipped.image, view.image[:, ::-1])
    np.testing.assert_array_equal(flipped.depth, view.depth[:, ::-1])
    # The ground truth of the mirrored points is the mirrored ground truth.
    np.testing.assert_array_equal(sparse_depth_image(flipped.lidar_xyz, flipped.K, 320, 120),
                                  view.depth[:, ::-1])
    # Radial velocity and RCS are unchanged, lateral velocity (vy) changes sign.
    np.testing.assert_array_equal(flipped.radar.v_radial, view.radar.v_radial)
    np.testing.assert_array_equal(flipped.radar.vxy[:, 0], view.radar.vxy[:, 0])
    np.testing.assert_array_equal(flipped.radar.vxy[:, 1], -view.radar.vxy[:, 1])
    twice = horizontal_flip(flipped)
    np.testing.assert_allclose(twice.K, view.K)
    np.testing.assert_array_equal(twice.radar.xyz, view.radar.xyz)
    assert flipped.flipped and not twice.flipped


def test_crop_window_moves_k_with_the_window():
    view = _view()
    window = crop_window(view, 10, 25, 80, 200)
    u, v, index = _pixels(view.radar.xyz, view.K, 320, 120)
    wu, wv, windex = _pixels(window.radar.xyz, window.K, 200, 80)
    inside = (u >= 25) & (u < 225) & (v >= 10) & (v < 90)
    assert set(windex) == set(index[inside])
    lookup = dict(zip(index, zip(u, v)))
    for i, a, b in zip(windex, wu, wv):
        assert (a + 25, b + 10) == lookup[i]
    np.testing.assert_array_equal(window.depth, view.depth[10:90, 25:225])


def test_random_crop_keeps_the_model_aspect_and_stays_inside():
    view = _view()
    for seed in range(20):
        window = random_crop(view, 64, 256, (1.0, 1.5), np.random.default_rng(seed))
        height, width = window.image.shape[:2]
        assert width <= 320 and height <= 120
        assert abs(height / width - 64 / 256) < 0.02
        assert window.K[0, 2] <= K[0, 2] and window.K[1, 2] <= K[1, 2]
    # zoom 1: the window spans the full width, only the rows move.
    window = random_crop(view, 64, 256, (1.0, 1.0), np.random.default_rng(0))
    assert window.image.shape[1] == 320 and window.K[0, 2] == K[0, 2]


def test_photometric_factors_stay_in_range():
    image = np.full((4, 4, 3), 128, np.uint8)
    values = []
    for seed in range(50):
        out = photometric(image, np.random.default_rng(seed))
        values.append(out[0, 0].astype(float))
    values = np.array(values)
    # brightness * colour in [0.81, 1.21], gamma in [0.9, 1.1] on 128/255: bounds of the result.
    low = 255 * 0.81 * (128 / 255) ** 1.1
    high = 255 * 1.21 * (128 / 255) ** 0.9
    assert values.min() >= np.floor(low) and values.max() <= np.ceil(high)
    assert values.std() > 3, 'jitter must actually vary'
    np.testing.assert_array_equal(photometric(image, np.random.default_rng(0), (1, 1), (1, 1), (1, 1)), image)


def test_augment_is_a_function_of_seed_epoch_index():
    config = AugmentConfig(seed=7)
    view = _view()
    a = augment_view(view, config, 64, 256, rng_for(7, 2, 5))
    b = augment_view(view, config, 64, 256, rng_for(7, 2, 5))
    c = augment_view(view, config, 64, 256, rng_for(7, 3, 5))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.K, b.K)
    assert not (np.array_equal(a.image, c.image) and np.array_equal(a.K, c.K))
    plain = augment_view(view, dataclasses.replace(config, crop=False, flip_probability=0.0,
                                                   photometric_probability=0.0), 64, 256, rng_for(7, 0, 0))
    assert np.array_equal(plain.image, view.image) and np.array_equal(plain.K, view.K)


def test_config_validation():
    assert from_dict(AugmentConfig, {'zoom': [1.0, 1.1], 'seed': 3}).zoom == (1.0, 1.1)
    with pytest.raises(ConfigError, match='zoom'):
        AugmentConfig(zoom=(0.8, 1.0))
    with pytest.raises(ConfigError, match='gamma'):
        AugmentConfig(gamma=(1.2, 1.1))
    with pytest.raises(ConfigError, match='flip_probability'):
        AugmentConfig(flip_probability=1.5)
    with pytest.raises(ConfigError, match='unknown key'):
        from_dict(AugmentConfig, {'rotate': 5})
