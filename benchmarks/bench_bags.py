"""
rosbag2 (MCAP) write and read-back rates for synthetic 450x800 frames and Astyx HiRes2019 frames (2048x618).

Run from the repository root: ``.venv/bin/python benchmarks/bench_bags.py [--runs 3] [--frames 30]``.
Prints medians over ``--runs`` and writes ``benchmarks/results/bench_bags.json``. The samples are loaded once
beforehand, so the figures are the bag's own cost (message building, CDR, MCAP, disk), for each source with raw
``Image`` and with ``CompressedImage`` (synthetic: JPEG re-encoded at quality 90; Astyx: the original JPEG bytes):

- ``write``: ``write_bag`` of all frames; frames/s and MB/s of bag written.
- ``read_raw``: ``read_bag`` over every message (raw CDR bytes, what a player publishes).
- ``read_typed``: ``read_bag_messages`` (rosbags deserialisation of every message).
- ``frames``: ``bag_frames`` plus, per frame, the RGB image, the radar in the camera frame and the lidar in the
  camera frame (what the offline evaluator does before the model); includes JPEG decoding for compressed bags.
"""

import argparse
from pathlib import Path
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import load_average, machine_record, RESULTS, write_results
from rcdepth_ros.core.bags import bag_frames, BagWriteOptions, read_bag, read_bag_messages, write_bag
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.paths import data_root

RESULT = RESULTS / 'bench_bags.json'


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def evaluate_frames(path):
    count = 0
    for frame in bag_frames(path):
        frame.rgb()
        frame.radar_points()
        frame.lidar_points()
        count += 1
    return count


def measure(samples, options, runs, workdir):
    """Return the medians of write and read-back for one source and one set of options."""
    frames = len(samples)
    writes, sizes = [], []
    path = workdir / 'bag'
    write_bag(samples[:1], workdir / 'warm_up', options)      # imports and first-call costs out of the timings
    shutil.rmtree(workdir / 'warm_up')
    for _ in range(runs):
        shutil.rmtree(path, ignore_errors=True)
        seconds, summary = timed(lambda: write_bag(samples, path, options))
        writes.append(seconds)
        sizes.append(summary.size_bytes)
    size_mb = sizes[-1] / 1e6
    reads = {
        'read_raw': lambda: sum(1 for _ in read_bag(path)),
        'read_typed': lambda: sum(1 for _ in read_bag_messages(path)),
        'frames': lambda: evaluate_frames(path),
    }
    result = {'n_frames': frames, 'bag_mb': round(size_mb, 2), 'messages': summary.messages}
    write_s = statistics.median(writes)
    result['write'] = {'s': round(write_s, 4), 'frames_per_s': round(frames / write_s, 1),
                       'mb_per_s': round(size_mb / write_s, 1)}
    for name, function in reads.items():
        times = [timed(function)[0] for _ in range(runs)]
        seconds = statistics.median(times)
        result[name] = {'s': round(seconds, 4), 'frames_per_s': round(frames / seconds, 1),
                        'mb_per_s': round(size_mb / seconds, 1)}
    shutil.rmtree(path, ignore_errors=True)
    return result


def main():
    """Load the samples, run the measurements, print them, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--runs', type=int, default=3, help='repetitions per measurement (median)')
    parser.add_argument('--frames', type=int, default=30, help='frames per bag')
    args = parser.parse_args()
    sources = {}
    start = time.perf_counter()
    synthetic = open_reader('synthetic', config={'num_drives': 1, 'frames_per_drive': args.frames},
                            radar_image=False, boxes=False)
    sources['synthetic_450x800'] = list(synthetic)
    print(f'synthetic: {len(sources["synthetic_450x800"])} frames generated in {time.perf_counter() - start:.1f} s')
    astyx_root = data_root() / 'astyx_hires2019'
    if (astyx_root / 'dataset.json').is_file():
        start = time.perf_counter()
        astyx = open_reader('astyx', astyx_root, frames=f'0-{args.frames - 1}', radar_image=False, boxes=False)
        sources['astyx_2048x618'] = list(astyx)
        print(f'astyx: {args.frames} frames loaded in {time.perf_counter() - start:.1f} s')
    else:
        print(f'Astyx HiRes2019 not found at {astyx_root}: only the synthetic source is measured', file=sys.stderr)
    # The machine is shared: the load average says how much of its 2 cores the timings really had.
    results = {'machine': machine_record(load_average_before=load_average()),
               'runs': args.runs, 'storage': 'mcap', 'rosbag2_version': 9, 'bag_directory': tempfile.gettempdir(),
               'results': {}}
    with tempfile.TemporaryDirectory(prefix='bench_bags_') as tmp:
        for name, samples in sources.items():
            for label, options in (('image', BagWriteOptions()), ('compressed', BagWriteOptions(compressed=True))):
                key = f'{name}/{label}'
                results['results'][key] = measure(samples, options, args.runs, Path(tmp))
                row = results['results'][key]
                print(f'{key:29s} {row["n_frames"]} frames, {row["bag_mb"]:6.1f} MB | ' + ' | '.join(
                    f'{step} {row[step]["frames_per_s"]:7.1f} frames/s {row[step]["mb_per_s"]:7.1f} MB/s'
                    for step in ('write', 'read_raw', 'read_typed', 'frames')))
    results['machine']['load_average_after'] = load_average()
    write_results(RESULT, results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
