"""``rcdepth eval-bag`` and ``rcdepth play`` from the command line: outputs, numbers and errors."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.core.bags import bag_frames, write_bag
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.evaluation.bags import evaluate_bag
from rcdepth_ros.evaluation.frames import crop_to_field_of_view
from rcdepth_ros.evaluation.metrics import compute_frame_metrics
from rcdepth_ros.models import save_checkpoint
from rcdepth_ros.ros_env import configure_ros_environment
from support.ros_libraries import forget_cached_imports, install_message_filters, install_sensor_msgs_py


@pytest.fixture(scope='module')
def drive_bag(tmp_path_factory):
    reader = SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=3, width=192, height=112))
    return write_bag(reader, tmp_path_factory.mktemp('bags') / 'drive').path


@pytest.fixture
def checkpoint(tmp_path, tiny_student):
    return save_checkpoint(tmp_path / 'tiny', *tiny_student)


def test_eval_bag_writes_the_metrics_of_every_frame(drive_bag, checkpoint, tmp_path, capsys):
    out = tmp_path / 'eval'
    assert main(['eval-bag', str(drive_bag), '--model', str(checkpoint), '--out', str(out), '--device', 'cpu']) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / 'metrics.json').read_text())
    assert printed['frames'] == written['frames'] == 3 and 'per_frame' not in printed
    assert written['evaluation']['matched'] == 3 and written['evaluation']['problems'] == {}
    assert written['caps']['80']['mae'] == pytest.approx(printed['caps']['80']['mae'])
    assert [f['frame_id'] for f in written['per_frame']] == [str(f.stamp_ns) for f in bag_frames(drive_bag)]


def test_eval_bag_evaluates_every_frame_beside_the_real_ros_libraries(drive_bag, checkpoint, tmp_path, capsys,
                                                                      monkeypatch):
    """Where sensor_msgs_py and message_filters are installed (stand-ins here), bag messages are still read."""
    pytest.importorskip('rclpy.time')
    install_sensor_msgs_py(monkeypatch)
    install_message_filters(monkeypatch)
    try:
        out = tmp_path / 'eval'
        assert main(['eval-bag', str(drive_bag), '--model', str(checkpoint), '--out', str(out), '--device',
                     'cpu']) == 0
        written = json.loads((out / 'metrics.json').read_text())
        assert written['frames'] == 3 and written['evaluation']['problems'] == {}
    finally:
        monkeypatch.undo()
        forget_cached_imports()
    capsys.readouterr()


def test_eval_bag_refine_flag_reports_the_stage(drive_bag, checkpoint, tmp_path, capsys):
    out = tmp_path / 'refined'
    assert main(['eval-bag', str(drive_bag), '--model', str(checkpoint), '--out', str(out), '--device', 'cpu',
                 '--refine', 'radar']) == 0
    capsys.readouterr()
    refine = json.loads((out / 'metrics.json').read_text())['evaluation']['refine']
    assert refine['settings']['mode'] == 'radar' and sum(refine['frames'].values()) == 3
    assert refine['frames']['refined'] == 3 and refine['time_ms_p50'] > 0
    plain = tmp_path / 'plain'
    assert main(['eval-bag', str(drive_bag), '--model', str(checkpoint), '--out', str(plain), '--device', 'cpu']) == 0
    assert 'refine' not in json.loads((plain / 'metrics.json').read_text())['evaluation']


def test_eval_bag_agrees_with_the_core_on_the_bag_frames(drive_bag, tiny_student):
    """The same numbers as the engine on BagFrame inputs, in the field of view every scorer uses."""
    engine = InferenceEngine(tiny_student, device='cpu')
    result, _ = evaluate_bag(drive_bag, engine)
    for frame, metrics in zip(bag_frames(drive_bag), result.frame_list):
        inference = engine.infer(frame.rgb(), frame.radar_points(), frame.intrinsics())
        gt = crop_to_field_of_view(frame.ground_truth(), inference.depth)
        reference = compute_frame_metrics(inference.depth, gt, frame_id=str(frame.stamp_ns))
        assert metrics.valid_pixels == reference.valid_pixels
        assert metrics.caps['80']['mae'] == pytest.approx(reference.caps['80']['mae'], rel=1e-5)


def test_eval_bag_errors_name_the_problem(tmp_path, checkpoint, capsys):
    assert main(['eval-bag', str(tmp_path / 'missing'), '--model', str(checkpoint), '--device', 'cpu']) == 2
    assert 'missing' in capsys.readouterr().err
    assert main(['eval-bag', str(tmp_path), '--model', str(tmp_path / 'nope.safetensors')]) == 2
    assert 'nope' in capsys.readouterr().err


def test_play_command_publishes_the_bag_and_exits(drive_bag):
    env = configure_ros_environment(dict(os.environ))
    command = [sys.executable, '-m', 'rcdepth_ros.cli', 'play', str(drive_bag), '--rate', '5', '--clock', '--json',
               '--ros-args', '-r', '__node:=player_under_test']
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary['published']['/camera/image'] == 3 and summary['published']['/lidar/points'] == 3
    assert set(summary['skipped_topics']) == {'/tf', '/tf_static'} and summary['loops'] == 1
