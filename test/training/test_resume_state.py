"""
A damaged resume state: the previous one serves with a warning; when neither loads, the message says ``--fresh``.

Every resume says from which step. The damage is what a file can suffer after it was written: cut short, random
bytes, emptied; torch's advice to load it with ``weights_only=False`` is never passed on.
"""

import pytest

from rcdepth_ros.errors import TrainingError
import torch
from training.loop.state import load_resume_state, previous_state_path, save_state, state_path, STATE_VERSION
from training.train import main

DAMAGE = {
    'truncated': lambda path: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2]),
    'garbage': lambda path: path.write_bytes(b'\x80\x04' + bytes(range(256)) * 8),
    'text': lambda path: path.write_text('not a resume state\n'),
    'empty': lambda path: path.write_bytes(b''),
}


def _state(step):
    return {'version': STATE_VERSION, 'weights': torch.full((3,), float(step)), 'progress': {'global_step': step}}


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_a_damaged_last_state_falls_back_to_the_previous_one(tmp_path, damage):
    save_state(_state(3), tmp_path)
    save_state(_state(6), tmp_path)
    assert torch.load(previous_state_path(tmp_path), weights_only=True)['progress']['global_step'] == 3
    state, path, warning = load_resume_state(tmp_path)
    assert path == state_path(tmp_path) and warning is None and state['progress']['global_step'] == 6
    DAMAGE[damage](state_path(tmp_path))
    state, path, warning = load_resume_state(tmp_path)
    assert path == previous_state_path(tmp_path) and state['progress']['global_step'] == 3
    assert 'last.pt: unreadable resume state' in warning and '(step 3)' in warning
    assert 'weights_only' not in warning
    DAMAGE[damage](previous_state_path(tmp_path))
    with pytest.raises(TrainingError) as info:
        load_resume_state(tmp_path)
    message = str(info.value)
    assert '--fresh' in message and 'last.pt' in message and 'previous.pt' in message
    assert 'weights_only' not in message and 'Weights only' not in message


def test_training_resumes_from_the_previous_state_and_says_from_which_step(tmp_path, tiny_experiment,
                                                                           write_experiment, capsys):
    config = write_experiment(tiny_experiment())
    run = tmp_path / 'run'
    argv = ['--config', str(config), '--out', str(run), 'train.epochs=1', 'train.checkpoint_every_steps=1']
    assert main(argv) == 0                                # 4 steps: states after steps 1, 2, 3 and 4
    assert 'resumed from' not in capsys.readouterr().err
    final = (run / 'checkpoints' / 'final.safetensors').read_bytes()
    assert main(argv) == 0                                # a complete run resumes at its end and says so
    assert 'resumed from step 4 ' in capsys.readouterr().err

    (run / 'checkpoints' / 'final.safetensors').unlink()
    DAMAGE['truncated'](state_path(run))
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert 'warning: ' in err and 'last.pt: unreadable resume state' in err and 'resumed from step 3 ' in err
    assert 'weights_only' not in err
    # step 4 trained again from the state of step 3: the same weights (the run is deterministic on the CPU)
    assert (run / 'checkpoints' / 'final.safetensors').read_bytes() == final

    DAMAGE['garbage'](state_path(run))
    DAMAGE['empty'](previous_state_path(run))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('training.train: error:') and '--fresh' in err and 'Traceback' not in err
    assert main(argv + ['--fresh']) == 0                  # the way out the message names
