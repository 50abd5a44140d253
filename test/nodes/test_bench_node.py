"""Smoke test of benchmarks/bench_node.py: a node process over real transport, two phases, the documented JSON."""

import json
import math
import os
import subprocess
import sys

from rcdepth_ros.paths import SOURCE_ROOT
from rcdepth_ros.ros_env import configure_ros_environment


def test_latency_and_memory_phases_write_their_figures(tmp_path):
    out = tmp_path / 'bench_node.json'
    out.write_text(json.dumps({'sustained': {'kept': True}}))     # a phase not run keeps its earlier figures
    command = [sys.executable, str(SOURCE_ROOT / 'benchmarks' / 'bench_node.py'), '--phases', 'latency,memory',
               '--frames', '3', '--memory-frames', '201', '--out', str(out)]
    done = subprocess.run(command, env=configure_ros_environment(dict(os.environ)), cwd=SOURCE_ROOT,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result['sustained'] == {'kept': True}
    latency = result['latency']
    assert latency['frames'] == 3
    # Figures only, never a relation between two timings (on a busy machine any ordering can flip).
    for value in (latency['node_forward_ms_p50'], latency['end_to_end_ms']['p50'], latency['end_to_end_ms']['p95'],
                  latency['overhead_fraction_of_forward']):
        assert isinstance(value, float) and math.isfinite(value)
    assert latency['node_forward_ms_p50'] > 0 and latency['end_to_end_ms']['p50'] > 0
    memory = result['memory']
    assert memory['frames'] == 201 and [i for i, _ in memory['samples']] == [0, 50, 100, 150, 200]
    assert memory['rss_mb_end'] > 50 and memory['slope_mb_per_1000_frames'] is not None
    assert 'load_average_before' in memory['machine']
