"""Checkpoints: bit-exact round trips, atomic writes, and a clear error for every kind of bad file."""

import json
import os
import re
import stat

import pytest
from rcdepth_ros.errors import CheckpointError
from rcdepth_ros.models import build_model, load_checkpoint, load_model_config, save_checkpoint
from rcdepth_ros.models.checkpoint import checkpoint_paths, load_config_or_checkpoint
from rcdepth_ros.models.export import example_inputs
import torch

TINY_TEACHER = {
    'input': {'height': 64, 'width': 128, 'radar_channels': ['depth', 'rcs', 'mask']},
    'model': {'architecture': 'teacher',
              'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]},
              'radar_stage1_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
              'radar_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
              'fusion': {'kind': 'gated'},
              'decoder': {'kind': 'bts', 'widths': [32, 32, 16, 16, 8], 'daspp_growth': 8},
              'head': {'kind': 'sigmoid', 'max_depth': 80.0}},
}


def _randomise_buffers(model):
    """Give batch-norm statistics non-default values so the round trip covers buffers too."""
    gen = torch.Generator().manual_seed(3)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
            module.num_batches_tracked.fill_(7)
    return model


@pytest.fixture
def saved(tmp_path, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    _randomise_buffers(model)
    path = save_checkpoint(tmp_path / 'ckpt' / 'student', model, input_cfg, model_cfg,
                           training={'command': 'python -m training.train', 'metrics': {'mae': 1.5}})
    return path, model


def _outputs(model, input_cfg):
    image, radar = example_inputs(input_cfg, 64, 128, 2, 5)
    with torch.no_grad():
        return model.eval()(image, radar)


def test_round_trip_is_bit_exact(saved, tiny_student):
    path, model = saved
    _, input_cfg, model_cfg = tiny_student
    assert path.suffix == '.safetensors' and path.with_suffix('.json').is_file()
    loaded, input2, model2, meta = load_checkpoint(path)
    assert input2 == input_cfg and model2 == model_cfg
    assert meta['format'] == 'rcdepth-checkpoint' and meta['version'] == 1
    assert meta['training'] == {'command': 'python -m training.train', 'metrics': {'mae': 1.5}}
    state = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]) and value.dtype == state[key].dtype, key
    assert not loaded.training
    a, b = _outputs(model, input_cfg), _outputs(loaded, input_cfg)
    assert torch.equal(a['depth'], b['depth']) and torch.equal(a['uncertainty'], b['uncertainty'])


def test_any_of_the_two_files_or_the_stem_names_the_checkpoint(saved):
    path, _ = saved
    for name in (path, path.with_suffix('.json'), path.with_suffix('')):
        assert checkpoint_paths(name) == (path, path.with_suffix('.json'))
        load_checkpoint(name)
    model, _, _, meta = load_config_or_checkpoint(path)
    assert meta['training']['metrics']['mae'] == 1.5


def test_teacher_round_trip(tmp_path):
    input_cfg, model_cfg = load_model_config(TINY_TEACHER)
    torch.manual_seed(0)
    model = _randomise_buffers(build_model(model_cfg, input_cfg)).eval()
    path = save_checkpoint(tmp_path / 'teacher.safetensors', model, input_cfg, model_cfg)
    loaded, _, _, _ = load_checkpoint(path)
    a, b = _outputs(model, input_cfg), _outputs(loaded, input_cfg)
    assert torch.equal(a['depth'], b['depth']) and torch.equal(a['radar_confidence'], b['radar_confidence'])


def test_writes_are_atomic_and_readable_by_others(saved):
    path, model = saved
    folder = path.parent
    assert sorted(p.name for p in folder.iterdir()) == ['student.json', 'student.safetensors']
    for file in folder.iterdir():
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o644
    # overwriting replaces both files whole
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(path, model, model.input_cfg, model.model_cfg)
    assert sorted(p.name for p in folder.iterdir()) == ['student.json', 'student.safetensors']
    loaded = load_checkpoint(path)[0]
    assert torch.equal(next(loaded.parameters()), next(model.parameters()))
    assert load_checkpoint(path)[3]['training'] == {}


def test_unserialisable_training_metadata_is_refused_before_writing(tmp_path, tiny_student):
    model, input_cfg, model_cfg = tiny_student
    with pytest.raises(CheckpointError, match='not JSON-serialisable'):
        save_checkpoint(tmp_path / 'x', model, input_cfg, model_cfg, training={'tensor': torch.zeros(1)})
    assert not list(tmp_path.iterdir())


def _rewrite_json(path, change):
    json_path = path.with_suffix('.json')
    meta = json.loads(json_path.read_text())
    change(meta)
    json_path.write_text(json.dumps(meta))


def _rewrite_weights(path, change):
    from safetensors.torch import load_file, save_file
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


BAD_CASES = {
    'missing json': (lambda p: p.with_suffix('.json').unlink(), 'configuration not found'),
    'missing weights': (lambda p: p.unlink(), 'weights file not found'),
    # a wrong model path: what was asked for is named, not a .json the user never mentioned
    'missing both': (lambda p: (p.unlink(), p.with_suffix('.json').unlink()),
                     r'student\.safetensors: checkpoint not found \(neither student\.safetensors nor student\.json'),
    'bad json': (lambda p: p.with_suffix('.json').write_text('{"format": "rcdepth-ch'), 'not valid checkpoint JSON'),
    'json not a mapping': (lambda p: p.with_suffix('.json').write_text('[1, 2]'), 'not an rcdepth checkpoint'),
    'wrong format': (lambda p: _rewrite_json(p, lambda m: m.update(format='other')), 'not an rcdepth checkpoint'),
    'wrong version': (lambda p: _rewrite_json(p, lambda m: m.update(version=99)), 'version 99'),
    'unknown config key': (lambda p: _rewrite_json(p, lambda m: m['model'].update(typo=1)), 'invalid configuration'),
    'config of another model': (
        lambda p: _rewrite_json(p, lambda m: m['model']['decoder'].update(widths=[32, 24, 16, 8, 4])),
        r'16 tensor\(s\) have the wrong shape: decoder.stages.4.0.1.0.weight \(8, 8, 1, 1\) vs model '
        r'\(4, 8, 1, 1\)'),
    'missing tensor': (lambda p: _rewrite_weights(p, lambda s: s.pop('head.logits.bias')),
                       r'1 missing key\(s\): head.logits.bias'),
    'extra tensor': (lambda p: _rewrite_weights(p, lambda s: s.update(extra=torch.zeros(2))),
                     r'1 unexpected key\(s\): extra'),
    'shape mismatch': (lambda p: _rewrite_weights(p, lambda s: s.update({'head.logits.bias': torch.zeros(3)})),
                       r'head.logits.bias \(3,\) vs model \(16,\)'),
    'not safetensors': (lambda p: p.write_bytes(b'PK\x03\x04 a zip file, or a pickle, anything else'),
                        'not a readable safetensors file'),
    'truncated': (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
                  'not a readable safetensors file'),
    'empty': (lambda p: p.write_bytes(b''), 'not a readable safetensors file'),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_checkpoints_raise_checkpoint_error_naming_the_file(saved, case):
    path, _ = saved
    damage, fragment = BAD_CASES[case]
    damage(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert 'student.' in message and str(path.parent) in message
    assert re.search(fragment, message), message
