"""
The fixed topic and frame layout of the package's bags.

The bag writer, the node's launch defaults and the evaluator share it.

Topics (all absolute; the node subscribes to relative names and the launch files remap them onto these):

======================================  ==============================  ============================================
topic                                   type                            content
======================================  ==============================  ============================================
``/camera/image``                       sensor_msgs/Image               rgb8, the source's pixels
``/camera/image/compressed``            sensor_msgs/CompressedImage     instead of ``/camera/image`` with
                                                                        ``compressed``: the ORIGINAL JPEG / PNG
                                                                        bytes where the source has them
``/camera/camera_info``                 sensor_msgs/CameraInfo          K of the image, ``p = [K | 0]``, ``r = I``
``/radar/points``                       sensor_msgs/PointCloud2         the (first) radar in its own frame, the
                                                                        source's fields (see ``RADAR_FIELDS``)
``/radar/<role>/points``                sensor_msgs/PointCloud2         further radars (nuScenes
                                                                        ``radar_front_left`` ...)
``/lidar/points``                       sensor_msgs/PointCloud2         lidar x, y, z in the lidar frame (ground
                                                                        truth for evaluation)
``/ground_truth/depth``                 sensor_msgs/Image 32FC1         sparse GT depth, metres, NaN = none, in
                                                                        the camera frame: only for sources with
                                                                        depth images but no lidar points (ZJU)
``/ground_truth/depth_dense``           sensor_msgs/Image 32FC1         dense GT where the source has one (option)
``/tf_static``                          tf2_msgs/TFMessage              every sensor's mounting on the body;
                                                                        offered TRANSIENT_LOCAL, KEEP_LAST 1
``/tf``                                 tf2_msgs/TFMessage              ``world`` -> body at every sensor stamp,
                                                                        where the source knows the ego motion
======================================  ==============================  ============================================

Frames: the source's own TF frame names (``Sample.frames``: Astyx ``camera_front`` / ``radar_6455`` /
``lidar_vlp16``, nuScenes ``cam_front`` / ``radar_front`` / ``lidar_top`` / ``map``, ...), unless
``BagLayout.frames`` renames a role. The vehicle's tree hangs from one body frame: the source's vehicle frame
where it has one (synthetic ``base_link``, the 'base' role of ``Sample.extrinsics``), else the camera.
``/tf_static`` holds ``body -> camera`` and ``body -> sensor`` (from ``Sample.extrinsics``), ``/tf`` holds ``world
-> body``, so a return of a radar that fired at ``t_radar`` lands in the camera at ``t_image`` with
``lookup_transform_full(camera, t_image, radar, t_radar, world)``, exactly the motion compensation the readers
apply.
"""

import dataclasses
import typing

from rcdepth_ros import config
from rcdepth_ros.errors import BagError
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD2_TYPE = 'sensor_msgs/msg/PointCloud2'
TF_TYPE = 'tf2_msgs/msg/TFMessage'

DEFAULT_FRAMES = {'camera': 'camera', 'radar': 'radar', 'lidar': 'lidar', 'world': 'map'}

# Radar PointCloud2 fields per source, in order: (RadarPoints role, field name). Every field is float32. The names
# are the source's own (Astyx's file header X Y Z V_r Mag, lower-cased; nuScenes' PCD names) so that a consumer
# that knows the data set finds what it expects, and RadarFieldMap resolves all of them without configuration.
# A nuScenes bag carries the full 18-field PCD record instead where the raw sweep is available (make-bag does it).
RADAR_FIELDS = {
    'astyx': (('x', 'x'), ('y', 'y'), ('z', 'z'), ('v_radial', 'v_r'), ('rcs', 'mag')),
    'nuscenes': (('x', 'x'), ('y', 'y'), ('z', 'z'), ('rcs', 'rcs'), ('vx', 'vx_comp'), ('vy', 'vy_comp')),
    'synthetic': (('x', 'x'), ('y', 'y'), ('z', 'z'), ('rcs', 'rcs'), ('v_radial', 'v_r')),
    'zju': (('x', 'x'), ('y', 'y'), ('z', 'z')),
}
DEFAULT_RADAR_FIELDS = (('x', 'x'), ('y', 'y'), ('z', 'z'), ('rcs', 'rcs'), ('v_radial', 'v_r'))

# Order of messages that share one stamp: transforms first, then what a consumer caches (camera_info), then the
# inputs a synchroniser matches, the image last among the inputs, ground truth after it.
TOPIC_RANK = {'tf_static': 0, 'tf': 1, 'camera_info': 2, 'radar': 3, 'lidar': 4, 'image': 5, 'depth_gt': 6,
              'depth_gt_dense': 7}


@dataclasses.dataclass
class BagLayout:
    """
    Topic names and frame renames of a bag; the defaults are the package's layout (see the module docstring).

    ``frames`` maps a role ('camera', 'radar', 'lidar', 'world', or a further radar's role) to the TF frame id to
    use instead of the source's own.
    """

    image_topic: str = '/camera/image'
    compressed_image_topic: str = '/camera/image/compressed'
    camera_info_topic: str = '/camera/camera_info'
    radar_topic: str = '/radar/points'
    lidar_topic: str = '/lidar/points'
    depth_gt_topic: str = '/ground_truth/depth'
    depth_gt_dense_topic: str = '/ground_truth/depth_dense'
    tf_topic: str = '/tf'
    tf_static_topic: str = '/tf_static'
    frames: typing.Dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        """Check that topics are absolute, distinct ROS names; raise BagError naming the field."""
        topics = {}
        for field in dataclasses.fields(self):
            if not field.name.endswith('_topic'):
                continue
            value = getattr(self, field.name)
            if not isinstance(value, str) or not value.startswith('/') or value.endswith('/') or '//' in value \
                    or any(c in value for c in ' \t#~{}'):
                raise BagError(f'bag layout: {field.name} must be an absolute topic name such as /camera/image, '
                               f'got {value!r}')
            if value in topics:
                raise BagError(f'bag layout: {field.name} and {topics[value]} are both {value!r}')
            topics[value] = field.name
        for role, frame in self.frames.items():
            if not isinstance(frame, str) or not frame or frame.startswith('/'):
                raise BagError(f'bag layout: frame for role {role!r} must be a non-empty name without a leading '
                               f'slash, got {frame!r}')

    def radar_topic_for(self, role):
        """Return the topic of radar ``role``: ``radar_topic`` for 'radar', ``/radar/<role>/points`` otherwise."""
        if role == 'radar':
            return self.radar_topic
        head, _, tail = self.radar_topic.rpartition('/')
        return f'{head}/{role}/{tail}'

    def frame(self, role, sample_frames=None):
        """Return the TF frame id of ``role``: the layout's rename, else the sample's own, else the default."""
        if role in self.frames:
            return self.frames[role]
        if sample_frames and sample_frames.get(role):
            return str(sample_frames[role])
        return DEFAULT_FRAMES.get(role, role)

    def to_dict(self):
        """Return the layout as plain data (stored in the bag's custom data)."""
        return config.to_dict(self)

    @classmethod
    def from_dict(cls, data):
        """Build a layout from plain data; unknown keys raise ConfigError."""
        return config.from_dict(cls, data, 'bag layout')


def radar_fields(source):
    """Return the (role, field name) pairs of a source's radar PointCloud2 (``DEFAULT_RADAR_FIELDS`` if unknown)."""
    return RADAR_FIELDS.get(source, DEFAULT_RADAR_FIELDS)


def offered_qos(kind):
    """
    Return the offered QoS profiles recorded for a topic of ``kind``: 'tf_static', 'tf' or 'sensor'.

    ``/tf_static`` is what tf2's StaticTransformBroadcaster offers (RELIABLE, TRANSIENT_LOCAL, KEEP_LAST 1): ``ros2
    bag play`` republishes it latched, so a node started after the first message still gets the extrinsics.
    ``/tf`` is what TransformBroadcaster offers (RELIABLE, VOLATILE, KEEP_LAST 100). Sensor topics are RELIABLE,
    VOLATILE, KEEP_LAST 10: a reliable publisher serves reliable and best-effort subscribers alike.
    """
    durability, depth = {'tf_static': (QosDurability.TRANSIENT_LOCAL, 1), 'tf': (QosDurability.VOLATILE, 100),
                         'sensor': (QosDurability.VOLATILE, 10)}[kind]
    default = QosTime(0, 0)   # RMW_DURATION_UNSPECIFIED: the middleware's default (infinite)
    return [Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, default, default,
                QosLiveliness.AUTOMATIC, default, False)]
