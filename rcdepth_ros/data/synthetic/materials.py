"""
Surface shaders: the albedo (and which pixels emit light at night) of every material.

Shading is deferred and batched: after ray casting, all visible pixels of one material are shaded in one call
from their hit points in the primitive's own frame (``Surface``; boxes: x forward / along the facade, y left,
z up, origin at the centre) and their primitive's colour and parameters. Colours are planar (3, N). Masks are
applied arithmetically (``c += m * (v - c)``), which numpy runs several times faster than masked assignment.
Textures are tied to surfaces, not to pixels: asphalt grain, windows, slabs, wheels and lights stay put as the
camera moves. Emission codes: 0 none, 1 tail light, 2 headlight, 3 street lamp, 4 lit window.
"""

import functools

import numpy as np

TAIL, HEAD, LAMP, WINDOW = 1, 2, 3, 4
MAX_PARAMS = 8
GLASS = (0.09, 0.11, 0.14)
REFLECTION = (0.55, 0.65, 0.8)
TYRE = (0.04, 0.04, 0.045)


class Surface:
    """
    The visible pixels of one material, one entry per pixel, sorted by primitive.

    ``x, y, z`` hit point in the primitive's frame, ``face`` (2 * axis + 1 on the positive side for boxes, 0
    otherwise), ``t`` the ray parameter (z depth). The primitive's base colour (3, N), parameters
    (MAX_PARAMS, N) and half size (3, N) are expanded per pixel on first use (``counts`` pixels per primitive).
    """

    def __init__(self, x, y, z, face, t, counts, colors, params, halves):
        """Keep the per-pixel arrays and the per-primitive tables."""
        self.x, self.y, self.z, self.face, self.t = x, y, z, face, t
        self._counts, self._tables = counts, {'color': colors, 'params': params, 'half': halves}

    def _expand(self, name):
        return np.repeat(self._tables[name], self._counts, axis=1)

    @functools.cached_property
    def color(self):
        """Return the base colour (3, N)."""
        return self._expand('color')

    @functools.cached_property
    def params(self):
        """Return the shader parameters (MAX_PARAMS, N)."""
        return self._expand('params')

    @functools.cached_property
    def half(self):
        """Return the half size (3, N)."""
        return self._expand('half')

    def __len__(self):
        """Return the number of pixels."""
        return self.t.shape[0]


def fill(n, value):
    """Return a (3, n) float32 colour array filled with ``value`` (3,)."""
    out = np.empty((3, n), dtype=np.float32)
    for c in range(3):
        out[c] = value[c]
    return out


def paint(color, mask, value):
    """Set ``color`` (3, N) to ``value`` ((3,) or (3, N)) where ``mask``, in place."""
    m = mask.astype(np.float32)
    for c in range(3):
        color[c] += m * (value[c] - color[c])


def scale(color, mask, factor):
    """Multiply ``color`` by ``factor`` where ``mask``, in place."""
    color *= 1.0 + mask.astype(np.float32) * np.float32(factor - 1.0)


def frac(v):
    """Return the fractional part of ``v`` (faster than ``v % 1``)."""
    return v - np.floor(v)


def _box_coords(sf):
    """Return (axis, horizontal coordinate from the face's left edge, height above the box bottom)."""
    axis = sf.face // 2
    across = (axis == 0).astype(np.float32)
    along = sf.x + sf.half[0] + across * (sf.y + sf.half[1] - sf.x - sf.half[0])
    return axis, along, sf.z + sf.half[2]


# Colours of a facade's layers (columns: window frame, glass, sky reflection on glass, roof), per channel.
FACADE_LAYERS = np.array([[0.82, GLASS[0], 0.28 * REFLECTION[0], 0.30],
                          [0.82, GLASS[1], 0.28 * REFLECTION[1], 0.29],
                          [0.80, GLASS[2], 0.28 * REFLECTION[2], 0.28]], dtype=np.float32)


def building(sf, tex):
    """Facade with a grid of windows (per-window reflections; some lit at night) and ground-floor shop fronts."""
    floor_h, col_w, win_w, win_h, ground_h, key = sf.params[:6]
    axis, along, height = _box_coords(sf)
    facade = axis < 2
    cols = along / col_w
    column = np.floor(cols)
    dx = np.abs(cols - column - 0.5)
    above = height - ground_h
    levels = above / floor_h
    level = np.floor(levels)
    fz = levels - level
    dz = np.abs(fz - 0.5)
    upper = facade & (above > 0) & (height < 2.0 * sf.half[2] - 0.6)
    half_w, half_h = 0.5 * win_w, 0.5 * win_h
    window = upper & (dx < half_w) & (dz < half_h)
    frame = upper & (dx < half_w + 0.04) & (dz < half_h + 0.05) & ~window
    shop = facade & (height > 0.35) & (above < -0.7) & (np.abs(frac(along / (2.0 * col_w)) - 0.5) < 0.38)
    glass = window | shop
    # One value per window: which reflection it shows and whether it is lit at night.
    cell = level * np.float32(131.0) + column * np.float32(17.0) + key * np.float32(7.0) + axis
    glass_key = np.take(tex.table, cell.astype(np.int32) & (len(tex.table) - 1))
    frame_w = frame.astype(np.float32)
    glass_w = glass.astype(np.float32)
    sheen = glass_w * glass_key
    roof_w = (~facade).astype(np.float32)
    # The wall: the building's colour, darker on the floor ledges.
    wall = (facade & ~glass & ~frame) * (np.float32(1.0) - (upper & (fz < 0.05)) * np.float32(0.2))
    # Explicit sums rather than a (3, 4) @ (4, N) product: BLAS would start threads that spin.
    color = np.empty((3, len(sf)), dtype=np.float32)
    for c in range(3):
        frame_c, glass_c, sheen_c, roof_c = (float(v) for v in FACADE_LAYERS[c])
        color[c] = sf.color[c] * wall + frame_w * frame_c + glass_w * glass_c + sheen * sheen_c + roof_w * roof_c
    emit = ((window & (glass_key > 0.78)) | (shop & (glass_key > 0.5))).astype(np.uint8) * np.uint8(WINDOW)
    return color, emit


def vehicle_body(sf, tex):
    """Painted lower body: wheels and sills on the sides, headlights and grille in front, tail lights behind."""
    wheel_r, axle_front, axle_rear, lit = sf.params[:4]
    axis, along, height = _box_coords(sf)
    top = 2.0 * sf.half[2]
    width = sf.half[1]
    color = sf.color * (0.8 + 0.25 * np.clip(height / top, 0.0, 1.0))
    side = axis == 1
    x = sf.x
    scale(color, side & (height < 0.22), 0.55)
    scale(color, side & (np.abs(x - 0.15 * sf.half[0]) < 0.012) & (height > 0.3), 0.6)
    for axle in (axle_front, axle_rear):
        r2 = (x - axle) ** 2 + (height - wheel_r) ** 2
        paint(color, side & (r2 < (wheel_r + 0.06) ** 2), (0.02, 0.02, 0.02))
        paint(color, side & (r2 < wheel_r * wheel_r), TYRE)
        paint(color, side & (r2 < 0.3 * wheel_r * wheel_r), (0.55, 0.56, 0.58))
    ends = axis == 0
    lateral = np.abs(sf.y)
    band = ends & (height > top - 0.36) & (height < top - 0.14)
    front, rear = sf.face == 1, sf.face == 0
    paint(color, front & (lateral < width - 0.5) & (height > top - 0.5) & (height < top - 0.12), (0.07, 0.07, 0.08))
    head = front & band & (lateral > width - 0.45) & (lateral < width - 0.08)
    paint(color, head, (0.93, 0.92, 0.82))
    tail = rear & band & (lateral > width - 0.4) & (lateral < width - 0.05)
    paint(color, tail, (0.75, 0.06, 0.05))
    paint(color, rear & (lateral < 0.26) & (height > 0.34) & (height < 0.47), (0.88, 0.88, 0.85))
    bottom = ends & (height < 0.3)
    paint(color, bottom, (0.12, 0.12, 0.13))
    paint(color, bottom & (lateral > width - 0.32) & (height < 0.28), TYRE)
    # Only vehicles on the move have their lights on.
    emit = (head.astype(np.uint8) * np.uint8(HEAD) + tail.astype(np.uint8) * np.uint8(TAIL)) * (lit > 0)
    return color, emit


def cabin(sf, tex):
    """Glass house: windows with a sky reflection, pillars and roof in the paint colour."""
    axis, along, height = _box_coords(sf)
    top = 2.0 * sf.half[2]
    span = sf.half[0] + (axis == 0) * (sf.half[1] - sf.half[0])
    pillar = (np.abs(along - span) > span - 0.09) | (height > top - 0.06) | (axis == 2)
    pillar |= (axis == 1) & (np.abs(sf.x) < 0.06)
    sheen = 0.28 * np.clip(height / top, 0.0, 1.0)
    color = np.stack([GLASS[c] + sheen * REFLECTION[c] for c in range(3)])
    paint(color, pillar, sf.color)
    return color, None


def cargo(sf, tex):
    """Paint a box body (van or lorry): panels and wheels on the sides, lights at the back."""
    color, emit = vehicle_body(sf, tex)
    axis, along, height = _box_coords(sf)
    scale(color, (axis == 1) & (np.abs(frac(along / 1.25) - 0.5) > 0.48) & (height > 0.5), 0.8)
    return color, emit


def van_upper(sf, tex):
    """Upper part of a van: windscreen and front side windows, paint elsewhere."""
    axis, along, height = _box_coords(sf)
    top = 2.0 * sf.half[2]
    band = (height > 0.08) & (height < top - 0.12)
    width = sf.half[1]
    screen = (sf.face == 1) & band & (np.abs(sf.y) < width - 0.1)
    side = (axis == 1) & band & (sf.x > sf.half[0] - 1.4) & (sf.x < sf.half[0] - 0.15)
    rear = (sf.face == 0) & band & (np.abs(sf.y) < width - 0.15) & (height > 0.4 * top)
    color = sf.color.copy()
    paint(color, screen | side | rear, [g + 0.08 for g in GLASS])
    return color, None


def plain(sf, tex):
    """Uniform colour (poles, arms, trunks)."""
    return sf.color.copy(), None


def lamp(sf, tex):
    """Lamp head: grey housing, a lens underneath that lights at night."""
    color = fill(len(sf), (0.35, 0.36, 0.38))
    lens = sf.face == 4
    paint(color, lens, (0.85, 0.85, 0.78))
    return color, lens.astype(np.uint8) * np.uint8(LAMP)


def sign(sf, tex):
    """Traffic sign plate: coloured front with a white rim, grey back and edges."""
    rim = (np.abs(sf.y) > sf.half[1] - 0.06) | (np.abs(sf.z) > sf.half[2] - 0.06)
    color = sf.color.copy()
    paint(color, rim, (0.92, 0.92, 0.92))
    paint(color, sf.face != 1, (0.5, 0.5, 0.52))
    return color, None


def pedestrian(sf, tex):
    """Clothes: a top above the waist, trousers below (local z of the body cylinder)."""
    color = sf.color.copy()
    paint(color, sf.z <= sf.params[0], sf.params[1:4])
    return color, None


def head(sf, tex):
    """Skin with hair on top."""
    color = sf.color.copy()
    paint(color, sf.z > 0.35 * sf.half[0], sf.params[0:3])
    return color, None


def foliage(sf, tex):
    """Tree crown: clumps of leaves (smooth noise) with fine leaf grain, greener where the crown is lit."""
    clumps = tex.sample(tex.medium, sf.x * 1.7 + sf.y * 0.9, sf.z * 1.7 - sf.y * 0.6, 6.0)
    grain = tex.sample(tex.fine, sf.x * 2.0 + sf.y * 1.3, sf.z * 2.0, 12.0)
    leaf = 0.75 + 0.3 * clumps + 0.15 * grain
    return sf.color * leaf, None


SHADERS = {
    'building': building, 'vehicle_body': vehicle_body, 'cabin': cabin, 'cargo': cargo, 'van_upper': van_upper,
    'metal': plain, 'bark': plain, 'lamp': lamp, 'sign': sign, 'pedestrian': pedestrian, 'head': head,
    'foliage': foliage,
}
