"""
Radar-anchored test-time refinement: FSNet's post-optimisation with the radar returns as the sparse metric points.

FSNet (Algorithm 2 of its paper) corrects a network's dense depth with sparse metric points: the image is cut into
superpixels by a SLIC that also uses the predicted depth, each segment gets one log-scale change fitted to the
points inside it (the inner problem), and one linear system ties the segments together and to the network's own
depth (the outer problem; its weights lambda_0 ties, lambda_1 points, lambda_2 prior). Here the points are the radar
returns, which differ from visual-odometry points in ways the stage is built for:

* Elevation is poor: a return may belong to any row of its image column within the beam's elevation spread
  (``elevation_spread_deg``, a fixed pixel half-window ``fy * tan(spread)`` because the spread is an angle). Each
  return is placed on the row of that window whose predicted depth agrees best with its range, with a small
  penalty for leaving the measured row (``row_penalty``).
* Ghosts and multipath: a multipath return travels a longer path than the direct one, so it always lies BEYOND a
  real surface. The per-segment fit is therefore a redescending (Tukey) robust mean of the log range ratios with an
  asymmetric cut-off: a return farther than the segment's depth by more than ``far_cutoff`` (log ratio) has no
  weight at all, a return nearer by up to ``near_cutoff`` keeps weight. The mean is computed by a few
  reweighted steps started at the network's own depth, so a return's weight is its agreement with the prediction,
  times an RCS weight (``rcs_weight``; RCS normalised within the frame, so the sensor's unit does not matter). A
  segment's pull grows with the square of the summed weight of its returns and saturates (``support_saturation``:
  the support at which half the full pull ``lambda_radar`` is reached), so a segment moves on agreeing returns,
  not on one: a single return moves its segment's log depth by at most ``a t / (a + lambda_prior)`` (``t`` its
  log ratio, ``a`` its pull), every change is clipped to ``max_log_scale``, and a return beyond ``far_cutoff``
  changes nothing. (A Cauchy loss, whose weights never reach zero, let the thousands of far ghost returns of an
  imaging radar add up; see docs/refinement.md.)
* Ties: only touching segments are tied (FSNet ties all pairs), weakened across a depth step (``tie_depth_scale``)
  so a car does not drag the wall behind it; ``lambda_prior`` keeps every segment near the network's depth.

Cost: everything after the forward pass runs on maps reduced by an integer stride to about ``work_pixels`` pixels
(depth averaged, colour sampled; the 3D SLIC on colour, log depth and position, the association, the fits); only
the final per-pixel scale is applied at model resolution (each pixel takes its working pixel's factor).
Everything is torch on the depth map's device.

``RadarRefiner(settings).refine(depth, image, radar_xyz, K, rcs=None, uncertainty=None)`` returns a
``Refinement``: the refined depth (and, where the model has a bin distribution, its standard deviation scaled by
the same per-pixel factor, since rescaling a segment rescales its whole distribution) or the inputs unchanged, with
a status, the counts of returns dropped per reason and the time spent. Returns with NaN coordinates, behind the
camera (or closer than ``min_depth``), beyond ``max_depth`` or outside the image are dropped and counted; with no
usable return, or when the time budget (``budget_ms``; 0 disables the stage) runs out, the depth stays unrefined.
"""

import dataclasses
import math
import time
import typing

import numpy as np
from rcdepth_ros.errors import ConfigError
import torch
import torch.nn.functional as F

REFINE_MODES = ('none', 'radar')
# Frame outcomes, each a diagnostics counter of the node.
STATUSES = ('refined', 'disabled', 'no_returns', 'no_valid_returns', 'over_budget')
# Per-return drop reasons, each a diagnostics counter of the node.
DROP_REASONS = ('nonfinite', 'behind_camera', 'out_of_range', 'outside_image')
_EPS = 1e-6


@dataclasses.dataclass
class RefineSettings:
    """
    The stage's parameters (see the module docstring; docs/refinement.md explains each and how it was chosen).

    ``mode``: ``none`` or ``radar``. ``budget_ms``: per-frame time budget in milliseconds; 0 disables the stage,
    ``inf`` never gives up (offline evaluation, so metrics do not depend on the machine's load).
    """

    mode: str = 'none'
    budget_ms: float = 30.0
    segments: int = 300
    work_pixels: int = 10000
    slic_iterations: int = 2
    colour_weight: float = 1.0
    depth_weight: float = 4.0
    compactness: float = 1.0
    elevation_spread_deg: float = 2.0
    row_penalty: float = 0.2
    near_cutoff: float = 1.5
    far_cutoff: float = 0.15
    robust_iterations: int = 3
    rcs_weight: float = 0.0
    support_saturation: float = 4.0
    lambda_ties: float = 1.0
    lambda_radar: float = 64.0
    lambda_prior: float = 1.0
    tie_depth_scale: float = 0.3
    max_log_scale: float = 0.5
    min_depth: float = 1.0
    max_depth: float = 100.0
    threads: int = 1

    def __post_init__(self):
        """Check every value; raise ConfigError naming the first bad one."""
        if self.mode not in REFINE_MODES:
            raise ConfigError(f"refine: mode must be one of {', '.join(REFINE_MODES)}, got {self.mode!r}")
        checks = (
            ('budget_ms', self.budget_ms >= 0, '>= 0 (0 disables the stage, inf never gives up)'),
            ('segments', 4 <= self.segments <= 2000, 'in [4, 2000]'),
            ('work_pixels', 256 <= self.work_pixels <= 10 ** 6, 'in [256, 1e6]'),
            ('slic_iterations', 0 <= self.slic_iterations <= 20, 'in [0, 20]'),
            ('colour_weight', self.colour_weight >= 0, '>= 0'),
            ('depth_weight', self.depth_weight >= 0, '>= 0'),
            ('compactness', self.compactness > 0, '> 0'),
            ('elevation_spread_deg', 0 <= self.elevation_spread_deg <= 30, 'in [0, 30] degrees'),
            ('row_penalty', self.row_penalty >= 0, '>= 0'),
            ('near_cutoff', self.near_cutoff > 0, '> 0'),
            ('far_cutoff', self.far_cutoff > 0, '> 0'),
            ('robust_iterations', 1 <= self.robust_iterations <= 20, 'in [1, 20]'),
            ('rcs_weight', 0 <= self.rcs_weight <= 1, 'in [0, 1]'),
            ('support_saturation', self.support_saturation >= 0, '>= 0'),
            ('lambda_ties', self.lambda_ties >= 0, '>= 0'),
            ('lambda_radar', self.lambda_radar >= 0, '>= 0'),
            ('lambda_prior', self.lambda_prior > 0, '> 0 (the network depth is the prior)'),
            ('tie_depth_scale', self.tie_depth_scale > 0, '> 0'),
            ('max_log_scale', self.max_log_scale >= 0, '>= 0'),
            ('min_depth', self.min_depth > 0, '> 0'),
            ('max_depth', self.max_depth > self.min_depth, '> min_depth'),
            ('threads', 0 <= self.threads <= 256, "in [0, 256] (0: torch's own setting)"),
        )
        for name, ok, text in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and math.isnan(value)):
                raise ConfigError(f'refine: {name} must be {text}, got {value!r}')

    @property
    def active(self):
        """Return True when the stage runs (mode ``radar`` and a non-zero budget)."""
        return self.mode == 'radar' and self.budget_ms > 0

    def to_dict(self):
        """Return the settings as JSON-ready plain data (an unlimited budget as the string 'inf')."""
        data = dataclasses.asdict(self)
        if not math.isfinite(data['budget_ms']):
            data['budget_ms'] = 'inf'
        return data

    def replace(self, **changes):
        """Return a copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, mapping):
        """Build settings from a plain mapping (YAML, command line), naming an unknown key or a bad value."""
        mapping = dict(mapping or {})
        defaults = cls()
        unknown = sorted(set(mapping) - set(dataclasses.asdict(defaults)))
        if unknown:
            raise ConfigError(f'refine: unknown setting(s) {unknown}; known: {sorted(dataclasses.asdict(defaults))}')
        values = {}
        for key, value in mapping.items():
            kind = type(getattr(defaults, key))
            if kind is int and isinstance(value, float) and value.is_integer():
                value = int(value)
            if kind is not str and isinstance(value, bool):
                raise ConfigError(f'refine: {key} must be a number, got {value!r}')
            try:
                values[key] = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f'refine: {key} must be a {kind.__name__}, got {value!r}') from None
        return cls(**values)


@dataclasses.dataclass
class Refinement:
    """
    One frame's outcome.

    ``depth`` / ``uncertainty``: tensors at the input's size (the inputs themselves when not refined); ``status`` one
    of STATUSES; ``dropped`` returns per DROP_REASONS; ``returns`` given and ``used``; ``segments`` and how many had
    radar support; ``time_ms``; ``scale`` the per-pixel factor (None unless refined).
    """

    depth: torch.Tensor
    uncertainty: typing.Optional[torch.Tensor]
    status: str
    dropped: typing.Dict[str, int]
    returns: int = 0
    used: int = 0
    segments: int = 0
    supported_segments: int = 0
    time_ms: float = 0.0
    scale: typing.Optional[torch.Tensor] = None

    @property
    def refined(self):
        """Return True when the depth was changed by the stage."""
        return self.status == 'refined'

    def report(self):
        """Return the plain-data summary (what the engine and the node's diagnostics carry)."""
        return {'status': self.status, 'time_ms': float(self.time_ms), 'returns': int(self.returns),
                'used': int(self.used), 'dropped': dict(self.dropped), 'segments': int(self.segments),
                'supported_segments': int(self.supported_segments)}


class _OverBudget(Exception):
    pass


class _Clock:
    """Elapsed time against the budget; on CUDA it synchronises before reading the clock."""

    def __init__(self, budget_ms, device):
        self.start = time.perf_counter()
        self.budget_ms = float(budget_ms)
        self.device = device if device.type == 'cuda' else None

    def elapsed_ms(self):
        if self.device is not None:
            torch.cuda.synchronize(self.device)
        return (time.perf_counter() - self.start) * 1e3

    def check(self):
        if math.isfinite(self.budget_ms) and self.elapsed_ms() > self.budget_ms:
            raise _OverBudget()


class _Grid:
    """
    The working layout for one model size and device.

    The model-resolution maps are averaged over ``stride`` x ``stride`` blocks to ``rows`` x ``cols`` working pixels,
    which are cut into ``gy`` x ``gx`` square cells of ``cell`` pixels (the last cells padded by repeating the edge;
    padded pixels carry no weight). With equal cells the 3x3 candidate centres of a pixel are shifted views of the
    centre grid, so the SLIC's distance pass is nine broadcast subtractions instead of gathers.
    """

    def __init__(self, height, width, segments, work_pixels, device):
        self.height, self.width = height, width
        self.stride = max(1, int(round(math.sqrt(height * width / float(work_pixels)))))
        self.rows, self.cols = max(1, height // self.stride), max(1, width // self.stride)
        cell = max(1, int(round(math.sqrt(self.rows * self.cols / float(segments)))))
        self.cell = min(cell, self.rows, self.cols)
        self.gy, self.gx = -(-self.rows // self.cell), -(-self.cols // self.cell)
        self.count = self.gy * self.gx
        self.padded = (self.gy * self.cell, self.gx * self.cell)
        c = self.cell
        ys = (torch.arange(self.padded[0], device=device, dtype=torch.float32) / c).view(self.gy, c, 1, 1)
        xs = (torch.arange(self.padded[1], device=device, dtype=torch.float32) / c).view(1, 1, self.gx, c)
        self.position = torch.stack([ys.expand(self.gy, c, self.gx, c), xs.expand(self.gy, c, self.gx, c)])
        self.initial = torch.arange(self.count, device=device).view(self.gy, 1, self.gx, 1).expand(
            self.gy, c, self.gx, c).contiguous()
        # label of candidate k = (dy + 1) * 3 + (dx + 1): initial label + dy * gx + dx
        self.shift = torch.tensor([dy * self.gx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=device)
        valid = torch.zeros(self.padded, device=device)
        valid[:self.rows, :self.cols] = 1.0
        self.valid = valid.view(self.gy, c, self.gx, c)


class RadarRefiner:
    """Refine depth maps with radar returns (see the module docstring). One instance per engine; not thread-safe."""

    def __init__(self, settings=None):
        """Keep the settings; working layouts are built on first use per size and device."""
        self.settings = settings if settings is not None else RefineSettings(mode='radar')
        self._grids = {}

    def _grid(self, height, width, device):
        key = (int(height), int(width), str(device))
        if key not in self._grids:
            if len(self._grids) > 8:
                self._grids.clear()
            self._grids[key] = _Grid(int(height), int(width), self.settings.segments, self.settings.work_pixels,
                                     device)
        return self._grids[key]

    # -- inputs -----------------------------------------------------------------------------------------------

    def _returns(self, radar_xyz, rcs, K, grid, device):
        """Return (column, row, log z, weight, row half-window, dropped counts) of the usable returns, working size."""
        s = self.settings
        xyz = torch.as_tensor(np.asarray(radar_xyz, dtype=np.float32).reshape(-1, 3), device=device)
        n = xyz.shape[0]
        if rcs is None:
            rcs = np.zeros(n, np.float32)
        rcs = torch.as_tensor(np.asarray(rcs, np.float32).reshape(-1), device=device)
        if rcs.shape[0] != n:
            raise ConfigError(f'refine: {rcs.shape[0]} RCS values for {n} radar returns')
        K = np.asarray(K, dtype=np.float64)
        finite = torch.isfinite(xyz).all(dim=1)
        xyz = torch.where(finite[:, None], xyz, torch.ones_like(xyz))
        z = xyz[:, 2]
        ahead = finite & (z >= s.min_depth)
        in_range = ahead & (z <= s.max_depth)
        u = torch.floor(K[0, 0] * xyz[:, 0] / z + K[0, 1] * xyz[:, 1] / z + K[0, 2] + 0.5)
        v = torch.floor(K[1, 1] * xyz[:, 1] / z + K[1, 2] + 0.5)
        half = self._half_window(K[1, 1] / grid.stride)
        # a return just above or below the image may still belong to a row inside it (elevation spread)
        margin = half * grid.stride
        inside = in_range & (u >= 0) & (u < grid.width) & (v >= -margin) & (v < grid.height + margin)
        counts = torch.stack([(~finite).sum(), (finite & ~ahead).sum(), (ahead & ~in_range).sum(),
                              (in_range & ~inside).sum()]).tolist()
        dropped = dict(zip(DROP_REASONS, (int(c) for c in counts)))
        col = torch.clamp(u[inside].long() // grid.stride, max=grid.cols - 1)
        row = torch.div(v[inside], grid.stride, rounding_mode='floor').long()
        rcs = torch.nan_to_num(rcs[inside], nan=0.0, posinf=0.0, neginf=0.0)
        return col, row, torch.log(z[inside]), self._rcs_weight(rcs), half, dropped

    def _half_window(self, fy):
        spread = math.radians(self.settings.elevation_spread_deg)
        return int(math.ceil(fy * math.tan(spread))) if spread > 0 else 0

    def _rcs_weight(self, rcs):
        """Weight in [1 - rcs_weight, 1] growing with the return's RCS, normalised within the frame."""
        s = self.settings
        if rcs.numel() < 2 or s.rcs_weight == 0:
            return torch.ones_like(rcs)
        lo, hi = torch.quantile(rcs, torch.tensor([0.05, 0.95], device=rcs.device, dtype=rcs.dtype))
        if not bool(hi > lo):
            return torch.ones_like(rcs)
        return (1.0 - s.rcs_weight) + s.rcs_weight * ((rcs - lo) / (hi - lo)).clamp(0.0, 1.0)

    # -- segmentation -------------------------------------------------------------------------------------------

    def _working_maps(self, depth, image, grid):
        """
        Return (log depth, image) at the working size, padded to the cell layout.

        The depth is averaged over each stride block; the image (only the SLIC's colour) is sampled at the blocks'
        centres, which costs nothing while averaging three full-resolution channels is the stage's largest copy.
        """
        k = grid.stride
        rows, cols = grid.rows * k, grid.cols * k
        depth = depth[None, None, :rows, :cols]
        image = image[None, :, k // 2:rows:k, k // 2:cols:k]
        if k > 1:
            depth = F.avg_pool2d(depth, k)
        pad = (0, grid.padded[1] - grid.cols, 0, grid.padded[0] - grid.rows)
        if any(pad):
            depth, image = F.pad(depth, pad, mode='replicate'), F.pad(image, pad, mode='replicate')
        return torch.log(depth[0, 0].clamp_min(1e-3)), image[0]

    def segment(self, log_depth, image, grid):
        """
        Return the labels (gy, cell, gx, cell) of the 3D SLIC of the working maps in ``grid``'s layout.

        Distance: ``colour_weight * |dc|^2 + depth_weight * |d log z|^2 + compactness * |dxy / cell|^2``; each pixel
        compares the centres of the 3x3 cells around its own (the usual SLIC window). With ``slic_iterations`` 0 the
        segments are the regular cells.
        """
        s = self.settings
        gy, c, gx = grid.gy, grid.cell, grid.gx
        labels = grid.initial
        if s.slic_iterations == 0:
            return labels
        features = torch.cat([image.reshape(-1, gy, c, gx, c) * math.sqrt(s.colour_weight),
                              log_depth.reshape(1, gy, c, gx, c) * math.sqrt(s.depth_weight),
                              grid.position * math.sqrt(s.compactness)])                 # (F, gy, c, gx, c)
        weighted = (features * grid.valid).reshape(features.shape[0], -1).t()
        valid = grid.valid.reshape(-1)
        centres = (features * grid.valid).sum(dim=(2, 4)) / grid.valid.sum(dim=(1, 3)).clamp_min(1.0)
        best = torch.empty_like(log_depth).view(gy, c, gx, c)
        for _ in range(s.slic_iterations):
            padded = F.pad(centres, (1, 1, 1, 1), value=1e4)
            index = torch.full_like(labels, 4)
            for k in range(9):
                dy, dx = divmod(k, 3)
                centre = padded[:, dy:dy + gy, dx:dx + gx].unsqueeze(2).unsqueeze(4)
                distance = (features - centre).square_().sum(dim=0)
                if k == 0:
                    best.copy_(distance)
                    index.fill_(0)
                else:
                    index.masked_fill_(distance < best, k)
                    torch.minimum(best, distance, out=best)
            labels = grid.initial + grid.shift[index]
            flat = labels.reshape(-1)
            sums = torch.zeros(grid.count, weighted.shape[1], device=flat.device).index_add_(0, flat, weighted)
            sizes = torch.zeros(grid.count, device=flat.device).index_add_(0, flat, valid)
            updated = (sums / sizes.clamp_min(1.0)[:, None]).t().reshape(-1, gy, gx)
            centres = torch.where(sizes.view(1, gy, gx) > 0, updated, centres)
        return labels

    def segment_map(self, depth, image):
        """Return (labels (h, w) long at model resolution, number of segments) of a depth map and its image."""
        height, width = depth.shape[-2:]
        grid = self._grid(height, width, depth.device)
        log_depth, small_image = self._working_maps(depth.float(), image.float(), grid)
        labels = self.segment(log_depth, small_image, grid).reshape(grid.padded)
        return self._to_model(labels[:grid.rows, :grid.cols].float(), grid).long(), grid.count

    @staticmethod
    def _to_model(field, grid):
        """Map a working-size field (rows, cols) to model resolution: each pixel takes its block's value."""
        out = F.interpolate(field[None, None], scale_factor=grid.stride, mode='nearest') if grid.stride > 1 \
            else field[None, None]
        pad = (0, grid.width - out.shape[-1], 0, grid.height - out.shape[-2])
        return (F.pad(out, pad, mode='replicate') if any(pad) else out)[0, 0]

    @staticmethod
    def neighbours(labels, count):
        """Return the (E, 2) long tensor of label pairs (k < l) that touch horizontally or vertically."""
        pairs = torch.cat([torch.stack([labels[:, :-1].reshape(-1), labels[:, 1:].reshape(-1)], dim=1),
                           torch.stack([labels[:-1, :].reshape(-1), labels[1:, :].reshape(-1)], dim=1)])
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        if pairs.numel() == 0:
            return pairs.reshape(0, 2)
        keys = torch.unique(torch.minimum(pairs[:, 0], pairs[:, 1]) * count + torch.maximum(pairs[:, 0], pairs[:, 1]))
        return torch.stack([keys // count, keys % count], dim=1)

    # -- the stage ------------------------------------------------------------------------------------------------

    def refine(self, depth, image, radar_xyz, K, rcs=None, uncertainty=None):
        """
        Refine one depth map; return a Refinement (see the module docstring).

        ``depth`` (h, w) tensor of metres at model resolution; ``image`` (C, h, w) tensor at the same size (the
        model's normalised input); ``radar_xyz`` (N, 3) returns in the camera frame (numpy or tensor) with ``rcs``
        (N,) or None; ``K`` the 3x3 intrinsics at model resolution; ``uncertainty`` (h, w) or None.

        On the CPU the stage runs on ``threads`` intra-op threads (then restores torch's setting): its tensors are
        small, so a parallel region costs more than it saves, and on a loaded machine it waits for every core.
        """
        threads = self.settings.threads if depth.device.type == 'cpu' else 0
        previous = torch.get_num_threads()
        if threads and threads != previous:
            torch.set_num_threads(threads)
        try:
            return self._refine(depth, image, radar_xyz, K, rcs, uncertainty)
        finally:
            if threads and threads != previous:
                torch.set_num_threads(previous)

    def _refine(self, depth, image, radar_xyz, K, rcs, uncertainty):
        s = self.settings
        device = depth.device
        clock = _Clock(s.budget_ms, device)
        dropped = dict.fromkeys(DROP_REASONS, 0)
        radar_xyz = radar_xyz.detach().cpu().numpy() if torch.is_tensor(radar_xyz) else radar_xyz
        rcs = rcs.detach().cpu().numpy() if torch.is_tensor(rcs) else rcs
        total = 0 if radar_xyz is None else int(np.asarray(radar_xyz).reshape(-1, 3).shape[0])

        def unchanged(status, used=0, segments=0):
            return Refinement(depth, uncertainty, status, dropped, total, used, segments, 0, clock.elapsed_ms())

        if not s.active:
            return unchanged('disabled')
        if total == 0:
            return unchanged('no_returns')
        height, width = depth.shape[-2:]
        grid = self._grid(height, width, device)
        col, row, log_z, weight, half, dropped = self._returns(radar_xyz, rcs, K, grid, device)
        if col.numel() == 0:
            return unchanged('no_valid_returns')
        try:
            field, supported = self._solve(depth.float(), image.float(), col, row, log_z, weight, half, grid, clock)
        except _OverBudget:
            return unchanged('over_budget', int(col.numel()), grid.count)
        scale = self._to_model(field, grid)
        refined = (depth.float() * scale).to(depth.dtype)
        refined_unc = None if uncertainty is None else (uncertainty.float() * scale).to(uncertainty.dtype)
        elapsed = clock.elapsed_ms()
        if math.isfinite(s.budget_ms) and elapsed > s.budget_ms:
            return unchanged('over_budget', int(col.numel()), grid.count)
        return Refinement(refined, refined_unc, 'refined', dropped, total, int(col.numel()), grid.count, supported,
                          elapsed, scale)

    def _cutoffs(self, residual):
        """Tukey cut-off per residual: ``far_cutoff`` where the return lies beyond the depth (ghosts do)."""
        s = self.settings
        return torch.where(residual > 0, torch.full_like(residual, s.far_cutoff),
                           torch.full_like(residual, s.near_cutoff))

    def _tukey(self, residual):
        """Tukey's biweight of log ratios with the asymmetric cut-offs: 1 at 0, 0 beyond the cut-off."""
        error = residual / self._cutoffs(residual)
        return (1.0 - error * error).clamp_min(0.0).square()

    def _solve(self, depth, image, col, row, log_z, weight, half, grid, clock):
        """Return (per-working-pixel scale (rows, cols), segments with support)."""
        s = self.settings
        device = depth.device
        count = grid.count
        # 1. the 3D SLIC on the working maps
        log_depth, small_image = self._working_maps(depth, image, grid)
        labels = self.segment(log_depth, small_image, grid).reshape(grid.padded)
        clock.check()
        # 2. each return on the best-agreeing row of its column within the elevation spread
        offsets = torch.arange(-half, half + 1, device=device)
        rows = row[:, None] + offsets[None, :]                                           # (J, C)
        row_ok = (rows >= 0) & (rows < grid.rows)
        rows = rows.clamp(0, grid.rows - 1)
        cols = col[:, None].expand_as(rows)
        residual = log_z[:, None] - log_depth[rows, cols]                                  # log(range / prediction)
        cost = (residual / self._cutoffs(residual)).square_()
        if half > 0:
            cost += s.row_penalty * (offsets.float() / half).square_()[None, :]
        cost.masked_fill_(~row_ok, float('inf'))
        best = cost.argmin(dim=1, keepdim=True)
        residual = residual.gather(1, best)[:, 0]
        seg = labels[rows.gather(1, best)[:, 0], col]
        # 3. inner problem: each return's weight is its agreement with the prediction (fixed) times its agreement
        # with the segment's current robust mean (a few reweighted steps started at the prediction)
        weight = weight * self._tukey(residual)
        target = torch.zeros(count, device=device)
        support = target
        for _ in range(s.robust_iterations):
            omega = weight * self._tukey(residual - target[seg])
            support = torch.zeros(count, device=device).index_add_(0, seg, omega)
            moment = torch.zeros(count, device=device).index_add_(0, seg, omega * residual)
            target = moment / support.clamp_min(_EPS)
        supported = int((support > _EPS).sum())
        alpha = s.lambda_radar * support.square() / (support.square() + s.support_saturation ** 2 + _EPS)
        clock.check()
        # 4. outer problem: prior + ties between touching segments + radar targets, one SPD linear system
        flat = labels.reshape(-1)
        valid = grid.valid.reshape(-1)
        sizes = torch.zeros(count, device=device).index_add_(0, flat, valid)
        mean_log = torch.zeros(count, device=device).index_add_(0, flat, log_depth.reshape(-1) * valid)
        mean_log = mean_log / sizes.clamp_min(1.0)
        A = torch.diag(s.lambda_prior + alpha)
        edges = self.neighbours(labels[:grid.rows, :grid.cols], count)
        if edges.numel() and s.lambda_ties > 0:
            step = (mean_log[edges[:, 0]] - mean_log[edges[:, 1]]).abs()
            a = s.lambda_ties * torch.exp(-step / s.tie_depth_scale)
            A.index_put_((edges[:, 0], edges[:, 1]), -a, accumulate=True)
            A.index_put_((edges[:, 1], edges[:, 0]), -a, accumulate=True)
            degree = torch.zeros(count, device=device)
            degree.index_add_(0, edges[:, 0], a).index_add_(0, edges[:, 1], a)
            A.diagonal().add_(degree)
        # diagonally dominant with a positive diagonal (the prior): SPD and well conditioned, float32 is enough
        log_scale = torch.cholesky_solve((alpha * target)[:, None], torch.linalg.cholesky(A))[:, 0]
        log_scale = log_scale.clamp(-s.max_log_scale, s.max_log_scale)
        clock.check()
        return torch.exp(log_scale[labels[:grid.rows, :grid.cols]]), supported
