"""
XD-RCDepth's two distillation terms (``../shared/docs/method.md`` section 3).

Depth-distribution KD: a depth map d becomes, per pixel, a distribution over K bins with centres c_k,
``p_k = softmax_k(-|d - c_k| / tau)``; the loss is KL(p_T || p_S) averaged over all pixels (the teacher is dense,
so every pixel carries a target, not only the few with lidar). A student with a bin head may use its own logits
for p_S instead (``student_log_distribution_from_logits``).

Saliency KD: the student's Grad-CAM map (differentiable, ``rcdepth_ros.core.inference.saliency.grad_cam`` with
``create_graph=True``) is pulled towards the teacher's (detached) by L1, L2 or cosine distance
(``saliency_map_loss``); computing both maps in the training step is ``training.objective``'s job.
"""

from rcdepth_ros.errors import ConfigError
import torch
import torch.nn.functional as F


def soft_depth_log_distribution(depth, centers, tau):
    """Return log p (B, K, H, W) with ``p_k = softmax_k(-|depth - c_k| / tau)`` for depth (B, 1, H, W)."""
    logits = -(depth.float() - centers.float().view(1, -1, 1, 1)).abs() / float(tau)
    return F.log_softmax(logits, dim=1)


def student_log_distribution_from_logits(logits, tau=1.0):
    """Return log p (B, K, H, W) of a bin head's logits at temperature ``tau``."""
    return F.log_softmax(logits.float() / float(tau), dim=1)


def depth_distribution_kd(student_log_p, teacher_depth, centers, tau):
    """
    Return KL(p_T || p_S) summed over bins and averaged over every pixel of the batch.

    ``student_log_p`` (B, K, H, W) is the student's log distribution (from its depth map with
    ``soft_depth_log_distribution`` or from its logits); ``teacher_depth`` (B, 1, H, W) is turned into p_T with the
    same ``centers`` and ``tau``. The teacher's entropy term is included, so a student equal to the teacher scores 0.
    """
    if student_log_p.shape[1] != centers.numel():
        raise ConfigError(f'depth-distribution KD: the student distribution has {student_log_p.shape[1]} bins, '
                          f'the centres {centers.numel()}')
    teacher_log_p = soft_depth_log_distribution(teacher_depth.detach(), centers, tau)
    kl = (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(dim=1)
    return kl.mean()


def saliency_map_loss(student_map, teacher_map, kind='l1'):
    """
    Return the distance between saliency maps (B, 1, h, w): 'l1' mean |S - T|, 'l2' mean (S - T)^2, 'cosine'.

    'cosine' is ``1 - cos(S, T)`` of the flattened maps, averaged over the batch (an all-zero map has cosine 0).
    """
    if student_map.shape != teacher_map.shape:
        raise ConfigError(f'saliency KD: student map {tuple(student_map.shape)} and teacher map '
                          f'{tuple(teacher_map.shape)} differ; resize both to a common size')
    teacher_map = teacher_map.detach()
    if kind == 'l1':
        return (student_map - teacher_map).abs().mean()
    if kind == 'l2':
        return ((student_map - teacher_map) ** 2).mean()
    if kind == 'cosine':
        cos = F.cosine_similarity(student_map.flatten(1), teacher_map.flatten(1), dim=1, eps=1e-8)
        return (1.0 - cos).mean()
    raise ConfigError(f"saliency KD loss must be 'l1', 'l2' or 'cosine', got {kind!r}")


def resize_map(value, size):
    """Return ``value`` (B, C, h, w) resized bilinearly to ``size`` (h, w); unchanged when it already fits."""
    if tuple(value.shape[-2:]) == tuple(size):
        return value
    return F.interpolate(value, size=tuple(size), mode='bilinear', align_corners=False)


def distribution_centers(num_bins, spacing, min_depth, max_depth, device=None):
    """Return the bin centres (K,) of the KD distribution (``rcdepth_ros.models.bin_centers``) on ``device``."""
    from rcdepth_ros.models import bin_centers
    return bin_centers(num_bins, spacing, min_depth, max_depth).to(device or torch.device('cpu'))
