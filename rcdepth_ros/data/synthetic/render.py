"""
The camera: ray casting, shading and exposure of one frame.

Ray-cast the scene through every pixel, shade it (procedural textures, Lambert light from the sun,
sun shadows of vehicles on the road, sky gradient), let the atmosphere and the sensor act on it (weather.py),
and return the RGB image with its exact dense depth (z in the optical camera frame; 0 for sky and beyond
``max_depth``).

Buffers are planar (3, H, W) so that per-pixel factors multiply whole contiguous planes.
"""

import dataclasses
import math

import numpy as np

from rcdepth_ros.data.synthetic import materials
from rcdepth_ros.data.synthetic.ground import ground_albedo
from rcdepth_ros.data.synthetic.raycast import Caster, NO_HIT, PinholeGrid
from rcdepth_ros.data.synthetic.scene import BOX, CYLINDER, rigid_inverse, VEHICLE
from rcdepth_ros.data.synthetic.weather import compose

# Vehicles farther than this (metres ahead of the camera) cast no drawn shadow.
SHADOW_RANGE = 70.0
# Parts smaller than this many pixels (largest extent) are not drawn.
MIN_PIXELS = 2.5
AMBIENT = 0.5
DIFFUSE = 0.62
SKY_HORIZON = np.array([0.8, 0.85, 0.9], dtype=np.float32)
SKY_ZENITH = np.array([0.32, 0.5, 0.8], dtype=np.float32)
MATERIALS = sorted(materials.SHADERS)
MATERIAL_ID = {name: i for i, name in enumerate(MATERIALS)}


@dataclasses.dataclass
class CameraFrame:
    """One rendered camera frame: image, dense depth, and per pixel what was hit (primitive index or code)."""

    image: np.ndarray           # (H, W, 3) uint8 RGB
    depth: np.ndarray           # (H, W) float32 z in metres, 0 = sky / beyond max_depth
    index: np.ndarray           # (H, W) int32 primitive index, raycast.GROUND or raycast.NO_HIT
    primitives: list
    then: object = None         # Future of the work queued after the background shading (see render)


class CameraRenderer:
    """Renders frames of one camera configuration; the per-image constants are computed once."""

    def __init__(self, config, textures):
        """Build the pixel ray grid, the vignetting map and the sensor noise patterns."""
        self.config = config
        self.textures = textures
        K = np.asarray(config.intrinsics_matrix, dtype=np.float64)
        self.grid = PinholeGrid(K, config.width, config.height)
        h, w = self.grid.shape
        # Normalised image coordinates of every pixel, flat (read with np.take by pixel index).
        self.xu_flat = np.tile(self.grid.xu, h)
        self.yv_flat = np.repeat(self.grid.yv, w)
        self.inv_norm_flat = (1.0 / np.sqrt(self.xu_flat ** 2 + self.yv_flat ** 2 + 1.0)).astype(np.float32)
        r2 = self.grid.xu[None, :] ** 2 + self.grid.yv[:, None] ** 2
        self.vignette = (255.0 / (1.0 + 0.25 * r2)).astype(np.float32)
        rng = np.random.default_rng([int(config.seed), 0x5e75])
        # Sensor noise: one pattern per data set (day and night gain), read at a per-frame random offset.
        grain = rng.standard_normal((h + 64, w + 64, 3)).astype(np.float32)
        self.noise = {night: (np.clip(grain * sigma, 0, 255).astype(np.uint8),
                              np.clip(-grain * sigma, 0, 255).astype(np.uint8))
                      for night, sigma in ((False, 2.5), (True, 7.0))}

    def render(self, drive, t, primitives, T_world_from_camera, frame_rng, pool=None, then=None):
        """
        Return the CameraFrame of ``drive`` at time ``t`` seen from ``T_world_from_camera``.

        With a thread ``pool`` the ground and the sky are shaded in a worker while this thread shades the
        objects (their pixels are written last, so the result is the same); ``then`` (a callable) is queued in
        the worker right after them and its Future is returned as ``CameraFrame.then``. Heavy array work
        overlaps well across threads, Python-level loops do not (the GIL): the worker gets array work first.
        """
        h, w = self.grid.shape
        T_cam_from_world = rigid_inverse(T_world_from_camera)
        R_cam_from_world = T_cam_from_world[:3, :3]
        look = drive.look
        sun = R_cam_from_world @ look.sun_world
        up = R_cam_from_world[:, 2]
        cast = Caster(self.grid, T_cam_from_world, min_pixels=MIN_PIXELS,
                      keep_ground=True).run(drive.road, primitives)
        albedo = np.zeros((3, h, w), dtype=np.float32)
        light = np.ones((h, w), dtype=np.float32)
        emit = np.zeros((h, w), dtype=np.uint8)
        sky = cast.index == NO_HIT

        def background():
            # The ground over whole rows (contiguous), then the sky; object pixels are overwritten below.
            self._shade_ground(drive, cast.ground_surface, primitives, T_cam_from_world, albedo, light, sun, up)
            self._sky(albedo, light, sky, up, sun)

        pending = pool.submit(background) if pool is not None else None
        later = pool.submit(then) if pool is not None and then is not None else None
        if pending is None:
            background()
        shading = self._shade_objects(cast, primitives, T_cam_from_world, sun, up)
        if pending is not None:
            pending.result()
        if shading is not None:
            visible, colors, lit, glow = shading
            flat_albedo = albedo.reshape(3, -1)
            for k in range(3):
                flat_albedo[k][visible] = colors[k]
            light.ravel()[visible] = lit
            emit.ravel()[visible] = glow
        depth = cast.t
        dy, dx = (int(v) for v in frame_rng.integers(0, 64, 2))
        noise = tuple(n[dy:dy + h, dx:dx + w] for n in self.noise[look.night])
        image = compose(albedo, light, depth, sky, emit, look, self.grid, T_world_from_camera, primitives,
                        self.vignette, noise)
        dense = np.where(sky | (depth > self.config.max_depth), 0.0, depth).astype(np.float32)
        return CameraFrame(image, dense, cast.index, primitives, later)

    def _shade_objects(self, cast, primitives, T_cam_from_world, sun, up):
        """
        Return ``(pixels, colours (3, N), light (N,), emission (N,))`` of every visible object pixel, or None.

        Each pixel's hit point in its primitive's frame gives its light (the surface normal) and, through its
        material's shader, its colour.

        Pixels are sorted by (material, primitive) with a radix sort on an int16 rank, so per-primitive values
        expand with ``np.repeat`` and each material's pixels form one contiguous run.
        """
        index = cast.index.ravel()
        visible = np.flatnonzero(index >= 0)
        if visible.size == 0:
            return None
        ids = np.array([MATERIAL_ID[p.material] for p in primitives])
        if np.all(ids[1:] >= ids[:-1]):
            # Already numbered by material (the generator sorts them): the index is the sort key.
            by_material = range(len(primitives))
            key = np.take(index, visible).astype(np.int16)
        else:
            by_material = np.argsort(ids, kind='stable')
            rank = np.empty(len(primitives), dtype=np.int16)
            rank[by_material] = np.arange(len(primitives), dtype=np.int16)
            key = np.take(rank, np.take(index, visible))
        # Gather from the image buffers in raster order (sequential reads), then permute the compact arrays.
        t = np.take(cast.t.ravel(), visible)
        face = np.take(cast.face.ravel(), visible)
        xu = np.take(self.xu_flat, visible)
        yv = np.take(self.yv_flat, visible)
        order = np.argsort(key, kind='stable')
        visible, key = np.take(visible, order), np.take(key, order)
        t, face, xu, yv = (np.take(a, order) for a in (t, face, xu, yv))
        counts = np.bincount(key, minlength=len(primitives))
        present = np.flatnonzero(counts)
        counts = counts[present]
        shown = [primitives[by_material[i]] for i in present]
        T = T_cam_from_world @ np.stack([p.T_world for p in shown])
        R, c = T[:, :3, :3], T[:, :3, 3]
        # local_k = R[:, k] . (p - c) = R0k px + R1k py + R2k pz - (R^T c)_k, one coefficient row each.
        coef = np.concatenate([R.transpose(1, 2, 0).reshape(9, -1), np.einsum('sjk,sj->ks', R, c)]).astype(np.float32)
        coef = np.repeat(coef, counts, axis=1)
        px = t * xu
        py = t * yv
        local = [coef[k] * px + coef[3 + k] * py + coef[6 + k] * t - coef[9 + k] for k in range(3)]
        lit = self._light(shown, counts, R, coef, face, local, sun, up)
        colors = np.array([p.color for p in shown], dtype=np.float32).T
        halves = np.array([p.half for p in shown], dtype=np.float32).T
        params = np.zeros((materials.MAX_PARAMS, len(shown)), dtype=np.float32)
        for k, p in enumerate(shown):
            params[:len(p.params), k] = p.params
        ends = np.cumsum(counts)
        starts = ends - counts
        material = np.array([MATERIAL_ID[p.material] for p in shown])
        colors_out = np.empty((3, visible.size), dtype=np.float32)
        glow_out = np.zeros(visible.size, dtype=np.uint8)
        for m, name in enumerate(MATERIALS):
            runs = np.flatnonzero(material == m)
            if runs.size == 0:
                continue
            s0, s1 = runs[0], runs[-1] + 1
            a, b = starts[s0], ends[s1 - 1]
            surface = materials.Surface(local[0][a:b], local[1][a:b], local[2][a:b], face[a:b], t[a:b],
                                        counts[s0:s1], colors[:, s0:s1], params[:, s0:s1], halves[:, s0:s1])
            color, glow = materials.SHADERS[name](surface, self.textures)
            colors_out[:, a:b] = color
            if glow is not None:
                glow_out[a:b] = glow
        return visible, colors_out, lit, glow_out

    def _light(self, shown, counts, R, coef, face, local, sun, up):
        """Return ambient + Lambert light per visible pixel from its surface normal (camera frame)."""
        # Box faces: a table of the light of each primitive's six faces (normal +-R[:, k]), read per pixel.
        normals = np.concatenate([-R, R], axis=2)[:, :, [0, 3, 1, 4, 2, 5]]      # (S, 3, 6): face 2k + positive
        table = AMBIENT * (0.85 + 0.15 * np.einsum('j,sjf->sf', up, normals)) \
            + DIFFUSE * np.maximum(np.einsum('j,sjf->sf', sun, normals), 0.0)
        sid = np.repeat(np.arange(len(shown), dtype=np.int32), counts)
        value = np.take(table.astype(np.float32).ravel(), sid * 6 + face)
        shapes = np.array([p.shape for p in shown], dtype=np.int8)
        curved = np.flatnonzero(np.take(shapes, sid) != BOX)
        if curved.size:
            # Cylinders and spheres: the normal from the hit point in the primitive's frame, rotated by the
            # per-pixel rotation rows already expanded in ``coef`` (coef[3 j + k] = R[j, k]).
            owner = np.take(sid, curved)
            x, y, z = (np.take(v, curved) for v in local)
            halves = np.array([p.half for p in shown], dtype=np.float32)
            inv_r = 1.0 / np.take(halves[:, 0], owner)
            cylinder = np.take(shapes, owner) == CYLINDER
            cap = (cylinder & (np.abs(z) > np.take(halves[:, 2], owner) - 1e-3)).astype(np.float32)
            wall = 1.0 - cap
            sphere = (~cylinder).astype(np.float32)
            n_local = (x * inv_r * wall, y * inv_r * wall, z * inv_r * sphere + np.sign(z) * cap)
            rot = [np.take(coef[m], curved) for m in range(9)]
            n_cam = [rot[3 * j] * n_local[0] + rot[3 * j + 1] * n_local[1] + rot[3 * j + 2] * n_local[2]
                     for j in range(3)]
            lit = sum(float(sun[j]) * n_cam[j] for j in range(3))
            sky = sum(float(up[j]) * n_cam[j] for j in range(3))
            value[curved] = AMBIENT * (0.85 + 0.15 * sky) + DIFFUSE * np.maximum(lit, 0.0)
        return value

    def _shade_ground(self, drive, surface, primitives, T_cam_from_world, albedo, light, sun, up):
        """Shade the ground under the horizon (rows ``surface.r0:``), with the vehicles' sun shadows."""
        if surface is None:
            return
        r0 = surface.r0
        ground_albedo(drive.road, drive.look, self.textures, surface.x, surface.y, surface.d, surface.t,
                      surface.code, out=albedo[:, r0:])
        shade = light[r0:]
        shade[...] = AMBIENT + DIFFUSE * max(float(up @ sun), 0.0)
        if not drive.look.night:
            self._vehicle_shadows(drive, primitives, T_cam_from_world, surface, shade)

    def _vehicle_shadows(self, drive, primitives, T_cam_from_world, surface, shade):
        """Darken the road where a vehicle blocks the sun (its box footprint swept along the sun direction)."""
        sun = drive.look.sun_world
        reach = 1.0 / max(math.tan(drive.look.sun_elevation), 0.3)
        away = -sun[:2] / max(math.hypot(sun[0], sun[1]), 1e-6)
        r0 = surface.r0
        for T, half, height in _vehicle_footprints(primitives).values():
            ahead = T_cam_from_world[2, :3] @ T[:3, 3] + T_cam_from_world[2, 3]
            if not -10.0 < ahead < SHADOW_RANGE:
                continue            # behind the camera, or so far that the shadow is a few pixels of dark road
            sweep = away * height * reach
            corners = np.array([[sx * half[0], sy * half[1], 0.0] for sx in (-1, 1) for sy in (-1, 1)])
            corners = corners @ T[:3, :3].T + T[:3, 3]
            corners = np.concatenate([corners, corners + np.array([sweep[0], sweep[1], 0.0])])
            block = self.grid.block(corners @ T_cam_from_world[:3, :3].T + T_cam_from_world[:3, 3])
            if block is None or block[1] <= r0:
                continue
            b0, b1, c0, c1 = max(block[0], r0) - r0, block[1] - r0, block[2], block[3]
            R = T[:3, :3]
            px, py = surface.x[b0:b1, c0:c1] - T[0, 3], surface.y[b0:b1, c0:c1] - T[1, 3]
            lx, ly = R[0, 0] * px + R[1, 0] * py, R[0, 1] * px + R[1, 1] * py
            vx = R[0, 0] * sweep[0] + R[1, 0] * sweep[1]
            vy = R[0, 1] * sweep[0] + R[1, 1] * sweep[1]
            # In the footprint swept along the sweep vector: the lambdas in [0, 1] that bring the point inside
            # along x and along y must overlap.
            low, high = np.zeros(lx.shape, dtype=np.float32), np.ones(lx.shape, dtype=np.float32)
            for coord, step, size in ((lx, vx, half[0]), (ly, vy, half[1])):
                if abs(step) < 1e-6:
                    high = np.where(np.abs(coord) <= size, high, np.float32(-1.0))
                    continue
                a, b = (coord - size) / step, (coord + size) / step
                low = np.maximum(low, np.minimum(a, b))
                high = np.minimum(high, np.maximum(a, b))
            inside = low <= high
            # Right under the body the shade is deepest (no sky light either).
            under = (np.abs(lx) <= half[0]) & (np.abs(ly) <= half[1])
            target = shade[b0:b1, c0:c1]
            darkest = np.where(under, np.float32(AMBIENT * 0.45), np.float32(AMBIENT * 0.9))
            np.minimum(target, np.where(inside | under, darkest, target), out=target)

    def _sky(self, albedo, light, sky, up, sun):
        pix = np.flatnonzero(sky)
        if pix.size == 0:
            return
        light.ravel()[pix] = 1.0
        xu, yv, inv_norm = (np.take(a, pix) for a in (self.xu_flat, self.yv_flat, self.inv_norm_flat))
        up, sun = up.astype(np.float32), sun.astype(np.float32)
        mix = np.sqrt(np.clip((up[0] * xu + up[1] * yv + up[2]) * inv_norm, 0.0, 1.0))
        glare = np.clip((sun[0] * xu + sun[1] * yv + sun[2]) * inv_norm, 0.0, 1.0) ** 24 * np.float32(0.25)
        flat = albedo.reshape(3, -1)
        for c in range(3):
            flat[c][pix] = SKY_HORIZON[c] + (SKY_ZENITH[c] - SKY_HORIZON[c]) * mix + glare


def _vehicle_footprints(primitives):
    """Return {instance: (T_world_from_thing, (half length, half width), height)} of the vehicles."""
    out = {}
    for prim in primitives:
        if prim.kind != VEHICLE or prim.shape != BOX:
            continue
        R, o = prim.T_thing[:3, :3], prim.T_thing[:3, 3]
        c, half = R.T @ (prim.T_world[:3, 3] - o), prim.half
        hl, hw, top = abs(c[0]) + half[0], abs(c[1]) + half[1], c[2] + half[2]
        if prim.instance in out:
            T, (hl0, hw0), top0 = out[prim.instance]
            hl, hw, top = max(hl, hl0), max(hw, hw0), max(top, top0)
        out[prim.instance] = (prim.T_thing, (hl, hw), top)
    return out
