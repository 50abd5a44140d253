"""
The message classes conversions build: rclpy's generated classes or the ``rosbags`` typestore dataclasses.

Reading a message is duck-typed everywhere in the core (any object with the right attributes works). Building
one needs concrete classes, and the two flavours differ in two ways this module hides:

- rclpy classes take keyword arguments with defaults; rosbags dataclasses need every field. ``types.new(...)``
  fills the fields not given with their defaults for both.
- ``data`` (uint8[]): rclpy stores an ``array.array('B')``; assigning a numpy array there iterates element by
  element, hundreds of times slower than a copy. ``types.new(..., data=buffer)`` appends the bytes into the
  message's own ``array.array`` (one copy; the constructor and the setter would copy twice);
  ``types.data(buffer)`` gives an ``array.array`` to assign by hand. rosbags wants a 1-D numpy uint8 array.

The ROS message packages are imported only inside ``ros_message_types()``, never at module import.
"""

import array
import dataclasses
import functools
import re

import numpy as np

from rcdepth_ros.errors import ConversionError

NAMES = ('Image', 'CompressedImage', 'CameraInfo', 'PointCloud2', 'PointField', 'Header', 'Time',
         'RegionOfInterest')
_ROS_TYPE_NAMES = {
    'Image': 'sensor_msgs/msg/Image', 'CompressedImage': 'sensor_msgs/msg/CompressedImage',
    'CameraInfo': 'sensor_msgs/msg/CameraInfo', 'PointCloud2': 'sensor_msgs/msg/PointCloud2',
    'PointField': 'sensor_msgs/msg/PointField', 'Header': 'std_msgs/msg/Header',
    'Time': 'builtin_interfaces/msg/Time', 'RegionOfInterest': 'sensor_msgs/msg/RegionOfInterest',
}
# Fixed-size arrays a rosbags dataclass must be given at their size (CameraInfo k, r: 3x3, p: 3x4).
_FIXED_SIZES = {('CameraInfo', 'k'): 9, ('CameraInfo', 'r'): 9, ('CameraInfo', 'p'): 12}
_NUMPY_ANNOTATION = re.compile(r'np\.dtype\[np\.(\w+)\]')


class MessageTypes:
    """
    One flavour of message classes, with ``flavour`` 'rclpy' or 'rosbags'.

    Attributes ``Image``, ``CompressedImage``, ``CameraInfo``, ``PointCloud2``, ``PointField``, ``Header``,
    ``Time``, ``RegionOfInterest`` are the classes; ``new`` builds one, ``data`` wraps bytes for ``uint8[]``.
    """

    def __init__(self, flavour, classes, typestore=None):
        """Hold ``classes`` (name -> class) of ``flavour``; ``typestore`` resolves nested rosbags types."""
        self.flavour = flavour
        self.typestore = typestore
        for name in NAMES:
            setattr(self, name, classes[name])
        self._by_class_name = {}
        if typestore is not None:
            self._by_class_name = {cls.__name__: cls for cls in typestore.types.values()}

    def __repr__(self):
        """Return the flavour, for logs and test ids."""
        return f'MessageTypes({self.flavour})'

    def data(self, buffer):
        """
        Return the value to assign to a ``uint8[]`` field (``msg.data``) holding the bytes of ``buffer``.

        ``buffer`` is bytes, a bytearray, a memoryview or a numpy array (made C-contiguous first). The result
        never shares memory with ``buffer``.
        """
        raw = self._raw(buffer)
        if self.flavour == 'rclpy':
            out = array.array('B')
            out.frombytes(raw)
            return out
        return np.array(raw, dtype=np.uint8, copy=True).reshape(-1)

    @staticmethod
    def _raw(buffer):
        if isinstance(buffer, np.ndarray):
            buffer = np.ascontiguousarray(buffer)
            return buffer.reshape(-1).view(np.uint8) if buffer.size else np.zeros(0, np.uint8)
        view = memoryview(buffer)
        return view.cast('B') if view.c_contiguous else memoryview(view.tobytes())

    def is_instance(self, msg, name):
        """Return True when ``msg`` is an instance of this flavour's class ``name``."""
        return isinstance(msg, getattr(self, name))

    def new(self, type_name, /, **fields):
        """Return a new message of class ``type_name`` with ``fields`` set and every other field at its default."""
        cls = getattr(self, type_name)
        if self.flavour == 'rclpy':
            data = fields.pop('data', None)
            msg = cls(**fields)
            if data is not None:
                # Append into the message's own array.array: one copy. Passing data to the constructor or the
                # setter copies it a second time (array.array('B', value)).
                msg.data.frombytes(self._raw(data))
            return msg
        for field in dataclasses.fields(cls):
            if field.name not in fields and not str(field.type).startswith('ClassVar'):
                fields[field.name] = self._rosbags_default(type_name, field)
        if 'data' in fields and not isinstance(fields['data'], np.ndarray):
            fields['data'] = self.data(fields['data'])
        return cls(**fields)

    def _rosbags_default(self, name, field):
        annotation = str(field.type)
        if annotation == 'int':
            return 0
        if annotation == 'float':
            return 0.0
        if annotation == 'bool':
            return False
        if annotation == 'str':
            return ''
        if annotation.startswith('list'):
            return []
        match = _NUMPY_ANNOTATION.search(annotation)
        if annotation.startswith('np.ndarray') and match:
            return np.zeros(_FIXED_SIZES.get((name, field.name), 0), dtype=np.dtype(match.group(1)))
        nested = self._by_class_name.get(annotation)
        if nested is not None:
            nested_name = next((n for n in NAMES if getattr(self, n) is nested), None)
            if nested_name is not None:
                return self.new(nested_name)
            members = [f for f in dataclasses.fields(nested) if not str(f.type).startswith('ClassVar')]
            return nested(**{f.name: self._rosbags_default(annotation, f) for f in members})
        raise ConversionError(f'message {name}: no default for field {field.name!r} of type {annotation}')


@functools.lru_cache(maxsize=None)
def ros_message_types():
    """
    Return the rclpy message classes (sensor_msgs, std_msgs, builtin_interfaces), imported on first use.

    Raises ConversionError when the ROS 2 message packages are not importable (no ROS install and no
    ros-*-msgs wheels), naming what is missing.
    """
    try:
        # the ROS message packages are optional: a clear message when they are missing
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
        from std_msgs.msg import Header
    except ImportError as exc:
        raise ConversionError(f'ROS 2 message classes are not importable ({exc}); source a ROS 2 install or '
                              f'install the ros-jazzy-sensor-msgs wheels, or build messages with '
                              f'rosbags_message_types()') from exc
    classes = {'Image': Image, 'CompressedImage': CompressedImage, 'CameraInfo': CameraInfo,
               'PointCloud2': PointCloud2, 'PointField': PointField, 'Header': Header, 'Time': Time,
               'RegionOfInterest': RegionOfInterest}
    return MessageTypes('rclpy', classes)


@functools.lru_cache(maxsize=None)
def _default_typestore():
    # rosbags is absent where only training and evaluation run (the GPU machine): imported when first needed
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_JAZZY)


def rosbags_message_types(typestore=None):
    """Return the message dataclasses of a rosbags ``typestore`` (the ROS 2 Jazzy store by default)."""
    store = _default_typestore() if typestore is None else typestore
    try:
        classes = {name: store.types[ros_name] for name, ros_name in _ROS_TYPE_NAMES.items()}
    except KeyError as exc:
        raise ConversionError(f'rosbags typestore has no message type {exc.args[0]}') from None
    return MessageTypes('rosbags', classes, store)


def stamp_to_ns(header_or_stamp):
    """
    Return the stamp of a header or a Time (either flavour, or any object with ``sec``/``nanosec``) in ns.

    Also accepts an integer number of nanoseconds and objects with a ``nanoseconds`` attribute (rclpy.time.Time).
    Raises ConversionError when there is no usable stamp.
    """
    if isinstance(header_or_stamp, (int, np.integer)) and not isinstance(header_or_stamp, bool):
        return int(header_or_stamp)
    stamp = getattr(header_or_stamp, 'stamp', header_or_stamp)
    if hasattr(stamp, 'sec') and hasattr(stamp, 'nanosec'):
        sec, nanosec = _stamp_int(stamp.sec, 'sec'), _stamp_int(stamp.nanosec, 'nanosec')
        if not 0 <= nanosec < 1_000_000_000:
            raise ConversionError(f'stamp: nanosec must be in [0, 1e9), got {nanosec}')
        return sec * 1_000_000_000 + nanosec
    if hasattr(stamp, 'nanoseconds'):
        return _stamp_int(stamp.nanoseconds, 'nanoseconds')
    raise ConversionError(f'stamp: {type(header_or_stamp).__name__} has no sec/nanosec stamp')


def _stamp_int(value, name):
    """Return a stamp field as an int; ConversionError for a value that is not an integer number."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ConversionError(f'stamp: {name} must be an integer, got {str(value)[:40]!r}')


def ns_to_time(types, stamp_ns):
    """Return a ``Time`` message of ``types`` for ``stamp_ns`` nanoseconds (negative stamps floor to sec)."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    if not -2 ** 31 <= sec < 2 ** 31:
        raise ConversionError(f'stamp: {stamp_ns} ns does not fit builtin_interfaces/Time (int32 seconds)')
    return types.new('Time', sec=sec, nanosec=nanosec)


def make_header(types, stamp_ns, frame_id):
    """Return a ``Header`` of ``types`` with the stamp ``stamp_ns`` (nanoseconds) and ``frame_id``."""
    return types.new('Header', stamp=ns_to_time(types, stamp_ns), frame_id=str(frame_id))


def convert_header(types, header):
    """
    Return ``header`` as a Header of ``types``: unchanged when it already is one, else rebuilt field by field.

    ``None`` gives a zero stamp and an empty frame id.
    """
    if header is None:
        return make_header(types, 0, '')
    if types.is_instance(header, 'Header'):
        return header
    return make_header(types, stamp_to_ns(header), getattr(header, 'frame_id', ''))
