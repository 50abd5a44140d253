"""Grad-CAM: the formula, normalisation, target sensitivity, the differentiable variant, nothing kept between calls."""

import pytest
from rcdepth_ros.core.inference.saliency import compute_saliency, grad_cam, GradCAM, normalise_maps, saliency_target
from rcdepth_ros.errors import ConfigError, ModelInputError
from rcdepth_ros.models.export import example_inputs
import torch
from torch import nn
import torch.nn.functional as F


class Squares(nn.Module):
    """Layer ``features`` has two channels: channel 0 lit on the left half, channel 1 on the right; depth = sum A^2."""

    saliency_layers = ('features',)

    def __init__(self):
        super().__init__()
        self.features = nn.Identity()

    def forward(self, image, radar=None):
        a = self.features(image)
        return {'depth': (a ** 2).sum(dim=1, keepdim=True)}


def _halves(batch=1, height=8, width=16):
    x = torch.zeros(batch, 2, height, width)
    x[:, 0, :, :width // 2] = 1.0
    x[:, 1, :, width // 2:] = 2.0
    return x


def test_formula_on_a_model_with_known_gradients():
    x = _halves()
    model = Squares()
    _, mean_map = compute_saliency(model, x, None, target='mean', size=(8, 16))
    # dy/dA = 2A / N: alpha_0 = 2 * 1 * 64 / 128 / 128, alpha_1 = 2 * 2 * 64 / 128 / 128; S = alpha_0 A_0 + alpha_1 A_1
    cam = torch.zeros(1, 1, 8, 16)
    cam[..., :8] = 2 * 64 / 128 / 128 * 1.0
    cam[..., 8:] = 4 * 64 / 128 / 128 * 2.0
    assert torch.allclose(mean_map, cam / cam.max())
    assert float(mean_map.max()) == pytest.approx(1.0)


def test_region_target_highlights_its_region():
    x = _halves()
    model = Squares()
    _, mean_map = compute_saliency(model, x, None, target='mean', size=(8, 16))
    _, left_map = compute_saliency(model, x, None, target=(0, 0, 8, 8), size=(8, 16))
    # only channel 0 has gradient inside the left box, so only the left half is salient
    assert torch.all(left_map[..., :8] == 1.0) and torch.all(left_map[..., 8:] == 0.0)
    assert float(mean_map[..., 8:].min()) == pytest.approx(1.0) and float(mean_map[..., :8].max()) < 0.5
    mask = torch.zeros(8, 16)
    mask[:, 12:] = 1.0
    _, mask_map = compute_saliency(model, x, None, target=mask, size=(8, 16))
    assert torch.all(mask_map[..., 8:] == 1.0) and torch.all(mask_map[..., :8] == 0.0)


def test_student_saliency_range_and_target_sensitivity(tiny_student):
    model, input_cfg, _ = tiny_student
    image, radar = example_inputs(input_cfg, 64, 128, 2, 0, radar_fraction=0.05)
    out, mean_map = compute_saliency(model, image, radar)
    assert mean_map.shape == (2, 1, 64, 128) and mean_map.dtype == torch.float32
    assert float(mean_map.min()) >= 0.0 and float(mean_map.max()) <= 1.0
    assert torch.allclose(mean_map.amax(dim=(2, 3)), torch.ones(2, 1))
    assert not out['depth'].requires_grad and not mean_map.requires_grad
    _, box_map = compute_saliency(model, image, radar, target=(0, 0, 32, 16))
    assert float((box_map - mean_map).abs().max()) > 0.05
    _, other_layer = compute_saliency(model, image, radar, layer='decoder.stages.3', size=(16, 32))
    assert other_layer.shape == (2, 1, 16, 32)
    _, minmax = compute_saliency(model, image, radar, normalise='minmax')
    assert torch.allclose(minmax.amin(dim=(2, 3)), torch.zeros(2, 1))
    # each sample's map is its own: running one sample alone gives the same map
    _, single = compute_saliency(model, image[1:], radar[1:])
    assert torch.allclose(single[0], mean_map[1], atol=1e-5)


def test_differentiable_variant_for_the_student_detached_for_the_teacher(tiny_student):
    student, input_cfg, _ = tiny_student
    student.train()
    image, radar = example_inputs(input_cfg, 64, 128, 2, 0, radar_fraction=0.05)
    with GradCAM(student) as cam:
        out = student(image, radar)
        student_map = grad_cam(cam.activation, saliency_target(out['depth']), create_graph=True, size=(16, 32))
    assert student_map.requires_grad
    teacher = type(student)(student.model_cfg, student.input_cfg).eval().requires_grad_(False)
    with torch.enable_grad(), GradCAM(teacher) as cam:
        teacher_out = teacher(image, radar)
        teacher_map = grad_cam(cam.activation, saliency_target(teacher_out['depth']), size=(16, 32))
    assert not teacher_map.requires_grad
    loss = F.l1_loss(student_map, teacher_map) + out['depth'].mean()   # the forward graph is still there
    loss.backward()
    grads = [p.grad for n, p in student.named_parameters() if n.startswith('image_encoder')]
    assert all(g is not None for g in grads) and any(float(g.abs().max()) > 0 for g in grads)


def test_normalisation_edge_cases():
    zero = torch.zeros(1, 1, 4, 4)
    assert torch.equal(normalise_maps(zero), zero) and torch.equal(normalise_maps(zero, 'minmax'), zero)
    tiny = torch.full((1, 1, 2, 2), 1e-20)
    tiny[..., 0, 0] = 2e-20
    assert float(normalise_maps(tiny).max()) == pytest.approx(1.0)   # no epsilon swamps tiny maps
    with pytest.raises(ConfigError):
        normalise_maps(zero, 'sum')


def test_bad_layers_and_targets(tiny_student):
    model, _, _ = tiny_student
    with pytest.raises(ConfigError, match='not a module'):
        GradCAM(model, 'decoder.nope')
    with pytest.raises(ConfigError, match='not a tensor'):
        image, radar = example_inputs(model.input_cfg, 64, 128)
        compute_saliency(model, image, radar, layer='image_encoder')
    depth = torch.rand(1, 1, 8, 8)
    with pytest.raises(ModelInputError, match='empty'):
        saliency_target(depth, (10, 10, 12, 12))
    with pytest.raises(ModelInputError, match='selects no pixel'):
        saliency_target(depth, torch.zeros(8, 8))
    with pytest.raises(ConfigError):
        saliency_target(depth, 'median')
    with pytest.raises(ConfigError, match='no activation'):
        grad_cam(None, depth.sum())
