"""
On the same bag the three scoring paths give the same per-frame metrics.

The live path (player -> node -> ``rcdepth_eval_node`` over rclpy), ``rcdepth eval-bag`` (the node's pipeline
offline) and ``rcdepth eval`` (``evaluate_reader`` over the bag as a data set) all call ``evaluation.frames``.
"""

import json
import threading

from node_harness import Harness
import pytest

from rcdepth_ros.core.bags import write_bag
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.evaluation.bags import bag_static_extrinsics, evaluate_bag
from rcdepth_ros.evaluation.datasets import evaluate_reader
from rcdepth_ros.nodes.depth_node import DepthNode
from rcdepth_ros.nodes.eval_node import EvalNode
from rcdepth_ros.nodes.params import extrinsics_overrides
from rcdepth_ros.nodes.player import BagPlayer
from rcdepth_ros.nodes.runtime import bring_down, bring_up

FRAMES = 5


@pytest.fixture(scope='module')
def drive_bag(tmp_path_factory):
    reader = SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=FRAMES, width=256, height=144))
    return write_bag(reader, tmp_path_factory.mktemp('bags') / 'drive').path


def _parameters(values):
    from rclpy.parameter import Parameter
    return [Parameter(name, value=value) for name, value in values.items()]


def _assert_same_frame(got, reference, rel):
    assert got['valid_pixels'] == reference.valid_pixels
    assert got['nonfinite_pred'] == reference.nonfinite_pred
    for cap, metrics in got['caps'].items():
        for name, value in metrics.items():
            assert value == pytest.approx(reference.caps[cap][name], rel=rel, abs=1e-9), (cap, name)


@pytest.mark.parametrize('refine', ['none', 'radar'])
def test_live_eval_bag_and_eval_per_frame_metrics_are_the_same(ros_context, tiny_checkpoint, drive_bag, tmp_path,
                                                               refine):
    # refine radar: the node with refine:=radar on the bag gives the offline numbers (a budget no frame reaches)
    engine = InferenceEngine(tiny_checkpoint, device='cpu', refine={'mode': refine, 'budget_ms': 'inf'})
    offline, offline_info = evaluate_bag(drive_bag, engine)
    assert offline_info['evaluated'] == FRAMES and offline_info['problems'] == {}
    as_data_set, info = evaluate_reader(engine, open_reader('bag', drive_bag), keep_frames=True)
    assert info['frames'] == FRAMES and not info['skipped']
    # the data-set path moves the radar through the bag's TF tree, eval-bag through its /tf_static: the same
    # transforms composed in another order, so the numbers agree to float rounding (with the refinement too)
    for frame, reference in zip(as_data_set.frame_list, offline.frame_list):
        _assert_same_frame(frame.to_dict(), reference, rel=1e-5)

    camera, transforms = bag_static_extrinsics(drive_bag)
    extrinsics = extrinsics_overrides(transforms, camera)
    harness = Harness(ros_context, '/live')
    node = harness.add(DepthNode(namespace='/live', context=ros_context, cli_args=[
        '--ros-args', '-r', 'image:=/camera/image', '-r', 'camera_info:=/camera/camera_info'],
        parameter_overrides=_parameters(dict(extrinsics, model_path=str(tiny_checkpoint), device='cpu',
                                             radar_topics=['/radar/points'], refine=refine,
                                             **{'qos.input': 'reliable', 'qos.input_depth': 50,
                                                'refine.budget_ms': 10000.0}))))
    report_path = tmp_path / 'live.json'
    evaluator = harness.add(EvalNode(namespace='/live', context=ros_context,
                                     cli_args=['--ros-args', '-r', 'lidar/points:=/lidar/points'],
                                     parameter_overrides=_parameters(dict(extrinsics, output=str(report_path)))))
    try:
        assert bring_up(node)
        player = BagPlayer(harness.node, drive_bag, rate=0.25)
        waiting = ['/camera/image', '/camera/camera_info', '/radar/points', '/lidar/points']
        assert harness.spin_until(lambda: not player.wait_for_subscribers(waiting, 0.0), 10)
        assert harness.spin_until(lambda: node._outputs['depth/image'].get_subscription_count() > 0, 10)
        thread = threading.Thread(target=player.play)
        thread.start()
        assert harness.spin_until(lambda: not thread.is_alive() and evaluator.counts['evaluated'] == FRAMES, 60)
        thread.join()
        report = node.report()
        assert report['frames']['published'] == FRAMES and report['drops']['keep_latest'] == 0   # none dropped
        if refine == 'radar':
            assert report['refine']['frames']['refined'] == FRAMES
        evaluator.close()
    finally:
        bring_down(node)
        harness.close()
    live = json.loads(report_path.read_text())
    assert live['evaluation']['evaluated'] == FRAMES and live['evaluation']['unmatched'] == 0
    offline_frames = {f.frame_id: f for f in offline.frame_list}
    assert [f['frame_id'] for f in live['per_frame']] == list(offline_frames)
    for frame in live['per_frame']:
        _assert_same_frame(frame, offline_frames[frame['frame_id']], rel=1e-6)
    for cap, metrics in live['caps'].items():
        assert metrics['mae'] == pytest.approx(offline.caps[cap]['mae'], rel=1e-6)
