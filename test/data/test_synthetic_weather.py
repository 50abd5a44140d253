"""Fog and night degrade the synthetic camera image and leave radar, lidar and depth untouched."""

import numpy as np
import pytest

from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.data.synthetic.weather import fog_transmission

BASE = {'height': 120, 'width': 200, 'num_drives': 2, 'frames_per_drive': 20, 'fog_probability': 0.0,
        'night_probability': 0.0}
FRAMES = ('drive0000/0005', 'drive0001/0013')


def _samples(**weather):
    reader = SyntheticReader(SyntheticConfig(**{**BASE, **weather}))
    return [reader.sample(f) for f in FRAMES]


@pytest.fixture(scope='module')
def clear():
    return _samples()


@pytest.mark.parametrize('weather', [{'fog_probability': 1.0}, {'night_probability': 1.0}],
                         ids=['fog', 'night'])
def test_weather_changes_the_image_only(clear, weather):
    for plain, bad in zip(clear, _samples(**weather)):
        assert plain.image.tobytes() != bad.image.tobytes()
        for name in ('xyz', 'rcs', 'v_radial', 'vxy'):
            assert getattr(plain.radar, name).tobytes() == getattr(bad.radar, name).tobytes()
        assert plain.lidar_xyz.tobytes() == bad.lidar_xyz.tobytes()
        assert plain.depth_gt_dense.tobytes() == bad.depth_gt_dense.tobytes()


def test_fog_lowers_contrast_with_distance(clear):
    for plain, foggy in zip(clear, _samples(fog_probability=1.0, fog_visibility_range_m=(40.0, 40.0))):
        far = plain.depth_gt_dense > 60.0
        near = (plain.depth_gt_dense > 0) & (plain.depth_gt_dense < 8.0)
        assert far.sum() > 100 and near.sum() > 100
        # Far surfaces fade into the fog colour (little contrast left), near ones keep theirs.
        assert foggy.image[far].std() < 0.5 * plain.image[far].std()
        assert foggy.image[near].std() > 0.3 * plain.image[near].std()
    assert fog_transmission(40.0, 40.0) == pytest.approx(np.exp(-3.912))


def test_night_is_dark_with_lit_spots(clear):
    for plain, night in zip(clear, _samples(night_probability=1.0)):
        assert night.image.mean() < 0.7 * plain.image.mean()
        # Headlight pools, lamps, lit windows and tail lights: some pixels stay bright.
        assert np.percentile(night.image.max(axis=2), 99.5) > 120
