"""
Decoders: the student's pw-DASPP decoder, LiRCDepth's transposed inverted-residual one, the teacher's BTS one.

Each returns its output features at full resolution and its features at 1/16, 1/8, 1/4, 1/2, 1/1 (``widths``
of the config), which the models expose as ``features['decoder']`` for pair-wise distillation.

- ``PointwiseDenseASPP`` + ``UpsamplingDecoder``: the student's decoder (see ``DecoderConfig``).
- ``TransposedIRDecoder``: LiRCDepth's decoder of transposed inverted-residual blocks with intermediate depths.
- ``BTSDecoder``: the teacher's BTS-style decoder with confidence-gated radar fusion, DenseASPP and local planar
  guidance at 1/8, 1/4, 1/2.
"""

from rcdepth_ros.models.blocks import ConvBNAct, SeparableConv, upsample2
from rcdepth_ros.models.fusion import GatedFusion
from rcdepth_ros.models.heads import FinalReduction, local_planar_guidance, PlaneReduction
import torch
from torch import nn
import torch.nn.functional as F


class PointwiseDenseASPP(nn.Module):
    """
    DenseASPP with depthwise-separable dilated branches.

    Branch i reads the input concatenated with branches 0..i-1, applies a 1x1 bottleneck, a depthwise 3x3 dilated
    by ``rates[i]`` and a pointwise 1x1 to ``growth`` channels (each with BN + ReLU). A 1x1 projection maps the
    input and all branches to ``out_channels``.
    """

    def __init__(self, in_channels, out_channels, rates=(3, 6, 12, 18, 24), bottleneck=64, growth=32):
        """Build the branches and the projection."""
        super().__init__()
        self.branches = nn.ModuleList()
        width = in_channels
        for rate in rates:
            self.branches.append(nn.Sequential(
                ConvBNAct(width, bottleneck, 1),
                ConvBNAct(bottleneck, bottleneck, 3, groups=bottleneck, dilation=rate),
                ConvBNAct(bottleneck, growth, 1)))
            width += growth
        self.project = ConvBNAct(width, out_channels, 1)

    def forward(self, x):
        """Return the projected dense multi-rate features."""
        for branch in self.branches:
            x = torch.cat([x, branch(x)], dim=1)
        return self.project(x)


class UpsamplingDecoder(nn.Module):
    """
    The student decoder: five upsampling stages (1/16 .. 1/1) and a point-wise DenseASPP.

    Each stage upsamples by 2 (nearest), concatenates the fused skip features of that scale (none at 1/1) and
    applies two depthwise-separable convolutions; the DenseASPP sits at ``daspp_scale`` (after the 1/16 or 1/8
    stage, or on the 1/32 input).
    """

    def __init__(self, skip_channels, decoder_cfg):
        """Build the stages for the five fused feature widths ``skip_channels`` (1/2 .. 1/32)."""
        super().__init__()
        cfg = decoder_cfg
        self.daspp_scale = cfg.daspp_scale
        self.widths = list(cfg.widths)
        in_ch = skip_channels[4]
        daspp = lambda ch: PointwiseDenseASPP(ch, ch, cfg.daspp_rates, cfg.daspp_bottleneck,  # noqa: E731
                                              cfg.daspp_growth)
        self.daspp = daspp(in_ch) if cfg.daspp_scale == 32 else None
        stages = []
        for i, width in enumerate(cfg.widths):
            skip = skip_channels[3 - i] if i < 4 else 0
            stages.append(nn.Sequential(SeparableConv(in_ch + skip, width), SeparableConv(width, width)))
            in_ch = width
            if (cfg.daspp_scale == 16 and i == 0) or (cfg.daspp_scale == 8 and i == 1):
                self.daspp = daspp(width)
        self.stages = nn.ModuleList(stages)

    def forward(self, fused):
        """Return (full-resolution features, [features at 1/16, 1/8, 1/4, 1/2, 1/1])."""
        x = fused[4]
        if self.daspp_scale == 32:
            x = self.daspp(x)
        outputs = []
        for i, stage in enumerate(self.stages):
            x = upsample2(x)
            if i < 4:
                x = torch.cat([x, fused[3 - i]], dim=1)
            x = stage(x)
            if (self.daspp_scale == 16 and i == 0) or (self.daspp_scale == 8 and i == 1):
                x = self.daspp(x)
            outputs.append(x)
        return x, outputs


class TransposedInvertedResidual(nn.Module):
    """LiRCDepth's block: 1x1 expansion, transposed depthwise 3x3 (stride 1 or 2), transposed 1x1 projection + BN."""

    def __init__(self, in_channels, out_channels, expansion=6, stride=1):
        """Build the three stages (no residual connection, no activation after the projection)."""
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvBNAct(in_channels, hidden, 1, act='relu6')
        self.depthwise = nn.Sequential(
            nn.ConvTranspose2d(hidden, hidden, 3, stride, 1, output_padding=stride - 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6())
        self.project = nn.Sequential(nn.ConvTranspose2d(hidden, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels))

    def forward(self, x):
        """Apply the block."""
        return self.project(self.depthwise(self.expand(x)))


class TransposedIRDecoder(nn.Module):
    """
    LiRCDepth's decoder of transposed inverted-residual blocks with intermediate depth heads.

    Stages 1/32 -> 1/16 -> 1/8 -> 1/4 -> 1/2 are sequences of transposed inverted-residual
    blocks (the last one upsamples); each stage after the first reads the previous output concatenated with the
    fused skip features. 1x1 conv + ReLU heads give depths (as fractions of max_depth) at 1/8, 1/4, 1/2 and 1/1;
    they are nearest-upsampled and concatenated with the 1/1 features before a 3x3 conv + ReLU.
    """

    def __init__(self, skip_channels, decoder_cfg):
        """Build the stages for the five fused feature widths ``skip_channels`` (1/2 .. 1/32)."""
        super().__init__()
        cfg = decoder_cfg
        widths, t = cfg.widths, cfg.expansion
        stages, in_ch = [], skip_channels[4]
        for i in range(4):
            inner = widths[i] // cfg.ir_reductions[i]
            blocks = [TransposedInvertedResidual(in_ch, inner, t)]
            blocks += [TransposedInvertedResidual(inner, inner, t) for _ in range(cfg.ir_blocks[i] - 2)]
            blocks.append(TransposedInvertedResidual(inner, widths[i], t, stride=2))
            stages.append(nn.Sequential(*blocks))
            in_ch = widths[i] + skip_channels[3 - i]
        self.stages = nn.ModuleList(stages)
        self.up1 = nn.ConvTranspose2d(in_ch, widths[4], 3, 2, 1, output_padding=1, bias=False)
        self.depth_heads = nn.ModuleDict({str(s): nn.Sequential(nn.Conv2d(widths[i], 1, 1, bias=False), nn.ReLU())
                                          for s, i in ((8, 1), (4, 2), (2, 3), (1, 4))})
        self.fuse = nn.Sequential(nn.Conv2d(widths[4] + 4, widths[4], 3, 1, 1, bias=False), nn.ReLU())

    def forward(self, fused):
        """Return (final features, [features at 1/16 .. 1/1], {8, 4, 2: depth / max_depth at that scale})."""
        x, outputs, scaled = fused[4], [], {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            outputs.append(x)
            scale = 2 ** (4 - i)
            if scale in (8, 4, 2):
                scaled[scale] = self.depth_heads[str(scale)](x)
            x = torch.cat([x, fused[3 - i]], dim=1)
        x = self.up1(x)
        upsampled = [F.interpolate(scaled[s], scale_factor=float(s), mode='nearest') for s in (8, 4, 2)]
        x = self.fuse(torch.cat([x] + upsampled + [self.depth_heads['1'](x)], dim=1))
        outputs.append(x)
        return x, outputs, scaled


class UpConv(nn.Module):
    """BTS upconv: nearest x2, 3x3 conv, ELU, then BatchNorm."""

    def __init__(self, in_channels, out_channels, batch_norm=True):
        """Build the convolution (and BN)."""
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.ELU())
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.01, eps=1.1e-5) if batch_norm else nn.Identity()

    def forward(self, x):
        """Upsample and convolve."""
        return self.bn(self.conv(upsample2(x)))


def _conv_elu(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.ELU())


class DenseASPP(nn.Module):
    """BTS-style DenseASPP: branch i = BN-ReLU-1x1(2g)-BN-ReLU-3x3 dilated (g) on input + earlier branches."""

    def __init__(self, in_channels, growth, rates=(3, 6, 12, 18, 24)):
        """Build the branches."""
        super().__init__()
        self.branches = nn.ModuleList()
        width = in_channels
        for rate in rates:
            self.branches.append(nn.Sequential(
                nn.BatchNorm2d(width, momentum=0.01), nn.ReLU(),
                nn.Conv2d(width, 2 * growth, 1, bias=False), nn.BatchNorm2d(2 * growth, momentum=0.01), nn.ReLU(),
                nn.Conv2d(2 * growth, growth, 3, 1, rate, dilation=rate, bias=False)))
            width += growth
        self.out_channels = growth * len(rates)

    def forward(self, x):
        """Return the concatenated branch outputs (not the input)."""
        outs = []
        for branch in self.branches:
            y = branch(torch.cat([x] + outs, dim=1))
            outs.append(y)
        return torch.cat(outs, dim=1)


class BTSDecoder(nn.Module):
    """
    The teacher's decoder (CaFNet on BTS), ``widths`` w0..w4 at 1/16 .. 1/1 (BTS: 512, 256, 128, 64, 32).

    Radar features of the second radar encoder enter through ``GatedFusion`` at 1/32, 1/16, 1/8, 1/4, 1/2,
    weighted by the stage-1 radar confidence. The DenseASPP at 1/8 reads the 1/8 features concatenated with the
    image skip; plane heads at 1/8, 1/4, 1/2 give full-resolution depths through local planar guidance, which
    are fed (as fractions of max_depth) to the next stages and to the final 3x3 conv.
    """

    def __init__(self, image_channels, radar_channels, decoder_cfg, max_depth):
        """Build the stages."""
        super().__init__()
        w = list(decoder_cfg.widths)
        ic, rc = image_channels, radar_channels
        self.max_depth = float(max_depth)
        self.gates = nn.ModuleList([GatedFusion(rc[4], ic[4]), GatedFusion(rc[3], w[0]), GatedFusion(rc[2], w[2]),
                                    GatedFusion(rc[1], w[2]), GatedFusion(rc[0], w[3])])
        self.up16 = UpConv(ic[4], w[0])
        self.conv16 = _conv_elu(w[0] + ic[3], w[0])
        self.up8 = UpConv(w[0], w[1])
        self.conv8 = nn.Sequential(_conv_elu(w[1] + ic[2], w[1]), nn.BatchNorm2d(w[1], momentum=0.01, eps=1.1e-5))
        self.daspp = DenseASPP(w[1] + ic[2], decoder_cfg.daspp_growth, decoder_cfg.daspp_rates)
        self.daspp_conv = _conv_elu(w[1] + self.daspp.out_channels, w[2])
        self.plane8 = PlaneReduction(w[2], w[2], max_depth)
        self.up4 = UpConv(w[2], w[2])
        self.conv4 = _conv_elu(w[2] + ic[1] + 1, w[2])
        self.plane4 = PlaneReduction(w[2], w[2] // 2, max_depth)
        self.up2 = UpConv(w[2], w[3])
        self.conv2 = _conv_elu(w[3] + ic[0] + 1, w[3])
        self.plane2 = PlaneReduction(w[3], w[3] // 2, max_depth)
        self.up1 = UpConv(w[3], w[4], batch_norm=False)
        self.reduce1 = FinalReduction(w[4], w[4] // 2)
        self.conv1 = _conv_elu(w[4] + 4, w[4])

    def forward(self, image, radar, confidence):
        """Return (final features, [features at 1/16 .. 1/1], fused [1/2 .. 1/32], {8, 4, 2: depth metres})."""
        md = self.max_depth
        x5 = self.gates[0](F.relu(image[4]), radar[4], confidence)
        x = self.conv16(torch.cat([self.up16(x5), image[3]], dim=1))
        x16 = self.gates[1](x, radar[3], confidence)
        x = self.conv8(torch.cat([self.up8(x16), image[2]], dim=1))
        x = self.daspp_conv(torch.cat([x, self.daspp(torch.cat([x, image[2]], dim=1))], dim=1))
        x8 = self.gates[2](x, radar[2], confidence)
        depth8 = local_planar_guidance(self.plane8(x8), 8, md)
        x = self.conv4(torch.cat([self.up4(x8), image[1], F.avg_pool2d(depth8, 4) / md], dim=1))
        x4 = self.gates[3](x, radar[1], confidence)
        depth4 = local_planar_guidance(self.plane4(x4), 4, md)
        x = self.conv2(torch.cat([self.up2(x4), image[0], F.avg_pool2d(depth4, 2) / md], dim=1))
        x2 = self.gates[4](x, radar[0], confidence)
        depth2 = local_planar_guidance(self.plane2(x2), 2, md)
        up1 = self.up1(x2)
        x1 = self.conv1(torch.cat([up1, self.reduce1(up1), depth2 / md, depth4 / md, depth8 / md], dim=1))
        return x1, [x16, x8, x4, x2, x1], [x2, x4, x8, x16, x5], {8: depth8, 4: depth4, 2: depth2}
