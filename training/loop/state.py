"""
The resume state of a run: everything needed to continue exactly where the last checkpoint left off.

``<run>/state/last.pt``: the objective's weights (student and training-only modules), optimiser, scheduler and
gradient-scaler states, the RNG states (python, numpy, torch, CUDA), the position (epoch, step inside the epoch,
global step) and the history (best validation score, per-epoch metrics). ``<run>/state/previous.pt`` keeps the state
written before it: a ``last.pt`` damaged after it was written (a full disk elsewhere, a copy cut short, a stray
edit) costs the steps since the previous state, with a warning, not the run (``load_resume_state``). The data
order needs no RNG state: it is a function of (seed, epoch) (``loop.data``), and the position says where inside it
to continue.

Written atomically: ``torch.save`` to a temporary file in the same folder, flush, fsync, ``os.replace``, fsync of
the folder; a process killed at any moment (SIGKILL included) leaves either the previous complete file or the new
complete file, never a half-written one; ``previous.pt`` is a hard link to the old ``last.pt`` made before it is
replaced (a copy where links are not possible). Read with ``torch.load(weights_only=True)``: only tensors and plain
containers, no arbitrary unpickling (numpy's RNG key is stored as a tensor for that reason).
"""

import os
from pathlib import Path
import random
import shutil
import warnings

import numpy as np
from rcdepth_ros.errors import CheckpointError, TrainingError
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
    """
    Return the state dict of ``path`` (weights_only); a missing or unreadable file raises CheckpointError.

    The message says what is wrong with the file; it never passes on torch's advice to retry with
    ``weights_only=False`` (unsafe, and useless for a truncated file or random bytes).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: resume state not found')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: unreadable resume state (the file is empty)')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')        # torch's notes about pickle protocols of foreign bytes
            state = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: B902 - random bytes make torch.load raise nearly anything
        raise CheckpointError(f'{path}: unreadable resume state ({_load_failure(exc)})') from None
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        found = state.get('version') if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f'{path}: not a resume state of version {STATE_VERSION} (found {found!r})')
    return state


def _load_failure(exc):
    """Return why ``torch.load`` failed in a few words, without torch's advice about ``weights_only``."""
    text = str(exc)
    if isinstance(exc, EOFError):
        return 'the file ends early'
    if 'central directory' in text or 'zip archive' in text:
        return 'truncated or damaged: not a complete torch archive'
    if 'weights_only' in text or 'Weights only' in text:
        return 'not a torch archive: the safe loader refused its contents'
    first = text.splitlines()[0][:120] if text else ''
    return f'{type(exc).__name__}{": " + first if first else ""}'


def state_path(run_dir):
    """Return ``<run>/state/last.pt``."""
    return Path(run_dir) / 'state' / 'last.pt'


def previous_state_path(run_dir):
    """Return ``<run>/state/previous.pt``, the state written before ``last.pt``."""
    return Path(run_dir) / 'state' / 'previous.pt'


def save_state(state, run_dir):
    """Keep the current ``last.pt`` as ``previous.pt``, then write ``state`` as the new ``last.pt`` (atomically)."""
    last, previous = state_path(run_dir), previous_state_path(run_dir)
    if last.is_file():
        tmp = previous.with_name(f'.{previous.name}.tmp-{os.getpid()}')
        tmp.unlink(missing_ok=True)
        try:
            os.link(last, tmp)
        except OSError:
            shutil.copy2(last, tmp)
        os.replace(tmp, previous)
    atomic_torch_save(state, last)


def load_resume_state(run_dir):
    """
    Return ``(state, path, warning)``: ``last.pt``, else ``previous.pt`` with a warning saying why.

    ``warning`` is None when ``last.pt`` loaded. When neither loads, raise TrainingError naming both problems and the
    way out (``--fresh`` starts the run over in the same directory).
    """
    last, previous = state_path(run_dir), previous_state_path(run_dir)
    try:
        return load_state(last), last, None
    except CheckpointError as exc:
        problem = exc
    try:
        state = load_state(previous)
    except CheckpointError as exc:
        raise TrainingError(f'{run_dir}: cannot resume: {problem}; and the previous state: {exc}. Start over with '
                            f'--fresh (the run directory is reused), or use another --out') from None
    step = state.get('progress', {}).get('global_step')
    return state, previous, (f'{problem}; resuming from the previous state {previous} (step {step}) instead: the '
                             f'steps after it are trained again')
