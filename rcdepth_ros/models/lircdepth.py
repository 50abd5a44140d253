"""
The LiRCDepth baseline, re-implemented from its description (``../shared/docs/method.md`` section 2).

MobileNetV2 image encoder; a second MobileNetV2 on the radar image behind a 3x3 conv C -> 3 + ReLU; taps after
feature modules 2, 4, 7, 11, 19 (16, 24, 32, 64, 1280 channels). In the released (paper) configuration
(``config/models/lircdepth.yaml``) 1x1 conv + ReLU adapters map image features to 64, 64, 128, 256, 512 and radar
features to 64, 128, 128, 512, 512 channels (the teacher's widths, for feature KD); a 1x1 conv + ReLU aligns each
radar map to the image map's width before element-wise addition. The decoder (``TransposedIRDecoder``) has widths
512, 128, 128, 64, 32, intermediate depths at 1/8, 1/4, 1/2 and ``max_depth * sigmoid`` output. Exactly what the
released model's ``parameters()`` count (no classifier) is counted here.
"""

from rcdepth_ros.models.base import DepthModel
from rcdepth_ros.models.decoders import TransposedIRDecoder
from rcdepth_ros.models.encoders import build_encoder
from rcdepth_ros.models.fusion import build_scale_fusions
from rcdepth_ros.models.heads import SigmoidDepthHead
from torch import nn


def _adapters(in_channels, out_channels):
    if not out_channels:
        return None, list(in_channels)
    modules = nn.ModuleList([nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.ReLU())
                             for i, o in zip(in_channels, out_channels)])
    return modules, list(out_channels)


class LiRCDepth(DepthModel):
    """The LiRCDepth network (forward contract in ``rcdepth_ros.models.base``)."""

    def __init__(self, model_cfg, input_cfg, load_pretrained=True):
        """Build encoders, adapters, fusion, decoder and head from the configs."""
        super().__init__(model_cfg, input_cfg)
        cfg = model_cfg
        self.max_depth = float(cfg.head.max_depth)
        self.image_encoder = build_encoder(cfg.image_encoder, 3, load_pretrained)
        self.image_adapters, image_channels = _adapters(self.image_encoder.channels, cfg.adapters.image)
        self.camera_only = cfg.fusion.kind == 'none'
        radar_channels = []
        if not self.camera_only:
            self.radar_encoder = build_encoder(cfg.radar_encoder, input_cfg.num_radar_channels, load_pretrained)
            self.radar_adapters, radar_channels = _adapters(self.radar_encoder.channels, cfg.adapters.radar)
            self.fusion = build_scale_fusions(cfg.fusion, image_channels, radar_channels)
        self.decoder = TransposedIRDecoder(image_channels, cfg.decoder)
        self.head = SigmoidDepthHead(cfg.decoder.widths[4], self.max_depth)
        self.feature_channels = {'image': image_channels, 'radar': radar_channels, 'fused': list(image_channels),
                                 'decoder': list(cfg.decoder.widths)}
        self.saliency_layers = ('decoder.stages.1', 'decoder.stages.2', 'decoder.stages.0', 'decoder.stages.3')

    def forward(self, image, radar, return_features=False):
        """Return the output dict described in ``rcdepth_ros.models.base``."""
        self.check_inputs(image, radar)
        image_features = self.image_encoder(image)
        if self.image_adapters is not None:
            image_features = [a(f) for a, f in zip(self.image_adapters, image_features)]
        if self.camera_only:
            radar_features, fused = [], image_features
        else:
            radar_features = self.radar_encoder(radar)
            if self.radar_adapters is not None:
                radar_features = [a(f) for a, f in zip(self.radar_adapters, radar_features)]
            fused = [fuse(i, r) for fuse, i, r in zip(self.fusion, image_features, radar_features)]
        x, decoder_features, scaled = self.decoder(fused)
        out = dict(self.head(x))
        out['depth_scales'] = {s: self.max_depth * d for s, d in scaled.items()}
        if return_features:
            out['features'] = {'image': image_features, 'radar': radar_features, 'fused': fused,
                               'decoder': decoder_features}
        return out
