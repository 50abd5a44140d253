"""Node-test fixtures: an rclpy context per module, a tiny checkpoint, and a harness that spins and collects."""

import gc
import itertools

from node_harness import Harness
import pytest

from support.frame_messages import FrameMessageFactory

_NAMESPACES = itertools.count()


@pytest.fixture(scope='module')
def ros_context():
    """Return an initialised rclpy Context of its own (shut down after the module)."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    # Collect the nodes' reference cycles while their context is alive: left for later, the garbage collector of a
    # process forked afterwards (flake8's worker pool in test_flake8) would finalise rcl handles and crash.
    gc.collect()
    rclpy.try_shutdown(context=context)
    gc.collect()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_student):
    """Return the path of the saved ``tiny_student`` checkpoint (random weights, seed 0)."""
    from rcdepth_ros.models import save_checkpoint
    return save_checkpoint(tmp_path / 'tiny', *tiny_student)


@pytest.fixture(scope='module')
def messages():
    """Return a factory of rclpy frame messages: a 160x120 camera, 60 radar returns."""
    from rcdepth_ros.core.messages.msgtypes import ros_message_types
    return FrameMessageFactory(ros_message_types(), width=160, height=120)


@pytest.fixture
def harness(ros_context):
    """Return a Harness in a fresh namespace (so tests never hear each other's messages)."""
    h = Harness(ros_context, f'/t{next(_NAMESPACES)}')
    yield h
    h.close()
