"""
The ROS 2 nodes: the only modules of the package that import rclpy.

``depth_node`` (rcdepth_node), ``eval_node`` (rcdepth_eval_node), ``player`` (``rcdepth play``), and their helpers:
``params`` (declarations, descriptors, ranges), ``qos`` (QoS from string parameters), ``diagnostics``,
``tf_source`` (extrinsics from tf2 when importable, else from parameters), ``runtime`` (init, spin and shutdown).
"""
