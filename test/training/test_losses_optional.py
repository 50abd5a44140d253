"""Optional distillation terms (FSNet, confidence-aware, CRKD) on tiny cases worked out by hand."""

import math

import pytest
import torch
from training.losses.optional import confidence_weighted_kd, ConfidenceHead, fsnet_kd, laplacian_nll, relation_kd
from training.losses.optional import spatial_gram


def _map(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_fsnet_by_hand_with_sigma_floor():
    # pixel 0: |10 - 12| / 2 + ln 2; pixel 1: 0 / 0.1 + ln 0.1 (sigma 0.05 clamped to 0.1)
    expected = ((1 + math.log(2)) + math.log(0.1)) / 2
    value = fsnet_kd(_map([12.0, 10.0]), _map([10.0, 10.0]), _map([2.0, 0.05]), min_sigma=0.1)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_laplacian_nll_masks_the_top_residuals():
    pred = _map([1.0, 2.0, 3.0, 4.0, 10.0, 0.0])
    gt = _map([2.0, 4.0, 6.0, 8.0, 20.0, 0.0])        # residuals 1, 2, 3, 4, 10; the last pixel has no GT
    mask = gt > 0
    # s = 0: NLL = residual; the top 20 % of 5 residuals (one: 10) is masked -> (1 + 2 + 3 + 4) / 4
    assert float(laplacian_nll(torch.zeros_like(pred), pred, gt, mask, 0.2)) == pytest.approx(2.5)
    # s = ln 2: residual / 2 + ln 2
    s = torch.full_like(pred, math.log(2))
    assert float(laplacian_nll(s, pred, gt, mask, 0.2)) == pytest.approx(1.25 + math.log(2), rel=1e-6)
    assert float(laplacian_nll(torch.zeros_like(pred), pred, gt, mask, 0.0)) == pytest.approx(4.0)


def test_confidence_weighted_kd_by_hand():
    # c = e^{-s} = (1, 0.5), normalised by its mean 0.75 -> (4/3, 2/3); |d_T - d_S| = (3, 6) -> mean(4, 4)
    value = confidence_weighted_kd(_map([13.0, 4.0]), _map([10.0, 10.0]), _map([0.0, math.log(2)]))
    assert float(value) == pytest.approx(4.0, rel=1e-6)


def test_confidence_head_starts_at_unit_confidence():
    head = ConfidenceHead(8)
    assert torch.all(head(torch.randn(2, 8, 4, 4)) == 0)


def test_spatial_gram_and_relation_kd_by_hand():
    # channel 0 = (1, 3), channel 1 = (2, 4): cells (1, 2) and (3, 4); G = F^T F / C
    feature = torch.tensor([[1.0, 3.0], [2.0, 4.0]]).view(1, 2, 1, 2)
    assert spatial_gram(feature, (1, 2))[0].flatten().tolist() == pytest.approx([2.5, 5.5, 5.5, 12.5])
    zero = torch.zeros(1, 5, 1, 2)                      # another width: the Gram matrices still compare
    assert float(relation_kd([feature], [zero], (1, 2))) == pytest.approx((2.5 + 5.5 + 5.5 + 12.5) / 4)
    assert float(relation_kd([feature, feature], [zero, feature], (1, 2))) == pytest.approx(6.5 / 2)
