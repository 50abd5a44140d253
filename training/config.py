"""
The experiment schema: one YAML per experiment, built into strict dataclasses with ``rcdepth_ros.config.from_dict``.

An experiment YAML has the model's two sections, ``input:`` and ``model:`` (read by
``rcdepth_ros.models.load_model_config``, schema unchanged), and the training sections defined here: ``data:``
(``DataConfig``), ``train:`` (``TrainConfig``), ``loss:`` (``LossConfig``) and ``distill:`` (``DistillConfig``),
plus an optional ``name``. A typo anywhere raises ConfigError naming the key path.

Sharing: a top-level ``base:`` (a path, or a list of paths, relative to the file that names them) is loaded first
and the file's own content is merged over it: mappings merge key by key, everything else (lists, numbers) is
replaced. A model YAML from ``config/models/`` is a valid base. Command-line overrides ``key.sub=value``
(``rcdepth_ros.config.apply_overrides``) apply last, to the merged data.

Randomness has one source, ``train.seed``: model initialisation, data order and the augmentation draws all derive
from it (``data.augment`` therefore has no ``seed`` key here).
"""

import copy
import dataclasses
from pathlib import Path
import typing

from rcdepth_ros.config import apply_overrides, from_dict, load_yaml, to_dict
from rcdepth_ros.data.augment import AugmentConfig
from rcdepth_ros.data.registry import source_names
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.config import BIN_SPACINGS, load_model_config

SECTIONS = ('name', 'input', 'model', 'data', 'train', 'loss', 'distill')


def _need(ok, where, text):
    if not ok:
        raise ConfigError(f'{where}: {text}')


@dataclasses.dataclass
class SplitConfig:
    """Which frames of the source: a ``split`` it defines ('train', 'val', ...) and/or a ``frames`` selection."""

    split: typing.Optional[str] = None
    frames: typing.Optional[str] = None


@dataclasses.dataclass
class DataConfig:
    """
    Where training and validation frames come from (``rcdepth_ros.data.registry.open_reader``).

    ``options`` go to the reader's constructor (synthetic: ``config: {...}``). ``augment`` (None: off) applies to
    the training frames only. ``cache`` keeps each frame's decoded, scaled base on disk (``data.cache``; directory
    ``cache_dir`` or ``$RCDEPTH_CACHE`` or ``.cache/rcdepth``). ``workers``: DataLoader worker processes.
    """

    source: str = 'astyx'
    root: typing.Optional[str] = None
    options: typing.Dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    train: SplitConfig = dataclasses.field(default_factory=lambda: SplitConfig('train'))
    val: typing.Optional[SplitConfig] = dataclasses.field(default_factory=lambda: SplitConfig('val'))
    augment: typing.Optional[AugmentConfig] = dataclasses.field(default_factory=AugmentConfig)
    cache: bool = True
    cache_dir: typing.Optional[str] = None
    workers: int = 0

    def __post_init__(self):
        """Check the source name and counts."""
        _need(self.source in source_names(), 'data.source', f'must be one of {source_names()}, got {self.source!r}')
        _need(self.workers >= 0, 'data.workers', f'must be >= 0, got {self.workers}')


@dataclasses.dataclass
class TrainConfig:
    """
    Optimisation and run mechanics.

    AdamW; the learning rate decays polynomially (``poly_power``) from ``lr`` to ``end_lr_factor * lr`` over all
    steps. ``amp``: 'auto' (CUDA: bf16 autocast where supported, else fp16 with a gradient scaler; CPU: off),
    'off', 'fp16' (CUDA only), 'bf16' (CUDA, or CPU autocast). ``grad_clip``: max global gradient norm (0: off).
    ``checkpoint_every_steps``: how often the resume state is written (also at every epoch end).
    ``max_steps_per_epoch`` caps an epoch (quick runs, timing). ``threads``: torch intra-op threads (0: torch's
    default). ``best_metric`` at ``best_cap`` selects the best-by-validation checkpoint (lower is better, except
    delta metrics). ``checkpoint_dtype``: storage type of the model checkpoints' floating-point tensors ('float16'
    halves them; the bundled demo model uses it).
    """

    seed: int = 42
    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-4
    end_lr_factor: float = 0.1
    poly_power: float = 0.9
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    grad_clip: float = 1.0
    amp: typing.Union[bool, str] = 'auto'
    device: str = 'auto'
    threads: int = 0
    channels_last: bool = True
    checkpoint_every_steps: int = 50
    val_every_epochs: int = 1
    val_batch_size: int = 4
    log_every_steps: int = 10
    max_steps_per_epoch: typing.Optional[int] = None
    sample_images: int = 2
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True
    best_metric: str = 'mae'
    best_cap: float = 80.0
    checkpoint_dtype: str = 'float32'

    def __post_init__(self):
        """Check ranges and choices."""
        _need(self.seed >= 0, 'train.seed', 'must be >= 0')
        _need(self.epochs >= 1, 'train.epochs', f'must be >= 1, got {self.epochs}')
        _need(self.batch_size >= 1, 'train.batch_size', f'must be >= 1, got {self.batch_size}')
        _need(self.lr > 0, 'train.lr', f'must be > 0, got {self.lr}')
        _need(0.0 <= self.end_lr_factor <= 1.0, 'train.end_lr_factor', f'must be in [0, 1], got {self.end_lr_factor}')
        _need(self.poly_power > 0, 'train.poly_power', 'must be > 0')
        _need(self.weight_decay >= 0 and self.adam_eps > 0, 'train', 'need weight_decay >= 0 and adam_eps > 0')
        _need(self.grad_clip >= 0, 'train.grad_clip', 'must be >= 0 (0: off)')
        if isinstance(self.amp, bool):       # YAML reads a bare off / on as a boolean
            self.amp = 'auto' if self.amp else 'off'
        _need(self.amp in ('auto', 'off', 'fp16', 'bf16'), 'train.amp',
              f"must be 'auto', 'off', 'fp16' or 'bf16', got {self.amp!r}")
        _need(self.threads >= 0, 'train.threads', 'must be >= 0 (0: torch default)')
        for name in ('checkpoint_every_steps', 'val_every_epochs', 'val_batch_size', 'log_every_steps'):
            _need(getattr(self, name) >= 1, f'train.{name}', f'must be >= 1, got {getattr(self, name)}')
        _need(self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1, 'train.max_steps_per_epoch',
              'must be >= 1 or null')
        _need(self.sample_images >= 0, 'train.sample_images', 'must be >= 0')
        from rcdepth_ros.evaluation.metrics import METRIC_NAMES
        _need(self.best_metric in METRIC_NAMES, 'train.best_metric', f'must be one of {METRIC_NAMES}')
        _need(self.checkpoint_dtype in ('float32', 'float16', 'bfloat16'), 'train.checkpoint_dtype',
              f"must be 'float32', 'float16' or 'bfloat16', got {self.checkpoint_dtype!r}")


@dataclasses.dataclass
class LossConfig:
    """
    The supervised terms.

    ``supervised``: 'l1' (masked L1 on the sparse lidar GT) or 'rectified' (LiRCDepth's uncertainty-rectified L1
    on the single-scan and the dense GT, ``losses.supervised.rectified_l1``; frames without dense GT fall back to
    the masked L1). ``radar_branch_weight`` trains the teacher's stage-1 radar branch (coarse depth L1, confidence
    BCE, ``losses.supervised.radar_branch_loss``); models without one must leave it 0. GT outside
    (``min_depth``, ``max_depth``) is ignored (``max_depth`` None: the model input's max_depth).
    """

    supervised: str = 'l1'
    weight: float = 1.0
    rectified_alpha: float = 5.0
    radar_branch_weight: float = 0.0
    radar_confidence_tolerance: float = 0.05
    min_depth: float = 1e-3
    max_depth: typing.Optional[float] = None

    def __post_init__(self):
        """Check the choices."""
        _need(self.supervised in ('l1', 'rectified'), 'loss.supervised',
              f"must be 'l1' or 'rectified', got {self.supervised!r}")
        _need(self.weight >= 0 and self.radar_branch_weight >= 0, 'loss', 'weights must be >= 0')
        _need(self.rectified_alpha > 0 and self.radar_confidence_tolerance > 0, 'loss',
              'rectified_alpha and radar_confidence_tolerance must be > 0')
        _need(self.min_depth >= 0 and (self.max_depth is None or self.max_depth > self.min_depth), 'loss',
              'need 0 <= min_depth < max_depth')


@dataclasses.dataclass
class DepthDistributionKD:
    """
    XD-RCDepth depth-distribution KD: KL(p_T || p_S) over ``num_bins`` bins, p = softmax(-|d - c_k| / tau).

    ``student_logits``: use the student's own bin logits (softmax(logits / tau)) and its bin centres for p_S
    (and for the teacher's p_T) instead of its depth map; needs a bin head.
    """

    enabled: bool = False
    weight: float = 1.0
    num_bins: int = 64
    spacing: str = 'sid'
    min_depth: float = 0.5
    max_depth: float = 100.0
    tau: float = 1.0
    student_logits: bool = False


@dataclasses.dataclass
class SaliencyKD:
    """
    XD-RCDepth saliency KD: the teacher's Grad-CAM is the target of the student's, both computed in the step.

    ``loss``: 'l1', 'l2' or 'cosine'. ``target``: 'mean' (mean predicted depth) or a box [x0, y0, x1, y1] in model
    input pixels. Layers default to each model's ``saliency_layers[0]``. Both maps are resized to the input size
    divided by ``size_divisor`` before normalising (``normalise``: 'max' or 'minmax').
    """

    enabled: bool = False
    weight: float = 1.0
    loss: str = 'l1'
    target: typing.Union[str, typing.List[int]] = 'mean'
    student_layer: typing.Optional[str] = None
    teacher_layer: typing.Optional[str] = None
    size_divisor: int = 8
    normalise: str = 'max'


@dataclasses.dataclass
class FeatureKD:
    """LiRCDepth pixel-wise feature KD: L1 between adapted student and teacher encoder features, weight decay^i."""

    enabled: bool = False
    weight: float = 1.0
    branches: typing.Tuple[str, ...] = ('image', 'radar')
    decay: float = 0.5


@dataclasses.dataclass
class PairwiseKD:
    """LiRCDepth pair-wise similarity KD on the decoder features, max-pooled to ``pool_size`` cells."""

    enabled: bool = False
    weight: float = 1.0
    pool_size: typing.Tuple[int, int] = (5, 5)
    decay: float = 0.5


@dataclasses.dataclass
class InterDepthKD:
    """LiRCDepth uncertainty-aware inter-depth KD on the depth maps at 1/``scales``, u = 1 - exp(-alpha r)."""

    enabled: bool = False
    weight: float = 1.0
    alpha: float = 5.0
    scales: typing.Tuple[int, ...] = (2, 4, 8)
    decay: float = 0.5


@dataclasses.dataclass
class FSNetKD:
    """FSNet uncertainty-weighted KD: mean(|d_T - d_S| / sigma + log sigma), sigma the student's uncertainty."""

    enabled: bool = False
    weight: float = 1.0
    min_sigma: float = 0.1


@dataclasses.dataclass
class ConfidenceKD:
    """Confidence-aware KD: a training-only head predicts a Laplacian scale b; c = 1/b weights |d_T - d_S|."""

    enabled: bool = False
    weight: float = 1.0
    nll_weight: float = 0.1
    outlier_fraction: float = 0.2


@dataclasses.dataclass
class RelationKD:
    """CRKD relation KD: L1 between spatial Gram matrices of student and teacher fused features."""

    enabled: bool = False
    weight: float = 1.0
    levels: typing.Tuple[int, ...] = (2, 3, 4)
    grid: typing.Tuple[int, int] = (6, 8)


@dataclasses.dataclass
class DistillConfig:
    """
    Distillation from a frozen teacher checkpoint (``teacher``: a checkpoint path or stem). Each term is a switch.

    ``start_epoch``: epochs trained with the supervised loss only before the KD terms join (LiRCDepth's warm-up).
    """

    teacher: typing.Optional[str] = None
    start_epoch: int = 0
    dd: DepthDistributionKD = dataclasses.field(default_factory=DepthDistributionKD)
    saliency: SaliencyKD = dataclasses.field(default_factory=SaliencyKD)
    feature: FeatureKD = dataclasses.field(default_factory=FeatureKD)
    pairwise: PairwiseKD = dataclasses.field(default_factory=PairwiseKD)
    inter_depth: InterDepthKD = dataclasses.field(default_factory=InterDepthKD)
    fsnet: FSNetKD = dataclasses.field(default_factory=FSNetKD)
    confidence: ConfidenceKD = dataclasses.field(default_factory=ConfidenceKD)
    crkd: RelationKD = dataclasses.field(default_factory=RelationKD)

    TERMS = ('dd', 'saliency', 'feature', 'pairwise', 'inter_depth', 'fsnet', 'confidence', 'crkd')

    def __post_init__(self):
        """Check every term's options and that enabled terms have a teacher."""
        for name in self.TERMS:
            _need(getattr(self, name).weight >= 0, f'distill.{name}.weight', 'must be >= 0')
        dd = self.dd
        _need(dd.num_bins >= 2 and dd.tau > 0 and 0 < dd.min_depth < dd.max_depth, 'distill.dd',
              'need num_bins >= 2, tau > 0 and 0 < min_depth < max_depth')
        _need(dd.spacing in BIN_SPACINGS, 'distill.dd.spacing', f'must be one of {BIN_SPACINGS}')
        sal = self.saliency
        _need(sal.loss in ('l1', 'l2', 'cosine'), 'distill.saliency.loss', f"must be 'l1', 'l2' or 'cosine', "
              f'got {sal.loss!r}')
        _need(sal.target == 'mean' or (isinstance(sal.target, list) and len(sal.target) == 4),
              'distill.saliency.target', f"must be 'mean' or a box [x0, y0, x1, y1], got {sal.target!r}")
        _need(sal.size_divisor in (1, 2, 4, 8, 16, 32), 'distill.saliency.size_divisor', 'must be 1, 2, 4, .., 32')
        _need(sal.normalise in ('max', 'minmax'), 'distill.saliency.normalise', "must be 'max' or 'minmax'")
        _need(self.feature.branches and set(self.feature.branches) <= {'image', 'radar'},
              'distill.feature.branches', "must name 'image' and/or 'radar'")
        for name in ('feature', 'pairwise', 'inter_depth'):
            _need(0 < getattr(self, name).decay <= 1, f'distill.{name}.decay', 'must be in (0, 1]')
        _need(all(p >= 1 for p in self.pairwise.pool_size), 'distill.pairwise.pool_size', 'must be >= 1')
        _need(self.inter_depth.alpha > 0 and self.inter_depth.scales and
              set(self.inter_depth.scales) <= {2, 4, 8}, 'distill.inter_depth', 'need alpha > 0 and scales in 2, 4, 8')
        _need(self.fsnet.min_sigma > 0, 'distill.fsnet.min_sigma', 'must be > 0')
        _need(0 <= self.confidence.outlier_fraction < 1 and self.confidence.nll_weight >= 0, 'distill.confidence',
              'need 0 <= outlier_fraction < 1 and nll_weight >= 0')
        _need(self.crkd.levels and set(self.crkd.levels) <= {0, 1, 2, 3, 4} and all(g >= 1 for g in self.crkd.grid),
              'distill.crkd', 'levels must be among 0..4 (1/2 .. 1/32) and grid >= 1')
        _need(self.start_epoch >= 0, 'distill.start_epoch', 'must be >= 0')
        if self.enabled_terms() and not self.teacher:
            raise ConfigError(f'distill: terms {self.enabled_terms()} are enabled but distill.teacher is not set')
        if self.teacher and not self.enabled_terms():
            raise ConfigError('distill.teacher is set but no distillation term is enabled')

    def enabled_terms(self):
        """Return the names of the enabled terms."""
        return [name for name in self.TERMS if getattr(self, name).enabled]


@dataclasses.dataclass
class ExperimentConfig:
    """A whole experiment: the model's ``input`` / ``model`` sections and the training sections above."""

    input: typing.Any  # noqa: A003 (the section's name in every YAML)
    model: typing.Any
    data: DataConfig
    train: TrainConfig
    loss: LossConfig
    distill: DistillConfig
    name: str = ''

    def to_dict(self):
        """Return the plain data of the resolved configuration (what ``config.yaml`` of a run holds)."""
        data = to_dict(self.data)
        if data.get('augment'):
            data['augment'].pop('seed', None)      # follows train.seed (see the module docstring)
        return {'name': self.name, 'input': to_dict(self.input), 'model': to_dict(self.model), 'data': data,
                'train': to_dict(self.train), 'loss': to_dict(self.loss), 'distill': to_dict(self.distill)}


def merge(base, override):
    """Return ``base`` with ``override`` merged over it: mappings key by key, anything else replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def load_with_bases(path, _chain=()):
    """Return the plain data of an experiment YAML with its ``base:`` files merged under it (recursively)."""
    path = Path(path).resolve()
    if path in _chain:
        raise ConfigError(f'{path}: base files form a cycle: {" -> ".join(str(p) for p in _chain + (path,))}')
    data = load_yaml(path)
    bases = data.pop('base', None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{path}: base must be a path or a list of paths, got {bases!r}')
    merged = {}
    for base in bases:
        merged = merge(merged, load_with_bases(path.parent / base, _chain + (path,)))
    return merge(merged, data)


def experiment_from_dict(data, where='experiment'):
    """Build the ExperimentConfig of plain data; unknown sections, keys and bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping, got {type(data).__name__}')
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f'{where}: unknown top-level key(s) {unknown}; known: {list(SECTIONS)} and base')
    augment = (data.get('data') or {}).get('augment')
    if isinstance(augment, dict) and 'seed' in augment:
        raise ConfigError(f'{where}: data.augment.seed is not used: the augmentation draws follow train.seed')
    input_cfg, model_cfg = load_model_config({'input': data.get('input'), 'model': data.get('model') or {}})
    try:
        data_cfg = from_dict(DataConfig, data.get('data'), 'data')
        train_cfg = from_dict(TrainConfig, data.get('train'), 'train')
        loss_cfg = from_dict(LossConfig, data.get('loss'), 'loss')
        distill_cfg = from_dict(DistillConfig, data.get('distill'), 'distill')
    except ConfigError as exc:
        raise ConfigError(f'{where}: {exc}') from exc
    name = data.get('name') or ''
    if not isinstance(name, str):
        raise ConfigError(f'{where}: name must be a string, got {name!r}')
    if loss_cfg.radar_branch_weight > 0 and model_cfg.architecture != 'teacher':
        raise ConfigError(f'{where}: loss.radar_branch_weight needs the teacher architecture (its radar branch)')
    return ExperimentConfig(input_cfg, model_cfg, data_cfg, train_cfg, loss_cfg, distill_cfg, name)


def load_experiment(path, overrides=()):
    """Return the ExperimentConfig of an experiment YAML (bases merged, then ``key.sub=value`` overrides)."""
    data = apply_overrides(load_with_bases(path), overrides)
    try:
        return experiment_from_dict(data, str(path))
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(str(path)) else f'{path}: {message}') from exc
