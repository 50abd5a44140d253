"""
ROS-free core: conversions, radar parsing, geometry, synchronisation, metrics, engine, saliency, bags.

Nothing below this package imports rclpy; ROS message classes are used only by duck typing or imported lazily.
"""
