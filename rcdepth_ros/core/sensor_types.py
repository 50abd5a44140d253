"""Plain data types shared by the core, the data readers, the engine and the nodes."""

import dataclasses

import numpy as np

from rcdepth_ros.errors import ProjectionError, RadarFormatError


@dataclasses.dataclass
class CameraIntrinsics:
    """
    A pinhole camera: 3x3 ``K`` (float64) for an image of ``width`` x ``height`` pixels.

    ``distortion`` holds the distortion coefficients of ``distortion_model``; the package works on rectified
    (undistorted) images, so they are carried for the record and written back to CameraInfo unchanged.
    """

    K: np.ndarray
    width: int
    height: int
    distortion_model: str = 'plumb_bob'
    distortion: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(5))
    frame_id: str = ''

    def __post_init__(self):
        """Validate K and the size; raise ProjectionError naming the problem."""
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ProjectionError(f'intrinsics: K must be 3x3, got shape {K.shape}')
        if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ProjectionError(f'intrinsics: K must be finite with positive focal lengths, got fx={K[0, 0]}, '
                                  f'fy={K[1, 1]}')
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ProjectionError(f'intrinsics: image size must be positive, got {self.height}x{self.width} (HxW)')
        self.K = K
        self.width = int(self.width)
        self.height = int(self.height)
        self.distortion = np.asarray(self.distortion, dtype=np.float64).reshape(-1)


@dataclasses.dataclass
class RadarPoints:
    """
    Radar returns of one sweep (or several, merged) in the frame ``frame_id``.

    ``xyz`` metres (N, 3); ``rcs`` radar cross-section or magnitude (N,), 0 where the sensor gives none;
    ``v_radial`` Doppler velocity along the line of sight in m/s, positive moving away (N,), 0 where unknown;
    ``vxy`` Cartesian velocity (vx, vy) as the sensor reports it (nuScenes ``vx_comp``, ``vy_comp``), in that
    sensor's own frame, NaN where the sensor gives none. It is a per-return attribute like RCS: moving the points
    into another frame does not change it (the papers feed these raw values to the network).
    """

    xyz: np.ndarray
    rcs: np.ndarray = None
    v_radial: np.ndarray = None
    vxy: np.ndarray = None
    frame_id: str = ''
    stamp_ns: int = 0

    def __post_init__(self):
        """Coerce to float32 arrays of consistent length; raise RadarFormatError otherwise."""
        xyz = np.asarray(self.xyz, dtype=np.float32)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            if xyz.size == 0:
                xyz = xyz.reshape(0, 3)
            else:
                raise RadarFormatError(f'radar points: xyz must have shape (N, 3), got {xyz.shape}')
        n = xyz.shape[0]
        self.xyz = xyz
        self.rcs = self._column(self.rcs, n, 0.0, 'rcs')
        self.v_radial = self._column(self.v_radial, n, 0.0, 'v_radial')
        if self.vxy is None:
            self.vxy = np.full((n, 2), np.nan, dtype=np.float32)
        else:
            vxy = np.asarray(self.vxy, dtype=np.float32)
            if vxy.shape != (n, 2):
                raise RadarFormatError(f'radar points: vxy must have shape ({n}, 2), got {vxy.shape}')
            self.vxy = vxy
        self.stamp_ns = int(self.stamp_ns)

    @staticmethod
    def _column(values, n, fill, name):
        if values is None:
            return np.full(n, fill, dtype=np.float32)
        arr = np.asarray(values, dtype=np.float32).reshape(-1)
        if arr.shape[0] != n:
            raise RadarFormatError(f'radar points: {name} has {arr.shape[0]} values for {n} points')
        return arr

    def __len__(self):
        """Return the number of returns."""
        return self.xyz.shape[0]

    def select(self, mask):
        """Return the returns where ``mask`` (boolean or index array) selects them."""
        return RadarPoints(self.xyz[mask], self.rcs[mask], self.v_radial[mask], self.vxy[mask], self.frame_id,
                           self.stamp_ns)

    def transformed(self, T, frame_id):
        """
        Return the returns moved by the 4x4 rigid transform ``T`` into ``frame_id``.

        Positions are transformed; RCS, radial velocity and the sensor-frame ``vxy`` are attributes and stay.
        """
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ProjectionError(f'radar points: transform must be a finite 4x4 matrix, got shape {T.shape}')
        xyz = self.xyz.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        return RadarPoints(xyz.astype(np.float32), self.rcs.copy(), self.v_radial.copy(), self.vxy.copy(),
                           frame_id, self.stamp_ns)

    @staticmethod
    def concatenate(parts, frame_id=None):
        """Merge several sweeps already expressed in one frame."""
        parts = list(parts)
        if not parts:
            return RadarPoints(np.zeros((0, 3), np.float32), frame_id=frame_id or '')
        return RadarPoints(np.concatenate([p.xyz for p in parts]), np.concatenate([p.rcs for p in parts]),
                           np.concatenate([p.v_radial for p in parts]), np.concatenate([p.vxy for p in parts]),
                           frame_id if frame_id is not None else parts[0].frame_id,
                           max(p.stamp_ns for p in parts))
