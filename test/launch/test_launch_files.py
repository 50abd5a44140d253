"""The launch files: always checked statically (syntax, arguments, executables); loaded where `launch` exists."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = {
    'rcdepth.launch.py': {'namespace', 'params_file', 'model_path', 'use_sim_time', 'image', 'camera_info', 'radar'},
    'playback_eval.launch.py': {'bag', 'rate', 'params_file', 'extrinsics_file', 'model_path', 'report',
                                'use_sim_time'},
}


def _console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(item).split('=')[0].strip() for item in value.elts}
    raise AssertionError('setup.py has no console_scripts')


def _declared_arguments(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'ARGUMENTS' for t in node.targets):
            return {item.elts[0].value for item in node.value.elts}
    raise AssertionError('no ARGUMENTS table')


def _node_actions(tree):
    actions = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'Node':
            keywords = {k.arg: k.value for k in node.keywords}
            actions.append({name: keywords[name].value for name in ('package', 'executable', 'name')
                            if name in keywords and isinstance(keywords[name], ast.Constant)})
    return actions


@pytest.mark.parametrize('name', sorted(LAUNCH))
def test_launch_file_compiles_declares_its_arguments_and_starts_installed_executables(name):
    path = ROOT / 'launch' / name
    source = path.read_text()
    compile(source, str(path), 'exec')
    tree = ast.parse(source)
    assert LAUNCH[name] <= _declared_arguments(tree)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    actions = _node_actions(tree)
    assert actions, 'the launch file starts nothing'
    scripts = _console_scripts()
    for action in actions:
        assert action['package'] == 'rcdepth_ros'
        assert action['executable'] in scripts, f'{action["executable"]} is not a console script of setup.py'
    used = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert 'rcdepth.yaml' in used and (ROOT / 'config' / 'rcdepth.yaml').is_file()


def test_setup_installs_the_launch_and_config_files():
    setup = (ROOT / 'setup.py').read_text()
    assert "glob('launch/*.launch.py')" in setup and "glob('config/*.yaml')" in setup


def _real_launch():
    spec = importlib.util.find_spec('launch')
    if spec is None or importlib.util.find_spec('launch_ros') is None:
        return None
    import launch
    # A bare `launch/` folder on the path (this repository's) imports as an empty namespace package.
    return launch if hasattr(launch, 'LaunchDescription') else None


@pytest.mark.parametrize('name', sorted(LAUNCH))
def test_launch_file_loads_with_ros2_launch(name):
    launch = _real_launch()
    if launch is None:
        pytest.skip('ROS 2 launch / launch_ros are not installed here (not on PyPI); checked statically above')
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    description = PythonLaunchDescriptionSource(str(ROOT / 'launch' / name)).get_launch_description(
        launch.LaunchContext())
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert LAUNCH[name] <= names
