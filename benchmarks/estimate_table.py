"""
Estimate the wall time of the distillation table from measured epoch times (``benchmarks/bench_train.py``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/estimate_table.py [--bench benchmarks/results/bench_train.json] [--jobs 2]
        [--epochs 4,6,8,10,12] [--val-every 2] [--budget-hours 3]

Every run of ``training/tables/distill_astyx.yaml`` is given the measured cost of its kind at each measured
resolution (teacher, direct student, student + DD, + saliency (costed as + both, an upper bound), + both,
+ LiRCDepth KD, LiRCDepth baseline; the camera-only student is costed as the fusion student, an upper bound; the
synthetic runs (192x352, 320 frames) scale the direct student's step time by their pixel count), plus validation
every ``--val-every`` epochs, the final evaluation at the original resolution and ``--overhead-s`` per run (two
process starts, model building; 23 s measured on a 2-step smoke run of the table). The runs are then list-scheduled
on ``--jobs`` single-thread slots in table order, a KD run starting only after the teacher, exactly as
``training/run_table.py`` does. Writes ``benchmarks/results/table_estimate.json`` and prints the largest epoch
count per resolution that fits the budget.
"""

import argparse
import json
from pathlib import Path
import sys

from benchlib import ROOT, write_results

sys.path.insert(0, str(ROOT))                   # the training package

ASTYX_TRAIN, ASTYX_VAL, SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_EVAL = 350, 86, 320, 40, 80
SYNTHETIC_PIXELS = 192 * 352
KIND_OF = {'teacher': 'teacher@fp32', 'student_direct': 'student_direct@fp32', 'student_camera': 'student_direct@fp32',
           'lircdepth': 'lircdepth@fp32', 'student_dd': 'student_dd@fp32', 'student_saliency': 'student_xd@fp32',
           'student_xd': 'student_xd@fp32', 'student_lirckd': 'student_lirckd@fp32'}


def run_costs(entry, height, width, epochs, val_every, overhead=25.0, batch=4):
    """Return {run name: (seconds, needs teacher)} for the table's runs at one measured resolution."""
    from training.run_table import load_table
    _, runs = load_table(ROOT / 'training' / 'tables' / 'distill_astyx.yaml', 'runs', [])
    measured = entry['runs']
    eval_frame = entry['evaluation_s_per_frame']
    validations = len([e for e in range(1, epochs + 1) if e % val_every == 0 or e == epochs])
    costs = {}
    for run in runs:
        stem = run.config.stem
        if stem.startswith('synthetic'):
            scale = SYNTHETIC_PIXELS / (height * width)
            step = measured['student_direct@fp32']['median_step_s'] * scale
            seconds = epochs * step * (SYNTHETIC_TRAIN // batch)
            seconds += (validations * SYNTHETIC_VAL * scale + SYNTHETIC_EVAL) * eval_frame['student']
        else:
            kind = KIND_OF[stem.replace('astyx_', '')]
            seconds = epochs * measured[kind]['epoch_s']
            per_frame = eval_frame['teacher'] if stem == 'astyx_teacher' else eval_frame['student']
            seconds += (validations + 1) * ASTYX_VAL * per_frame
        costs[run.name] = (seconds + overhead, bool(run.requires))
    return costs, [r.name for r in runs]


def schedule(costs, order, jobs):
    """Return the wall seconds of list scheduling ``order`` on ``jobs`` slots (KD runs after the teacher)."""
    slots = [0.0] * jobs
    teacher_done = None
    finish = {}
    for name in order:
        seconds, needs_teacher = costs[name]
        slot = min(range(jobs), key=lambda i: slots[i])
        start = slots[slot]
        if needs_teacher:
            start = max(start, teacher_done)
        finish[name] = start + seconds
        slots[slot] = finish[name]
        if name.endswith('/teacher'):
            teacher_done = finish[name]
    return max(finish.values())


def main(argv=None):
    """Print and write the estimates; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bench', default=str(ROOT / 'benchmarks' / 'results' / 'bench_train.json'))
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--epochs', default='4,6,8,10,12')
    parser.add_argument('--val-every', type=int, default=2)
    parser.add_argument('--budget-hours', type=float, default=3.0)
    parser.add_argument('--overhead-s', type=float, default=25.0, help='fixed seconds per run')
    parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'table_estimate.json'))
    args = parser.parse_args(argv)
    bench = json.loads(Path(args.bench).read_text())
    budget = args.budget_hours * 3600.0
    result = {'command': 'benchmarks/estimate_table.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
              'bench': str(Path(args.bench).relative_to(ROOT)) if Path(args.bench).is_relative_to(ROOT)
              else args.bench, 'jobs': args.jobs, 'val_every': args.val_every, 'budget_s': budget,
              'overhead_s_per_run': args.overhead_s,
              'resolutions': {}}
    for key, entry in bench['resolutions'].items():
        height, width = (int(v) for v in key.split('x'))
        rows = {}
        for epochs in (int(e) for e in args.epochs.split(',')):
            costs, order = run_costs(entry, height, width, epochs, args.val_every, args.overhead_s)
            wall = schedule(costs, order, args.jobs)
            rows[epochs] = {'wall_s': wall, 'wall_h': wall / 3600.0, 'fits': wall <= budget,
                            'single_thread_sum_s': sum(c for c, _ in costs.values())}
            print(f'{key} {epochs:3d} epochs: {wall / 3600.0:.2f} h on {args.jobs} jobs '
                  f'({"fits" if wall <= budget else "over"} {args.budget_hours:g} h)')
        fitting = [e for e, r in rows.items() if r['fits']]
        result['resolutions'][key] = {'epochs': rows, 'max_epochs_within_budget': max(fitting) if fitting else None}
    write_results(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
