"""
The configuration of the synthetic driving scenes: one dataclass, built with ``rcdepth_ros.config.from_dict``.

Everything random is drawn from ``seed``; a drive's layout depends only on ``(seed, drive index)`` and a frame
only on the layout and the frame index, so the same configuration always yields identical bytes.
"""

import dataclasses
import math
import typing

from rcdepth_ros.config import from_dict, RADAR_CHANNELS
from rcdepth_ros.errors import ConfigError


@dataclasses.dataclass
class SyntheticConfig:
    """
    Procedural drives: road scene layout, ego motion, camera, lidar and radar models, weather.

    Probabilities are per drive (a drive keeps its weather), densities are per 100 m of road. Sizes in metres,
    angles in degrees, speeds in m/s. Dense depth is z in the camera frame; sky and surfaces farther than
    ``max_depth`` are 0 (no depth).
    """

    seed: int = 0
    num_drives: int = 4
    frames_per_drive: int = 100
    # Camera: an undistorted pinhole, principal point at the image centre, fx = fy = focal_ratio * width
    # (nuScenes CAM_FRONT has fx = 0.79 * width).
    height: int = 450
    width: int = 800
    focal_ratio: float = 0.8
    max_depth: float = 200.0
    # Per drive: camera mounting height and pitch (positive looks down); per frame: body pitch oscillation.
    camera_height_range: typing.Tuple[float, float] = (1.25, 1.95)
    camera_pitch_range_deg: typing.Tuple[float, float] = (-2.0, 3.0)
    pitch_jitter_deg: float = 0.6
    # Ego motion: speed per drive, road curvature |1/R| up to max_curvature (a share of drives are straight).
    speed_range: typing.Tuple[float, float] = (4.0, 14.0)
    max_curvature: float = 0.004
    straight_probability: float = 0.3
    # Scene content.
    parked_vehicles_per_100m: float = 9.0
    moving_vehicles_per_100m: float = 3.0
    pedestrians_per_100m: float = 4.0
    trees_per_100m: float = 3.0
    pole_spacing_m: float = 30.0
    building_gap_probability: float = 0.3
    # Weather, per drive: fog and night degrade the image only (radar and lidar are unchanged).
    fog_probability: float = 0.1
    night_probability: float = 0.1
    fog_visibility_range_m: typing.Tuple[float, float] = (40.0, 150.0)
    # Lidar: beams evenly spread in elevation (HDL-32E-like by default), simulated over the camera's
    # horizontal field of view plus a margin only (points outside the image are never used).
    lidar_beams: int = 32
    lidar_elevation_range_deg: typing.Tuple[float, float] = (-30.67, 10.67)
    lidar_azimuth_step_deg: float = 0.2
    lidar_max_range: float = 100.0
    lidar_range_noise_m: float = 0.02
    lidar_dropout: float = 0.05
    # Radar: a forward automotive radar at the bumper.
    radar_fov_deg: float = 100.0
    radar_max_range: float = 150.0
    radar_max_points: int = 200
    radar_range_noise_m: float = 0.15
    radar_azimuth_noise_deg: float = 0.4
    radar_elevation_noise_deg: float = 1.5
    radar_elevation_flatten: float = 0.8
    radar_velocity_noise: float = 0.1
    radar_rcs_noise_db: float = 2.0
    radar_clutter: bool = True
    radar_ghosts: bool = True
    # Channels of Sample.radar_image (rasterised with rcdepth_ros.core.geometry.radar_image); the radar points
    # themselves always carry RCS, radial velocity and vx / vy.
    radar_channels: typing.Tuple[str, ...] = ('depth', 'rcs', 'v_radial', 'mask')

    def __post_init__(self):
        """Check every field's range; raise ConfigError naming the field."""
        def need(ok, field, text):
            if not ok:
                raise ConfigError(f'synthetic.{field}: {text}, got {getattr(self, field)!r}')

        def pair(field, low, high):
            a, b = getattr(self, field)
            need(math.isfinite(a) and math.isfinite(b) and low <= a <= b <= high, field,
                 f'need {low} <= min <= max <= {high}')

        need(self.seed >= 0, 'seed', 'must be >= 0')
        need(self.num_drives >= 1, 'num_drives', 'must be >= 1')
        need(1 <= self.frames_per_drive <= 10000, 'frames_per_drive', 'must be in [1, 10000]')
        need(32 <= self.height <= 4096, 'height', 'must be in [32, 4096]')
        need(32 <= self.width <= 8192, 'width', 'must be in [32, 8192]')
        need(0.2 <= self.focal_ratio <= 5.0, 'focal_ratio', 'must be in [0.2, 5]')
        need(5.0 <= self.max_depth <= 1000.0, 'max_depth', 'must be in [5, 1000] m')
        pair('camera_height_range', 0.5, 4.0)
        pair('camera_pitch_range_deg', -10.0, 10.0)
        need(0.0 <= self.pitch_jitter_deg <= 5.0, 'pitch_jitter_deg', 'must be in [0, 5]')
        pair('speed_range', 0.0, 40.0)
        need(0.0 <= self.max_curvature <= 0.02, 'max_curvature', 'must be in [0, 0.02] 1/m')
        for name in ('straight_probability', 'building_gap_probability', 'fog_probability', 'night_probability',
                     'lidar_dropout', 'radar_elevation_flatten'):
            need(0.0 <= getattr(self, name) <= 1.0, name, 'must be in [0, 1]')
        for name in ('parked_vehicles_per_100m', 'moving_vehicles_per_100m', 'pedestrians_per_100m',
                     'trees_per_100m'):
            need(0.0 <= getattr(self, name) <= 50.0, name, 'must be in [0, 50]')
        need(5.0 <= self.pole_spacing_m <= 1000.0, 'pole_spacing_m', 'must be in [5, 1000]')
        pair('fog_visibility_range_m', 5.0, 2000.0)
        need(1 <= self.lidar_beams <= 256, 'lidar_beams', 'must be in [1, 256]')
        pair('lidar_elevation_range_deg', -60.0, 60.0)
        need(0.01 <= self.lidar_azimuth_step_deg <= 5.0, 'lidar_azimuth_step_deg', 'must be in [0.01, 5]')
        need(1.0 <= self.lidar_max_range <= 1000.0, 'lidar_max_range', 'must be in [1, 1000] m')
        need(0.0 <= self.lidar_range_noise_m <= 1.0, 'lidar_range_noise_m', 'must be in [0, 1] m')
        need(10.0 <= self.radar_fov_deg <= 170.0, 'radar_fov_deg', 'must be in [10, 170]')
        need(5.0 <= self.radar_max_range <= 1000.0, 'radar_max_range', 'must be in [5, 1000] m')
        need(1 <= self.radar_max_points <= 100000, 'radar_max_points', 'must be in [1, 100000]')
        for name in ('radar_range_noise_m', 'radar_azimuth_noise_deg', 'radar_elevation_noise_deg',
                     'radar_velocity_noise', 'radar_rcs_noise_db'):
            need(0.0 <= getattr(self, name) <= 20.0, name, 'must be in [0, 20]')
        unknown = [c for c in self.radar_channels if c not in RADAR_CHANNELS]
        need(self.radar_channels and not unknown, 'radar_channels', f'choose from {RADAR_CHANNELS}')

    @property
    def intrinsics_matrix(self):
        """Return the 3x3 camera matrix: fx = fy = focal_ratio * width, principal point at the centre."""
        f = self.focal_ratio * self.width
        return [[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]]


def synthetic_config(data=None):
    """Build a SyntheticConfig from plain data (YAML / JSON); unknown keys and bad values raise ConfigError."""
    return from_dict(SyntheticConfig, data, 'synthetic')
