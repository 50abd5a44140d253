"""
Synthetic scene generation rate at 450x800, and where the time goes.

One whole ``Sample``: camera image, dense depth, lidar, radar, radar image, lidar depth image, boxes.

Run from the repository root: ``.venv/bin/python benchmarks/bench_synthetic.py [--frames 40] [--runs 3]``.
Prints medians and writes ``benchmarks/results/bench_synthetic.json``:

- ``default`` / ``threaded``: ``SyntheticReader.sample(frame_id)`` wall time per frame (``sample_ms``, ``fps``),
  median over ``--frames`` frames spread over 4 drives (random access: every frame is independent), for each of
  ``--runs`` passes; the reported value is the median of the pass medians. ``default`` is one thread; ``threaded``
  (``threads=True``) moves the ground / sky shading and lidar / radar to a second thread.
- ``stages_ms``: camera / lidar / radar / assembly medians in the single-thread reader.
- ``two_processes``: aggregate rate of two worker processes each generating its own share of the frames (what a
  DataLoader with ``num_workers=2`` does), frames / wall time after a warm-up frame in each.
- ``load_average``: the machine's 1-minute load before and after, and ``cpu_pressure``: the share of time runnable
  tasks waited for a CPU (Linux PSI, avg10). The machine is shared: when other jobs keep both cores busy, the
  wall times grow and the second thread does not help; ``cpu_ms`` (CPU time per frame, all threads) then
  tells what the generator itself costs.
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os
from pathlib import Path
import statistics
import time

from benchlib import LoadRecord, machine_record, RESULTS, write_results
import numpy as np

from rcdepth_ros.data.synthetic import generator as generator_module, SyntheticConfig, SyntheticReader

RESULT = RESULTS / 'bench_synthetic.json'


def frame_ids(config, count):
    """Return ``count`` frame ids spread over the drives, in a shuffled (random access) order."""
    ids = [f'drive{d:04d}/{f:04d}' for d in range(config.num_drives) for f in range(config.frames_per_drive)]
    step = max(len(ids) // count, 1)
    chosen = ids[::step][:count]
    np.random.default_rng(0).shuffle(chosen)
    return chosen


def sample_times(reader, ids, cpu=None):
    """Return the wall time in ms of ``reader.sample`` for every id (``cpu``: a list receiving CPU ms)."""
    times = []
    for frame_id in ids:
        start, start_cpu = time.perf_counter(), time.process_time()
        reader.sample(frame_id)
        times.append(1000.0 * (time.perf_counter() - start))
        if cpu is not None:
            cpu.append(1000.0 * (time.process_time() - start_cpu))
    return times


def stage_times(reader, ids):
    """Return per-stage median ms (camera, lidar, radar, assembly) of a single-thread reader."""
    generator = reader.generator
    spent = {'camera': [], 'lidar': [], 'radar': []}
    originals = {}
    for name, owner, method in (('camera', generator.camera, 'render'), ('lidar', generator.lidar, 'scan'),
                                ('radar', generator.radar, 'measure')):
        original = getattr(owner, method)
        originals[name] = (owner, method, original)

        def timed(*args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            result = _original(*args, **kwargs)
            spent[_name].append(1000.0 * (time.perf_counter() - start))
            return result
        setattr(owner, method, timed)
    try:
        total = sample_times(reader, ids)
    finally:
        for owner, method, original in originals.values():
            setattr(owner, method, original)
    stages = {name: statistics.median(values) for name, values in spent.items()}
    assembly = [t - c - li - r for t, c, li, r in zip(total, spent['camera'], spent['lidar'], spent['radar'])]
    stages['assembly'] = statistics.median(assembly)
    stages['total'] = statistics.median(total)
    return stages


_WORKER = {}


def cpu_pressure():
    """Return the Linux PSI 'some' CPU pressure over the last 10 s (percent), or None where unavailable."""
    try:
        line = Path('/proc/pressure/cpu').read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split('=') for item in line.split()[1:])
    return float(fields['avg10'])


def _warm(config):
    """Build this worker's reader and generate one frame (textures, first drive)."""
    _WORKER['reader'] = SyntheticReader(config, threads=False)
    _WORKER['reader'].sample('drive0000/0000')
    return os.getpid()


def _generate(ids):
    """Generate the Samples of ``ids`` in this worker; return how many."""
    for frame_id in ids:
        _WORKER['reader'].sample(frame_id)
    return len(ids)


def two_process_rate(config, ids, workers=2):
    """Return frames/s of ``workers`` processes generating disjoint shares of ``ids`` concurrently."""
    context = multiprocessing.get_context('fork')
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_warm, [config] * workers))
        shares = [ids[k::workers] for k in range(workers)]
        start = time.perf_counter()
        done = sum(pool.map(_generate, shares))
        return done / (time.perf_counter() - start)


def main():
    """Measure and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=40, help='frames per pass')
    parser.add_argument('--runs', type=int, default=3, help='passes (the median of pass medians is reported)')
    parser.add_argument('--out', default=str(RESULT), help='JSON result file')
    args = parser.parse_args()
    config = SyntheticConfig(num_drives=4, frames_per_drive=100)
    ids = frame_ids(config, args.frames)
    load = LoadRecord().__enter__()
    pressure_before = cpu_pressure()
    result = {'config': {'height': config.height, 'width': config.width, 'frames': args.frames, 'runs': args.runs},
              'machine': machine_record()}
    for label, threads in (('default', False), ('threaded', True)):
        reader = SyntheticReader(config, threads=threads)
        sample_times(reader, ids[:2])                       # warm-up: textures, first drives
        cpu = []
        medians = [statistics.median(sample_times(reader, ids, cpu)) for _ in range(args.runs)]
        ms = statistics.median(medians)
        result[label] = {'sample_ms': round(ms, 2), 'fps': round(1000.0 / ms, 2),
                         'pass_medians_ms': [round(m, 2) for m in medians],
                         'cpu_ms': round(statistics.median(cpu), 2)}
        print(f'{label:14s} sample {ms:7.2f} ms  ({1000.0 / ms:5.1f} frames/s)  passes: '
              + ', '.join(f'{m:.1f}' for m in medians) + f'  CPU {statistics.median(cpu):.1f} ms (all threads)')
    stages = stage_times(SyntheticReader(config, threads=False), ids)
    result['stages_ms'] = {k: round(v, 2) for k, v in stages.items()}
    print('stages (single thread, median ms): ' + ', '.join(f'{k} {v:.1f}' for k, v in stages.items()))
    rates = [two_process_rate(config, ids) for _ in range(args.runs)]
    result['two_processes'] = {'fps': round(statistics.median(rates), 2), 'pass_fps': [round(r, 2) for r in rates]}
    print(f'two processes  {statistics.median(rates):5.1f} frames/s  passes: ' + ', '.join(f'{r:.1f}' for r in rates))
    load.__exit__()
    result['machine'].update(load.as_dict())
    result['cpu_pressure'] = {'before': pressure_before, 'after': cpu_pressure()}
    result['frame_period_ms'] = generator_module.FRAME_PERIOD_NS / 1e6
    print(f'load average {load.before:.2f} -> {load.after:.2f}, CPU pressure {pressure_before} -> '
          f'{cpu_pressure()} %')
    write_results(args.out, result)


if __name__ == '__main__':
    main()
