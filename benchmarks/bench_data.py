"""
Data pipeline timings on Astyx HiRes2019, and the radar-vs-lidar agreement of its calibration chain.

Run from the repository root: ``.venv/bin/python benchmarks/bench_data.py [--runs 3] [--frames 40]``.
Prints medians and writes ``benchmarks/results/bench_data.json``:

- ``load_project_ms``: one ``AstyxReader.sample`` (JSON calibration, JPEG decode, radar and lidar text parsing,
  transforms, lidar depth image and the 4-channel radar image at full 2048x618 resolution), median per frame;
  also without the full-resolution radar image (what the Dataset uses).
- ``item_uncached_ms`` / ``item_cached_ms``: one ``RadarCameraDataset`` item at 192x640 (default InputConfig),
  without and with the preprocessing cache (warm).
- ``epoch_*_s``: a whole epoch over the train split (frames 0-349): uncached, the first (cold) cached epoch that
  fills the cache, and warm cached epochs, each without and with augmentation; medians over ``--runs``.
- ``agreement``: radar vs nearest lidar pixel (3 px) on every 18th frame (25 frames).
"""

import argparse
from pathlib import Path
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import load_average, machine_record, RESULTS, write_results
import numpy as np

from rcdepth_ros.config import InputConfig
from rcdepth_ros.data.agreement import radar_lidar_agreement
from rcdepth_ros.data.astyx import AstyxReader
from rcdepth_ros.data.augment import AugmentConfig
from rcdepth_ros.data.cache import PreprocessCache
from rcdepth_ros.data.dataset import RadarCameraDataset
from rcdepth_ros.paths import data_root
import torch

RESULT = RESULTS / 'bench_data.json'


def per_call_ms(function, arguments):
    """Return the median wall time in ms of ``function(a)`` over ``arguments``."""
    times = []
    for argument in arguments:
        start = time.perf_counter()
        function(argument)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times)


def epoch_seconds(dataset, epoch=0):
    """Return the wall time in s of reading every item of ``dataset`` once."""
    dataset.set_epoch(epoch)
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return time.perf_counter() - start


def main():
    """Run the measurements, print them, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--runs', type=int, default=3, help='epochs per configuration (median)')
    parser.add_argument('--frames', type=int, default=40, help='frames for the per-frame timings')
    args = parser.parse_args()
    root = data_root() / 'astyx_hires2019'
    if not (root / 'dataset.json').is_file():
        print(f'Astyx HiRes2019 not found at {root}: set RCDEPTH_DATA', file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    cfg = InputConfig()
    full = AstyxReader(root)
    lean = AstyxReader(root, radar_image=False, boxes=False)
    frames = list(range(0, 350, max(1, 350 // args.frames)))[:args.frames]
    lean.sample(frames[0])                                      # imports and first-call costs out of the timings
    # The machine is shared: the load average says how much of its 2 cores the timings really had.
    results = {'machine': machine_record(load_average_before=load_average()),
               'input': {'height': cfg.height, 'width': cfg.width}, 'runs': args.runs, 'frames_timed': len(frames)}
    results['load_project_ms'] = per_call_ms(full.sample, frames)
    results['load_project_no_radar_image_ms'] = per_call_ms(lean.sample, frames)
    print(f'Astyx load + projection per frame (uncached, full-resolution radar image): '
          f'{results["load_project_ms"]:.1f} ms; without the radar image: '
          f'{results["load_project_no_radar_image_ms"]:.1f} ms (median of {len(frames)} frames)')

    train = lean.select('0-349')
    scratch = Path(tempfile.mkdtemp(prefix='rcdepth-bench-cache-'))
    try:
        uncached = RadarCameraDataset(train, cfg)
        cache = PreprocessCache(scratch)
        cached = RadarCameraDataset(train, cfg, cache=cache)
        positions = [train.frame_ids.index(f'{f:06d}') for f in frames]
        results['item_uncached_ms'] = per_call_ms(uncached.__getitem__, positions)
        for p in positions:
            cached[p]
        results['item_cached_ms'] = per_call_ms(cached.__getitem__, positions)
        print(f'Dataset item 192x640: uncached {results["item_uncached_ms"]:.1f} ms, cached '
              f'{results["item_cached_ms"]:.1f} ms (median)')

        shutil.rmtree(scratch)
        cache = PreprocessCache(scratch)
        cached = RadarCameraDataset(train, cfg, cache=cache)
        results['epoch_cold_cache_s'] = epoch_seconds(cached)
        results['cache_bytes'] = sum(p.stat().st_size for p in scratch.rglob('*.npz'))
        for name, augment in (('', None), ('_augmented', AugmentConfig(seed=0))):
            plain = RadarCameraDataset(train, cfg, augment=augment)
            warm = RadarCameraDataset(train, cfg, augment=augment, cache=cache)
            results[f'epoch_uncached{name}_s'] = statistics.median(epoch_seconds(plain, e) for e in range(args.runs))
            results[f'epoch_cached{name}_s'] = statistics.median(epoch_seconds(warm, e) for e in range(args.runs))
        results['cache_stats'] = cache.stats()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results['epoch_frames'] = len(train)
    results['speedup_cached'] = results['epoch_uncached_s'] / results['epoch_cached_s']
    print(f'Epoch over the train split ({len(train)} frames): uncached {results["epoch_uncached_s"]:.2f} s, '
          f'cached {results["epoch_cached_s"]:.2f} s (x{results["speedup_cached"]:.1f}), first cached epoch '
          f'{results["epoch_cold_cache_s"]:.2f} s; with augmentation: uncached '
          f'{results["epoch_uncached_augmented_s"]:.2f} s, cached {results["epoch_cached_augmented_s"]:.2f} s; '
          f'cache {results["cache_bytes"] / 1e6:.0f} MB')

    agreement = radar_lidar_agreement([lean.sample(f) for f in range(0, 436, 18) if f'{f:06d}' in lean], 3)
    results['agreement'] = agreement.to_dict()
    results['agreement']['signed_median_m'] = float(np.median(agreement.differences))
    print(f'Radar vs lidar on {agreement.frames} frames: {agreement.matched} returns with lidar within 3 px, '
          f'median |difference| {agreement.median_abs:.2f} m, within 1 m {100 * agreement.fraction_within(1):.0f} %, '
          f'within 0.5 m {100 * agreement.fraction_within(0.5):.0f} %')
    results['machine']['load_average_after'] = load_average()
    write_results(RESULT, results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
