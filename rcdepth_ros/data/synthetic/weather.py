"""
What the atmosphere, the light and the sensor do to the camera image.

Distance haze, fog, night, vignetting, noise and the 8-bit output. Only the image changes; depth, lidar and
radar do not depend on any of it.

Fog follows Koschmieder's law: a surface at distance ``r`` keeps ``exp(-3.912 r / V)`` of its contrast for a
meteorological visibility ``V``. Night replaces the sun by a faint ambient light, the ego vehicle's low-beam
headlights, street lamps, and emitters (tail and head lights, lamp heads, lit windows) that glow.

The radiance is written ``albedo * A + B`` with a per-pixel gain ``A`` (H, W) and an additive image ``B``
(3, H, W), so the expensive per-channel work is two passes over contiguous planes.
"""

import cv2
import numpy as np

from rcdepth_ros.data.synthetic.scene import rigid_inverse

FOG_DAY = np.array([0.72, 0.74, 0.76], dtype=np.float32)
FOG_NIGHT = np.array([0.07, 0.07, 0.08], dtype=np.float32)
HAZE = np.array([0.78, 0.82, 0.88], dtype=np.float32)
# Emission colours (may exceed 1 before the glow spreads them): none, tail, head, lamp, window.
EMISSION = np.array([[0.0, 0.0, 0.0], [1.6, 0.12, 0.06], [2.2, 2.1, 1.8], [3.0, 2.5, 1.6], [0.6, 0.48, 0.3]],
                    dtype=np.float32)
NIGHT_AMBIENT = 0.02
# Light of one low-beam headlight and of one street lamp at 1 m (relative to daylight = 1).
HEADLIGHT = 28.0
STREET_LAMP = 20.0
LIGHT_STRIDE = 4


def compose(albedo, light, depth, sky, emit, look, grid, T_world_from_camera, primitives, gain, noise):
    """
    Return the (H, W, 3) uint8 image from planar ``albedo`` (3, H, W), sun ``light`` (H, W), ray ``depth``.

    ``gain`` (H, W) is the vignetting times 255; ``noise`` a pair of (H, W, 3) uint8 patterns added and
    subtracted with saturation (zero-mean sensor noise).
    """
    finite = np.where(sky, np.float32(0.0), depth)
    if look.fog:
        keep = fog_transmission(finite, look.fog_visibility)
        keep[sky] = 0.0
        colour = FOG_NIGHT if look.night else FOG_DAY
    else:
        keep = np.exp(finite * np.float32(-1.0 / look.haze_distance))      # 1 at the sky (finite = 0)
        colour = FOG_NIGHT if look.night else HAZE
    extra = None
    if look.night:
        light = _night_light(finite, sky, grid, T_world_from_camera, primitives)
        for c in range(3):
            albedo[c][sky] = 0.0
        extra = _emission(emit, keep, look.fog)
        if not look.fog:
            extra += _night_sky(sky)
    a = light * keep
    a *= gain
    veil = np.float32(1.0) - keep
    veil *= gain
    planes = []
    for c in range(3):
        plane = albedo[c]                      # the albedo buffer is ours to overwrite from here on
        plane *= a
        plane += veil * np.float32(colour[c])
        if extra is not None:
            plane += extra[c] * gain
        planes.append(cv2.convertScaleAbs(plane))
    image = cv2.merge(planes)
    image = cv2.add(image, noise[0])
    image = cv2.subtract(image, noise[1])
    return image


def fog_transmission(distance, visibility):
    """Return the fraction of a surface's contrast left at ``distance`` in fog of ``visibility`` (Koschmieder)."""
    return np.exp(np.asarray(distance, dtype=np.float32) * np.float32(-3.912 / visibility))


def _emission(emit, keep, fog):
    """
    Return (3, H, W) light from the emitters.

    Direct light (dimmed by the atmosphere), a lens glow, and in fog a wide halo scattered by the droplets.
    """
    out = []
    for c in range(3):
        source = EMISSION[:, c][emit]
        direct = source * keep
        plane = direct + 0.9 * cv2.GaussianBlur(direct, (0, 0), 4.0)
        if fog:
            plane += 0.6 * cv2.GaussianBlur(source * np.sqrt(keep), (0, 0), 14.0)
        out.append(plane)
    return np.stack(out)


def _night_sky(sky):
    h, w = sky.shape
    out = np.zeros((3, h, w), dtype=np.float32)
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    for c, (top, bottom) in enumerate(((0.01, 0.06), (0.015, 0.06), (0.035, 0.075))):
        out[c] = np.where(sky, top + (bottom - top) * rows, 0.0)
    return out


def _night_light(depth, sky, grid, T_world_from_camera, primitives):
    """Return the (H, W) night light: ambient, low-beam headlights and street lamps (at reduced resolution)."""
    s = LIGHT_STRIDE
    h, w = depth.shape
    z = depth[::s, ::s]
    px = grid.xu[::s][None, :] * z
    py = grid.yv[::s][:, None] * z
    pz = z
    light = np.full(z.shape, NIGHT_AMBIENT, dtype=np.float32)
    # Low-beam headlights about 0.7 m above the road and 1.8 m ahead of the camera, cut off above the horizon.
    height = float(T_world_from_camera[2, 3])
    for lx in (-0.7, 0.7):
        dx, dy, dz = px - lx, py - (height - 0.7), pz - 1.8
        dist2 = dx * dx + dy * dy + dz * dz + 1e-3
        dist = np.sqrt(dist2)
        forward = np.clip(dz / dist, 0.0, 1.0)
        beam = forward ** 12 * np.clip((dy / dist + 0.02) * 25.0, 0.0, 1.0)
        light += HEADLIGHT * beam / dist2
    T_cam_from_world = rigid_inverse(T_world_from_camera)
    down = T_cam_from_world[:3, :3] @ np.array([0.0, 0.0, -1.0])
    for prim in primitives:
        if prim.material != 'lamp':
            continue
        c = T_cam_from_world[:3, :3] @ prim.T_world[:3, 3] + T_cam_from_world[:3, 3]
        if c[2] < -20.0 or c[2] > 120.0:
            continue
        dx, dy, dz = px - c[0], py - c[1], pz - c[2]
        dist2 = dx * dx + dy * dy + dz * dz + 0.25
        cos = np.clip((dx * down[0] + dy * down[1] + dz * down[2]) / np.sqrt(dist2), 0.0, 1.0)
        light += STREET_LAMP * cos * cos / dist2
    light = np.minimum(light, 1.2)
    light[sky[::s, ::s]] = 0.0
    return cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
