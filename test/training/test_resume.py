"""
A training process killed with SIGKILL in the middle of an epoch resumes and ends bit-identical.

Three subprocesses of ``python -m training.train`` on the same tiny config: an uninterrupted run; a run killed with
SIGKILL as soon as its log shows step 7 of 8 (its last resume state is then step 6, in the middle of epoch 2);
the same command again, which finds the state and continues. On the CPU with one thread every operation is
deterministic given its inputs, the data order and augmentation are functions of (seed, epoch, frame), and the
state restores weights, AdamW moments, the lr schedule and the RNGs exactly, so the final weights are compared
byte for byte.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from rcdepth_ros.paths import SOURCE_ROOT
from training.loop.state import load_state, state_path

OVERRIDES = ['train.epochs=2', 'train.checkpoint_every_steps=3', 'train.log_every_steps=1']


def _command(config, out):
    return [sys.executable, '-m', 'training.train', '--config', str(config), '--out', str(out)] + OVERRIDES


def _logged_steps(run):
    path = Path(run) / 'logs' / 'train.csv'
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    return [int(line.split(',')[0]) for line in lines if line and line[0].isdigit()]


def test_sigkill_mid_epoch_resumes_to_identical_weights(tmp_path, tiny_experiment, write_experiment):
    config = write_experiment(tiny_experiment())
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    reference = subprocess.run(_command(config, tmp_path / 'reference'), cwd=SOURCE_ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]

    run = tmp_path / 'killed'
    process = subprocess.Popen(_command(config, run), cwd=SOURCE_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while 7 not in _logged_steps(run):
            assert process.poll() is None, 'the run ended before it could be killed'
            assert time.monotonic() < deadline, 'the run did not reach step 7'
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    progress = load_state(state_path(run))['progress']
    # killed mid-epoch: the last state is inside epoch 2 (4 steps an epoch), not at an epoch boundary
    assert progress['epoch'] == 1 and 0 < progress['step_in_epoch'] < 4, progress
    assert not (run / 'checkpoints' / 'final.json').exists()

    resumed = subprocess.run(_command(config, run), cwd=SOURCE_ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = (run / 'checkpoints' / 'final.safetensors').read_bytes()
    assert final == (tmp_path / 'reference' / 'checkpoints' / 'final.safetensors').read_bytes()
    # the resumed log holds every step exactly once: rows after the state's step were trained again
    assert _logged_steps(run) == list(range(1, 9))
    assert (run / 'checkpoints' / 'best.safetensors').read_bytes() == \
        (tmp_path / 'reference' / 'checkpoints' / 'best.safetensors').read_bytes()
