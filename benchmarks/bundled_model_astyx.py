"""
The bundled demo model (trained on synthetic scenes only) on real Astyx HiRes2019 frames, beside a constant depth.

Run from the repository root: ``.venv/bin/python benchmarks/bundled_model_astyx.py [--frames 0-435]``. The model
is scored as ``rcdepth eval`` scores it (``evaluation.datasets.evaluate_reader``: original resolution, per image
then averaged, caps 50 / 70 / 80 m); the baseline predicts one constant everywhere, the median of every ground-truth
depth of the frames (pooled), scored by the same ``evaluation.frames.evaluate_frame`` on the same pixels (the
model's field of view). Writes
benchmarks/results/bundled_model_astyx.json. Quality figures only: the load average does not change them.
"""

import argparse
import time

from benchlib import command_line, LoadRecord, machine_record, RESULTS, timestamp, write_results
import numpy as np

from rcdepth_ros.core.inference.bundled_model import bundled_model_path
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.evaluation.frames import evaluate_frame
from rcdepth_ros.evaluation.metrics import DEFAULT_CAPS, MetricsAccumulator


def pooled_median(reader):
    """Return the median of every ground-truth depth of the reader's frames (metres)."""
    return float(np.median(np.concatenate([s.depth_gt[s.depth_gt > 0] for s in reader.iterate()])))


def evaluate(engine, reader, constant, caps):
    """Return (model MetricsResult, constant MetricsResult): both scored on the pixels the model predicts."""
    model, flat = MetricsAccumulator(caps), MetricsAccumulator(caps)
    for sample in reader.iterate():
        depth = engine.infer_batch([sample.image], [sample.radar], [sample.intrinsics])[0].depth
        model.add_frame(evaluate_frame(depth, sample.depth_gt, sample.frame_id, caps))
        same_view = np.where(np.isfinite(depth), np.float32(constant), np.float32(np.nan))
        flat.add_frame(evaluate_frame(same_view, sample.depth_gt, sample.frame_id, caps))
    return model.result(), flat.result()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', default='0-435', help='Astyx frame indices (default: every frame)')
    parser.add_argument('--root', default=None, help='Astyx folder (default: under $RCDEPTH_DATA)')
    parser.add_argument('--out', default=str(RESULTS / 'bundled_model_astyx.json'))
    args = parser.parse_args(argv)
    model = bundled_model_path()
    reader = open_reader('astyx', args.root, frames=args.frames)
    with LoadRecord() as load:
        engine = InferenceEngine(model, device='cpu')
        constant = pooled_median(reader)
        start = time.perf_counter()
        result, baseline = evaluate(engine, reader, constant, DEFAULT_CAPS)
        seconds = time.perf_counter() - start
    record = {'what': __doc__.strip().splitlines()[0], 'model': str(model.name), 'frames': args.frames,
              'evaluated': result.frames, 'model_metrics': result.to_dict(),
              'constant_m': constant, 'constant_metrics': baseline.to_dict(),
              'mae_m_at_80': {'model': result.to_dict()['caps']['80']['mae'] / 1e3,
                              'constant': baseline.to_dict()['caps']['80']['mae'] / 1e3},
              'seconds': seconds, 'date': timestamp(),
              'machine': machine_record(command=command_line('bundled_model_astyx.py', argv), **load.as_dict())}
    print(f'{record["evaluated"]} frames: MAE@80 model {record["mae_m_at_80"]["model"]:.2f} m, constant '
          f'{constant:.2f} m everywhere {record["mae_m_at_80"]["constant"]:.2f} m')
    write_results(args.out, record)


if __name__ == '__main__':
    main()
