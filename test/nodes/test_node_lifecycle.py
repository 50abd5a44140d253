"""rcdepth_node lifecycle: configure / activate / deactivate / cleanup, and a bad checkpoint failing configure."""

from node_harness import node_parameters
import pytest

from rcdepth_ros.nodes.depth_node import DepthNode
from rcdepth_ros.nodes.runtime import lifecycle_state


def _node(harness, checkpoint, **extra):
    return harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(checkpoint, **extra)))


def test_lifecycle_transitions_create_and_release_entities(harness, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn
    node = _node(harness, tiny_checkpoint)
    ns = harness.namespace
    assert lifecycle_state(node) == 'unconfigured'
    assert harness.node.count_publishers(f'{ns}/depth/image') == 0
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert lifecycle_state(node) == 'inactive'
    assert harness.spin_until(lambda: harness.node.count_publishers(f'{ns}/depth/image') == 1, 5)
    assert harness.node.count_subscribers(f'{ns}/image') == 0
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert lifecycle_state(node) == 'active'
    assert harness.spin_until(lambda: harness.node.count_subscribers(f'{ns}/image') == 1 and
                              harness.node.count_subscribers(f'{ns}/radar/points') == 1 and
                              harness.node.count_subscribers(f'{ns}/camera_info') == 1, 5)
    assert node._worker is not None and node._worker.is_alive()
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert lifecycle_state(node) == 'inactive'
    assert harness.spin_until(lambda: harness.node.count_subscribers(f'{ns}/image') == 0, 5)
    assert node._worker is None
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert lifecycle_state(node) == 'unconfigured'
    assert node._engine is None
    assert harness.spin_until(lambda: harness.node.count_publishers(f'{ns}/depth/image') == 0, 5)
    # and again, as a lifecycle manager would after a reconfiguration
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS


@pytest.mark.parametrize('content', [None, b'not a checkpoint'])
def test_bad_or_missing_checkpoint_fails_configure_cleanly(harness, tmp_path, content, caplog):
    from rclpy.lifecycle import TransitionCallbackReturn
    path = tmp_path / 'broken.safetensors'
    if content is not None:
        path.write_bytes(content)
        path.with_suffix('.json').write_text('{"format": "something else"}')
    node = _node(harness, path)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == 'unconfigured'
    assert node._engine is None and node._outputs == {}
    assert harness.node.count_publishers(f'{harness.namespace}/depth/image') == 0


def test_missing_parameter_extrinsics_fail_configure(harness, tiny_checkpoint):
    from rclpy.lifecycle import TransitionCallbackReturn
    node = _node(harness, tiny_checkpoint, **{'extrinsics.frames': ['radar', 'sonar']})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(node) == 'unconfigured'
