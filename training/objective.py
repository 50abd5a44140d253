"""
The training step's loss: supervised terms plus the enabled distillation terms, from one batch.

``TeacherRunner`` runs the frozen teacher on the batch (eval mode, no parameter gradients): depth, bin logits, and
what the enabled terms need (``training.losses.registry``: features, the Grad-CAM map with one forward with
gradients enabled above the saliency layer only and one backward to it); a teacher with lidar input
(``model.lidar_input``) also reads the batch's ``lidar`` channels. Offline targets (``training.targets``) give the
same dict without running it. ``TrainingObjective`` is an ``nn.Module`` holding the student and the terms (with
their training-only modules, in ``objective.kd``, saved in the resume state, never in the model checkpoint); its
``forward`` runs the student (inside the terms' captures, e.g. the differentiable Grad-CAM) and returns the total
loss and its terms. The trainer wraps this module, not the bare student, in DistributedDataParallel.

Precision: the student and the teacher run under the trainer's autocast; every loss is computed in float32 with
autocast off (``loss_precision``), so no loss op meets autocast's lower-precision or banned lists.

Weights: a term's weight is its ``weight``, or with ``grad_fraction`` the value that makes the norm of its
gradient on the student's parameters that fraction of the supervised term's (``balance``, from
``gradient_norms`` measured by the trainer every ``distill.balance_every_steps`` steps, smoothed geometrically);
``distill_active`` (0..1) scales every term during the warm-up ramp.
"""

import contextlib
import math

from rcdepth_ros.config import to_dict
from rcdepth_ros.core.inference.saliency import detach_outputs, grad_cam, GradCAM, saliency_target
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.heads import bin_centers
import torch
from torch import nn
from training.losses.registry import KDContext, teacher_needs, term_class
from training.losses.supervised import radar_branch_loss, supervised_loss, valid_mask


def loss_precision(device_type):
    """Return the context in which losses are computed: autocast off (float32 inputs are each loss's job)."""
    return torch.autocast(device_type, enabled=False)


def teacher_info(model):
    """Return what terms need to know about a teacher before running it (channels, bins, layers, lidar input)."""
    head = model.model_cfg.head
    centers = bin_centers(head.num_bins, head.spacing, head.min_depth, head.max_depth) \
        if head.kind == 'bins' else None
    return {'feature_channels': dict(model.feature_channels), 'bin_centers': centers,
            'saliency_layers': tuple(model.saliency_layers), 'lidar_input': model.model_cfg.lidar_input,
            'architecture': model.model_cfg.architecture}


def _saliency_config(distill_cfg):
    for name in distill_cfg.enabled_terms():
        if 'saliency' in term_class(name).needs:
            return distill_cfg.term(name)
    return None


class TeacherRunner:
    """A frozen teacher model (eval mode, no parameter gradients) and what the enabled terms need from it."""

    def __init__(self, model, distill_cfg):
        """Freeze ``model`` and remember which outputs the terms need."""
        self.model = model.eval().requires_grad_(False)
        self.cfg = distill_cfg
        self.needs = teacher_needs(distill_cfg.enabled_terms())
        self.need_features = 'features' in self.needs
        self.saliency = _saliency_config(distill_cfg)
        self.reads_lidar = bool(model.lidar_channels)

    def __call__(self, image, radar, lidar=None):
        """Return the teacher's detached output dict, with ``saliency`` (B, 1, h, w) when a term needs it."""
        kwargs = {'return_features': self.need_features}
        if self.reads_lidar:
            kwargs['lidar'] = lidar
        if self.saliency is None:
            with torch.no_grad():
                out = self.model(image, radar, **kwargs)
            return out
        sal = self.saliency
        with torch.enable_grad(), GradCAM(self.model, sal.teacher_layer) as cam:
            out = self.model(image, radar, **kwargs)
            y = saliency_target(out['depth'], sal.saliency_target())
            out = detach_outputs(out)
            out['saliency'] = grad_cam(cam.activation, y, create_graph=False, normalise=sal.normalise,
                                       size=sal.size(image.shape[-2:]),
                                       grad_scale=float(image.shape[-2] * image.shape[-1]))
        return out


class TrainingObjective(nn.Module):
    """
    Student + distillation terms; ``forward(image, radar, sparse, dense, has_dense, teacher_out, active)``.

    ``teacher`` is ``teacher_info(teacher_model)`` (a bare ``feature_channels`` dict is accepted too). ``terms`` in
    the result are detached float scalars named ``supervised``, ``radar_branch`` and the distillation terms
    (unweighted). After each forward ``last_raw`` holds the unweighted loss tensors (for ``gradient_norms``).
    """

    def __init__(self, student, experiment, teacher=None):
        """Build the enabled terms (their adapters and heads) and the weight buffers."""
        super().__init__()
        self.student = student
        self.loss_cfg = experiment.loss
        self.distill_cfg = experiment.distill
        self.max_depth = self.loss_cfg.max_depth or experiment.input.max_depth
        info = teacher if isinstance(teacher, dict) and 'feature_channels' in teacher else \
            {'feature_channels': dict(teacher or {}), 'bin_centers': None}
        self.kd = nn.ModuleDict()
        for name in self.distill_cfg.enabled_terms():
            self.kd[name] = term_class(name)(self.distill_cfg.term(name), student, info, experiment)
        self.need_features = any(term.student_features for term in self.kd.values())
        weights = [term.cfg.weight for term in self.kd.values()]
        self.register_buffer('kd_weights', torch.tensor(weights, dtype=torch.float32))
        self.register_buffer('kd_calibrated', torch.zeros(len(weights), dtype=torch.bool))
        self.last_raw = {}

    @property
    def balanced_terms(self):
        """Return the names of the terms weighted by ``grad_fraction``."""
        return [name for name, term in self.kd.items() if term.cfg.grad_fraction is not None]

    def needs_calibration(self):
        """Return True when a ``grad_fraction`` term has not been weighted yet."""
        return any(not bool(self.kd_calibrated[i]) for i, term in enumerate(self.kd.values())
                   if term.cfg.grad_fraction is not None)

    def weights(self):
        """Return {term: current weight}."""
        return {name: float(self.kd_weights[i]) for i, name in enumerate(self.kd)}

    def forward(self, image, radar, sparse_gt, dense_gt, has_dense, teacher_out=None, distill_active=True,
                lidar=None):
        """Return (total loss, {term: detached value}, student output dict); ``lidar`` for a lidar-input model."""
        cfg = self.loss_cfg
        factor = float(distill_active)
        active = list(self.kd.items()) if (factor > 0 and teacher_out is not None) else []
        with contextlib.ExitStack() as stack:
            captures = {}
            for name, term in active:
                manager = term.capture(self.student)
                if manager is not None:
                    captures[name] = stack.enter_context(manager)
            kwargs = {'lidar': lidar} if lidar is not None else {}
            out = self.student(image, radar, return_features=self.need_features and bool(active), **kwargs)
            gt_mask = valid_mask(sparse_gt, cfg.min_depth, self.max_depth)
            context = KDContext(out, teacher_out, sparse_gt, gt_mask)
            for name, captured in captures.items():
                self.kd[name].after_forward(context, captured)
        terms, raw = {}, {}
        with loss_precision(image.device.type):
            raw['supervised'] = supervised_loss(out['depth'].float(), sparse_gt.float(), dense_gt.float(), has_dense,
                                                cfg.supervised, cfg.rectified_alpha, cfg.min_depth, self.max_depth)
            total = cfg.weight * raw['supervised']
            if cfg.radar_branch_weight > 0:
                raw['radar_branch'] = radar_branch_loss(out['radar_confidence_logits'], out['radar_depth'],
                                                        sparse_gt, gt_mask, cfg.radar_confidence_tolerance)
                total = total + cfg.radar_branch_weight * raw['radar_branch']
            for index, (name, term) in enumerate(self.kd.items()):
                if not active:
                    break
                raw[name] = term(context).float()
                total = total + factor * self.kd_weights[index] * raw[name]
        for name, value in raw.items():
            terms[name] = float(value.detach())
        self.last_raw = raw
        return total, terms, out

    def recombine(self, distill_active=1.0):
        """Return the total loss of the last forward with the current weights (after ``balance`` changed them)."""
        cfg, raw = self.loss_cfg, self.last_raw
        total = cfg.weight * raw['supervised']
        if 'radar_branch' in raw:
            total = total + cfg.radar_branch_weight * raw['radar_branch']
        for index, name in enumerate(self.kd):
            if name in raw:
                total = total + float(distill_active) * self.kd_weights[index] * raw[name]
        return total

    def gradient_norms(self, scale=1.0):
        """
        Return {name: norm of the gradient of the unweighted loss ``name`` on the student's parameters}.

        For the losses of the last forward (its graph must still be alive); ``scale`` multiplies the losses before
        differentiating (a gradient scaler's scale: fp16 gradients stay clear of underflow) and divides the norms.
        """
        params = [p for p in self.student.parameters() if p.requires_grad]
        norms = {}
        for name, value in self.last_raw.items():
            if not value.requires_grad:
                norms[name] = 0.0
                continue
            grads = torch.autograd.grad(value * scale, params, retain_graph=True, allow_unused=True)
            squares = [g.float().pow(2).sum() for g in grads if g is not None]
            norms[name] = math.sqrt(float(sum(squares))) / scale if squares else 0.0
        return norms

    def balance(self, norms, smoothing=0.5):
        """
        Re-weight the ``grad_fraction`` terms from ``gradient_norms`` (geometric smoothing with the previous weight).

        Returns {term: weighted gradient norm / supervised gradient norm} for every term of ``norms``, after the new
        weights (the ratio the next steps train with, before the warm-up factor).
        """
        reference = norms.get('supervised', 0.0) * self.loss_cfg.weight
        ratios = {}
        for index, (name, term) in enumerate(self.kd.items()):
            if name not in norms:
                continue
            fraction = term.cfg.grad_fraction
            if fraction is not None and reference > 0 and norms[name] > 0:
                wanted = fraction * reference / norms[name]
                if bool(self.kd_calibrated[index]):
                    wanted = math.exp(smoothing * math.log(float(self.kd_weights[index])) +
                                      (1.0 - smoothing) * math.log(wanted))
                self.kd_weights[index] = wanted
                self.kd_calibrated[index] = True
            ratios[name] = float(self.kd_weights[index]) * norms[name] / reference if reference > 0 else float('nan')
        return ratios


def check_teacher_for_student(teacher_cfgs, student_input, where):
    """Raise ConfigError unless a teacher's InputConfig equals the student's (the teacher reads its batch)."""
    teacher_input = teacher_cfgs
    mine, theirs = to_dict(student_input), to_dict(teacher_input)
    differ = sorted(k for k in mine if mine[k] != theirs.get(k))
    if differ:
        raise ConfigError(f'{where}: its input configuration differs from the student one in {differ} (teacher '
                          f'{ {k: theirs.get(k) for k in differ} }, student { {k: mine[k] for k in differ} }); the '
                          f'teacher reads the student batch, so train the teacher at the same input size and radar '
                          f'channels')
