"""ROS lint test: flake8 with the ament configuration (line length 119, see docs/design.md "Code style")."""

from ament_flake8.main import main_with_errors
import pytest

from rcdepth_ros.paths import SOURCE_ROOT

LINTED = ['rcdepth_ros', 'training', 'test', 'launch', 'benchmarks', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    paths = [str(SOURCE_ROOT / p) for p in LINTED if (SOURCE_ROOT / p).exists()]
    rc, errors = main_with_errors(argv=['--linelength', '119'] + paths)
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
