"""
The node's pipeline run offline over a bag, no ROS transport: ``rcdepth eval-bag`` and the demo.

The bag's messages are read in log-time order (rosbags) and fed to the same ``core.runtime.pipeline.FrameAssembler``
the node uses (approximate-time matching, radar caches, camera_info cache); each matched frame goes through the same
``process_frame`` and is scored like every other path (``evaluation.frames.evaluate_frame``) against the lidar
cloud nearest to the image stamp, moved into the camera frame and projected at the image resolution. So on the same
bag, with no frame dropped by the live node, ``rcdepth_eval_node`` gives the same per-frame numbers.

Extrinsics: ``static`` (default) takes the bag's ``/tf_static`` as fixed transforms, what the node does with
parameter extrinsics (the demo passes it exactly these); ``tf`` looks up the bag's TF through the world frame
(``lookup_transform_full``), what the node does with tf2 and a fixed frame.
"""

from rcdepth_ros.core.bags import bag_info, BagLayout, read_bag_messages, TransformBuffer
from rcdepth_ros.core.geometry.extrinsics import static_extrinsics_from_buffer, TransformBufferExtrinsics
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.core.runtime.caches import StampedCache
from rcdepth_ros.core.runtime.pipeline import FrameAssembler, PipelineSettings, process_frame
from rcdepth_ros.core.runtime.stats import Counters
from rcdepth_ros.errors import BagError, FrameError, RcdepthError
from rcdepth_ros.evaluation.frames import evaluate_frame, lidar_ground_truth
from rcdepth_ros.evaluation.metrics import DEFAULT_CAPS, MetricsAccumulator


class _PendingFrames:
    """Processed frames waiting for their lidar cloud (a cloud stamped at or after the image settles it)."""

    def __init__(self, tolerance_ns):
        self.tolerance_ns = tolerance_ns
        self.lidar = StampedCache(span_s=max(10.0, 4 * tolerance_ns / 1e9), max_items=1000)
        self.newest_lidar_ns = None
        self.frames = []

    def add_lidar(self, stamp_ns, msg):
        self.lidar.add(stamp_ns, msg)
        self.newest_lidar_ns = stamp_ns if self.newest_lidar_ns is None else max(self.newest_lidar_ns, stamp_ns)

    def ready(self, final=False):
        def settled(frame):
            return final or (self.newest_lidar_ns is not None and self.newest_lidar_ns >= frame.request.stamp_ns)

        done = [f for f in self.frames if settled(f)]
        self.frames = [f for f in self.frames if not settled(f)]
        return [(f, self.lidar.nearest(f.request.stamp_ns, self.tolerance_ns)) for f in done]


def bag_static_extrinsics(bag):
    """Return ``(camera frame, {frame: T_camera_from_frame})`` from a bag's ``/tf_static`` (and its layout)."""
    info = bag_info(bag)
    layout = BagLayout.from_dict(info.layout_data()) if info.layout_data() is not None else BagLayout()
    buffer = TransformBuffer()
    camera = None
    topics = [t for t in (layout.tf_static_topic, layout.image_topic, layout.compressed_image_topic)
              if t in info.topics]
    for message in read_bag_messages(bag, topics=topics):
        if message.topic == layout.tf_static_topic:
            buffer.add_message(message.msg, static=True)
        elif camera is None:
            camera = str(message.msg.header.frame_id)
        if camera is not None and buffer.static_transforms():
            break
    if camera is None:
        raise BagError(f'bag {bag}: no image on {layout.image_topic} or {layout.compressed_image_topic}')
    return camera, static_extrinsics_from_buffer(buffer, camera).transforms


class _RefineTally:
    """The refinement's outcomes, dropped returns and times over the processed frames."""

    def __init__(self):
        self.frames = 0
        self.statuses = Counters()
        self.dropped = Counters()
        self.times = []

    def add(self, report, time_ms):
        self.frames += 1
        self.statuses.add(report['status'])
        for reason, count in report['dropped'].items():
            self.dropped.add(reason, count)
        if time_ms is not None:
            self.times.append(float(time_ms))

    def summary(self, settings):
        times = sorted(self.times)
        return {'settings': settings.to_dict(), 'frames': self.statuses.snapshot(),
                'dropped_returns': self.dropped.snapshot(),
                'time_ms_p50': times[len(times) // 2] if times else None}


def evaluate_bag(bag, engine, settings=None, extrinsics='static', caps=DEFAULT_CAPS, match_tolerance_s=0.05,
                 field_map=None, on_result=None):
    """
    Run the pipeline on every frame of ``bag`` with ``engine``; return ``(MetricsResult, info dict)``.

    ``settings`` is a ``PipelineSettings`` (default: the node's defaults); ``on_result(frame_result, metrics or
    None)`` is called for every processed frame (the demo keeps a few for its pictures).
    """
    info = bag_info(bag)
    layout = BagLayout.from_dict(info.layout_data()) if info.layout_data() is not None else BagLayout()
    image_topic = next((t for t in (layout.image_topic, layout.compressed_image_topic) if t in info.topics), None)
    if image_topic is None:
        raise BagError(f'bag {bag}: no image topic ({layout.image_topic} or {layout.compressed_image_topic})')
    radar_topics = sorted((t for t, s in info.topics.items()
                           if s.msgtype == 'sensor_msgs/msg/PointCloud2' and t != layout.lidar_topic),
                          key=lambda t: (t != layout.radar_topic, t))
    if not radar_topics:
        raise BagError(f'bag {bag}: no radar PointCloud2 topic besides the lidar ({layout.lidar_topic})')
    buffer = TransformBuffer()
    requests, problems = [], Counters()
    assembler = FrameAssembler(settings or PipelineSettings(), radar_topics, on_frame=requests.append,
                               on_event=lambda reason, message: None, prefer_message_filters=False)
    pending = _PendingFrames(int(round(match_tolerance_s * 1e9)))
    accumulator = MetricsAccumulator(caps, keep_frames=True)
    refine = _RefineTally()
    counts = {'images': 0, 'matched': 0, 'processed': 0, 'evaluated': 0, 'unmatched': 0}

    def provider(camera_frame):
        if extrinsics == 'tf':
            return TransformBufferExtrinsics(buffer, layout.frame('world'))
        return static_extrinsics_from_buffer(buffer, camera_frame)

    def settle(final=False):
        for result, lidar in pending.ready(final):
            metrics = None
            if lidar is None:
                counts['unmatched'] += 1
            else:
                stamp, cloud = lidar
                camera = str(result.request.header.frame_id)
                try:
                    T = provider(camera).lookup(camera, result.request.stamp_ns, str(cloud.header.frame_id), stamp)
                    gt = lidar_ground_truth(cloud, T, result.intrinsics.K, result.depth.shape[1],
                                            result.depth.shape[0])
                    metrics = evaluate_frame(result.depth, gt, result.request.stamp_ns, caps)
                    accumulator.add_frame(metrics)
                    counts['evaluated'] += 1
                except RcdepthError:
                    problems.add('lidar_unknown_frame')
            if on_result is not None:
                on_result(result, metrics)

    wanted = [image_topic, layout.camera_info_topic, layout.lidar_topic, layout.tf_topic, layout.tf_static_topic]
    wanted = sorted({t for t in wanted + radar_topics if t in info.topics})
    for message in read_bag_messages(bag, topics=wanted):
        topic = message.topic
        if topic in (layout.tf_topic, layout.tf_static_topic):
            buffer.add_message(message.msg, static=topic == layout.tf_static_topic)
        elif topic == layout.camera_info_topic:
            assembler.add_camera_info(message.msg)
        elif topic == layout.lidar_topic:
            pending.add_lidar(stamp_to_ns(message.msg.header), message.msg)
        elif topic == image_topic:
            counts['images'] += 1
            assembler.image_filter.signalMessage(message.msg)
        else:
            assembler.radar_filters[radar_topics.index(topic)].signalMessage(message.msg)
        while requests:
            request = assembler.complete(requests.pop(0))
            counts['matched'] += 1
            camera = str(request.header.frame_id)
            try:
                result = process_frame(engine, request, provider(camera), field_map)
            except FrameError as exc:
                problems.add(exc.reason)
                continue
            for reason, _ in result.issues:
                problems.add(reason)
            if result.refine is not None:
                refine.add(result.refine, result.timings.get('refine'))
            counts['processed'] += 1
            pending.frames.append(result)
        settle()
    settle(final=True)
    for reason, count in assembler.counters.snapshot().items():
        if reason != 'matched' and count:
            problems.add(reason, count)
    result = accumulator.result()
    info_out = dict(counts, problems=problems.snapshot(), radar_topics=radar_topics, image_topic=image_topic,
                    extrinsics=extrinsics)
    if refine.frames:
        info_out['refine'] = refine.summary(engine.refine_settings)
    return result, info_out
