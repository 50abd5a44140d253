"""
rosbag2 read / write with ``rosbags``: samples -> MCAP bag, bag -> raw or typed messages, bag -> per-frame records.

``write_bag(samples, out, options)`` writes the package's fixed layout (``BagLayout``, see ``bags.layout``);
``read_bag(path)`` yields raw CDR bytes a player publishes as they are; ``read_bag_messages`` deserialises them;
``bag_frames(path)`` regroups a bag into ``BagFrame`` records the offline evaluator runs the core on; ``bag_info``
gives topics, counts, QoS and the writer's custom data. No rclpy anywhere.
"""

from rcdepth_ros.core.bags.frames import bag_frames, BagFrame
from rcdepth_ros.core.bags.layout import BagLayout, offered_qos, RADAR_FIELDS
from rcdepth_ros.core.bags.reader import bag_info, BagInfo, BagMessage, read_bag, read_bag_messages, TopicSummary
from rcdepth_ros.core.bags.tf import TransformBuffer
from rcdepth_ros.core.bags.writer import BagSummary, BagWriteOptions, write_bag

__all__ = ['bag_frames', 'bag_info', 'BagFrame', 'BagInfo', 'BagLayout', 'BagMessage', 'BagSummary',
           'BagWriteOptions', 'offered_qos', 'RADAR_FIELDS', 'read_bag', 'read_bag_messages', 'TopicSummary',
           'TransformBuffer', 'write_bag']
