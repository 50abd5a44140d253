"""The bundled model is found by looking in weights/: one checkpoint, or the one named demo, else a clear error."""

import json

import pytest

from rcdepth_ros.core.inference.bundled_model import bundled_model_path, resolve_model_path
from rcdepth_ros.errors import CheckpointError


def _checkpoint(folder, name):
    (folder / f'{name}.safetensors').write_bytes(b'weights')
    (folder / f'{name}.json').write_text(json.dumps({'format': 'rcdepth-checkpoint', 'version': 1}))


def test_one_checkpoint_or_the_demo_one(tmp_path):
    (tmp_path / 'notes.json').write_text('{"format": "other"}')       # not a checkpoint
    with pytest.raises(CheckpointError, match='no bundled model.*make demo-model'):
        bundled_model_path(tmp_path)
    _checkpoint(tmp_path, 'student_synthetic')
    assert bundled_model_path(tmp_path) == tmp_path / 'student_synthetic.safetensors'
    _checkpoint(tmp_path, 'teacher')
    with pytest.raises(CheckpointError, match='several checkpoints.*student_synthetic.safetensors'):
        bundled_model_path(tmp_path)
    _checkpoint(tmp_path, 'demo_student')
    assert bundled_model_path(tmp_path).name == 'demo_student.safetensors'
    with pytest.raises(CheckpointError):
        bundled_model_path(tmp_path / 'absent')


def test_explicit_path_wins(tmp_path):
    assert resolve_model_path(str(tmp_path / 'm.safetensors')) == tmp_path / 'm.safetensors'


def test_the_bundled_model_of_a_data_source(tmp_path):
    from rcdepth_ros.core.inference.bundled_model import bundled_model_for
    _checkpoint(tmp_path, 'xdrcdepth_demo_synthetic')
    (tmp_path / 'xdrcdepth_astyx.safetensors').write_bytes(b'weights')
    (tmp_path / 'xdrcdepth_astyx.json').write_text(json.dumps({'format': 'rcdepth-checkpoint', 'version': 1,
                                                               'training': {'data': {'source': 'astyx'}}}))
    assert bundled_model_for('astyx', tmp_path).name == 'xdrcdepth_astyx.safetensors'
    assert bundled_model_for('synthetic', tmp_path).name == 'xdrcdepth_demo_synthetic.safetensors'
    assert bundled_model_path(tmp_path).name == 'xdrcdepth_demo_synthetic.safetensors'   # the node's default


def test_every_place_names_which_bundled_model_and_what_it_was_trained_on():
    import argparse
    import re

    from rcdepth_ros.commands import demo, eval_bag
    from rcdepth_ros.core.inference.bundled_model import ASTYX_TRAINED, SYNTHETIC_ONLY
    from rcdepth_ros.evaluation import datasets
    from rcdepth_ros.nodes import params
    from rcdepth_ros.paths import SOURCE_ROOT
    assert 'synthetic scenes only' in SYNTHETIC_ONLY
    assert 'Astyx HiRes2019' in ASTYX_TRAINED and 'CC BY-NC-SA 4.0' in ASTYX_TRAINED
    description = params.BY_NAME['model_path'].description                     # ros2 param describe
    assert 'bundled demo model' in description and SYNTHETIC_ONLY in description
    for command in (eval_bag, demo, datasets):                                  # --model help
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        text = ' '.join(parser.format_help().split())
        assert 'bundled demo model' in text and SYNTHETIC_ONLY in text, command.__name__
    parser = argparse.ArgumentParser()
    datasets.add_arguments(parser)                                              # rcdepth eval picks per data set
    assert f'the bundled Astyx model, {ASTYX_TRAINED}' in ' '.join(parser.format_help().split())
    for name in ('launch/rcdepth.launch.py', 'launch/playback_eval.launch.py', 'config/rcdepth.yaml'):
        lines = [line for line in (SOURCE_ROOT / name).read_text().splitlines() if 'bundled' in line]
        assert lines and all('bundled demo model' in line and 'synthetic scenes only' in line for line in lines), name
    for page in ('README.md', 'docs/node.md', 'docs/models.md'):
        text = ' '.join((SOURCE_ROOT / page).read_text().split())
        assert 'bundled demo model' in text and 'synthetic scenes only' in text, page
    for page in ('README.md', 'docs/models.md', 'docs/training.md'):
        text = ' '.join((SOURCE_ROOT / page).read_text().split())
        assert 'bundled Astyx model' in text and 'CC BY-NC-SA 4.0' in text, page
    # no page leaves the reader to guess which of the two it means
    for page in ['README.md'] + sorted(str(p.relative_to(SOURCE_ROOT)) for p in (SOURCE_ROOT / 'docs').glob('*.md')):
        text = ' '.join((SOURCE_ROOT / page).read_text().split())
        assert not re.search(r'\bthe bundled model\b', text, re.IGNORECASE), page
