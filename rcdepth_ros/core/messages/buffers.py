"""
What the message converters share: byte buffers, integer fields, and the switch to the real ROS tools.

Reading is duck-typed: any object with the message's attributes works (rclpy classes, rosbags dataclasses,
plain objects); ``data`` may be bytes, bytearray, array.array, memoryview or a numpy uint8 array.

When ROS 2's ``cv_bridge`` is importable (a ROS 2 install), Image <-> numpy goes through it for rclpy Image
messages; the package's own code is used otherwise. Set ``RCDEPTH_ROS_TOOLS=0`` to force the package's own code.
PointCloud2 decoding never goes through ``sensor_msgs_py`` (see ``messages.clouds`` for why).
"""

import os

import numpy as np

from rcdepth_ros.errors import ConversionError


# Every size and offset field of Image, CameraInfo, PointCloud2 and PointField is a uint32 (datatype a uint8).
UINT32_MAX = 2 ** 32 - 1


def nonnegative_int(msg, name, what, maximum=UINT32_MAX):
    """
    Return ``msg.<name>`` as an int in [0, ``maximum``]; ConversionError naming ``what`` and the field otherwise.

    Only integer values are taken (a float must be integral): ``int()`` would turn 0.5 into 0 and '12' into 12.
    """
    value = getattr(msg, name, None)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        number = int(value)
    else:
        raise ConversionError(f'{what}: {name} must be an integer, got {str(value)[:40]!r}')
    if number < 0:
        raise ConversionError(f'{what}: {name} must be >= 0, got {number}')
    if number > maximum:
        raise ConversionError(f'{what}: {name} must be <= {maximum}, got {number}')
    return number


def float_vector(msg, name, what):
    """Return ``msg.<name>`` as a 1-D float64 array; ConversionError naming ``what`` and the field otherwise."""
    value = getattr(msg, name, ())
    if isinstance(value, (str, bytes)):
        raise ConversionError(f'{what}: {name} must be a sequence of numbers, got {type(value).__name__}')
    try:
        return np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(f'{what}: {name} must be a sequence of numbers, got {str(value)[:60]!r}') from None


def byte_buffer(data, what):
    """Return ``data`` as a 1-D uint8 numpy array sharing its memory where possible."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 1:
            return data
        if data.dtype.hasobject:
            raise ConversionError(f'{what}: data is a numpy array of Python objects, not bytes')
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in data):
            raise ConversionError(f'{what}: data given as a {type(data).__name__} must hold integers 0-255')
        return np.asarray(data, dtype=np.uint8)
    try:
        view = memoryview(data)
    except TypeError:
        raise ConversionError(f'{what}: data of type {type(data).__name__} is not a byte buffer') from None
    if view.nbytes == 0:
        return np.zeros(0, np.uint8)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return np.frombuffer(view.cast('B'), dtype=np.uint8)


def finish_array(arr, copy):
    """Return a C-contiguous copy of ``arr`` (``copy``), else a read-only view of the message's buffer."""
    if copy:
        return np.array(arr, order='C', copy=True)
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


def ros_tools_enabled():
    """Return False when ``RCDEPTH_ROS_TOOLS`` asks for the package's own code instead of the ROS tools."""
    return os.environ.get('RCDEPTH_ROS_TOOLS', '1') not in ('0', 'false', 'no')
