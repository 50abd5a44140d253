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
from rcdepth_ros.evaluation.metrics import METRIC_NAMES
from rcdepth_ros.models.config import load_model_config
from training.losses.registry import OFFLINE_OUTPUTS, TERMS

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
    ``cache_dir`` or ``$RCDEPTH_CACHE`` or ``.cache/rcdepth``). ``workers``: DataLoader worker processes ('auto':
    all cores but one, at most 8, on CUDA; none on the CPU, where the training step needs the cores);
    ``persistent_workers`` keeps them across epochs; ``pin_memory`` ('auto': on CUDA); ``prefetch`` batches per
    worker.
    """

    source: str = 'astyx'
    root: typing.Optional[str] = None
    options: typing.Dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    train: SplitConfig = dataclasses.field(default_factory=lambda: SplitConfig('train'))
    val: typing.Optional[SplitConfig] = dataclasses.field(default_factory=lambda: SplitConfig('val'))
    augment: typing.Optional[AugmentConfig] = dataclasses.field(default_factory=AugmentConfig)
    cache: bool = True
    cache_dir: typing.Optional[str] = None
    workers: typing.Union[int, str] = 0
    persistent_workers: bool = True
    pin_memory: typing.Union[bool, str] = 'auto'
    prefetch: int = 2

    def __post_init__(self):
        """Check the source name and counts."""
        _need(self.source in source_names(), 'data.source', f'must be one of {source_names()}, got {self.source!r}')
        _need(self.workers == 'auto' if isinstance(self.workers, str) else self.workers >= 0, 'data.workers',
              f"must be >= 0 or 'auto', got {self.workers!r}")
        _need(self.pin_memory in (True, False, 'auto'), 'data.pin_memory', "must be true, false or 'auto'")
        _need(self.prefetch >= 1, 'data.prefetch', 'must be >= 1')


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
    halves them; the bundled demo model uses it). ``cudnn_benchmark``: let cuDNN pick the fastest convolution
    algorithms for the fixed input size (CUDA; TF32 matmuls are allowed too).
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
    cudnn_benchmark: bool = True

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
class TargetsConfig:
    """
    Offline teacher targets (``training.targets``).

    ``offline``: what the enabled terms need from the teacher (depth, bin logits, uncertainty, Grad-CAM saliency) is
    computed once per training frame on the unaugmented frame at the cached base resolution, stored on disk
    (safetensors, keyed by the teacher checkpoint's hash) and cut / mirrored / resized with each step's
    augmentation, so a KD epoch costs about a direct epoch. Terms that read teacher features need the online
    teacher. ``directory`` (default ``<cache dir>/teacher_targets/<teacher hash>``); ``logits_divisor``: the bin
    logits are stored at 1/``logits_divisor`` of the base resolution and resized up with each item.
    """

    offline: bool = False
    directory: typing.Optional[str] = None
    logits_divisor: int = 2

    def __post_init__(self):
        """Check the divisor."""
        _need(self.logits_divisor in (1, 2, 4, 8), 'distill.targets.logits_divisor', 'must be 1, 2, 4 or 8')


class _DistillBase:
    """
    Distillation from a frozen teacher checkpoint (``teacher``: a checkpoint path or stem). Each term is a switch.

    The terms and their options come from ``training.losses.registry`` (one section per registered term).
    ``start_epoch``: epochs trained with the supervised loss only before the KD terms join (warm-up);
    ``ramp_epochs``: then the terms' weights rise linearly from 0 over this many epochs (0: at once).
    ``balance_every_steps``: how often the gradient norms of the terms are measured (logged in ``train.csv`` as
    ``grad_<term>``, each relative to the supervised term's) and terms with ``grad_fraction`` re-weighted.
    ``targets``: offline teacher targets (``TargetsConfig``).
    """

    def __post_init__(self):
        """Check the shared options and that enabled terms have a teacher."""
        _need(self.start_epoch >= 0, 'distill.start_epoch', 'must be >= 0')
        _need(self.ramp_epochs >= 0, 'distill.ramp_epochs', 'must be >= 0')
        _need(self.balance_every_steps >= 1, 'distill.balance_every_steps', 'must be >= 1')
        enabled = self.enabled_terms()
        if enabled and not self.teacher:
            raise ConfigError(f'distill: terms {enabled} are enabled but distill.teacher is not set')
        if self.teacher and not enabled:
            raise ConfigError('distill.teacher is set but no distillation term is enabled')
        if self.targets.offline:
            online = [n for n in enabled if set(TERMS[n].needs) - set(OFFLINE_OUTPUTS)]
            _need(not online, 'distill.targets.offline', f'terms {online} read teacher features, which offline '
                  f'targets do not hold ({list(OFFLINE_OUTPUTS)}); run them with the online teacher')

    @property
    def TERMS(self):  # noqa: N802 (the old class constant's name)
        """Return the registered term names in loss order."""
        return tuple(TERMS)

    def enabled_terms(self):
        """Return the names of the enabled terms, in loss order."""
        return [name for name in TERMS if getattr(self, name).enabled]

    def term(self, name):
        """Return the config of term ``name``."""
        return getattr(self, name)


def _distill_config_class():
    fields = [('teacher', typing.Optional[str], None),
              ('start_epoch', int, 0),
              ('ramp_epochs', float, 0.0),
              ('balance_every_steps', int, 10),
              ('targets', TargetsConfig, dataclasses.field(default_factory=TargetsConfig))]
    fields += [(name, cls.Config, dataclasses.field(default_factory=cls.Config)) for name, cls in TERMS.items()]
    cls = dataclasses.make_dataclass('DistillConfig', fields, bases=(_DistillBase,))
    cls.__module__ = __name__
    cls.__doc__ = _DistillBase.__doc__
    return cls


DistillConfig = _distill_config_class()


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
