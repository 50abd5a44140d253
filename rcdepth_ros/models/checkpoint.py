"""
Model checkpoints: a safetensors file of weights plus a JSON file beside it (same stem, ``.json``).

The JSON holds ``{"format": "rcdepth-checkpoint", "version": 1, "input": {...}, "model": {...}, "training": {...}}``:
the InputConfig and ModelConfig the network is built from, and free provenance (data, command, git commit,
metrics). Both files are written to temporary names and moved into place with ``os.replace`` (weights first, JSON
last), so a reader never sees a half-written file. Loading never unpickles anything: the weights are read with
safetensors, the model is rebuilt from the JSON, and every key and shape is checked; a missing, truncated, foreign
or mismatched file raises CheckpointError naming the file and the mismatch.

Training resume state (optimiser, scheduler, RNG) is not part of a model checkpoint.
"""

import json
import os
from pathlib import Path

from rcdepth_ros.config import from_dict, InputConfig, to_dict
from rcdepth_ros.errors import CheckpointError, ConfigError
from rcdepth_ros.models.builder import build_model
from rcdepth_ros.models.config import load_model_config, ModelConfig
from rcdepth_ros.models.weights import load_state_dict_strict, read_safetensors
import torch

FORMAT = 'rcdepth-checkpoint'
VERSION = 1
STORAGE_DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16, 'float32': torch.float32}


def checkpoint_paths(path):
    """Return (weights path ``.safetensors``, config path ``.json``) for a checkpoint given by either file or stem."""
    path = Path(path)
    if path.suffix in ('.safetensors', '.json'):
        path = path.with_suffix('')
    return path.with_name(path.name + '.safetensors'), path.with_name(path.name + '.json')


def _write_atomic(path, write):
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        write(tmp)
        os.chmod(tmp, 0o644)   # safetensors writes 0600; a checkpoint is read by other users (nodes, CI)
        with open(tmp, 'rb') as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path, model, input_cfg, model_cfg, training=None, dtype=None):
    """
    Write ``model``'s weights and configs as a checkpoint; return the weights path.

    ``path`` may name the ``.safetensors`` or ``.json`` file or their common stem. ``training`` is free JSON-safe
    provenance (data, command, git commit, metrics). ``dtype`` ('float16', 'bfloat16', 'float32'; None: as the
    model holds them) is the storage type of the floating-point tensors: 'float16' halves the file (the bundled
    demo model); ``load_checkpoint`` casts them back into the model's float32 parameters. Integer buffers are kept.
    """
    from safetensors.torch import save_file
    weights_path, json_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    if dtype is not None and dtype not in STORAGE_DTYPES:
        raise CheckpointError(f'{weights_path}: storage dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}')
    cast = STORAGE_DTYPES.get(dtype)
    state = {k: (v.detach().to('cpu', cast) if cast is not None and v.is_floating_point() else v.detach().to('cpu'))
             .contiguous() for k, v in model.state_dict().items()}
    meta = {'format': FORMAT, 'version': VERSION, 'input': to_dict(input_cfg), 'model': to_dict(model_cfg),
            'training': training or {}}
    if dtype is not None:
        meta['storage_dtype'] = dtype
    try:
        text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'{json_path}: training metadata is not JSON-serialisable ({exc})') from exc
    _write_atomic(weights_path, lambda tmp: save_file(state, str(tmp), metadata={'format': FORMAT}))
    _write_atomic(json_path, lambda tmp: tmp.write_text(text + '\n'))
    return weights_path


def read_checkpoint_meta(path):
    """Return ``(InputConfig, ModelConfig, meta dict)`` from a checkpoint's JSON; raise CheckpointError if bad."""
    weights_path, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        if not weights_path.is_file():
            # Neither file: name what was asked for, not the JSON the user may never have heard of.
            raise CheckpointError(f'{path}: checkpoint not found (neither {weights_path.name} nor {json_path.name} '
                                  f'exists in {weights_path.parent})')
        raise CheckpointError(f'{json_path}: checkpoint configuration not found (expected beside {weights_path.name})')
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'{json_path}: not valid checkpoint JSON ({exc})') from exc
    found = meta.get('format') if isinstance(meta, dict) else type(meta).__name__
    if found != FORMAT:
        raise CheckpointError(f'{json_path}: not an rcdepth checkpoint (format {found!r}, expected {FORMAT!r})')
    if meta.get('version') != VERSION:
        raise CheckpointError(f'{json_path}: checkpoint version {meta.get("version")!r} is not supported '
                              f'(this code reads version {VERSION})')
    try:
        input_cfg = from_dict(InputConfig, meta.get('input'), 'input')
        model_cfg = from_dict(ModelConfig, meta.get('model'), 'model')
    except ConfigError as exc:
        raise CheckpointError(f'{json_path}: invalid configuration: {exc}') from exc
    return input_cfg, model_cfg, meta


def load_checkpoint(path, map_location='cpu'):
    """
    Rebuild the model of a checkpoint and load its weights; return ``(model, input_cfg, model_cfg, meta)``.

    The model is returned in eval mode on ``map_location``.
    """
    weights_path, json_path = checkpoint_paths(path)
    input_cfg, model_cfg, meta = read_checkpoint_meta(path)
    if not weights_path.is_file():
        raise CheckpointError(f'{weights_path}: weights file not found (its configuration {json_path.name} is '
                              f'there)')
    state = read_safetensors(weights_path)
    model = build_model(model_cfg, input_cfg, load_pretrained=False)
    load_state_dict_strict(model, state, f'{weights_path} (configuration {json_path.name})')
    model.to(map_location).eval()
    return model, input_cfg, model_cfg, meta


def load_config_or_checkpoint(path, load_pretrained=False):
    """
    Return ``(model, input_cfg, model_cfg, meta)`` from a model YAML (fresh weights) or a checkpoint.

    ``.yaml`` / ``.yml`` files are configurations (``meta`` is empty); anything else is read as a checkpoint.
    """
    path = Path(path)
    if path.suffix in ('.yaml', '.yml'):
        input_cfg, model_cfg = load_model_config(path)
        model = build_model(model_cfg, input_cfg, load_pretrained=load_pretrained).eval()
        return model, input_cfg, model_cfg, {}
    return load_checkpoint(path)
