"""
Oriented 3D boxes (annotated objects) in any frame: corners, membership of points, moving between frames.

A box's own axes are x along its length, y along its width, z along its height (right-handed), ``rotation``
takes box-axis vectors into the frame ``frame_id`` (``R_frame_from_box``) and ``center`` is its centre there.
"""

import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.geometry.transforms import as_transform, transform_from_translation_quaternion
from rcdepth_ros.errors import ProjectionError

# Corner signs in box axes: bottom face (z = -h/2) first, counter-clockwise seen from above, then the top face.
_CORNER_SIGNS = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, -1],
                          [1, 1, 1], [-1, 1, 1], [-1, -1, 1], [1, -1, 1]], dtype=np.float64)
# Pairs of corner indices joined by an edge (for drawing): bottom, top, verticals.
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


@dataclasses.dataclass
class Box3D:
    """An oriented box: ``center`` (3,), ``size`` (length, width, height), ``rotation`` (3, 3), a label."""

    center: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    label: str = ''
    frame_id: str = ''
    attributes: typing.Dict[str, typing.Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        """Coerce to float64 arrays; raise ProjectionError for bad shapes or non-finite values."""
        self.center = np.asarray(self.center, dtype=np.float64).reshape(-1)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(-1)
        self.rotation = np.asarray(self.rotation, dtype=np.float64)
        if self.center.shape != (3,) or self.size.shape != (3,) or self.rotation.shape != (3, 3):
            raise ProjectionError(f'box {self.label!r}: need center (3,), size (3,), rotation (3, 3); got '
                                  f'{self.center.shape}, {self.size.shape}, {self.rotation.shape}')
        if not (np.all(np.isfinite(self.center)) and np.all(np.isfinite(self.size))
                and np.all(np.isfinite(self.rotation))) or np.any(self.size < 0):
            raise ProjectionError(f'box {self.label!r}: non-finite values or negative size {self.size.tolist()}')

    @staticmethod
    def from_quaternion(center, size, quaternion_wxyz, label='', frame_id='', attributes=None):
        """Build a box whose orientation is the unit quaternion (w, x, y, z) of ``R_frame_from_box``."""
        w, x, y, z = (float(q) for q in quaternion_wxyz)
        T = transform_from_translation_quaternion(center, (x, y, z, w))
        return Box3D(T[:3, 3], size, T[:3, :3], label, frame_id, dict(attributes or {}))

    @property
    def pose(self):
        """Return the 4x4 transform from box axes into ``frame_id``."""
        T = np.eye(4)
        T[:3, :3] = self.rotation
        T[:3, 3] = self.center
        return T

    def corners(self):
        """Return the eight corner points, shape (8, 3), in ``frame_id`` (order: see ``BOX_EDGES``)."""
        local = _CORNER_SIGNS * (0.5 * self.size)
        return local @ self.rotation.T + self.center

    def transformed(self, T, frame_id):
        """Return this box moved by the rigid 4x4 transform ``T`` (``T_new_from_old``) into ``frame_id``."""
        T = as_transform(T, f'transform of box {self.label!r}')
        return Box3D(T[:3, :3] @ self.center + T[:3, 3], self.size.copy(), T[:3, :3] @ self.rotation,
                     self.label, frame_id, dict(self.attributes))

    def contains(self, points, margin=0.0):
        """Return a boolean mask (N,) of the points (N, 3, same frame) inside the box grown by ``margin``."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        local = (points - self.center) @ self.rotation
        half = 0.5 * self.size + margin
        return np.all(np.abs(local) <= half, axis=1)
