"""
One ``Sample`` -> the messages of its frame in a bag: image, camera_info, radar and lidar clouds, transforms.

Every message is built by the core conversions (``conversions``, ``radar``) with the rosbags flavour of message
classes. Points go back into their sensor's frame at that sensor's stamp: a reader stored them in the camera frame
at the image time with ``T_applied = inv(ego_pose) @ sensor_poses[role]`` where it knows the ego motion
(nuScenes, synthetic) and ``extrinsics[role]`` otherwise, so the bag holds ``inv(T_applied) @ points``, and
``/tf_static`` + ``/tf`` give ``T_applied`` back to any consumer (``lookup_transform_full``).
"""

import dataclasses
from pathlib import Path
import typing

import numpy as np

from rcdepth_ros.core.bags.layout import (CAMERA_INFO_TYPE, COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, POINTCLOUD2_TYPE,
                                          radar_fields)
from rcdepth_ros.core.geometry.transforms import as_transform, invert_transform, transform_points
from rcdepth_ros.core.messages.camera_info import intrinsics_to_camera_info
from rcdepth_ros.core.messages.clouds import numpy_to_pointcloud2
from rcdepth_ros.core.messages.images import depth_to_image_msg, numpy_to_compressed, numpy_to_image
from rcdepth_ros.core.messages.msgtypes import make_header
from rcdepth_ros.core.messages.radar import radar_to_pointcloud2
from rcdepth_ros.errors import BagError

JPEG_MAGIC = b'\xff\xd8'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# Two ego poses of one stamp must agree to this (metres / rotation-matrix entries), else the sample is inconsistent.
_POSE_TOLERANCE = 1e-6


@dataclasses.dataclass
class FrameMessage:
    """One message of a frame before serialisation: ``kind`` is a key of ``layout.TOPIC_RANK``."""

    stamp_ns: int
    kind: str
    topic: str
    msgtype: str
    msg: typing.Any


def describe(sample):
    """Return '<source> frame <frame id>' for error messages."""
    return f'{sample.source or "sample"} frame {sample.frame_id}'


def radar_roles(sample):
    """
    Return the sample's radar roles in the order its returns were concatenated.

    A radar role is 'radar' or 'radar_<name>' (nuScenes: 'radar_front_left', ...) among the extrinsics.
    """
    return [role for role in sample.extrinsics if role == 'radar' or role.startswith('radar_')]


def body_role(sample):
    """Return the role whose frame carries the sensors in the TF tree: 'base' where there is one, else 'camera'."""
    return 'base' if 'base' in sample.extrinsics else 'camera'


def applied_transform(sample, role):
    """
    Return the 4x4 transform the reader applied to ``role``'s points: ``T_camera(t_image)_from_sensor(t_role)``.

    ``inv(ego_pose) @ sensor_poses[role]`` where the sample knows the ego motion, else ``extrinsics[role]``.
    """
    if sample.ego_pose is not None and role in sample.sensor_poses:
        T_world_from_sensor = as_transform(sample.sensor_poses[role], f'sensor_poses[{role!r}]')
        return invert_transform(sample.ego_pose) @ T_world_from_sensor
    if role not in sample.extrinsics:
        raise BagError(f'{describe(sample)}: no extrinsics for {role!r} (have {sorted(sample.extrinsics)})')
    return as_transform(sample.extrinsics[role], f'{describe(sample)} extrinsics[{role!r}]')


def _T_camera_from_body(sample):
    if body_role(sample) == 'camera':
        return np.eye(4)
    return as_transform(sample.extrinsics['base'], f"{describe(sample)} extrinsics['base']")


def static_transforms(sample, layout):
    """
    Return ``{child frame: (body frame, T_body_from_child)}``: every sensor's mounting on the body.

    The body is the vehicle frame ('base' role, e.g. base_link) where the sample has one, else the camera. A sensor
    whose frame is the body's own (ZJU's radar, pre-projected into the camera) must have the identity and adds
    nothing.
    """
    body = layout.frame(body_role(sample), sample.frames)
    T_body_from_camera = invert_transform(_T_camera_from_body(sample))
    mounted = {'camera': np.eye(4)}
    mounted.update((role, T) for role, T in sample.extrinsics.items() if role != 'base')
    result = {}
    for role, T in mounted.items():
        T = T_body_from_camera @ as_transform(T, f'{describe(sample)} extrinsics[{role!r}]')
        child = layout.frame(role, sample.frames)
        if child == body:
            if not np.allclose(T, np.eye(4), atol=1e-9):
                raise BagError(f'{describe(sample)}: {role} is in the {body!r} frame but its transform to it is not '
                               f'the identity')
            continue
        result[child] = (body, T)
    return result


def ego_transforms(sample, layout):
    """
    Return ``[(stamp_ns, T_world_from_body)]`` at the image stamp and every sensor stamp, sorted by time.

    ``T_world_from_camera`` at a sensor's stamp is ``sensor_poses[role] @ inv(extrinsics[role])`` (the vehicle is
    rigid); the body's pose follows with ``extrinsics['base']``. Empty when the sample has no ego motion.
    """
    if sample.ego_pose is None:
        return []
    T_camera_from_body = _T_camera_from_body(sample)
    poses = {int(sample.stamp_ns): as_transform(sample.ego_pose, f'{describe(sample)} ego_pose')}
    for role, T_world_from_sensor in sample.sensor_poses.items():
        if role == 'camera' or role not in sample.extrinsics:
            continue
        stamp = int(sample.stamps_ns.get(role, sample.stamp_ns))
        T = as_transform(T_world_from_sensor, f'{describe(sample)} sensor_poses[{role!r}]') @ \
            invert_transform(sample.extrinsics[role])
        if stamp in poses and not np.allclose(poses[stamp], T, atol=_POSE_TOLERANCE):
            raise BagError(f'{describe(sample)}: two different ego poses at {stamp} ns (from {role!r} and an '
                           f'earlier sensor)')
        poses.setdefault(stamp, T)
    return [(stamp, T @ T_camera_from_body) for stamp, T in sorted(poses.items())]


def _header(types, stamp_ns, frame_id):
    return make_header(types, int(stamp_ns), frame_id)


def image_message(sample, layout, options, types):
    """Return the FrameMessage of the camera image: Image rgb8, or CompressedImage (original bytes if any)."""
    header = _header(types, sample.stamp_ns, layout.frame('camera', sample.frames))
    if not options.compressed:
        msg = numpy_to_image(sample.image, 'rgb8', header, types)
        return FrameMessage(sample.stamp_ns, 'image', layout.image_topic, IMAGE_TYPE, msg)
    payload, fmt = original_image_bytes(sample)
    if payload is None:
        msg = numpy_to_compressed(sample.image, 'rgb8', options.compressed_format, header, types,
                                  options.jpeg_quality)
    else:
        msg = types.new('CompressedImage', header=header, format=f'rgb8; {fmt} compressed bgr8',
                        data=types.data(payload))
    return FrameMessage(sample.stamp_ns, 'image', layout.compressed_image_topic, COMPRESSED_IMAGE_TYPE, msg)


def original_image_bytes(sample):
    """
    Return (bytes, 'jpeg' | 'png') of the file the sample's pixels were decoded from, or (None, None).

    ``Sample.image_path`` is set by a reader only when the file's decoded pixels are exactly ``image``.
    """
    if not sample.image_path:
        return None, None
    path = Path(sample.image_path)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise BagError(f'{describe(sample)}: cannot read the original image {path} ({exc.strerror or exc})') \
            from None
    if payload.startswith(JPEG_MAGIC):
        return payload, 'jpeg'
    if payload.startswith(PNG_MAGIC):
        return payload, 'png'
    raise BagError(f'{describe(sample)}: original image {path} is neither JPEG nor PNG')


def camera_info_message(sample, layout, types):
    """Return the FrameMessage of the camera's CameraInfo at the image stamp."""
    header = _header(types, sample.stamp_ns, layout.frame('camera', sample.frames))
    msg = intrinsics_to_camera_info(sample.intrinsics, header, types)
    return FrameMessage(sample.stamp_ns, 'camera_info', layout.camera_info_topic, CAMERA_INFO_TYPE, msg)


def radar_messages(sample, layout, types, radar_records=None):
    """
    Return one PointCloud2 FrameMessage per radar role, each in its sensor frame at its stamp.

    ``radar_records(sample, role)`` may return the raw structured records of a role's sweep in its sensor frame
    (nuScenes' 18-field PCD records); they are written as they are, and must account for every return of the
    sample. Otherwise the sample's camera-frame returns are moved back with the inverse of the applied transform
    and written with the source's fields (``layout.RADAR_FIELDS``); several radar roles then need records,
    because the sample holds their returns concatenated.
    """
    roles = radar_roles(sample)
    if not roles:
        # Returns with no extrinsics are in the camera frame already.
        header = _header(types, sample.radar.stamp_ns or sample.stamp_ns, layout.frame('camera', sample.frames))
        msg = radar_to_pointcloud2(sample.radar, header, types, dict(radar_fields(sample.source)))
        return [FrameMessage(sample.stamp_ns, 'radar', layout.radar_topic, POINTCLOUD2_TYPE, msg)]
    records = {role: radar_records(sample, role) for role in roles} if radar_records else {}
    messages = []
    if records and all(r is not None for r in records.values()):
        total = sum(len(r) for r in records.values())
        if total != len(sample.radar):
            raise BagError(f'{describe(sample)}: the raw radar records hold {total} returns, the sample '
                           f'{len(sample.radar)} (filtered or several sweeps?): cannot write them as the sample')
        for role in roles:
            stamp = int(sample.stamps_ns.get(role, sample.stamp_ns))
            header = _header(types, stamp, layout.frame(role, sample.frames))
            msg = numpy_to_pointcloud2(records[role], header, types)
            messages.append(FrameMessage(stamp, 'radar', layout.radar_topic_for(role), POINTCLOUD2_TYPE, msg))
        return messages
    if len(roles) > 1:
        raise BagError(f'{describe(sample)}: {len(roles)} radars ({roles}) merged in one sample cannot be split '
                       f'into their sweeps without the raw records')
    role = roles[0]
    stamp = int(sample.stamps_ns.get(role, sample.radar.stamp_ns or sample.stamp_ns))
    frame = layout.frame(role, sample.frames)
    radar = sample.radar.transformed(invert_transform(applied_transform(sample, role)), frame)
    msg = radar_to_pointcloud2(radar, _header(types, stamp, frame), types, dict(radar_fields(sample.source)))
    return [FrameMessage(stamp, 'radar', layout.radar_topic_for(role), POINTCLOUD2_TYPE, msg)]


def lidar_message(sample, layout, types):
    """Return the lidar PointCloud2 FrameMessage (x, y, z float32 in the lidar frame), or None without lidar."""
    if sample.lidar_xyz is None:
        return None
    xyz = np.asarray(sample.lidar_xyz, dtype=np.float64).reshape(-1, 3)
    if 'lidar' in sample.extrinsics:
        frame = layout.frame('lidar', sample.frames)
        xyz = transform_points(xyz, invert_transform(applied_transform(sample, 'lidar')))
    else:
        frame = layout.frame('camera', sample.frames)
    stamp = int(sample.stamps_ns.get('lidar', sample.stamp_ns))
    xyz = xyz.astype(np.float32)
    msg = numpy_to_pointcloud2({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, _header(types, stamp, frame),
                               types)
    return FrameMessage(stamp, 'lidar', layout.lidar_topic, POINTCLOUD2_TYPE, msg)


def depth_message(sample, layout, types, dense):
    """Return a 32FC1 ground-truth depth FrameMessage (``depth_gt`` or ``depth_gt_dense``), or None if absent."""
    depth = sample.depth_gt_dense if dense else sample.depth_gt
    if depth is None:
        return None
    header = _header(types, sample.stamp_ns, layout.frame('camera', sample.frames))
    kind = 'depth_gt_dense' if dense else 'depth_gt'
    topic = layout.depth_gt_dense_topic if dense else layout.depth_gt_topic
    return FrameMessage(sample.stamp_ns, kind, topic, IMAGE_TYPE, depth_to_image_msg(depth, header, types))


def sample_messages(sample, layout, options, types, radar_records=None):
    """
    Return the FrameMessages of one sample (transforms excluded), in no particular order.

    The sparse GT depth image is written only when the sample has no lidar points (and ``options.lidar``): with
    points the lidar cloud is the ground truth. The dense GT image is written with ``options.dense_gt``.
    """
    messages = [image_message(sample, layout, options, types), camera_info_message(sample, layout, types)]
    messages.extend(radar_messages(sample, layout, types, radar_records))
    if options.lidar:
        lidar = lidar_message(sample, layout, types)
        messages.append(lidar if lidar is not None else depth_message(sample, layout, types, dense=False))
    if options.dense_gt:
        messages.append(depth_message(sample, layout, types, dense=True))
    return [m for m in messages if m is not None]
