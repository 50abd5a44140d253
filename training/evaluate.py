"""
Evaluate a trained model: ``python -m training.evaluate --model CKPT_OR_RUN_DIR --dataset astyx --frames 350-435``.

The arguments are those of ``rcdepth eval``, and so is the routine
(``rcdepth_ros.evaluation.datasets.evaluate_model``: original resolution, the node's inference engine). ``--model`` may
also name a run directory of ``training.train``: its ``checkpoints/final`` (``--which best`` for the
best-by-validation one). Prints the metrics JSON; ``--out`` writes ``metrics.json`` and ``evaluation.json``.

A model that reads lidar (the cross-modal teacher, ``model.lidar_input``) cannot run in the node's engine: it is
scored at model resolution on the lidar rings it does not read (``training.gate.score``, the gate's protocol), and
its record says so (``evaluation.resolution: 'model'``, ``pixels: 'held-out lidar rings'``).
"""

import argparse
from pathlib import Path
import sys
import time

from rcdepth_ros.errors import CheckpointError, RcdepthError
from rcdepth_ros.evaluation.datasets import add_arguments, evaluate_args, parse_caps, parse_options, report
from rcdepth_ros.models import load_checkpoint
from rcdepth_ros.models.checkpoint import read_checkpoint_meta
from training.config import DataConfig, SplitConfig


def resolve_model(path, which='final'):
    """Return the checkpoint of ``path``: a run directory's ``checkpoints/<which>``, else ``path`` itself."""
    if not str(path or '').strip():
        return ''          # the bundled model of the data source (rcdepth eval's default)
    path = Path(path)
    if path.is_dir():
        stem = path / 'checkpoints' / which
        if not stem.with_suffix('.json').is_file():
            raise CheckpointError(f'{path}: run directory has no checkpoints/{which}.json (is the run complete?)')
        return str(stem)
    return str(path)


def evaluate_lidar_model(args, checkpoint):
    """Return the evaluation record of a lidar-input model (see the module docstring)."""
    from training.gate import score      # training.gate imports this module (resolve_model)
    model, input_cfg, model_cfg, _ = load_checkpoint(checkpoint)
    data_cfg = DataConfig(source=args.dataset, root=args.root, options=parse_options(args.options), val=None,
                          augment=None)
    start = time.perf_counter()
    caps = parse_caps(args.caps)
    result = score(checkpoint, data_cfg, SplitConfig(args.split, args.frames), model_cfg.lidar_input,
                   device=args.device if args.device != 'auto' else 'cpu', caps=caps)
    return {'metrics': result.to_dict(),
            'evaluation': {'source': args.dataset, 'root': args.root, 'split': args.split,
                           'frames_selected': args.frames, 'evaluated': result.frames, 'caps': list(caps),
                           'resolution': 'model', 'pixels': 'held-out lidar rings',
                           'rings_read': list(model_cfg.lidar_input.rings),
                           'seconds': time.perf_counter() - start},
            'model': {'checkpoint': str(checkpoint), 'architecture': model_cfg.architecture,
                      'parameters': int(sum(p.numel() for p in model.parameters())),
                      'input': [input_cfg.height, input_cfg.width], 'lidar_input': True}}


def main(argv=None):
    """Run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog='python -m training.evaluate', description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    parser.add_argument('--which', default='final', choices=('final', 'best'), help='checkpoint of a run directory')
    args = parser.parse_args(argv)
    try:
        checkpoint = resolve_model(args.model, args.which)
        if checkpoint and read_checkpoint_meta(checkpoint)[1].lidar_input.enabled:
            record = evaluate_lidar_model(args, checkpoint)
        else:
            record = evaluate_args(args, checkpoint)
    except RcdepthError as exc:
        print(f'training.evaluate: error: {exc}', file=sys.stderr)
        return 2
    report(record, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
