"""
rcdepth_node as a process with a bad model_path: it says it stays unconfigured, and it does.

The process keeps serving its parameter and lifecycle services, so a manager fixes ``model_path`` and configures and
activates it through those services (what ``ros2 param set`` and ``ros2 lifecycle set`` call); SIGINT then stops it
with status 0.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys

from node_harness import Harness, node_parameters

from rcdepth_ros.paths import SOURCE_ROOT
from rcdepth_ros.ros_env import configure_ros_environment

NAMESPACE = '/unconfigured'
NODE = f'{NAMESPACE}/rcdepth_node'


def _start_node(bad_model, log_path, good_checkpoint):
    command = [sys.executable, '-m', 'rcdepth_ros.nodes.depth_node', '--ros-args', '-r', f'__ns:={NAMESPACE}']
    for parameter in node_parameters(good_checkpoint, model_path=str(bad_model)):
        command += ['-p', f'{parameter.name}:={json.dumps(parameter.value)}']
    return subprocess.Popen(command, env=configure_ros_environment(dict(os.environ)), cwd=SOURCE_ROOT,
                            stdout=open(log_path, 'w'), stderr=subprocess.STDOUT, start_new_session=True)


def _call(harness, client, request, timeout=30.0):
    assert client.wait_for_service(timeout_sec=timeout), client.srv_name
    future = client.call_async(request)
    assert harness.spin_until(future.done, timeout)
    return future.result()


def test_a_bad_model_path_leaves_a_running_unconfigured_node_a_manager_can_fix(ros_context, tiny_checkpoint,
                                                                               tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    log_path = tmp_path / 'node.log'
    process = _start_node(tmp_path / 'missing.safetensors', log_path, tiny_checkpoint)
    harness = Harness(ros_context, NAMESPACE)
    try:
        get_state = harness.node.create_client(GetState, f'{NODE}/get_state')
        change_state = harness.node.create_client(ChangeState, f'{NODE}/change_state')
        set_parameters = harness.node.create_client(SetParameters, f'{NODE}/set_parameters')
        assert harness.spin_until(lambda: 'stays unconfigured' in Path(log_path).read_text(), 120), \
            Path(log_path).read_text()[-2000:]
        log = Path(log_path).read_text()
        assert 'cannot load the model' in log and 'missing.safetensors' in log and 'keeps running' in log
        # What the log says is what the process does: it is still there, unconfigured.
        assert process.poll() is None
        assert _call(harness, get_state, GetState.Request()).current_state.label == 'unconfigured'

        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(tiny_checkpoint))
        result = _call(harness, set_parameters,
                       SetParameters.Request(parameters=[Parameter(name='model_path', value=value)]))
        assert result.results[0].successful
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert _call(harness, change_state, ChangeState.Request(transition=Transition(id=transition))).success
        assert _call(harness, get_state, GetState.Request()).current_state.label == 'active'
        assert harness.spin_until(lambda: harness.node.count_publishers(f'{NAMESPACE}/depth/image') == 1, 10)
        assert process.poll() is None
    finally:
        harness.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            status = process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            status = process.wait(10)
    assert status == 0, Path(log_path).read_text()[-2000:]
