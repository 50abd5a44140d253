"""
rcdepth_node: camera + radar in, dense metric depth (and its Grad-CAM saliency) out, as a ROS 2 lifecycle node.

Wiring only; every step is in the core (``core.runtime.pipeline``). Topics (relative, remapped in launch):

- in: ``image`` (Image) or ``image/compressed`` (CompressedImage) by ``image_transport``; ``camera_info``
  (cached); every topic of ``radar_topics`` (PointCloud2). The image and the first radar are matched by the
  approximate-time policy; sweeps of all radars in the window before the image stamp are accumulated.
- out: ``depth/image`` (32FC1 metres, NaN invalid) + ``depth/camera_info``; ``depth/uncertainty`` (32FC1 metres:
  the standard deviation of the bin head's depth distribution, NaN wherever ``depth/image`` is NaN; bin-head models,
  computed only while subscribed); ``saliency/image`` (32FC1 in [0, 1], computed only while subscribed) +
  ``saliency/camera_info``; ``radar/depth_image`` (32FC1, the sparse radar depth
  at the model's input size, NaN where no return) + ``radar/camera_info`` (its K); ``~/debug/depth_color`` (bgr8,
  parameter); ``/diagnostics``. Every output carries the input image's header.

Lifecycle: parameters are declared in ``__init__``; ``on_configure`` loads the model (FAILURE with the reason
logged on a bad or missing checkpoint: the node stays unconfigured, its model parameters can be set again and it can
be configured again) and creates the publishers; ``on_activate`` subscribes and starts the
worker; ``on_deactivate`` / ``on_cleanup`` release them. Inference runs in worker threads fed by keep-latest
slots, so parameter services and transitions stay responsive and latency never grows with the input rate: with
``pipeline.overlap`` one thread decodes and preprocesses the next frame (``pipeline.prepare_frame``) while the other
runs the model on this one and publishes (``pipeline.finish_frame``); without it one thread does both in turn.
Bad input is warned about (throttled, per kind), counted in the diagnostics, and the node goes on.

With ``refine: radar`` (live) the engine refines each depth map with the frame's radar returns
(``core.inference.refine``, docs/refinement.md) within ``refine.budget_ms``; diagnostics add its latency
(``latency_ms.refine``), its frame outcomes (``refine.frames.*``: over budget, no valid return, ...) and the returns
it dropped (``refine.dropped_returns.*``: behind the camera, NaN, outside the image, out of range).
"""

import functools
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcdepth_ros.core.inference.bundled_model import resolve_model_path, SYNTHETIC_ONLY
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.messages.camera_info import intrinsics_to_camera_info
from rcdepth_ros.core.messages.images import depth_to_image_msg, numpy_to_image
from rcdepth_ros.core.messages.msgtypes import ros_message_types
from rcdepth_ros.core.messages.radar import RadarFieldMap
from rcdepth_ros.core.pictures.colour import colorize
from rcdepth_ros.core.runtime.latest import LatestSlot
from rcdepth_ros.core.runtime.pipeline import (finish_frame, FRAME_PROBLEMS, FrameAssembler, PipelineSettings,
                                               prepare_frame, SWEEP_PROBLEMS)
from rcdepth_ros.core.runtime.stats import Counters, LatencyStats, RateMeter, Throttle
from rcdepth_ros.core.runtime.sync import message_filters_available, SimpleFilter
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.errors import ConfigError, FrameError, RcdepthError
from rcdepth_ros.nodes import diagnostics, params
from rcdepth_ros.nodes.qos import describe_qos, qos_from_string
from rcdepth_ros.nodes.runtime import lifecycle_state, run
from rcdepth_ros.nodes.tf_source import extrinsics_warnings, make_extrinsics, unknown_frame_hint
from rcdepth_ros.ros_env import shm_segment_bytes
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
import torch

NODE_NAME = 'rcdepth_node'
OUTPUT_ERRORS = ('inference_error', 'publish_error')
WORKER_POLL_S = 0.1
# Sensor frames without extrinsics are each named once; past this many distinct messages, throttled warnings.
UNKNOWN_FRAME_MESSAGES = 16


def logged_transition(callback):
    """Log any exception of a lifecycle callback with its traceback and return ERROR (rclpy would hide it)."""
    @functools.wraps(callback)
    def wrapper(self, state):
        try:
            return callback(self, state)
        except Exception as exc:  # noqa: B902 - a transition must report, not raise
            self.get_logger().error(f'{callback.__name__} raised {type(exc).__name__}: {exc}\n'
                                    f'{traceback.format_exc()}')
            return TransitionCallbackReturn.ERROR
    return wrapper


def camera_info_with_header(info, header, types):
    """Return a new CameraInfo with the fields of ``info`` and ``header`` (cached messages are never mutated)."""
    return types.CameraInfo(header=header, height=info.height, width=info.width,
                            distortion_model=info.distortion_model, d=info.d, k=info.k, r=info.r, p=info.p,
                            binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi)


# The refinement stage's frame outcomes and dropped-return reasons (rcdepth_ros.core.inference.refine.STATUSES and
# DROP_REASONS, repeated here so importing the node does not import torch), listed in diagnostics from the start.
REFINE_STATUSES = ('refined', 'disabled', 'no_returns', 'no_valid_returns', 'over_budget')
REFINE_DROP_REASONS = ('nonfinite', 'behind_camera', 'out_of_range', 'outside_image')


class DepthNode(LifecycleNode):
    """The depth node (see the module docstring)."""

    def __init__(self, node_name=NODE_NAME, **kwargs):
        """Declare the parameters (descriptors, ranges) and the parameter callbacks; nothing else yet."""
        super().__init__(node_name, **kwargs)
        params.declare(self)
        self._values = params.values(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self._has_post_set = hasattr(self, 'add_post_set_parameters_callback')   # Humble has none
        if self._has_post_set:
            self.add_post_set_parameters_callback(self._apply_parameters)
        self._lock = threading.Lock()
        self._engine = None
        self._model_path = None
        self._extrinsics = None
        self._outputs = {}
        self._diagnostics_pub = None
        self._inputs = []
        self._filters = []
        self._assembler = None
        self._timer = None
        self._worker = None
        self._preparer = None
        self._stop = threading.Event()
        self._slot = LatestSlot()
        self._prepared = LatestSlot()
        self._field_map = RadarFieldMap(**params.field_map_values(self._values))
        self._throttle = Throttle(self._values['warn_throttle'])
        self._levels = diagnostics.LevelTracker()
        self._unknown_frame_hint = ''
        self._unknown_frames_said = set()
        self._shm_segment = shm_segment_bytes()
        self._reset_stats([])

    # ------------------------------------------------------------------------------------------------------------
    # Parameters
    # ------------------------------------------------------------------------------------------------------------

    def _validate_parameters(self, parameters):
        changes = {p.name: p.value for p in parameters}
        reason = params.refuse_after_configure(changes, lifecycle_state(self)) or params.validate(changes)
        if reason is None:
            merged = dict(self._values, **changes)
            reason = params.validate_color_range(merged['debug.color_min'], merged['debug.color_max'])
        if reason is None and not self._has_post_set:
            self._apply_parameters(parameters)
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _apply_parameters(self, parameters):
        later = []
        for parameter in parameters:
            if parameter.name not in params.BY_NAME:
                continue
            self._values[parameter.name] = parameter.value
            if parameter.name not in params.LIVE:
                later.append(parameter.name)
        values = self._values
        self._field_map = RadarFieldMap(**params.field_map_values(values))
        self._throttle.period_s = float(values['warn_throttle'])
        engine = self._engine
        if engine is not None and any(p.name == 'refine' or p.name.startswith('refine.') for p in parameters):
            self._set_refine(engine, values)
        assembler = self._assembler
        if assembler is not None:
            assembler.set_radar_selection(values['radar.window'], values['radar.max_sweeps'])
        if later and self._inputs:
            self.get_logger().info(f'{", ".join(later)} will take effect at the next activation')

    def _set_refine(self, engine, values):
        """Give the engine the refinement of the ``refine*`` parameters (later frames); a bad value is logged."""
        try:
            settings = engine.set_refine(params.refine_mapping(values))
        except RcdepthError as exc:
            self.get_logger().error(f'refinement unchanged: {exc}')
            return
        self.get_logger().info(f'refinement: {settings.mode}' + (f', budget {settings.budget_ms:g} ms'
                                                                 if settings.mode != 'none' else ''))

    def _log_parameters(self):
        for name in sorted(self._values):
            self.get_logger().info(f'parameter {name} = {self._values[name]!r}')

    # ------------------------------------------------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------------------------------------------------

    @logged_transition
    def on_configure(self, state):
        """Load the model and create the publishers; FAILURE (with the reason logged) on a bad checkpoint."""
        self._values = params.values(self)
        values = self._values
        self._log_parameters()
        try:
            self._model_path = resolve_model_path(values['model_path'])
            if not str(values['model_path']).strip():
                self.get_logger().warning(f'model_path is empty: the bundled demo model {self._model_path.name}, '
                                          f'{SYNTHETIC_ONLY}; set model_path to a model trained on your sensors')
            self._engine = self._load_engine(self._model_path, values)
        except (RcdepthError, OSError, RuntimeError) as exc:
            self.get_logger().error(f'cannot load the model: {exc}')
            self._engine = None
            return TransitionCallbackReturn.FAILURE
        try:
            self._extrinsics, description = make_extrinsics(
                self, values['extrinsics.source'], values['extrinsics.fixed_frame'],
                values['extrinsics.tf_timeout'], values['extrinsics.camera_frame'])
        except ConfigError as exc:
            self.get_logger().error(f'cannot set up the extrinsics: {exc}')
            self._engine = None
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'extrinsics from {description}')
        for warning in extrinsics_warnings(values['extrinsics.source'], values['extrinsics.frames'],
                                           values['extrinsics.camera_frame']):
            self.get_logger().warning(warning)
        self._unknown_frame_hint = unknown_frame_hint(values['extrinsics.source'])
        self._unknown_frames_said = set()
        self._create_publishers(values)
        engine = self._engine
        self.get_logger().info(f'model {self._model_path}: {engine.model_cfg.architecture} on {engine.device} '
                               f'({"fp16" if engine.half else "fp32"}), input {engine.input_cfg.height}x'
                               f'{engine.input_cfg.width} (HxW)')
        return TransitionCallbackReturn.SUCCESS

    def _load_engine(self, model_path, values):
        if values['num_threads'] > 0:
            torch.set_num_threads(int(values['num_threads']))
        half = {'auto': 'auto', 'true': True, 'false': False}[str(values['half']).lower()]
        calibration = None
        if str(values['int8_calibration']).strip():
            from rcdepth_ros.evaluation.datasets import calibration_frames   # the data readers: only for int8
            calibration = calibration_frames(str(values['int8_calibration']).strip())
        engine = InferenceEngine(model_path, device=values['device'], half=half, backend=values['backend'],
                                 precision=values['precision'], preprocess=values['preprocess'],
                                 cuda_graphs=bool(values['cuda_graphs']), calibration=calibration)
        self._set_refine(engine, values)
        if values['warmup']:
            self._warm_up(engine)
        return engine

    def _warm_up(self, engine):
        """Run one frame with and without saliency: kernels and allocators are set up before real frames."""
        height, width = engine.input_cfg.height, engine.input_cfg.width
        K = np.array([[float(width), 0.0, width / 2.0], [0.0, float(width), height / 2.0], [0.0, 0.0, 1.0]])
        radar = RadarPoints(np.array([[0.0, 0.0, 10.0]], np.float32))
        start = time.perf_counter()
        for saliency in (True, False):
            engine.infer(np.zeros((height, width, 3), np.uint8), radar, K, saliency=saliency)
        self.get_logger().info(f'warm-up: {(time.perf_counter() - start) * 1e3:.0f} ms')

    def _create_publishers(self, values):
        qos = qos_from_string(values['qos.output'], values['qos.output_depth'])
        kinds = {'depth/image': Image, 'depth/camera_info': CameraInfo, 'depth/uncertainty': Image,
                 'saliency/image': Image,
                 'saliency/camera_info': CameraInfo, 'radar/depth_image': Image, 'radar/camera_info': CameraInfo,
                 '~/debug/depth_color': Image}
        self._outputs = {topic: self.create_lifecycle_publisher(kind, topic, qos) for topic, kind in kinds.items()}
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.get_logger().info(f'publishers: QoS {values["qos.output"]} ({describe_qos(qos)})')

    @logged_transition
    def on_activate(self, state):
        """Subscribe, start the worker and the diagnostics timer, enable the publishers."""
        try:
            self._subscribe(dict(self._values))
        except (RcdepthError, ValueError) as exc:
            self.get_logger().error(f'cannot subscribe: {exc}')
            self._unsubscribe()
            return TransitionCallbackReturn.FAILURE
        self._stop.clear()
        self._slot = LatestSlot()
        self._prepared = LatestSlot()
        if self._values['pipeline.overlap']:
            self._preparer = threading.Thread(target=self._prepare_work, name='rcdepth_prepare', daemon=True)
            self._worker = threading.Thread(target=self._finish_work, name='rcdepth_worker', daemon=True)
            self._preparer.start()
        else:
            self._worker = threading.Thread(target=self._work, name='rcdepth_worker', daemon=True)
        self._worker.start()
        # Diagnostics report the node's health in real time: a steady clock, so they go on when /clock stops.
        from rclpy.clock import Clock, ClockType
        self._timer = self.create_timer(float(self._values['diagnostics.period']), self._publish_diagnostics,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        return super().on_activate(state)

    def _subscribe(self, values):
        qos = qos_from_string(values['qos.input'], values['qos.input_depth'])
        compressed = str(values['image_transport']).lower() == 'compressed'
        image_type, image_topic = (CompressedImage, 'image/compressed') if compressed else (Image, 'image')
        radar_topics = [t for t in values['radar_topics'] if t]
        inputs = [(image_type, image_topic)] + [(PointCloud2, t) for t in radar_topics]
        use_message_filters = message_filters_available()
        if use_message_filters:
            import message_filters
            self._filters = [message_filters.Subscriber(self, kind, topic, qos_profile=qos) for kind, topic in inputs]
            self._inputs = [f.sub for f in self._filters]
        else:
            self._filters = [SimpleFilter() for _ in inputs]
            self._inputs = [self.create_subscription(kind, topic, f.signalMessage, qos)
                            for f, (kind, topic) in zip(self._filters, inputs)]
        self._inputs.append(self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, qos))
        settings = PipelineSettings(values['queue_size'], values['slop'], values['radar.window'],
                                    values['radar.max_sweeps'], values['radar.cache_span'],
                                    values['time_jump_threshold'])
        self._reset_stats(radar_topics)
        self._assembler = FrameAssembler(settings, radar_topics, self._filters[0], self._filters[1:],
                                         on_frame=self._on_frame, on_event=self._on_event,
                                         prefer_message_filters=use_message_filters)
        self._filters[0].registerCallback(lambda msg: self._rates['image'].tick())
        for topic, radar_filter in zip(radar_topics, self._filters[1:]):
            radar_filter.registerCallback(lambda msg, meter=self._rates[f'radar {topic}']: meter.tick())
        names = ', '.join(self.resolve_topic_name(t) for _, t in inputs)
        self.get_logger().info(f'subscribed to {names}, {self.resolve_topic_name("camera_info")} with QoS '
                               f'{values["qos.input"]} ({describe_qos(qos)}); synchroniser '
                               f'{"message_filters" if use_message_filters else "rcdepth_ros.core.runtime.sync"} '
                               f'(queue {values["queue_size"]}, slop {values["slop"]} s)')

    def _unsubscribe(self):
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        self._filters = []
        self._assembler = None

    def _stop_worker(self):
        self._stop.set()
        self._slot.close()
        self._prepared.close()
        for name in ('_preparer', '_worker'):
            worker = getattr(self, name)
            setattr(self, name, None)
            if worker is not None:
                worker.join(timeout=30.0)
                if worker.is_alive():
                    self.get_logger().warning(f'the {worker.name} thread did not stop within 30 s')

    @logged_transition
    def on_deactivate(self, state):
        """Unsubscribe and stop the worker (a frame in inference is finished first)."""
        self._unsubscribe()
        self._stop_worker()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state):
        """Release the publishers, the extrinsics source and the model."""
        self._release()
        return super().on_cleanup(state)

    def _release(self):
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        close = getattr(self._extrinsics, 'close', None)
        if close is not None:
            close()
        self._extrinsics = None
        self._engine = None

    @logged_transition
    def on_shutdown(self, state):
        """Release everything from whatever state the node is in."""
        self._unsubscribe()
        self._stop_worker()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self):
        """Stop the worker if still running (process exit)."""
        self._stop_worker()

    # ------------------------------------------------------------------------------------------------------------
    # Callbacks and the worker
    # ------------------------------------------------------------------------------------------------------------

    def _reset_stats(self, radar_topics):
        self._rates = {'image': RateMeter(), 'camera_info': RateMeter(), 'depth': RateMeter()}
        self._rates.update({f'radar {t}': RateMeter() for t in radar_topics})
        self._latency = {'processing': LatencyStats(), 'end_to_end': LatencyStats(), 'forward': LatencyStats(),
                         'refine': LatencyStats(), 'header_age': LatencyStats()}
        self._refine_frames = Counters(REFINE_STATUSES)
        self._refine_dropped = Counters(REFINE_DROP_REASONS)
        self._problems = Counters(FRAME_PROBLEMS + SWEEP_PROBLEMS)
        self._errors = Counters(OUTPUT_ERRORS)
        self._frames = Counters(('processed', 'published'))

    def _warn(self, reason, message):
        said = self._unknown_frames_said
        if reason == 'radar_unknown_frame' and (message in said or len(said) < UNKNOWN_FRAME_MESSAGES):
            # A sensor frame without extrinsics stays so: say it once, with what to do, then only count it.
            if message not in said:
                said.add(message)
                self.get_logger().error(f'[{reason}] {message}; {self._unknown_frame_hint}. Further sweeps like this '
                                        f'are skipped without a warning, counted in /diagnostics as '
                                        f'drops.{reason}')
            return
        if self._throttle.ready(reason):
            held = self._throttle.suppressed(reason)
            suffix = f' ({held} more since the last warning of this kind)' if held else ''
            self.get_logger().warning(f'[{reason}] {message}{suffix}')

    def _on_event(self, reason, message):
        # The assembler counts its own events; warnings only here (a time jump is a normal bag restart: info).
        if reason == 'time_jump':
            self.get_logger().info(message)
        else:
            self._warn(reason, message)

    def _on_camera_info(self, msg):
        self._rates['camera_info'].tick()
        assembler = self._assembler
        if assembler is not None:
            assembler.add_camera_info(msg)

    def _on_frame(self, request):
        self._slot.put(request)

    def _serve(self, slot, handle):
        """Take the newest item of a keep-latest ``slot`` and ``handle`` it, until the node stops."""
        while not self._stop.is_set():
            item = slot.take(timeout=WORKER_POLL_S)
            if item is not None:
                handle(item)

    def _work(self):
        """One thread: prepare and finish each frame in turn."""
        self._serve(self._slot, lambda request: self._guarded(request,
                                                              lambda: self._finish(self._prepare(request))))

    def _prepare_work(self):
        """Overlap, first thread: decode and preprocess the newest matched frame while the model runs the last."""
        def prepare(request):
            prepared = self._guarded(request, lambda: self._prepare(request))
            if prepared is not None:
                self._prepared.put(prepared)
        self._serve(self._slot, prepare)

    def _finish_work(self):
        """Overlap, second thread: run the model on the newest prepared frame and publish."""
        self._serve(self._prepared, lambda prepared: self._guarded(prepared[0].request,
                                                                   lambda: self._finish(prepared)))

    def _guarded(self, request, step):
        """Run one step of a frame; count (and log) any exception: the workers survive anything one frame does."""
        try:
            return step()
        except FrameError as exc:
            self._problems.add(exc.reason)
            self._warn(exc.reason, str(exc))
        except Exception as exc:  # noqa: B902 - the worker must survive anything one frame does
            self._errors.add('inference_error')
            self.get_logger().error(f'frame at {request.stamp_ns / 1e9:.3f} s failed: '
                                    f'{type(exc).__name__}: {exc}')
        return None

    def _prepare(self, request):
        """Return (PreparedFrame, wanted outputs) of a matched frame, or None when the node is not configured."""
        assembler, engine, extrinsics = self._assembler, self._engine, self._extrinsics
        if assembler is None or engine is None:
            return None
        values = self._values
        assembler.complete(request, float(values['camera_info_wait']))
        # Which optional outputs this frame gets is decided once, before the work: a subscriber that appears
        # meanwhile gets the next frame's, never half of this one's.
        wanted = {topic: self._subscribed(topic) for topic in ('saliency/image', 'radar/depth_image',
                                                               '~/debug/depth_color', 'depth/uncertainty')}
        wanted['saliency/image'] = wanted['saliency/image'] and bool(values['saliency.enabled'])
        wanted['~/debug/depth_color'] = wanted['~/debug/depth_color'] and bool(values['debug.depth_color'])
        wanted['depth/uncertainty'] = wanted['depth/uncertainty'] and engine.has_uncertainty
        return prepare_frame(engine, request, extrinsics, self._field_map), wanted

    def _finish(self, item):
        """Run the model on a prepared frame, publish its outputs, record its latencies."""
        engine = self._engine
        if item is None or engine is None:
            return
        prepared, wanted = item
        request = prepared.request
        result = finish_frame(engine, prepared, wanted['saliency/image'], wanted['depth/uncertainty'],
                              wanted['radar/depth_image'])
        for reason, message in result.issues:
            self._problems.add(reason)
            self._warn(reason, message)
        if result.refine is not None:      # counted before publishing: a subscriber may read the report at once
            self._latency['refine'].add(result.timings.get('refine', float('nan')))
            self._refine_frames.add(result.refine['status'])
            for reason, count in result.refine['dropped'].items():
                if count:
                    self._refine_dropped.add(reason, count)
        self._frames.add('processed')
        self._publish(result, wanted)
        done = time.monotonic()
        self._latency['processing'].add((done - request.matched) * 1e3)
        self._latency['end_to_end'].add((done - request.received) * 1e3)
        self._latency['forward'].add(result.timings.get('forward', float('nan')))
        self._latency['header_age'].add((self.get_clock().now().nanoseconds - request.stamp_ns) / 1e6)

    def _subscribed(self, topic):
        publisher = self._outputs.get(topic)
        return publisher is not None and publisher.get_subscription_count() > 0

    def _send(self, topic, build):
        publisher = self._outputs.get(topic)
        if publisher is None:
            return False
        try:
            publisher.publish(build())
            return True
        except Exception as exc:  # noqa: B902 - RCLError when a reliable subscriber falls behind, and the like
            self._errors.add('publish_error')
            self._warn('publish_error', f'{topic}: publish failed: {type(exc).__name__}: {exc}')
            return False

    def _publish(self, result, wanted):
        types = ros_message_types()
        header = result.request.header
        info_msg = result.request.camera_info[0]
        info = camera_info_with_header(info_msg, header, types)
        if self._send('depth/image', lambda: depth_to_image_msg(result.depth, header, types)):
            self._frames.add('published')
            self._rates['depth'].tick()
        self._send('depth/camera_info', lambda: info)
        if wanted['depth/uncertainty'] and result.uncertainty is not None:
            self._send('depth/uncertainty', lambda: numpy_to_image(result.uncertainty, '32FC1', header, types))
        if result.saliency is not None:
            self._send('saliency/image', lambda: numpy_to_image(result.saliency.astype('float32'), '32FC1', header,
                                                                types))
            self._send('saliency/camera_info', lambda: info)
        if wanted['radar/depth_image']:
            self._send('radar/depth_image', lambda: depth_to_image_msg(result.radar_depth, header, types))
            height, width = result.radar_depth.shape
            self._send('radar/camera_info', lambda: self._model_camera_info(
                CameraIntrinsics(result.radar_K, width, height, frame_id=header.frame_id), header, types))
        if wanted['~/debug/depth_color']:
            self._send('~/debug/depth_color',
                       lambda: numpy_to_image(self._colorize(result.depth), 'bgr8', header, types))

    @staticmethod
    def _model_camera_info(intrinsics, header, types):
        return intrinsics_to_camera_info(intrinsics, header, types)

    def _colorize(self, depth):
        values = self._values
        return colorize(depth, values['debug.color_min'], values['debug.color_max'], values['debug.colormap'],
                        invert=True)

    # ------------------------------------------------------------------------------------------------------------
    # Diagnostics
    # ------------------------------------------------------------------------------------------------------------

    def report(self):
        """Return the diagnostics as a nested dict: rates, frames, latencies, drops per reason, model."""
        engine = self._engine
        assembler = self._assembler
        sync_stats = assembler.stats()['sync'] if assembler is not None else {}
        counters = assembler.stats()['counters'] if assembler is not None else {}
        drops = {f'sync.{name}': s['dropped'] for name, s in sync_stats.items()}
        drops['keep_latest'] = self._slot.dropped + self._prepared.dropped
        problems = self._problems.snapshot()
        for reason in FRAME_PROBLEMS:       # counted by the assembler (matching) and by the worker (processing)
            problems[reason] = problems.get(reason, 0) + counters.get(reason, 0)
        drops.update(problems)
        rates = {name: meter.rate() for name, meter in self._rates.items()}
        latency = {}
        for name, stats in self._latency.items():
            summary = stats.summary()
            latency[name] = {'p50': summary['p50'], 'p95': summary['p95'], 'max': summary['max']}
        return {
            'device': str(engine.device) if engine is not None else 'n/a',
            'model': str(self._model_path) if self._model_path is not None else 'n/a',
            'architecture': engine.model_cfg.architecture if engine is not None else 'n/a',
            'input_size': f'{engine.input_cfg.height}x{engine.input_cfg.width}' if engine is not None else 'n/a',
            'precision': engine.precision if engine is not None else 'n/a',
            'engine': engine.stats() if engine is not None else {},
            'rates_hz': rates,
            'frames': {'images': self._rates['image'].count, 'matched': counters.get('matched', 0),
                       'processed': self._frames.get('processed'), 'published': self._frames.get('published')},
            'latency_ms': latency,
            'drops': drops,
            'errors': self._errors.snapshot(),
            # matched subscriptions per output: who listens (a recorder, an evaluator) as this node sees it
            'subscribers': {topic: publisher.get_subscription_count() for topic, publisher in self._outputs.items()},
            'refine': {'mode': engine.refine_settings.mode if engine is not None else 'n/a',
                       'budget_ms': float(engine.refine_settings.budget_ms) if engine is not None else None,
                       'frames': self._refine_frames.snapshot(), 'dropped_returns': self._refine_dropped.snapshot()},
        }

    def _image_input(self):
        """Return (image topic, its publisher count, the shared-memory segment) for the diagnostics' hint."""
        if not self._filters:
            return None
        compressed = str(self._values['image_transport']).lower() == 'compressed'
        topic = self.resolve_topic_name('image/compressed' if compressed else 'image')
        return topic, self.count_publishers(topic), self._shm_segment

    def _publish_diagnostics(self):
        publisher = self._diagnostics_pub
        if publisher is None:
            return
        report = self.report()
        problems = {k: v for k, v in report['drops'].items() if k in FRAME_PROBLEMS + SWEEP_PROBLEMS
                    and k != 'time_jump'}
        level, message = self._levels.level(problems, report['errors'], report['rates_hz']['image'],
                                            report['rates_hz']['depth'], report['frames'], report['drops'],
                                            self._image_input())
        array = diagnostics.diagnostic_array(self.get_clock().now().to_msg(), f'{self.get_name()}: depth',
                                             report['device'], level, message, report)
        try:
            publisher.publish(array)
        except Exception as exc:  # noqa: B902 - diagnostics must never take the node down
            self._warn('publish_error', f'/diagnostics: publish failed: {exc}')


def main(args=None):
    """Run the node: configure and activate it, spin until SIGINT / SIGTERM, then deactivate and clean up."""
    return run(DepthNode, args=args, lifecycle=True)


if __name__ == '__main__':
    import sys
    sys.exit(main())
