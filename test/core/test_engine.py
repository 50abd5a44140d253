"""Inference engine: original-size outputs with NaN in cropped rows, device fallback, saliency, flat memory."""

import dataclasses
import gc
import logging
import resource
import warnings

import numpy as np
import pytest
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.core.inference.engine import InferenceEngine, resolve_device
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.errors import ConfigError, ModelInputError, ProjectionError
from rcdepth_ros.models import build_model, save_checkpoint
import torch

# 200x160 image -> scaled by 0.8 to 160x128 -> the 64 bottom rows are kept (crop='bottom'): rows 0..119 are cut
ORIGINAL_H, ORIGINAL_W = 200, 160
K = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 100.0], [0.0, 0.0, 1.0]])


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (ORIGINAL_H, ORIGINAL_W, 3), dtype=np.uint8)
    xyz = np.column_stack([rng.uniform(-5, 5, 40), rng.uniform(0.5, 1.5, 40), rng.uniform(3, 60, 40)])
    radar = RadarPoints(xyz, rcs=rng.uniform(-10, 20, 40), v_radial=rng.uniform(-5, 5, 40))
    return image, radar


@pytest.fixture
def engine(tiny_student):
    return InferenceEngine(tiny_student, device='cpu')


def test_outputs_at_original_size_with_nan_in_cropped_rows(engine):
    image, radar = _frame()
    result = engine.infer(image, radar, K)
    transform = result.model_input.transform
    assert (transform.scaled_height, transform.offset_top) == (160, 96)
    assert result.depth.shape == (ORIGINAL_H, ORIGINAL_W) and result.depth.dtype == np.float32
    assert result.uncertainty.shape == (ORIGINAL_H, ORIGINAL_W)
    assert result.saliency is None
    cropped = int(np.ceil(96 / 0.8))     # rows above the first kept scaled row
    assert np.isnan(result.depth[:cropped - 1]).all()
    assert np.isfinite(result.depth[cropped + 1:]).all()
    assert np.isnan(result.uncertainty[:cropped - 1]).all()
    valid = result.depth[cropped + 1:]
    assert valid.min() >= 0.5 and valid.max() <= 100.0
    assert set(result.timings) == {'preprocess', 'forward', 'saliency', 'postprocess'}
    assert result.timings['saliency'] == 0.0 and result.timings['forward'] > 0
    assert result.model_input.radar_raw.shape == (64, 128, 4)
    assert (result.model_input.radar_raw[..., 3] > 0).sum() > 0   # some returns land in the kept rows


def test_engine_equals_model_on_the_shared_preprocessing(engine, tiny_student):
    model, input_cfg, _ = tiny_student
    image, radar = _frame(1)
    result = engine.infer(image, radar, CameraIntrinsics(K, ORIGINAL_W, ORIGINAL_H))
    reference = prepare_model_input(image, radar, K, input_cfg)
    with torch.no_grad():
        depth = model(torch.from_numpy(reference.image)[None], torch.from_numpy(reference.radar)[None])['depth']
    expected = reference.transform.restore(depth[0, 0].numpy())
    assert np.allclose(result.depth, expected, atol=1e-4, equal_nan=True)
    assert np.array_equal(result.model_input.radar_raw, reference.radar_raw)


def test_batch_equals_single_frames(engine):
    frames = [_frame(s) for s in range(3)]
    batch = engine.infer_batch([f[0] for f in frames], [f[1] for f in frames], [K] * 3)
    for (image, radar), result in zip(frames, batch):
        single = engine.infer(image, radar, K)
        assert np.allclose(result.depth, single.depth, atol=1e-4, equal_nan=True)
    with pytest.raises(ModelInputError):
        engine.infer_batch([frames[0][0]], [], [K])


def test_cuda_request_falls_back_to_cpu_with_a_warning(tiny_student, caplog):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: there is no fallback to test')
    with caplog.at_level(logging.WARNING, logger='rcdepth_ros'):
        engine = InferenceEngine(tiny_student, device='cuda', half='auto')
    assert engine.device.type == 'cpu' and not engine.half
    assert any('CUDA is not available' in r.getMessage() for r in caplog.records)
    assert next(engine.model.parameters()).device.type == 'cpu'
    image, radar = _frame()
    assert np.isfinite(engine.infer(image, radar, K).depth).any()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='rcdepth_ros'):
        assert resolve_device('cuda:1').type == 'cpu'
        engine = InferenceEngine(tiny_student, device='cpu', half=True)
    assert not engine.half and engine.dtype == torch.float32
    assert any('fp16 is used on CUDA only' in r.getMessage() for r in caplog.records)


def test_bad_device_and_layer_and_intrinsics(tiny_student):
    with pytest.raises(ConfigError):
        InferenceEngine(tiny_student, device='tpu')
    with pytest.raises(ConfigError):
        InferenceEngine(tiny_student, half='yes')
    with pytest.raises(ConfigError, match='not a module'):
        InferenceEngine(tiny_student, saliency_layer='decoder.missing')
    engine = InferenceEngine(tiny_student, device='cpu')
    image, radar = _frame()
    with pytest.raises(ProjectionError, match=r'intrinsics are for a 480x640 \(HxW\) image'):
        engine.infer(image, radar, CameraIntrinsics(K, 640, 480))
    with pytest.raises(ProjectionError):
        engine.infer(image[..., 0], radar, K)


def test_loads_a_checkpoint(tmp_path, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    path = save_checkpoint(tmp_path / 'tiny', model, input_cfg, model_cfg)
    from_file = InferenceEngine(path, device='auto', channels_last=False)
    from_model = InferenceEngine(tiny_student, device='cpu')
    image, radar = _frame()
    assert np.allclose(from_file.infer(image, radar, K).depth, from_model.infer(image, radar, K).depth,
                       atol=1e-5, equal_nan=True)
    assert from_file.meta['format'] == 'rcdepth-checkpoint' and from_file.has_uncertainty


def test_folded_batch_norms_same_depth_and_caller_model_untouched(tiny_student):
    model, _, _ = tiny_student
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = InferenceEngine(tiny_student, device='cpu', fuse_bn=True)
    plain = InferenceEngine(tiny_student, device='cpu', fuse_bn=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.model.modules())
    image, radar = _frame(2)
    assert np.allclose(fused.infer(image, radar, K).depth, plain.infer(image, radar, K).depth, atol=1e-4,
                       equal_nan=True)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_saliency_at_original_size_and_target_in_original_pixels(engine):
    image, radar = _frame()
    result = engine.infer(image, radar, K, saliency=True)
    sal = result.saliency
    assert sal.shape == (ORIGINAL_H, ORIGINAL_W) and sal.dtype == np.float32
    assert np.isfinite(sal).all() and sal.min() >= 0.0 and sal.max() <= 1.0 and sal.max() > 0.5
    assert np.all(sal[:110] == 0.0)    # cropped rows did not see the network
    assert result.timings['saliency'] > 0
    # the depth from the saliency pass is the plain forward's depth
    assert np.allclose(result.depth, engine.infer(image, radar, K).depth, atol=1e-5, equal_nan=True)
    boxed = engine.infer(image, radar, K, saliency=True, saliency_target=(0, 150, 60, 200))
    assert np.abs(boxed.saliency - sal).max() > 0.05
    with pytest.raises(ModelInputError, match='empty'):
        engine.infer(image, radar, K, saliency=True, saliency_target=(0, 0, 160, 100))   # all in cropped rows


def _rss_mb():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2 ** 20


def _live_tensors():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')     # isinstance() on some deprecated torch objects warns
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


@pytest.fixture
def small_engine(tiny_student):
    """Yield an engine of the tiny student at 32x64, on one thread (tiny ops gain nothing from more)."""
    _, input_cfg, model_cfg = tiny_student
    input_cfg = dataclasses.replace(input_cfg, height=32, width=64)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield InferenceEngine((build_model(model_cfg, input_cfg), input_cfg, model_cfg), device='cpu')
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_saliency_memory_stays_flat_over_1000_calls(small_engine):
    image, radar = _frame()
    for _ in range(50):                       # warm-up: allocator pools, lazy initialisation
        small_engine.infer(image, radar, K, saliency=True)
    gc.collect()
    rss_start, tensors_start = _rss_mb(), _live_tensors()
    for _ in range(1000):
        result = small_engine.infer(image, radar, K, saliency=True)
    assert result.saliency.max() > 0.5
    del result
    gc.collect()
    rss_growth, tensors_end = _rss_mb() - rss_start, _live_tensors()
    assert tensors_end <= tensors_start, f'{tensors_end - tensors_start} tensors more after 1000 calls'
    # a graph kept per call would add its activations 1000 times (tens of MB even here); allow allocator noise
    assert rss_growth < 10.0, f'RSS grew by {rss_growth:.1f} MB over 1000 calls'
