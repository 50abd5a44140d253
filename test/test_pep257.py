"""ROS lint test: docstring conventions (ament_pep257)."""

from ament_pep257.main import main
import pytest

from rcdepth_ros.paths import SOURCE_ROOT

LINTED = ['rcdepth_ros', 'training', 'benchmarks']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    paths = [str(SOURCE_ROOT / p) for p in LINTED if (SOURCE_ROOT / p).exists()]
    rc = main(argv=paths)
    assert rc == 0, 'Found code style errors / warnings'
