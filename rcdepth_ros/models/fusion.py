"""
Fusion of radar features into image features, one module per scale.

- ``FiLMFusion`` (student): ``fused = (1 + gamma) * image + beta``; gamma and beta come from 1x1 convolutions of the
  radar features, per pixel (``mode='pixel'``) or per channel from globally average-pooled radar features
  (``mode='channel'``). The convolutions are zero-initialised: an untrained fusion is the identity on the image.
- ``AddFusion`` (LiRCDepth): ``image + align(radar)``; ``align`` is a 1x1 conv + ReLU when requested or when the
  widths differ, else the identity.
- ``GatedFusion`` (teacher): ``x + sigmoid(1x1(r)) * relu(1x1(r)) * confidence``, the confidence map averaged down
  to the size of ``x``.
"""

from rcdepth_ros.errors import ConfigError
from torch import nn
import torch.nn.functional as F


class FiLMFusion(nn.Module):
    """Feature-wise linear modulation of image features by radar features."""

    def __init__(self, image_channels, radar_channels, mode='pixel'):
        """Build the gamma and beta 1x1 convolutions (zero-initialised)."""
        super().__init__()
        if mode not in ('pixel', 'channel'):
            raise ConfigError(f"FiLM mode must be 'pixel' or 'channel', got {mode!r}")
        self.mode = mode
        self.gamma = nn.Conv2d(radar_channels, image_channels, 1)
        self.beta = nn.Conv2d(radar_channels, image_channels, 1)
        for conv in (self.gamma, self.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, image, radar):
        """Return the modulated image features."""
        if self.mode == 'channel':
            radar = radar.mean(dim=(2, 3), keepdim=True)
        return (1.0 + self.gamma(radar)) * image + self.beta(radar)


class AddFusion(nn.Module):
    """Element-wise addition, with an optional 1x1 conv + ReLU putting radar features in the image's width."""

    def __init__(self, image_channels, radar_channels, align=False):
        """Build the alignment convolution when asked or needed."""
        super().__init__()
        self.align = nn.Identity()
        if align or image_channels != radar_channels:
            self.align = nn.Sequential(nn.Conv2d(radar_channels, image_channels, 1, bias=False), nn.ReLU())

    def forward(self, image, radar):
        """Return ``image + align(radar)``."""
        return image + self.align(radar)


class GatedFusion(nn.Module):
    """Confidence-aware gated fusion of CaFNet."""

    def __init__(self, radar_channels, out_channels):
        """Build the gate (sigmoid) and projection (ReLU) 1x1 convolutions."""
        super().__init__()
        self.weight = nn.Sequential(nn.Conv2d(radar_channels, out_channels, 1, bias=False), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(radar_channels, out_channels, 1, bias=False), nn.ReLU())

    def forward(self, x, radar, confidence):
        """Return ``x + weight(radar) * project(radar) * pooled confidence``."""
        stride = confidence.shape[-1] // x.shape[-1]
        if stride > 1:
            confidence = F.avg_pool2d(confidence, stride, stride)
        return x + self.weight(radar) * self.project(radar) * confidence


def build_scale_fusions(fusion_cfg, image_channels, radar_channels):
    """Return a ModuleList with one FiLM / add fusion per scale (``fusion_cfg.kind`` film or add)."""
    if fusion_cfg.kind == 'film':
        modules = [FiLMFusion(i, r, fusion_cfg.film_mode) for i, r in zip(image_channels, radar_channels)]
    elif fusion_cfg.kind == 'add':
        modules = [AddFusion(i, r, fusion_cfg.align_radar) for i, r in zip(image_channels, radar_channels)]
    else:
        raise ConfigError(f'fusion kind {fusion_cfg.kind!r} is not a per-scale encoder fusion')
    return nn.ModuleList(modules)
