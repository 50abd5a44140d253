"""A model over a data set: engine + reader + metrics at the original resolution, field of view, rcdepth eval."""

import json
import math

import numpy as np
import pytest
from rcdepth_ros.cli import main as cli_main
from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import ImageTransform
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.refine import RefineSettings
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.evaluation.datasets import evaluate_model, evaluate_reader, offline_refine
from rcdepth_ros.models import save_checkpoint
from rcdepth_ros.models.config import ModelConfig
import torch
from torch import nn

SYNTHETIC = {'num_drives': 1, 'frames_per_drive': 3, 'height': 96, 'width': 192}


class ConstantDepth(nn.Module):
    """Predicts ``value`` metres everywhere (a 1x1 conv with zero weights): its metrics are known by hand."""

    saliency_layers = ('features',)

    def __init__(self, value):
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1)
        nn.init.zeros_(self.features.weight)
        nn.init.constant_(self.features.bias, float(value))

    def forward(self, image, radar, return_features=False):
        return {'depth': self.features(image)}


def _engine(value, height=64, width=128):
    input_cfg = InputConfig(height=height, width=width)
    return InferenceEngine((ConstantDepth(value), input_cfg, ModelConfig()), device='cpu')


@pytest.mark.parametrize('height', [64, 32])
def test_constant_model_metrics_by_hand(height):
    reader = SyntheticReader(SyntheticConfig(**SYNTHETIC), radar_image=False)
    engine = _engine(20.0, height=height)
    result, info = evaluate_reader(engine, reader, caps=(50.0, 80.0), batch_size=2)
    assert info['frames'] == 3 and result.frames == 3 and not info['skipped']
    transform = ImageTransform.fit_width(96, 192, height, 128, crop='bottom')
    covered = np.isfinite(transform.restore(np.ones((height, 128), np.float32)))   # the rows the model saw
    for cap in (50.0, 80.0):
        maes = []
        for sample in reader:
            gt = sample.depth_gt
            valid = (gt > 1e-3) & (gt < cap) & covered
            maes.append(np.mean(np.abs(min(20.0, cap) - gt[valid])) * 1000.0)   # mm, per image
        assert result.caps[str(int(cap))]['mae'] == pytest.approx(np.mean(maes), rel=1e-5)


def test_batch_size_does_not_change_the_numbers(tiny_student):
    reader = SyntheticReader(SyntheticConfig(**SYNTHETIC), radar_image=False)
    engine = InferenceEngine(tiny_student, device='cpu')
    one, _ = evaluate_reader(engine, reader, batch_size=1, keep_frames=True)
    three, _ = evaluate_reader(engine, reader, batch_size=3)
    for key in one.caps:
        for name, value in one.caps[key].items():
            assert three.caps[key][name] == pytest.approx(value, rel=1e-4), (key, name)
    assert [f.frame_id for f in one.frame_list] == reader.frame_ids


def _checkpoint(tmp_path, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    return str(save_checkpoint(tmp_path / 'tiny', model, input_cfg, model_cfg))


def test_evaluate_model_record(tmp_path, tiny_student):
    record = evaluate_model(_checkpoint(tmp_path, tiny_student), 'synthetic', split='val', frames='0-1',
                            reader_options={'config': SYNTHETIC}, device='cpu', keep_frames=True)
    assert record['metrics']['frames'] == 2 and len(record['metrics']['per_frame']) == 2
    assert record['evaluation']['source'] == 'synthetic' and record['evaluation']['resolution'] == 'original'
    assert record['model']['architecture'] == 'student' and record['model']['input'] == [64, 128]
    assert record['model']['parameters'] == sum(p.numel() for p in tiny_student[0].parameters())


def test_rcdepth_eval_command(tmp_path, tiny_student, capsys):
    checkpoint = _checkpoint(tmp_path, tiny_student)
    options = json.dumps({'config': SYNTHETIC})
    status = cli_main(['eval', '--dataset', 'synthetic', '--split', 'val', '--frames', '0-2', '--model', checkpoint,
                       '--options', options, '--out', str(tmp_path / 'eval'), '--device', 'cpu'])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed['frames'] == 3 and set(printed['caps']) == {'50', '70', '80'}
    assert json.loads((tmp_path / 'eval' / 'metrics.json').read_text()) == printed
    full = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())
    assert full['metrics'] == printed and full['evaluation']['frames_selected'] == '0-2'
    assert cli_main(['eval', '--dataset', 'kitti', '--model', checkpoint]) == 2
    assert 'unknown data source' in capsys.readouterr().err
    assert cli_main(['eval', '--dataset', 'synthetic', '--model', checkpoint, '--caps', 'fifty']) == 2
    assert cli_main(['eval', '--dataset', 'synthetic', '--model', str(tmp_path / 'none')]) == 2
    assert 'not found' in capsys.readouterr().err


def test_rcdepth_eval_refine_flag(tmp_path, tiny_student, capsys):
    checkpoint = _checkpoint(tmp_path, tiny_student)
    common = ['eval', '--dataset', 'synthetic', '--split', 'val', '--frames', '0-1', '--model', checkpoint,
              '--options', json.dumps({'config': SYNTHETIC}), '--device', 'cpu']
    assert cli_main(common + ['--out', str(tmp_path / 'plain')]) == 0
    assert cli_main(common + ['--refine', 'radar', '--refine-options', '{far_cutoff: 1.5, segments: 100}',
                              '--out', str(tmp_path / 'refined')]) == 0
    capsys.readouterr()
    plain = json.loads((tmp_path / 'plain' / 'evaluation.json').read_text())
    refined = json.loads((tmp_path / 'refined' / 'evaluation.json').read_text())
    assert plain['evaluation']['refine']['mode'] == 'none'
    settings = refined['evaluation']['refine']
    assert settings['mode'] == 'radar' and settings['budget_ms'] == 'inf'      # offline: never gives up
    assert settings['far_cutoff'] == 1.5 and settings['segments'] == 100
    assert refined['metrics']['caps']['80']['mae'] != plain['metrics']['caps']['80']['mae']
    assert cli_main(common + ['--refine-options', '{far_cutoff: 1.5}']) == 2
    assert 'without --refine radar' in capsys.readouterr().err
    assert cli_main(common + ['--refine', 'radar', '--refine-options', '{farcutoff: 1.5}']) == 2
    assert 'unknown setting' in capsys.readouterr().err


def test_offline_refinement_has_no_time_budget_unless_given():
    assert math.isinf(offline_refine('radar').budget_ms) and offline_refine('radar').mode == 'radar'
    assert offline_refine({'mode': 'radar', 'budget_ms': 5.0}).budget_ms == 5.0
    assert offline_refine('none').mode == 'none' and offline_refine(None) is None
    given = RefineSettings(mode='radar', budget_ms=12.0)
    assert offline_refine(given) is given


def test_astyx_frames_at_original_resolution(astyx_root, tmp_path, tiny_student):
    record = evaluate_model(_checkpoint(tmp_path, tiny_student), 'astyx', root=astyx_root, frames='350-351',
                            device='cpu', keep_frames=True)
    assert record['metrics']['frames'] == 2
    frames = record['metrics']['per_frame']
    assert [f['frame_id'] for f in frames] == ['000350', '000351']
    assert all(f['valid_pixels']['80'] > 100 for f in frames)        # lidar points inside the field of view


def test_fp16_storage_halves_the_file_and_loads_into_float32(tmp_path, tiny_student):
    from rcdepth_ros.errors import CheckpointError
    from rcdepth_ros.models import load_checkpoint
    model, input_cfg, model_cfg = tiny_student
    full = save_checkpoint(tmp_path / 'full', model, input_cfg, model_cfg)
    half = save_checkpoint(tmp_path / 'half', model, input_cfg, model_cfg, dtype='float16')
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _, _, meta = load_checkpoint(half)
    assert meta['storage_dtype'] == 'float16'
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype, name                                  # float32 model, int64 counters kept
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), name
    with pytest.raises(CheckpointError, match='storage dtype'):
        save_checkpoint(tmp_path / 'bad', model, input_cfg, model_cfg, dtype='int8')
