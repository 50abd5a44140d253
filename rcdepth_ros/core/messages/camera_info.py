"""CameraInfo messages <-> CameraIntrinsics, without rclpy."""

import numpy as np

from rcdepth_ros.core.messages.buffers import float_vector, nonnegative_int
from rcdepth_ros.core.messages.msgtypes import convert_header, make_header, ros_message_types
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import ConversionError


def camera_info_to_intrinsics(msg):
    """
    Return CameraIntrinsics (K, size, distortion model and coefficients, frame id) from a CameraInfo.

    Raises ConversionError for a K that is not 9 finite numbers with positive focal lengths (``k[0] == 0`` is
    an uncalibrated camera) or a zero image size.
    """
    k = float_vector(msg, 'k', 'camera info')
    if k.shape != (9,):
        raise ConversionError(f'camera info: k must hold 9 numbers, got {k.shape[0]}')
    K = k.reshape(3, 3)
    if not np.all(np.isfinite(K)) or not K[0, 0] > 0 or not K[1, 1] > 0:
        raise ConversionError(f'camera info: K must be finite with positive focal lengths (k[0] = fx, k[4] = fy), '
                              f'got fx={K[0, 0]}, fy={K[1, 1]}: uncalibrated camera?')
    width = nonnegative_int(msg, 'width', 'camera info')
    height = nonnegative_int(msg, 'height', 'camera info')
    if width == 0 or height == 0:
        raise ConversionError(f'camera info: image size must be positive, got {height}x{width} (HxW)')
    d = float_vector(msg, 'd', 'camera info')
    header = getattr(msg, 'header', None)
    return CameraIntrinsics(K, width, height, str(getattr(msg, 'distortion_model', '') or 'plumb_bob'), d,
                            str(getattr(header, 'frame_id', '')))


def intrinsics_to_camera_info(intrinsics, header=None, types=None):
    """
    Return a CameraInfo of ``types`` describing rectified images with ``intrinsics``.

    ``d`` is the intrinsics' distortion (five zeros when empty), ``r`` the identity, ``p = [K | 0]``; without a
    ``header`` the frame id is the intrinsics' own.
    """
    types = types or ros_message_types()
    K = np.asarray(intrinsics.K, dtype=np.float64)
    d = np.asarray(intrinsics.distortion, dtype=np.float64).reshape(-1)
    if d.size == 0:
        d = np.zeros(5)
    P = np.zeros((3, 4))
    P[:, :3] = K
    header = make_header(types, 0, intrinsics.frame_id) if header is None else convert_header(types, header)
    return types.new('CameraInfo', header=header, height=int(intrinsics.height), width=int(intrinsics.width),
                     distortion_model=intrinsics.distortion_model or 'plumb_bob', d=_float_array(types, d),
                     k=K.reshape(-1).copy(), r=np.eye(3).reshape(-1), p=P.reshape(-1))


def _float_array(types, values):
    # rclpy's variable-length float64[] wants an array.array or a list, rosbags a numpy array.
    if types.flavour == 'rclpy':
        return [float(v) for v in values]
    return np.asarray(values, dtype=np.float64)
