"""
Run the whole distillation table and write its results: ``python -m training.run_table [--jobs 2] [key=value ...]``.

The table is a YAML spec (default ``training/tables/distill_astyx.yaml``): runs in order, each an experiment
config with an optional seed, label, group and evaluation data. Runs are trained with ``python -m training.train``
in subprocesses, ``--jobs`` at a time, each with ``train.threads=--threads`` (two single-thread jobs use the two
cores of this machine without the thread contention of one two-thread job); a run that distils from another
run's checkpoint starts only when that run is complete. A run whose ``checkpoints/final`` exists is skipped, and
an interrupted run resumes from its state, so the table resumes too. Each complete run is then evaluated with
``python -m training.evaluate`` (``rcdepth_ros.evaluation``: the original image resolution, the node's engine)
on its evaluation frames (default: the spec's ``eval``, Astyx frames 350-435), into ``<run>/eval/``.

The gate (the spec's ``gate:``: ``teacher``, ``direct`` runs, ``split``, ``min_gain_percent``): before the first run
that distils from the gate's teacher starts, the teacher and the listed direct students are scored on the dev frames
(``training.gate``: the held-out lidar rings of a lidar-input teacher, the same pixels for the students) and the
verdict is logged; the KD rows run either way (``block: true`` stops them instead) and the results say whether the
gate passed. The results also give the gate with every run of the ``direct`` group.

Results: ``benchmarks/results/<spec results>.json`` (every row's metrics, parameters, training time; the gate; the
seed summary: mean and standard deviation of MAE for the ``direct`` and ``xd`` groups and the relative change; the
fusion gain of ``fusion`` vs ``camera`` groups) and the same as a markdown table (``.md``). Overrides after the
options apply to every run (``train.epochs=2``). ``--dry-run`` prints the plan without running anything.
"""

import argparse
import json
import os
from pathlib import Path
import platform
import shlex
import statistics
import subprocess
import sys
import time

from rcdepth_ros.config import load_yaml
from rcdepth_ros.errors import ConfigError, RcdepthError
from rcdepth_ros.paths import SOURCE_ROOT
from training.config import load_experiment, SplitConfig
from training.gate import check_gate, describe

DEFAULT_SPEC = SOURCE_ROOT / 'training' / 'tables' / 'distill_astyx.yaml'
CAPS = ('50', '70', '80')
SEED_GROUPS = ('direct', 'xd')
FUSION_PAIRS = (('astyx', 'camera', 'direct'), ('synthetic', 'synthetic_camera', 'synthetic_fusion'))


class Run:
    """One row of the table: its experiment, run directory, overrides, dependencies and evaluation data."""

    def __init__(self, entry, spec, out, overrides):
        """Resolve the experiment (with the seed and overrides) and the evaluation data of a spec entry."""
        for key in ('name', 'config'):
            if key not in entry:
                raise ConfigError(f'table: run entry {entry} has no {key!r}')
        unknown = sorted(set(entry) - {'name', 'config', 'seed', 'label', 'group', 'eval'})
        if unknown:
            raise ConfigError(f'table: run {entry["name"]}: unknown key(s) {unknown}')
        self.name = str(entry['name'])
        self.config = Path(entry['config'])
        self.label = entry.get('label', self.name)
        self.group = entry.get('group')
        self.dir = Path(out) / self.name
        self.overrides = [f'name={self.name}'] + ([f'train.seed={int(entry["seed"])}'] if 'seed' in entry else [])
        self.overrides += list(overrides)
        experiment = load_experiment(SOURCE_ROOT / self.config if not self.config.is_absolute() else self.config,
                                     self.overrides)
        teacher = experiment.distill.teacher
        if teacher and Path(teacher).parts[:1] == ('runs',) and Path(out) != Path('runs'):
            teacher = str(Path(out) / Path(*Path(teacher).parts[1:]))
            self.overrides.append(f'distill.teacher={teacher}')
        self.teacher = teacher
        self.experiment = experiment
        self.seed = experiment.train.seed
        self.eval = dict(spec.get('eval') or {}, **(entry.get('eval') or {}))
        self.requires = []
        self.gated = False

    @property
    def final(self):
        """Return the stem of the run's final checkpoint."""
        return self.dir / 'checkpoints' / 'final'

    def complete(self):
        """Return True when the run has its final checkpoint."""
        return self.final.with_suffix('.json').is_file()

    def evaluated(self):
        """Return True when the run's evaluation is newer than its final checkpoint."""
        path = self.dir / 'eval' / 'evaluation.json'
        return path.is_file() and self.complete() and \
            path.stat().st_mtime >= self.final.with_suffix('.json').stat().st_mtime

    def train_command(self, threads):
        """Return the training command."""
        return [sys.executable, '-m', 'training.train', '--config', str(self.config), '--out', str(self.dir),
                f'train.threads={threads}'] + self.overrides

    def eval_command(self, device='cpu'):
        """Return the evaluation command."""
        e = self.eval
        command = [sys.executable, '-m', 'training.evaluate', '--model', str(self.dir), '--dataset', e['source'],
                   '--out', str(self.dir / 'eval'), '--device', device]
        for key in ('root', 'split', 'frames'):
            if e.get(key) is not None:
                command += [f'--{key}', str(e[key])]
        if e.get('options'):
            command += ['--options', json.dumps(e['options'])]
        return command


def load_table(spec_path, out, overrides):
    """Return (spec dict, [Run]) with the dependencies between runs resolved."""
    spec = load_yaml(spec_path)
    entries = spec.get('runs')
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f'{spec_path}: no runs list')
    if not spec.get('eval') and not all(e.get('eval') for e in entries):
        raise ConfigError(f'{spec_path}: an eval section is needed (top level or per run)')
    runs = [Run(entry, spec, out, overrides) for entry in entries]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f'{spec_path}: run names repeat: {names}')
    finals = {str(r.final): r.name for r in runs}
    for run in runs:
        if run.teacher and str(Path(run.teacher)) in finals:
            run.requires.append(finals[str(Path(run.teacher))])
    gate = spec.get('gate')
    if gate is not None:
        unknown = sorted(set(gate) - {'teacher', 'direct', 'split', 'frames', 'min_gain_percent', 'block'})
        if unknown or not gate.get('teacher') or not gate.get('direct'):
            raise ConfigError(f'{spec_path}: gate needs teacher and direct (run names); unknown keys {unknown}')
        missing = [n for n in [gate['teacher']] + list(gate['direct']) if n not in names]
        if missing:
            raise ConfigError(f'{spec_path}: gate names runs not in the table: {missing}')
        for run in runs:
            if gate['teacher'] in run.requires:
                run.requires += [n for n in gate['direct'] if n not in run.requires]
                run.gated = True
    return spec, runs


def _start(run, command, log_name, threads):
    run.dir.mkdir(parents=True, exist_ok=True)
    log = open(run.dir / log_name, 'a')
    log.write(f'\n$ {" ".join(shlex.quote(c) for c in command)}\n')
    log.flush()
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(threads))
    return subprocess.Popen(command, cwd=SOURCE_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env), log


def gate_record(spec, runs, direct=None):
    """Return the gate record of the spec's gate (``training.gate.check_gate``) from the runs' final checkpoints."""
    # the table driver runs its jobs as processes: torch only for the gate
    import torch
    torch.set_num_threads(1)            # beside the running jobs
    gate = spec['gate']
    by_name = {r.name: r for r in runs}
    teacher = by_name[gate['teacher']]
    students = [by_name[n] for n in (direct or gate['direct'])]
    split = SplitConfig(gate.get('split', 'dev'), gate.get('frames'))
    record = check_gate(str(teacher.final), [str(s.final) for s in students], teacher.experiment.data, split,
                        float(gate.get('min_gain_percent', 20.0)))
    record['teacher'], record['students'] = teacher.name, [s.name for s in students]
    return record


def execute(runs, jobs, threads, log=print, spec=None, eval_device='cpu'):
    """Train and evaluate every run, ``jobs`` at a time in spec order as dependencies allow; return seconds."""
    start = time.perf_counter()
    pending = [r for r in runs if not r.evaluated()]
    done = {r.name for r in runs if r.evaluated()}
    failed = {}
    active = {}
    gate = None
    while pending or active:
        for run in list(pending):
            if len(active) >= jobs:
                break
            if any(dep in failed for dep in run.requires):
                failed[run.name] = f'needs {run.requires}, which failed'
                pending.remove(run)
                continue
            if not all(dep in done for dep in run.requires):
                continue
            if run.gated and spec is not None and spec.get('gate') and not run.complete():
                if gate is None:
                    gate = gate_record(spec, runs)
                    log(f'[{time.strftime("%H:%M:%S")}] {describe(gate)}')
                if not gate['passed'] and spec['gate'].get('block'):
                    failed[run.name] = 'the distillation gate did not pass (gate.block)'
                    pending.remove(run)
                    continue
            pending.remove(run)
            stage = 'eval' if run.complete() else 'train'
            command = run.eval_command(eval_device) if stage == 'eval' else run.train_command(threads)
            process, handle = _start(run, command, 'table.log', threads)
            active[run.name] = (run, stage, process, handle, time.perf_counter())
            log(f'[{time.strftime("%H:%M:%S")}] {stage} {run.name}')
        time.sleep(0.5)
        for name, (run, stage, process, handle, began) in list(active.items()):
            if process.poll() is None:
                continue
            handle.close()
            del active[name]
            if process.returncode != 0:
                failed[name] = f'{stage} exited with status {process.returncode} (see {run.dir / "table.log"})'
                log(f'[{time.strftime("%H:%M:%S")}] FAILED {name}: {failed[name]}')
            elif stage == 'train':
                pending.insert(0, run)          # evaluate it next
            else:
                done.add(name)
                log(f'[{time.strftime("%H:%M:%S")}] done {name} ({time.perf_counter() - began:.0f} s eval)')
    if failed:
        raise RcdepthError('table: runs failed: ' + '; '.join(f'{k}: {v}' for k, v in failed.items()))
    return time.perf_counter() - start


def _mae(row, cap='80'):
    return row['metrics']['caps'][cap]['mae']


def _spread(values):
    return {'values': values, 'mean': statistics.mean(values),
            'std': statistics.stdev(values) if len(values) > 1 else 0.0, 'n': len(values)}


def collect(runs):
    """Return the rows (metrics, parameters, times) of evaluated runs."""
    rows = []
    for run in runs:
        record = json.loads((run.dir / 'eval' / 'evaluation.json').read_text())
        summary_path = run.dir / 'summary.json'
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        rows.append({'name': run.name, 'label': run.label, 'group': run.group, 'seed': run.seed,
                     'config': str(run.config), 'overrides': run.overrides, 'teacher': run.teacher,
                     'parameters': record['model']['parameters'], 'input': record['model']['input'],
                     'train_seconds': summary.get('train_seconds'), 'steps': summary.get('steps'),
                     'eval_frames': record['metrics']['frames'], 'eval': run.eval, 'metrics': record['metrics'],
                     'eval_seconds': record['evaluation']['seconds']})
    return rows


def summarise(rows):
    """Return the seed comparison and the fusion gains of the rows."""
    out = {'seeds': {}, 'fusion_gain': {}}
    groups = {g: [r for r in rows if r['group'] == g] for g in {r['group'] for r in rows if r['group']}}
    if all(groups.get(g) for g in SEED_GROUPS):
        seeds = {'metric': 'MAE (mm)'}
        for cap in CAPS:
            direct = _spread([_mae(r, cap) for r in groups['direct']])
            xd = _spread([_mae(r, cap) for r in groups['xd']])
            seeds[cap] = {'direct': direct, 'xd': xd,
                          'relative_change_percent': 100.0 * (xd['mean'] - direct['mean']) / direct['mean'],
                          'difference_mm': xd['mean'] - direct['mean'],
                          'pooled_std_mm': ((direct['std'] ** 2 + xd['std'] ** 2) / 2) ** 0.5}
        seeds['paper_relative_change_percent'] = -7.97
        seeds['target_relative_change_percent'] = -8.0
        seeds['target_reached'] = seeds['80']['relative_change_percent'] <= -8.0
        out['seeds'] = seeds
    for dataset, camera, fusion in FUSION_PAIRS:
        if groups.get(camera) and groups.get(fusion):
            cam = statistics.mean(_mae(r) for r in groups[camera])
            fus = statistics.mean(_mae(r) for r in groups[fusion])
            out['fusion_gain'][dataset] = {'camera_mae80_mm': cam, 'fusion_mae80_mm': fus,
                                           'relative_change_percent': 100.0 * (fus - cam) / cam}
    return out


def markdown(result):
    """Return the markdown of the table, the seed summary and the fusion gains."""
    lines = ['| run | seed | params (M) | ' + ' | '.join(f'MAE@{c} | RMSE@{c}' for c in CAPS) + ' | train (min) |',
             '|---|---|---|' + '---|---|' * len(CAPS) + '---|']
    for row in result['rows']:
        caps = row['metrics']['caps']
        cells = ' | '.join(f'{caps[c]["mae"]:.0f} | {caps[c]["rmse"]:.0f}' for c in CAPS)
        minutes = f'{row["train_seconds"] / 60:.1f}' if row['train_seconds'] else '-'
        lines.append(f'| {row["label"]} | {row["seed"]} | {row["parameters"] / 1e6:.2f} | {cells} | {minutes} |')
    lines.append('')
    lines.append('MAE / RMSE in mm at the original image resolution, caps 50 / 70 / 80 m (method.md section 4).')
    for key, title in (('gate', 'Gate (checked before the KD rows)'), ('gate_all_direct', 'Gate, every direct seed')):
        if result.get(key):
            lines += ['', f'{title}: {describe(result[key])}.']
    seeds = result['summary'].get('seeds')
    if seeds:
        lines += ['', '| MAE (mm) | direct (mean ± std) | KD (mean ± std) | change |', '|---|---|---|---|']
        for cap in CAPS:
            s = seeds[cap]
            lines.append(f'| @{cap} m | {s["direct"]["mean"]:.0f} ± {s["direct"]["std"]:.0f} (n={s["direct"]["n"]}) | '
                         f'{s["xd"]["mean"]:.0f} ± {s["xd"]["std"]:.0f} (n={s["xd"]["n"]}) | '
                         f'{s["relative_change_percent"]:+.2f} % |')
        reached = seeds.get('target_reached') and (result.get('gate') or {}).get('passed', True)
        lines.append(f'\nPaper: {seeds["paper_relative_change_percent"]:+.2f} % MAE from the two KD terms. '
                     f'Target here: the KD students >= 8 % lower MAE@80 than direct with the gate passed: '
                     f'{"reached" if reached else "NOT reached"}.')
    for dataset, gain in result['summary'].get('fusion_gain', {}).items():
        lines.append(f'\nFusion gain ({dataset}, MAE@80): camera only {gain["camera_mae80_mm"]:.0f} mm, '
                     f'camera + radar {gain["fusion_mae80_mm"]:.0f} mm ({gain["relative_change_percent"]:+.2f} %).')
    return '\n'.join(lines) + '\n'


def write_results(spec, runs, results_dir, wall_seconds, settings, gate=None):
    """Collect, summarise and write ``<results>.json`` and ``.md``; return the result dict."""
    rows = collect(runs)
    result = {'command': 'python -m training.run_table ' + ' '.join(shlex.quote(a) for a in sys.argv[1:]),
              'date': time.strftime('%Y-%m-%dT%H:%M:%S'),
              'machine': {'cpu_count': os.cpu_count(), 'platform': platform.platform()},
              'settings': settings, 'wall_seconds_this_invocation': wall_seconds,
              'load_average_end': list(os.getloadavg()),
              'gate': gate, 'gate_all_direct': None,
              'train_seconds_total': sum(r['train_seconds'] or 0.0 for r in rows),
              'eval_seconds_total': sum(r['eval_seconds'] or 0.0 for r in rows),
              'rows': rows, 'summary': summarise(rows)}
    if spec.get('gate'):
        if result['gate'] is None:
            result['gate'] = gate_record(spec, runs)
        direct = [r.name for r in runs if r.group == 'direct']
        if direct and sorted(direct) != sorted(spec['gate']['direct']):
            result['gate_all_direct'] = gate_record(spec, runs, direct)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = spec.get('results') or 'table'
    (results_dir / f'{name}.json').write_text(json.dumps(result, indent=2, allow_nan=False) + '\n')
    (results_dir / f'{name}.md').write_text(markdown(result))
    return result


def main(argv=None):
    """Run the table; return the exit status."""
    parser = argparse.ArgumentParser(prog='python -m training.run_table', description=__doc__.strip().splitlines()[0])
    parser.add_argument('--spec', default=str(DEFAULT_SPEC), help='table YAML (training/tables/*.yaml)')
    parser.add_argument('--out', default='runs', help='folder of the run directories')
    parser.add_argument('--results', default=str(SOURCE_ROOT / 'benchmarks' / 'results'), help='results folder')
    parser.add_argument('--jobs', type=int, default=2, help='runs trained at the same time')
    parser.add_argument('--threads', type=int, default=1, help='torch threads of each run')
    parser.add_argument('--only', default=None, help='comma-separated run names (and what they need)')
    parser.add_argument('--eval-device', default='cpu', help='device of the evaluations (cpu, cuda)')
    parser.add_argument('--eval-frames', default=None,
                        help='evaluate every run on these frames of its eval split (quick checks; the table uses '
                             "the spec's)")
    parser.add_argument('--gate-frames', default=None, help='score the gate on these frames of its split')
    parser.add_argument('--dry-run', action='store_true', help='print the plan and exit')
    parser.add_argument('overrides', nargs='*', metavar='key.sub=value', help='overrides for every run')
    args = parser.parse_args(argv)
    try:
        spec, runs = load_table(args.spec, args.out, args.overrides)
        if args.eval_frames:
            for run in runs:
                run.eval['frames'] = args.eval_frames
        if args.gate_frames and spec.get('gate'):
            spec['gate']['frames'] = args.gate_frames
        if args.only:
            wanted = set(args.only.split(','))
            unknown = wanted - {r.name for r in runs}
            if unknown:
                raise ConfigError(f'--only: unknown runs {sorted(unknown)}')
            needed = set(wanted)
            for run in reversed(runs):
                if run.name in needed:
                    needed.update(run.requires)
            runs = [r for r in runs if r.name in needed]
        if args.dry_run:
            for run in runs:
                state = 'evaluated' if run.evaluated() else 'complete' if run.complete() else 'to train'
                print(f'{run.name} [{state}] requires {run.requires or "-"}\n  '
                      + ' '.join(shlex.quote(c) for c in run.train_command(args.threads)) + '\n  '
                      + ' '.join(shlex.quote(c) for c in run.eval_command(args.eval_device)))
            return 0
        load_start = list(os.getloadavg())
        wall = execute(runs, max(1, args.jobs), args.threads, spec=spec, eval_device=args.eval_device)
        settings = {'jobs': args.jobs, 'threads': args.threads, 'overrides': args.overrides, 'spec': args.spec,
                    'eval_device': args.eval_device, 'load_average_start': load_start}
        result = write_results(spec, runs, args.results, wall, settings)
    except RcdepthError as exc:
        print(f'training.run_table: error: {exc}', file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
