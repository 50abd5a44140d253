"""
ROS-free core, in rooms that follow a frame's way from sensor bytes to a depth image.

``messages`` (message bytes <-> numpy: images, camera info, point clouds, radar fields), ``geometry`` (transforms,
projection, the radar image, the model input and extrinsics), ``inference`` (the engine, saliency, the bundled
model), ``runtime`` (matching frames, caches, the keep-latest slot, the frame pipeline, run-time statistics),
``pictures`` (colour maps and contact sheets for people) and ``bags`` (rosbag2 read / write). Nothing below this
package imports rclpy or the data readers; ROS message classes are used by duck typing or imported lazily.
"""
