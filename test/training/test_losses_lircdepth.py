"""LiRCDepth distillation terms on tiny cases whose values are worked out by hand."""

import math

import pytest
from rcdepth_ros.errors import ConfigError
import torch
from training.losses.lircdepth import depth_at_scale, FeatureAdapters, inter_depth_kd, pairwise_similarity_kd
from training.losses.lircdepth import pairwise_similarity_kd_multi, pixelwise_feature_kd, similarity_matrix
from training.losses.lircdepth import uncertainty_weighted_l1


def test_feature_kd_weights_the_deepest_map_most():
    fine_s, fine_t = torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)          # |diff| = 1
    deep_s, deep_t = torch.full((1, 3, 2, 2), 2.0), torch.zeros(1, 3, 2, 2)   # |diff| = 2
    # deepest (last) map weight 1, the one before 0.5: 2 * 1 + 1 * 0.5
    assert float(pixelwise_feature_kd([fine_s, deep_s], [fine_t, deep_t], decay=0.5)) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match='teacher map'):
        pixelwise_feature_kd([fine_s], [deep_t])


def test_adapters_map_widths_with_relu():
    adapters = FeatureAdapters([2, 3], [5, 7])
    out = adapters([torch.randn(1, 2, 4, 4), torch.randn(1, 3, 2, 2)])
    assert [tuple(o.shape) for o in out] == [(1, 5, 4, 4), (1, 7, 2, 2)]
    assert all(float(o.detach().min()) >= 0 for o in out)
    with pytest.raises(ConfigError):
        FeatureAdapters([2], [5, 7])


def test_similarity_matrix_by_hand():
    # two cells with channel vectors (1, 0) and (1, 1): cosines 1, 1/sqrt(2)
    feature = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    a = similarity_matrix(feature)[0]
    c = 1 / math.sqrt(2)
    assert a.flatten().tolist() == pytest.approx([1.0, c, c, 1.0], rel=1e-6)


def test_pairwise_kd_by_hand_after_max_pooling():
    # 1x4 maps pooled to 1x2 cells (max over each half)
    student = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2]]).view(1, 2, 1, 4)   # cells (1, 0), (0, 1)
    teacher = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).view(1, 2, 1, 4)  # cells (1, 0), (1, 1)
    # A_S = identity, A_T off-diagonal 1/sqrt(2): sum of squared differences 2 * 1/2 = 1, over N^2 = 4
    assert float(pairwise_similarity_kd(student, teacher, (1, 2))) == pytest.approx(0.25, rel=1e-6)
    # the batch mean: a second, identical sample keeps it at 0.25; channel counts may differ
    assert float(pairwise_similarity_kd(student.repeat(2, 1, 1, 1), teacher.repeat(2, 1, 1, 1), (1, 2))) == \
        pytest.approx(0.25, rel=1e-6)
    wide_teacher = torch.cat([teacher, teacher], dim=1)      # same cosines with twice the channels
    assert float(pairwise_similarity_kd(student, wide_teacher, (1, 2))) == pytest.approx(0.25, rel=1e-6)
    multi = pairwise_similarity_kd_multi([student, student], [teacher, student], (1, 2), decay=0.5)
    assert float(multi) == pytest.approx(0.25)               # first (deepest) weight 1, second matches exactly


def test_uncertainty_weighted_l1_by_hand():
    student = torch.tensor([10.0, 12.0, 5.0, 30.0]).view(1, 1, 1, 4)
    teacher = torch.tensor([10.0, 10.0, 10.0, 0.0]).view(1, 1, 1, 4)   # the last pixel has no teacher depth
    u1 = 1 - math.exp(-5 * 2 / 22)
    u2 = 1 - math.exp(-5 * 5 / 15)
    expected = (u1 * 2 + u2 * 5) / (u1 + u2)
    assert float(uncertainty_weighted_l1(student, teacher, alpha=5.0)) == pytest.approx(expected, rel=1e-5)
    assert float(uncertainty_weighted_l1(teacher[..., :3], teacher[..., :3])) == 0.0


def test_inter_depth_kd_over_scales():
    student = {'depth': torch.full((1, 1, 16, 16), 12.0)}
    teacher = {'depth': torch.full((1, 1, 16, 16), 10.0)}
    # every scale: the same u everywhere, so the weighted mean is |12 - 10| = 2; weights 1, 0.5, 0.25
    assert float(inter_depth_kd(student, teacher, (2, 4, 8), decay=0.5)) == pytest.approx(2 * 1.75, rel=1e-5)


def test_inter_depth_kd_targets_the_teachers_pooled_final_depth():
    student = {'depth': torch.full((1, 1, 16, 16), 12.0)}
    # the teacher's intermediate maps (unsupervised in the CaFNet-style teacher) must not be the target
    teacher = {'depth': torch.full((1, 1, 16, 16), 12.0),
               'depth_scales': {s: torch.full((1, 1, 16 // s, 16 // s), 60.0) for s in (2, 4, 8)}}
    assert float(inter_depth_kd(student, teacher, (2, 4, 8))) == 0.0


def test_depth_at_scale_prefers_own_maps_of_the_right_size():
    depth = torch.arange(16.0).view(1, 1, 4, 4)
    own = torch.full((1, 1, 2, 2), 7.0)
    assert torch.equal(depth_at_scale({'depth': depth, 'depth_scales': {2: own}}, 2), own)
    pooled = depth_at_scale({'depth': depth, 'depth_scales': {2: torch.zeros(1, 1, 3, 3)}}, 2)
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]      # means of the 2x2 blocks
