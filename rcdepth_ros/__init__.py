"""
rcdepth_ros: dense metric depth from a camera and an automotive radar (XD-RCDepth student) for ROS 2.

The package is split into a ROS-free core (``rcdepth_ros.core``, ``rcdepth_ros.models``, ``rcdepth_ros.data``)
and thin ROS 2 nodes (``rcdepth_ros.nodes``), the only modules that import rclpy.
"""

__version__ = '0.1.0'
