"""
The resume state of a run: everything needed to continue exactly where the last checkpoint left off.

One file, ``<run>/state/last.pt``: the objective's weights (student and training-only modules), optimiser,
scheduler and gradient-scaler states, the RNG states (python, numpy, torch, CUDA), the position (epoch, step inside
the epoch, global step) and the history (best validation score, per-epoch metrics). The data order needs no RNG
state: it is a function of (seed, epoch) (``loop.data``), and the position says where inside it to continue.

Written atomically: ``torch.save`` to a temporary file in the same folder, flush, fsync, ``os.replace``, fsync of
the folder; a process killed at any moment (SIGKILL included) leaves either the previous complete file or the new
complete file, never a half-written one. Read with ``torch.load(weights_only=True)``: only tensors and plain
containers, no arbitrary unpickling (numpy's RNG key is stored as a tensor for that reason).
"""

import os
from pathlib import Path
import pickle
import random

import numpy as np
from rcdepth_ros.errors import CheckpointError
import torch

STATE_VERSION = 1


def capture_rng():
    """Return the python, numpy, torch (and CUDA) RNG states as weights_only-loadable data."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {'python': random.getstate(),
             'numpy': {'name': name, 'key': torch.from_numpy(key.astype(np.int64)), 'pos': int(pos),
                       'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)},
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state):
    """Restore RNG states captured by ``capture_rng``."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    np.random.set_state((n['name'], n['key'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _fsync_directory(path):
    try:
        handle = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_torch_save(obj, path):
    """``torch.save`` ``obj`` to ``path`` through a temporary file, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_directory(path.parent)


def load_state(path):
    """Return the state dict of ``path`` (weights_only); a missing or unreadable file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: resume state not found')
    try:
        state = torch.load(str(path), map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f'{path}: unreadable resume state ({type(exc).__name__}: {exc})') from exc
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        found = state.get('version') if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f'{path}: not a resume state of version {STATE_VERSION} (found {found!r})')
    return state


def state_path(run_dir):
    """Return ``<run>/state/last.pt``."""
    return Path(run_dir) / 'state' / 'last.pt'
