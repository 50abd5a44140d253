"""Provenance recorded with every checkpoint: the command line, the git commit and whether the tree was dirty."""

import shlex
import subprocess
import sys

from rcdepth_ros.paths import SOURCE_ROOT


def command_line(argv=None):
    """Return the command that started this process, shell-quoted (``python -m training.train ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith('train.py'):
        argv = ['-m', 'training.train'] + argv[1:]
    return ' '.join(shlex.quote(a) for a in ['python'] + argv)


def git_commit(root=SOURCE_ROOT):
    """Return ``{'commit': sha, 'dirty': bool}`` of the source tree, or None where git is unavailable."""
    try:
        sha = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {'commit': sha, 'dirty': bool(status.strip())}
