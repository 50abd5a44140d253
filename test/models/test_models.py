"""The three architectures: output contract, features for KD, determinism, variants, sizes against the papers."""

import pytest
from rcdepth_ros.errors import ModelInputError
from rcdepth_ros.models import build_model, load_model_config
from rcdepth_ros.models.complexity import count_macs, count_parameters
from rcdepth_ros.models.export import example_inputs
from rcdepth_ros.paths import config_file
import torch

H, W = 64, 128
LIRCDEPTH_RELEASED_PARAMS = 12.65e6      # method.md: LiRCDepth as released
LIRCDEPTH_RELEASED_GMAC_896x1600 = 118.9
CAFNET_RELEASED_PARAMS = 62.2e6
# CaFNet's count includes the unused ImageNet classifiers of its three torchvision ResNets (fc 512 -> 1000)
CAFNET_UNUSED_FC_PARAMS = 3 * (512 * 1000 + 1000)


def build(name, **overrides):
    input_cfg, model_cfg = load_model_config(config_file(f'models/{name}.yaml'))
    torch.manual_seed(0)
    return build_model(model_cfg, input_cfg, load_pretrained=overrides.get('pretrained', False)).eval()


def run(model, batch=2, seed=0, features=False):
    image, radar = example_inputs(model.input_cfg, H, W, batch, seed, radar_fraction=0.05)
    with torch.no_grad():
        return model(image, radar, return_features=features)


@pytest.mark.parametrize('name', ['student', 'student_camera', 'student_mobilenetv2', 'lircdepth', 'teacher',
                                  'teacher_resnet34'])
def test_output_contract(name):
    model = build(name)
    out = run(model, features=True)
    max_depth = model.model_cfg.head.max_depth
    assert out['depth'].shape == (2, 1, H, W) and out['depth'].dtype == torch.float32
    assert torch.isfinite(out['depth']).all()
    assert float(out['depth'].min()) >= 0.0 and float(out['depth'].max()) <= max_depth
    if model.model_cfg.head.kind == 'bins':
        k = model.model_cfg.head.num_bins
        assert out['logits'].shape == (2, k, H, W) and out['bin_centers'].shape == (k,)
        assert out['uncertainty'].shape == (2, 1, H, W) and float(out['uncertainty'].min()) >= 0
    if model.model_cfg.architecture in ('lircdepth', 'teacher'):
        assert {s: tuple(d.shape) for s, d in out['depth_scales'].items()} == {
            s: (2, 1, H // s, W // s) for s in (8, 4, 2)}
    if model.model_cfg.architecture == 'teacher':
        conf = out['radar_confidence']
        assert conf.shape == (2, 1, H, W) and float(conf.min()) >= 0 and float(conf.max()) <= 1
        assert out['radar_depth'].shape == (2, 1, H, W)
    features = out['features']
    for group in ('image', 'radar', 'fused'):
        strides = (2, 4, 8, 16, 32)
        assert [tuple(f.shape) for f in features[group]] == [
            (2, c, H // s, W // s) for c, s in zip(model.feature_channels[group], strides)], group
    assert [tuple(f.shape) for f in features['decoder']] == [
        (2, c, H // s, W // s) for c, s in zip(model.feature_channels['decoder'], (16, 8, 4, 2, 1))]
    modules = dict(model.named_modules())
    assert model.saliency_layers and all(layer in modules for layer in model.saliency_layers)
    assert 'features' not in run(model, batch=1)


def test_default_saliency_layers_are_at_one_eighth():
    sizes = {}
    for name in ('student', 'lircdepth', 'teacher'):
        model = build(name)
        layer = dict(model.named_modules())[model.saliency_layers[0]]
        handle = layer.register_forward_hook(lambda m, a, o, key=name: sizes.__setitem__(key, tuple(o.shape[-2:])))
        run(model, batch=1)
        handle.remove()
    assert set(sizes.values()) == {(H // 8, W // 8)}


@pytest.mark.parametrize('name', ['student', 'lircdepth', 'teacher'])
def test_same_seed_same_model_and_output(name):
    a, b = build(name), build(name)
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), key
    assert torch.equal(run(a)['depth'], run(b)['depth'])
    torch.manual_seed(1)
    c = build_model(a.model_cfg, a.input_cfg, load_pretrained=False).eval()
    assert not torch.equal(run(c)['depth'], run(a)['depth'])


def test_camera_only_student_ignores_radar_and_film_starts_as_identity():
    camera = build('student_camera')
    image, radar = example_inputs(camera.input_cfg, H, W, 1, 0, radar_fraction=0.05)
    with torch.no_grad():
        assert torch.equal(camera(image, radar)['depth'], camera(image, torch.zeros_like(radar))['depth'])
    student = build('student')
    with torch.no_grad():
        assert torch.equal(student(image, radar)['depth'], student(image, torch.zeros_like(radar))['depth'])
        for fusion in student.fusion:
            torch.nn.init.normal_(fusion.gamma.weight, std=0.1)
        assert not torch.equal(student(image, radar)['depth'], student(image, torch.zeros_like(radar))['depth'])


@pytest.mark.parametrize('overrides', [
    {'fusion': {'kind': 'film', 'film_mode': 'channel'}},
    {'fusion': {'kind': 'add'}},
    {'decoder': {'daspp_scale': 16}},
    {'decoder': {'daspp_scale': 32, 'daspp_rates': [1, 2]}},
    {'head': {'kind': 'sigmoid'}},
    {'head': {'num_bins': 8, 'spacing': 'uniform'}},
    {'radar_encoder': {'name': 'mobilenet_v2'}},
])
def test_student_variants(overrides):
    data = {'input': {'height': H, 'width': W},
            'model': {'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]}, **overrides}}
    input_cfg, model_cfg = load_model_config(data)
    model = build_model(model_cfg, input_cfg).eval()
    out = run(model, features=True)
    assert out['depth'].shape == (2, 1, H, W) and torch.isfinite(out['depth']).all()
    assert ('logits' in out) == (model_cfg.head.kind == 'bins')


def test_bad_inputs_name_the_problem(tiny_student):
    model, input_cfg, _ = tiny_student
    image, radar = example_inputs(input_cfg, H, W)
    with pytest.raises(ModelInputError, match='radar must be'):
        model(image, radar[:, :2])
    with pytest.raises(ModelInputError, match='image must be'):
        model(image[:, :1], radar)
    with pytest.raises(ModelInputError, match='multiples of 32'):
        model(image[..., :48], radar[..., :48])
    with pytest.raises(ModelInputError, match='differ'):
        model(image, torch.cat([radar, radar]))


def test_student_gradients_reach_every_trained_parameter():
    model = build('student').train()
    image, radar = example_inputs(model.input_cfg, H, W, 2, 0, radar_fraction=0.05)
    out = model(image, radar)
    (out['depth'].mean() + out['uncertainty'].mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_parameter_counts_against_the_papers():
    lircdepth = count_parameters(build('lircdepth'))['total']
    student = count_parameters(build('student'))['total']
    teacher = count_parameters(build('teacher_resnet34'))['total']
    assert abs(lircdepth - LIRCDEPTH_RELEASED_PARAMS) / LIRCDEPTH_RELEASED_PARAMS < 0.02
    assert student <= 0.70 * lircdepth
    assert abs(teacher + CAFNET_UNUSED_FC_PARAMS - CAFNET_RELEASED_PARAMS) / CAFNET_RELEASED_PARAMS < 0.02


def test_lircdepth_macs_match_the_released_figure():
    model = build('lircdepth')
    # MACs grow with the pixel count: 448x800 is a quarter of 896x1600
    image, radar = example_inputs(model.input_cfg, 448, 800)
    total, _ = count_macs(model, image, radar)
    assert abs(4 * total / 1e9 - LIRCDEPTH_RELEASED_GMAC_896x1600) / LIRCDEPTH_RELEASED_GMAC_896x1600 < 0.02
