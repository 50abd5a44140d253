"""
Radar-anchored refinement (``refine: radar``): accuracy with and without, the time it adds, and why it works.

Run from the repository root::

    .venv/bin/python benchmarks/bench_refine.py --model bundled=weights/xdrcdepth_demo_synthetic.safetensors
        --model astyx_direct=runs/astyx_direct/checkpoints/final.safetensors --headline astyx_direct

(one line).

Parts (``--parts``, default all):

- ``accuracy``: every ``--model`` through ``rcdepth_ros.evaluation.datasets.evaluate_model`` (the path of
  ``rcdepth eval``) with ``refine`` none and radar (unlimited budget, so the numbers do not depend on the load), on
  Astyx val (frames 350-435) and the synthetic test frames of the distillation table (split test, frames 0-79,
  seed 0, 16 drives x 20 frames); MAE / RMSE at 50 / 70 / 80 m in mm and the gain in percent.
- ``ablation``: the ``--headline`` model on Astyx val with one setting changed at a time (the regular grid instead
  of the 3D SLIC, no ties, no elevation spread, symmetric cut-offs, RCS weighting).
- ``radar``: why the radar can correct the depth: Astyx val radar returns against the lidar points in the same
  direction (within 0.5 deg azimuth and 2 deg elevation), per radar range bin: the median range error to the
  closest lidar point, the share within 1 m, and the share of returns with a lidar point more than 2 m in FRONT of
  them (a far return there is a multipath ghost, or a surface the lidar does not reach).
- ``timing``: the stage's time per frame (the engine's ``timings['refine']``) at a 448x800 model input, on the CPU
  (``--threads`` for the forward pass; the stage runs on its own ``threads`` setting) and on CUDA when present;
  median and p90 over ``--frames-timed`` frames after warm-up (and, on the CPU, the median CPU time of the thread
  that ran the stage, which a loaded machine inflates far less than the wall time), for Astyx val frames (an
  imaging radar, hundreds to thousands of returns) and synthetic test frames (about 50 returns, like nuScenes).
  The bundled model's weights
  with its input set to 448x800 (the network is fully convolutional); the load average is recorded.

Writes ``benchmarks/results/refine.json`` (``--out``) with the headline figures ``astyx_mae80_gain_percent`` (the
``--headline`` model on Astyx val) and ``cpu_added_ms_p50`` (the larger of the two CPU medians at 448x800). A
subset of ``--parts`` updates those parts of an existing results file and keeps the others (``commands`` holds the
command of each part), so the timing can be re-measured alone on a quiet machine.
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path
import time

from benchlib import command_line, LoadRecord, machine_record, median, RESULTS, timestamp, write_results
import numpy as np
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.refine import RefineSettings
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.evaluation.datasets import evaluate_model
from rcdepth_ros.models.checkpoint import load_checkpoint
from rcdepth_ros.models.export import parse_size
import torch

ASTYX_VAL = {'source': 'astyx', 'frames': '350-435'}
SYNTHETIC_TEST = {'source': 'synthetic', 'split': 'test', 'frames': '0-79',
                  'reader_options': {'config': {'seed': 0, 'num_drives': 16, 'frames_per_drive': 20}}}
DATASETS = {'astyx_val': ASTYX_VAL, 'synthetic_test': SYNTHETIC_TEST}
# --quick (a smoke run): three frames of each, small synthetic frames
QUICK_DATASETS = {'astyx_val': {'source': 'astyx', 'frames': '350-352'},
                  'synthetic_test': {'source': 'synthetic', 'split': 'test', 'frames': '0-2', 'reader_options': {
                      'config': {'num_drives': 1, 'frames_per_drive': 3, 'width': 192, 'height': 112}}}}
ABLATIONS = {
    'regular_grid (slic_iterations 0)': {'slic_iterations': 0},
    'no ties (lambda_ties 0)': {'lambda_ties': 0.0},
    'no elevation spread (elevation_spread_deg 0)': {'elevation_spread_deg': 0.0},
    'symmetric cut-offs (far_cutoff = near_cutoff)': {'far_cutoff': RefineSettings().near_cutoff},
    'rcs_weight 0.5': {'rcs_weight': 0.5},
}
RANGE_BINS = ((0, 10), (10, 20), (20, 30), (30, 50), (50, 80), (80, 200))
CAPS = ('50', '70', '80')
PARTS = ('accuracy', 'ablation', 'radar', 'timing')


def refine_settings(**changes):
    """Return the default radar settings with an unlimited budget (and ``changes``)."""
    return RefineSettings(mode='radar', budget_ms=math.inf, **changes)


def caps_summary(metrics):
    """Return {cap: {mae_mm, rmse_mm}} of a metrics dict."""
    return {cap: {'mae_mm': round(metrics['caps'][cap]['mae'], 1), 'rmse_mm': round(metrics['caps'][cap]['rmse'], 1)}
            for cap in CAPS}


def gains(before, after):
    """Return the percent reduction of MAE and RMSE per cap."""
    return {cap: {key: round(100.0 * (before[cap][key] - after[cap][key]) / before[cap][key], 2)
                  for key in ('mae_mm', 'rmse_mm')} for cap in CAPS}


def evaluate(model, dataset, refine, device):
    """Return (MAE / RMSE per cap, frames) of ``model`` on ``dataset`` with the stage set to ``refine``."""
    spec = dict(DATASETS[dataset])
    record = evaluate_model(model, spec.pop('source'), device=device, refine=refine, **spec)
    return caps_summary(record['metrics']), record['evaluation']['frames']


def accuracy(models, device):
    """Return every model's metrics on every data set, with and without the stage."""
    out = {}
    for name, path in models.items():
        out[name] = {}
        for dataset in DATASETS:
            plain, frames = evaluate(path, dataset, None, device)
            refined, _ = evaluate(path, dataset, refine_settings(), device)
            out[name][dataset] = {'frames': frames, 'none': plain, 'radar': refined,
                                  'gain_percent': gains(plain, refined)}
            print(f'{name} {dataset}: MAE@80 {plain["80"]["mae_mm"]:.0f} -> {refined["80"]["mae_mm"]:.0f} mm '
                  f'({out[name][dataset]["gain_percent"]["80"]["mae_mm"]:+.2f} %)', flush=True)
    return out


def ablation(path, device, plain=None):
    """Return the headline model's Astyx val metrics with one setting changed at a time."""
    if plain is None:
        plain, _ = evaluate(path, 'astyx_val', None, device)
    out = {'none': plain}
    for label, change in {'defaults': {}, **ABLATIONS}.items():
        refined, _ = evaluate(path, 'astyx_val', refine_settings(**change), device)
        out[label] = {'settings': change, 'radar': refined, 'gain_percent': gains(plain, refined)}
        print(f'ablation {label}: MAE@80 gain {out[label]["gain_percent"]["80"]["mae_mm"]:+.2f} %', flush=True)
    return out


def _spherical(points):
    rng = np.linalg.norm(points, axis=1)
    azimuth = np.degrees(np.arctan2(points[:, 0], points[:, 2]))
    elevation = np.degrees(np.arcsin(np.clip(-points[:, 1] / np.maximum(rng, 1e-6), -1.0, 1.0)))
    return rng, azimuth, elevation


def radar_vs_lidar():
    """Return the Astyx val returns against the lidar points in their direction, per radar range bin."""
    reader = open_reader('astyx', frames=DATASETS['astyx_val']['frames'])
    rows = []
    for sample in reader.iterate('raise'):
        radar = sample.radar.xyz.astype(np.float64)
        lidar = sample.lidar_xyz.astype(np.float64)
        radar, lidar = radar[radar[:, 2] > 1.0], lidar[lidar[:, 2] > 1.0]
        r_range, r_az, r_el = _spherical(radar)
        l_range, l_az, l_el = _spherical(lidar)
        order = np.argsort(l_az)
        l_range, l_az, l_el = l_range[order], l_az[order], l_el[order]
        starts = np.searchsorted(l_az, r_az - 0.5, side='left')
        stops = np.searchsorted(l_az, r_az + 0.5, side='right')
        for j in range(len(radar)):
            window = slice(starts[j], stops[j])
            near = np.abs(l_el[window] - r_el[j]) <= 2.0
            if near.any():
                difference = l_range[window][near] - r_range[j]
                rows.append((r_range[j], difference[np.argmin(np.abs(difference))], difference.min()))
    rows = np.asarray(rows)
    out = {'frames': len(reader), 'returns_with_lidar_in_direction': int(len(rows)), 'bins': {}}
    for lo, hi in RANGE_BINS:
        chosen = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        if not len(chosen):
            continue
        closest = np.abs(chosen[:, 1])
        out['bins'][f'{lo}-{hi} m'] = {
            'returns': int(len(chosen)), 'median_abs_error_m': round(float(np.median(closest)), 2),
            'p75_abs_error_m': round(float(np.percentile(closest, 75)), 2),
            'within_1m_percent': round(100.0 * float(np.mean(closest < 1.0)), 1),
            'lidar_2m_in_front_percent': round(100.0 * float(np.mean(chosen[:, 2] < -2.0)), 1)}
    return out


def timing_engine(device, threads, size):
    """Return the bundled model's engine with its input set to ``size`` (h, w), refinement on (unlimited budget)."""
    from rcdepth_ros.core.inference.bundled_model import bundled_model_path
    model, input_cfg, model_cfg, _ = load_checkpoint(bundled_model_path())
    input_cfg = dataclasses.replace(input_cfg, height=size[0], width=size[1])
    if device == 'cpu':
        torch.set_num_threads(threads)
    return InferenceEngine((model, input_cfg, model_cfg), device=device, refine=refine_settings())


def timing(device, threads, frames_timed, warmup, size=(448, 800)):
    """Return the median / p90 of the stage's time per frame on ``device`` for Astyx and synthetic frames."""
    engine = timing_engine(device, threads, size)
    out = {'device': str(engine.device), 'input': f'{size[0]}x{size[1]}', 'forward_threads': torch.get_num_threads(),
           'stage_threads': engine.refine_settings.threads if engine.device.type == 'cpu' else None}
    cpu_times = []
    stage = engine.refiner.refine

    def timed_stage(*args, **kwargs):
        # CPU time of the calling thread: on a loaded machine the wall time mostly measures the wait for a core
        start = time.thread_time()
        refined = stage(*args, **kwargs)
        cpu_times.append((time.thread_time() - start) * 1e3)
        return refined

    engine.refiner.refine = timed_stage
    for dataset in DATASETS:
        spec = dict(DATASETS[dataset])
        reader = open_reader(spec.pop('source'), split=spec.get('split'), frames=spec.get('frames'),
                             **spec.get('reader_options', {}))
        samples = []
        for sample in reader.iterate('raise'):
            samples.append(sample)
            if len(samples) >= frames_timed + warmup:
                break
        times, returns, statuses = [], [], {}
        cpu_times.clear()
        with LoadRecord() as load:
            for i, sample in enumerate(samples):
                result = engine.infer(sample.image, sample.radar, sample.intrinsics)
                if i < warmup:
                    cpu_times.clear()
                else:
                    times.append(result.timings['refine'])
                    returns.append(result.refine['used'])
                    statuses[result.refine['status']] = statuses.get(result.refine['status'], 0) + 1
        ordered = sorted(times)
        out[dataset] = {'frames': len(times), 'median_ms': round(median(times), 2),
                        'p90_ms': round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
                        'median_thread_cpu_ms': round(median(cpu_times), 2) if engine.device.type == 'cpu' else None,
                        'returns_used_median': int(median(returns)), 'statuses': statuses, **load.as_dict()}
        print(f'timing {device} {dataset}: median {out[dataset]["median_ms"]:.2f} ms (thread CPU '
              f'{out[dataset]["median_thread_cpu_ms"]} ms) over {len(times)} frames '
              f'(load {load.before} -> {load.after})', flush=True)
    return out


def parse_models(items):
    """Return {name: path} of the ``--model NAME=PATH`` arguments."""
    models = {}
    for item in items or ['bundled=weights/xdrcdepth_demo_synthetic.safetensors']:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise SystemExit(f'--model expects NAME=PATH, got {item!r}')
        models[name] = path
    return models


def main(argv=None):
    """Run the parts, write the results, return them."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', action='append', help='NAME=PATH of a checkpoint (repeatable; default: bundled)')
    parser.add_argument('--headline', default=None, help='model whose Astyx gain is the headline (default: first)')
    parser.add_argument('--parts', default=','.join(PARTS),
                        help='comma separated subset; a subset keeps the other parts of an existing --out file')
    parser.add_argument('--device', default='cpu', help='device of the accuracy runs')
    parser.add_argument('--threads', type=int, default=2, help='torch threads of the CPU forward pass (timing)')
    parser.add_argument('--frames-timed', type=int, default=60, help='frames per timing median')
    parser.add_argument('--timing-size', default='448x800', help='model input HxW of the timing part')
    parser.add_argument('--quick', action='store_true', help='smoke run: three frames per data set, one warm-up frame')
    parser.add_argument('--out', default=None, help='results file (default: results/refine.json, '
                                                    'results/refine_quick.json with --quick)')
    args = parser.parse_args(argv)
    if args.quick:
        DATASETS.update(QUICK_DATASETS)
    warmup = 1 if args.quick else 3
    size = parse_size(args.timing_size)
    args.out = args.out or str(RESULTS / ('refine_quick.json' if args.quick else 'refine.json'))
    models = parse_models(args.model)
    headline = args.headline or next(iter(models))
    if headline not in models:
        raise SystemExit(f'--headline {headline!r} is not one of the models {sorted(models)}')
    parts = [p.strip() for p in args.parts.split(',') if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f'--parts: unknown {unknown}; choose from {", ".join(PARTS)}')
    started = time.perf_counter()
    # a subset of the parts keeps the other parts' figures of an existing results file
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() and set(parts) != set(PARTS) else {}
    commands = result.get('commands', {})
    commands.update({part: command_line('bench_refine.py', argv) for part in parts})
    result.update({'commands': commands, 'date': timestamp(), 'machine': machine_record(),
                   'settings': refine_settings().to_dict()})
    if 'accuracy' in parts or 'ablation' in parts:
        result.update({'models': models, 'headline_model': headline})
    if 'accuracy' in parts:
        result['accuracy'] = accuracy(models, args.device)
        result['astyx_mae80_gain_percent'] = result['accuracy'][headline]['astyx_val']['gain_percent']['80']['mae_mm']
    if 'ablation' in parts:
        plain = result.get('accuracy', {}).get(headline, {}).get('astyx_val', {}).get('none')
        result['ablation_astyx_val'] = ablation(models[headline], args.device, plain)
    if 'radar' in parts:
        result['astyx_radar_vs_lidar'] = radar_vs_lidar()
    if 'timing' in parts:
        result['timing_cpu'] = timing('cpu', args.threads, args.frames_timed, warmup, size)
        result['cpu_added_ms_p50'] = max(result['timing_cpu'][d]['median_ms'] for d in DATASETS)
        if torch.cuda.is_available():
            result['timing_cuda'] = timing('cuda', args.threads, args.frames_timed, warmup, size)
            result['cuda_added_ms_p50'] = max(result['timing_cuda'][d]['median_ms'] for d in DATASETS)
    result['seconds'] = round(time.perf_counter() - started, 1)
    write_results(args.out, result)
    return result


if __name__ == '__main__':
    main()
