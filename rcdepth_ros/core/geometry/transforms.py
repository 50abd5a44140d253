"""
Rigid transforms: 4x4 matrices, quaternions, inversion, moving points between frames.

Convention: ``T_a_from_b`` is a 4x4 matrix taking points from frame ``b`` into frame ``a``.
"""

import numpy as np

from rcdepth_ros.errors import ProjectionError


def as_transform(T, what='transform'):
    """Return ``T`` as a finite 4x4 float64 rigid transform, or raise ProjectionError naming ``what``."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ProjectionError(f'{what}: expected a 4x4 matrix, got shape {T.shape}')
    if not np.all(np.isfinite(T)):
        raise ProjectionError(f'{what}: matrix has NaN or inf entries')
    if not np.allclose(T[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6):
        raise ProjectionError(f'{what}: last row must be [0, 0, 0, 1], got {T[3].tolist()}')
    return T


def transform_from_translation_quaternion(translation, quaternion_xyzw):
    """Build a 4x4 transform from a translation and a unit quaternion (x, y, z, w), as in geometry_msgs."""
    x, y, z, w = (float(q) for q in quaternion_xyzw)
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ProjectionError(f'quaternion {quaternion_xyzw} has zero or non-finite norm')
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def quaternion_xyzw_from_matrix(R):
    """Return the unit quaternion (x, y, z, w) of a 3x3 rotation matrix (w >= 0)."""
    R = np.asarray(R, dtype=np.float64)[:3, :3]
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def invert_transform(T):
    """Return the inverse of a rigid 4x4 transform (exact for rotation + translation)."""
    T = as_transform(T)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def transform_points(points, T):
    """Return ``points`` (N, 3) moved by the 4x4 transform ``T``, as float64."""
    points = as_points(points)
    T = as_transform(T)
    return points @ T[:3, :3].T + T[:3, 3]


def as_points(points, what='points'):
    """Return ``points`` as float64 (N, 3) (an empty input as (0, 3)); ProjectionError naming ``what`` otherwise."""
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ProjectionError(f'{what}: expected shape (N, 3), got {points.shape}')
    return points
