"""
Start the launch files for real with launch_testing and run their checks (test/launch/launch_*.py).

Each launch test module is loaded and run through launch_testing's own loader and runner, so this works whatever
pytest version runs it (launch_testing's pytest plugin, where it loads, does not collect those modules: they are
not named test_*.py). Skipped with the reason where ROS 2 launch, launch_ros or launch_testing is not importable.
"""

import importlib.util
from pathlib import Path

from launch_rig import missing_launch_stack
import pytest

HERE = Path(__file__).resolve().parent
MODULES = ('launch_rcdepth_node.py', 'launch_playback_eval.py')


@pytest.mark.slow
@pytest.mark.parametrize('name', MODULES)
def test_launch_file_runs_and_passes_its_checks(name):
    reason = missing_launch_stack()
    if reason is not None:
        pytest.skip(reason)
    from launch_testing.loader import LoadTestsFromPythonModule
    from launch_testing.test_runner import LaunchTestRunner
    spec = importlib.util.spec_from_file_location(f'rcdepth_{Path(name).stem}', HERE / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runner = LaunchTestRunner(LoadTestsFromPythonModule(module, name=Path(name).stem))
    runner.validate()
    results = runner.run()
    failures = []
    for run, result in results.items():
        problems = getattr(result, 'errors', []) + getattr(result, 'failures', [])
        failures += [f'{case}: {text}' for case, text in problems]
        if not result.wasSuccessful() and not failures:
            failures.append(f'{run}: {getattr(result, "message", "failed")}')
    assert not failures, '\n'.join(failures)
