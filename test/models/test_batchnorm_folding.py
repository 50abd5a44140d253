"""BatchNorm folding for inference: same outputs, every foldable BN folded, the original model untouched."""

import pytest
from rcdepth_ros.models import build_model, load_model_config
from rcdepth_ros.models.batchnorm_folding import fold_conv_bn, fuse_batch_norm
from rcdepth_ros.models.export import example_inputs
from rcdepth_ros.paths import config_file
import torch
from torch import nn


def _randomise_batch_norms(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.mark.parametrize('conv', [
    nn.Conv2d(4, 6, 3, padding=1, bias=False),
    nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6),
    nn.Conv2d(4, 6, 1, groups=2),
    nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, bias=False),
    nn.ConvTranspose2d(6, 6, 3, stride=2, padding=1, output_padding=1, groups=6, bias=False),
    nn.ConvTranspose2d(4, 6, 1, groups=2),
])
def test_fold_each_convolution_kind(conv):
    bn = _randomise_batch_norms(nn.BatchNorm2d(6))
    x = torch.randn(2, conv.in_channels, 5, 7)
    with torch.no_grad():
        expected = bn(conv(x))
        folded = fold_conv_bn(conv, bn)
        assert torch.allclose(folded(x), expected, atol=1e-5)


# BNs that follow an activation (BTS upconv, conv8) cannot be folded; everything else is
UNFOLDABLE = {'student': 0, 'lircdepth': 0, 'teacher': 15}


@pytest.mark.parametrize('name', sorted(UNFOLDABLE))
def test_fused_models_give_the_same_outputs(name):
    input_cfg, model_cfg = load_model_config(config_file(f'models/{name}.yaml'))
    torch.manual_seed(0)
    model = _randomise_batch_norms(build_model(model_cfg, input_cfg, load_pretrained=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_batch_norm(model)
    remaining = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    total = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert remaining == UNFOLDABLE[name] and fused.folded_batch_norms == total - remaining
    image, radar = example_inputs(input_cfg, 64, 128, 2, 3, radar_fraction=0.05)
    with torch.no_grad():
        a = model(image, radar, return_features=True)
        b = fused(image, radar, return_features=True)
    assert torch.allclose(a['depth'], b['depth'], atol=1e-4)
    for x, y in zip(a['features']['decoder'], b['features']['decoder']):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-4 * float(x.abs().max()))
    # the original is untouched (not in place by default) and the saliency layers keep their names
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    modules = dict(fused.named_modules())
    assert all(layer in modules for layer in fused.saliency_layers)
