"""
Evaluate a trained model: ``python -m training.evaluate --model CKPT_OR_RUN_DIR --dataset astyx --frames 350-435``.

The arguments are those of ``rcdepth eval``, and so is the routine
(``rcdepth_ros.evaluation.datasets.evaluate_model``: original resolution, the node's inference engine). ``--model`` may
also name a run directory of ``training.train``: its ``checkpoints/final`` (``--which best`` for the
best-by-validation one). Prints the metrics JSON; ``--out`` writes ``metrics.json`` and ``evaluation.json``.
"""

import argparse
from pathlib import Path
import sys

from rcdepth_ros.errors import CheckpointError, RcdepthError
from rcdepth_ros.evaluation.datasets import add_arguments, evaluate_args, report


def resolve_model(path, which='final'):
    """Return the checkpoint of ``path``: a run directory's ``checkpoints/<which>``, else ``path`` itself."""
    path = Path(path)
    if path.is_dir():
        stem = path / 'checkpoints' / which
        if not stem.with_suffix('.json').is_file():
            raise CheckpointError(f'{path}: run directory has no checkpoints/{which}.json (is the run complete?)')
        return str(stem)
    return str(path)


def main(argv=None):
    """Run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog='python -m training.evaluate', description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    parser.add_argument('--which', default='final', choices=('final', 'best'), help='checkpoint of a run directory')
    args = parser.parse_args(argv)
    try:
        record = evaluate_args(args, resolve_model(args.model, args.which))
    except RcdepthError as exc:
        print(f'training.evaluate: error: {exc}', file=sys.stderr)
        return 2
    report(record, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
