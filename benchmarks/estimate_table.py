"""
Estimate the wall time of the distillation table from measured epoch times (``benchmarks/bench_train.py``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/estimate_table.py [--bench benchmarks/results/bench_train.json] [--jobs 2]
        [--epochs 10,15,20,25,30] [--val-every 5] [--budget-hours 2]

Every run of ``training/tables/distill_astyx.yaml`` is given the measured cost of its kind at each measured
resolution (the cross-modal teacher, the direct student, the XD student with offline targets; DD-only and
saliency-only students are costed as XD, an upper bound), plus the offline-target build (once, on the first KD
run), validation on the 50 dev frames every ``--val-every`` epochs and the final evaluation on 86 frames (both
costed at the student's measured per-frame evaluation at the original resolution, an upper bound for the
model-resolution validation) and ``--overhead-s`` per run (process starts, model building). The runs are then
list-scheduled on ``--jobs`` single-thread slots in table order, a KD run starting only after the runs it needs
(its teacher and the gate's direct students), exactly as ``training/run_table.py`` does. Writes
``benchmarks/results/table_estimate.json`` and prints the largest epoch count per resolution that fits the budget.
Measured epoch times carry the load of the machine when they were taken (``load_average_*`` in the bench file).
"""

import argparse
import json
from pathlib import Path
import sys

from benchlib import ROOT, write_results

sys.path.insert(0, str(ROOT))                   # the training package

DEV_FRAMES, EVAL_FRAMES = 50, 86
KIND_OF = {'teacher_lidar': 'teacher_lidar@fp32', 'student_direct': 'student_direct@fp32',
           'student_camera': 'student_direct@fp32', 'student_dd': 'student_xd@fp32',
           'student_saliency': 'student_xd@fp32', 'student_xd': 'student_xd@fp32'}


def run_costs(entry, epochs, val_every, overhead=25.0):
    """Return ({run name: seconds}, {run name: [runs it needs]}, order) at one measured resolution."""
    from training.run_table import load_table
    _, runs = load_table(ROOT / 'training' / 'tables' / 'distill_astyx.yaml', 'runs', [])
    measured = entry['runs']
    eval_frame = entry['evaluation_s_per_frame']['student']
    validations = len([e for e in range(1, epochs + 1) if e % val_every == 0 or e == epochs])
    build = measured.get('student_xd@fp32', {}).get('targets_build_s') or 0.0
    costs, first_kd = {}, True
    for run in runs:
        kind = KIND_OF[run.config.stem.replace('astyx_', '')]
        seconds = epochs * measured[kind]['epoch_s'] + (validations * DEV_FRAMES + EVAL_FRAMES) * eval_frame
        if run.teacher and first_kd:
            seconds += build
            first_kd = False
        costs[run.name] = seconds + overhead
    return costs, {r.name: list(r.requires) for r in runs}, [r.name for r in runs]


def schedule(costs, requires, order, jobs):
    """Return the wall seconds of list scheduling ``order`` on ``jobs`` slots, each run after what it needs."""
    slots = [0.0] * jobs
    finish = {}
    pending = list(order)
    while pending:
        ready = [n for n in pending if all(d in finish for d in requires[n])]
        name = ready[0]
        pending.remove(name)
        slot = min(range(jobs), key=lambda i: slots[i])
        start = max([slots[slot]] + [finish[d] for d in requires[name]])
        finish[name] = start + costs[name]
        slots[slot] = finish[name]
    return max(finish.values())


def main(argv=None):
    """Print and write the estimates; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bench', default=str(ROOT / 'benchmarks' / 'results' / 'bench_train.json'))
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--epochs', default='10,15,20,25,30')
    parser.add_argument('--val-every', type=int, default=5)
    parser.add_argument('--budget-hours', type=float, default=2.0)
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
        rows = {}
        for epochs in (int(e) for e in args.epochs.split(',')):
            costs, requires, order = run_costs(entry, epochs, args.val_every, args.overhead_s)
            wall = schedule(costs, requires, order, args.jobs)
            rows[epochs] = {'wall_s': wall, 'wall_h': wall / 3600.0, 'fits': wall <= budget,
                            'single_thread_sum_s': sum(costs.values())}
            print(f'{key} {epochs:3d} epochs: {wall / 3600.0:.2f} h on {args.jobs} jobs '
                  f'({"fits" if wall <= budget else "over"} {args.budget_hours:g} h)')
        fitting = [e for e, r in rows.items() if r['fits']]
        result['resolutions'][key] = {'epochs': rows, 'max_epochs_within_budget': max(fitting) if fitting else None}
    write_results(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
