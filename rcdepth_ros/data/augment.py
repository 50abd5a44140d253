"""
Training augmentations that keep image, radar and ground truth consistent, deterministic given a seed.

They act on a "view" of a frame: an image at some resolution, its K, and everything 3D (radar returns, lidar
points) in the camera frame, plus ground-truth depth images aligned with the image. Geometry stays consistent
because nothing is moved in pixel space alone:

- random crop: a window of the (already scaled) image, zoomed by a factor in ``zoom`` (1 = no zoom) and placed
  anywhere; K's principal point moves by the window's offset, and the zoom is applied later by
  ``geometry.prepare_model_input`` (which also scales K), exactly as for an unaugmented image.
- horizontal flip: the image, and the ground-truth images, are mirrored; K's principal point becomes
  ``width - 1 - cx`` (skew negated); radar and lidar points are mirrored in 3D (x -> -x), so projecting the
  mirrored points with the mirrored K lands each on the mirrored pixel. Radial velocity is a range rate, unchanged
  by a mirror. The Cartesian ``vxy`` is in the radar's own frame (nuScenes RADAR_FRONT: x forward, y left): the
  mirror maps y to -y there, so vy changes sign and vx does not. This is exact for a radar facing along the
  camera axis (the front radar the protocol uses); for radars mounted at an angle the mirror is not a symmetry of
  their frame and their raw vxy is kept as the sensor reported it, flip or not, only vy negated.
- photometric jitter (image only): brightness, gamma and per-channel colour factors drawn in ``[0.9, 1.1]``.

Randomness: ``rng_for(seed, epoch, index)`` gives every (epoch, item) its own generator from the seed alone, so an
item's augmentation does not depend on which DataLoader worker draws it or in what order.
"""

import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import ConfigError


@dataclasses.dataclass
class AugmentConfig:
    """Switches and ranges of the augmentations (``from_dict`` builds it from YAML)."""

    seed: int = 42
    crop: bool = True
    zoom: typing.Tuple[float, float] = (1.0, 1.25)
    flip_probability: float = 0.5
    brightness: typing.Tuple[float, float] = (0.9, 1.1)
    gamma: typing.Tuple[float, float] = (0.9, 1.1)
    colour: typing.Tuple[float, float] = (0.9, 1.1)
    photometric_probability: float = 1.0

    def __post_init__(self):
        """Check ranges; raise ConfigError naming the field."""
        for name in ('zoom', 'brightness', 'gamma', 'colour'):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ConfigError(f'augment.{name}: need 0 < low <= high, got ({low}, {high})')
        if self.zoom[0] < 1.0:
            raise ConfigError(f'augment.zoom: factors must be >= 1 (a crop window inside the image), got {self.zoom}')
        for name in ('flip_probability', 'photometric_probability'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f'augment.{name} must be in [0, 1], got {getattr(self, name)}')


def rng_for(seed, epoch, index):
    """Return the generator of item ``index`` in ``epoch``: a function of the three numbers only."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


@dataclasses.dataclass
class View:
    """
    A frame on its way to the model: image, K, camera-frame points and aligned ground-truth images.

    ``image`` (H, W, 3) uint8 RGB with intrinsics ``K``; ``radar`` and ``lidar_xyz`` in the camera frame; ``depth``
    a sparse GT image (only where the source has no lidar points) and ``dense`` the dense GT where known;
    ``lidar_ring`` the ring of each lidar point where known. ``window`` (top, left, height, width) is where
    ``image`` lies in the view it was cropped from (None: not cropped) and ``flipped`` whether it was mirrored
    after that crop, so maps aligned with the uncropped view (offline teacher targets) can follow exactly
    (``follow_view``).
    """

    image: np.ndarray
    K: np.ndarray
    radar: RadarPoints
    lidar_xyz: typing.Optional[np.ndarray] = None
    depth: typing.Optional[np.ndarray] = None
    dense: typing.Optional[np.ndarray] = None
    flipped: bool = False
    lidar_ring: typing.Optional[np.ndarray] = None
    window: typing.Optional[typing.Tuple[int, int, int, int]] = None


def crop_window(view, top, left, height, width):
    """Return the view restricted to the pixel window (top, left, height, width); K follows the window."""
    if view.flipped:
        raise ConfigError('crop_window: crop before flipping (the window is kept in unflipped coordinates)')
    K = view.K.copy()
    K[0, 2] -= left
    K[1, 2] -= top

    def cut(array):
        return None if array is None else np.ascontiguousarray(array[top:top + height, left:left + width])

    outer_top, outer_left = (view.window[0], view.window[1]) if view.window is not None else (0, 0)
    window = (outer_top + int(top), outer_left + int(left), int(height), int(width))
    return dataclasses.replace(view, image=cut(view.image), K=K, depth=cut(view.depth), dense=cut(view.dense),
                               window=window)


def random_crop(view, out_height, out_width, zoom, rng):
    """
    Return a random window of ``view`` that the model input (``out_height`` x ``out_width``) will be scaled from.

    The window has the model's aspect ratio, ``1 / z`` of its size for a zoom ``z`` drawn from ``zoom`` (relative
    to an image already scaled to the model width); it lies anywhere inside the image (rows clipped when the image
    is shorter than the window).
    """
    height, width = view.image.shape[:2]
    z = float(rng.uniform(zoom[0], zoom[1]))
    window_w = min(width, max(1, int(round(width / z))))
    window_h = min(height, max(1, int(round(out_height * window_w / out_width))))
    top = int(rng.integers(0, height - window_h + 1))
    left = int(rng.integers(0, width - window_w + 1))
    return crop_window(view, top, left, window_h, window_w)


def _mirror(points):
    mirrored = np.array(points, dtype=np.float32, copy=True)
    mirrored[:, 0] *= -1.0
    return mirrored


def horizontal_flip(view):
    """Return the mirrored view: image and GT images flipped, K mirrored, 3D points x -> -x, radar vy negated."""
    width = view.image.shape[1]
    K = view.K.copy()
    K[0, 2] = (width - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    radar = view.radar
    vxy = radar.vxy.copy()
    vxy[:, 1] *= -1.0
    radar = RadarPoints(_mirror(radar.xyz), radar.rcs.copy(), radar.v_radial.copy(), vxy, radar.frame_id,
                        radar.stamp_ns)

    def flip(array):
        return None if array is None else np.ascontiguousarray(array[:, ::-1])

    return dataclasses.replace(view, image=flip(view.image), K=K, radar=radar,
                               lidar_xyz=None if view.lidar_xyz is None else _mirror(view.lidar_xyz),
                               depth=flip(view.depth), dense=flip(view.dense), flipped=not view.flipped)


def photometric(image, rng, brightness=(0.9, 1.1), gamma=(0.9, 1.1), colour=(0.9, 1.1)):
    """Return ``image`` (uint8 RGB) with random brightness, gamma and per-channel colour factors applied."""
    b = rng.uniform(*brightness)
    g = rng.uniform(*gamma)
    c = rng.uniform(colour[0], colour[1], size=3)
    lut_in = np.arange(256, dtype=np.float32) / 255.0
    scaled = np.power(lut_in, g)[None, :] * (b * c)[:, None]          # (3, 256): one lookup table per channel
    lut = np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)
    out = np.empty_like(image)
    for channel in range(3):
        out[..., channel] = lut[channel][image[..., channel]]
    return out


def follow_view(array, view, interpolation_transform=None):
    """
    Return ``array`` (H, W[, C]), aligned with the uncropped, unflipped view, cut and mirrored as ``view`` was.

    ``interpolation_transform`` (optional) is then applied, e.g. the model-input ``ImageTransform.apply`` with
    the interpolation the map needs, so the result is aligned with the model input of the augmented view.
    """
    if view.window is not None:
        top, left, height, width = view.window
        array = array[top:top + height, left:left + width]
    if view.flipped:
        array = array[:, ::-1]
    array = np.ascontiguousarray(array)
    return interpolation_transform(array) if interpolation_transform is not None else array


def augment_view(view, config, out_height, out_width, rng):
    """Apply crop, flip and photometric jitter per ``config`` (an AugmentConfig) with generator ``rng``."""
    if config.crop:
        view = random_crop(view, out_height, out_width, config.zoom, rng)
    if rng.random() < config.flip_probability:
        view = horizontal_flip(view)
    if rng.random() < config.photometric_probability:
        view = dataclasses.replace(view, image=photometric(view.image, rng, config.brightness, config.gamma,
                                                           config.colour))
    return view
