"""ROS messages <-> numpy without rclpy: images, camera info, point clouds, radar fields, message classes."""
