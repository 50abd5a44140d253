"""The trainer end to end on tiny synthetic scenes: run directory, logs, checkpoints, KD runs, refusals."""

import csv
import json

import pytest
from rcdepth_ros.errors import ConfigError, TrainingError
from rcdepth_ros.evaluation.datasets import evaluate_model
from rcdepth_ros.models import load_checkpoint
from rcdepth_ros.models.checkpoint import checkpoint_paths
from training.config import experiment_from_dict
from training.loop.state import load_state, state_path
from training.loop.trainer import train
from training.train import main as train_main
import yaml


def _rows(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def test_run_directory_logs_and_checkpoints(tmp_path, tiny_experiment):
    data = tiny_experiment(train={'tensorboard': True, 'plots': True, 'sample_images': 2})
    run = tmp_path / 'run'
    summary = train(experiment_from_dict(data), run, command='python -m training.train --config tiny.yaml')
    # 8 frames, batch 2: 4 steps an epoch, 2 epochs
    assert summary['complete'] and summary['steps'] == 8 and summary['steps_per_epoch'] == 4
    assert summary['replicas_agree'] and summary['world_size'] == 1
    assert json.loads((run / 'summary.json').read_text())['steps'] == 8
    train_rows = _rows(run / 'logs' / 'train.csv')
    assert [int(r['step']) for r in train_rows] == list(range(1, 9))
    assert {'loss', 'supervised', 'lr', 'seconds_per_step'} <= set(train_rows[0])
    assert float(train_rows[-1]['lr']) == pytest.approx(0.1 * 1e-4, rel=1e-6)     # decayed to a tenth
    val_rows = _rows(run / 'logs' / 'val.csv')
    assert [int(r['epoch']) for r in val_rows] == [1, 2] and float(val_rows[0]['mae@80']) > 0
    assert list((run / 'logs' / 'tensorboard').glob('events.out.tfevents.*'))
    plots = {p.name for p in (run / 'plots').iterdir()}
    assert plots == {'curves.png', 'samples_epoch001.png', 'samples_epoch002.png'}
    saved = yaml.safe_load((run / 'config.yaml').read_text())
    assert saved['provenance']['command'].startswith('python -m training.train')
    assert experiment_from_dict({k: v for k, v in saved.items() if k != 'provenance'}).to_dict() == \
        experiment_from_dict(data).to_dict()
    for name in ('best', 'final'):
        model, input_cfg, model_cfg, meta = load_checkpoint(run / 'checkpoints' / name)
        assert meta['training']['kind'] == name and meta['training']['seed'] == 42
        assert meta['training']['command'].startswith('python -m training.train')
        assert meta['training']['data']['source'] == 'synthetic'
        assert 'commit' in (meta['training']['git'] or {'commit': None})
    assert load_checkpoint(run / 'checkpoints' / 'best')[3]['training']['val_metrics_model_resolution']['frames'] == 4
    state = load_state(state_path(run))
    assert state['progress']['epoch'] == 2 and state['progress']['global_step'] == 8
    # the final checkpoint goes through the one evaluation routine, at the original image resolution
    record = evaluate_model(str(run / 'checkpoints' / 'final'), 'synthetic', split='val', frames='0-1',
                            reader_options={'config': data['data']['options']['config']}, device='cpu')
    assert record['metrics']['frames'] == 2 and record['metrics']['caps']['80']['mae'] > 0
    # a complete run does nothing more when started again
    again = train(experiment_from_dict(data), run)
    assert again['steps'] == 8 and len(_rows(run / 'logs' / 'train.csv')) == 8


def test_distillation_run_logs_every_term(tmp_path, tiny_experiment, tiny_teacher_checkpoint):
    data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 2},
                           distill={'teacher': str(tiny_teacher_checkpoint), 'dd': {'enabled': True},
                                    'saliency': {'enabled': True}, 'feature': {'enabled': True},
                                    'inter_depth': {'enabled': True}})
    summary = train(experiment_from_dict(data), tmp_path / 'kd')
    assert summary['steps'] == 2
    rows = _rows(tmp_path / 'kd' / 'logs' / 'train.csv')
    for term in ('dd', 'saliency', 'feature', 'inter_depth'):
        assert all(float(r[term]) > 0 for r in rows), term
    meta = load_checkpoint(tmp_path / 'kd' / 'checkpoints' / 'final')[3]['training']
    assert meta['teacher'] == str(tiny_teacher_checkpoint) and meta['distill_terms'] == [
        'dd', 'saliency', 'feature', 'inter_depth']
    # training-only modules are in the resume state, never in the model checkpoint
    state = load_state(state_path(tmp_path / 'kd'))
    assert any(k.startswith('kd.feature.adapters.image') for k in state['objective'])
    weights, _ = checkpoint_paths(tmp_path / 'kd' / 'checkpoints' / 'final')
    from safetensors.torch import load_file
    assert not any(k.startswith('kd.') or 'adapt' in k for k in load_file(str(weights)))


def test_warm_up_epochs_without_distillation(tmp_path, tiny_experiment, tiny_teacher_checkpoint):
    data = tiny_experiment(train={'max_steps_per_epoch': 1},
                           distill={'teacher': str(tiny_teacher_checkpoint), 'start_epoch': 1,
                                    'dd': {'enabled': True}})
    train(experiment_from_dict(data), tmp_path / 'warm')
    rows = _rows(tmp_path / 'warm' / 'logs' / 'train.csv')
    assert rows[0]['dd'] == '' and float(rows[1]['dd']) > 0


def test_refusals(tmp_path, tiny_experiment, tiny_teacher_checkpoint, tiny_teacher_model):
    data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1})
    run = tmp_path / 'run'
    train(experiment_from_dict(data), run)
    other = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1, 'lr': 0.5})
    with pytest.raises(TrainingError, match='different experiment'):
        train(experiment_from_dict(other), run)
    with pytest.raises(TrainingError, match='no resume state'):
        train(experiment_from_dict(data), tmp_path / 'empty', resume=True)
    wide = tiny_experiment(input={'height': 64, 'width': 160},
                           distill={'teacher': str(tiny_teacher_checkpoint), 'dd': {'enabled': True}})
    with pytest.raises(ConfigError, match='input configuration differs'):
        train(experiment_from_dict(wide), tmp_path / 'wide')


def test_command_line(tmp_path, tiny_experiment, write_experiment, capsys):
    path = write_experiment(tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1}))
    assert train_main(['--config', str(path), '--out', str(tmp_path / 'cli'), 'train.seed=7']) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed['steps'] == 1 and printed['final_checkpoint'].endswith('final')
    assert load_checkpoint(tmp_path / 'cli' / 'checkpoints' / 'final')[3]['training']['seed'] == 7
    assert train_main(['--config', str(path), '--out', str(tmp_path / 'none'), '--resume']) == 2
    assert 'no resume state' in capsys.readouterr().err
    assert train_main(['--config', str(path), 'train.epochs=zero']) == 2
    # --fresh starts over in the same directory
    assert train_main(['--config', str(path), '--out', str(tmp_path / 'cli'), '--fresh', 'train.seed=7']) == 0
    assert len(_rows(tmp_path / 'cli' / 'logs' / 'train.csv')) == 1


def test_cpu_bf16_autocast_run(tmp_path, tiny_experiment):
    data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 2, 'amp': 'bf16'})
    summary = train(experiment_from_dict(data), tmp_path / 'bf16')
    assert summary['autocast'] == 'bfloat16' and summary['steps'] == 2
    losses = [float(r['loss']) for r in _rows(tmp_path / 'bf16' / 'logs' / 'train.csv')]
    assert all(0 < v < 1e3 for v in losses)
    model = load_checkpoint(tmp_path / 'bf16' / 'checkpoints' / 'final')[0]
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())   # fp32 weights


def test_gradient_clipping_bounds_the_update(tmp_path, tiny_experiment):
    # AdamW's first step moves each weight by about lr whatever the gradient; clipping shows in the moments
    from training.loop.state import load_state, state_path
    runs = {}
    for clip in (0.0, 1e-6):
        data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1, 'grad_clip': clip})
        train(experiment_from_dict(data), tmp_path / f'clip{clip}')
        moments = load_state(state_path(tmp_path / f'clip{clip}'))['optimizer']['state']
        runs[clip] = sum(float(s['exp_avg'].norm() ** 2) for s in moments.values()) ** 0.5
    # the first moment is (1 - beta1) * gradient: its norm is 0.1 * the clipped global norm
    assert runs[1e-6] == pytest.approx(0.1 * 1e-6, rel=1e-3) and runs[0.0] > 1e3 * runs[1e-6]
