"""
LiRCDepth's three distillation terms (``../shared/docs/method.md`` section 3), applied to any student.

- pixel-wise feature KD: 1x1 conv + ReLU adapters (``FeatureAdapters``, training-only modules) map the student's
  encoder features to the teacher's widths; L1 to the teacher's features, image and radar branches, scale i
  weighted ``decay^i`` with i = 0 at the deepest map (1/32), as in the released code (``feat[-1 - i]``).
- pair-wise similarity KD: each decoder map is max-pooled to about ``pool_size`` cells, its channel vectors are
  L2-normalised, ``A = F^T F`` is the (N x N) cosine-similarity matrix of the cells and the loss is
  ``sum (A_T - A_S)^2 / N^2`` per sample, averaged over the batch; scales weighted ``decay^i`` from the deepest.
- uncertainty-aware inter-depth KD: on the depth maps at 1/2, 1/4 and 1/8,
  ``u = 1 - exp(-alpha |d_T - d_S| / (d_T + d_S))`` (detached) weights the L1 to the teacher, as a weighted mean
  ``sum(u |d_S - d_T|) / sum(u)`` over the pixels where the teacher is valid; scales weighted ``decay^i`` from 1/2.
"""

import dataclasses
import typing

from rcdepth_ros.errors import ConfigError
from torch import nn
import torch.nn.functional as F
from training.losses.base import KDTerm, TermConfig
from training.losses.supervised import agreement_uncertainty, EPS


class FeatureAdapters(nn.Module):
    """One 1x1 conv + ReLU per scale, from ``in_channels[i]`` to ``out_channels[i]`` (training only)."""

    def __init__(self, in_channels, out_channels):
        """Build the adapters; the lists must have the same length."""
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ConfigError(f'feature adapters: {len(in_channels)} student maps vs {len(out_channels)} teacher maps')
        self.layers = nn.ModuleList([nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.ReLU())
                                     for i, o in zip(in_channels, out_channels)])

    def forward(self, features):
        """Return the adapted feature maps."""
        return [layer(f) for layer, f in zip(self.layers, features)]


def _check_pairs(student, teacher, what):
    if len(student) != len(teacher):
        raise ConfigError(f'{what}: {len(student)} student maps vs {len(teacher)} teacher maps')


def pixelwise_feature_kd(student_features, teacher_features, decay=0.5):
    """
    Return sum_i decay^i * mean |S_i - T_i| over maps ordered fine to deep (i = 0 is the last, deepest map).

    Student maps must already have the teacher's widths (through ``FeatureAdapters``) and sizes.
    """
    _check_pairs(student_features, teacher_features, 'feature KD')
    total = 0.0
    for i, (s, t) in enumerate(zip(reversed(student_features), reversed(teacher_features))):
        if s.shape != t.shape:
            raise ConfigError(f'feature KD: adapted student map {tuple(s.shape)} vs teacher map {tuple(t.shape)}')
        total = total + decay ** i * (s.float() - t.detach().float()).abs().mean()
    return total


def similarity_matrix(feature):
    """Return the (B, N, N) cosine similarities between the N = h * w cells of ``feature`` (B, C, h, w)."""
    cells = F.normalize(feature.float().flatten(2), dim=1, eps=1e-8)
    return cells.transpose(1, 2) @ cells


def pairwise_similarity_kd(student_feature, teacher_feature, pool_size=(5, 5)):
    """Return ``sum (A_T - A_S)^2 / N^2`` averaged over the batch, after max-pooling both maps to ``pool_size``."""
    size = tuple(int(p) for p in pool_size)
    a_s = similarity_matrix(F.adaptive_max_pool2d(student_feature, size))
    a_t = similarity_matrix(F.adaptive_max_pool2d(teacher_feature.detach(), size))
    n = a_s.shape[-1]
    return ((a_t - a_s) ** 2).sum() / (n * n) / a_s.shape[0]


def pairwise_similarity_kd_multi(student_features, teacher_features, pool_size=(5, 5), decay=0.5):
    """Return sum_i decay^i * pairwise KD over maps ordered deep to fine (decoder order, i = 0 the deepest)."""
    _check_pairs(student_features, teacher_features, 'pair-wise KD')
    return sum(decay ** i * pairwise_similarity_kd(s, t, pool_size)
               for i, (s, t) in enumerate(zip(student_features, teacher_features)))


def uncertainty_weighted_l1(student_depth, teacher_depth, alpha=5.0, min_depth=0.01):
    """Return ``sum(u |d_S - d_T|) / sum(u)`` over pixels with ``d_T > min_depth``, u detached (see module)."""
    teacher_depth, student_depth = teacher_depth.detach().float(), student_depth.float()
    mask = (teacher_depth > min_depth).to(student_depth.dtype)
    u = agreement_uncertainty(teacher_depth, student_depth.detach(), alpha) * mask
    return (u * (student_depth - teacher_depth).abs()).sum() / u.sum().clamp_min(EPS)


def depth_at_scale(output, scale):
    """Return the depth at 1/``scale``: the model's own intermediate map of that size, else the pooled final depth."""
    depth = output['depth']
    size = (depth.shape[-2] // scale, depth.shape[-1] // scale)
    own = (output.get('depth_scales') or {}).get(scale)
    if own is not None and tuple(own.shape[-2:]) == size:
        return own
    return F.avg_pool2d(depth, scale)


def inter_depth_kd(student_output, teacher_output, scales=(2, 4, 8), alpha=5.0, decay=0.5):
    """
    Return sum_i decay^i * uncertainty-weighted L1 at scales sorted fine to coarse (i = 0 at the finest).

    The teacher's target at each scale is its final depth pooled to that scale, never its own intermediate maps:
    the CaFNet-style teacher's local-planar-guidance depths are not supervised, and on Astyx they were measured
    far from its final depth (means 57-82 m against 23-27 m on frames 360 and 400), so distilling them pulled the
    student away from the ground truth (the first table run: MAE 28.9 m at 80 m).
    """
    teacher_depth = {'depth': teacher_output['depth']}
    return sum(decay ** i * uncertainty_weighted_l1(depth_at_scale(student_output, s),
                                                    depth_at_scale(teacher_depth, s), alpha)
               for i, s in enumerate(sorted(scales)))


@dataclasses.dataclass
class FeatureKD(TermConfig):
    """``feature``: LiRCDepth pixel-wise feature KD, L1 between adapted student and teacher encoder features."""

    term = 'feature'
    branches: typing.Tuple[str, ...] = ('image', 'radar')
    decay: float = 0.5

    def __post_init__(self):
        """Check the branches and the decay."""
        super().__post_init__()
        self.need(self.branches and set(self.branches) <= {'image', 'radar'}, 'branches',
                  "must name 'image' and/or 'radar'")
        self.need(0 < self.decay <= 1, 'decay', 'must be in (0, 1]')


class FeatureTerm(KDTerm):
    """The ``feature`` term: adapters (training only) from the student's widths to the teacher's."""

    name = 'feature'
    Config = FeatureKD
    needs = frozenset({'features'})
    student_features = True

    def __init__(self, cfg, student, teacher_info, experiment):
        """Build one adapter list per branch both models have."""
        super().__init__(cfg, student, teacher_info, experiment)
        teacher_channels = (teacher_info or {}).get('feature_channels') or {}
        self.adapters = nn.ModuleDict()
        for branch in cfg.branches:
            s_ch = student.feature_channels.get(branch) or []
            t_ch = teacher_channels.get(branch) or []
            if s_ch and t_ch:
                self.adapters[branch] = FeatureAdapters(s_ch, t_ch)
        if not len(self.adapters):
            raise ConfigError(f'distill.feature: neither branch {list(cfg.branches)} exists in both the student and '
                              f'the teacher')

    def forward(self, context):
        """Return the sum over branches of the pixel-wise feature KD."""
        total = 0.0
        for branch, adapters in self.adapters.items():
            # float32 inputs: losses run with autocast off, where the adapters' fp32 weights need fp32 features
            features = [f.float() for f in context.student['features'][branch]]
            total = total + pixelwise_feature_kd(adapters(features),
                                                 context.teacher['features'][branch], self.cfg.decay)
        return total


@dataclasses.dataclass
class PairwiseKD(TermConfig):
    """``pairwise``: LiRCDepth pair-wise similarity KD on the decoder features, max-pooled to ``pool_size``."""

    term = 'pairwise'
    pool_size: typing.Tuple[int, int] = (5, 5)
    decay: float = 0.5

    def __post_init__(self):
        """Check the pool size and the decay."""
        super().__post_init__()
        self.need(all(p >= 1 for p in self.pool_size), 'pool_size', 'must be >= 1')
        self.need(0 < self.decay <= 1, 'decay', 'must be in (0, 1]')


class PairwiseTerm(KDTerm):
    """The ``pairwise`` term."""

    name = 'pairwise'
    Config = PairwiseKD
    needs = frozenset({'features'})
    student_features = True

    def forward(self, context):
        """Return the multi-scale pair-wise similarity KD."""
        return pairwise_similarity_kd_multi(context.student['features']['decoder'],
                                            context.teacher['features']['decoder'], self.cfg.pool_size,
                                            self.cfg.decay)


@dataclasses.dataclass
class InterDepthKD(TermConfig):
    """``inter_depth``: LiRCDepth uncertainty-aware inter-depth KD at 1/``scales``, u = 1 - exp(-alpha r)."""

    term = 'inter_depth'
    alpha: float = 5.0
    scales: typing.Tuple[int, ...] = (2, 4, 8)
    decay: float = 0.5

    def __post_init__(self):
        """Check alpha, the scales and the decay."""
        super().__post_init__()
        self.need(self.alpha > 0 and self.scales and set(self.scales) <= {2, 4, 8}, 'scales',
                  'need alpha > 0 and scales in 2, 4, 8')
        self.need(0 < self.decay <= 1, 'decay', 'must be in (0, 1]')


class InterDepthTerm(KDTerm):
    """The ``inter_depth`` term."""

    name = 'inter_depth'
    Config = InterDepthKD
    needs = frozenset({'depth'})

    def forward(self, context):
        """Return the multi-scale uncertainty-weighted L1 to the teacher's pooled depth."""
        return inter_depth_kd(context.student, context.teacher, self.cfg.scales, self.cfg.alpha, self.cfg.decay)
