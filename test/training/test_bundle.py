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


def test_bundle_picks_the_run_with_the_lowest_final_validation(tmp_path, capsys):
    from training.bundle import pick_run

    def summary(name, maes):
        run = tmp_path / name
        run.mkdir()
        validation = [{'epoch': i + 1, 'metrics': {'caps': {'80': {'mae': mae}}}} for i, mae in enumerate(maes)]
        (run / 'summary.json').write_text(json.dumps({'validation': validation}))
        return run

    # the last validation decides, not the best one along the way
    first, second = summary('s42', [3000.0, 4100.0]), summary('s43', [3900.0, 3950.0])
    picked, scores = pick_run([first, second])
    assert picked == second and scores == {str(first): 4100.0, str(second): 3950.0}
    unvalidated = tmp_path / 'unvalidated'
    unvalidated.mkdir()
    assert bundle_main(['--run', str(first), '--run', str(unvalidated), '--out', str(tmp_path / 'w')]) == 2
    assert 'no validation MAE@80' in capsys.readouterr().err
