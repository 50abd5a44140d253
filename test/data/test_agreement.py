"""The radar-vs-lidar agreement figure on points whose answer is known."""

import numpy as np

from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.agreement import radar_lidar_agreement
from rcdepth_ros.data.sample import Sample


def _sample(radar_xyz, lidar_xyz):
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    return Sample('test', '0', 0, np.zeros((80, 100, 3), np.uint8), CameraIntrinsics(K, 100, 80),
                  RadarPoints(radar_xyz), lidar_xyz, np.zeros((80, 100), np.float32))


def test_identical_and_shifted_points():
    # 48 returns on distinct pixels (every 10 px), at known depths: back-projected through K.
    u, v = np.meshgrid(np.arange(10, 90, 10), np.arange(10, 70, 10))
    z = np.random.default_rng(0).uniform(8, 30, u.size)
    lidar = np.stack([(u.ravel() - 50) * z / 100, (v.ravel() - 40) * z / 100, z], axis=1)
    same = radar_lidar_agreement([_sample(lidar, lidar)], radius=2)
    assert same.matched == 48 and same.median_abs < 1e-5 and same.fraction_within(0.5) == 1.0
    farther = lidar * (1 + 2.0 / lidar[:, 2:])          # same pixel, 2 m deeper along the ray
    shifted = radar_lidar_agreement([_sample(farther, lidar)], radius=2)
    np.testing.assert_allclose(shifted.differences, 2.0, atol=1e-4)
    assert shifted.to_dict()['within_1m'] == 0.0 and shifted.to_dict()['frames'] == 1
    # Radar 3 px to the side of each lidar point: outside a 2 px radius, inside a 3 px one.
    beside = farther + np.stack([3 * farther[:, 2] / 100, np.zeros(48), np.zeros(48)], axis=1)
    assert radar_lidar_agreement([_sample(beside, lidar)], radius=2).matched == 0
    assert radar_lidar_agreement([_sample(beside, lidar)], radius=3).matched == 48
