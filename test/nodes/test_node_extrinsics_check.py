"""Sensor frames without extrinsics: what the parameters show is said at configure, a frame found later once."""

from node_harness import node_parameters, PERIOD, Rig, T0

from rcdepth_ros.nodes import tf_source
from rcdepth_ros.nodes.depth_node import DepthNode
from rcdepth_ros.nodes.eval_node import EvalNode
from rcdepth_ros.nodes.tf_source import extrinsics_warnings, unknown_frame_hint


def test_configure_time_warnings_name_the_parameters(monkeypatch):
    assert extrinsics_warnings('parameters', ['radar_front'], 'camera') == []
    empty = extrinsics_warnings('parameters', [''], '')
    assert len(empty) == 1 and 'extrinsics.frames is empty' in empty[0] and 'extrinsics.<frame>.matrix' in empty[0]
    itself = extrinsics_warnings('parameters', ['radar', 'camera'], 'camera')
    assert len(itself) == 1 and "the camera frame 'camera' itself" in itself[0]
    # tf2 serves: the parameter transforms would be silently unused.
    unused = extrinsics_warnings('tf', ['radar'], '')
    assert len(unused) == 1 and "lists ['radar']" in unused[0] and 'extrinsics.source to parameters' in unused[0]
    assert extrinsics_warnings('tf', [''], '') == []
    monkeypatch.setattr(tf_source, 'tf2_available', lambda: True)
    assert len(extrinsics_warnings('auto', ['radar'], '')) == 1 and '/tf_static' in unknown_frame_hint('auto')
    monkeypatch.setattr(tf_source, 'tf2_available', lambda: False)
    assert extrinsics_warnings('auto', ['radar'], '') == []
    assert 'extrinsics.frames' in unknown_frame_hint('auto')


def _lines(text, needle):
    return [line for line in text.splitlines() if needle in line]


def test_configure_says_once_that_parameter_extrinsics_name_no_frame(harness, tiny_checkpoint, capfd):
    from rclpy.lifecycle import TransitionCallbackReturn
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context, parameter_overrides=(
        node_parameters(tiny_checkpoint, **{'extrinsics.frames': [''], 'extrinsics.source': 'parameters'}))))
    capfd.readouterr()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert len(_lines(capfd.readouterr().err, 'extrinsics.frames is empty')) == 1


def test_a_radar_frame_without_extrinsics_is_named_once(harness, tiny_checkpoint, messages, capfd):
    rig = Rig(harness, tiny_checkpoint)
    capfd.readouterr()
    for k in range(3):
        stamp = T0 + k * PERIOD
        rig.send(messages, stamp, radar=messages.radar(stamp, frame_id='sonar'))
        assert rig.wait_outputs(k + 1)
    stamp = T0 + 3 * PERIOD
    rig.send(messages, stamp, radar=messages.radar(stamp, frame_id='lidar_top'))
    assert rig.wait_outputs(4)
    assert harness.spin_until(lambda: rig.node.report()['drops']['radar_unknown_frame'] == 4)
    err = capfd.readouterr().err
    sonar = _lines(err, "frame 'sonar'")
    assert len(sonar) == 1, err
    assert 'extrinsics.frames' in sonar[0] and 'counted in /diagnostics' in sonar[0]
    assert len(_lines(err, "frame 'lidar_top'")) == 1


def test_the_evaluator_says_it_too_for_the_lidar(harness, tmp_path, capfd):
    from rclpy.parameter import Parameter
    values = {'extrinsics.source': 'parameters', 'extrinsics.frames': [''], 'output': str(tmp_path / 'r.json')}
    capfd.readouterr()
    harness.add(EvalNode(namespace=harness.namespace, context=harness.context,
                         parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]))
    assert len(_lines(capfd.readouterr().err, 'extrinsics.frames is empty')) == 1
