"""
The training step's loss: supervised terms plus the enabled distillation terms, from one batch.

``TeacherRunner`` runs the frozen teacher on the batch: depth, intermediate depths, features when a term needs
them and, for saliency KD, its Grad-CAM map (one forward with gradients enabled above the saliency layer only,
one backward to that layer; ``core.inference.saliency``). ``TrainingObjective`` is an ``nn.Module`` holding the
student and the training-only modules (feature adapters, the confidence head); its ``forward`` runs the student
(with a differentiable Grad-CAM when saliency KD is on) and returns the total loss and its terms. The trainer wraps
this module, not the bare student, in DistributedDataParallel, so adapters are synchronised like the student.
Training-only modules live in ``objective.kd`` and are saved in the resume state, never in the model checkpoint.
"""

from rcdepth_ros.core.inference.saliency import detach_outputs, grad_cam, GradCAM, saliency_target
from rcdepth_ros.errors import ConfigError
import torch
from torch import nn
from training.losses.lircdepth import FeatureAdapters, inter_depth_kd, pairwise_similarity_kd_multi
from training.losses.lircdepth import pixelwise_feature_kd
from training.losses.optional import confidence_weighted_kd, ConfidenceHead, fsnet_kd, laplacian_nll, relation_kd
from training.losses.supervised import radar_branch_loss, supervised_loss, valid_mask
from training.losses.xd import depth_distribution_kd, distribution_centers, saliency_map_loss
from training.losses.xd import soft_depth_log_distribution, student_log_distribution_from_logits

FEATURE_TERMS = ('feature', 'pairwise', 'crkd', 'confidence')


def saliency_size(image, divisor):
    """Return the common (h, w) of the student's and the teacher's saliency maps."""
    return (image.shape[-2] // divisor, image.shape[-1] // divisor)


def _target(cfg_target):
    return cfg_target if isinstance(cfg_target, str) else tuple(int(v) for v in cfg_target)


class TeacherRunner:
    """A frozen teacher model (eval mode, no parameter gradients) and what the enabled terms need from it."""

    def __init__(self, model, distill_cfg):
        """Freeze ``model`` and remember which outputs the terms need."""
        self.model = model.eval().requires_grad_(False)
        self.cfg = distill_cfg
        terms = set(distill_cfg.enabled_terms())
        self.need_features = bool(terms & {'feature', 'pairwise', 'crkd'})
        self.need_saliency = 'saliency' in terms

    def __call__(self, image, radar):
        """Return the teacher's detached output dict, with ``saliency`` (B, 1, h, w) when saliency KD is on."""
        if not self.need_saliency:
            with torch.no_grad():
                return self.model(image, radar, return_features=self.need_features)
        sal = self.cfg.saliency
        with torch.enable_grad(), GradCAM(self.model, sal.teacher_layer) as cam:
            out = self.model(image, radar, return_features=self.need_features)
            y = saliency_target(out['depth'], _target(sal.target))
            out = detach_outputs(out)
            out['saliency'] = grad_cam(cam.activation, y, create_graph=False, normalise=sal.normalise,
                                       size=saliency_size(image, sal.size_divisor),
                                       grad_scale=float(image.shape[-2] * image.shape[-1]))
        return out


class TrainingObjective(nn.Module):
    """
    Student + training-only modules; ``forward(batch, teacher_out, distill_active)`` -> (total loss, terms).

    ``teacher_channels`` is the teacher's ``feature_channels`` (needed to build the feature adapters); ``terms`` in
    the result are detached scalars named ``supervised``, ``radar_branch`` and the distillation terms (unweighted).
    """

    def __init__(self, student, experiment, teacher_channels=None):
        """Build the adapters and heads the enabled terms need."""
        super().__init__()
        self.student = student
        self.loss_cfg = experiment.loss
        self.distill_cfg = experiment.distill
        self.max_depth = self.loss_cfg.max_depth or experiment.input.max_depth
        self.kd = nn.ModuleDict()
        terms = set(self.distill_cfg.enabled_terms())
        self.need_features = bool(terms & set(FEATURE_TERMS))
        if 'feature' in terms:
            for branch in self.distill_cfg.feature.branches:
                s_ch = student.feature_channels.get(branch) or []
                t_ch = (teacher_channels or {}).get(branch) or []
                if s_ch and t_ch:
                    self.kd[f'adapt_{branch}'] = FeatureAdapters(s_ch, t_ch)
            if not any(k.startswith('adapt_') for k in self.kd):
                raise ConfigError(f'distill.feature: neither branch {list(self.distill_cfg.feature.branches)} exists '
                                  f'in both the student and the teacher')
        if 'confidence' in terms:
            self.kd['confidence_head'] = ConfidenceHead(student.feature_channels['decoder'][-1])
        if 'fsnet' in terms and student.model_cfg.head.kind != 'bins':
            raise ConfigError('distill.fsnet needs a student with a bin head (its uncertainty is sigma)')
        dd = self.distill_cfg.dd
        if dd.enabled and dd.student_logits and student.model_cfg.head.kind != 'bins':
            raise ConfigError('distill.dd.student_logits needs a student with a bin head')
        centers = distribution_centers(dd.num_bins, dd.spacing, dd.min_depth, dd.max_depth)
        self.register_buffer('dd_centers', centers, persistent=False)

    def _student_forward(self, image, radar, saliency_on):
        if not saliency_on:
            return self.student(image, radar, return_features=self.need_features), None
        sal = self.distill_cfg.saliency
        with GradCAM(self.student, sal.student_layer) as cam:
            out = self.student(image, radar, return_features=self.need_features)
            y = saliency_target(out['depth'], _target(sal.target))
            # create_graph keeps the map differentiable: its loss reaches the student's parameters
            student_map = grad_cam(cam.activation, y, create_graph=True, normalise=sal.normalise,
                                   size=saliency_size(image, sal.size_divisor),
                                   grad_scale=float(image.shape[-2] * image.shape[-1]))
        return out, student_map

    def forward(self, image, radar, sparse_gt, dense_gt, has_dense, teacher_out=None, distill_active=True):
        """Return (total loss, {term: detached value}, student output dict)."""
        cfg, dcfg = self.loss_cfg, self.distill_cfg
        active = set(dcfg.enabled_terms()) if (distill_active and teacher_out is not None) else set()
        out, student_map = self._student_forward(image, radar, 'saliency' in active)
        depth = out['depth']
        terms = {}
        total = cfg.weight * self._log(terms, 'supervised', supervised_loss(
            depth, sparse_gt, dense_gt, has_dense, cfg.supervised, cfg.rectified_alpha, cfg.min_depth,
            self.max_depth))
        if cfg.radar_branch_weight > 0:
            mask = valid_mask(sparse_gt, cfg.min_depth, self.max_depth)
            total = total + cfg.radar_branch_weight * self._log(terms, 'radar_branch', radar_branch_loss(
                out['radar_confidence'], out['radar_depth'], sparse_gt, mask, cfg.radar_confidence_tolerance))
        for name in DISTILL_ORDER:
            if name in active:
                value = getattr(self, f'_kd_{name}')(out, teacher_out, student_map, sparse_gt)
                total = total + getattr(dcfg, name).weight * self._log(terms, name, value)
        return total, terms, out

    @staticmethod
    def _log(terms, name, value):
        terms[name] = float(value.detach())
        return value

    def _kd_dd(self, out, teacher_out, student_map, sparse_gt):
        dd = self.distill_cfg.dd
        if dd.student_logits:
            centers = out['bin_centers']
            student_log_p = student_log_distribution_from_logits(out['logits'], dd.tau)
        else:
            centers = self.dd_centers
            student_log_p = soft_depth_log_distribution(out['depth'], centers, dd.tau)
        return depth_distribution_kd(student_log_p, teacher_out['depth'], centers, dd.tau)

    def _kd_saliency(self, out, teacher_out, student_map, sparse_gt):
        return saliency_map_loss(student_map, teacher_out['saliency'], self.distill_cfg.saliency.loss)

    def _kd_feature(self, out, teacher_out, student_map, sparse_gt):
        decay = self.distill_cfg.feature.decay
        total = 0.0
        for key, adapters in self.kd.items():
            if key.startswith('adapt_'):
                branch = key[len('adapt_'):]
                total = total + pixelwise_feature_kd(adapters(out['features'][branch]),
                                                     teacher_out['features'][branch], decay)
        return total

    def _kd_pairwise(self, out, teacher_out, student_map, sparse_gt):
        p = self.distill_cfg.pairwise
        return pairwise_similarity_kd_multi(out['features']['decoder'], teacher_out['features']['decoder'],
                                            p.pool_size, p.decay)

    def _kd_inter_depth(self, out, teacher_out, student_map, sparse_gt):
        p = self.distill_cfg.inter_depth
        return inter_depth_kd(out, teacher_out, p.scales, p.alpha, p.decay)

    def _kd_fsnet(self, out, teacher_out, student_map, sparse_gt):
        return fsnet_kd(out['depth'], teacher_out['depth'], out['uncertainty'], self.distill_cfg.fsnet.min_sigma)

    def _kd_confidence(self, out, teacher_out, student_map, sparse_gt):
        c = self.distill_cfg.confidence
        log_scale = self.kd['confidence_head'](out['features']['decoder'][-1])
        mask = valid_mask(sparse_gt, self.loss_cfg.min_depth, self.max_depth)
        nll = laplacian_nll(log_scale, out['depth'], sparse_gt, mask, c.outlier_fraction)
        return confidence_weighted_kd(out['depth'], teacher_out['depth'], log_scale) + c.nll_weight * nll

    def _kd_crkd(self, out, teacher_out, student_map, sparse_gt):
        c = self.distill_cfg.crkd
        return relation_kd([out['features']['fused'][i] for i in c.levels],
                           [teacher_out['features']['fused'][i] for i in c.levels], c.grid)


DISTILL_ORDER = ('dd', 'saliency', 'feature', 'pairwise', 'inter_depth', 'fsnet', 'confidence', 'crkd')
