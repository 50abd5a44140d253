"""
Stand-ins for the ROS 2 Python libraries that are not installable here, with the behaviour the package must survive.

sensor_msgs_py and message_filters exist on every ROS 2 machine but not on PyPI. The package must work beside
them, so tests install these stand-ins (``monkeypatch``-scoped, in ``sys.modules``) and check the package still
reads and matches correctly. Each reproduces, from the jazzy sources' documented behaviour and not from their
code, what broke the package (issue 11):

- ``sensor_msgs_py.point_cloud2.read_points`` asserts ``isinstance(cloud, sensor_msgs.msg.PointCloud2)`` (rclpy's
  class only), views ``cloud.data`` through a native-order dtype built from the fields (``count > 1`` fields
  become ``name_0``, ``name_1``, ...), and when the cloud's byte order is not the machine's it byte-swaps that
  view in place, rewriting the message's own buffer.
- ``message_filters``: its filters derive from ``message_filters.SimpleFilter``; its
  ``ApproximateTimeSynchronizer`` turns each header stamp into ``rclpy.time.Time.from_msg(stamp)`` (the real rclpy
  call here), which raises TypeError for anything but ``builtin_interfaces.msg.Time``. Its matching is the
  package's own synchroniser (checked against the real one where it is installed).
"""

import sys
import types

import numpy as np

from rcdepth_ros.core.messages.clouds import POINTFIELD_DTYPES
from rcdepth_ros.core.runtime.sync import ApproximateTimeSynchronizer, SimpleFilter


def sensor_msgs_py_module():
    """Return (package, point_cloud2 module) with the read_points behaviour described above."""
    from sensor_msgs.msg import PointCloud2 as RclpyPointCloud2

    def read_points(cloud, field_names=None, skip_nans=False, uvs=None, reshape_organized_cloud=False):
        if not isinstance(cloud, RclpyPointCloud2):
            raise AssertionError('Cloud is not a sensor_msgs.msg.PointCloud2')
        names, formats, offsets = [], [], []
        for field in cloud.fields:
            base = np.dtype(POINTFIELD_DTYPES[field.datatype])
            for k in range(field.count):
                names.append(f'{field.name}_{k}' if field.count > 1 else field.name)
                formats.append(base)
                offsets.append(field.offset + k * base.itemsize)
        dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': cloud.point_step})
        view = np.ndarray((cloud.width * cloud.height,), dtype=dtype, buffer=cloud.data)
        if field_names is not None:
            view = view[list(field_names)]
        if (sys.byteorder == 'big') != bool(cloud.is_bigendian):
            view = view.byteswap(inplace=True)
        return view

    package = types.ModuleType('sensor_msgs_py')
    module = types.ModuleType('sensor_msgs_py.point_cloud2')
    module.read_points = read_points
    package.point_cloud2 = module
    return package, module


def message_filters_module():
    """Return a ``message_filters`` module with the type check described above."""
    from rclpy.time import Time

    class RealSimpleFilter(SimpleFilter):
        """message_filters.SimpleFilter: the base class of its Subscriber and Cache."""

    class RealApproximateTimeSynchronizer(ApproximateTimeSynchronizer):
        """Refuses stamps that are not builtin_interfaces.msg.Time, as ``Time.from_msg`` does."""

        def add(self, msg, my_queue, my_queue_index=None):
            Time.from_msg(msg.header.stamp)
            return super().add(msg, my_queue, my_queue_index)

    module = types.ModuleType('message_filters')
    module.SimpleFilter = RealSimpleFilter
    module.ApproximateTimeSynchronizer = RealApproximateTimeSynchronizer
    return module


def _clear_import_caches():
    from rcdepth_ros.core.messages import clouds, images
    for module in (clouds, images):
        for value in list(vars(module).values()):
            if hasattr(value, 'cache_clear'):
                value.cache_clear()


def install_sensor_msgs_py(monkeypatch):
    """Make the sensor_msgs_py stand-in importable for one test; return its point_cloud2 module."""
    package, module = sensor_msgs_py_module()
    monkeypatch.setitem(sys.modules, 'sensor_msgs_py', package)
    monkeypatch.setitem(sys.modules, 'sensor_msgs_py.point_cloud2', module)
    monkeypatch.delenv('RCDEPTH_ROS_TOOLS', raising=False)
    _clear_import_caches()
    return module


def install_message_filters(monkeypatch):
    """Make the message_filters stand-in importable for one test; return it."""
    module = message_filters_module()
    monkeypatch.setitem(sys.modules, 'message_filters', module)
    return module


def forget_cached_imports():
    """Drop the package's cached imports of the ROS tools (call after a stand-in is removed)."""
    _clear_import_caches()
