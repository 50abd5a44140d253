"""
What every distillation term shares.

``TermConfig`` (enabled, weight, grad_fraction), ``KDContext`` (what a term reads) and the ``KDTerm`` base class.
The registry of terms is ``training.losses.registry``.
"""

import dataclasses
import typing

from rcdepth_ros.errors import ConfigError
from torch import nn

TEACHER_OUTPUTS = ('depth', 'logits', 'uncertainty', 'saliency', 'features', 'depth_scales')
OFFLINE_OUTPUTS = ('depth', 'logits', 'uncertainty', 'saliency')


@dataclasses.dataclass
class TermConfig:
    """
    What every term has: ``enabled``, ``weight`` and ``grad_fraction``.

    ``grad_fraction`` (None: off) replaces ``weight``: the term is weighted so that the norm of its gradient on the
    student's parameters is this fraction of the supervised term's (re-measured every
    ``distill.balance_every_steps`` steps while distilling, smoothed).
    """

    enabled: bool = False
    weight: float = 1.0
    grad_fraction: typing.Optional[float] = None

    term = ''          # the term's name (set by each subclass): error messages name distill.<term>.<field>

    def __post_init__(self):
        """Check the common fields."""
        self.need(self.weight >= 0, 'weight', f'must be >= 0, got {self.weight}')
        self.need(self.grad_fraction is None or self.grad_fraction > 0, 'grad_fraction',
                  f'must be > 0 or null, got {self.grad_fraction}')

    def need(self, ok, field, text):
        """Raise ConfigError ``distill.<term>.<field>: <text>`` unless ``ok``."""
        if not ok:
            raise ConfigError(f'distill.{self.term}.{field}: {text}')


@dataclasses.dataclass
class KDContext:
    """
    What a term's ``forward`` reads.

    ``student``: the student's output dict (``depth``, ``logits``, ``bin_centers``, ``uncertainty``, ``features``
    as the model gives them); ``teacher``: the teacher's (online) or the offline targets, with ``valid`` (B, 1, H, W)
    marking pixels the teacher saw (offline targets cover only the rows of the unaugmented input); ``sparse_gt``
    the lidar ground truth (B, 1, H, W) of all rings; ``gt_mask`` its valid pixels; ``extras`` what terms'
    ``after_forward`` left (name -> value).
    """

    student: dict
    teacher: dict
    sparse_gt: typing.Any
    gt_mask: typing.Any
    extras: dict = dataclasses.field(default_factory=dict)


class KDTerm(nn.Module):
    """Base class of a distillation term (see the module docstring)."""

    name = ''
    Config = TermConfig
    needs = frozenset({'depth'})
    student_features = False
    teacher_saliency = None

    def __init__(self, cfg, student, teacher_info, experiment):
        """Keep the term's config; subclasses build their modules and check what the student / teacher offer."""
        super().__init__()
        self.cfg = cfg

    def teacher_outputs(self):
        """Return what this configured term reads from the teacher (default: the class's ``needs``)."""
        return set(self.needs)

    def capture(self, student):
        """Return a context manager around the student's forward (default: none)."""
        return None

    def after_forward(self, context, captured):
        """Compute what the term needs from the student's forward while it is captured (default: nothing)."""

    def forward(self, context):
        """Return the unweighted loss (float32 scalar)."""
        raise NotImplementedError
