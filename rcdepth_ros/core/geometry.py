"""
Transforms, projection into the camera, z-buffering, the sparse radar image, and K under resize / crop.

Conventions: the camera frame is optical (x right, y down, z forward); ``T_a_from_b`` is a 4x4 matrix taking
points from frame ``b`` into frame ``a``; pixel centres lie at integer coordinates (OpenCV), so a point at
``(u, v)`` lands in pixel ``(round(u), round(v))``, and resizing an image by ``s`` maps pixel coordinate ``u`` to
``s * (u + 0.5) - 0.5`` (what ``cv2.resize`` does). Depth maps are float32 with 0 where there is no measurement.
"""

import dataclasses

import cv2
import numpy as np

from rcdepth_ros.errors import ProjectionError


def as_transform(T, what='transform'):
    """Return ``T`` as a finite 4x4 float64 rigid transform, or raise ProjectionError naming ``what``."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ProjectionError(f'{what}: expected a 4x4 matrix, got shape {T.shape}')
    if not np.all(np.isfinite(T)):
        raise ProjectionError(f'{what}: matrix has NaN or inf entries')
    if not np.allclose(T[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6):
        raise ProjectionError(f'{what}: last row must be [0, 0, 0, 1], got {T[3].tolist()}')
    return T


def transform_from_translation_quaternion(translation, quaternion_xyzw):
    """Build a 4x4 transform from a translation and a unit quaternion (x, y, z, w), as in geometry_msgs."""
    x, y, z, w = (float(q) for q in quaternion_xyzw)
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ProjectionError(f'quaternion {quaternion_xyzw} has zero or non-finite norm')
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def quaternion_xyzw_from_matrix(R):
    """Return the unit quaternion (x, y, z, w) of a 3x3 rotation matrix (w >= 0)."""
    R = np.asarray(R, dtype=np.float64)[:3, :3]
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def invert_transform(T):
    """Return the inverse of a rigid 4x4 transform (exact for rotation + translation)."""
    T = as_transform(T)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def transform_points(points, T):
    """Return ``points`` (N, 3) moved by the 4x4 transform ``T``, as float64."""
    points = _as_points(points)
    T = as_transform(T)
    return points @ T[:3, :3].T + T[:3, 3]


def _as_points(points, what='points'):
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 3)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ProjectionError(f'{what}: expected shape (N, 3), got {points.shape}')
    return points


def _as_K(K):
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ProjectionError(f'K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}')
    return K


@dataclasses.dataclass
class PixelHits:
    """Points that land in the image: pixel ``u``, ``v`` (int64), depth ``z``, and ``index`` into the input."""

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    index: np.ndarray

    def __len__(self):
        """Return the number of hits."""
        return self.index.shape[0]


def project_points(points_cam, K, width, height, min_depth=1.0, max_depth=np.inf):
    """
    Project camera-frame points and keep those that land in a ``width`` x ``height`` image.

    Dropped: NaN / inf coordinates, points behind the camera or closer than ``min_depth`` (metres along z),
    points beyond ``max_depth``, points whose pixel is outside the image. Collisions are not resolved here
    (see ``nearest_per_pixel``).
    """
    points = _as_points(points_cam)
    K = _as_K(K)
    if width <= 0 or height <= 0:
        raise ProjectionError(f'image size must be positive, got {width}x{height}')
    z = points[:, 2]
    with np.errstate(invalid='ignore'):
        keep = np.isfinite(points).all(axis=1) & (z >= max(min_depth, 1e-6)) & (z <= max_depth)
    idx = np.nonzero(keep)[0]
    p = points[idx]
    zs = p[:, 2]
    u = np.floor(K[0, 0] * p[:, 0] / zs + K[0, 1] * p[:, 1] / zs + K[0, 2] + 0.5)
    v = np.floor(K[1, 1] * p[:, 1] / zs + K[1, 2] + 0.5)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return PixelHits(u[inside].astype(np.int64), v[inside].astype(np.int64), zs[inside], idx[inside])


def nearest_per_pixel(hits, width):
    """Return the positions (into ``hits``) of the nearest hit in every pixel hit at least once."""
    if len(hits) == 0:
        return np.zeros(0, dtype=np.int64)
    linear = hits.v * int(width) + hits.u
    order = _by_pixel_then_depth(linear, hits.z)  # the first of each pixel is the nearest
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = linear[order][1:] != linear[order][:-1]
    return order[first]


def _by_pixel_then_depth(linear, z):
    """Return the order sorting hits by pixel, then depth; ties keep input order (same result as lexsort)."""
    # One int64 key, pixel in the high bits and the depth's float64 bit pattern (ordered like the value for
    # positive depths) in the low bits, sorts about 10x faster than np.lexsort on two keys (measured in
    # benchmarks/bench_core.py). The depth keeps 63 - pixel_bits bits (42 at 900x1600: exact for float32 depths);
    # equal keys, or depths the bit trick cannot order, fall back to the stable two-key sort.
    pixel_bits = max(int(linear.max()).bit_length(), 1)
    z = np.ascontiguousarray(z, dtype=np.float64)
    if pixel_bits <= 29 and np.all(z > 0) and np.all(np.isfinite(z)):
        key = (linear.astype(np.int64) << (63 - pixel_bits)) | (z.view(np.int64) >> pixel_bits)
        order = np.argsort(key)
        ordered = key[order]
        if not np.any(ordered[1:] == ordered[:-1]):
            return order
    return np.lexsort((z, linear))


def sparse_depth_image(points_cam, K, width, height, min_depth=1e-3, max_depth=np.inf):
    """Return an (H, W) float32 depth map of camera-frame points (nearest wins, 0 elsewhere)."""
    hits = project_points(points_cam, K, width, height, min_depth, max_depth)
    keep = nearest_per_pixel(hits, width)
    depth = np.zeros((int(height), int(width)), dtype=np.float32)
    depth[hits.v[keep], hits.u[keep]] = hits.z[keep]
    return depth


def radar_channel_values(radar_cam, channel):
    """Return the per-return value (N,) of radar image channel ``channel`` for camera-frame returns."""
    if channel == 'depth':
        return radar_cam.xyz[:, 2].astype(np.float32)
    if channel == 'rcs':
        return radar_cam.rcs
    if channel == 'v_radial':
        return radar_cam.v_radial
    if channel in ('vx', 'vy'):
        values = radar_cam.vxy[:, 0 if channel == 'vx' else 1]
        return np.nan_to_num(values, nan=0.0).astype(np.float32)
    if channel == 'mask':
        return np.ones(len(radar_cam), dtype=np.float32)
    raise ProjectionError(f'unknown radar channel {channel!r}')


def radar_image(radar_cam, K, width, height, channels=('depth', 'rcs', 'v_radial', 'mask'), min_depth=1.0,
                max_depth=np.inf, vertical_extension_m=0.0):
    """
    Rasterise camera-frame radar returns into an (H, W, C) float32 image, one channel per name in ``channels``.

    Each return fills its pixel; with ``vertical_extension_m > 0`` it fills a vertical segment of that metric
    height centred on it (``fy * h / z`` pixels), because automotive radar measures elevation poorly. Where
    returns collide, the nearest one wins in every channel. Pixels without a return are 0 (``mask`` says which).
    """
    K = _as_K(K)
    width, height = int(width), int(height)
    hits = project_points(radar_cam.xyz, K, width, height, min_depth, max_depth)
    u, v, z, src = hits.u, hits.v, hits.z, hits.index
    if vertical_extension_m > 0 and len(hits):
        half = np.maximum(np.floor(0.5 * K[1, 1] * vertical_extension_m / z), 0).astype(np.int64)
        half = np.minimum(half, height)
        counts = 2 * half + 1
        rep = np.repeat(np.arange(len(hits)), counts)
        starts = np.cumsum(counts) - counts
        offsets = np.arange(rep.shape[0]) - np.repeat(starts, counts) - np.repeat(half, counts)
        u, v, z, src = u[rep], v[rep] + offsets, z[rep], src[rep]
        inside = (v >= 0) & (v < height)
        u, v, z, src = u[inside], v[inside], z[inside], src[inside]
    spread = PixelHits(u, v, z, src)
    keep = nearest_per_pixel(spread, width)
    out = np.zeros((height, width, len(channels)), dtype=np.float32)
    rows, cols, chosen = v[keep], u[keep], src[keep]
    for c, name in enumerate(channels):
        out[rows, cols, c] = radar_channel_values(radar_cam, name)[chosen]
    return out


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
            raise ProjectionError(f'image size must be positive, got {in_width}x{in_height}')
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
        K = _as_K(K).copy()
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
            raise ProjectionError(f'image is {image.shape[1]}x{image.shape[0]}, transform expects '
                                  f'{self.in_width}x{self.in_height}')
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
            raise ProjectionError(f'map is {array.shape[1]}x{array.shape[0]}, transform expects '
                                  f'{self.out_width}x{self.out_height}')
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
