"""Smoke test of benchmarks/bench_soak.py: a node process fed a few frames with every bad kind, the documented JSON."""

import json
import os
import subprocess
import sys

from rcdepth_ros.paths import SOURCE_ROOT
from rcdepth_ros.ros_env import configure_ros_environment


def test_soak_accounts_for_every_frame_and_refuses_the_bad_ones(tmp_path):
    out = tmp_path / 'soak.json'
    command = [sys.executable, str(SOURCE_ROOT / 'benchmarks' / 'bench_soak.py'), '--frames', '60', '--bad-every',
               '10', '--rss-every', '10', '--warmup-frames', '20', '--out', str(out)]
    done = subprocess.run(command, env=configure_ros_environment(dict(os.environ)), cwd=SOURCE_ROOT,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result['frames'] == 60 and result['node_exit_status'] == 0
    bad = result['bad_frames']
    assert sorted(bad) == sorted(['image_encoding', 'image_truncated', 'camera_info_k0', 'image_size',
                                  'radar_unknown_frame', 'radar_nan'])
    assert all(entry['sent'] == 1 for entry in bad.values())
    # a refused frame never gets depth (whatever else happens to it on a busy machine)
    assert all(entry['with_depth'] == 0 for entry in bad.values() if not entry['depth_expected'])
    assert result['good_frames'] == 54 and result['depth_received'] >= 1
    assert result['depth_received'] + result['keep_latest_drops'] + result['refused_for_a_counted_reason'] + \
        result['lost_other_than_keep_latest'] == 60
    assert [i for i, _ in result['rss_samples']] == list(range(0, 60, 10)) + [59]
    assert result['rss_slope_mb_per_1000_frames'] is not None
    assert 'load_average_before' in result['machine'] and 'bench_soak.py' in result['machine']['command']
