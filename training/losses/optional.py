"""
Optional distillation terms from the other seed papers (``../shared/docs/method.md`` section 3), each a switch.

- FSNet uncertainty-weighted KD: ``mean(|d_T - d_S| / sigma + log sigma)`` with the student's predicted
  uncertainty sigma (its bin distribution's standard deviation, clamped below at ``min_sigma``).
- confidence-aware KD: a training-only head (``ConfidenceHead``) predicts a per-pixel Laplacian log-scale s from
  the student's last decoder features; it is trained with the Laplacian NLL ``|d_S - g| e^{-s} + s`` against the
  lidar GT (d_S detached, the top ``outlier_fraction`` residuals masked), and its confidence ``c = e^{-s}``
  (detached, normalised to mean 1 over the batch) weights the KD term ``mean(c |d_T - d_S|)``.
- CRKD relation KD: L1 between the (N x N) spatial Gram matrices of student and teacher fused features,
  average-pooled to a small grid and normalised by the channel count so that different widths compare.
"""

import dataclasses
import typing

from rcdepth_ros.errors import ConfigError
import torch
from torch import nn
import torch.nn.functional as F
from training.losses.base import KDTerm, TermConfig
from training.losses.supervised import valid_mask


def fsnet_kd(student_depth, teacher_depth, sigma, min_sigma=0.1):
    """Return ``mean(|d_T - d_S| / sigma + log sigma)`` over all pixels, sigma clamped to >= ``min_sigma``."""
    sigma = sigma.float().clamp_min(min_sigma)
    return ((teacher_depth.detach().float() - student_depth.float()).abs() / sigma + torch.log(sigma)).mean()


class ConfidenceHead(nn.Module):
    """A 3x3 conv + ReLU + 1x1 conv predicting the Laplacian log-scale s per pixel (training only)."""

    def __init__(self, in_channels, hidden=16):
        """Build the two convolutions; the last starts at zero (s = 0, unit confidence)."""
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))
        nn.init.zeros_(self.body[2].weight)
        nn.init.zeros_(self.body[2].bias)

    def forward(self, features):
        """Return s (B, 1, H, W)."""
        return self.body(features)


def laplacian_nll(log_scale, student_depth, gt, mask, outlier_fraction=0.2):
    """
    Return the mean Laplacian NLL ``|d - g| e^{-s} + s`` over ``mask`` minus the top ``outlier_fraction`` residuals.

    d is detached: the NLL trains the confidence head only.
    """
    residual = (student_depth.detach() - torch.where(mask, gt, student_depth.detach())).abs()
    keep = mask.clone()
    values = residual[mask]
    if outlier_fraction > 0 and values.numel() > 1:
        count = values.numel() - int(round(values.numel() * (1.0 - outlier_fraction)))
        if count > 0:
            threshold = torch.topk(values, count).values.min()
            keep &= residual < threshold
    k = keep.to(log_scale.dtype)
    nll = residual * torch.exp(-log_scale) + log_scale
    return (k * nll).sum() / k.sum().clamp_min(1.0)


def confidence_weighted_kd(student_depth, teacher_depth, log_scale):
    """Return ``mean(c |d_T - d_S|)`` with ``c = e^{-s}`` detached and normalised to mean 1."""
    confidence = torch.exp(-log_scale.detach().float())
    confidence = confidence / confidence.mean().clamp_min(1e-12)
    return (confidence * (teacher_depth.detach().float() - student_depth.float()).abs()).mean()


def spatial_gram(feature, grid):
    """Return the (B, N, N) Gram matrix ``F^T F / C`` of ``feature`` average-pooled to ``grid`` (N cells)."""
    pooled = F.adaptive_avg_pool2d(feature.float(), tuple(int(g) for g in grid)).flatten(2)
    return pooled.transpose(1, 2) @ pooled / pooled.shape[1]


def relation_kd(student_features, teacher_features, grid=(6, 8)):
    """Return the mean over maps of mean |G_S - G_T| (spatial Gram matrices, ``spatial_gram``)."""
    terms = [(spatial_gram(s, grid) - spatial_gram(t.detach(), grid)).abs().mean()
             for s, t in zip(student_features, teacher_features)]
    return sum(terms) / max(len(terms), 1)


@dataclasses.dataclass
class FSNetKD(TermConfig):
    """``fsnet``: FSNet uncertainty-weighted KD, sigma the student's bin-distribution std (>= ``min_sigma``)."""

    term = 'fsnet'
    min_sigma: float = 0.1

    def __post_init__(self):
        """Check min_sigma."""
        super().__post_init__()
        self.need(self.min_sigma > 0, 'min_sigma', 'must be > 0')


class FSNetTerm(KDTerm):
    """The ``fsnet`` term."""

    name = 'fsnet'
    Config = FSNetKD
    needs = frozenset({'depth'})

    def __init__(self, cfg, student, teacher_info, experiment):
        """Check the student has a bin head (its uncertainty)."""
        super().__init__(cfg, student, teacher_info, experiment)
        if student.model_cfg.head.kind != 'bins':
            raise ConfigError('distill.fsnet needs a student with a bin head (its uncertainty is sigma)')

    def forward(self, context):
        """Return the FSNet term."""
        s = context.student
        return fsnet_kd(s['depth'], context.teacher['depth'], s['uncertainty'], self.cfg.min_sigma)


@dataclasses.dataclass
class ConfidenceKD(TermConfig):
    """``confidence``: a training-only head predicts a Laplacian scale b; c = 1/b weights |d_T - d_S|."""

    term = 'confidence'
    nll_weight: float = 0.1
    outlier_fraction: float = 0.2

    def __post_init__(self):
        """Check the fractions."""
        super().__post_init__()
        self.need(0 <= self.outlier_fraction < 1 and self.nll_weight >= 0, 'outlier_fraction',
                  'need 0 <= outlier_fraction < 1 and nll_weight >= 0')


class ConfidenceTerm(KDTerm):
    """The ``confidence`` term and its head (training only)."""

    name = 'confidence'
    Config = ConfidenceKD
    needs = frozenset({'depth'})
    student_features = True

    def __init__(self, cfg, student, teacher_info, experiment):
        """Build the confidence head on the student's last decoder features."""
        super().__init__(cfg, student, teacher_info, experiment)
        self.head = ConfidenceHead(student.feature_channels['decoder'][-1])
        self.min_depth = experiment.loss.min_depth
        self.max_depth = experiment.loss.max_depth or experiment.input.max_depth

    def forward(self, context):
        """Return the confidence-weighted KD plus the head's Laplacian NLL."""
        s = context.student
        log_scale = self.head(s['features']['decoder'][-1].float())     # autocast is off here: fp32 in
        mask = valid_mask(context.sparse_gt, self.min_depth, self.max_depth)
        nll = laplacian_nll(log_scale, s['depth'].float(), context.sparse_gt.float(), mask, self.cfg.outlier_fraction)
        return confidence_weighted_kd(s['depth'], context.teacher['depth'], log_scale) + self.cfg.nll_weight * nll


@dataclasses.dataclass
class RelationKD(TermConfig):
    """``crkd``: CRKD relation KD, L1 between spatial Gram matrices of student and teacher fused features."""

    term = 'crkd'
    levels: typing.Tuple[int, ...] = (2, 3, 4)
    grid: typing.Tuple[int, int] = (6, 8)

    def __post_init__(self):
        """Check the levels and the grid."""
        super().__post_init__()
        self.need(self.levels and set(self.levels) <= {0, 1, 2, 3, 4} and all(g >= 1 for g in self.grid),
                  'levels', 'must be among 0..4 (1/2 .. 1/32) and grid >= 1')


class RelationTerm(KDTerm):
    """The ``crkd`` term."""

    name = 'crkd'
    Config = RelationKD
    needs = frozenset({'features'})
    student_features = True

    def forward(self, context):
        """Return the relation KD over the chosen fused levels."""
        levels = self.cfg.levels
        return relation_kd([context.student['features']['fused'][i] for i in levels],
                           [context.teacher['features']['fused'][i] for i in levels], self.cfg.grid)
