"""Engine backends (torch, onnxruntime fp32 / int8), the ONNX cache, the precision guard, input-size changes."""

import json
import logging
import os

import numpy as np
import pytest
from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.inference.backends import cached_file_ok, onnx_model
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.graphs import GraphedCall
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models import save_checkpoint
from rcdepth_ros.models.config import ModelConfig
import torch
from torch import nn

K = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 100.0], [0.0, 0.0, 1.0]])


def _frame(seed=0, height=200, width=160):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    xyz = np.column_stack([rng.uniform(-5, 5, 40), rng.uniform(0.5, 1.5, 40), rng.uniform(3, 60, 40)])
    return image, RadarPoints(xyz, rcs=rng.uniform(-10, 20, 40), v_radial=rng.uniform(-5, 5, 40))


@pytest.fixture
def checkpoint(tmp_path, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    return save_checkpoint(tmp_path / 'ckpt' / 'tiny', model, input_cfg, model_cfg)


def _onnx_files(folder):
    return sorted(p.name for p in folder.glob('*.onnx'))


def test_onnxruntime_backend_matches_torch_and_saliency_uses_torch(checkpoint):
    torch_engine = InferenceEngine(checkpoint, device='cpu')
    ort_engine = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime')
    assert ort_engine.backend_name == 'onnxruntime' and ort_engine.precision == 'fp32'
    image, radar = _frame()
    a, b = torch_engine.infer(image, radar, K), ort_engine.infer(image, radar, K)
    np.testing.assert_array_equal(np.isnan(a.depth), np.isnan(b.depth))
    assert np.nanmax(np.abs(a.depth - b.depth)) < 1e-3
    assert np.nanmax(np.abs(a.uncertainty - b.uncertainty)) < 1e-3
    salient = ort_engine.infer(image, radar, K, saliency=True)
    assert salient.saliency.max() > 0.5 and np.nanmax(np.abs(salient.depth - a.depth)) < 1e-3
    assert ort_engine.stats()['backend'] == 'onnxruntime'


def test_onnx_file_is_cached_beside_the_checkpoint_and_never_exported_again(checkpoint, caplog):
    folder = checkpoint.parent
    with caplog.at_level(logging.INFO, logger='rcdepth_ros'):
        InferenceEngine(checkpoint, device='cpu', backend='onnxruntime')
    names = _onnx_files(folder)
    assert len(names) == 1 and names[0].startswith('tiny.') and names[0].endswith('.64x128.fp32.onnx')
    path = folder / names[0]
    record = json.loads(path.with_suffix('.json').read_text())
    assert record['height'] == 64 and record['precision'] == 'fp32' and len(record['checkpoint_sha256']) == 64
    assert any('exporting' in r.getMessage() for r in caplog.records)
    stat = path.stat()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='rcdepth_ros'):
        InferenceEngine(checkpoint, device='cpu', backend='onnxruntime')
    assert not any('exporting' in r.getMessage() for r in caplog.records)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (stat.st_mtime_ns, stat.st_ino)


@pytest.mark.parametrize('damage', ['truncate', 'stale_record', 'no_record'])
def test_corrupt_or_stale_cache_is_rebuilt_with_a_warning(checkpoint, caplog, damage):
    engine = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime')
    path = engine.backend.path
    image, radar = _frame(1)
    expected = engine.infer(image, radar, K).depth
    if damage == 'truncate':
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == 'stale_record':
        record = json.loads(path.with_suffix('.json').read_text())
        record['export_version'] = -1
        path.with_suffix('.json').write_text(json.dumps(record))
    else:
        path.with_suffix('.json').unlink()
    with caplog.at_level(logging.WARNING, logger='rcdepth_ros'):
        rebuilt = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime')
    assert any('cannot be used' in r.getMessage() and 'making it again' in r.getMessage() for r in caplog.records)
    assert np.allclose(rebuilt.infer(image, radar, K).depth, expected, atol=1e-5, equal_nan=True)
    assert _onnx_files(checkpoint.parent) == [path.name]


def test_a_changed_checkpoint_gets_its_own_file(checkpoint, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    first = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime').backend.path
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    save_checkpoint(checkpoint, model, input_cfg, model_cfg)
    second = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime').backend.path
    assert first != second and first.exists() and second.exists()


def test_model_tuples_are_cached_by_weight_digest(tmp_path, tiny_student):
    first = onnx_model(*tiny_student, folder=tmp_path)
    again = onnx_model(*tiny_student, folder=tmp_path)
    assert first == again and _onnx_files(tmp_path) == [first.name]
    assert cached_file_ok(first, {'precision': 'int8'}) is not None


def test_int8_is_calibrated_once_then_cached(checkpoint, caplog):
    with pytest.raises(ConfigError, match='calibration'):
        InferenceEngine(checkpoint, device='cpu', backend='onnxruntime', precision='int8')
    frames = [(*_frame(seed), K) for seed in range(4)]
    calls = []

    def calibration():
        calls.append(1)
        return frames
    engine = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime', precision='int8',
                             calibration=calibration)
    assert calls == [1] and engine.precision == 'int8'
    assert any(name.endswith('.int8.onnx') for name in _onnx_files(checkpoint.parent))
    reference = InferenceEngine(checkpoint, device='cpu')
    image, radar = _frame(7)
    quantised, exact = engine.infer(image, radar, K).depth, reference.infer(image, radar, K).depth
    assert np.isfinite(quantised[np.isfinite(exact)]).all()
    assert np.nanmedian(np.abs(quantised - exact)) < 0.1 * np.nanmedian(exact)
    # cached now: no calibration frames are needed, and none are read
    again = InferenceEngine(checkpoint, device='cpu', backend='onnxruntime', precision='int8',
                            calibration=calibration)
    assert calls == [1] and again.backend.path == engine.backend.path


def test_backend_and_precision_choices(tiny_student):
    with pytest.raises(ConfigError, match='backend'):
        InferenceEngine(tiny_student, device='cpu', backend='tensorrt')
    with pytest.raises(ConfigError, match='onnxruntime backend runs fp32 or int8'):
        InferenceEngine(tiny_student, device='cpu', backend='onnxruntime', precision='bf16')
    with pytest.raises(ConfigError, match='int8 runs on the onnxruntime backend'):
        InferenceEngine(tiny_student, device='cpu', precision='int8')
    with pytest.raises(ConfigError, match='precision'):
        InferenceEngine(tiny_student, device='cpu', precision='fp8')
    with pytest.raises(ConfigError, match='preprocess'):
        InferenceEngine(tiny_student, device='cpu', preprocess='gpu')
    bf16 = InferenceEngine(tiny_student, device='cpu', precision='bf16')
    fp32 = InferenceEngine(tiny_student, device='cpu')
    image, radar = _frame(2)
    a, b = bf16.infer(image, radar, K, saliency=True), fp32.infer(image, radar, K)
    assert bf16.precision == 'bf16' and np.nanmax(np.abs(a.depth - b.depth)) < 2.0
    assert a.saliency.max() > 0.5 and bf16.stats()['nonfinite_frames'] == 0


class OverflowingDepth(nn.Module):
    """Depth 10 + sigmoid(x) computed through x * 1e5 - x * 1e5: 0 in float32, inf - inf = NaN in float16."""

    saliency_layers = ('features',)

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1)
        nn.init.constant_(self.features.weight, 0.5)
        nn.init.constant_(self.features.bias, 2.0)

    def forward(self, image, radar, return_features=False):
        x = self.features(image)
        big = x * 1e5
        return {'depth': 10.0 + torch.sigmoid(x) + (big - big)}


def test_reduced_precision_never_returns_non_finite_depth(caplog):
    source = (OverflowingDepth(), InputConfig(height=64, width=128), ModelConfig())
    reference = InferenceEngine(source, device='cpu', precision='fp32')
    engine = InferenceEngine(source, device='cpu', precision='fp16')
    image, radar = _frame(3)
    with caplog.at_level(logging.WARNING, logger='rcdepth_ros'):
        result = engine.infer(image, radar, K)
    assert engine.stats()['nonfinite_frames'] == 1 and engine.stats()['nonfinite_dropped'] == 0
    expected = reference.infer(image, radar, K).depth
    np.testing.assert_array_equal(np.isnan(result.depth), np.isnan(expected))
    assert np.nanmax(np.abs(result.depth - expected)) < 1e-5
    assert any('run again in fp32' in r.getMessage() for r in caplog.records)


def test_input_size_changes_are_counted_and_each_size_is_right(tiny_student):
    engine = InferenceEngine(tiny_student, device='cpu')
    sizes = [(200, 160), (300, 400), (300, 400), (200, 160)]
    for height, width in sizes:
        image, radar = _frame(4, height, width)
        camera = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
        result = engine.infer(image, radar, camera)
        assert result.depth.shape == (height, width)
        expected = InferenceEngine(tiny_student, device='cpu', preprocess='device').infer(image, radar, camera)
        assert np.nanmax(np.abs(result.depth - expected.depth)) < 1e-3
    assert engine.stats()['input_size_changes'] == 2 and engine.stats()['frames'] == 4


def test_prepared_frames_and_outputs_asked_for(tiny_student):
    engine = InferenceEngine(tiny_student, device='cpu')
    image, radar = _frame(5)
    whole = engine.infer(image, radar, K)
    prepared = engine.prepare_frame(image, radar, K)
    (split,) = engine.infer_prepared([prepared])
    np.testing.assert_array_equal(whole.depth, split.depth)
    without = engine.infer(image, radar, K, uncertainty=False)
    assert without.uncertainty is None and np.array_equal(without.depth, whole.depth, equal_nan=True)


def test_graphed_call_runs_eagerly_off_cuda():
    calls = []

    def double(x):
        calls.append(torch.is_inference_mode_enabled())
        return {'y': x * 2}
    graphed = GraphedCall(double)
    out = graphed(torch.ones(3))
    assert torch.equal(out['y'], torch.full((3,), 2.0)) and calls == [True] and not graphed.captured
    assert graphed.counters.snapshot() == {'captures': 0, 'recaptures': 0, 'failures': 0, 'replays': 0}


def test_no_onnx_file_lands_in_the_working_directory(tmp_path, tiny_student, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('RCDEPTH_CACHE', str(tmp_path / 'cache'))
    InferenceEngine(tiny_student, device='cpu', backend='onnxruntime')
    assert _onnx_files(tmp_path) == [] and len(_onnx_files(tmp_path / 'cache' / 'onnx')) == 1
    assert not [name for name in os.listdir(tmp_path) if name.startswith('onnxruntime_profile')]
