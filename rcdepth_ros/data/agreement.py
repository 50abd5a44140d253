"""
Radar-vs-lidar depth agreement: a check of a data set's calibration chain on real frames.

For every radar return that projects into the image (1-120 m), the nearest lidar pixel (in image distance) within
``radius`` pixels is found, and the radar depth minus that lidar depth is recorded. A wrong extrinsic moves one
sensor's points against the other's and turns small differences into metres; on Astyx HiRes2019 the figure is
measured in test/core/test_astyx_calibration.py and benchmarks/bench_data.py.
"""

import dataclasses

import numpy as np

from rcdepth_ros.core.geometry.projection import project_points, sparse_depth_image
from rcdepth_ros.core.geometry.transforms import transform_points


@dataclasses.dataclass
class Agreement:
    """Signed radar - lidar depth differences (metres) of matched returns, and summary figures."""

    differences: np.ndarray
    frames: int
    radius: int

    @property
    def matched(self):
        """Return the number of radar returns with a lidar pixel within the radius."""
        return int(self.differences.size)

    @property
    def median_abs(self):
        """Return the median |radar - lidar| in metres."""
        return float(np.median(np.abs(self.differences))) if self.matched else float('nan')

    def fraction_within(self, metres):
        """Return the fraction of matched returns whose depths differ by less than ``metres``."""
        return float(np.mean(np.abs(self.differences) < metres)) if self.matched else float('nan')

    def to_dict(self):
        """Return the summary as plain data."""
        return {'frames': self.frames, 'radius_px': self.radius, 'matched_returns': self.matched,
                'median_abs_m': self.median_abs, 'within_1m': self.fraction_within(1.0),
                'within_0.5m': self.fraction_within(0.5)}


def radar_lidar_agreement(samples, radius=3, T_radar_perturbation=None, min_depth=1.0, max_depth=120.0):
    """
    Return the Agreement of radar and lidar depths over ``samples`` (Samples with ``lidar_xyz``).

    ``T_radar_perturbation`` (4x4, camera frame) is applied to the radar returns first: a way to see how the figure
    reacts to a calibration error.
    """
    offsets = np.array([(dv, du) for dv in range(-radius, radius + 1) for du in range(-radius, radius + 1)
                        if dv * dv + du * du <= radius * radius])
    distances = np.hypot(offsets[:, 0], offsets[:, 1])
    differences = []
    count = 0
    for sample in samples:
        count += 1
        K, width, height = sample.intrinsics.K, sample.width, sample.height
        radar = sample.radar.xyz
        if T_radar_perturbation is not None:
            radar = transform_points(radar, T_radar_perturbation)
        hits = project_points(radar, K, width, height, min_depth=min_depth, max_depth=max_depth)
        lidar = sparse_depth_image(sample.lidar_xyz, K, width, height, min_depth=min_depth,
                                   max_depth=max_depth)
        rows = np.clip(hits.v[:, None] + offsets[None, :, 0], 0, height - 1)
        cols = np.clip(hits.u[:, None] + offsets[None, :, 1], 0, width - 1)
        window = lidar[rows, cols]                                   # (returns, offsets)
        distance = np.where(window > 0, distances[None, :], np.inf)
        nearest = np.argmin(distance, axis=1)
        matched = np.isfinite(distance[np.arange(len(hits)), nearest])
        differences.append(hits.z[matched] - window[np.nonzero(matched)[0], nearest[matched]])
    values = np.concatenate(differences) if differences else np.zeros(0)
    return Agreement(values, count, radius)
