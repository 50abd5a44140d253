"""Supervised losses on tiny cases whose values are worked out by hand in the comments."""

import math

import pytest
import torch
from training.losses.supervised import agreement_uncertainty, masked_l1, radar_branch_loss, rectified_l1
from training.losses.supervised import supervised_loss, valid_mask


def _map(values):
    """Return a (1, 1, 1, N) depth map."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_masked_l1_by_hand_and_nan_outside_the_mask():
    pred = _map([1.0, 2.0, 3.0, 4.0]).requires_grad_(True)
    gt = _map([2.0, 0.0, 1.0, 4.0])
    gt_nan = _map([2.0, float('nan'), 1.0, 4.0])
    # valid: pixels 0, 2, 3 -> |1 - 2| + |3 - 1| + |4 - 4| = 3 over 3 pixels
    assert float(masked_l1(pred, gt, valid_mask(gt)).detach()) == pytest.approx(1.0)
    loss = masked_l1(pred, gt_nan, valid_mask(gt_nan))
    assert float(loss.detach()) == pytest.approx(1.0)
    loss.backward()
    # d/dpred of mean |p - g|: sign(p - g) / 3 at valid pixels, 0 at the invalid one
    assert torch.allclose(pred.grad.flatten(), torch.tensor([-1 / 3, 0.0, 1 / 3, 0.0]))


def test_masked_l1_empty_mask_is_zero_with_finite_gradient():
    pred = _map([5.0, 6.0]).requires_grad_(True)
    loss = masked_l1(pred, _map([0.0, 0.0]), valid_mask(_map([0.0, 0.0])))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(pred.grad == 0)


def test_valid_mask_range():
    gt = _map([0.0, 0.5, 50.0, 120.0, float('inf')])
    assert valid_mask(gt, 1e-3, 100.0).flatten().tolist() == [False, True, True, False, False]


def test_agreement_uncertainty_by_hand():
    # 1 - exp(-5 * |3 - 1| / (3 + 1)) = 1 - exp(-2.5)
    assert float(agreement_uncertainty(torch.tensor(3.0), torch.tensor(1.0))) == pytest.approx(1 - math.exp(-2.5))
    assert float(agreement_uncertainty(torch.tensor(7.0), torch.tensor(7.0))) == 0.0


def test_rectified_l1_by_hand():
    # pixel 0: sparse GT 10, pred 8 (dense GT there too, but a single-scan pixel is not in the dense term)
    # pixel 1: dense GT 4 only, pred 5;  pixel 2: sparse GT 4, pred 4
    pred = _map([8.0, 5.0, 4.0])
    sparse = _map([10.0, 0.0, 4.0])
    dense = _map([9.0, 4.0, 4.0])
    sparse_mask, dense_mask = sparse > 0, dense > 0
    u0 = 1 - math.exp(-5 * 2 / 18)          # pixel 0, sparse; its dense u is 1 (not a dense-only pixel)
    w0 = math.exp(u0) / (math.exp(1.0) + math.exp(u0))
    w2 = math.exp(0.0) / (math.exp(1.0) + math.exp(0.0))   # pixel 2: u_sparse = 0, u_dense = 1
    sparse_term = (w0 * 2.0 + w2 * 0.0) / (w0 + w2)
    dense_term = 1.0                        # one dense-only pixel: its weight cancels, |5 - 4| = 1
    value = rectified_l1(pred, sparse, dense, sparse_mask, dense_mask, alpha=5.0)
    assert float(value) == pytest.approx(sparse_term + dense_term, rel=1e-6)


def test_supervised_loss_kinds_and_has_dense():
    pred = _map([8.0, 5.0, 4.0]).repeat(2, 1, 1, 1)
    sparse = _map([10.0, 0.0, 4.0]).repeat(2, 1, 1, 1)
    dense = _map([9.0, 4.0, 4.0]).repeat(2, 1, 1, 1)
    l1 = supervised_loss(pred, sparse, dense, torch.tensor([True, True]), kind='l1')
    assert float(l1) == pytest.approx(1.0)   # |8 - 10| and |4 - 4| on both samples: 4 / 4
    both = supervised_loss(pred, sparse, dense, torch.tensor([True, True]), kind='rectified')
    none = supervised_loss(pred, sparse, dense, torch.tensor([False, False]), kind='rectified')
    only_sparse = rectified_l1(pred, sparse, dense, sparse > 0, torch.zeros_like(dense, dtype=torch.bool))
    assert float(none) == pytest.approx(float(only_sparse))
    assert float(both) > float(none)        # the dense-only pixel adds its own term (|5 - 4| = 1)


def test_rectified_weights_do_not_carry_gradient():
    pred = _map([8.0, 5.0]).requires_grad_(True)
    loss = rectified_l1(pred, _map([10.0, 0.0]), _map([0.0, 4.0]), _map([10.0, 0.0]) > 0, _map([0.0, 4.0]) > 0)
    loss.backward()
    # each term has one pixel: d|p - g|/dp = sign, weights detached
    assert pred.grad.flatten().tolist() == pytest.approx([-1.0, 1.0], rel=1e-6)


def test_radar_branch_loss_by_hand():
    coarse = _map([10.0, 20.0])
    gt = _map([10.2, 30.0])
    confidence = _map([0.8, 0.3])
    logits = torch.log(confidence / (1 - confidence))
    # depth: (0.2 + 10) / 2; targets: |10 - 10.2| <= 0.05 * 10.2 -> 1, |20 - 30| > 1.5 -> 0
    expected = 5.1 + (-math.log(0.8) - math.log(1 - 0.3)) / 2
    assert float(radar_branch_loss(logits, coarse, gt, gt > 0, tolerance=0.05)) == pytest.approx(expected, 1e-5)
    # half-precision inputs: the loss is still computed (and returned) in float32
    half = radar_branch_loss(logits.half(), coarse.half(), gt.half(), gt > 0, tolerance=0.05)
    assert half.dtype == torch.float32 and float(half) == pytest.approx(expected, 1e-2)
