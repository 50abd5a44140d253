"""The GPU table script (benchmarks/gpu_distill.sh), run on the CPU at a tiny size from a real device payload."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from rcdepth_ros.paths import SOURCE_ROOT

SCRIPT = SOURCE_ROOT / 'benchmarks' / 'gpu_distill.sh'
# What the GPU machine lacks: importing any of these there would end the run.
ABSENT_THERE = ('rclpy', 'rosbags', 'matplotlib', 'tensorboard', 'nuscenes', 'hypothesis')
BLOCKER = """
import importlib.abc, importlib.machinery, sys
BLOCKED = %r

class _AbsentLoader(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f'No module named {spec.name!r} (not installed on the GPU machine)', name=spec.name)

    def exec_module(self, module):
        pass

class _Absent(importlib.abc.MetaPathFinder):
    # found without an origin (optional-module probes skip it), and importing it fails as on the GPU machine
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _AbsentLoader(), origin=None)
        return None

sys.meta_path.insert(0, _Absent())
""" % (ABSENT_THERE,)


def test_gpu_table_script_on_the_cpu_at_a_tiny_size(tmp_path, astyx_root):
    tool = SOURCE_ROOT.parent / 'shared' / 'tools' / 'device_payload.py'
    if not tool.is_file():
        pytest.skip(f'{tool} is absent (it makes the payload the GPU machine receives)')
    payload = tmp_path / 'payload'
    # the frames the tiny table touches: fit 296-299, dev 300-303, val 350-351
    subprocess.run([sys.executable, str(tool), str(astyx_root), str(payload), '256', '296', '351'], check=True,
                   cwd=SOURCE_ROOT, stdout=subprocess.DEVNULL)
    blocker = tmp_path / 'blocker'
    blocker.mkdir()
    (blocker / 'sitecustomize.py').write_text(BLOCKER)
    out = tmp_path / 'table'
    env = dict(os.environ, GPU_TABLE_PAYLOAD=str(payload), GPU_TABLE_OUT=str(out), GPU_TABLE_DEVICE='cpu',
               GPU_TABLE_HEIGHT='64', GPU_TABLE_WIDTH='256', GPU_TABLE_EPOCHS='1', GPU_TABLE_BATCH='2',
               GPU_TABLE_JOBS='2', GPU_TABLE_THREADS='1', GPU_TABLE_WORKERS='0', PYTHON=sys.executable,
               PYTHONPATH=str(blocker))
    env.pop('RCDEPTH_CACHE', None)
    result = subprocess.run(['bash', str(SCRIPT), 'train.max_steps_per_epoch=1', 'data.train.frames=296-299',
                             'data.val.frames=300-301', '--eval-frames', '350-351', '--gate-frames', '300-301'],
                            cwd=SOURCE_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = json.loads((out / 'results' / 'distill_astyx.json').read_text())
    assert [r['name'] for r in table['rows']] == [
        'astyx/teacher_lidar', 'astyx/student_direct_s42', 'astyx/student_direct_s43', 'astyx/student_kd_s42',
        'astyx/student_direct_s44', 'astyx/student_kd_s43', 'astyx/student_kd_s44']
    assert all(r['eval_frames'] == 2 and r['steps'] == 1 for r in table['rows'])
    assert table['gate']['pixels'] == 'held-out lidar rings' and table['summary']['seeds']['80']['xd']['n'] == 3
    assert 'distill.targets.offline=false' in table['settings']['overrides']
    assert json.loads((out / 'machine.json').read_text())['device'] == 'cpu'
    assert (out / 'results' / 'distill_astyx.md').read_text().count('Gate') >= 1
    assert Path(out / 'data' / 'astyx_hires2019' / 'dataset.json').is_file()
