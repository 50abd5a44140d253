"""
The demo's own listener node: keeps the depth node's outputs of a few chosen stamps and its latest diagnostics.

``rcdepth demo`` subscribes it next to ``rcdepth_eval_node`` to draw its contact sheet and to report the depth
node's latency and rate as the node itself measured them.
"""

import time

from diagnostic_msgs.msg import DiagnosticArray
from rcdepth_ros.core.messages.images import image_to_numpy
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.nodes.diagnostics import status_values
from rcdepth_ros.nodes.qos import qos_from_string
from sensor_msgs.msg import Image


class DemoListener:
    """The demo's own node: keeps the outputs of a few chosen stamps and the latest diagnostics."""

    def __init__(self, node, keep_stamps):
        """Subscribe to the depth node's outputs and /diagnostics."""
        self.keep = set(keep_stamps)
        self.kept = {'depth': {}, 'saliency': {}, 'radar': {}}
        self.depth_arrivals = []
        self.diagnostics = None
        qos = qos_from_string('reliable', 50)
        node.create_subscription(Image, '/depth/image', self._on('depth'), qos)
        node.create_subscription(Image, '/saliency/image', self._on('saliency'), qos)
        node.create_subscription(Image, '/radar/depth_image', self._on('radar'), qos)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on(self, kind):
        def callback(msg):
            stamp = stamp_to_ns(msg.header)
            if kind == 'depth':
                self.depth_arrivals.append((time.monotonic(), stamp))
            if stamp in self.keep:
                self.kept[kind][stamp] = image_to_numpy(msg)
        return callback

    def _on_diagnostics(self, msg):
        if msg.status and msg.status[0].name.startswith('rcdepth_node'):
            self.diagnostics = status_values(msg)
