"""The one sample format every reader yields."""

import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints


@dataclasses.dataclass
class Sample:
    """
    One synchronised camera + radar (+ lidar ground truth) frame.

    Conventions: the camera frame is optical (x right, y down, z forward); depth is metres along z; a depth map
    is float32 (H, W) with 0 where there is no measurement. ``extrinsics[name]`` is the 4x4 transform taking
    points from sensor frame ``name`` into the camera frame (``T_camera_from_sensor``). Radar returns and lidar
    points are stored already moved into the camera frame.
    """

    source: str                       # 'astyx', 'nuscenes', 'zju', 'synthetic'
    frame_id: str                     # data-set frame identifier, e.g. '000123' (not the TF frame)
    stamp_ns: int                     # camera timestamp, nanoseconds
    image: np.ndarray                 # (H, W, 3) uint8 RGB
    intrinsics: CameraIntrinsics      # for `image`
    radar: RadarPoints                # in the camera frame, frame_id = camera TF frame
    lidar_xyz: typing.Optional[np.ndarray]   # (M, 3) float32 in the camera frame, or None
    depth_gt: np.ndarray              # (H, W) float32 sparse lidar depth, 0 = invalid
    depth_gt_dense: typing.Optional[np.ndarray] = None   # (H, W) float32 dense / interpolated GT where known
    radar_image: typing.Optional[np.ndarray] = None      # (H, W, C) float32 at image resolution (see data.readers)
    radar_channels: typing.Tuple[str, ...] = ()
    extrinsics: typing.Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    frames: typing.Dict[str, str] = dataclasses.field(default_factory=dict)   # role -> TF frame id
    stamps_ns: typing.Dict[str, int] = dataclasses.field(default_factory=dict)  # role -> stamp of that sensor
    boxes: typing.Optional[list] = None  # 3D boxes in the camera frame where the source has them
    # The encoded file (JPEG / PNG) whose decoded pixels are exactly `image`, so a bag can keep the original bytes;
    # None when there is none or the reader changed the pixels (e.g. cropped rows).
    image_path: typing.Optional[str] = None
    # 4x4 T_world_from_camera at the image stamp where the source knows the ego motion (nuScenes, synthetic),
    # frames['world'] naming the fixed frame; None otherwise (Astyx, ZJU).
    ego_pose: typing.Optional[np.ndarray] = None
    # role -> 4x4 T_world_from_sensor at stamps_ns[role], where the source knows the ego motion: the points of a
    # sensor were moved into the camera frame with inv(ego_pose) @ sensor_poses[role] (motion compensated), while
    # extrinsics[role] is the static mounting calibration.
    sensor_poses: typing.Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # (M,) int16: the laser (ring) of each row of lidar_xyz where the sensor reports it (Astyx VLP-16 LaserID,
    # the synthetic lidar's beam index from the lowest beam up); None otherwise. A teacher that reads a fixed part
    # of the lidar selects it by ring (rcdepth_ros.data.dataset, model.lidar_input).
    lidar_ring: typing.Optional[np.ndarray] = None

    @property
    def height(self):
        """Image height in pixels."""
        return self.image.shape[0]

    @property
    def width(self):
        """Image width in pixels."""
        return self.image.shape[1]
