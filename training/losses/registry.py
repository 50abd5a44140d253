"""
The distillation terms, in one registry: name -> (config, loss module, what it needs from the teacher).

Each term is a ``KDTerm`` subclass living in its family's file (``xd.py``, ``lircdepth.py``, ``optional.py``):

- ``name``: its key in ``distill:`` (``distill.<name>.enabled``, ``.weight``, ...);
- ``Config``: a dataclass deriving from ``TermConfig`` (``enabled``, ``weight``, ``grad_fraction``) with the term's
  own options, checked in its ``__post_init__``;
- ``needs``: what it reads from the teacher, a subset of ``TEACHER_OUTPUTS`` (the online ``TeacherRunner`` computes
  only what the enabled terms need; offline targets hold ``OFFLINE_OUTPUTS``, so a term needing more must run
  with the online teacher);
- ``student_features``: whether it reads the student's feature lists;
- an ``nn.Module`` built with ``(config, student, teacher_info, experiment)``, holding any training-only modules
  (feature adapters, a confidence head), whose ``forward(context)`` returns the unweighted loss (float32 scalar).
  It may also offer ``capture(student)`` (a context manager around the student's forward) and
  ``after_forward(context, captured)`` (e.g. the student's differentiable Grad-CAM), and ``teacher_saliency``
  (the Grad-CAM settings the teacher's target map needs).

A new term is one file (its Config and KDTerm) and one line in ``TERM_CLASSES`` below. ``training.config`` builds
the ``distill:`` section's schema from this registry; ``training.objective`` runs the enabled terms and weighs each
either by its ``weight`` or, with ``grad_fraction``, so that its gradient norm is that fraction of the supervised
one (measured on the student's parameters, see ``TrainingObjective.balance``).
"""

import importlib

from rcdepth_ros.errors import ConfigError
from training.losses.base import KDContext, KDTerm, OFFLINE_OUTPUTS, TEACHER_OUTPUTS, TermConfig  # noqa: F401

# The one list of terms (module.Class), in the order they are added to the loss: a new term adds one line here.
TERM_CLASSES = (
    'training.losses.xd.DepthDistributionTerm',
    'training.losses.xd.SaliencyTerm',
    'training.losses.lircdepth.FeatureTerm',
    'training.losses.lircdepth.PairwiseTerm',
    'training.losses.lircdepth.InterDepthTerm',
    'training.losses.optional.FSNetTerm',
    'training.losses.optional.ConfidenceTerm',
    'training.losses.optional.RelationTerm',
)


def _load(path):
    module, _, name = path.rpartition('.')
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, KDTerm) and cls.name):
        raise ConfigError(f'distillation registry: {path} is not a named KDTerm')
    return cls


TERMS = {cls.name: cls for cls in map(_load, TERM_CLASSES)}


def term_names():
    """Return the registered term names in registry order (the order terms are added to the loss)."""
    return tuple(TERMS)


def term_class(name):
    """Return the KDTerm class of ``name`` or raise ConfigError listing the known ones."""
    try:
        return TERMS[name]
    except KeyError:
        raise ConfigError(f'unknown distillation term {name!r}; known: {list(TERMS)}') from None


def teacher_needs(names):
    """Return the union of what the named terms read from the teacher."""
    needs = set()
    for name in names:
        needs |= set(term_class(name).needs)
    return needs
