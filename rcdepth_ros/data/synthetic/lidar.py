"""
The lidar: a spinning multi-beam sensor (HDL-32E-like by default) mounted above the camera.

Beams are evenly spread in elevation over ``lidar_elevation_range_deg``; azimuth steps by
``lidar_azimuth_step_deg``. Only the sector the camera sees (plus a margin) is simulated, because points outside
the image are never used. Each beam is ray cast against the same scene as the camera; the range gets Gaussian
noise; returns are dropped at random (``lidar_dropout``), at grazing incidence and beyond ``lidar_max_range``.
"""

import math

import numpy as np

from rcdepth_ros.data.synthetic.raycast import Caster, SphericalGrid
from rcdepth_ros.data.synthetic.scene import rigid_inverse

SECTOR_MARGIN_DEG = 8.0
GRAZING_COSINE = 0.04


class LidarModel:
    """The beam pattern of one configuration, and a scan of a frame."""

    def __init__(self, config):
        """Build the beam grid covering the camera's horizontal field of view plus a margin."""
        self.config = config
        half_fov = math.degrees(math.atan(0.5 * config.width / (config.focal_ratio * config.width)))
        half = half_fov + SECTOR_MARGIN_DEG
        step = config.lidar_azimuth_step_deg
        count = int(math.floor(2.0 * half / step)) + 1
        azimuths = np.radians(-half + step * np.arange(count))
        low, high = config.lidar_elevation_range_deg
        elevations = np.radians(np.linspace(low, high, config.lidar_beams))
        self.grid = SphericalGrid(azimuths, elevations)
        self.directions = self.grid.directions().reshape(-1, 3)

    def scan(self, road, primitives, T_world_from_lidar, rng):
        """Return the (N, 3) float32 points of one scan in the lidar frame and their (N,) int16 beam indices."""
        T_lidar_from_world = rigid_inverse(T_world_from_lidar)
        cast = Caster(self.grid, T_lidar_from_world, max_range=self.config.lidar_max_range,
                      want_cosine=True).run(road, primitives)
        t = cast.t.ravel()
        shape = t.shape
        keep = np.isfinite(t) & (cast.cosine.ravel() > GRAZING_COSINE)
        keep &= rng.random(shape) >= self.config.lidar_dropout
        noisy = t + rng.standard_normal(shape).astype(np.float32) * np.float32(self.config.lidar_range_noise_m)
        keep &= noisy > 0.5
        idx = np.flatnonzero(keep)
        rings = (idx // self.grid.shape[1]).astype(np.int16)      # grid rows are beams, lowest first
        return (self.directions[idx] * noisy[idx, None]).astype(np.float32), rings
