"""rcdepth_node with ``refine``: live switch, diagnostics of the stage, bad returns counted, names as in the core."""

from node_harness import node_parameters, PERIOD, Rig, T0
import numpy as np
import pytest

from rcdepth_ros.core.inference import refine
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.nodes import params
from rcdepth_ros.nodes.depth_node import DepthNode, REFINE_DROP_REASONS, REFINE_STATUSES
from rcdepth_ros.nodes.diagnostics import status_values
from rcdepth_ros.nodes.runtime import bring_up


def test_node_names_and_defaults_follow_the_refine_module():
    assert REFINE_STATUSES == refine.STATUSES and REFINE_DROP_REASONS == refine.DROP_REASONS
    defaults = refine.RefineSettings()
    for spec in params.SPECS:
        if spec.name.startswith('refine.'):
            assert spec.default == getattr(defaults, spec.name[len('refine.'):]), spec.name
    settings = refine.RefineSettings.from_mapping(params.refine_mapping({s.name: s.default for s in params.SPECS}))
    assert settings == defaults


def test_refine_parameter_is_live_and_checked(harness, tiny_checkpoint):
    from rclpy.parameter import Parameter
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(tiny_checkpoint)))
    assert bring_up(node)
    assert node._engine.refine_settings.mode == 'none'
    assert node.set_parameters_atomically([Parameter('refine', value='radar'),
                                           Parameter('refine.far_cutoff', value=0.4)]).successful
    settings = node._engine.refine_settings
    assert settings.active and settings.far_cutoff == 0.4 and settings.budget_ms == 30.0
    assert node.set_parameters([Parameter('refine.budget_ms', value=0.0)])[0].successful
    assert node._engine.refine_settings.mode == 'radar' and not node._engine.refine_settings.active
    for name, value in (('refine', 'lidar'), ('refine.budget_ms', -1.0), ('refine.far_cutoff', 0.0)):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful, name
    assert node.get_parameter('refine').value == 'radar'


def test_refined_frames_and_bad_returns_in_the_diagnostics(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint, refine='radar', **{'refine.budget_ms': 10000.0})
    rig.send(messages, T0)
    assert rig.wait_outputs(1)
    # every return behind the camera: the frame is published unrefined and counted
    behind = messages.radar_camera(T0 + PERIOD)
    behind = RadarPoints(behind.xyz * np.array([1.0, 1.0, -1.0], np.float32), behind.rcs, behind.v_radial,
                         frame_id=behind.frame_id, stamp_ns=behind.stamp_ns)
    rig.send(messages, T0 + PERIOD, radar=messages.radar(T0 + PERIOD, points=behind))
    assert rig.wait_outputs(2)
    report = rig.node.report()
    assert report['refine']['mode'] == 'radar' and report['refine']['budget_ms'] == 10000.0
    assert report['refine']['frames']['refined'] == 1 and report['refine']['frames']['no_valid_returns'] == 1
    assert report['refine']['dropped_returns']['behind_camera'] == len(behind)
    assert report['latency_ms']['refine']['p50'] > 0
    assert harness.spin_until(lambda: rig.diagnostics and
                              status_values(rig.diagnostics[-1]).get('refine.frames.no_valid_returns') == '1')
    values = status_values(rig.diagnostics[-1])
    assert values['refine.mode'] == 'radar' and 'latency_ms.refine.p50' in values
    assert values['refine.dropped_returns.outside_image'] is not None


@pytest.mark.parametrize('budget', [0.0])
def test_zero_budget_publishes_the_unrefined_depth(harness, tiny_checkpoint, messages, budget):
    rig = Rig(harness, tiny_checkpoint, refine='radar', **{'refine.budget_ms': budget})
    rig.send(messages, T0)
    assert rig.wait_outputs(1)
    assert rig.node.report()['refine']['frames']['disabled'] == 1
