"""
The one evaluation routine: a model through the inference engine on a data set's frames, scored by core.metrics.

``rcdepth eval``, ``python -m training.evaluate`` and the distillation table all call ``evaluate_model``, so every
reported number comes from the same path as the live node: ``InferenceEngine.infer_batch`` on the ORIGINAL image
(preprocessing, forward, restoring the depth map to the original size), then the protocol of
``../shared/docs/method.md`` section 4 (``core.metrics``: per image, then averaged; caps 50 / 70 / 80 m) against
the reader's sparse lidar ground truth ``Sample.depth_gt`` at the original resolution.

Field of view: the model sees the rows its input transform keeps (``InputConfig.crop``). Ground-truth pixels
outside them are not evaluated, as the protocol evaluates nuScenes on the image with its top rows cropped; the
rows are given by ``output_coverage`` (pixels where the restored map can hold a value), which depends only on the
input transform and never on the prediction, so a NaN predicted inside the field of view still counts as a
failure (``core.metrics``). Bad frames raise, or with ``on_error='skip'`` are skipped and listed.
"""

import time

import numpy as np
from rcdepth_ros.core.metrics import DEFAULT_CAPS, MetricsAccumulator
from rcdepth_ros.errors import MetricsError


def output_coverage(transform):
    """Return the bool (H, W) mask of original pixels the model's restored output covers (its field of view)."""
    ones = np.ones((transform.out_height, transform.out_width), np.float32)
    return np.isfinite(transform.restore(ones))


class _CoverageCache:
    """Coverage masks by transform: the frames of a data set usually share one image size."""

    def __init__(self):
        self.masks = {}

    def __call__(self, transform):
        if transform not in self.masks:
            self.masks[transform] = output_coverage(transform)
        return self.masks[transform]


def _batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate_reader(engine, reader, caps=DEFAULT_CAPS, batch_size=1, on_error='raise', keep_frames=False,
                    progress=False):
    """
    Return ``(MetricsResult, info)`` of ``engine`` (an InferenceEngine) over every frame of ``reader``.

    ``info``: frames evaluated, skipped frames (frame id, reason), seconds in total and per frame.
    """
    if batch_size < 1:
        raise MetricsError(f'evaluation: batch_size must be >= 1, got {batch_size}')
    accumulator = MetricsAccumulator(caps, keep_frames=keep_frames)
    coverage = _CoverageCache()
    samples = reader.iterate(on_error)
    if progress:
        from tqdm import tqdm
        samples = tqdm(samples, total=len(reader), desc='evaluate', dynamic_ncols=True)
    start = time.perf_counter()
    for batch in _batches(samples, batch_size):
        results = engine.infer_batch([s.image for s in batch], [s.radar for s in batch],
                                     [s.intrinsics for s in batch])
        for sample, result in zip(batch, results):
            gt = np.where(coverage(result.model_input.transform), sample.depth_gt, 0.0)
            accumulator.add(result.depth, gt, sample.frame_id)
    seconds = time.perf_counter() - start
    result = accumulator.result()
    info = {'frames': result.frames, 'skipped': [{'frame_id': s.frame_id, 'reason': s.reason}
                                                 for s in reader.skipped],
            'seconds': seconds, 'seconds_per_frame': seconds / max(result.frames, 1)}
    return result, info


def evaluate_model(model, source, root=None, split=None, frames=None, reader_options=None, device='auto',
                   half='auto', caps=DEFAULT_CAPS, batch_size=1, on_error='raise', keep_frames=False, progress=False):
    """
    Evaluate a checkpoint (path, or a ``(model, input_cfg, model_cfg)`` tuple) on frames of a data source.

    Returns a JSON-ready dict: ``metrics`` (``MetricsResult.to_dict``, with ``per_frame`` when ``keep_frames``),
    ``evaluation`` (source, root, split, frames, frames evaluated, skipped frames, timing, device) and ``model``
    (path, architecture, parameters, input size).
    """
    from rcdepth_ros.core.engine import InferenceEngine
    from rcdepth_ros.data.registry import open_reader
    from rcdepth_ros.models.checkpoint import load_checkpoint
    reader = open_reader(source, root, split=split, frames=frames, **dict(reader_options or {}))
    checkpoint = None if isinstance(model, (tuple, list)) else str(model)
    net, input_cfg, model_cfg = model if checkpoint is None else load_checkpoint(checkpoint)[:3]
    # counted before the engine folds batch norm into the convolutions (the model as trained and shipped)
    parameters = int(sum(p.numel() for p in net.parameters()))
    engine = InferenceEngine((net, input_cfg, model_cfg), device=device, half=half)
    result, info = evaluate_reader(engine, reader, caps, batch_size, on_error, keep_frames, progress)
    return {
        'metrics': result.to_dict(include_frames=keep_frames),
        'evaluation': dict(info, source=source, root=None if root is None else str(root), split=split,
                           frames_selected=frames, device=str(engine.device), half=engine.half,
                           caps=[float(c) for c in caps], resolution='original'),
        'model': {'checkpoint': checkpoint, 'architecture': model_cfg.architecture, 'parameters': parameters,
                  'input': [input_cfg.height, input_cfg.width]},
    }
