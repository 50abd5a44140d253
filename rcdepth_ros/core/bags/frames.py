"""
A bag regrouped into per-frame records for running the core on it without ROS transport.

``bag_frames(path, layout)`` walks a bag once, in log-time order, and yields one ``BagFrame`` per camera image:
the image, its camera_info (same stamp, else the latest before: the node caches it the same way), the radar clouds
of every radar topic near the image stamp, the nearest lidar cloud, ground-truth depth images of the same stamp,
and the bag's transforms (``/tf_static`` and ``/tf`` in a ``TransformBuffer``). Matching uses header stamps, never
log times. A frame is yielded as soon as the bag has passed its stamp by the matching window, so memory stays at a
few frames whatever the bag's length. Every message keeps its raw CDR bytes (``BagMessage.raw``).

``BagFrame`` turns its messages into what the core takes: ``rgb()``, ``intrinsics()``, ``radar_points()``
(RadarPoints in the camera frame at the image time, through TF), ``lidar_points()``, ``ground_truth()``.
"""

import collections
import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.bags.layout import BagLayout, POINTCLOUD2_TYPE, TF_TYPE
from rcdepth_ros.core.bags.reader import bag_info, BagMessage, read_bag_messages
from rcdepth_ros.core.bags.tf import TransformBuffer
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.geometry.transforms import transform_points
from rcdepth_ros.core.messages.camera_info import camera_info_to_intrinsics
from rcdepth_ros.core.messages.clouds import read_points
from rcdepth_ros.core.messages.images import depth_from_image_msg, image_to_rgb
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.core.messages.radar import pointcloud2_to_radar
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import BagError

RADAR_SELECTIONS = ('nearest', 'all')


@dataclasses.dataclass
class BagFrame:
    """
    One camera image of a bag with the messages that belong to it (see the module docstring).

    ``stamp_ns`` is the image's header stamp, ``camera_frame`` its header frame id, ``frame_id`` the data-set frame
    id the package's writer stored (else the image's position as a string). Message fields are ``BagMessage``
    (topic, msgtype, log_time_ns, raw, msg); ``radar`` is a list, in topic order.
    """

    index: int
    frame_id: str
    stamp_ns: int
    camera_frame: str
    image: BagMessage
    camera_info: typing.Optional[BagMessage]
    radar: typing.List[BagMessage]
    lidar: typing.Optional[BagMessage]
    depth_gt: typing.Optional[BagMessage]
    depth_gt_dense: typing.Optional[BagMessage]
    tf: TransformBuffer

    def rgb(self):
        """Return the image as (H, W, 3) uint8 RGB (Image or CompressedImage)."""
        return image_to_rgb(self.image.msg)

    def intrinsics(self):
        """Return the CameraIntrinsics of the frame's camera_info; BagError when the bag has none before it."""
        if self.camera_info is None:
            raise BagError(f'bag frame {self.frame_id} ({self.stamp_ns} ns): no camera_info at or before the image')
        return camera_info_to_intrinsics(self.camera_info.msg)

    def transform_to_camera(self, frame, stamp_ns):
        """
        Return ``T_camera(image time)_from_frame(stamp_ns)`` (tf2's ``lookup_transform_full``).

        The fixed frame is the root of the camera's tree at the image time: the world where the bag has ego
        motion on ``/tf``, so a sensor that fired at another time is motion compensated; else the static tree.
        """
        fixed = self.tf.root(self.camera_frame, self.stamp_ns)
        return self.tf.lookup_full(self.camera_frame, self.stamp_ns, frame, stamp_ns, fixed)

    def extrinsics(self):
        """Return ``{frame: T_camera_from_frame}`` at the image time for every frame mounted by ``/tf_static``."""
        result = {}
        static = self.tf.static_transforms()
        for frame in sorted(set(static) | {parent for parent, _ in static.values()}):
            if frame == self.camera_frame:
                continue
            try:
                result[frame] = self.tf.lookup(self.camera_frame, frame, self.stamp_ns)
            except BagError:
                continue
        return result

    def radar_points(self, field_map=None):
        """
        Return the frame's radar returns in the camera frame at the image time (all clouds merged).

        Each cloud is parsed by field names with ``field_map`` (``radar.RadarFieldMap``) and moved with
        ``transform_to_camera(cloud frame, cloud stamp)``.
        """
        parts = []
        for message in self.radar:
            radar = pointcloud2_to_radar(message.msg, field_map)
            T = self.transform_to_camera(radar.frame_id, radar.stamp_ns)
            parts.append(radar.transformed(T, self.camera_frame))
        merged = RadarPoints.concatenate(parts, self.camera_frame)
        merged.stamp_ns = max((p.stamp_ns for p in parts), default=self.stamp_ns)
        return merged

    def lidar_points(self):
        """Return the lidar points (N, 3) float32 in the camera frame at the image time, or None without lidar."""
        if self.lidar is None:
            return None
        points = read_points(self.lidar.msg, fields=('x', 'y', 'z'), skip_nans=True)
        xyz = np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float64)
        header = self.lidar.msg.header
        T = self.transform_to_camera(str(header.frame_id), stamp_to_ns(header))
        return transform_points(xyz, T).astype(np.float32)

    def ground_truth(self):
        """
        Return the sparse ground-truth depth (H, W) float32 metres, 0 = none, or None when the frame has none.

        From the lidar cloud projected with the camera_info K (nearest point per pixel), else from the
        ground-truth depth image.
        """
        lidar = self.lidar_points()
        if lidar is not None:
            intrinsics = self.intrinsics()
            return sparse_depth_image(lidar, intrinsics.K, intrinsics.width, intrinsics.height)
        if self.depth_gt is not None:
            return depth_from_image_msg(self.depth_gt.msg)
        return None

    def dense_ground_truth(self):
        """Return the dense ground-truth depth (H, W) float32, 0 = none, or None when the bag has none."""
        return None if self.depth_gt_dense is None else depth_from_image_msg(self.depth_gt_dense.msg)


def _header_stamp(message):
    return stamp_to_ns(message.msg.header)


class _Assembler:
    """Cache the messages around pending images and build a BagFrame once the bag has passed an image's window."""

    def __init__(self, layout, radar_topics, window_ns, radar_select, frame_ids):
        self.layout = layout
        self.radar_topics = radar_topics
        self.window_ns = window_ns
        self.radar_select = radar_select
        self.frame_ids = frame_ids
        self.tf = TransformBuffer()
        self.pending = collections.deque()
        self.camera_infos = collections.deque()
        self.caches = collections.defaultdict(collections.deque)
        self.count = 0
        self.now = 0

    def add(self, message):
        """Take one message; return the frames now complete."""
        self.now = message.log_time_ns
        if message.msgtype == TF_TYPE:
            if message.topic in (self.layout.tf_static_topic, self.layout.tf_topic):
                self.tf.add_message(message.msg, static=message.topic == self.layout.tf_static_topic)
        elif message.topic == self.layout.camera_info_topic:
            self.camera_infos.append(message)
        elif message.topic in (self.layout.image_topic, self.layout.compressed_image_topic):
            self.pending.append(message)
        else:
            self.caches[message.topic].append(message)
        return self.ready()

    def ready(self, end=False):
        """Return the frames whose window the bag has passed (all pending ones at the ``end``)."""
        frames = []
        while self.pending and (end or self.now > _header_stamp(self.pending[0]) + self.window_ns):
            frames.append(self._build(self.pending.popleft()))
        self._prune()
        return frames

    def _prune(self):
        # Keep what a pending or future image may still need: the messages within the window before the oldest
        # pending image (or before the present, less a window), and the latest camera_info before that.
        horizon = _header_stamp(self.pending[0]) if self.pending else self.now - self.window_ns
        for cache in self.caches.values():
            while cache and _header_stamp(cache[0]) < horizon - self.window_ns:
                cache.popleft()
        while len(self.camera_infos) > 1 and _header_stamp(self.camera_infos[1]) <= horizon:
            self.camera_infos.popleft()

    def _near(self, topic, stamp):
        return [m for m in self.caches.get(topic, ()) if abs(_header_stamp(m) - stamp) <= self.window_ns]

    def _nearest(self, topic, stamp):
        candidates = self._near(topic, stamp)
        return min(candidates, key=lambda m: abs(_header_stamp(m) - stamp)) if candidates else None

    def _build(self, image):
        stamp = _header_stamp(image)
        infos = [m for m in self.camera_infos if _header_stamp(m) <= stamp]
        exact = [m for m in infos if _header_stamp(m) == stamp]
        camera_info = exact[-1] if exact else (infos[-1] if infos else None)
        radar = []
        for topic in self.radar_topics:
            if self.radar_select == 'nearest':
                nearest = self._nearest(topic, stamp)
                radar.extend([nearest] if nearest is not None else [])
            else:
                radar.extend(m for m in self._near(topic, stamp) if _header_stamp(m) <= stamp)
        depth = {}
        for key, topic in (('gt', self.layout.depth_gt_topic), ('dense', self.layout.depth_gt_dense_topic)):
            same = [m for m in self.caches.get(topic, ()) if _header_stamp(m) == stamp]
            depth[key] = same[-1] if same else None
        frame_id = self.frame_ids[self.count] if self.frame_ids and self.count < len(self.frame_ids) \
            else str(self.count)
        frame = BagFrame(self.count, frame_id, stamp, str(image.msg.header.frame_id), image, camera_info, radar,
                         self._nearest(self.layout.lidar_topic, stamp), depth['gt'], depth['dense'], self.tf)
        self.count += 1
        return frame


def bag_frames(path, layout=None, window_s=0.1, radar_select='nearest', radar_topics=None):
    """
    Yield a BagFrame per camera image of the bag at ``path``, in image order.

    ``layout`` names the topics (default: the one the package's writer stored in the bag, else ``BagLayout()``).
    Radar topics are every PointCloud2 topic but the lidar's (or ``radar_topics``). ``window_s``: clouds whose
    stamp is within this of the image stamp belong to it; ``radar_select`` 'nearest' takes the nearest cloud of
    each radar topic, 'all' every cloud of the window up to the image stamp (several sweeps).
    """
    if radar_select not in RADAR_SELECTIONS:
        raise BagError(f'bag_frames: radar_select must be one of {RADAR_SELECTIONS}, got {radar_select!r}')
    if not window_s >= 0:
        raise BagError(f'bag_frames: window_s must be >= 0, got {window_s}')
    info = bag_info(path)
    if layout is None:
        stored = info.layout_data()
        layout = BagLayout.from_dict(stored) if stored is not None else BagLayout()
    images = [t for t in (layout.image_topic, layout.compressed_image_topic) if t in info.topics]
    if not images:
        raise BagError(f'bag {path}: no image topic ({layout.image_topic} or {layout.compressed_image_topic}); '
                       f'topics: {", ".join(sorted(info.topics))}')
    if radar_topics is None:
        radar_topics = sorted(t for t, s in info.topics.items()
                              if s.msgtype == POINTCLOUD2_TYPE and t != layout.lidar_topic)
    wanted = {images[0], layout.camera_info_topic, layout.lidar_topic, layout.depth_gt_topic,
              layout.depth_gt_dense_topic, layout.tf_topic, layout.tf_static_topic, *radar_topics}
    assembler = _Assembler(layout, list(radar_topics), int(round(window_s * 1e9)), radar_select, info.frame_ids())
    for message in read_bag_messages(path, topics=sorted(wanted & set(info.topics))):
        yield from assembler.add(message)
    yield from assembler.ready(end=True)
