"""
Vectorised ray casting of boxes, cylinders, spheres and the road surface for a grid of rays from one origin.

Two grids share one interface: ``PinholeGrid`` (camera pixels; the ray parameter is the z depth because every
direction has z = 1) and ``SphericalGrid`` (lidar / radar beams; unit directions, so the parameter is the range).
Both have separable directions, so ``n . d`` over a block of rays is one broadcast of a row vector and a column
vector. Each primitive is cast only over the block of rays its projected bounds cover, a box only through its
(at most three) faces that face the origin, and in the camera only inside each face's projected polygon (row
spans). The z-buffer is updated with arithmetic (minimum, multiply by the hit mask) rather than masked writes,
which numpy executes several times faster.
"""

import dataclasses
import math

import numpy as np

from rcdepth_ros.data.synthetic.scene import BOX, CYLINDER, rigid_inverse, SPHERE

NO_HIT = -1
GROUND = -2
ROAD, SIDEWALK, KERB = 0, 1, 2
NEAR = 0.05
# Camera primitives whose block is at most this many pixels are cast together in one vectorised batch.
SMALL_AREA = 1500
FAR_GROUND = 5000.0
_FAR = np.float32(np.inf)
# Ray parameters start at most at _START; candidates outside a face get _OUTSIDE added (both finite float32).
_START = 1e37
_OUTSIDE = np.float32(1e38)


class PinholeGrid:
    """Rays through the pixel centres of an undistorted pinhole camera (no skew); ray parameter = z depth."""

    spherical = False

    def __init__(self, K, width, height):
        """Precompute the normalised image coordinates of every column and row."""
        K = np.asarray(K, dtype=np.float64)
        self.fx, self.fy, self.cx, self.cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        self.shape = (int(height), int(width))
        self.xu = ((np.arange(width) - self.cx) / self.fx).astype(np.float32)
        self.yv = ((np.arange(height) - self.cy) / self.fy).astype(np.float32)
        self.columns = np.arange(width, dtype=np.float32)
        self.rows = np.arange(height, dtype=np.float32)

    def dot(self, n, r0, r1, c0, c1):
        """Return ``n . d`` (float32, rows r0:r1, columns c0:c1) for a direction vector ``n`` (3,)."""
        return (float(n[1]) * self.yv[r0:r1])[:, None] + (float(n[0]) * self.xu[c0:c1] + float(n[2]))[None, :]

    def _project(self, points):
        z = points[:, 2]
        return self.fx * points[:, 0] / z + self.cx, self.fy * points[:, 1] / z + self.cy

    def block(self, points):
        """Return ``(r0, r1, c0, c1)`` covering the rays that can hit the convex hull of ``points``, or None."""
        z = points[:, 2]
        front = z >= NEAR
        if not front.any():
            return None
        if not front.all():
            # Clip the hull at the near plane: keep the front points and the crossings of every segment.
            P, Q = points[front], points[~front]
            a = (NEAR - Q[:, None, 2]) / (P[None, :, 2] - Q[:, None, 2])
            X = Q[:, None, :] + a[..., None] * (P[None, :, :] - Q[:, None, :])
            points = np.concatenate([P, X.reshape(-1, 3)])
        u, v = self._project(points)
        return self._bounds(u.min(), u.max(), v.min(), v.max())

    def blocks(self, corners):
        """
        Return ``((r0, r1, c0, c1), valid)``: the blocks of rays that can hit each primitive.

        ``corners`` (P, 8, 3) are the primitives' box corners; the bounds are int arrays; ``valid`` is False where
        a primitive is wholly behind the near plane.
        """
        z = corners[..., 2]
        front = z >= NEAR
        valid = front.any(axis=1)
        zc = np.maximum(z, NEAR)
        u = self.fx * corners[..., 0] / zc + self.cx
        v = self.fy * corners[..., 1] / zc + self.cy
        h, w = self.shape
        c0 = np.clip(np.ceil(u.min(axis=1) - 1e-3), 0, w).astype(np.int64)
        c1 = np.clip(np.floor(u.max(axis=1) + 1e-3) + 1, 0, w).astype(np.int64)
        r0 = np.clip(np.ceil(v.min(axis=1) - 1e-3), 0, h).astype(np.int64)
        r1 = np.clip(np.floor(v.max(axis=1) + 1e-3) + 1, 0, h).astype(np.int64)
        for i in np.flatnonzero(valid & ~front.all(axis=1)):
            # Crossing the near plane: clip properly (rare, so one at a time).
            block = self.block(corners[i])
            if block is None:
                valid[i] = False
            else:
                r0[i], r1[i], c0[i], c1[i] = block
        return (r0, np.maximum(r1, r0), c0, np.maximum(c1, c0)), valid

    def rays(self, row, col):
        """Return the directions (dx, dy, dz) of the rays at ``row``, ``col`` (arrays)."""
        return np.take(self.xu, col), np.take(self.yv, row), 1.0

    def _bounds(self, umin, umax, vmin, vmax):
        h, w = self.shape
        c0, c1 = max(math.ceil(umin - 1e-3), 0), min(math.floor(umax + 1e-3) + 1, w)
        r0, r1 = max(math.ceil(vmin - 1e-3), 0), min(math.floor(vmax + 1e-3) + 1, h)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def silhouette(self, polygons):
        """
        Return ``(r0, r1, c0, c1, inside)`` for convex planar polygons whose union is convex, or None.

        Used for the visible faces of a box. Vertices are lists of 3 floats, in order.

        ``inside`` (r1 - r0, c1 - c0) bool marks the pixel centres inside the projection of the polygons clipped
        at the near plane: per row, the span between the leftmost and the rightmost edge crossing.
        """
        ua, va, ub, vb = [], [], [], []
        for corners in polygons:
            clipped = []
            n = len(corners)
            for k in range(n):
                a, b = corners[k], corners[(k + 1) % n]
                if a[2] >= NEAR:
                    clipped.append(a)
                if (a[2] >= NEAR) != (b[2] >= NEAR):
                    f = (NEAR - a[2]) / (b[2] - a[2])
                    clipped.append([a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), NEAR])
            if len(clipped) < 3:
                continue
            us = [self.fx * p[0] / p[2] + self.cx for p in clipped]
            vs = [self.fy * p[1] / p[2] + self.cy for p in clipped]
            ua += us
            va += vs
            ub += us[1:] + us[:1]
            vb += vs[1:] + vs[:1]
        if not ua:
            return None
        bounds = self._bounds(min(ua), max(ua), min(va), max(va))
        if bounds is None:
            return None
        r0, r1, c0, c1 = bounds
        inside = self.spans(*(np.array(x, dtype=np.float32) for x in (ua, va, ub, vb)), r0, r1, c0, c1)
        return r0, r1, c0, c1, inside

    def spans(self, ua, va, ub, vb, r0, r1, c0, c1):
        """
        Return the (r1 - r0, c1 - c0) mask of pixel centres inside the convex hull of some edges.

        Per row: between the leftmost and the rightmost crossing of the edges (ua, va) -> (ub, vb).
        """
        flat = va == vb
        slope = (ub - ua) / np.where(flat, 1.0, vb - va)
        lo = np.minimum(va, vb) - 1e-6 + flat * 1e9                  # horizontal edges never cross a row
        hi = np.maximum(va, vb) + 1e-6
        rows = self.rows[r0:r1, None]
        cross = ua + (rows - va) * slope
        outside = (rows < lo) | (rows > hi)
        left = (cross + outside * 1e9).min(axis=1)
        right = (cross - outside * 1e9).max(axis=1)
        cols = self.columns[None, c0:c1]
        return (cols >= (left - 1e-4)[:, None]) & (cols <= (right + 1e-4)[:, None])


class SphericalGrid:
    """
    Unit rays on an elevation x azimuth grid, sensor frame x forward, y left, z up; ray parameter = range.

    ``azimuths`` ascending (radians, positive to the left), within (-pi/2, pi/2); ``elevations`` ascending.
    """

    spherical = True

    def __init__(self, azimuths, elevations):
        """Precompute sines and cosines."""
        self.azimuths = np.asarray(azimuths, dtype=np.float64)
        self.elevations = np.asarray(elevations, dtype=np.float64)
        self.shape = (self.elevations.shape[0], self.azimuths.shape[0])
        self.ca = np.cos(self.azimuths).astype(np.float32)
        self.sa = np.sin(self.azimuths).astype(np.float32)
        self.ce = np.cos(self.elevations).astype(np.float32)
        self.se = np.sin(self.elevations).astype(np.float32)

    def dot(self, n, r0, r1, c0, c1):
        """Return ``n . d`` (float32) over rows r0:r1 and columns c0:c1."""
        horizontal = float(n[0]) * self.ca[c0:c1] + float(n[1]) * self.sa[c0:c1]
        return self.ce[r0:r1, None] * horizontal[None, :] + (float(n[2]) * self.se[r0:r1])[:, None]

    def block(self, points):
        """Return all rows and the azimuth columns that can hit the convex hull of ``points``, or None."""
        xy = points[:, :2]
        centre = xy.mean(axis=0)
        radius = np.sqrt(((xy - centre) ** 2).sum(axis=1)).max()
        h, w = self.shape
        if math.hypot(centre[0], centre[1]) <= radius + 1e-6:
            return 0, h, 0, w          # the hull surrounds the sensor's vertical axis: any azimuth
        az = np.arctan2(xy[:, 1], xy[:, 0])
        lo, hi = az.min(), az.max()
        if hi - lo > math.pi:          # straddles the rear seam: behind the sensor, outside the grid
            return None
        c0 = int(np.searchsorted(self.azimuths, lo - 1e-9, 'left'))
        c1 = int(np.searchsorted(self.azimuths, hi + 1e-9, 'right'))
        if c0 >= c1:
            return None
        return 0, h, c0, c1

    def blocks(self, corners):
        """
        Return ``((r0, r1, c0, c1), valid)``: the beams that can hit each primitive (corners (P, 8, 3)).

        Columns: the azimuth span of the corners (exact for a convex hull not around the vertical axis). Rows: a
        conservative elevation span from the corners' heights and the hull's nearest and farthest horizontal
        distance (bounded by the circle around its footprint).
        """
        h, w = self.shape
        xy = corners[..., :2]
        centre = xy.mean(axis=1)
        radius = np.sqrt(((xy - centre[:, None, :]) ** 2).sum(axis=2)).max(axis=1)
        distance = np.hypot(centre[:, 0], centre[:, 1])
        around = distance <= radius + 1e-6
        az = np.arctan2(xy[..., 1], xy[..., 0])
        lo, hi = az.min(axis=1), az.max(axis=1)
        valid = around | (hi - lo <= math.pi)
        c0 = np.where(around, 0, np.searchsorted(self.azimuths, lo - 1e-9, 'left'))
        c1 = np.where(around, w, np.searchsorted(self.azimuths, hi + 1e-9, 'right'))
        near = np.maximum(distance - radius, 1e-6)
        far = distance + radius
        z_low, z_high = corners[..., 2].min(axis=1), corners[..., 2].max(axis=1)
        el_low = np.arctan2(z_low, np.where(z_low < 0, near, far))
        el_high = np.arctan2(z_high, np.where(z_high > 0, near, far))
        el_low = np.where(around, -math.pi / 2, el_low)
        el_high = np.where(around, math.pi / 2, el_high)
        r0 = np.searchsorted(self.elevations, el_low - 1e-9, 'left')
        r1 = np.searchsorted(self.elevations, el_high + 1e-9, 'right')
        return (r0, np.maximum(r1, r0), c0, np.maximum(c1, c0)), valid

    def rays(self, row, col):
        """Return the unit directions (dx, dy, dz) of the rays at ``row``, ``col`` (arrays)."""
        ce = np.take(self.ce, row)
        return ce * np.take(self.ca, col), ce * np.take(self.sa, col), np.take(self.se, row)

    def directions(self):
        """Return the (H, W, 3) float32 unit ray directions."""
        d = np.empty(self.shape + (3,), dtype=np.float32)
        d[..., 0] = self.ce[:, None] * self.ca[None, :]
        d[..., 1] = self.ce[:, None] * self.sa[None, :]
        d[..., 2] = self.se[:, None]
        return d


@dataclasses.dataclass
class CastResult:
    """
    What a grid sees, per ray.

    Parameter ``t`` (inf = nothing), ``index`` (primitive, GROUND or NO_HIT), the ground code (ROAD,
    SIDEWALK, KERB), the box face (2 * axis + 1 on the positive side; 0 for curved primitives) and, on request,
    |cos| of the incidence angle.
    """

    t: np.ndarray
    index: np.ndarray
    ground: np.ndarray
    face: np.ndarray
    cosine: np.ndarray = None
    ground_surface: object = None


@dataclasses.dataclass
class GroundSurface:
    """The ground under rows ``r0:`` of a grid (every ray there points down): hit parameter, world x, y, road ``d``."""

    r0: int
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    d: np.ndarray
    code: np.ndarray


_BOX_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
# The 12 edges of a box as pairs of corner indices (corners differing in one sign).
_EDGE_A = np.array([i for bit in (1, 2, 4) for i in range(8) if not i & bit])
_EDGE_B = _EDGE_A ^ np.repeat([1, 2, 4], 4)


class Caster:
    """Z-buffered ray casting of one grid: the ground first, then primitives front to back."""

    def __init__(self, grid, T_grid_from_world, max_range=np.inf, want_cosine=False, min_pixels=0.0,
                 keep_ground=False):
        """
        Prepare the buffers for one cast.

        ``min_pixels`` (camera only) skips primitives whose largest extent covers fewer pixels than that
        (a level of detail: a lamp head or a sign plate far away). ``keep_ground`` keeps the ground hits of the
        rows below the horizon (world x, y, lateral offset) for shading, as ``CastResult.ground_surface``.
        """
        self.keep_ground = bool(keep_ground)
        self.ground_surface = None
        self.grid = grid
        self.min_pixels = float(min_pixels)
        self.T = np.asarray(T_grid_from_world, dtype=np.float64)
        self.max_range = float(max_range)
        h, w = grid.shape
        # Rays start at max_range so that anything farther fails the depth test; misses become inf at the end.
        self.t = np.full((h, w), min(self.max_range, _START), dtype=np.float32)
        self.index = np.full((h, w), NO_HIT, dtype=np.int32)
        self.ground = np.zeros((h, w), dtype=np.int8)
        self.face = np.zeros((h, w), dtype=np.int8)
        self.cosine = np.zeros((h, w), dtype=np.float32) if want_cosine else None
        self.origin_world = rigid_inverse(self.T)[:3, 3]

    def run(self, road, primitives):
        """
        Cast the road surface and ``primitives``; return a CastResult.

        Per-primitive set-up (frames in the grid, culling, level of detail, box faces and projected corners) is
        vectorised over all primitives; the loop then only rasterises.
        """
        if road is not None:
            self.cast_ground(road)
        if primitives:
            self._cast_primitives(primitives)
        self.t[self.index == NO_HIT] = np.inf
        return CastResult(self.t, self.index, self.ground, self.face, self.cosine, self.ground_surface)

    def _cast_primitives(self, primitives):
        T = self.T @ np.stack([p.T_world for p in primitives])
        A, c = T[:, :3, :3], T[:, :3, 3]
        half = np.stack([p.half for p in primitives])
        shapes = np.array([p.shape for p in primitives], dtype=np.int8)
        reach = np.sqrt((half * half).sum(axis=1))
        distance = np.sqrt((c * c).sum(axis=1))
        # The grid looks along +z (camera) or +x (spherical grids): anything wholly behind is skipped.
        ahead = c[:, 0 if self.grid.spherical else 2]
        keep = (distance - reach <= self.max_range) & (ahead + reach >= 0.0)
        if not self.grid.spherical and self.min_pixels > 0:
            keep &= ~((ahead > reach) & (2.0 * half.max(axis=1) * self.grid.fx < self.min_pixels * (ahead - reach)))
        corners = c[:, None, :] + np.einsum('pjk,psk->psj', A, _BOX_SIGNS[None] * half[:, None, :])
        bounds, valid = self.grid.blocks(corners)
        r0, r1, c0, c1 = bounds
        area = (r1 - r0) * (c1 - c0)
        keep &= valid & (area > 0)
        if self.grid.spherical:
            batch = keep
        else:
            # Small primitives are cast together (their cost is numpy's per-call overhead, not pixels).
            batch = keep & (area <= SMALL_AREA) & (corners[..., 2] >= NEAR).all(axis=1)
        if batch.any():
            self._cast_batch(np.flatnonzero(batch), A, c, half, shapes, bounds)
        single = np.flatnonzero(keep & ~batch)
        if single.size == 0:
            return
        order = single[np.lexsort((single, (distance - reach)[single]))]
        fast = (shapes == BOX) & (corners[..., 2] >= NEAR).all(axis=1)
        z = np.maximum(corners[..., 2], NEAR)
        u = self.grid.fx * corners[..., 0] / z + self.grid.cx
        v = self.grid.fy * corners[..., 1] / z + self.grid.cy
        along = np.einsum('pjk,pj->pk', A, c)            # A_k . c: the origin sits at -along in box axes
        facing = np.abs(along) > half
        sign = -np.sign(along)
        cst = (half - np.abs(along)).tolist()
        normals = (A.transpose(0, 2, 1) * sign[:, :, None]).tolist()
        for i in order.tolist():
            prim = primitives[i]
            if fast[i]:
                self._cast_box_projected(i, u[i], v[i], normals[i], cst[i], facing[i], sign[i])
            elif prim.shape == BOX:
                self.cast_box(i, prim, A[i], c[i])
            elif prim.shape == CYLINDER:
                self.cast_cylinder(i, prim, A[i], c[i])
            else:
                self.cast_sphere(i, prim, A[i], c[i])

    def _cast_batch(self, ids, A, c, half, shapes, bounds):
        """
        Cast many primitives at once.

        Every (ray, primitive) pair of their blocks becomes one candidate, the intersections are vectorised over
        all candidates, and the nearest per ray wins (``np.minimum.at``).
        """
        r0, r1, c0, c1 = (b[ids] for b in bounds)
        width = c1 - c0
        sizes = (r1 - r0) * width
        owner = np.repeat(np.arange(ids.size), sizes)
        k = np.arange(owner.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        w = np.take(width, owner)
        along_row = k // w
        row = np.take(r0, owner) + along_row
        col = np.take(c0, owner) + (k - along_row * w)
        d = self.grid.rays(row, col)
        Ai = A[ids]
        o_prim = -np.einsum('pjk,pj->pk', Ai, c[ids])          # the origin in each primitive's frame
        dl = [sum(np.take(Ai[:, j, m], owner) * d[j] for j in range(3)) for m in range(3)]
        o = [np.take(o_prim[:, m], owner) for m in range(3)]
        h = [np.take(half[ids, m], owner) for m in range(3)]
        kinds = np.take(shapes[ids], owner)
        n = owner.size
        t = np.full(n, np.inf)
        face = np.zeros(n, dtype=np.int8)
        cosine = np.zeros(n)
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            sel = np.flatnonzero(kinds == BOX)
            if sel.size:
                _slab(sel, dl, o, h, t, face, cosine)
            sel = np.flatnonzero(kinds == CYLINDER)
            if sel.size:
                _cylinder(sel, dl, o, h, t, cosine)
            sel = np.flatnonzero(kinds == SPHERE)
            if sel.size:
                _sphere(sel, dl, o, h, t, cosine)
        hit = np.flatnonzero(t < np.inf)
        if hit.size == 0:
            return
        pix = row[hit] * self.grid.shape[1] + col[hit]
        th = t[hit].astype(np.float32)
        flat_t = self.t.ravel()
        np.minimum.at(flat_t, pix, th)
        win = th == flat_t[pix]
        pix, hit = pix[win], hit[win]
        self.index.ravel()[pix] = ids[owner[hit]]
        self.face.ravel()[pix] = face[hit]
        if self.cosine is not None:
            self.cosine.ravel()[pix] = cosine[hit]

    def _cast_box_projected(self, index, u, v, normals, cst, facing, sign):
        """Cast a box wholly in front of the camera: its silhouette is the hull of its projected corners."""
        bounds = self.grid._bounds(float(u.min()), float(u.max()), float(v.min()), float(v.max()))
        if bounds is None:
            return
        r0, r1, c0, c1 = bounds
        inside = self.grid.spans(u[_EDGE_A], v[_EDGE_A], u[_EDGE_B], v[_EDGE_B], r0, r1, c0, c1)
        t = face_id = None
        with np.errstate(divide='ignore', invalid='ignore'):
            for k in range(3):
                if not facing[k]:
                    continue
                face = 2 * k + (sign[k] > 0)
                tk = np.float32(cst[k]) / self.grid.dot(normals[k], r0, r1, c0, c1)
                if t is None:
                    t, face_id = tk, np.full(tk.shape, face, dtype=np.int8)
                else:
                    face_id += (tk > t) * (np.int8(face) - face_id)
                    t = np.maximum(t, tk)
        if t is None:
            return
        t += ~inside * _OUTSIDE
        self._update(r0, r1, c0, c1, t, index, face_id)

    def _update(self, r0, r1, c0, c1, t, index, face=0, cosine=None):
        """Z-buffer a block of candidate ray parameters ``t`` (huge where the primitive is missed)."""
        tb = self.t[r0:r1, c0:c1]
        hit = t < tb
        np.minimum(tb, t, out=tb)
        ib = self.index[r0:r1, c0:c1]
        ib += hit * (index - ib)
        fb = self.face[r0:r1, c0:c1]
        fb += hit * (np.int8(face) - fb)
        if self.cosine is not None:
            cb = self.cosine[r0:r1, c0:c1]
            cb += hit * (cosine - cb)

    # -- ground -------------------------------------------------------------------------------------------------
    def cast_ground(self, road):
        """Intersect every ray with the asphalt (z = 0), the kerb faces and the raised sidewalk / verge."""
        grid = self.grid
        h, w = grid.shape
        R = self.T[:3, :3]                       # rows: world axes expressed in the grid frame
        oz = float(self.origin_world[2])
        up = grid.dot(R[:, 2], 0, h, 0, w)
        rows = np.nonzero((up < -1e-6).any(axis=1))[0]
        if rows.size == 0 or oz <= road.kerb_height:
            return
        r0 = int(rows[0])
        up = up[r0:]
        t_road = oz / np.maximum(-up, np.float32(1e-6))
        xd = grid.dot(R[:, 0], r0, h, 0, w)
        yd = grid.dot(R[:, 1], r0, h, 0, w)
        ox, oy = float(self.origin_world[0]), float(self.origin_world[1])
        x0 = ox + t_road * xd
        y0 = oy + t_road * yd
        d0 = road.lateral(x0, y0)
        # The raised plane z = kerb_height is met at a fixed fraction of the asphalt hit's parameter.
        alpha = np.float32((oz - road.kerb_height) / oz)
        d1 = road.lateral(ox + alpha * (x0 - ox), oy + alpha * (y0 - oy))
        left, right = road.half_width_left, -road.half_width_right
        walk = (d1 > left) | (d1 < right)
        on_road = ~walk & (d0 <= left) & (d0 >= right)
        kerb = ~(walk | on_road)
        t = t_road * (np.float32(1.0) - walk * (np.float32(1.0) - alpha))
        code = (walk * np.int8(SIDEWALK) + kerb * np.int8(KERB)).astype(np.int8)
        kr, kc = np.nonzero(kerb & (t_road < FAR_GROUND))
        if kr.size:
            target = np.where(d0[kr, kc] > 0, left, right)
            tk = road.crossing(ox, oy, xd[kr, kc], yd[kr, kc], target)
            t[kr, kc] = np.clip(tk, alpha * t_road[kr, kc], t_road[kr, kc])
        hit = t <= min(self.max_range, FAR_GROUND)
        with np.errstate(divide='ignore'):
            self.t[r0:] = np.minimum(self.t[r0:], t / hit)
        ib = self.index[r0:]
        ib += hit * (GROUND - ib)
        self.ground[r0:] = code * hit
        if self.keep_ground:
            self.ground_surface = GroundSurface(r0, t, ox + t * xd, oy + t * yd, d0 + walk * (d1 - d0), code)
        if self.cosine is not None:
            # Asphalt and sidewalk face up; kerb faces are vertical (their cosine is the horizontal component).
            horiz = np.sqrt(np.maximum(1.0 - up * up, 0.0))
            self.cosine[r0:] = hit * (-up + kerb * (horiz + up))

    # -- boxes --------------------------------------------------------------------------------------------------
    def cast_box(self, index, prim, A, c):
        """
        Cast an oriented box through its faces that face the grid origin.

        One pass over the box's silhouette: a ray inside it enters the box through the front face with the
        largest plane parameter (slab method), which also gives the face. Camera only (spherical grids batch).
        """
        half = prim.half.tolist()
        axes = A.T.tolist()                      # axes[k]: the box's k-th axis in the grid frame
        cl = c.tolist()
        faces = []
        for k in range(3):
            ak = axes[k]
            origin_k = -(ak[0] * cl[0] + ak[1] * cl[1] + ak[2] * cl[2])
            if abs(origin_k) <= half[k]:
                continue
            sign = 1.0 if origin_k > 0 else -1.0
            i, j = (k + 1) % 3, (k + 2) % 3
            n = [sign * ak[0], sign * ak[1], sign * ak[2]]
            p = [cl[m] + sign * half[k] * ak[m] for m in range(3)]
            ei = [half[i] * axes[i][m] for m in range(3)]
            ej = [half[j] * axes[j][m] for m in range(3)]
            corners = [[p[m] - ei[m] - ej[m] for m in range(3)], [p[m] - ei[m] + ej[m] for m in range(3)],
                       [p[m] + ei[m] + ej[m] for m in range(3)], [p[m] + ei[m] - ej[m] for m in range(3)]]
            cst = n[0] * p[0] + n[1] * p[1] + n[2] * p[2]
            faces.append((2 * k + (sign > 0), n, cst, corners, i, j))
        if not faces:
            return
        shape = self.grid.silhouette([f[3] for f in faces])
        if shape is None:
            return
        r0, r1, c0, c1, inside = shape
        t = face_id = None
        with np.errstate(divide='ignore', invalid='ignore'):
            for face, n, cst, corners, i, j in faces:
                tk = np.float32(cst) / self.grid.dot(n, r0, r1, c0, c1)
                if t is None:
                    t, face_id = tk, np.full(tk.shape, face, dtype=np.int8)
                else:
                    later = tk > t
                    face_id += later * (np.int8(face) - face_id)
                    t = np.maximum(t, tk)
        # Outside the silhouette, t is pushed beyond any range.
        t += ~inside * _OUTSIDE
        self._update(r0, r1, c0, c1, t, index, face_id)

    # -- cylinders and spheres ----------------------------------------------------------------------------------
    def _local_rays(self, A, c, half):
        blk = self.grid.block(c + (_BOX_SIGNS * half) @ A.T)
        if blk is None:
            return None
        r0, r1, c0, c1 = blk
        # float64: the quadratics of curved surfaces lose digits in float32 at long range.
        d = [self.grid.dot(A[:, k], r0, r1, c0, c1).astype(np.float64) for k in range(3)]
        return blk, -(A.T @ c), d

    def cast_cylinder(self, index, prim, A, c):
        """Cast a capped cylinder whose axis is the primitive's local z."""
        rays = self._local_rays(A, c, prim.half)
        if rays is None:
            return
        (r0, r1, c0, c1), o, (dx, dy, dz) = rays
        radius, hz = float(prim.half[0]), float(prim.half[2])
        ox, oy, oz = (float(v) for v in o)
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            a = dx * dx + dy * dy
            t = np.full(a.shape, _FAR, dtype=np.float32)
            cc = ox * ox + oy * oy - radius * radius
            if cc > 0:
                b = ox * dx + oy * dy
                disc = b * b - a * cc
                ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
                ok = (disc >= 0) & (ts > 0) & (np.abs(oz + ts * dz) <= hz)
                t = np.where(ok, ts, t)
            if abs(oz) > hz:
                tc = ((hz if oz > 0 else -hz) - oz) / dz
                xc, yc = ox + tc * dx, oy + tc * dy
                ok = (tc > 0) & (xc * xc + yc * yc <= radius * radius)
                t = np.minimum(t, np.where(ok, tc, _FAR))
            cosine = None
            if self.cosine is not None:
                x, y, z = ox + t * dx, oy + t * dy, oz + t * dz
                side = np.abs(z) < hz - 1e-4
                norm = np.sqrt(a + dz * dz)
                cosine = np.abs(np.where(side, (x * dx + y * dy) / radius, np.sign(z) * dz)) / norm
        self._update(r0, r1, c0, c1, t.astype(np.float32), index, 0, cosine)

    def cast_sphere(self, index, prim, A, c):
        """Cast a sphere."""
        rays = self._local_rays(A, c, prim.half)
        if rays is None:
            return
        (r0, r1, c0, c1), o, (dx, dy, dz) = rays
        radius = float(prim.half[0])
        ox, oy, oz = (float(v) for v in o)
        cc = ox * ox + oy * oy + oz * oz - radius * radius
        if cc <= 0:
            return
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            a = dx * dx + dy * dy + dz * dz
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - a * cc
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            t = np.where((disc >= 0) & (t > 0), t, _FAR).astype(np.float32)
            cosine = None
            if self.cosine is not None:
                cosine = np.sqrt(np.maximum(disc, 0.0)) / (radius * np.sqrt(a))
        self._update(r0, r1, c0, c1, t, index, 0, cosine)


def _slab(sel, dl, o, h, t, face, cosine):
    """Ray / box intersection (slab method) for candidates ``sel``; writes t, entry face and |cos|."""
    d = [np.take(x, sel) for x in dl]
    oo = [np.take(x, sel) for x in o]
    hh = [np.take(x, sel) for x in h]
    near, far = [], []
    for m in range(3):
        inv = 1.0 / d[m]
        a = (-hh[m] - oo[m]) * inv
        b = (hh[m] - oo[m]) * inv
        near.append(np.minimum(a, b))
        far.append(np.maximum(a, b))
    t_near = np.maximum(np.maximum(near[0], near[1]), near[2])
    t_far = np.minimum(np.minimum(far[0], far[1]), far[2])
    ok = (t_near <= t_far) & (t_near > 0)
    axis = np.where(t_near == near[0], 0, np.where(t_near == near[1], 1, 2))
    d_axis = np.where(axis == 0, d[0], np.where(axis == 1, d[1], d[2]))
    t[sel] = np.where(ok, t_near, np.inf)
    face[sel] = 2 * axis + (d_axis < 0)
    cosine[sel] = np.abs(d_axis)


def _cylinder(sel, dl, o, h, t, cosine):
    """Ray / capped cylinder (axis local z) intersection for candidates ``sel``."""
    dx, dy, dz = (np.take(x, sel) for x in dl)
    ox, oy, oz = (np.take(x, sel) for x in o)
    radius, hz = np.take(h[0], sel), np.take(h[2], sel)
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    cc = ox * ox + oy * oy - radius * radius
    disc = b * b - a * cc
    ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    side = (cc > 0) & (disc >= 0) & (ts > 0) & (np.abs(oz + ts * dz) <= hz)
    zc = np.where(oz > 0, hz, -hz)
    tc = (zc - oz) / dz
    xc, yc = ox + tc * dx, oy + tc * dy
    cap = (np.abs(oz) > hz) & (tc > 0) & (xc * xc + yc * yc <= radius * radius)
    t_side = np.where(side, ts, np.inf)
    t_cap = np.where(cap, tc, np.inf)
    t[sel] = np.minimum(t_side, t_cap)
    x, y = ox + ts * dx, oy + ts * dy
    cosine[sel] = np.where(t_side <= t_cap, np.abs(x * dx + y * dy) / radius, np.abs(dz))


def _sphere(sel, dl, o, h, t, cosine):
    """Ray / sphere intersection for candidates ``sel``."""
    dx, dy, dz = (np.take(x, sel) for x in dl)
    ox, oy, oz = (np.take(x, sel) for x in o)
    radius = np.take(h[0], sel)
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    cc = ox * ox + oy * oy + oz * oz - radius * radius
    disc = b * b - a * cc
    root = np.sqrt(np.maximum(disc, 0.0))
    ts = (-b - root) / a
    t[sel] = np.where((cc > 0) & (disc >= 0) & (ts > 0), ts, np.inf)
    cosine[sel] = root / (radius * np.sqrt(a))
