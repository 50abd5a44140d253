"""
From an original camera frame to the network's input and back.

The resize / crop transform, K under it, image normalisation and the radar image at model resolution.

Resizing an image by ``s`` maps pixel coordinate ``u`` to ``s * (u + 0.5) - 0.5`` (what ``cv2.resize`` does).
"""

import dataclasses

import cv2
import numpy as np

from rcdepth_ros.core.geometry.projection import as_camera_matrix, nearest_per_pixel, PixelHits
from rcdepth_ros.core.geometry.radar_image import radar_image
from rcdepth_ros.errors import ProjectionError


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    """
    Map from an original image to a model input: scale by ``scale``, then crop / pad to ``out_height`` rows.

    ``offset_top`` is the first row of the scaled image that becomes input row 0 (negative means the input is
    padded above). Widths always match after scaling (``out_width = round(scale * in_width)``).
    """

    in_height: int
    in_width: int
    out_height: int
    out_width: int
    scale: float
    scaled_height: int
    offset_top: int

    @staticmethod
    def fit_width(in_height, in_width, out_height, out_width, crop='bottom'):
        """Scale the width to ``out_width`` keeping the aspect ratio; crop or pad rows per ``crop``."""
        if in_height <= 0 or in_width <= 0:
            raise ProjectionError(f'image size must be positive, got {in_height}x{in_width} (HxW)')
        scale = out_width / in_width
        scaled_height = max(1, int(round(in_height * scale)))
        if crop == 'bottom':
            offset = scaled_height - out_height
        elif crop == 'top':
            offset = 0
        elif crop == 'center':
            offset = (scaled_height - out_height) // 2
        else:
            raise ProjectionError(f"crop must be 'bottom', 'top' or 'center', got {crop!r}")
        return ImageTransform(int(in_height), int(in_width), int(out_height), int(out_width), float(scale),
                              scaled_height, int(offset))

    def intrinsics(self, K):
        """Return K of the model input, given K of the original image."""
        K = as_camera_matrix(K).copy()
        sy = self.scaled_height / self.in_height
        sx = self.out_width / self.in_width
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
        K[1, 1] *= sy
        K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5 - self.offset_top
        return K

    def _rows(self):
        """Return (src_start, src_stop, dst_start) row ranges between the scaled image and the input."""
        src_start = max(self.offset_top, 0)
        src_stop = min(self.offset_top + self.out_height, self.scaled_height)
        return src_start, src_stop, src_start - self.offset_top

    def apply(self, image, interpolation=cv2.INTER_AREA, fill=0):
        """Resize and crop an (H, W[, C]) image to the model input size."""
        image = np.asarray(image)
        if image.shape[:2] != (self.in_height, self.in_width):
            raise ProjectionError(f'image is {image.shape[0]}x{image.shape[1]} (HxW), transform expects '
                                  f'{self.in_height}x{self.in_width}')
        scaled = cv2.resize(image, (self.out_width, self.scaled_height), interpolation=interpolation)
        if scaled.ndim < image.ndim:
            scaled = scaled[..., None]
        out = np.full((self.out_height, self.out_width) + image.shape[2:], fill, dtype=scaled.dtype)
        s0, s1, d0 = self._rows()
        out[d0:d0 + (s1 - s0)] = scaled[s0:s1]
        return out

    def restore(self, array, interpolation=cv2.INTER_LINEAR, fill=np.nan):
        """Map an (h, w[, C]) model-resolution map back to the original image size; cropped rows get ``fill``."""
        array = np.asarray(array, dtype=np.float32)
        if array.shape[:2] != (self.out_height, self.out_width):
            raise ProjectionError(f'map is {array.shape[0]}x{array.shape[1]} (HxW), transform expects '
                                  f'{self.out_height}x{self.out_width}')
        canvas = np.full((self.scaled_height, self.out_width) + array.shape[2:], fill, dtype=np.float32)
        s0, s1, d0 = self._rows()
        canvas[s0:s1] = array[d0:d0 + (s1 - s0)]
        restored = cv2.resize(canvas, (self.in_width, self.in_height), interpolation=interpolation)
        if restored.ndim < array.ndim:
            restored = restored[..., None]
        return restored


@dataclasses.dataclass
class ModelInput:
    """
    What the network reads for one frame, before batching, plus what is needed to map its output back.

    ``image`` (3, H, W) float32 normalised RGB; ``radar`` (C, H, W) float32 scaled radar channels;
    ``radar_raw`` (H, W, C) float32 unscaled radar image; ``K`` intrinsics at model resolution.
    """

    image: np.ndarray
    radar: np.ndarray
    radar_raw: np.ndarray
    K: np.ndarray
    transform: ImageTransform


def normalise_image(image_rgb, input_cfg):
    """Return (3, H, W) float32: uint8 RGB divided by 255, minus mean, over std (per ``input_cfg``)."""
    image = np.asarray(image_rgb, dtype=np.float32) * (1.0 / 255.0)
    mean = np.asarray(input_cfg.image_mean, dtype=np.float32)
    std = np.asarray(input_cfg.image_std, dtype=np.float32)
    return np.ascontiguousarray(((image - mean) / std).transpose(2, 0, 1))


def scale_radar_image(radar_raw, input_cfg):
    """Return (C, H, W) float32: each raw radar channel divided by its ``input_cfg.radar_scale``."""
    scales = np.asarray([input_cfg.radar_scale[c] for c in input_cfg.radar_channels], dtype=np.float32)
    return np.ascontiguousarray((radar_raw / scales).transpose(2, 0, 1))


def prepare_model_input(image_rgb, radar_cam, K, input_cfg):
    """
    Turn an original-size RGB image, camera-frame radar returns and K into the model's input.

    The radar image is rasterised directly at model resolution with K transformed like the image, which keeps
    every return's exact position (resizing a sparse image would smear or drop returns).
    """
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ProjectionError(f'image must be (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}')
    transform = ImageTransform.fit_width(image_rgb.shape[0], image_rgb.shape[1], input_cfg.height,
                                         input_cfg.width, input_cfg.crop)
    K_in = transform.intrinsics(K)
    image = normalise_image(transform.apply(image_rgb), input_cfg)
    radar_raw = radar_image(radar_cam, K_in, input_cfg.width, input_cfg.height, input_cfg.radar_channels,
                            input_cfg.radar_min_depth, input_cfg.max_depth, input_cfg.radar_vertical_extension_m)
    return ModelInput(image, scale_radar_image(radar_raw, input_cfg), radar_raw, K_in, transform)


def resize_sparse_depth(depth, transform):
    """
    Resample a sparse (H, W) depth map (0 = none) to model resolution without blending depths.

    Each valid pixel moves to its transformed position; collisions keep the nearest depth. Used for lidar
    ground truth when only a depth image (not the 3D points) is available.
    """
    depth = np.asarray(depth, dtype=np.float32)
    v, u = np.nonzero(depth > 0)
    z = depth[v, u]
    sx = transform.out_width / transform.in_width
    sy = transform.scaled_height / transform.in_height
    uu = np.floor(sx * (u + 0.5) - 0.5 + 0.5).astype(np.int64)
    vv = np.floor(sy * (v + 0.5) - 0.5 + 0.5).astype(np.int64) - transform.offset_top
    inside = (uu >= 0) & (uu < transform.out_width) & (vv >= 0) & (vv < transform.out_height)
    hits = PixelHits(uu[inside], vv[inside], z[inside], np.nonzero(inside)[0])
    keep = nearest_per_pixel(hits, transform.out_width)
    out = np.zeros((transform.out_height, transform.out_width), dtype=np.float32)
    out[hits.v[keep], hits.u[keep]] = hits.z[keep]
    return out
