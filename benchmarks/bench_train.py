"""
Training cost on Astyx: one epoch of the table's runs at candidate resolutions, to size the distillation table.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_train.py [--resolutions 96x320,128x416,192x640] [--threads 1]
        [--runs student_direct:0,teacher_lidar:0,student_xd:0,student_xd@online:15] [--quick]

Each run is ``python -m training.train`` on the table's training split (frames 0-299, augmented, preprocessing
cache warmed first) for one epoch without validation, in a subprocess with ``train.threads`` fixed (the table runs
two single-thread jobs side by side: ``training/run_table.py --jobs 2``). ``name:N`` times the first N steps only
and extrapolates the epoch from their median (N = 0: the whole epoch is run and timed). KD runs read an untrained
cross-modal teacher checkpoint of the same resolution (the cost does not depend on the weights) through offline
targets built before their first step (the build time is reported apart, ``targets_build_s``); ``@online`` runs
the teacher in every step instead; ``@bf16`` runs under CPU bf16 autocast. Also timed: evaluating the student at
the original resolution (``rcdepth_ros.evaluation``) per frame.

Writes ``benchmarks/results/bench_train.json``: per resolution and run the epoch seconds, the median step seconds
(and the runs' steps), the machine's load average before and after (the machine is shared: the numbers say how
loaded it was).
"""

import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import command_line, LoadRecord, machine_record, RESULTS, ROOT, timestamp, write_results

sys.path.insert(0, str(ROOT))                   # the training package
RESULT = RESULTS / 'bench_train.json'
DEFAULT_RUNS = 'student_direct:0,teacher_lidar:0,student_xd:0,student_xd@online:15'


def parse_runs(text):
    """Return [(config name, precision, steps)] of ``name[@bf16]:steps,...``."""
    runs = []
    for item in text.split(','):
        name, _, steps = item.partition(':')
        name, _, precision = name.partition('@')
        runs.append((name.strip(), precision or 'fp32', int(steps or 0)))
    return runs


def warm_cache(height, width, split='train'):
    """Build the preprocessing cache of a split at this width; return the seconds it took."""
    from rcdepth_ros.data.cache import PreprocessCache
    from rcdepth_ros.data.dataset import RadarCameraDataset
    from rcdepth_ros.data.registry import open_reader
    from rcdepth_ros.models import load_model_config
    input_cfg, _ = load_model_config({'input': {'height': height, 'width': width}, 'model': {}})
    dataset = RadarCameraDataset(open_reader('astyx', split=split), input_cfg, None, PreprocessCache())
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset.base(index)
    return time.perf_counter() - start


def untrained_teacher(height, width, folder):
    """Save the table's cross-modal teacher, untrained, at this resolution; return the checkpoint stem."""
    from rcdepth_ros.models import build_model, save_checkpoint
    from training.config import load_experiment
    experiment = load_experiment(ROOT / 'training/configs/astyx_teacher_lidar.yaml',
                                 [f'input.height={height}', f'input.width={width}'])
    model = build_model(experiment.model, experiment.input)
    stem = Path(folder) / f'teacher_{height}x{width}'
    save_checkpoint(stem, model, experiment.input, experiment.model)
    return stem


def time_run(name, precision, steps, height, width, threads, teacher, folder):
    """Train one epoch (or ``steps`` steps) in a subprocess; return its timing dict."""
    out = Path(folder) / f'{name}_{precision}_{height}x{width}'
    overrides = [f'input.height={height}', f'input.width={width}', 'train.epochs=1', 'data.val=null',
                 'train.progress=false', 'train.tensorboard=false', 'train.plots=false', 'train.log_every_steps=1',
                 f'train.threads={threads}', f'train.amp={"bf16" if precision == "bf16" else "off"}',
                 'train.checkpoint_every_steps=100000']
    if precision == 'bf16':
        overrides[overrides.index('train.amp=off')] = 'train.amp=bf16'
    if steps:
        overrides.append(f'train.max_steps_per_epoch={steps}')
    if 'teacher' not in name and name not in ('student_direct', 'student_camera'):
        overrides += [f'distill.teacher={teacher}', f'distill.targets.directory={folder}/targets_{height}x{width}',
                      f'distill.targets.offline={"false" if precision == "online" else "true"}']
    command = [sys.executable, '-m', 'training.train', '--config', f'training/configs/astyx_{name}.yaml',
               '--out', str(out), '--fresh'] + overrides
    with LoadRecord() as load:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
    manifest = Path(folder) / f'targets_{height}x{width}' / 'manifest.json'
    build = json.loads(manifest.read_text()).get('built_seconds') if manifest.is_file() and \
        precision != 'online' and 'teacher' not in name and name != 'student_direct' else None
    if done.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed:\n{done.stderr[-3000:]}')
    summary = json.loads((out / 'summary.json').read_text())
    import csv
    with open(out / 'logs' / 'train.csv', newline='') as handle:
        seconds = [float(row['seconds_per_step']) for row in csv.DictReader(handle)]
    median = statistics.median(seconds[1:] if len(seconds) > 2 else seconds)
    from training.config import load_experiment
    experiment = load_experiment(ROOT / f'training/configs/astyx_{name}.yaml',
                                 [f'input.height={height}', f'input.width={width}'])
    from rcdepth_ros.data.registry import open_reader
    frames = len(open_reader('astyx', split=experiment.data.train.split, frames=experiment.data.train.frames))
    steps_per_epoch = frames // experiment.train.batch_size
    measured_epoch = summary['train_seconds'] if not steps else None
    return {'run': name, 'precision': precision, 'steps_timed': summary['steps'], 'steps_per_epoch': steps_per_epoch,
            'median_step_s': median, 'step_seconds': seconds,
            'epoch_s': measured_epoch if measured_epoch is not None else median * steps_per_epoch,
            'epoch_measured': measured_epoch is not None, 'process_wall_s': wall, 'targets_build_s': build,
            **load.as_dict()}


def time_evaluation(height, width, teacher, frames='350-365'):
    """Return seconds per frame of evaluating the untrained student at the original resolution."""
    import torch
    from rcdepth_ros.core.inference.engine import InferenceEngine
    from rcdepth_ros.data.registry import open_reader
    from rcdepth_ros.evaluation.datasets import evaluate_reader
    from rcdepth_ros.models import build_model
    from training.config import load_experiment
    out = {}
    reader = open_reader('astyx', frames=frames)
    student = load_experiment(ROOT / 'training/configs/astyx_student_direct.yaml',
                              [f'input.height={height}', f'input.width={width}'])
    for name, source in (('student', (build_model(student.model, student.input), student.input, student.model)),):
        engine = InferenceEngine(source, device='cpu')
        _, info = evaluate_reader(engine, reader)
        out[name] = info['seconds_per_frame']
    out['threads'] = torch.get_num_threads()
    return out


def main(argv=None):
    """Run the benchmark; write the JSON; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--resolutions', default='96x320,128x416,192x640')
    parser.add_argument('--runs', default=DEFAULT_RUNS)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--quick', action='store_true', help='4 steps per run, one resolution (smoke test)')
    parser.add_argument('--out', default=str(RESULT))
    args = parser.parse_args(argv)
    resolutions = [tuple(int(v) for v in r.split('x')) for r in args.resolutions.split(',')]
    runs = parse_runs(args.runs)
    if args.quick:
        resolutions = resolutions[:1]
        runs = [(name, precision, 4) for name, precision, _ in runs]
        if args.out == str(RESULT):
            args.out = str(RESULT.with_name('bench_train_quick.json'))
    import torch
    torch.set_num_threads(args.threads)
    result = {'command': command_line('bench_train.py', argv), 'date': timestamp(), 'machine': machine_record(),
              'resolutions': {}}
    with tempfile.TemporaryDirectory(prefix='bench_train_') as folder:
        for height, width in resolutions:
            key = f'{height}x{width}'
            entry = {'cache_warm_s': warm_cache(height, width), 'runs': {}}
            teacher = untrained_teacher(height, width, folder)
            for name, precision, steps in runs:
                timing = time_run(name, precision, steps, height, width, args.threads, teacher, folder)
                entry['runs'][f'{name}@{precision}'] = timing
                print(f'{key} {name}@{precision}: epoch {timing["epoch_s"]:.0f} s '
                      f'({"measured" if timing["epoch_measured"] else "extrapolated"}), median step '
                      f'{timing["median_step_s"]:.2f} s, load {timing["load_average_before"]:.1f}', flush=True)
            entry['evaluation_s_per_frame'] = time_evaluation(height, width, teacher)
            result['resolutions'][key] = entry
            write_results(args.out, result)      # after every resolution: a killed run keeps what it measured
    return 0


if __name__ == '__main__':
    sys.exit(main())
