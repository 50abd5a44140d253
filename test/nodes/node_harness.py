"""Helpers of the node tests: parameters of a depth node under test, and a harness that spins and collects."""

import gc
import time

from rcdepth_ros.nodes.depth_node import DepthNode
from rcdepth_ros.nodes.runtime import bring_up
from support.frame_messages import CAMERA_FRAME, FrameMessageFactory


def node_parameters(checkpoint, **extra):
    """Return rclpy Parameters for a depth node on the tiny checkpoint, with parameter extrinsics and ``extra``."""
    from rcdepth_ros.nodes.params import extrinsics_overrides
    from rclpy.parameter import Parameter
    values = {'model_path': str(checkpoint), 'device': 'cpu', 'qos.input': 'reliable', 'qos.input_depth': 10,
              'diagnostics.period': 0.2, 'warn_throttle': 0.0, 'warmup': False}
    values.update(extrinsics_overrides(FrameMessageFactory.extrinsics(), CAMERA_FRAME))
    values.update(extra)
    return [Parameter(name, value=value) for name, value in values.items()]


class Harness:
    """A test node beside the node under test, one executor spun from the test thread."""

    def __init__(self, context, namespace):
        """Create the test node in ``namespace`` and an executor."""
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.context = context
        self.namespace = namespace
        self.node = Node('harness', namespace=namespace, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.received = {}
        self.nodes = []

    def add(self, node):
        """Spin ``node`` with the harness; return it."""
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def publisher(self, kind, topic, qos=None):
        """Return a publisher on ``topic`` (relative to the namespace), RELIABLE depth 10 by default."""
        from rcdepth_ros.nodes.qos import qos_from_string
        return self.node.create_publisher(kind, topic, qos or qos_from_string('reliable', 10))

    def collect(self, kind, topic, qos=None):
        """Subscribe to ``topic`` and keep every message in ``received[topic]``; return that list."""
        from rcdepth_ros.nodes.qos import qos_from_string
        bucket = self.received.setdefault(topic, [])
        self.node.create_subscription(kind, topic, bucket.append, qos or qos_from_string('reliable', 50))
        return bucket

    def spin_until(self, predicate, timeout=20.0):
        """Spin until ``predicate()`` is true; return whether it became true within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def spin_for(self, seconds):
        """Spin for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def wait_for_subscribers(self, publisher, count=1, timeout=10.0):
        """Spin until ``publisher`` is matched by ``count`` subscriptions."""
        return self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout)

    def close(self):
        """Destroy every node and the executor."""
        for node in self.nodes:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)
        self.nodes.clear()
        gc.collect()


T0 = 1_700_000_000 * 10 ** 9
PERIOD = 100_000_000


class Rig:
    """A depth node brought up in the harness, the input publishers and the output collectors."""

    def __init__(self, harness, checkpoint, compressed=False, input_qos=None, **extra):
        from diagnostic_msgs.msg import DiagnosticArray
        from rcdepth_ros.nodes.qos import qos_from_string
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
        if compressed:
            extra['image_transport'] = 'compressed'
        self.harness = harness
        self.node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                          parameter_overrides=node_parameters(checkpoint, **extra)))
        assert bring_up(self.node)
        qos = qos_from_string(input_qos) if input_qos else None
        self.image_pub = harness.publisher(CompressedImage if compressed else Image,
                                           'image/compressed' if compressed else 'image', qos)
        self.info_pub = harness.publisher(CameraInfo, 'camera_info', qos)
        self.radar_pub = harness.publisher(PointCloud2, 'radar/points', qos)
        self.depth = harness.collect(Image, 'depth/image')
        self.depth_info = harness.collect(CameraInfo, 'depth/camera_info')
        self.radar_depth = harness.collect(Image, 'radar/depth_image')
        self.radar_info = harness.collect(CameraInfo, 'radar/camera_info')
        self.diagnostics = harness.collect(DiagnosticArray, '/diagnostics')
        for publisher in (self.image_pub, self.info_pub, self.radar_pub):
            assert harness.wait_for_subscribers(publisher)
        outputs = self.node._outputs
        assert harness.spin_until(lambda: outputs['depth/image'].get_subscription_count() >= 1 and
                                  outputs['radar/depth_image'].get_subscription_count() >= 1)

    def send(self, messages, stamp, image=None, radar=None, info=True):
        if info:
            self.info_pub.publish(messages.camera_info(stamp))
        self.radar_pub.publish(radar if radar is not None else messages.radar(stamp))
        self.image_pub.publish(image if image is not None else messages.image(stamp))

    def wait_outputs(self, count, timeout=30.0):
        return self.harness.spin_until(lambda: len(self.depth) >= count, timeout)


class GatedEngine:
    """The real engine, held at its first frame until ``release()``: a model that cannot keep up, with no timing."""

    def __init__(self, engine):
        import threading
        self.engine = engine
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def release(self):
        self.gate.set()

    def _hold(self):
        self.entered.set()
        self.gate.wait(60.0)

    def infer(self, *args, **kwargs):
        self._hold()
        return self.engine.infer(*args, **kwargs)

    def infer_prepared(self, *args, **kwargs):
        # the node's path with pipeline.overlap (the model stage runs prepared frames)
        self._hold()
        return self.engine.infer_prepared(*args, **kwargs)
