"""
Where the package finds its own files and data, and whether an output path can be written.

Its own files: config, launch, bundled weights; the data sets under the data root. Output paths are checked before
the work, so a bad ``--out`` never throws the results away.

The same code runs from a source checkout, a ``pip install -e .`` and a colcon install; the share directory is
looked up in that order of preference: the ament index (colcon), the source tree, ``sys.prefix/share``.
"""

import os
from pathlib import Path
import sys
import tempfile

from rcdepth_ros.errors import OutputPathError

PACKAGE = 'rcdepth_ros'
SOURCE_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = 'RCDEPTH_DATA'


def share_directory():
    """Return the directory holding ``package.xml``, ``config/``, ``launch/`` and ``weights/``."""
    if os.environ.get('AMENT_PREFIX_PATH'):
        try:
            # ament_index: present on a ROS 2 install only
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


def _probe_folder(folder, option, path):
    """Raise OutputPathError unless a file can be created in the existing folder ``folder``."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix='.rcdepth-probe-'):
            pass
    except OSError as exc:
        raise OutputPathError(f'{option} {path}: cannot write in {folder} ({exc.strerror or exc})') from None


def _nearest_existing(path, option, original):
    """Return the nearest existing ancestor folder of ``path``; a file on the way raises OutputPathError."""
    for candidate in [path] + list(path.parents):
        if candidate.is_dir():
            return candidate
        if candidate.exists() or candidate.is_symlink():
            raise OutputPathError(f'{option} {original}: {candidate} is a file, not a folder')
    return Path('.')


def check_output_folder(path, option='--out'):
    """
    Check that ``path`` is, or can be made, a folder this process can write into; return it as a Path.

    Nothing is created: the caller makes the folder when it writes its results. Raises OutputPathError naming the
    option, the path and what is in the way (a file, a read-only place).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f'{option} {path}: exists and is not a folder')
    _probe_folder(_nearest_existing(path, option, path), option, path)
    return path


def check_output_file(path, option='--out', default_suffix=None):
    """
    Check that the file ``path`` can be written; return it as a Path (``default_suffix`` added when it has none).

    A path that names a folder (an existing one, or one ending in ``/``) is refused: writers such as matplotlib
    would put a hidden ``.png`` into it. Raises OutputPathError naming the option and the problem.
    """
    text = str(path)
    path = Path(text).expanduser()
    if not text.strip() or text.endswith(('/', os.sep)) or path.is_dir() or path.name in ('', '.', '..'):
        raise OutputPathError(f'{option} {text!r} names a folder; give a file name (e.g. {path / "frame.png"})')
    if default_suffix and not path.suffix:
        path = path.with_name(path.name + default_suffix)
    _probe_folder(_nearest_existing(path.parent, option, path), option, path)
    return path
