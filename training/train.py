"""
Train one experiment: ``python -m training.train --config training/configs/<exp>.yaml [key.sub=value ...]``.

Options: ``--out DIR`` (run directory; default ``runs/<name or config stem>``), ``--resume`` (require a resume
state in the run directory; without it a run continues automatically when the directory holds one), ``--fresh``
(ignore any resume state and start over in the directory; refused when the directory holds a different
experiment). Overrides are ``key.sub=value`` pairs, values parsed as YAML (``train.epochs=2``,
``distill.dd.enabled=true``). Under ``torchrun --nproc_per_node N`` each process trains its share (DDP).

Exit status: 0 when the run is complete, 2 on a configuration, data or training error (message, no traceback).
"""

import argparse
import json
import os
from pathlib import Path
import sys

from rcdepth_ros.errors import RcdepthError
from training.config import load_experiment
from training.loop.provenance import command_line


def build_parser():
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(prog='python -m training.train', description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', required=True, help='experiment YAML (training/configs/*.yaml)')
    parser.add_argument('--out', default=None, help='run directory (default runs/<experiment name>)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--resume', action='store_true', help='require and continue the resume state of --out')
    mode.add_argument('--fresh', action='store_true', help='start over even when the run directory has state')
    parser.add_argument('overrides', nargs='*', metavar='key.sub=value', help='configuration overrides')
    return parser


def default_run_dir(experiment, config_path):
    """Return ``runs/<name>`` (the experiment's name, else the config file's stem)."""
    return Path('runs') / (experiment.name or Path(config_path).stem)


def main(argv=None):
    """Run the command; return the exit status."""
    args = build_parser().parse_args(argv)
    # torch and the trainer after parsing: --help and argument errors answer at once
    from training.loop.trainer import train
    try:
        experiment = load_experiment(args.config, args.overrides)
        run_dir = Path(args.out) if args.out else default_run_dir(experiment, args.config)
        resume = True if args.resume else (False if args.fresh else 'auto')
        argv_used = list(sys.argv[1:] if argv is None else argv)
        summary = train(experiment, run_dir, command_line(['training/train.py'] + argv_used), resume)
    except RcdepthError as exc:
        print(f'training.train: error: {exc}', file=sys.stderr)
        return 2
    if summary is not None and int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps({k: summary[k] for k in ('run_dir', 'steps', 'train_seconds', 'best', 'final_checkpoint',
                                                  'replicas_agree')}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
