"""
Depth heads: depth bins (student), ``max_depth * sigmoid`` (LiRCDepth, CaFNet), BTS local planar guidance.

The bin head predicts a distribution over depth bins; the local planar guidance serves the teacher's
intermediate heads.
"""

import math

from rcdepth_ros.errors import ConfigError
import torch
from torch import nn
import torch.nn.functional as F


def bin_edges(num_bins, spacing, min_depth, max_depth):
    """
    Return the ``num_bins + 1`` bin edges (float64 tensor, metres) of [min_depth, max_depth].

    ``uniform``: equal widths. ``log``: equal widths in log depth (DORN's SID). ``sid``: widths growing linearly
    with the bin index (CaDDN's LID), edge i at ``min + (max - min) * i (i + 1) / (K (K + 1))``.
    """
    if num_bins < 2 or not 0.0 < min_depth < max_depth:
        raise ConfigError(f'bins: need num_bins >= 2 and 0 < min_depth < max_depth, got {num_bins}, '
                          f'{min_depth}, {max_depth}')
    i = torch.arange(num_bins + 1, dtype=torch.float64)
    if spacing == 'uniform':
        return min_depth + (max_depth - min_depth) * i / num_bins
    if spacing == 'log':
        return torch.exp(math.log(min_depth) + (math.log(max_depth) - math.log(min_depth)) * i / num_bins)
    if spacing == 'sid':
        return min_depth + (max_depth - min_depth) * i * (i + 1) / (num_bins * (num_bins + 1))
    raise ConfigError(f"bin spacing must be 'uniform', 'log' or 'sid', got {spacing!r}")


def bin_centers(num_bins, spacing, min_depth, max_depth):
    """Return the ``num_bins`` bin centres (float32 tensor, metres): midpoints of ``bin_edges``."""
    edges = bin_edges(num_bins, spacing, min_depth, max_depth)
    return (0.5 * (edges[:-1] + edges[1:])).float()


def distribution_statistics(logits, centers):
    """
    Return (depth, std) of the softmax distribution of ``logits`` (B, K, H, W) over ``centers`` (K,).

    depth = sum_k p_k c_k and std = sqrt(sum_k p_k c_k^2 - depth^2), both (B, 1, H, W) metres, computed in float32.
    The bins are moved to the last dimension and both moments come from one matrix product with [c, c^2]: with
    channels_last logits that is contiguous, and several times faster on the CPU than softmax and sums over dim 1
    (the head is the largest full-resolution cost of the student). Both are checked against the direct sums in
    test/models/test_heads.py.
    """
    probs = torch.softmax(logits.permute(0, 2, 3, 1).float(), dim=3)   # explicit dims: ONNX rejects perm -1
    c = centers.float()
    moments = probs @ torch.stack([c, c * c], dim=1)
    depth = moments[..., :1]
    var = moments[..., 1:] - depth * depth
    return depth.permute(0, 3, 1, 2), torch.sqrt(var.clamp_min(1e-12)).permute(0, 3, 1, 2)


class DepthBinHead(nn.Module):
    """1x1 conv to bin logits; depth is the expectation of the bin centres, uncertainty the standard deviation."""

    def __init__(self, in_channels, head_cfg):
        """Build the logits convolution and the (non-persistent) bin-centre buffer."""
        super().__init__()
        self.logits = nn.Conv2d(in_channels, head_cfg.num_bins, 1)
        centers = bin_centers(head_cfg.num_bins, head_cfg.spacing, head_cfg.min_depth, head_cfg.max_depth)
        self.register_buffer('bin_centers', centers, persistent=False)

    def forward(self, x, prior_logits=None):
        """
        Return a dict with ``depth``, ``uncertainty`` (B, 1, H, W), ``logits`` (B, K, H, W), ``bin_centers``.

        ``prior_logits`` (B, K, H, W), when given, are added to the predicted logits (a lidar-input teacher's prior).
        """
        logits = self.logits(x)
        if prior_logits is not None:
            logits = logits + prior_logits
        depth, std = distribution_statistics(logits, self.bin_centers)
        return {'depth': depth, 'uncertainty': std, 'logits': logits, 'bin_centers': self.bin_centers}


class SigmoidDepthHead(nn.Module):
    """``max_depth * sigmoid(conv3x3(x))`` (no bias, as LiRCDepth and BTS)."""

    def __init__(self, in_channels, max_depth):
        """Build the 3x3 convolution."""
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, 1, 1, bias=False)
        self.max_depth = float(max_depth)

    def forward(self, x):
        """Return a dict with ``depth`` (B, 1, H, W) metres."""
        return {'depth': self.max_depth * torch.sigmoid(self.conv(x))}


def _reduction_layers(in_channels, out_channels, final):
    """BTS 'reduction_1x1': 1x1 conv + ELU halving the width down to 8, then a 1x1 conv to 3 (plane) or 1."""
    layers = []
    while out_channels >= 8:
        layers += [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.ELU()]
        in_channels, out_channels = out_channels, out_channels // 2
    layers.append(nn.Conv2d(in_channels, 1 if final else 3, 1, bias=False))
    if final:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class PlaneReduction(nn.Module):
    """
    Predict local plane coefficients per cell: unit normal (theta <= 60 deg) and distance <= ``max_depth``.

    Returns (B, 4, h, w): n1, n2, n3, distance.
    """

    def __init__(self, in_channels, out_channels, max_depth):
        """Build the 1x1 reduction stack."""
        super().__init__()
        self.reduce = _reduction_layers(in_channels, out_channels, final=False)
        self.max_depth = float(max_depth)

    def forward(self, x):
        """Return the plane coefficients."""
        raw = self.reduce(x)
        theta = torch.sigmoid(raw[:, 0:1]) * (math.pi / 3.0)
        phi = torch.sigmoid(raw[:, 1:2]) * (2.0 * math.pi)
        dist = torch.sigmoid(raw[:, 2:3]) * self.max_depth
        return torch.cat([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), torch.cos(theta),
                          dist], dim=1)


class FinalReduction(nn.Module):
    """BTS ``reduc1x1`` with ``is_final``: a 1x1 stack ending in one sigmoid channel."""

    def __init__(self, in_channels, out_channels):
        """Build the 1x1 reduction stack."""
        super().__init__()
        self.reduce = _reduction_layers(in_channels, out_channels, final=True)

    def forward(self, x):
        """Return (B, 1, H, W) in (0, 1)."""
        return self.reduce(x)


def local_planar_guidance(plane, ratio, max_depth):
    """
    Expand per-cell planes (B, 4, h, w) to a depth map (B, 1, h * ratio, w * ratio), BTS's local planar guidance.

    Inside each cell, pixel offsets (u, v) in (-1/2, 1/2) give depth ``d / (n1 u + n2 v + n3)``. The denominator is
    kept >= 0.05 (at the cell corners a 60-degree plane can reach zero) and the depth clipped to [0, max_depth].
    """
    up = F.interpolate(plane, scale_factor=float(ratio), mode='nearest')
    height, width = up.shape[-2], up.shape[-1]
    u = (torch.arange(width, device=plane.device, dtype=plane.dtype) % ratio - (ratio - 1) * 0.5) / ratio
    v = (torch.arange(height, device=plane.device, dtype=plane.dtype) % ratio - (ratio - 1) * 0.5) / ratio
    denom = up[:, 0:1] * u.view(1, 1, 1, -1) + up[:, 1:2] * v.view(1, 1, -1, 1) + up[:, 2:3]
    return (up[:, 3:4] / denom.clamp_min(0.05)).clamp(0.0, max_depth)
