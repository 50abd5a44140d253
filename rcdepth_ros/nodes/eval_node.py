"""
rcdepth_eval_node: live evaluation of the depth node against lidar, written as a JSON report on shutdown.

Subscribes (relative names, remapped in launch) to ``depth/image`` and ``depth/camera_info`` (the depth node's
outputs) and ``lidar/points`` (the bag's lidar). Each depth image is paired with the lidar cloud nearest to its
stamp within ``match_tolerance`` (header stamps only) and the camera_info of its stamp; the lidar is moved into the
camera frame (tf2 or parameter extrinsics, as the depth node) and projected at the depth image's resolution, and
the frame is scored with ``evaluation.frames.evaluate_frame``, as ``rcdepth eval-bag`` and ``rcdepth eval`` score
theirs.

A depth frame is evaluated once a lidar cloud stamped at or after it has arrived (a later cloud can only be
farther) or at shutdown. The report (``output``) is the metrics JSON of ``evaluation.metrics`` with ``per_frame``,
plus ``evaluation``: counts of depth frames, lidar clouds, evaluated and unmatched frames.
"""

import json
import os
from pathlib import Path
import threading

from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.core.runtime.caches import StampedCache
from rcdepth_ros.errors import ConfigError, RcdepthError
from rcdepth_ros.evaluation.frames import evaluate_frame, lidar_ground_truth
from rcdepth_ros.evaluation.metrics import DEFAULT_CAPS, MetricsAccumulator
from rcdepth_ros.nodes import params
from rcdepth_ros.nodes.qos import describe_qos, qos_from_string
from rcdepth_ros.nodes.tf_source import extrinsics_warnings, make_extrinsics
from rclpy.node import Node

NODE_NAME = 'rcdepth_eval_node'
SPECS = (
    params.ParamSpec('output', 'rcdepth_eval.json', 'path of the JSON report written on shutdown'),
    params.ParamSpec('caps', [50.0, 70.0, 80.0], 'depth caps of the metrics, metres'),
    params.ParamSpec('match_tolerance', 0.05, 'a lidar cloud within this many seconds of a depth image is its '
                     'ground truth', range=(0.0, 5.0)),
    params.ParamSpec('max_pending', 100, 'depth frames held while waiting for lidar / camera_info',
                     range=(1, 100000)),
    params.ParamSpec('qos.input', 'reliable', 'QoS of the subscriptions', choices=params.QOS_NAMES),
    params.ParamSpec('qos.input_depth', 50, 'history depth of the subscriptions', range=(1, 10000)),
) + tuple(spec for spec in params.SPECS if spec.name.startswith('extrinsics.'))


class EvalNode(Node):
    """The live evaluator (see the module docstring)."""

    def __init__(self, node_name=NODE_NAME, **kwargs):
        """Declare parameters, set up extrinsics and subscriptions."""
        super().__init__(node_name, **kwargs)
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        params.declare(self, SPECS)
        values = params.values(self, SPECS)
        self.values = values
        for name in sorted(values):
            self.get_logger().info(f'parameter {name} = {values[name]!r}')
        self.extrinsics, description = make_extrinsics(self, values['extrinsics.source'],
                                                       values['extrinsics.fixed_frame'],
                                                       values['extrinsics.tf_timeout'],
                                                       values['extrinsics.camera_frame'])
        self.get_logger().info(f'extrinsics from {description}')
        for warning in extrinsics_warnings(values['extrinsics.source'], values['extrinsics.frames'],
                                           values['extrinsics.camera_frame']):
            self.get_logger().warning(warning)
        self.tolerance_ns = int(round(values['match_tolerance'] * 1e9))
        self.accumulator = MetricsAccumulator(values['caps'], keep_frames=True)
        self.lidar = StampedCache(span_s=max(10.0, 4 * values['match_tolerance']), max_items=1000)
        self.infos = StampedCache(span_s=10.0, max_items=1000)
        self.pending = {}
        self.counts = {'depth': 0, 'lidar': 0, 'camera_info': 0, 'evaluated': 0, 'unmatched': 0, 'failed': 0}
        self.lock = threading.Lock()
        self.newest_lidar_ns = None
        qos = qos_from_string(values['qos.input'], values['qos.input_depth'])
        self.create_subscription(Image, 'depth/image', self.on_depth, qos)
        self.create_subscription(CameraInfo, 'depth/camera_info', self.on_camera_info, qos)
        self.create_subscription(PointCloud2, 'lidar/points', self.on_lidar, qos)
        self.get_logger().info(f'evaluating {self.resolve_topic_name("depth/image")} against '
                               f'{self.resolve_topic_name("lidar/points")} (QoS {describe_qos(qos)}); report: '
                               f'{values["output"]}')

    def on_depth(self, msg):
        """Hold a depth image until its lidar and camera_info are there."""
        stamp = stamp_to_ns(msg.header)
        with self.lock:
            self.counts['depth'] += 1
            self.pending[stamp] = msg
            while len(self.pending) > self.values['max_pending']:
                oldest = min(self.pending)
                self._finish(oldest, self.pending.pop(oldest), final=True)
        self._evaluate_ready()

    def on_camera_info(self, msg):
        """Cache the depth image's camera_info by stamp."""
        with self.lock:
            self.counts['camera_info'] += 1
        self.infos.add(stamp_to_ns(msg.header), msg)
        self._evaluate_ready()

    def on_lidar(self, msg):
        """Cache a lidar cloud by stamp."""
        stamp = stamp_to_ns(msg.header)
        with self.lock:
            self.counts['lidar'] += 1
            self.newest_lidar_ns = stamp if self.newest_lidar_ns is None else max(self.newest_lidar_ns, stamp)
        self.lidar.add(stamp, msg)
        self._evaluate_ready()

    def _evaluate_ready(self):
        with self.lock:
            newest = self.newest_lidar_ns
            ready = [s for s in sorted(self.pending) if self.infos.nearest(s, 0) is not None and
                     newest is not None and newest >= s]
            for stamp in ready:
                self._finish(stamp, self.pending.pop(stamp), final=False)

    def _finish(self, stamp, depth_msg, final):
        """Evaluate one depth frame (lock held)."""
        lidar = self.lidar.nearest(stamp, self.tolerance_ns)
        info = self.infos.nearest(stamp, 0)
        if lidar is None or info is None:
            self.counts['unmatched'] += 1
            what = 'lidar' if lidar is None else 'camera_info'
            self.get_logger().warning(f'depth at {stamp / 1e9:.3f} s: no {what} within the tolerance; not evaluated')
            return
        try:
            self.accumulator.add_frame(evaluate_depth_message(depth_msg, info[1], lidar[1], self.extrinsics,
                                                              self.values['caps']))
            self.counts['evaluated'] += 1
        except RcdepthError as exc:
            self.counts['failed'] += 1
            self.get_logger().warning(f'depth at {stamp / 1e9:.3f} s cannot be evaluated: {exc}')

    def report(self):
        """Return the report dict (metrics JSON of evaluation.metrics with per_frame, plus ``evaluation`` counts)."""
        with self.lock:
            result = self.accumulator.result()
            counts = dict(self.counts)
        out = result.to_dict(include_frames=True)
        out['evaluation'] = counts
        return out

    def close(self):
        """Evaluate what is still pending, then write the report (atomically)."""
        with self.lock:
            for stamp in sorted(self.pending):
                self._finish(stamp, self.pending.pop(stamp), final=True)
        path = write_report(self.report(), self.values['output'])
        self.get_logger().info(f'report written to {path} ({self.counts["evaluated"]} frames evaluated, '
                               f'{self.counts["unmatched"]} unmatched)')


def evaluate_depth_message(depth_msg, info_msg, lidar_msg, extrinsics, caps=DEFAULT_CAPS):
    """Return the FrameMetrics (at ``caps``) of a published depth Image against a lidar PointCloud2 (the core path)."""
    from rcdepth_ros.core.messages.camera_info import camera_info_to_intrinsics
    from rcdepth_ros.core.messages.images import image_to_numpy
    depth = image_to_numpy(depth_msg)
    if depth_msg.encoding != '32FC1':
        raise ConfigError(f'depth image encoding {depth_msg.encoding}: the evaluator reads 32FC1 metres')
    intrinsics = camera_info_to_intrinsics(info_msg)
    stamp = stamp_to_ns(depth_msg.header)
    camera = str(depth_msg.header.frame_id)
    T = extrinsics.lookup(camera, stamp, str(lidar_msg.header.frame_id), stamp_to_ns(lidar_msg.header))
    gt = lidar_ground_truth(lidar_msg, T, intrinsics.K, depth.shape[1], depth.shape[0])
    return evaluate_frame(depth, gt, stamp, caps)


def write_report(report, output):
    """Write ``report`` as JSON to ``output`` through a temporary file; return the path."""
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
    os.replace(tmp, path)
    return path


def main(args=None):
    """Run the evaluator until SIGINT / SIGTERM, then write the report."""
    from rcdepth_ros.nodes.runtime import run
    return run(EvalNode, args=args, lifecycle=False)


if __name__ == '__main__':
    import sys
    sys.exit(main())
