"""
Export a depth model to ONNX and TorchScript, and check the exported file against torch.

The exported graph takes ``image`` (B, 3, H, W) and ``radar`` (B, C, H, W) (fixed H, W; dynamic batch for ONNX)
and returns ``depth`` (B, 1, H, W) metres, plus ``uncertainty`` (B, 1, H, W) for bin heads. ONNX uses the
TorchScript-based exporter (opset 17), which needs no extra package; onnxruntime (imported where used) checks it.
"""

from pathlib import Path
import warnings

import numpy as np
from rcdepth_ros.errors import ExportError, ModelInputError
import torch
from torch import nn


class ExportWrapper(nn.Module):
    """Wrap a DepthModel so it returns plain tensors: ``depth`` (and ``uncertainty`` for bin heads)."""

    def __init__(self, model):
        """Keep the model; note whether it has an uncertainty output."""
        super().__init__()
        self.model = model
        self.has_uncertainty = model.model_cfg.head.kind == 'bins'

    @property
    def output_names(self):
        """Return the names of the outputs, in order."""
        return ['depth', 'uncertainty'] if self.has_uncertainty else ['depth']

    def forward(self, image, radar):
        """Return depth (and uncertainty)."""
        out = self.model(image, radar)
        if self.has_uncertainty:
            return out['depth'], out['uncertainty']
        return out['depth']


def parse_size(text):
    """Parse 'HxW' (multiples of 32) into (height, width); raise ModelInputError otherwise."""
    try:
        height, width = (int(v) for v in str(text).lower().split('x'))
    except ValueError:
        raise ModelInputError(f'size must be HxW, e.g. 192x640, got {text!r}') from None
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ModelInputError(f'size must be positive multiples of 32, got {height}x{width}')
    return height, width


def example_inputs(input_cfg, height, width, batch=1, seed=0, radar_fraction=0.02):
    """
    Return (image, radar) float32 tensors shaped like real model input.

    The image is standard normal (normalised RGB); the radar image is zero except a random ``radar_fraction`` of
    pixels holding plausible scaled values (depth 0.05-0.8, other channels +-0.5, mask 1), as a rasterised sweep.
    """
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, height, width, generator=gen)
    channels = list(input_cfg.radar_channels)
    hit = (torch.rand(batch, 1, height, width, generator=gen) < radar_fraction).float()
    values = []
    for name in channels:
        if name == 'depth':
            values.append(0.05 + 0.75 * torch.rand(batch, 1, height, width, generator=gen))
        elif name == 'mask':
            values.append(torch.ones(batch, 1, height, width))
        else:
            values.append(torch.rand(batch, 1, height, width, generator=gen) - 0.5)
    return image, torch.cat(values, dim=1) * hit


def export_onnx(model, path, height, width, opset=17):
    """Write ``model`` (a DepthModel, exported in eval mode on the CPU) as ONNX to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.eval().cpu().float())
    image, radar = example_inputs(model.input_cfg, height, width)
    dynamic = {'image': {0: 'batch'}, 'radar': {0: 'batch'}}
    dynamic.update({name: {0: 'batch'} for name in wrapper.output_names})
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')   # the TorchScript-based exporter warns that it is the legacy one
            torch.onnx.export(wrapper, (image, radar), str(path), input_names=['image', 'radar'],
                              output_names=wrapper.output_names, dynamic_axes=dynamic, opset_version=opset,
                              dynamo=False, do_constant_folding=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExportError(f'{path}: ONNX export failed ({exc})') from exc
    return path


def export_torchscript(model, path, height, width):
    """Write ``model`` traced with TorchScript to ``path`` (load with ``torch.jit.load``); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.eval().cpu().float())
    image, radar = example_inputs(model.input_cfg, height, width)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            traced = torch.jit.trace(wrapper, (image, radar), check_trace=False)
        traced.save(str(path))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExportError(f'{path}: TorchScript export failed ({exc})') from exc
    return path


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def torch_reference(model, image, radar):
    """Return the wrapper outputs of ``model`` as numpy arrays (eval mode, CPU, no grad)."""
    wrapper = ExportWrapper(model.eval().cpu().float())
    with torch.no_grad():
        return [t.numpy() for t in _as_tuple(wrapper(image, radar))]


def check_onnx(model, path, height, width, batch=1, tolerance=1e-3, seed=1):
    """
    Run the ONNX file with onnxruntime and torch on the same example input; return the max |difference| per output.

    Raise ExportError when the depth differs by more than ``tolerance`` metres.
    """
    # onnxruntime: needed only to check an export
    import onnxruntime
    image, radar = example_inputs(model.input_cfg, height, width, batch, seed)
    expected = torch_reference(model, image, radar)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        got = session.run(None, {'image': image.numpy(), 'radar': radar.numpy()})
    except Exception as exc:   # onnxruntime raises its own exception types
        raise ExportError(f'{path}: onnxruntime cannot run the model ({exc})') from exc
    return _compare(path, ExportWrapper(model).output_names, expected, got, tolerance)


def check_torchscript(model, path, height, width, batch=1, tolerance=1e-3, seed=1):
    """Run the TorchScript file and torch on the same input; return the max |difference| per output."""
    image, radar = example_inputs(model.input_cfg, height, width, batch, seed)
    expected = torch_reference(model, image, radar)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # torch.jit.load announces its deprecation
            loaded = torch.jit.load(str(path), map_location='cpu')
        with torch.no_grad():
            got = [t.numpy() for t in _as_tuple(loaded(image, radar))]
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f'{path}: cannot run the TorchScript model ({exc})') from exc
    return _compare(path, ExportWrapper(model).output_names, expected, got, tolerance)


def _compare(path, names, expected, got, tolerance):
    if len(got) != len(expected):
        raise ExportError(f'{path}: {len(got)} outputs, torch gives {len(expected)}')
    diffs = {}
    for name, a, b in zip(names, expected, got):
        if a.shape != b.shape:
            raise ExportError(f'{path}: output {name} has shape {b.shape}, torch gives {a.shape}')
        diffs[name] = float(np.max(np.abs(a - b)))
    if not diffs['depth'] <= tolerance:
        raise ExportError(f'{path}: depth differs from torch by {diffs["depth"]:.3g} m (tolerance {tolerance} m)')
    return diffs
