"""
The inference engine: checkpoint -> device -> preprocess -> forward -> depth / uncertainty / saliency.

The live node and the offline evaluator both call ``InferenceEngine.infer``, so a number measured offline holds
for the node. Preprocessing gives the bytes of ``rcdepth_ros.core.geometry.model_input.prepare_model_input`` and
postprocessing the values of ``ImageTransform.restore``, the functions the data set uses, so training and
inference cannot drift; where they run is ``preprocess``:

- ``host``: OpenCV and numpy on the CPU (the table-lookup normalisation lands in channels_last memory as the
  model reads it); the tensors go to the device once.
- ``device``: ``core.inference.preprocess.DevicePreprocessor``: the uint8 frame is uploaded once (pinned buffer),
  resized, normalised and rasterised with torch on the device, the outputs restored to the original size there,
  and only the maps asked for are copied back.
- ``auto``: ``device`` on CUDA, ``host`` on the CPU (where OpenCV is the faster of the two).

``InferenceEngine(source, device='auto', half='auto', channels_last=True, saliency_layer=None, fuse_bn=True,
backend='torch', precision=None, preprocess='auto', cuda_graphs=True, threads=None, onnx_cache_dir=None,
calibration=None)``:

- ``source``: a checkpoint path or a ``(model, input_cfg, model_cfg)`` tuple (the engine works on its own copy, so
  the caller's model is never changed).
- ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``; a CUDA device that is not available
  falls back to the CPU with a warning on the ``rcdepth_ros`` logger.
- ``precision``: ``fp32``, ``fp16``, ``bf16`` (torch autocast), ``int8`` (onnxruntime only); None derives it
  from ``half``: ``auto`` (fp16 on CUDA), ``True`` or ``False`` (``half`` never selects fp16 on the CPU).
- ``backend``: ``torch`` or ``onnxruntime`` (``core.inference.backends``; ONNX files exported on first use and
  cached beside the checkpoint, ``onnx_cache_dir`` overrides the folder; ``calibration`` is a callable returning
  frames ``(image_rgb, radar_cam, K)`` for int8, used only when the int8 file is not cached yet; ``threads`` its
  intra-op threads, default torch's). Grad-CAM saliency always runs on the torch model.
- ``fuse_bn`` folds BatchNorm into the preceding convolutions (``models.batchnorm_folding``; same output within
  float rounding, measurably faster). ``cuda_graphs`` captures the forward and saliency passes as CUDA graphs
  (``core.inference.graphs``; ignored on the CPU).

Reduced precision never publishes a non-finite depth: a frame whose depth or uncertainty has a NaN / inf at model
resolution (every pixel there saw valid input) is run again in fp32 and counted (``nonfinite_frames``); if fp32
too is non-finite the frame raises ``FrameError`` (reason ``nonfinite_depth``). CUDA out of memory drops the
graphs, splits a batch in halves and retries eagerly (``oom_fallbacks``); a single frame that still does not fit
raises ``FrameError`` (``cuda_out_of_memory``). ``stats()`` returns these counters with the graph counters and the
number of input-size changes (each new size builds its resampling tables; on CUDA a new batch shape re-captures).

``refine``: the optional radar-anchored refinement after the forward pass (``rcdepth_ros.core.inference.refine``):
None / ``'none'`` / ``'radar'``, a mapping of its settings or a ``RefineSettings``; ``set_refine`` changes it between
frames (the node's live parameter). It runs on the raw depth at model resolution with the model's input image and
the camera-frame radar returns, before the maps are restored to the original size.

``infer(image_rgb, radar_cam, K, saliency=False, saliency_target='mean', uncertainty=True)`` returns an
``InferenceResult`` whose maps have the ORIGINAL image size: ``depth`` float32 metres, NaN where invalid (rows the
input transform cropped away); ``uncertainty`` (bin heads, when asked) or None; ``saliency`` in [0, 1] (0 in
cropped rows) or None; ``model_input`` (its ``radar_raw`` is what the node publishes as ``radar/depth_image``);
``refine`` the stage's report (``Refinement.report``) or None with mode ``none``; ``timings`` in ms
(``preprocess``, ``forward``, ``saliency``: with saliency the forward and backward passes are one call, whose time
is both ``forward`` and ``saliency``; ``postprocess``; ``refine`` when the stage is on). A saliency box
``(x0, y0, x1, y1)`` is given in original-image pixels (end exclusive).
"""

import copy
import dataclasses
import logging
import threading
import time
import typing

import numpy as np
from rcdepth_ros.core.geometry.model_input import (ImageTransform, ModelInput, normalise_image, normalise_image_hwc,
                                                   prepare_model_input)
from rcdepth_ros.core.geometry.projection import nearest_per_pixel
from rcdepth_ros.core.geometry.radar_image import radar_hits, radar_values
from rcdepth_ros.core.inference.backends import onnx_model, OnnxRuntimeBackend, TorchBackend
from rcdepth_ros.core.inference.graphs import COUNTERS as GRAPH_COUNTERS
from rcdepth_ros.core.inference.options import BACKENDS, PRECISIONS, PREPROCESS_MODES
from rcdepth_ros.core.inference.preprocess import DeviceModelInput, DevicePreprocessor
from rcdepth_ros.core.inference.refine import RadarRefiner, RefineSettings
from rcdepth_ros.core.inference.saliency import GradCAM
from rcdepth_ros.core.runtime.stats import Counters
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import ConfigError, FrameError, ModelInputError, ProjectionError
from rcdepth_ros.models.batchnorm_folding import fuse_batch_norm
from rcdepth_ros.models.checkpoint import load_checkpoint
import torch

LOGGER = logging.getLogger('rcdepth_ros')
ENGINE_COUNTERS = ('frames', 'nonfinite_frames', 'nonfinite_dropped', 'oom_fallbacks', 'input_size_changes')


@dataclasses.dataclass
class InferenceResult:
    """One frame's output at the original image size (see the module docstring)."""

    depth: np.ndarray
    uncertainty: typing.Optional[np.ndarray]
    saliency: typing.Optional[np.ndarray]
    model_input: typing.Any
    timings: typing.Dict[str, float]
    refine: typing.Optional[typing.Dict[str, typing.Any]] = None


def resolve_device(device='auto'):
    """Return the torch.device for ``auto``/``cpu``/``cuda``/``cuda:N``; unavailable CUDA -> CPU with a warning."""
    text = str(device).strip().lower()
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if parsed.type == 'cpu':
        return parsed
    if parsed.type != 'cuda':
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        LOGGER.warning('device %r requested but CUDA is not available: running on the CPU', device)
        return torch.device('cpu')
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        LOGGER.warning('device %r requested but only %d CUDA device(s) exist: running on the CPU', device,
                       torch.cuda.device_count())
        return torch.device('cpu')
    return parsed


def _resolve_half(half, device):
    if half == 'auto':
        return device.type == 'cuda'
    if not isinstance(half, bool):
        raise ConfigError(f"half must be 'auto', true or false, got {half!r}")
    if half and device.type != 'cuda':
        LOGGER.warning('half precision requested on %s: fp16 is used on CUDA only, running in fp32', device)
        return False
    return half


def resolve_precision(precision, half, device, backend):
    """Return the precision an engine runs (see the module docstring); ConfigError for a combination that cannot."""
    if precision is None or str(precision).lower() == 'auto':
        if backend == 'onnxruntime':
            return 'fp32'
        return 'fp16' if _resolve_half(half, device) else 'fp32'
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ConfigError(f'precision must be one of {", ".join(PRECISIONS)} or auto, got {precision!r}')
    if backend == 'onnxruntime' and precision not in ('fp32', 'int8'):
        raise ConfigError(f'the onnxruntime backend runs fp32 or int8, got precision {precision!r}')
    if backend == 'torch' and precision == 'int8':
        raise ConfigError('int8 runs on the onnxruntime backend (backend: onnxruntime)')
    return precision


class InferenceEngine:
    """Run a depth model on original-size frames (see the module docstring)."""

    def __init__(self, source, device='auto', half='auto', channels_last=True, saliency_layer=None, fuse_bn=True,
                 backend='torch', precision=None, preprocess='auto', cuda_graphs=True, threads=None,
                 onnx_cache_dir=None, calibration=None, refine=None):
        """Load the checkpoint (or copy the given model), set up the backend on the device, freeze it."""
        self.checkpoint = None
        if isinstance(source, (tuple, list)):
            if len(source) != 3:
                raise ConfigError('InferenceEngine source must be a checkpoint path or (model, input_cfg, model_cfg)')
            model, self.input_cfg, self.model_cfg = source
            model = copy.deepcopy(model)
            self.meta = {}
        else:
            model, self.input_cfg, self.model_cfg, self.meta = load_checkpoint(source)
            self.checkpoint = str(source)
        backend = str(backend).strip().lower()
        if backend not in BACKENDS:
            raise ConfigError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
        preprocess = str(preprocess).strip().lower()
        if preprocess not in PREPROCESS_MODES:
            raise ConfigError(f'preprocess must be one of {", ".join(PREPROCESS_MODES)}, got {preprocess!r}')
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, half, self.device, backend)
        self.half = self.precision == 'fp16'
        self.channels_last = bool(channels_last)
        self.dtype = torch.float16 if self.half else torch.float32
        self.preprocess_mode = ('device' if self.device.type == 'cuda' else 'host') if preprocess == 'auto' \
            else preprocess
        self.counters = Counters(ENGINE_COUNTERS)
        self.graph_counters = Counters(GRAPH_COUNTERS)
        self._cuda_graphs = bool(cuda_graphs)
        self._lock = threading.Lock()
        self._last_size = None
        model = model.eval().requires_grad_(False)
        if fuse_bn:
            model = fuse_batch_norm(model, inplace=True)
        self._fp32_cpu = model if self.precision != 'fp32' else None   # the copy the non-finite guard reruns
        self._fp32_backend = None
        self.model = self._place(model if self.precision == 'fp32' else copy.deepcopy(model), self.dtype)
        self.saliency_layer = GradCAM(self.model, saliency_layer).layer   # a bad name fails at configure time
        self._planar = backend == 'onnxruntime' or not self.channels_last
        torch_precision = self.precision if self.precision in ('fp16', 'bf16') else 'fp32'
        self._torch = TorchBackend(self.model, self.device, torch_precision, self.saliency_layer,
                                   self._cuda_graphs and self.device.type == 'cuda', self.graph_counters)
        if backend == 'onnxruntime':
            # onnxruntime exports the float32 network; its own graph optimiser folds batch norm again (harmless)
            path = onnx_model(model if self.precision == 'fp32' else self._fp32_cpu, self.input_cfg, self.model_cfg,
                              self.precision, self.checkpoint, onnx_cache_dir,
                              None if calibration is None else lambda: self._calibration_feeds(calibration))
            self.backend = OnnxRuntimeBackend(path, self.device, threads, self.precision)
        else:
            self.backend = self._torch
        self._pre = DevicePreprocessor(self.input_cfg, self.device, torch.float32, self.channels_last)
        self.refiner = RadarRefiner(RefineSettings())
        self.set_refine(refine)
        self._radar_scales = np.asarray([self.input_cfg.radar_scale[c] for c in self.input_cfg.radar_channels],
                                        dtype=np.float32)
        LOGGER.info('inference engine: %s on %s (%s, %s backend%s, %s preprocessing), input %dx%d',
                    self.model_cfg.architecture, self.device, self.precision, backend,
                    ', channels_last' if self.channels_last else '', self.preprocess_mode, self.input_cfg.width,
                    self.input_cfg.height)

    def _place(self, model, dtype):
        model = model.to(self.device, dtype)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def set_refine(self, refine):
        """Set the refinement stage: None / 'none' / 'radar', a mapping of RefineSettings fields, or RefineSettings."""
        if refine is None or isinstance(refine, str):
            settings = self.refiner.settings.replace(mode=refine or 'none')
        elif isinstance(refine, RefineSettings):
            settings = refine
        else:
            settings = RefineSettings.from_mapping(refine)
        self.refiner = RadarRefiner(settings)
        return settings

    @property
    def refine_settings(self):
        """Return the refinement stage's RefineSettings."""
        return self.refiner.settings

    def _refine(self, out, image, inputs):
        """
        Refine each frame's model-resolution depth (and uncertainty) in place in ``out``; return the reports.

        Mode ``none``: no reports (None). Mode ``radar`` with a zero budget: reports with status ``disabled``.
        """
        if self.refiner.settings.mode == 'none':
            return [None] * len(inputs)
        depth = out['depth']
        uncertainty = out.get('uncertainty')
        reports, depths, uncertainties = [], [], []
        with torch.inference_mode():
            for i, model_input in enumerate(inputs):
                radar = model_input.radar_cam
                refined = self.refiner.refine(depth[i, 0], image[i], radar.xyz, model_input.K, rcs=radar.rcs,
                                              uncertainty=None if uncertainty is None else uncertainty[i, 0])
                reports.append(refined.report())
                depths.append(refined.depth)
                uncertainties.append(refined.uncertainty)
            out['depth'] = torch.stack(depths)[:, None]
            if uncertainty is not None:
                out['uncertainty'] = torch.stack(uncertainties)[:, None]
        return reports

    @property
    def has_uncertainty(self):
        """Return True when the model predicts a bin distribution (and so an uncertainty map)."""
        return self.model_cfg.head.kind == 'bins'

    @property
    def backend_name(self):
        """Return 'torch' or 'onnxruntime'."""
        return self.backend.name

    def stats(self):
        """Return the engine's counters, the CUDA-graph counters and its configuration (diagnostics)."""
        return {'backend': self.backend.name, 'precision': self.precision, 'preprocess': self.preprocess_mode,
                'device': str(self.device), 'cuda_graphs': self._cuda_graphs and self.device.type == 'cuda',
                **self.counters.snapshot(), **{f'graph_{k}': v for k, v in self.graph_counters.snapshot().items()}}

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------------------------------------------------
    # Preprocessing
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _camera_matrix(image_rgb, K):
        if isinstance(K, CameraIntrinsics):
            shape = np.asarray(image_rgb).shape[:2]
            if (K.height, K.width) != tuple(shape):
                raise ProjectionError(f'intrinsics are for a {K.height}x{K.width} (HxW) image, the image '
                                      f'is {shape[0]}x{shape[1]}')
            return K.K
        return K

    def prepare(self, image_rgb, radar_cam, K):
        """Return the host ModelInput of one frame (``K``: 3x3 array or CameraIntrinsics of the original image)."""
        return prepare_model_input(image_rgb, radar_cam, self._camera_matrix(image_rgb, K), self.input_cfg)

    def prepare_frame(self, image_rgb, radar_cam, K):
        """
        Return the DeviceModelInput of one frame: its tensors on the device, made by the engine's ``preprocess``.

        Separate from ``infer_prepared`` so a caller can prepare frame n + 1 while frame n runs.
        """
        K = self._camera_matrix(image_rgb, K)
        image = np.asarray(image_rgb)
        if image.ndim == 3 and self._last_size is not None and image.shape[:2] != self._last_size:
            self.counters.add('input_size_changes')
            LOGGER.info('input size changed from %dx%d to %dx%d: new resampling tables', self._last_size[1],
                        self._last_size[0], image.shape[1], image.shape[0])
        if image.ndim == 3:
            self._last_size = image.shape[:2]
        if self.preprocess_mode == 'device':
            model_input = self._pre.prepare(image, radar_cam, K)
        else:
            model_input = self._prepare_host(image, radar_cam, K)
        model_input.radar_cam = radar_cam       # the refinement stage reads the returns themselves
        return model_input

    def _prepare_host(self, image, radar_cam, K):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ProjectionError(f'image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}')
        cfg = self.input_cfg
        transform = ImageTransform.fit_width(image.shape[0], image.shape[1], cfg.height, cfg.width, cfg.crop)
        K_in = transform.intrinsics(K)
        # The model's memory layout straight from the table lookups: channels last for the torch model, planar
        # (NCHW) for onnxruntime, so neither needs a transposing copy.
        planar = self._planar
        resized = transform.apply(image)
        if planar:
            image_tensor = torch.from_numpy(normalise_image(resized, cfg)).unsqueeze(0)
        else:
            image_tensor = torch.from_numpy(normalise_image_hwc(resized, cfg)).permute(2, 0, 1).unsqueeze(0)
        # geometry.radar_image's steps, filling the scaled image (scale_radar_image's division) at the hit pixels
        # only: the same bytes without two passes over a mostly empty image
        spread = radar_hits(radar_cam, K_in, cfg.width, cfg.height, cfg.radar_min_depth, cfg.max_depth,
                            cfg.radar_vertical_extension_m)
        keep = nearest_per_pixel(spread, cfg.width)
        rows, cols = spread.v[keep], spread.u[keep]
        values = radar_values(radar_cam, cfg.radar_channels)[spread.index[keep]]
        channels = len(cfg.radar_channels)
        raw = np.zeros((cfg.height, cfg.width, channels), dtype=np.float32)
        raw[rows, cols] = values
        if planar:
            scaled = np.zeros((1, channels, cfg.height, cfg.width), dtype=np.float32)
            scaled[0, :, rows, cols] = values / self._radar_scales
            radar_tensor = torch.from_numpy(scaled)
        else:
            scaled = np.zeros_like(raw)
            scaled[rows, cols] = values / self._radar_scales
            radar_tensor = torch.from_numpy(scaled).permute(2, 0, 1).unsqueeze(0)
        raw_tensor = torch.from_numpy(raw)
        if self.device.type != 'cpu':
            image_tensor, radar_tensor, raw_tensor = (t.to(self.device, non_blocking=True)
                                                      for t in (image_tensor, radar_tensor, raw_tensor))
        model_input = DeviceModelInput(image_tensor, radar_tensor, raw_tensor, K_in, transform)
        model_input._radar_raw = raw
        return model_input

    def _calibration_feeds(self, calibration):
        """Return onnxruntime input dicts of the calibration frames (the host preprocessing, float32 NCHW)."""
        feeds = []
        for image_rgb, radar_cam, K in calibration():
            model_input = self.prepare(image_rgb, radar_cam, K)
            feeds.append({'image': model_input.image[None], 'radar': model_input.radar[None]})
        return feeds

    def _box_to_model(self, box, transform):
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ConfigError(f"saliency target must be 'mean' or a box (x0, y0, x1, y1), got {box!r}") from None
        sx = transform.out_width / transform.in_width
        sy = transform.scaled_height / transform.in_height
        return (int(np.floor(x0 * sx)), int(np.floor(y0 * sy)) - transform.offset_top,
                int(np.ceil(x1 * sx)), int(np.ceil(y1 * sy)) - transform.offset_top)

    # ------------------------------------------------------------------------------------------------------------
    # Forward, with the precision guard and the out-of-memory fallback
    # ------------------------------------------------------------------------------------------------------------

    def _fp32(self):
        """Return the fp32 torch backend the non-finite guard reruns a frame on (made on first need)."""
        if self._fp32_backend is None:
            model = self._place(copy.deepcopy(self._fp32_cpu), torch.float32)
            self._fp32_backend = TorchBackend(model, self.device, 'fp32', self.saliency_layer,
                                              self._cuda_graphs and self.device.type == 'cuda', self.graph_counters)
        return self._fp32_backend

    @staticmethod
    def _finite(out):
        return all(bool(torch.isfinite(out[k]).all()) for k in ('depth', 'uncertainty') if k in out)

    def _run(self, backend, image, radar, saliency, targets):
        if saliency:
            return backend.forward_saliency(image, radar, targets)
        return backend.forward(image, radar)

    def _run_checked(self, image, radar, saliency, targets):
        """Run the forward pass; rerun in fp32 when reduced precision gave a non-finite value (counted)."""
        backend = self._torch if saliency else self.backend
        out = self._run(backend, image, radar, saliency, targets)
        if self._finite(out):
            return out
        if backend.precision != 'fp32':
            self.counters.add('nonfinite_frames')
            LOGGER.warning('%s %s gave non-finite depth at valid input: frame run again in fp32', backend.name,
                           backend.precision)
            out = self._run(self._fp32(), image, radar, saliency, targets)
            if self._finite(out):
                return out
        self.counters.add('nonfinite_dropped')
        raise FrameError('the model gave non-finite depth for this frame (in fp32 too): frame dropped',
                         'nonfinite_depth')

    def _run_batch(self, image, radar, saliency, targets):
        """Run ``_run_checked``, falling back to eager, then to halves of the batch, on CUDA out of memory."""
        try:
            return self._take(self._run_checked(image, radar, saliency, targets))
        except torch.cuda.OutOfMemoryError:
            self.counters.add('oom_fallbacks')
            for backend in (self._torch, self._fp32_backend):
                if backend is not None:
                    for graph in backend.graphs:
                        graph.disable()
            torch.cuda.empty_cache()
            batch = image.shape[0]
            LOGGER.warning('CUDA out of memory on a batch of %d: CUDA graphs off, %s', batch,
                           'splitting the batch' if batch > 1 else 'retrying eagerly')
            if batch == 1:
                try:
                    return self._take(self._run_checked(image, radar, saliency, targets))
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    raise FrameError('CUDA out of memory even for one frame without CUDA graphs: frame dropped',
                                     'cuda_out_of_memory') from None
            half = batch // 2
            first = self._run_batch(image[:half], radar[:half], saliency, targets[:half] if targets else targets)
            second = self._run_batch(image[half:], radar[half:], saliency, targets[half:] if targets else targets)
            return {k: torch.cat([first[k], second[k]]) for k in first}

    def _take(self, out):
        """Return float32 outputs the caller owns (a CUDA graph's own outputs are overwritten by its next replay)."""
        own = self.device.type == 'cuda'
        return {k: v.float().clone() if own and v.dtype == torch.float32 else v.float() for k, v in out.items()}

    # ------------------------------------------------------------------------------------------------------------
    # Frames in, maps out
    # ------------------------------------------------------------------------------------------------------------

    def infer(self, image_rgb, radar_cam, K, saliency=False, saliency_target='mean', uncertainty=True):
        """Return the InferenceResult of one frame (see the module docstring)."""
        return self.infer_batch([image_rgb], [radar_cam], [K], saliency, [saliency_target], uncertainty)[0]

    def infer_batch(self, images, radars, Ks, saliency=False, saliency_targets=None, uncertainty=True):
        """
        Run a batch of frames in one forward pass; return a list of InferenceResult (timings are the batch's).

        ``saliency_targets``: one target per frame ('mean' or a box in that frame's original pixels).
        """
        if not (len(images) == len(radars) == len(Ks)) or not images:
            raise ModelInputError(f'infer_batch: need equal, non-zero numbers of images, radars and Ks, got '
                                  f'{len(images)}, {len(radars)}, {len(Ks)}')
        start = time.perf_counter()
        inputs = [self.prepare_frame(img, rad, k) for img, rad, k in zip(images, radars, Ks)]
        preprocess_ms = (time.perf_counter() - start) * 1e3
        return self.infer_prepared(inputs, saliency, saliency_targets, uncertainty, preprocess_ms)

    def infer_prepared(self, inputs, saliency=False, saliency_targets=None, uncertainty=True, preprocess_ms=0.0):
        """Run frames made by ``prepare_frame``; return a list of InferenceResult (``infer_batch``'s second half)."""
        start = time.perf_counter()
        if len(inputs) == 1:
            image, radar = inputs[0].image, inputs[0].radar
        else:
            image = torch.cat([m.image for m in inputs])
            radar = torch.cat([m.radar for m in inputs])
        targets = None
        if saliency:
            targets = list(saliency_targets or ['mean'] * len(inputs))
            targets = [t if isinstance(t, str) else self._box_to_model(t, m.transform)
                       for t, m in zip(targets, inputs)]
        self._sync()
        preprocess_ms += (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        with self._lock:
            out = self._run_batch(image, radar, saliency, targets)
            self._sync()
        run_ms = (time.perf_counter() - start) * 1e3
        self.counters.add('frames', len(inputs))
        start = time.perf_counter()
        refinements = self._refine(out, image, inputs)
        self._sync()
        refine_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        results = self._restore(inputs, out, uncertainty)
        postprocess_ms = (time.perf_counter() - start) * 1e3
        # with saliency, forward and backward are one (graphed) pass: 'saliency' is its time, also in 'forward'
        timings = {'preprocess': preprocess_ms, 'forward': run_ms, 'saliency': run_ms if saliency else 0.0,
                   'postprocess': postprocess_ms}
        if refinements[0] is not None:
            timings['refine'] = refine_ms
        for result, report in zip(results, refinements):
            result.timings = dict(timings)
            result.refine = report
        return results

    def _restore(self, inputs, out, uncertainty):
        """Return the InferenceResults: maps restored to each frame's original size (on the device, or OpenCV)."""
        names = [('depth', float('nan')), ('uncertainty', float('nan')), ('saliency', 0.0)]
        wanted = [(name, fill) for name, fill in names if name in out and (name != 'uncertainty' or uncertainty)]
        results = []
        if self.preprocess_mode == 'device':
            maps = {}
            for i, model_input in enumerate(inputs):
                for name, fill in wanted:
                    restored = self._pre.restore(out[name][i:i + 1, 0], model_input.transform, fill)[0]
                    maps[name, i] = restored.clamp(0.0, 1.0) if name == 'saliency' else restored
            host = {key: value.cpu().numpy() for key, value in maps.items()}
        else:
            arrays = {name: out[name].cpu().numpy()[:, 0] for name, _ in wanted}
            host = {}
            for i, model_input in enumerate(inputs):
                for name, fill in wanted:
                    restored = model_input.transform.restore(arrays[name][i], fill=fill)
                    host[name, i] = np.clip(restored, 0.0, 1.0) if name == 'saliency' else restored
        for i, model_input in enumerate(inputs):
            results.append(InferenceResult(depth=host['depth', i], uncertainty=host.get(('uncertainty', i)),
                                           saliency=host.get(('saliency', i)), model_input=model_input,
                                           timings={}))
        return results


__all__ = ['InferenceEngine', 'InferenceResult', 'ModelInput', 'resolve_device', 'resolve_precision']
