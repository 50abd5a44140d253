"""Fixtures of the training tests: tiny experiments on tiny synthetic scenes (64x128 input, a few frames)."""

import copy

import pytest
import yaml

TINY_STUDENT_MODEL = {
    'architecture': 'student',
    'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]},
    'radar_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
    'decoder': {'widths': [32, 24, 16, 8, 8], 'daspp_bottleneck': 16, 'daspp_growth': 8},
    'head': {'num_bins': 16},
}
TINY_TEACHER_MODEL = {
    'architecture': 'teacher',
    'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]},
    'radar_stage1_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
    'radar_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
    'fusion': {'kind': 'gated'},
    'decoder': {'kind': 'bts', 'widths': [32, 32, 16, 16, 8], 'daspp_growth': 8},
    'head': {'kind': 'sigmoid', 'max_depth': 100.0},
}
# Synthetic frames at 96x192: scaled to the 128-pixel model width they are exactly 64 rows.
TINY_SYNTHETIC = {'num_drives': 1, 'frames_per_drive': 8, 'height': 96, 'width': 192}
TINY_EXPERIMENT = {
    'name': 'tiny',
    'input': {'height': 64, 'width': 128},
    'model': TINY_STUDENT_MODEL,
    'data': {'source': 'synthetic', 'options': {'config': TINY_SYNTHETIC}, 'train': {'split': 'train'},
             'val': {'split': 'val', 'frames': '0-3'}, 'cache': False},
    'train': {'epochs': 2, 'batch_size': 2, 'threads': 1, 'checkpoint_every_steps': 3, 'log_every_steps': 1,
              'progress': False, 'tensorboard': False, 'plots': False},
}


def _tiny_experiment(**sections):
    data = copy.deepcopy(TINY_EXPERIMENT)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **copy.deepcopy(value)}
        else:
            data[key] = copy.deepcopy(value)
    return data


@pytest.fixture
def tiny_experiment():
    """Return ``build(**sections)``: a copy of TINY_EXPERIMENT with sections merged over it (one level deep)."""
    return _tiny_experiment


@pytest.fixture
def tiny_teacher_model():
    """Return the tiny teacher's model section (a copy)."""
    return copy.deepcopy(TINY_TEACHER_MODEL)


@pytest.fixture
def write_experiment(tmp_path):
    """Return ``write(data, name='exp.yaml') -> path``: writes an experiment YAML under the test's tmp_path."""
    def write(data, name='exp.yaml'):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path
    return write


@pytest.fixture(scope='session')
def tiny_teacher_checkpoint(tmp_path_factory):
    """Return the stem of a seeded, untrained tiny teacher checkpoint at the tiny experiment's input."""
    import torch
    from rcdepth_ros.models import build_model, load_model_config, save_checkpoint
    input_cfg, model_cfg = load_model_config({'input': TINY_EXPERIMENT['input'], 'model': TINY_TEACHER_MODEL})
    torch.manual_seed(1)
    model = build_model(model_cfg, input_cfg)
    stem = tmp_path_factory.mktemp('teacher') / 'teacher'
    save_checkpoint(stem, model, input_cfg, model_cfg)
    return stem


@pytest.fixture(autouse=True)
def single_thread():
    """Run the training tests on one torch thread: tiny models gain nothing from more, and a shared CPU loses."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
