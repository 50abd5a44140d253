"""
The messages of one made-up camera + radar + lidar frame, for tests and benchmarks of the node and the pipeline.

``FrameMessageFactory(types, width, height)`` builds, for a stamp, an rgb8 Image (or a CompressedImage), its
CameraInfo, a radar PointCloud2 (x, y, z, rcs, v_r float32, in the radar frame) and a lidar PointCloud2 (x, y, z in
the lidar frame), with message classes of either flavour (``core.messages.msgtypes``). The scene is a reproducible
random set of points in front of the camera; the sensors sit at known offsets (``T_camera_from_radar``,
``T_camera_from_lidar``) so a consumer that applies the extrinsics gets the points back in the camera frame.
"""

import numpy as np

from rcdepth_ros.core.geometry.transforms import invert_transform, transform_points
from rcdepth_ros.core.messages.camera_info import intrinsics_to_camera_info
from rcdepth_ros.core.messages.clouds import numpy_to_pointcloud2
from rcdepth_ros.core.messages.images import numpy_to_compressed, numpy_to_image
from rcdepth_ros.core.messages.msgtypes import make_header
from rcdepth_ros.core.messages.radar import radar_to_pointcloud2
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints

CAMERA_FRAME = 'camera_optical'
RADAR_FRAME = 'radar'
LIDAR_FRAME = 'lidar'
# Radar 0.5 m below and 1 m behind the camera, axes (x forward, y left, z up) as a vehicle sensor is mounted.
T_CAMERA_FROM_RADAR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.5], [1.0, 0.0, 0.0, -1.0],
                                [0.0, 0.0, 0.0, 1.0]])
T_CAMERA_FROM_LIDAR = np.array([[0.0, -1.0, 0.0, 0.1], [0.0, 0.0, -1.0, -0.3], [1.0, 0.0, 0.0, -0.5],
                                [0.0, 0.0, 0.0, 1.0]])


class FrameMessageFactory:
    """Build the messages of synthetic frames (see the module docstring)."""

    def __init__(self, types, width=160, height=120, radar_points=60, lidar_points=2000, seed=0):
        """Fix the camera (fx = fy = 0.8 width, centred) and the point counts."""
        self.types = types
        self.width, self.height = int(width), int(height)
        focal = 0.8 * self.width
        self.intrinsics = CameraIntrinsics(np.array([[focal, 0.0, (self.width - 1) / 2.0],
                                                     [0.0, focal, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]]),
                                           self.width, self.height, frame_id=CAMERA_FRAME)
        self.radar_points = int(radar_points)
        self.lidar_points = int(lidar_points)
        self.seed = int(seed)

    def header(self, stamp_ns, frame_id):
        """Return a Header of the factory's flavour."""
        return make_header(self.types, stamp_ns, frame_id)

    def rgb(self, stamp_ns):
        """Return the (H, W, 3) uint8 picture of a stamp (smooth gradients plus noise, different per stamp)."""
        rng = np.random.default_rng([self.seed, int(stamp_ns) % (2 ** 32)])
        rows = np.linspace(0, 255, self.height, dtype=np.float32)[:, None]
        cols = np.linspace(0, 255, self.width, dtype=np.float32)[None, :]
        base = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2], axis=2)
        noise = rng.normal(0.0, 12.0, base.shape)
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    def image(self, stamp_ns, encoding='rgb8', frame_id=CAMERA_FRAME):
        """Return the Image of a stamp (rgb8, or bgr8 / mono8 / any encoding the pixels convert to)."""
        rgb = self.rgb(stamp_ns)
        if encoding == 'bgr8':
            pixels = np.ascontiguousarray(rgb[:, :, ::-1])
        elif encoding == 'mono8':
            pixels = rgb[:, :, 1].copy()
        elif encoding == '32FC1':
            pixels = rgb[:, :, 0].astype(np.float32)
        else:
            pixels = rgb
        return numpy_to_image(pixels, encoding, self.header(stamp_ns, frame_id), self.types)

    def compressed_image(self, stamp_ns, fmt='png', frame_id=CAMERA_FRAME):
        """Return the CompressedImage of a stamp (PNG keeps the pixels exact)."""
        return numpy_to_compressed(self.rgb(stamp_ns), 'rgb8', fmt, self.header(stamp_ns, frame_id), self.types)

    def camera_info(self, stamp_ns, width=None, height=None, frame_id=CAMERA_FRAME):
        """Return the CameraInfo of a stamp (optionally for another image size, K scaled with it)."""
        intrinsics = self.intrinsics
        if width is not None or height is not None:
            sx = (width or self.width) / self.width
            sy = (height or self.height) / self.height
            K = intrinsics.K.copy()
            K[0] *= sx
            K[1] *= sy
            intrinsics = CameraIntrinsics(K, width or self.width, height or self.height, frame_id=frame_id)
        return intrinsics_to_camera_info(intrinsics, self.header(stamp_ns, frame_id), self.types)

    def scene_points(self, stamp_ns, count):
        """Return (count, 3) camera-frame points in front of the camera (4-60 m), reproducible per stamp."""
        rng = np.random.default_rng([self.seed, int(stamp_ns) % (2 ** 32), count])
        z = rng.uniform(4.0, 60.0, count)
        x = rng.uniform(-0.45, 0.45, count) * z
        y = rng.uniform(-0.1, 0.35, count) * z
        return np.column_stack([x, y, z])

    def radar_camera(self, stamp_ns):
        """Return the radar returns of a stamp in the camera frame (RadarPoints, known RCS and velocity)."""
        xyz = self.scene_points(stamp_ns, self.radar_points)
        rng = np.random.default_rng([self.seed, int(stamp_ns) % (2 ** 32), 7])
        return RadarPoints(xyz, rng.uniform(-5.0, 25.0, len(xyz)), rng.uniform(-8.0, 8.0, len(xyz)),
                           frame_id=CAMERA_FRAME, stamp_ns=stamp_ns)

    def radar(self, stamp_ns, frame_id=RADAR_FRAME, points=None):
        """Return the radar PointCloud2 of a stamp in ``frame_id`` (the radar frame by default)."""
        radar = self.radar_camera(stamp_ns) if points is None else points
        moved = radar.transformed(invert_transform(T_CAMERA_FROM_RADAR), frame_id)
        return radar_to_pointcloud2(moved, self.header(stamp_ns, frame_id), self.types,
                                    {'x': 'x', 'y': 'y', 'z': 'z', 'rcs': 'rcs', 'v_radial': 'v_r'})

    def lidar_camera(self, stamp_ns):
        """Return the lidar points (N, 3) of a stamp in the camera frame."""
        return self.scene_points(stamp_ns + 1, self.lidar_points)

    def lidar(self, stamp_ns, frame_id=LIDAR_FRAME):
        """Return the lidar PointCloud2 of a stamp (x, y, z float32 in the lidar frame)."""
        xyz = transform_points(self.lidar_camera(stamp_ns),
                               invert_transform(T_CAMERA_FROM_LIDAR)).astype(np.float32)
        return numpy_to_pointcloud2({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                                    self.header(stamp_ns, frame_id), self.types)

    def frame(self, stamp_ns):
        """Return ``{'image', 'camera_info', 'radar', 'lidar'}`` messages of one stamp."""
        return {'image': self.image(stamp_ns), 'camera_info': self.camera_info(stamp_ns),
                'radar': self.radar(stamp_ns), 'lidar': self.lidar(stamp_ns)}

    @staticmethod
    def extrinsics():
        """Return ``{frame: T_camera_from_frame}`` of the radar and the lidar."""
        return {RADAR_FRAME: T_CAMERA_FROM_RADAR.copy(), LIDAR_FRAME: T_CAMERA_FROM_LIDAR.copy()}
