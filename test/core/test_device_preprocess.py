"""The torch pre- and postprocessing (core.inference.preprocess) against the host path, on real and made-up frames."""

import cv2
import numpy as np
import pytest
from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import ImageTransform, prepare_model_input
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.preprocess import area_taps, DevicePreprocessor, integer_factor
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import ProjectionError
import torch

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def _frame(height, width, returns=300, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    xyz = np.column_stack([rng.uniform(-20, 20, returns), rng.uniform(-1, 2, returns), rng.uniform(2, 90, returns)])
    xyz[:20] = xyz[20:40]                   # exact ties: the first return wins in every channel
    radar = RadarPoints(xyz, rcs=rng.uniform(-10, 20, returns), v_radial=rng.uniform(-5, 5, returns))
    K = np.array([[0.8 * width, 0.0, width / 2.0], [0.0, 0.8 * width, height / 2.0], [0.0, 0.0, 1.0]])
    return image, radar, K


def _assert_same(pre, image, radar, K, cfg):
    reference = prepare_model_input(image, radar, K, cfg)
    got = pre.prepare(image, radar, K)
    assert got.image.shape == (1, 3, cfg.height, cfg.width)
    np.testing.assert_array_equal(got.image[0].cpu().numpy(), reference.image)
    np.testing.assert_array_equal(got.radar_raw, reference.radar_raw)
    np.testing.assert_array_equal(got.radar[0].cpu().numpy(), reference.radar)
    np.testing.assert_array_equal(got.K, reference.K)
    assert got.transform == reference.transform
    return reference


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('size, cfg', [
    ((900, 1600), InputConfig(height=448, width=800)),                   # 2x: OpenCV's rounded 2x2 average
    ((900, 1600), InputConfig(height=96, width=320)),                    # 5x integer block sums
    ((618, 2048), InputConfig(height=192, width=640)),                   # fractional box filter (Astyx size)
    ((200, 160), InputConfig(height=64, width=128, crop='top')),
    ((181, 333), InputConfig(height=96, width=128, crop='center', radar_vertical_extension_m=1.5)),
    ((100, 300), InputConfig(height=448, width=800)),                    # upscaling: the host resize
])
def test_same_model_input_as_the_host_path(device, size, cfg):
    pre = DevicePreprocessor(cfg, device)
    image, radar, K = _frame(*size)
    _assert_same(pre, image, radar, K, cfg)


@pytest.mark.parametrize('device', DEVICES)
def test_same_model_input_on_real_astyx_frames(device, astyx_root):
    from rcdepth_ros.data.astyx import AstyxReader
    cfg = InputConfig(height=192, width=640, radar_vertical_extension_m=1.0)
    pre = DevicePreprocessor(cfg, device)
    for sample in AstyxReader(astyx_root, frames='350,400,435').iterate('raise'):
        reference = _assert_same(pre, sample.image, sample.radar, sample.intrinsics.K, cfg)
        assert (reference.radar_raw[..., -1] > 0).sum() > 100


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('size, model_size, crop', [((900, 1600), (448, 800), 'bottom'),
                                                    ((618, 2048), (192, 640), 'bottom'),
                                                    ((200, 160), (64, 128), 'center'), ((97, 61), (32, 64), 'top')])
def test_restore_matches_opencv_with_the_same_nan_pixels(device, size, model_size, crop):
    transform = ImageTransform.fit_width(*size, *model_size, crop)
    cfg = InputConfig(height=model_size[0], width=model_size[1], crop=crop)
    pre = DevicePreprocessor(cfg, device)
    rng = np.random.default_rng(1)
    maps = rng.uniform(0.5, 100.0, (2,) + model_size).astype(np.float32)
    maps[1, 5:9] = np.nan                    # NaN inside the map spreads like OpenCV's
    got = pre.restore(torch.from_numpy(maps).to(device), transform).cpu().numpy()
    for i in range(2):
        expected = transform.restore(maps[i])
        assert got[i].shape == expected.shape == size
        np.testing.assert_array_equal(np.isnan(got[i]), np.isnan(expected))
        finite = np.isfinite(expected)
        # OpenCV's float path rounds its blend differently in the last bits: a few float32 ulps at 100 m
        assert np.abs(got[i][finite] - expected[finite]).max() <= 1e-4
    zero_filled = pre.restore(torch.from_numpy(maps[:1]).to(device), transform, fill=0.0)[0].cpu().numpy()
    np.testing.assert_allclose(zero_filled, transform.restore(maps[0], fill=0.0), atol=1e-4)


def test_area_table_and_integer_factors():
    assert integer_factor(1600, 800) == 2 and integer_factor(900, 300) == 3 and integer_factor(901, 450) == 0
    assert integer_factor(100, 300) == 0
    index, weight = area_taps(2048, 640)                # 3.2 source pixels per output pixel
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-6)
    assert index.shape[1] == 4 and index.max() == 2047      # a 3.2-pixel cell touches at most 4 pixels
    image = np.random.default_rng(2).integers(0, 256, (7, 2048), dtype=np.uint8)
    row = (image[:, index].astype(np.float32) * weight).sum(axis=2)
    assert np.abs(row - cv2.resize(image, (640, 7), interpolation=cv2.INTER_AREA)).max() <= 0.5 + 1e-4


def test_bad_images_and_maps_name_the_problem():
    cfg = InputConfig(height=64, width=128)
    pre = DevicePreprocessor(cfg, 'cpu')
    _, radar, K = _frame(120, 160)
    with pytest.raises(ProjectionError, match='uint8 RGB'):
        pre.prepare(np.zeros((120, 160), np.uint8), radar, K)
    with pytest.raises(ProjectionError, match='uint8 RGB'):
        pre.prepare(np.zeros((120, 160, 3), np.float32), radar, K)
    transform = ImageTransform.fit_width(120, 160, 64, 128)
    with pytest.raises(ProjectionError, match='transform expects'):
        pre.restore(torch.zeros(1, 32, 32), transform)


@pytest.mark.parametrize('device', DEVICES)
def test_engine_device_and_host_preprocessing_agree(tiny_student, device):
    image, radar, K = _frame(300, 400, seed=3)
    host = InferenceEngine(tiny_student, device=device, preprocess='host', precision='fp32')
    dev = InferenceEngine(tiny_student, device=device, preprocess='device', precision='fp32')
    assert (host.preprocess_mode, dev.preprocess_mode) == ('host', 'device')
    a = host.infer(image, radar, K, saliency=True)
    b = dev.infer(image, radar, K, saliency=True)
    np.testing.assert_array_equal(np.isnan(a.depth), np.isnan(b.depth))
    assert np.nanmax(np.abs(a.depth - b.depth)) <= 1e-3
    assert np.nanmax(np.abs(a.uncertainty - b.uncertainty)) <= 1e-3
    assert np.abs(a.saliency - b.saliency).max() <= 1e-3
    np.testing.assert_array_equal(a.model_input.radar_raw, b.model_input.radar_raw)


@pytest.mark.parametrize('options', [{}, {'channels_last': False}, {'backend': 'onnxruntime'}])
def test_engine_host_tensors_are_the_host_path_bytes(tiny_student, options, tmp_path, monkeypatch):
    monkeypatch.setenv('RCDEPTH_CACHE', str(tmp_path))
    image, radar, K = _frame(300, 400, seed=4)
    engine = InferenceEngine(tiny_student, device='cpu', preprocess='host', **options)
    reference = prepare_model_input(image, radar, K, engine.input_cfg)
    got = engine.prepare_frame(image, radar, K)
    np.testing.assert_array_equal(got.image[0].numpy(), reference.image)
    np.testing.assert_array_equal(got.radar[0].numpy(), reference.radar)
    np.testing.assert_array_equal(got.radar_raw, reference.radar_raw)
    planar = bool(options)
    assert got.image.is_contiguous() == planar and got.radar.is_contiguous() == planar
    assert got.image.is_contiguous(memory_format=torch.channels_last) != planar
