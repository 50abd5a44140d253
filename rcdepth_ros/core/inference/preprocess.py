"""
Pre- and postprocessing as torch ops on the model's device, with the results of the host path (``model_input``).

The host path (``geometry.model_input.prepare_model_input`` and ``ImageTransform.restore``) resizes with OpenCV on
the CPU; on a GPU that costs several times the forward pass, so ``DevicePreprocessor`` does the same work where
the model runs: the uint8 frame is uploaded once (through a pinned host buffer on CUDA), resized, normalised and
cropped there; the radar image is rasterised there; the model's maps are restored to the original size there, and
only what is published is copied back. The same code runs on CPU torch, where the tests compare it with the host
path.

How each step reproduces OpenCV:

- ``cv2.INTER_AREA`` downscaling of uint8 images. With integer factors OpenCV sums each block in integers and
  divides (2x2: ``(sum + 2) >> 2``; other factors: ``sum * float32(1 / area)`` rounded half to even). Otherwise it
  is a box filter with fractional edge weights (``area_taps``, OpenCV's own table), applied along the rows then the
  columns in float32 and rounded half to even. Both are done here as gathers and sums in the same order, which
  gives the same bytes. (torch's ``'area'`` interpolation is adaptive pooling: different weights.) Upscaling with
  INTER_AREA is OpenCV's bilinear variant; frames that need it take the host resize (``supports``).
- ``cv2.INTER_LINEAR`` restoring of float32 maps (``linear_taps``): two taps per axis at ``(d + 0.5) * scale - 0.5``,
  columns first. The model's maps are NaN above the kept rows, and both taps are always read, so NaN spreads into
  exactly the output pixels OpenCV makes NaN (a NaN times a zero weight is NaN; a matrix product would smear it
  over everything). OpenCV's optimised float path rounds differently in the last bit: the values agree to a few
  float32 ulps.
- The radar image: which pixels every return fills is computed on the host (``geometry.radar_image.radar_hits``:
  a few hundred points), the nearest-wins choice on the device with two scatter-reduce ``amin`` passes (the
  nearest depth per pixel, then the first return among those at that depth), the same choice as
  ``projection.nearest_per_pixel``.
"""

import dataclasses
import math
import threading
import typing

import numpy as np
from rcdepth_ros.core.geometry.model_input import ImageTransform
from rcdepth_ros.core.geometry.radar_image import radar_hits, radar_values
from rcdepth_ros.errors import ProjectionError
import torch
import torch.nn.functional as F


def integer_factor(in_size, out_size):
    """Return ``in_size / out_size`` when it is a whole number >= 1 (OpenCV's fast INTER_AREA case), else 0."""
    in_size, out_size = int(in_size), int(out_size)
    if out_size <= 0 or in_size < out_size or in_size % out_size:
        return 0
    return in_size // out_size


def area_taps(in_size, out_size):
    """
    Return (index (out, K) int64, weight (out, K) float32): OpenCV's INTER_AREA table for downscaling one axis.

    Output pixel ``d`` covers source interval ``[d * s, (d + 1) * s)`` with ``s = in / out``; each source pixel it
    touches gets the covered length over the cell width (the first and last fractionally). Rows shorter than K
    are padded with index 0 and weight 0 at the end (adding ``x * 0`` does not change a finite sum).
    """
    in_size, out_size = int(in_size), int(out_size)
    scale = in_size / out_size
    rows = []
    for d in range(out_size):
        start = d * scale
        stop = start + scale
        cell = min(scale, in_size - start)
        first = min(math.ceil(start), in_size - 1)
        last = min(math.floor(stop), in_size - 1)
        first = min(first, last)
        taps = []
        if first - start > 1e-3:
            taps.append((first - 1, (first - start) / cell))
        taps.extend((s, 1.0 / cell) for s in range(first, last))
        if stop - last > 1e-3:
            taps.append((last, min(min(stop - last, 1.0), cell) / cell))
        rows.append(taps)
    width = max(len(taps) for taps in rows)
    index = np.zeros((out_size, width), dtype=np.int64)
    weight = np.zeros((out_size, width), dtype=np.float32)
    for d, taps in enumerate(rows):
        for k, (s, w) in enumerate(taps):
            index[d, k] = s
            weight[d, k] = np.float32(w)
    return index, weight


def linear_taps(in_size, out_size):
    """
    Return (i0, i1, w0, w1): the two source pixels and float32 weights of each output pixel (INTER_LINEAR).

    The source coordinate is ``(d + 0.5) * in / out - 0.5`` in double precision, its floor and the next pixel are
    clamped to the image, the weights are ``1 - f`` and ``f``.
    """
    in_size, out_size = int(in_size), int(out_size)
    coord = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    base = np.floor(coord)
    frac = coord - base
    base = base.astype(np.int64)
    i0 = np.clip(base, 0, in_size - 1)
    i1 = np.clip(base + 1, 0, in_size - 1)
    return i0, i1, (1.0 - frac).astype(np.float32), frac.astype(np.float32)


@dataclasses.dataclass
class DeviceModelInput:
    """
    ``ModelInput`` with its tensors on the device (the engine's batch of one).

    ``image`` (1, 3, H, W) and ``radar`` (1, C, H, W) in the model's dtype (channels_last memory); ``radar_tensor``
    (H, W, C) float32 unscaled. ``radar_raw`` (the numpy array of ``ModelInput``) is copied to the host on first
    use only: the node publishes it only while someone listens. ``radar_cam``: the camera-frame returns the radar
    image was made from (the engine's refinement stage reads them).
    """

    image: torch.Tensor
    radar: torch.Tensor
    radar_tensor: torch.Tensor
    K: np.ndarray
    transform: ImageTransform
    _radar_raw: typing.Optional[np.ndarray] = None
    radar_cam: typing.Any = None

    @property
    def radar_raw(self):
        """Return the (H, W, C) float32 unscaled radar image as a numpy array (copied from the device once)."""
        if self._radar_raw is None:
            self._radar_raw = self.radar_tensor.cpu().numpy()
        return self._radar_raw


class DevicePreprocessor:
    """
    The engine's pre- and postprocessing on ``device`` (see the module docstring).

    Resampling tables are built once per image size and kept on the device; ``upload`` reuses one pinned host
    buffer per image size on CUDA.
    """

    def __init__(self, input_cfg, device, dtype=torch.float32, channels_last=True):
        """Keep the input configuration and the per-channel constants on ``device``."""
        self.input_cfg = input_cfg
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.channels = tuple(input_cfg.radar_channels)
        self._inv255 = torch.tensor(np.float32(1.0 / 255.0), device=self.device)
        self._mean = torch.tensor(np.asarray(input_cfg.image_mean, dtype=np.float32), device=self.device)
        self._std = torch.tensor(np.asarray(input_cfg.image_std, dtype=np.float32), device=self.device)
        self._radar_scales = torch.tensor(np.asarray([input_cfg.radar_scale[c] for c in self.channels],
                                                     dtype=np.float32), device=self.device)
        self._plans = {}
        self._pinned = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------------------
    # Plans (cached per size)
    # ------------------------------------------------------------------------------------------------------------

    def _tensor(self, array):
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _plan(self, key, build):
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = build()
        return plan

    def _area_plan(self, transform):
        """Return how to resize the rows the model input keeps: ('fast', fy, fx, r0, r1) or ('taps', ...)."""
        s0, s1, _ = transform._rows()
        fx = integer_factor(transform.in_width, transform.out_width)
        fy = integer_factor(transform.in_height, transform.scaled_height)
        if fx and fy:
            return 'fast', fy, fx, s0 * fy, s1 * fy
        x_index, x_weight = area_taps(transform.in_width, transform.out_width)
        y_index, y_weight = area_taps(transform.in_height, transform.scaled_height)
        y_index, y_weight = y_index[s0:s1], y_weight[s0:s1]
        used = y_index[y_weight > 0] if (y_weight > 0).any() else y_index.reshape(-1)
        r0, r1 = int(used.min()), int(used.max()) + 1
        y_index = np.clip(y_index - r0, 0, r1 - r0 - 1)
        return ('taps', self._tensor(x_index.T.copy()), self._tensor(x_weight.T.copy()),
                self._tensor(y_index.T.copy()), self._tensor(y_weight.T.copy()), r0, r1)

    def _linear_plan(self, transform):
        cols = linear_taps(transform.out_width, transform.in_width)
        rows = linear_taps(transform.scaled_height, transform.in_height)
        return tuple(self._tensor(a) for a in cols + rows)

    def supports(self, transform):
        """Return True when the image resize can run on the device (downscaling or the same size, both axes)."""
        return (transform.in_width >= transform.out_width and transform.in_height >= transform.scaled_height
                and transform.out_width > 0 and transform.scaled_height > 0)

    # ------------------------------------------------------------------------------------------------------------
    # Image
    # ------------------------------------------------------------------------------------------------------------

    def upload(self, image_rgb):
        """Return the (H, W, 3) uint8 frame on the device (one copy; from a pinned buffer on CUDA)."""
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ProjectionError(f'image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}')
        if self.device.type != 'cuda':
            return torch.from_numpy(np.ascontiguousarray(image))
        with self._lock:
            entry = self._pinned.get(image.shape)
            if entry is None:
                entry = self._pinned[image.shape] = [torch.empty(image.shape, dtype=torch.uint8, pin_memory=True),
                                                     None]
        buffer, done = entry
        if done is not None:
            done.synchronize()      # the previous copy out of this buffer has finished
        np.copyto(buffer.numpy(), image)
        out = torch.empty(image.shape, dtype=torch.uint8, device=self.device)
        out.copy_(buffer, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        entry[1] = event
        return out

    def resize_image(self, image_u8, transform):
        """
        Return the (out_h, out_w, 3) float32 image the model reads before normalising.

        Resized like ``cv2.INTER_AREA`` (integral values), cropped / padded with 0 like ``ImageTransform.apply``.
        """
        s0, s1, d0 = transform._rows()
        out = torch.zeros((transform.out_height, transform.out_width, image_u8.shape[2]), dtype=torch.float32,
                          device=image_u8.device)
        if s1 <= s0:
            return out
        plan = self._plan(('area', transform), lambda: self._area_plan(transform))
        if plan[0] == 'fast':
            _, fy, fx, r0, r1 = plan
            # block sums (exact in float32: at most 255 * area) by an average pool that does not divide
            block = image_u8[r0:r1, :transform.out_width * fx].to(torch.float32).permute(2, 0, 1).unsqueeze(0)
            sums = F.avg_pool2d(block, (fy, fx), divisor_override=1)[0].permute(1, 2, 0)
            if (fy, fx) == (2, 2):
                resized = torch.floor((sums + 2.0) * 0.25)
            else:
                scale = torch.tensor(np.float32(1.0 / (fx * fy)), device=image_u8.device)
                resized = torch.round(sums * scale)
        else:
            _, x_index, x_weight, y_index, y_weight, r0, r1 = plan
            source = image_u8[r0:r1].to(torch.float32)
            rows = None
            for k in range(x_index.shape[0]):
                term = source.index_select(1, x_index[k]) * x_weight[k].view(1, -1, 1)
                rows = term if rows is None else rows + term
            resized = None
            for k in range(y_index.shape[0]):
                term = rows.index_select(0, y_index[k]) * y_weight[k].view(-1, 1, 1)
                resized = term if resized is None else resized + term
            resized = torch.round(resized).clamp_(0.0, 255.0)
        out[d0:d0 + (s1 - s0)] = resized
        return out

    def normalise(self, resized):
        """Return (1, 3, H, W) in the model dtype: ``(x / 255 - mean) / std`` (channels_last memory)."""
        image = ((resized * self._inv255) - self._mean) / self._std
        image = image.permute(2, 0, 1).unsqueeze(0).to(self.dtype)
        return image if self.channels_last else image.contiguous()

    # ------------------------------------------------------------------------------------------------------------
    # Radar
    # ------------------------------------------------------------------------------------------------------------

    def rasterise(self, radar_cam, K_in):
        """Return the (H, W, C) float32 radar image (``geometry.radar_image.radar_image``) built on the device."""
        cfg = self.input_cfg
        height, width = int(cfg.height), int(cfg.width)
        hits = radar_hits(radar_cam, K_in, width, height, cfg.radar_min_depth, cfg.max_depth,
                          cfg.radar_vertical_extension_m)
        out = torch.zeros((height * width, len(self.channels)), dtype=torch.float32, device=self.device)
        count = len(hits)
        if count:
            pixel = self._tensor(hits.v * width + hits.u)
            depth = self._tensor(np.asarray(hits.z, dtype=np.float64))
            values = self._tensor(radar_values(radar_cam, self.channels))
            source = self._tensor(hits.index)
            nearest = torch.full((height * width,), math.inf, dtype=torch.float64, device=self.device)
            nearest.scatter_reduce_(0, pixel, depth, 'amin')
            order = torch.arange(count, device=self.device)
            candidate = torch.where(depth == nearest[pixel], order, torch.full_like(order, count))
            first = torch.full((height * width,), count, dtype=torch.int64, device=self.device)
            first.scatter_reduce_(0, pixel, candidate, 'amin')
            win = first[pixel] == order
            out[pixel[win]] = values[source[win]]
        return out.view(height, width, len(self.channels))

    def scale_radar(self, radar_raw):
        """Return (1, C, H, W) in the model dtype: each raw channel over its ``radar_scale`` (channels_last memory)."""
        radar = (radar_raw / self._radar_scales).permute(2, 0, 1).unsqueeze(0).to(self.dtype)
        return radar if self.channels_last else radar.contiguous()

    # ------------------------------------------------------------------------------------------------------------
    # One frame in, maps out
    # ------------------------------------------------------------------------------------------------------------

    def prepare(self, image_rgb, radar_cam, K):
        """Return the DeviceModelInput of one frame (``K``: 3x3 intrinsics of the original image)."""
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ProjectionError(f'image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}')
        cfg = self.input_cfg
        transform = ImageTransform.fit_width(image.shape[0], image.shape[1], cfg.height, cfg.width, cfg.crop)
        K_in = transform.intrinsics(K)
        if self.supports(transform):
            resized = self.resize_image(self.upload(image), transform)
        else:   # upscaling: OpenCV's INTER_AREA is its bilinear variant there; resize on the host
            resized = self.upload(transform.apply(image)).to(torch.float32)
        radar_raw = self.rasterise(radar_cam, K_in)
        return DeviceModelInput(self.normalise(resized), self.scale_radar(radar_raw), radar_raw, K_in, transform)

    def restore(self, maps, transform, fill=float('nan')):
        """
        Return (B, H, W) float32 at the original size from (B, h, w) model-resolution maps.

        Like ``ImageTransform.restore``: INTER_LINEAR; rows the input transform cropped away get ``fill``.
        """
        maps = maps.to(torch.float32)
        if maps.dim() != 3 or tuple(maps.shape[1:]) != (transform.out_height, transform.out_width):
            raise ProjectionError(f'maps are {tuple(maps.shape)}, transform expects (B, {transform.out_height}, '
                                  f'{transform.out_width})')
        s0, s1, d0 = transform._rows()
        canvas = torch.full((maps.shape[0], transform.scaled_height, transform.out_width), float(fill),
                            dtype=torch.float32, device=maps.device)
        canvas[:, s0:s1] = maps[:, d0:d0 + (s1 - s0)]
        x0, x1, a0, a1, y0, y1, b0, b1 = self._plan(('linear', transform), lambda: self._linear_plan(transform))
        cols = canvas.index_select(2, x0) * a0 + canvas.index_select(2, x1) * a1
        return cols.index_select(1, y0) * b0.view(-1, 1) + cols.index_select(1, y1) * b1.view(-1, 1)
