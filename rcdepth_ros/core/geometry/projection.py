"""
Projection of camera-frame points into an image, z-buffering (nearest point per pixel), sparse depth maps.

Conventions: the camera frame is optical (x right, y down, z forward); pixel centres lie at integer coordinates
(OpenCV), so a point at ``(u, v)`` lands in pixel ``(round(u), round(v))``. Depth maps are float32 with 0 where
there is no measurement.
"""

import dataclasses

import numpy as np

from rcdepth_ros.core.geometry.transforms import as_points
from rcdepth_ros.errors import ProjectionError


def as_camera_matrix(K):
    """Return ``K`` as a finite float64 3x3 matrix with positive focal lengths, or raise ProjectionError."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ProjectionError(f'K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}')
    return K


@dataclasses.dataclass
class PixelHits:
    """Points that land in the image: pixel ``u``, ``v`` (int64), depth ``z``, and ``index`` into the input."""

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    index: np.ndarray

    def __len__(self):
        """Return the number of hits."""
        return self.index.shape[0]


def project_points(points_cam, K, width, height, min_depth=1.0, max_depth=np.inf):
    """
    Project camera-frame points and keep those that land in a ``width`` x ``height`` image.

    Dropped: NaN / inf coordinates, points behind the camera or closer than ``min_depth`` (metres along z),
    points beyond ``max_depth``, points whose pixel is outside the image. Collisions are not resolved here
    (see ``nearest_per_pixel``).
    """
    points = as_points(points_cam)
    K = as_camera_matrix(K)
    if width <= 0 or height <= 0:
        raise ProjectionError(f'image size must be positive, got {height}x{width} (HxW)')
    z = points[:, 2]
    with np.errstate(invalid='ignore'):
        keep = np.isfinite(points).all(axis=1) & (z >= max(min_depth, 1e-6)) & (z <= max_depth)
    idx = np.nonzero(keep)[0]
    p = points[idx]
    zs = p[:, 2]
    u = np.floor(K[0, 0] * p[:, 0] / zs + K[0, 1] * p[:, 1] / zs + K[0, 2] + 0.5)
    v = np.floor(K[1, 1] * p[:, 1] / zs + K[1, 2] + 0.5)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return PixelHits(u[inside].astype(np.int64), v[inside].astype(np.int64), zs[inside], idx[inside])


def nearest_per_pixel(hits, width):
    """Return the positions (into ``hits``) of the nearest hit in every pixel hit at least once."""
    if len(hits) == 0:
        return np.zeros(0, dtype=np.int64)
    linear = hits.v * int(width) + hits.u
    order = _by_pixel_then_depth(linear, hits.z)  # the first of each pixel is the nearest
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = linear[order][1:] != linear[order][:-1]
    return order[first]


def _by_pixel_then_depth(linear, z):
    """Return the order sorting hits by pixel, then depth; ties keep input order (same result as lexsort)."""
    # One int64 key, pixel in the high bits and the depth's float64 bit pattern (ordered like the value for
    # positive depths) in the low bits, sorts about 10x faster than np.lexsort on two keys (measured in
    # benchmarks/bench_core.py). The depth keeps 63 - pixel_bits bits (42 at 900x1600: exact for float32 depths);
    # equal keys, or depths the bit trick cannot order, fall back to the stable two-key sort.
    pixel_bits = max(int(linear.max()).bit_length(), 1)
    z = np.ascontiguousarray(z, dtype=np.float64)
    if pixel_bits <= 29 and np.all(z > 0) and np.all(np.isfinite(z)):
        key = (linear.astype(np.int64) << (63 - pixel_bits)) | (z.view(np.int64) >> pixel_bits)
        order = np.argsort(key)
        ordered = key[order]
        if not np.any(ordered[1:] == ordered[:-1]):
            return order
    return np.lexsort((z, linear))


def sparse_depth_image(points_cam, K, width, height, min_depth=1e-3, max_depth=np.inf):
    """Return an (H, W) float32 depth map of camera-frame points (nearest wins, 0 elsewhere)."""
    hits = project_points(points_cam, K, width, height, min_depth, max_depth)
    keep = nearest_per_pixel(hits, width)
    depth = np.zeros((int(height), int(width)), dtype=np.float32)
    depth[hits.v[keep], hits.u[keep]] = hits.z[keep]
    return depth
