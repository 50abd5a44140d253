"""
The inference engine: checkpoint -> device -> preprocess -> forward -> depth / uncertainty / saliency.

The live node and the offline evaluator both call ``InferenceEngine.infer``, so a number measured offline holds
for the node. Preprocessing is ``rcdepth_ros.core.geometry.model_input.prepare_model_input`` and postprocessing
``ImageTransform.restore``, the same functions the data set uses, so training and inference cannot drift.

``InferenceEngine(source, device='auto', half='auto', channels_last=True, saliency_layer=None, fuse_bn=True)``:
``source`` is a checkpoint path or a ``(model, input_cfg, model_cfg)`` tuple (the engine works on its own copy, so
the caller's model is never changed). ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``; a
CUDA device that is not available falls back to the CPU with a warning on the ``rcdepth_ros`` logger. ``half``:
``auto`` (fp16 on CUDA), ``True`` or ``False`` (fp16 is never used on the CPU). ``fuse_bn`` folds BatchNorm into
the preceding convolutions (``models.batchnorm_folding``; same output within float rounding, measurably faster).
Forward passes run under ``torch.inference_mode()``; Grad-CAM saliency, computed only when asked, runs the
same single forward with gradients enabled below the saliency layer, plus one backward pass.

``refine``: the optional radar-anchored refinement after the forward pass (``rcdepth_ros.core.inference.refine``):
None / ``'none'`` / ``'radar'``, a mapping of its settings or a ``RefineSettings``; ``set_refine`` changes it between
frames (the node's live parameter). It runs on the raw depth at model resolution with the model's input image and
the camera-frame radar returns, before the maps are restored to the original size.

``infer(image_rgb, radar_cam, K, saliency=False, saliency_target='mean')`` returns an ``InferenceResult`` whose
maps have the ORIGINAL image size: ``depth`` float32 metres, NaN where invalid (rows the input transform cropped
away); ``uncertainty`` (bin heads) or None; ``saliency`` in [0, 1] (0 in cropped rows) or None; ``model_input``
(its ``radar_raw`` is what the node publishes as ``radar/depth_image``); ``timings`` in ms (with ``refine`` when
the stage is on); ``refine`` the stage's report (``Refinement.report``) or None with mode ``none``. A saliency box
``(x0, y0, x1, y1)`` is given in original-image pixels (end exclusive).
"""

import copy
import dataclasses
import logging
import time
import typing

import numpy as np
from rcdepth_ros.core.geometry.model_input import ModelInput, prepare_model_input
from rcdepth_ros.core.inference.refine import RadarRefiner, RefineSettings
from rcdepth_ros.core.inference.saliency import grad_cam, GradCAM, saliency_target
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.errors import ConfigError, ModelInputError, ProjectionError
from rcdepth_ros.models.batchnorm_folding import fuse_batch_norm
import torch

LOGGER = logging.getLogger('rcdepth_ros')


@dataclasses.dataclass
class InferenceResult:
    """One frame's output at the original image size (see the module docstring)."""

    depth: np.ndarray
    uncertainty: typing.Optional[np.ndarray]
    saliency: typing.Optional[np.ndarray]
    model_input: ModelInput
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


class InferenceEngine:
    """Run a depth model on original-size frames (see the module docstring)."""

    def __init__(self, source, device='auto', half='auto', channels_last=True, saliency_layer=None, fuse_bn=True,
                 refine=None):
        """Load the checkpoint (or copy the given model), move it to the device, freeze it."""
        if isinstance(source, (tuple, list)):
            if len(source) != 3:
                raise ConfigError('InferenceEngine source must be a checkpoint path or (model, input_cfg, model_cfg)')
            model, self.input_cfg, self.model_cfg = source
            model = copy.deepcopy(model)
            self.meta = {}
        else:
            from rcdepth_ros.models.checkpoint import load_checkpoint
            model, self.input_cfg, self.model_cfg, self.meta = load_checkpoint(source)
        self.device = resolve_device(device)
        self.half = _resolve_half(half, self.device)
        self.channels_last = bool(channels_last)
        self.dtype = torch.float16 if self.half else torch.float32
        model = model.eval().requires_grad_(False)
        if fuse_bn:
            model = fuse_batch_norm(model, inplace=True)
        model = model.to(self.device, self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # Fail early (at configure time) on a bad layer name rather than on the first saliency request.
        self.saliency_layer = GradCAM(model, saliency_layer).layer
        self.refiner = RadarRefiner(RefineSettings())
        self.set_refine(refine)
        LOGGER.info('inference engine: %s on %s (%s%s), input %dx%d', self.model_cfg.architecture, self.device,
                    'fp16' if self.half else 'fp32', ', channels_last' if self.channels_last else '',
                    self.input_cfg.width, self.input_cfg.height)

    @property
    def has_uncertainty(self):
        """Return True when the model predicts a bin distribution (and so an uncertainty map)."""
        return self.model_cfg.head.kind == 'bins'

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

    def _refine(self, out, image, inputs, radars):
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
            for i, (model_input, radar) in enumerate(zip(inputs, radars)):
                refined = self.refiner.refine(depth[i, 0], image[i], radar.xyz, model_input.K, rcs=radar.rcs,
                                              uncertainty=None if uncertainty is None else uncertainty[i, 0])
                reports.append(refined.report())
                depths.append(refined.depth)
                uncertainties.append(refined.uncertainty)
            out['depth'] = torch.stack(depths)[:, None]
            if uncertainty is not None:
                out['uncertainty'] = torch.stack(uncertainties)[:, None]
        return reports

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def _to_tensors(self, model_inputs):
        image = torch.from_numpy(np.stack([m.image for m in model_inputs]))
        radar = torch.from_numpy(np.stack([m.radar for m in model_inputs]))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        image = image.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=fmt)
        radar = radar.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=fmt)
        return image, radar

    def prepare(self, image_rgb, radar_cam, K):
        """Return the ModelInput of one frame (``K``: 3x3 array or CameraIntrinsics of the original image)."""
        if isinstance(K, CameraIntrinsics):
            shape = np.asarray(image_rgb).shape[:2]
            if (K.height, K.width) != tuple(shape):
                raise ProjectionError(f'intrinsics are for a {K.height}x{K.width} (HxW) image, the image '
                                      f'is {shape[0]}x{shape[1]}')
            K = K.K
        return prepare_model_input(image_rgb, radar_cam, K, self.input_cfg)

    def _box_to_model(self, box, transform):
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ConfigError(f"saliency target must be 'mean' or a box (x0, y0, x1, y1), got {box!r}") from None
        sx = transform.out_width / transform.in_width
        sy = transform.scaled_height / transform.in_height
        return (int(np.floor(x0 * sx)), int(np.floor(y0 * sy)) - transform.offset_top,
                int(np.ceil(x1 * sx)), int(np.ceil(y1 * sy)) - transform.offset_top)

    def _forward(self, image, radar, saliency, targets):
        """Return (outputs, saliency (B, 1, h, w) or None, forward ms, saliency ms)."""
        start = time.perf_counter()
        if not saliency:
            with torch.inference_mode():
                out = self.model(image, radar)
            self._sync()
            return out, None, (time.perf_counter() - start) * 1e3, 0.0
        with torch.enable_grad(), GradCAM(self.model, self.saliency_layer) as cam:
            out = self.model(image, radar)
            self._sync()
            mid = time.perf_counter()
            depth = out['depth']
            y = sum(saliency_target(depth[i:i + 1], t) for i, t in enumerate(targets))
            maps = grad_cam(cam.activation, y, create_graph=False, size=tuple(image.shape[-2:]),
                            grad_scale=float(depth.shape[-2] * depth.shape[-1]))
            self._sync()
        out = {k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()}
        return out, maps, (mid - start) * 1e3, (time.perf_counter() - mid) * 1e3

    def infer(self, image_rgb, radar_cam, K, saliency=False, saliency_target='mean'):
        """Return the InferenceResult of one frame (see the module docstring)."""
        return self.infer_batch([image_rgb], [radar_cam], [K], saliency, [saliency_target])[0]

    def infer_batch(self, images, radars, Ks, saliency=False, saliency_targets=None):
        """
        Run a batch of frames in one forward pass; return a list of InferenceResult (timings are the batch's).

        ``saliency_targets``: one target per frame ('mean' or a box in that frame's original pixels).
        """
        if not (len(images) == len(radars) == len(Ks)) or not images:
            raise ModelInputError(f'infer_batch: need equal, non-zero numbers of images, radars and Ks, got '
                                  f'{len(images)}, {len(radars)}, {len(Ks)}')
        start = time.perf_counter()
        inputs = [self.prepare(img, rad, k) for img, rad, k in zip(images, radars, Ks)]
        image, radar = self._to_tensors(inputs)
        targets = None
        if saliency:
            targets = list(saliency_targets or ['mean'] * len(inputs))
            targets = [t if isinstance(t, str) else self._box_to_model(t, m.transform)
                       for t, m in zip(targets, inputs)]
        self._sync()
        preprocess_ms = (time.perf_counter() - start) * 1e3
        out, maps, forward_ms, saliency_ms = self._forward(image, radar, saliency, targets)
        start = time.perf_counter()
        refinements = self._refine(out, image, inputs, radars)
        self._sync()
        refine_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        depth = out['depth'].float().cpu().numpy()[:, 0]
        uncertainty = out['uncertainty'].float().cpu().numpy()[:, 0] if 'uncertainty' in out else None
        sal = maps.float().cpu().numpy()[:, 0] if maps is not None else None
        results = []
        for i, model_input in enumerate(inputs):
            transform = model_input.transform
            results.append(InferenceResult(
                depth=transform.restore(depth[i]),
                uncertainty=transform.restore(uncertainty[i]) if uncertainty is not None else None,
                saliency=np.clip(transform.restore(sal[i], fill=0.0), 0.0, 1.0) if sal is not None else None,
                model_input=model_input, timings={}, refine=refinements[i]))
        postprocess_ms = (time.perf_counter() - start) * 1e3
        timings = {'preprocess': preprocess_ms, 'forward': forward_ms, 'saliency': saliency_ms,
                   'postprocess': postprocess_ms}
        if refinements[0] is not None:
            timings['refine'] = refine_ms
        for result in results:
            result.timings = dict(timings)
        return results
