"""
The road surface shader.

Asphalt with grain and lane markings, parking strips, sidewalk slabs and kerb stones, a grassy verge. Works on
world coordinates of ground hits; colours are planar (3, N).
"""

import numpy as np

from rcdepth_ros.data.synthetic.materials import frac
from rcdepth_ros.data.synthetic.raycast import KERB, SIDEWALK

DASH_PERIOD = 9.0
DASH_LENGTH = 3.0
SLAB = 1.5


def ground_albedo(road, look, tex, x, y, d, t, code, out=None):
    """
    Return the albedo (3, ...) of ground hits at world ``(x, y)``.

    ``d`` is their lateral road offset, ``t`` the ray parameter (for the grain's fading), ``code`` the ground part
    (ROAD, SIDEWALK, KERB). Arrays of any shape; ``out`` (3, ...) receives the result when given.
    """
    s = road.along(x, y).astype(np.float32)
    ad = np.abs(d)
    # Grain fades with distance, as a real texture averages out under the pixel footprint.
    fade = np.minimum(np.float32(12.0) / np.maximum(t, np.float32(1e-3)), np.float32(1.0))
    coarse = tex.sample(tex.coarse, x, y, 2.0)
    fine = tex.sample(tex.fine, x, y, 30.0) * fade
    tone = look.asphalt * (0.88 + 0.16 * coarse + 0.12 * fine)
    dash = frac(s * (1.0 / DASH_PERIOD)) < DASH_LENGTH / DASH_PERIOD
    marks = (ad < 0.07) if road.centre_line_solid else (ad < 0.06) & dash
    for k in range(1, road.lanes_per_direction):
        marks |= (np.abs(ad - k * road.lane_width) < 0.06) & dash
    marks |= np.abs(ad - road.carriageway) < 0.08
    tone *= 1.0 + (ad > road.carriageway) * np.float32(0.08)
    tone += marks * (0.86 * (0.72 + 0.25 * coarse) - tone)
    # Sidewalk: slabs with joints, a lighter kerb stone; the verge beyond is grass.
    kerb_d = np.where(d >= 0, np.float32(road.half_width_left), np.float32(road.half_width_right))
    from_kerb = ad - kerb_d
    walk = code == SIDEWALK
    slab = 0.6 * (0.93 + 0.07 * coarse + 0.05 * fine)
    joint = (frac(s * (1.0 / SLAB)) < 0.02) | (frac(from_kerb * (1.0 / SLAB)) < 0.02)
    slab += joint * (0.45 - slab)
    slab += (from_kerb < 0.25) * (0.7 - slab)
    value = tone + walk * (slab - tone)
    value += (code == KERB) * (0.68 - value)
    color = np.empty((3,) + value.shape, dtype=np.float32) if out is None else out
    color[0] = value
    np.multiply(value, np.float32(0.99), out=color[1])
    np.multiply(value, np.float32(0.97), out=color[2])
    verge = walk & (from_kerb >= road.sidewalk_width)
    if verge.any():
        grass = 0.75 + 0.45 * coarse + 0.2 * fine
        m = verge.astype(np.float32)
        for c, g in enumerate((0.24, 0.36, 0.14)):
            color[c] += m * (grass * g - color[c])
    return color
