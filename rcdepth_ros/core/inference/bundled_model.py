"""
The models shipped with the package in ``weights/``.

- **The bundled demo model** (``make demo-model``): the student trained on synthetic scenes only
  (``SYNTHETIC_ONLY`` is said wherever it is named). The node, the demo and ``rcdepth eval-bag`` load it when no
  model is given; real use needs a model trained on real data.
- **The bundled Astyx model** (``make astyx-model``): the student trained on Astyx HiRes2019
  (``ASTYX_TRAINED``; the data's licence, CC BY-NC-SA 4.0, carries over to the weights, see the note beside them).
  ``rcdepth eval --dataset astyx`` picks it.

A checkpoint is a ``.safetensors`` file with its ``.json`` beside it (``models.checkpoint``). The default one is
found by looking, not by a fixed name, so whoever trains it chooses the name; when there are several, one whose name
contains ``demo`` wins, else the choice is ambiguous and refused. ``bundled_model_for(source)`` picks, for evaluating
a data source, the bundled checkpoint trained on that source (its JSON's ``training.data.source``: the bundled Astyx
model for ``rcdepth eval --dataset astyx``), else the default one.
"""

import json
from pathlib import Path

from rcdepth_ros.errors import CheckpointError
from rcdepth_ros.paths import weights_directory

HOW_TO_MAKE = '`make demo-model` (trains the synthetic-scene student and writes it to weights/)'
# Said wherever the bundled demo model is named (parameter descriptions, launch arguments, --model help, the node's
# log): it serves the demo and the tests; on real frames it is no model to rely on (docs/models.md has the figures).
SYNTHETIC_ONLY = 'trained on synthetic scenes only: for the demo and the tests, not for real sensors'
# Said wherever the bundled Astyx model is named: what it was trained on and the licence its weights carry.
ASTYX_TRAINED = ('trained on Astyx HiRes2019, licensed CC BY-NC-SA 4.0 like that data (non-commercial; see '
                 'weights/xdrcdepth_astyx.md)')


def _is_checkpoint(json_path):
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get('format') == 'rcdepth-checkpoint' and \
        json_path.with_suffix('.safetensors').is_file()


def bundled_model_path(directory=None):
    """
    Return the ``.safetensors`` path of the bundled checkpoint in ``directory`` (default: the package's weights/).

    Raises CheckpointError naming the directory and how to make the model when there is none, and naming the
    candidates when several could be meant.
    """
    directory = Path(directory) if directory is not None else weights_directory()
    candidates = sorted(p.with_suffix('.safetensors') for p in directory.glob('*.json') if _is_checkpoint(p)) \
        if directory.is_dir() else []
    if not candidates:
        raise CheckpointError(f'no bundled model: {directory} holds no checkpoint (a .safetensors file with its '
                              f'.json); make it with {HOW_TO_MAKE}, or pass a checkpoint (model_path / --model)')
    if len(candidates) > 1:
        demo = [p for p in candidates if 'demo' in p.name]
        if len(demo) == 1:
            return demo[0]
        raise CheckpointError(f'{directory} holds several checkpoints ({", ".join(p.name for p in candidates)}); '
                              f'pass one explicitly (model_path / --model)')
    return candidates[0]


def _trained_on(json_path):
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return (((meta.get('training') or {}).get('data') or {}).get('source')) if isinstance(meta, dict) else None


def bundled_model_for(source, directory=None):
    """Return the bundled checkpoint trained on data ``source``, else ``bundled_model_path(directory)``."""
    directory = Path(directory) if directory is not None else weights_directory()
    matches = sorted(p.with_suffix('.safetensors') for p in directory.glob('*.json')
                     if _is_checkpoint(p) and _trained_on(p) == source) if directory.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    return bundled_model_path(directory)


def resolve_model_path(model_path):
    """Return ``model_path`` as a Path, or the bundled model's when it is empty."""
    text = str(model_path or '').strip()
    return Path(text).expanduser() if text else bundled_model_path()
