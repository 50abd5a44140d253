"""The bundled demo model: its config fits 10 MB in float16, and the committed files match the config."""

import json

import pytest
from rcdepth_ros.config import to_dict
from rcdepth_ros.models import build_model, load_checkpoint, save_checkpoint
from rcdepth_ros.paths import SOURCE_ROOT
from training.config import load_experiment

CONFIG = SOURCE_ROOT / 'training' / 'configs' / 'synthetic_student.yaml'
BUNDLED = SOURCE_ROOT / 'weights' / 'xdrcdepth_demo_synthetic'
LIMIT = 10 * 1024 * 1024


def test_demo_config_fits_ten_megabytes(tmp_path):
    exp = load_experiment(CONFIG)
    assert exp.train.checkpoint_dtype == 'float16' and exp.model.fusion.kind == 'film'
    model = build_model(exp.model, exp.input, load_pretrained=False)
    weights = save_checkpoint(tmp_path / 'demo', model, exp.input, exp.model, training={'command': 'x'},
                              dtype=exp.train.checkpoint_dtype)
    total = weights.stat().st_size + weights.with_suffix('.json').stat().st_size
    assert total <= LIMIT, f'{total / 2 ** 20:.1f} MiB'


def test_bundled_model_matches_its_config():
    if not BUNDLED.with_suffix('.json').is_file():
        pytest.skip(f'no bundled model at {BUNDLED}.json (make demo-model)')
    weights = BUNDLED.with_suffix('.safetensors')
    assert weights.stat().st_size + BUNDLED.with_suffix('.json').stat().st_size <= LIMIT
    model, input_cfg, model_cfg, meta = load_checkpoint(BUNDLED)
    exp = load_experiment(CONFIG)
    assert to_dict(input_cfg) == to_dict(exp.input) and to_dict(model_cfg) == to_dict(exp.model)
    training = meta['training']
    assert meta['storage_dtype'] == 'float16' and training['kind'] == 'final'
    assert 'training/configs/synthetic_student.yaml' in training['command']
    assert training['data']['source'] == 'synthetic' and training['epoch'] == exp.train.epochs
    json.dumps(meta)
