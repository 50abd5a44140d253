"""
One camera frame through the core, the same code for the live node and the offline bag evaluator.

Matching (``FrameAssembler``): the image and the first radar are paired by the approximate-time policy
(``runtime.sync``: the real message_filters synchroniser where importable, else the package's); every radar
topic feeds a time-indexed cache (``runtime.caches``); camera_info is cached, never synchronised. Inputs are
message_filters-style filters (``registerCallback``): ``message_filters.Subscriber`` in a node on a ROS install,
``runtime.sync.SimpleFilter`` fed by subscription callbacks otherwise, and fed straight from a bag by the offline
evaluator, so both walk the same code. A stamp that jumps backwards by more than ``time_jump_s`` (a bag
restarted, a loop) resets the synchroniser and the caches.

Processing (``process_frame``): image -> RGB, camera_info -> intrinsics, each selected sweep parsed by field
names, stripped of non-finite returns, moved into the camera frame at the image time by an extrinsics provider
(``geometry.extrinsics`` or the node's tf2 source) and merged; then ``InferenceEngine.infer``. Problems with the
whole frame raise ``FrameError`` (its ``reason`` is the diagnostics counter); problems with one sweep skip that
sweep and are listed in ``FrameResult.issues`` as ``(reason, message)``. Scoring a processed frame against lidar
is ``rcdepth_ros.evaluation.frames`` (above the core).
"""

import collections
import dataclasses
import threading
import time
import typing

import numpy as np

from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.messages.camera_info import camera_info_to_intrinsics
from rcdepth_ros.core.messages.images import image_to_rgb
from rcdepth_ros.core.messages.radar import pointcloud2_to_radar
from rcdepth_ros.core.runtime.caches import RadarCache, StampedCache, Sweep
from rcdepth_ros.core.runtime.stats import Counters
from rcdepth_ros.core.runtime.sync import make_synchronizer, message_stamp_ns, SimpleFilter
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import FrameError, RcdepthError, SyncError

# Counters of the frame-level and sweep-level problems, listed in diagnostics from the start.
FRAME_PROBLEMS = ('no_camera_info', 'bad_camera_info', 'bad_image', 'image_size_mismatch', 'no_stamp',
                  'time_jump')
SWEEP_PROBLEMS = ('radar_format', 'radar_empty', 'radar_nonfinite_points', 'radar_nonfinite_values',
                  'radar_unknown_frame')


@dataclasses.dataclass
class PipelineSettings:
    """
    How frames are matched and radar sweeps gathered.

    ``queue_size`` and ``slop_s``: the approximate-time synchroniser's. ``radar_window_s``: sweeps stamped up to
    this long before the image are accumulated (with ``slop_s`` after it); ``radar_max_sweeps`` per radar.
    ``cache_span_s``: how much history each cache keeps. ``time_jump_s``: a stamp this much older than the newest
    seen resets everything.
    """

    queue_size: int = 10
    slop_s: float = 0.05
    radar_window_s: float = 0.1
    radar_max_sweeps: int = 1
    cache_span_s: float = 2.0
    time_jump_s: float = 1.0

    def __post_init__(self):
        """Check ranges; raise FrameError naming the setting."""
        checks = ((self.queue_size >= 1, 'queue_size must be >= 1'), (self.slop_s >= 0, 'slop_s must be >= 0'),
                  (self.radar_window_s >= 0, 'radar_window_s must be >= 0'),
                  (self.radar_max_sweeps >= 1, 'radar_max_sweeps must be >= 1'),
                  (self.cache_span_s > 0, 'cache_span_s must be > 0'), (self.time_jump_s >= 0, 'time_jump_s >= 0'))
        for ok, text in checks:
            if not ok:
                raise FrameError(f'pipeline settings: {text}: {self}', 'settings')


@dataclasses.dataclass
class FrameRequest:
    """
    A matched camera frame waiting for the model.

    ``radar`` is the first radar's sweep paired with the image; ``received`` / ``matched`` are monotonic times
    (the image's arrival, the match) for latency only, never for matching. ``camera_info`` (message,
    CameraIntrinsics) and ``sweeps`` are filled by ``FrameAssembler.complete`` just before processing;
    ``camera_info_refused`` says why when the image's own camera_info (same stamp) was refused.
    """

    stamp_ns: int
    image: typing.Any
    radar: Sweep
    received: float
    matched: float
    camera_info: typing.Optional[tuple] = None
    sweeps: typing.List[Sweep] = dataclasses.field(default_factory=list)
    camera_info_refused: typing.Optional[str] = None

    @property
    def header(self):
        """Return the header of the image; the outputs copy it."""
        return self.image.header


@dataclasses.dataclass
class FrameResult:
    """
    What one frame produced.

    ``depth`` (H, W) float32 metres at the image size, NaN where invalid (exactly what ``depth/image`` carries);
    ``saliency`` (H, W) in [0, 1] or None; ``radar_depth`` (h, w) float32 metres at the model's input size, 0 where
    no return (the depth channel the model read) with ``radar_K`` its intrinsics; ``radar_points`` the number of
    returns used; ``issues`` ``[(reason, message)]`` of skipped sweeps; ``timings`` in ms; ``refine`` the
    refinement stage's report (``Refinement.report``) or None when the stage is off.
    """

    request: FrameRequest
    intrinsics: typing.Any
    depth: np.ndarray
    saliency: typing.Optional[np.ndarray]
    radar_depth: np.ndarray
    radar_K: np.ndarray
    radar_points: int
    issues: typing.List[tuple]
    timings: typing.Dict[str, float]
    refine: typing.Optional[typing.Dict[str, typing.Any]] = None


class FrameAssembler:
    """
    Image + radar filters -> FrameRequests (see the module docstring).

    ``image_filter`` and ``radar_filters`` are message_filters-style inputs (default: new ``SimpleFilter``s, fed
    with ``signalMessage``); ``on_frame(request)`` is called for every match, ``on_event(reason, message)`` for
    every problem (also counted in ``counters``). Call ``add_camera_info(msg)`` for camera_info messages and
    ``complete(request)`` before processing a request. Until the first camera_info arrives, the newest matched
    frame is held back (and released by that camera_info); older ones are dropped as ``no_camera_info``. A refused
    camera_info is counted (``bad_camera_info``) and remembered by stamp: the frame it belongs to (same stamp) is
    not processed with another camera_info's K (``decode_frame`` skips it as ``no_camera_info``).
    """

    def __init__(self, settings=None, radar_names=('radar',), image_filter=None, radar_filters=None,
                 on_frame=None, on_event=None, prefer_message_filters=True):
        """Register on the filters (time-jump check and caches before the synchroniser) and build the synchroniser."""
        self.settings = settings or PipelineSettings()
        self.radar_names = [str(n) for n in radar_names]
        if not self.radar_names:
            raise FrameError('frame assembler: at least one radar input is needed', 'settings')
        self.image_filter = image_filter if image_filter is not None else SimpleFilter()
        self.radar_filters = list(radar_filters) if radar_filters is not None else \
            [SimpleFilter() for _ in self.radar_names]
        if len(self.radar_filters) != len(self.radar_names):
            raise FrameError(f'frame assembler: {len(self.radar_filters)} radar filters for radars '
                             f'{self.radar_names}', 'settings')
        self.on_frame = on_frame
        self.on_event = on_event
        self.counters = Counters(FRAME_PROBLEMS + ('matched',))
        self.radar_cache = RadarCache(len(self.radar_names), self.settings.radar_window_s,
                                      self.settings.radar_max_sweeps, self.settings.cache_span_s)
        self.camera_infos = StampedCache(self.settings.cache_span_s, max_items=64)
        self.refused_infos = StampedCache(self.settings.cache_span_s, max_items=64)
        self._lock = threading.Lock()
        self._newest_ns = None
        self._arrivals = collections.OrderedDict()
        self._waiting = None
        self._info_arrived = threading.Condition()
        self._infos_share_image_stamps = False
        # Registered before the synchroniser's own callbacks, so a time jump resets it before it stores the message.
        self.image_filter.registerCallback(self._on_image)
        for index, radar_filter in enumerate(self.radar_filters):
            radar_filter.registerCallback(self._on_radar, index)
        self.sync = make_synchronizer([self.image_filter, self.radar_filters[0]], self.settings.queue_size,
                                      self.settings.slop_s, names=['image', self.radar_names[0]],
                                      prefer_message_filters=prefer_message_filters)
        self.sync.registerCallback(self._on_match)

    def _event(self, reason, message):
        self.counters.add(reason)
        if self.on_event is not None:
            self.on_event(reason, message)

    def _stamp(self, msg, name, zero_is_unstamped=False):
        """
        Return the header stamp, checking for a time jump; None for a message without a stamp.

        With ``zero_is_unstamped`` a zero stamp (some drivers leave camera_info unstamped) is returned without the
        time-jump check: it says nothing about time.
        """
        try:
            stamp = message_stamp_ns(msg, name)
        except SyncError as exc:
            self._event('no_stamp', str(exc))
            return None
        if zero_is_unstamped and stamp == 0:
            return stamp
        jump = False
        with self._lock:
            if self._newest_ns is not None and stamp < self._newest_ns - int(self.settings.time_jump_s * 1e9):
                jump, previous = True, self._newest_ns
            if jump or self._newest_ns is None or stamp > self._newest_ns:
                self._newest_ns = stamp
        if jump:
            self.reset()
            self._event('time_jump', f'{name} stamp {stamp / 1e9:.3f} s is {(previous - stamp) / 1e9:.3f} s before '
                                     f'the newest seen ({previous / 1e9:.3f} s): time jumped backwards (bag '
                                     f'restarted?); synchroniser and caches reset')
        return stamp

    def _on_image(self, msg):
        stamp = self._stamp(msg, 'image')
        if stamp is None:
            return
        with self._lock:
            self._arrivals[stamp] = time.monotonic()
            while len(self._arrivals) > 4 * self.settings.queue_size + 4:
                self._arrivals.popitem(last=False)

    def _on_radar(self, msg, index):
        stamp = self._stamp(msg, self.radar_names[index])
        if stamp is not None:
            self.radar_cache.add(index, stamp, msg)

    def add_camera_info(self, msg):
        """Cache a CameraInfo (a bad one is counted as ``bad_camera_info`` and not cached); return its intrinsics."""
        stamp = self._stamp(msg, 'camera_info', zero_is_unstamped=True)
        if stamp is None:
            return None
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except RcdepthError as exc:
            self._event('bad_camera_info', f'camera_info at {stamp / 1e9:.3f} s ignored: {exc}')
            if stamp:       # an unstamped one belongs to no particular image
                self.refused_infos.add(stamp, str(exc))
                with self._info_arrived:
                    self._info_arrived.notify_all()
            return None
        self.camera_infos.add(stamp, (msg, intrinsics))
        with self._info_arrived:
            self._info_arrived.notify_all()
        with self._lock:
            waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._emit(waiting)
        return intrinsics

    def _on_match(self, image, radar):
        now = time.monotonic()
        stamp = message_stamp_ns(image, 'image')
        with self._lock:
            received = self._arrivals.pop(stamp, now)
        self.counters.add('matched')
        request = FrameRequest(stamp, image, Sweep(0, message_stamp_ns(radar, self.radar_names[0]), radar),
                               received, now)
        if not len(self.camera_infos):
            # A camera driver publishes camera_info and image together; either may be delivered first. Hold the
            # newest frame until the first camera_info arrives instead of dropping it.
            with self._lock:
                previous, self._waiting = self._waiting, request
            if previous is not None:
                self._event('no_camera_info', f'image at {previous.stamp_ns / 1e9:.3f} s dropped: no camera_info '
                                              f'received yet')
            return
        self._emit(request)

    def _emit(self, request):
        if self.on_frame is not None:
            self.on_frame(request)

    def complete(self, request, wait_s=0.0):
        """
        Fill ``request.camera_info`` and ``request.sweeps`` from the caches; return the request.

        camera_info: the one with the image's stamp, else the newest before it, else the oldest after it
        (intrinsics rarely change), None when none was received, and None with ``camera_info_refused`` set when the
        one with the image's stamp was refused (its K is wrong for this frame; another's may be too). Drivers stamp
        camera_info like its image, but the two topics may be delivered in either order: once camera_info has been
        seen with the images' stamps, ``wait_s`` > 0 waits up to that long for the one of this image (the node's
        worker does; the offline evaluator reads the bag in order and never needs to).
        """
        stamp = request.stamp_ns

        def own_info_seen():
            return self.camera_infos.nearest(stamp, 0) is not None or self.refused_infos.nearest(stamp, 0) is not None

        if wait_s > 0 and self._infos_share_image_stamps:
            deadline = time.monotonic() + wait_s
            with self._info_arrived:
                while not own_info_seen():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._info_arrived.wait(remaining)
        exact = self.camera_infos.nearest(stamp, 0)
        refused = self.refused_infos.nearest(stamp, 0) if exact is None else None
        request.camera_info_refused = None
        if exact is not None:
            request.camera_info = exact[1]
        elif refused is not None:
            request.camera_info, request.camera_info_refused = None, refused[1]
        else:
            before = self.camera_infos.between(-2 ** 62, stamp)
            after = self.camera_infos.between(stamp, 2 ** 62)
            request.camera_info = before[-1][1] if before else (after[0][1] if after else None)
        self._infos_share_image_stamps = exact is not None or refused is not None
        request.sweeps = self.radar_cache.select(stamp, self.settings.slop_s,
                                                 matched=(request.radar.stamp_ns, request.radar.msg))
        return request

    def set_radar_selection(self, window_s=None, max_sweeps=None):
        """Change the sweep selection at run time (later frames only)."""
        if window_s is not None:
            self.settings.radar_window_s = float(window_s)
            self.radar_cache.window_s = float(window_s)
        if max_sweeps is not None:
            self.settings.radar_max_sweeps = int(max_sweeps)
            self.radar_cache.max_sweeps = int(max_sweeps)

    def reset(self):
        """Forget every queued and cached message (time jumped backwards)."""
        self.sync.reset()
        self.radar_cache.clear()
        self.camera_infos.clear()
        self.refused_infos.clear()
        with self._lock:
            self._arrivals.clear()
            self._waiting = None

    def stats(self):
        """Return the synchroniser's per-input counters, the problem counters and the cache evictions."""
        return {'sync': self.sync.stats(), 'counters': self.counters.snapshot(),
                'radar_cache_evicted': self.radar_cache.evicted}


def radar_in_camera(sweeps, extrinsics, camera_frame, image_stamp_ns, field_map=None):
    """
    Return (RadarPoints in ``camera_frame`` at the image time, issues) from the selected Sweeps.

    A sweep that cannot be parsed, is empty, or whose frame the extrinsics do not know is skipped; returns with a
    non-finite coordinate are dropped and non-finite RCS / velocity set to 0. Each is listed in ``issues``.
    """
    parts, issues = [], []
    for sweep in sweeps:
        try:
            radar = pointcloud2_to_radar(sweep.msg, field_map)
        except RcdepthError as exc:
            issues.append(('radar_format', f'radar sweep at {sweep.stamp_ns / 1e9:.3f} s skipped: {exc}'))
            continue
        finite = np.isfinite(radar.xyz).all(axis=1)
        if not finite.all():
            issues.append(('radar_nonfinite_points', f'radar frame {radar.frame_id!r}: {int((~finite).sum())} of '
                                                     f'{len(radar)} returns with NaN/inf coordinates dropped'))
            radar = radar.select(finite)
        bad_values = ~np.isfinite(radar.rcs) | ~np.isfinite(radar.v_radial)
        if bad_values.any():
            issues.append(('radar_nonfinite_values', f'radar frame {radar.frame_id!r}: {int(bad_values.sum())} '
                                                     f'returns with NaN/inf RCS or velocity set to 0'))
            radar.rcs = np.nan_to_num(radar.rcs, nan=0.0, posinf=0.0, neginf=0.0)
            radar.v_radial = np.nan_to_num(radar.v_radial, nan=0.0, posinf=0.0, neginf=0.0)
        if len(radar) == 0:
            issues.append(('radar_empty', f'radar frame {radar.frame_id!r} at {sweep.stamp_ns / 1e9:.3f} s has no '
                                          f'valid return'))
            continue
        try:
            T = extrinsics.lookup(camera_frame, image_stamp_ns, radar.frame_id, radar.stamp_ns)
        except RcdepthError as exc:
            issues.append(('radar_unknown_frame', f'radar sweep in frame {radar.frame_id!r} skipped: {exc}'))
            continue
        parts.append(radar.transformed(T, camera_frame))
    merged = RadarPoints.concatenate(parts, camera_frame)
    return merged, issues


def decode_frame(request):
    """
    Return (RGB image, CameraIntrinsics, camera frame id) of a completed request.

    Raises FrameError: ``no_camera_info`` (none received, or the image's own one refused), ``bad_image``
    (undecodable, wrong encoding), ``image_size_mismatch``.
    """
    stamp = request.stamp_ns / 1e9
    if request.camera_info is None and request.camera_info_refused is not None:
        raise FrameError(f'image at {stamp:.3f} s: its camera_info was refused (counted as bad_camera_info: '
                         f'{request.camera_info_refused}); frame skipped rather than processed with another '
                         f'camera_info', 'no_camera_info')
    if request.camera_info is None:
        raise FrameError(f'image at {stamp:.3f} s: no camera_info received yet; frame skipped', 'no_camera_info')
    _, intrinsics = request.camera_info
    try:
        rgb = image_to_rgb(request.image)
    except RcdepthError as exc:
        raise FrameError(f'image at {stamp:.3f} s cannot be used: {exc}', 'bad_image') from None
    if rgb.shape[:2] != (intrinsics.height, intrinsics.width):
        raise FrameError(f'image at {stamp:.3f} s is {rgb.shape[0]}x{rgb.shape[1]} (HxW) but camera_info '
                         f'describes {intrinsics.height}x{intrinsics.width}: frame skipped until they agree',
                         'image_size_mismatch')
    camera_frame = str(getattr(request.image.header, 'frame_id', '') or intrinsics.frame_id)
    return rgb, intrinsics, camera_frame


def process_frame(engine, request, extrinsics, field_map=None, saliency=False):
    """Run one completed FrameRequest through decoding, radar gathering and the engine; return a FrameResult."""
    start = time.perf_counter()
    rgb, intrinsics, camera_frame = decode_frame(request)
    decoded = time.perf_counter()
    radar_cam, issues = radar_in_camera(request.sweeps, extrinsics, camera_frame, request.stamp_ns, field_map)
    gathered = time.perf_counter()
    result = engine.infer(rgb, radar_cam, intrinsics, saliency=saliency)
    timings = {'decode': (decoded - start) * 1e3, 'radar': (gathered - decoded) * 1e3}
    timings.update(result.timings)
    timings['total'] = (time.perf_counter() - start) * 1e3
    model_input = result.model_input
    return FrameResult(request, intrinsics, published_depth(result.depth), result.saliency,
                       model_radar_depth(model_input, engine.input_cfg, radar_cam), model_input.K,
                       len(radar_cam), issues, timings, result.refine)


def published_depth(depth):
    """Return ``depth`` as float32 with every value that is not a positive finite depth set to NaN (REP 118)."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        valid = (depth > 0) & (depth < np.inf)
    return depth if valid.all() else np.where(valid, depth, np.float32(np.nan))


def model_radar_depth(model_input, input_cfg, radar_cam):
    """Return the sparse radar depth (h, w) the model read: its ``depth`` channel, else the returns projected."""
    channels = tuple(input_cfg.radar_channels)
    if 'depth' in channels:
        return np.ascontiguousarray(model_input.radar_raw[:, :, channels.index('depth')])
    return sparse_depth_image(radar_cam.xyz, model_input.K, input_cfg.width, input_cfg.height,
                              input_cfg.radar_min_depth, input_cfg.max_depth)
