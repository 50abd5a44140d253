"""
Where the package finds its own files (config, launch, bundled weights) and the data sets.

The same code runs from a source checkout, a ``pip install -e .`` and a colcon install; the share directory is
looked up in that order of preference: the ament index (colcon), the source tree, ``sys.prefix/share``.
"""

import os
from pathlib import Path
import sys

PACKAGE = 'rcdepth_ros'
SOURCE_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = 'RCDEPTH_DATA'


def share_directory():
    """Return the directory holding ``package.xml``, ``config/``, ``launch/`` and ``weights/``."""
    if os.environ.get('AMENT_PREFIX_PATH'):
        try:
            from ament_index_python.packages import get_package_share_directory
            return Path(get_package_share_directory(PACKAGE))
        except (ImportError, LookupError, OSError):
            pass
    if (SOURCE_ROOT / 'package.xml').is_file():
        return SOURCE_ROOT
    installed = Path(sys.prefix) / 'share' / PACKAGE
    if (installed / 'package.xml').is_file():
        return installed
    return SOURCE_ROOT


def config_file(name):
    """Return the path of a file shipped in ``config/``."""
    return share_directory() / 'config' / name


def weights_directory():
    """Return the directory of the bundled model files."""
    return share_directory() / 'weights'


def data_root():
    """Return the data root: ``$RCDEPTH_DATA``, else ``../shared/data`` beside the source checkout."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value).expanduser()
    return SOURCE_ROOT.parent / 'shared' / 'data'
