"""``rcdepth demo`` end to end with a tiny model: files, numbers, every process stopped (also on Ctrl-C)."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import cv2
import pytest

from rcdepth_ros.core.inference.bundled_model import bundled_model_path
from rcdepth_ros.errors import CheckpointError
from rcdepth_ros.models import save_checkpoint
from rcdepth_ros.ros_env import configure_ros_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkpoint(tmp_path, tiny_student):
    return save_checkpoint(tmp_path / 'tiny', *tiny_student)


def _demo(out, *extra):
    return [sys.executable, '-m', 'rcdepth_ros.cli', 'demo', '--out', str(out), '--frames', '3', '--width', '256',
            '--height', '144', '--sheet-frames', '2', '--device', 'cpu', *extra]


def _processes_mentioning(text):
    """Return the pids of processes whose command line mentions ``text`` (read from /proc, nothing is signalled)."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text in (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace'):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_demo_writes_metrics_sheet_and_summary(tmp_path, checkpoint):
    out = tmp_path / 'demo'
    env = configure_ros_environment(dict(os.environ))
    done = subprocess.run(_demo(out, '--model', str(checkpoint)), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'rcdepth demo summary' in done.stdout and 'MAE' in done.stdout and 'p95' in done.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames_in'] == summary['frames_out'] == summary['frames_evaluated'] == 3
    assert summary['latency_ms']['end_to_end_p50'] > 0 and summary['mae_mm_80m'] > 0
    assert summary['exit_status'] == {'rcdepth_eval_node': 0, 'rcdepth_node': 0}      # clean SIGINT shutdowns
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['frames'] == 3 and len(metrics['per_frame']) == 3
    assert metrics['caps']['80']['mae'] == pytest.approx(summary['mae_mm_80m'])
    sheet = cv2.imread(str(out / 'contact_sheet.png'))
    assert sheet is not None and sheet.shape[1] == 5 * 320 and sheet.shape[0] > 2 * 150
    assert (out / 'logs' / 'node.log').read_text().count('model ') >= 1
    assert _processes_mentioning(str(out)) == []


def test_ctrl_c_stops_every_process(tmp_path, checkpoint):
    out = tmp_path / 'interrupted'
    env = configure_ros_environment(dict(os.environ))
    demo = subprocess.Popen(_demo(out, '--model', str(checkpoint), '--rate', '0.01'), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        for line in demo.stdout:
            if line.startswith('[4/5]') or time.monotonic() > deadline:
                break
        assert len(_processes_mentioning(str(out))) >= 2, 'the nodes should be running while the bag plays'
        demo.send_signal(signal.SIGINT)
        rest = demo.communicate(timeout=60)[0]
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 2 and 'interrupted' in rest
    assert _processes_mentioning(str(out)) == []


def test_missing_model_fails_with_the_file_and_how_to_make_it(tmp_path):
    with pytest.raises(CheckpointError, match='make demo-model') as info:
        bundled_model_path(tmp_path)
    assert str(tmp_path) in str(info.value)
    done = subprocess.run(_demo(tmp_path / 'x', '--model', str(tmp_path / 'absent.safetensors')),
                          env=configure_ros_environment(dict(os.environ)), cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and 'absent' in done.stderr
