"""Bundling a run as a shipped model: float16 weights, provenance and evaluation kept, the weights note."""

import json

from rcdepth_ros.models import load_checkpoint
from training.bundle import main as bundle_main
from training.config import experiment_from_dict
from training.evaluate import main as evaluate_main
from training.loop.trainer import train


def test_bundle_a_run(tmp_path, tiny_experiment, capsys):
    data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1})
    run = tmp_path / 'run'
    train(experiment_from_dict(data), run)
    assert bundle_main(['--run', str(run), '--out', str(tmp_path / 'weights' / 'tiny')]) == 2   # not evaluated yet
    assert 'no eval/evaluation.json' in capsys.readouterr().err
    options = json.dumps({'config': data['data']['options']['config']})
    assert evaluate_main(['--model', str(run), '--dataset', 'synthetic', '--split', 'val', '--frames', '0-1',
                          '--options', options, '--out', str(run / 'eval'), '--device', 'cpu']) == 0
    assert bundle_main(['--run', str(run), '--out', str(tmp_path / 'weights' / 'tiny'), '--license', 'CC X']) == 0
    model, _, _, meta = load_checkpoint(tmp_path / 'weights' / 'tiny')
    original = load_checkpoint(run / 'checkpoints' / 'final')[0]
    assert meta['storage_dtype'] == 'float16' and meta['training']['bundled_from'] == str(run)
    assert meta['training']['evaluation']['metrics']['frames'] == 2
    for (name, a), (_, b) in zip(model.state_dict().items(), original.state_dict().items()):
        assert a.shape == b.shape and (a.float() - b.float()).abs().max() <= 1e-3 * (1 + b.abs().max()), name
    note = (tmp_path / 'weights' / 'tiny.md').read_text()
    assert '## Licence' in note and 'CC X' in note and '| 80 m |' in note
