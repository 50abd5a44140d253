"""
What every depth model here has in common: the forward contract, input checks, and the attributes KD needs.

``model(image, radar, return_features=False, lidar=None)`` with ``image`` (B, 3, H, W) normalised and ``radar``
(B, C, H, W) scaled (C = ``input_cfg.num_radar_channels``; H and W multiples of 32) returns a dict; ``lidar``
(B, 2, H, W) is read only by a model with ``model.lidar_input`` (a cross-modal teacher) and required there:

- ``depth`` (B, 1, H, W) metres, always;
- ``logits`` (B, K, H, W), ``bin_centers`` (K,) metres, ``uncertainty`` (B, 1, H, W) metres (std of the bin
  distribution): models with a bin head;
- ``depth_scales`` {8, 4, 2: (B, 1, H/s, W/s) metres}: intermediate depths (LiRCDepth, teacher);
- ``radar_confidence`` (B, 1, H, W) in (0, 1), its ``radar_confidence_logits`` and ``radar_depth`` (B, 1, H, W)
  metres: the teacher's stage 1;
- ``features`` only with ``return_features=True``: {'image': 5 maps (1/2 .. 1/32), 'radar': 5 maps or [] (camera
  only), 'fused': 5 maps (1/2 .. 1/32), 'decoder': 5 maps (1/16, 1/8, 1/4, 1/2, 1/1)}.

``feature_channels`` has the channel counts of those lists (to build KD adapters); ``saliency_layers`` names
modules whose output is a single tensor suited to Grad-CAM, the first being the default (a 1/8-scale decoder
layer in all three models, so teacher and student maps have the same size).
"""

from rcdepth_ros.errors import ModelInputError
import torch
from torch import nn


class DepthModel(nn.Module):
    """Base class: stores the configs, checks inputs, declares ``feature_channels`` and ``saliency_layers``."""

    def __init__(self, model_cfg, input_cfg):
        """Keep the configurations (a checkpoint stores them beside the weights)."""
        super().__init__()
        self.model_cfg = model_cfg
        self.input_cfg = input_cfg
        self.feature_channels = {}
        self.saliency_layers = ()

    @property
    def lidar_channels(self):
        """Return the number of lidar input channels this model reads (0: camera + radar only)."""
        lidar_cfg = getattr(self.model_cfg, 'lidar_input', None)
        return lidar_cfg.channels if lidar_cfg is not None else 0

    def range_input(self, image, radar, lidar):
        """Check the inputs; return the radar tensor, with the lidar channels appended for a lidar-input model."""
        self.check_inputs(image, radar)
        channels = self.lidar_channels
        if not channels:
            return radar
        if lidar is None:
            raise ModelInputError(f'{type(self).__name__}: this model reads lidar (model.lidar_input rings '
                                  f'{list(self.model_cfg.lidar_input.rings)}): pass lidar (B, {channels}, H, W); it '
                                  f'is a teacher for training, not a model the node can run')
        if lidar.dim() != 4 or lidar.shape[1] != channels or lidar.shape[0] != radar.shape[0] or \
                lidar.shape[2:] != radar.shape[2:]:
            raise ModelInputError(f'{type(self).__name__}: lidar must be (B, {channels}, H, W) like radar '
                                  f'{tuple(radar.shape)}, got {tuple(lidar.shape)}')
        return torch.cat([radar, lidar.to(radar.dtype)], dim=1)

    def check_inputs(self, image, radar):
        """Raise ModelInputError unless image (B, 3, H, W) and radar (B, C, H, W) fit this model."""
        channels = self.input_cfg.num_radar_channels
        if image.dim() != 4 or image.shape[1] != 3:
            raise ModelInputError(f'{type(self).__name__}: image must be (B, 3, H, W), got {tuple(image.shape)}')
        if radar.dim() != 4 or radar.shape[1] != channels:
            raise ModelInputError(f'{type(self).__name__}: radar must be (B, {channels}, H, W) for channels '
                                  f'{list(self.input_cfg.radar_channels)}, got {tuple(radar.shape)}')
        if image.shape[0] != radar.shape[0] or image.shape[2:] != radar.shape[2:]:
            raise ModelInputError(f'{type(self).__name__}: image {tuple(image.shape)} and radar '
                                  f'{tuple(radar.shape)} differ in batch or size')
        height, width = image.shape[2], image.shape[3]
        if height % 32 or width % 32:
            raise ModelInputError(f'{type(self).__name__}: height and width must be multiples of 32, got '
                                  f'{height}x{width}')
