"""
Supervised depth losses: masked L1, LiRCDepth's rectified L1 with two ground truths, the teacher's radar branch.

Depth maps are (B, 1, H, W) metres; a ground-truth pixel is valid where ``min_depth < g < max_depth``.
Every loss computes in float32 whatever its inputs' dtype (the objective also leaves autocast for its losses), and
the confidence BCE reads logits (``binary_cross_entropy_with_logits``): CUDA autocast refuses the probability
form, and fp16 probabilities near 0 or 1 lose the precision the log needs.
"""

import torch
import torch.nn.functional as F

EPS = 1e-7


def valid_mask(gt, min_depth=1e-3, max_depth=None):
    """Return the bool mask of usable ground-truth pixels: ``min_depth < gt`` (and ``gt < max_depth``), finite."""
    mask = torch.isfinite(gt) & (gt > min_depth)
    if max_depth is not None:
        mask &= gt < max_depth
    return mask


def masked_l1(pred, gt, mask):
    """Return mean |pred - gt| over ``mask``; 0 (still differentiable) when the mask is empty."""
    pred, gt = pred.float(), gt.float()
    mask = mask.to(pred.dtype)
    count = mask.sum()
    return (mask * (pred - torch.where(mask > 0, gt, pred)).abs()).sum() / count.clamp_min(1.0)


def agreement_uncertainty(a, b, alpha=5.0):
    """Return LiRCDepth's per-pixel uncertainty ``1 - exp(-alpha |a - b| / (a + b))`` in [0, 1)."""
    return 1.0 - torch.exp(-alpha * (a - b).abs() / (a + b + EPS))


def rectified_l1(pred, sparse_gt, dense_gt, sparse_mask, dense_mask, alpha=5.0):
    """
    Return LiRCDepth's uncertainty-rectified L1 with a single-scan and a dense ground truth.

    Per pixel, each GT gets ``u = 1 - exp(-alpha |d - g| / (d + g))`` where it is valid and ``u = 1`` where it is
    not; the pair (u_dense, u_sparse) is softmaxed per pixel into weights (w_dense, w_sparse). The dense term
    covers dense pixels without a single-scan measurement, the sparse term the single-scan pixels, each a weighted
    mean ``sum(w |d - g|) / sum(w)`` over its pixels; the loss is their sum. The weights are detached (they steer
    where the loss looks, they are not themselves optimised); LiRCDepth's released code leaves them attached.
    """
    pred, sparse_gt, dense_gt = pred.float(), sparse_gt.float(), dense_gt.float()
    dense_only = dense_mask & ~sparse_mask
    with torch.no_grad():
        u_sparse = torch.where(sparse_mask, agreement_uncertainty(pred, sparse_gt, alpha), torch.ones_like(pred))
        u_dense = torch.where(dense_only, agreement_uncertainty(pred, dense_gt, alpha), torch.ones_like(pred))
        weights = torch.softmax(torch.cat([u_dense, u_sparse], dim=1), dim=1)
    return (_weighted_l1(pred, dense_gt, dense_only, weights[:, 0:1])
            + _weighted_l1(pred, sparse_gt, sparse_mask, weights[:, 1:2]))


def _weighted_l1(pred, gt, mask, weight):
    w = weight * mask.to(pred.dtype)
    error = (pred - torch.where(mask, gt, pred)).abs()
    return (w * error).sum() / w.sum().clamp_min(EPS)


def supervised_loss(pred, sparse_gt, dense_gt, has_dense, kind='l1', alpha=5.0, min_depth=1e-3, max_depth=None):
    """
    Return the supervised loss of a batch: 'l1' (masked L1 on the sparse GT) or 'rectified'.

    With 'rectified', samples whose ``has_dense`` is False get an all-invalid dense GT, so they contribute their
    single-scan term only (the rectification weight is then the same softmax with u_dense = 1).
    """
    sparse_mask = valid_mask(sparse_gt, min_depth, max_depth)
    if kind == 'l1':
        return masked_l1(pred, sparse_gt, sparse_mask)
    dense_mask = valid_mask(dense_gt, min_depth, max_depth) & has_dense.view(-1, 1, 1, 1).to(torch.bool)
    return rectified_l1(pred, sparse_gt, dense_gt, sparse_mask, dense_mask, alpha)


def radar_branch_loss(confidence_logits, coarse_depth, gt, mask, tolerance=0.05):
    """
    Return the teacher's stage-1 loss: L1 of the coarse radar depth plus BCE of the radar confidence (logits).

    The confidence target is 1 where the (detached) coarse depth is within ``tolerance`` (relative) of the lidar
    GT and 0 elsewhere, over the valid GT pixels: the confidence says where the radar-derived depth can be trusted.
    (CaFNet builds its target from 3D boxes instead; boxes are not available for every source here.)
    """
    depth_term = masked_l1(coarse_depth, gt, mask)
    logits = confidence_logits.float()
    with torch.no_grad():
        target = ((coarse_depth.float() - gt.float()).abs() <= tolerance * gt.float()).float()
    m = mask.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    return depth_term + (m * bce).sum() / m.sum().clamp_min(1.0)
