"""XD-RCDepth distillation terms on tiny cases whose values are worked out by hand."""

import math

import pytest
from rcdepth_ros.errors import ConfigError
import torch
from training.losses.xd import depth_distribution_kd, saliency_map_loss, soft_depth_log_distribution
from training.losses.xd import student_log_distribution_from_logits

CENTERS = torch.tensor([0.0, 1.0, 2.0])


def _depth(values):
    """Return a (1, 1, 1, N) depth map."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def _softmax(logits):
    total = sum(math.exp(v) for v in logits)
    return [math.exp(v) / total for v in logits]


def test_soft_distribution_by_hand():
    # d = 1, tau = 1: logits -|1 - c| = (-1, 0, -1)
    p = soft_depth_log_distribution(_depth([1.0]), CENTERS, 1.0).exp().flatten()
    assert p.tolist() == pytest.approx(_softmax([-1.0, 0.0, -1.0]), rel=1e-6)
    # tau = 0.5 sharpens: logits (-2, 0, -2)
    p = soft_depth_log_distribution(_depth([1.0]), CENTERS, 0.5).exp().flatten()
    assert p.tolist() == pytest.approx(_softmax([-2.0, 0.0, -2.0]), rel=1e-6)


def test_kl_by_hand_and_pixel_average():
    p_t = _softmax([-1.0, 0.0, -1.0])      # teacher at 1 m
    p_s = _softmax([-2.0, -1.0, 0.0])      # student at 2 m
    kl = sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    student = soft_depth_log_distribution(_depth([2.0]), CENTERS, 1.0)
    assert float(depth_distribution_kd(student, _depth([1.0]), CENTERS, 1.0)) == pytest.approx(kl, rel=1e-6)
    # two pixels, the second one agreeing: the mean over pixels halves it
    student = soft_depth_log_distribution(_depth([2.0, 0.0]), CENTERS, 1.0)
    assert float(depth_distribution_kd(student, _depth([1.0, 0.0]), CENTERS, 1.0)) == pytest.approx(kl / 2, 1e-6)


def test_kl_zero_when_equal_and_gradient_towards_teacher():
    student_depth = _depth([2.0]).requires_grad_(True)
    log_p = soft_depth_log_distribution(student_depth, CENTERS, 1.0)
    assert float(depth_distribution_kd(log_p, _depth([2.0]), CENTERS, 1.0).detach()) == pytest.approx(0.0, abs=1e-7)
    log_p = soft_depth_log_distribution(student_depth, CENTERS, 1.0)
    depth_distribution_kd(log_p, _depth([0.5]), CENTERS, 1.0).backward()
    assert float(student_depth.grad) > 0          # a smaller student depth lowers the loss


def test_student_logits_variant():
    # logits equal to the teacher's own -|d - c| / tau give KL 0; uniform logits give KL = log K - H(p_T)
    teacher = _depth([1.0])
    same = torch.tensor([-1.0, 0.0, -1.0]).view(1, 3, 1, 1)
    log_p = student_log_distribution_from_logits(same, 1.0)
    assert float(depth_distribution_kd(log_p, teacher, CENTERS, 1.0)) == pytest.approx(0.0, abs=1e-7)
    uniform = student_log_distribution_from_logits(torch.zeros(1, 3, 1, 1), 1.0)
    p_t = _softmax([-1.0, 0.0, -1.0])
    expected = math.log(3) + sum(p * math.log(p) for p in p_t)
    assert float(depth_distribution_kd(uniform, teacher, CENTERS, 1.0)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match='bins'):
        depth_distribution_kd(uniform, teacher, torch.tensor([0.0, 1.0]), 1.0)


def test_saliency_map_losses_by_hand():
    student = torch.tensor([0.0, 0.5, 1.0, 1.0]).view(1, 1, 2, 2)
    teacher = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert float(saliency_map_loss(student, teacher, 'l1')) == pytest.approx((0.5 + 1.0) / 4)
    assert float(saliency_map_loss(student, teacher, 'l2')) == pytest.approx((0.25 + 1.0) / 4)
    # S.T = 1.5, |S| = 1.5, |T| = sqrt(2)
    assert float(saliency_map_loss(student, teacher, 'cosine')) == pytest.approx(1 - 1.5 / (1.5 * math.sqrt(2)))
    student = student.clone().requires_grad_(True)
    teacher_grad = teacher.clone().requires_grad_(True)
    saliency_map_loss(student, teacher_grad, 'l1').backward()
    assert student.grad is not None and teacher_grad.grad is None     # the teacher map is a target
    with pytest.raises(ConfigError, match='differ'):
        saliency_map_loss(student, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ConfigError, match="'l1'"):
        saliency_map_loss(student, teacher, 'l3')
