"""
A model over a data set's frames: ``rcdepth eval``, ``python -m training.evaluate`` and the distillation table.

Every reported number comes from the same path as the live node: ``InferenceEngine.infer_batch`` on the ORIGINAL
image (preprocessing, forward, restoring the depth map to the original size), then ``evaluation.frames`` (the one
field-of-view rule and the protocol of ``../shared/docs/method.md`` section 4: per image, then averaged; caps
50 / 70 / 80 m) against the reader's sparse lidar ground truth ``Sample.depth_gt`` at the original resolution. Bad
frames raise, or with ``on_error='skip'`` are skipped and listed.

The command-line options of such an evaluation (``add_arguments``, ``evaluate_args``, ``report``) live here too, so
``rcdepth eval`` and ``python -m training.evaluate`` take the same options and print the same record.
"""

import json
import math
from pathlib import Path
import time

from rcdepth_ros.config import bounded_number, load_yaml
from rcdepth_ros.core.inference.bundled_model import ASTYX_TRAINED, bundled_model_for, SYNTHETIC_ONLY
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.inference.options import BACKENDS, PRECISIONS
from rcdepth_ros.core.inference.refine import RefineSettings
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import ConfigError, MetricsError
from rcdepth_ros.evaluation.frames import evaluate_frame
from rcdepth_ros.evaluation.metrics import DEFAULT_CAPS, MetricsAccumulator
from rcdepth_ros.models.checkpoint import load_checkpoint
from rcdepth_ros.paths import check_output_folder
from tqdm import tqdm
import yaml


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
    samples = reader.iterate(on_error)
    if progress:
        samples = tqdm(samples, total=len(reader), desc='evaluate', dynamic_ncols=True)
    start = time.perf_counter()
    for batch in _batches(samples, batch_size):
        results = engine.infer_batch([s.image for s in batch], [s.radar for s in batch],
                                     [s.intrinsics for s in batch])
        for sample, result in zip(batch, results):
            accumulator.add_frame(evaluate_frame(result.depth, sample.depth_gt, sample.frame_id, caps))
    seconds = time.perf_counter() - start
    result = accumulator.result()
    info = {'frames': result.frames, 'skipped': [{'frame_id': s.frame_id, 'reason': s.reason}
                                                 for s in reader.skipped],
            'seconds': seconds, 'seconds_per_frame': seconds / max(result.frames, 1)}
    return result, info


def evaluate_model(model, source, root=None, split=None, frames=None, reader_options=None, device='auto',
                   half='auto', caps=DEFAULT_CAPS, batch_size=1, on_error='raise', keep_frames=False, progress=False,
                   refine=None, engine_options=None):
    """
    Evaluate a checkpoint (path, or a ``(model, input_cfg, model_cfg)`` tuple) on frames of a data source.

    ``refine``: the engine's refinement stage (None / 'none' / 'radar', a mapping or RefineSettings); given as a
    name or a mapping without ``budget_ms`` its time budget is unlimited (``offline_refine``), so the numbers do not
    depend on the machine's load. Its settings are recorded under ``evaluation.refine``. ``engine_options``: further
    InferenceEngine keywords (``backend``, ``precision``, ``calibration``, ...); with a checkpoint path the engine
    loads the file itself (so the onnxruntime backend caches its ONNX file beside it).

    Returns a JSON-ready dict: ``metrics`` (``MetricsResult.to_dict``, with ``per_frame`` when ``keep_frames``),
    ``evaluation`` (source, root, split, frames, frames evaluated, skipped frames, timing, device) and ``model``
    (path, architecture, parameters, input size).
    """
    reader = open_reader(source, root, split=split, frames=frames, **dict(reader_options or {}))
    checkpoint = None if isinstance(model, (tuple, list)) else str(model)
    net, input_cfg, model_cfg = model if checkpoint is None else load_checkpoint(checkpoint)[:3]
    # counted before the engine folds batch norm into the convolutions (the model as trained and shipped)
    parameters = int(sum(p.numel() for p in net.parameters()))
    engine = InferenceEngine(checkpoint or (net, input_cfg, model_cfg), device=device, half=half,
                             refine=offline_refine(refine), **dict(engine_options or {}))
    result, info = evaluate_reader(engine, reader, caps, batch_size, on_error, keep_frames, progress)
    return {
        'metrics': result.to_dict(include_frames=keep_frames),
        'evaluation': dict(info, source=source, root=None if root is None else str(root), split=split,
                           frames_selected=frames, device=str(engine.device), half=engine.half,
                           backend=engine.backend_name, precision=engine.precision,
                           caps=[float(c) for c in caps], resolution='original',
                           refine=engine.refine_settings.to_dict()),
        'model': {'checkpoint': checkpoint, 'architecture': model_cfg.architecture, 'parameters': parameters,
                  'input': [input_cfg.height, input_cfg.width]},
    }


def calibration_frames(spec, count=50):
    """
    Return a callable giving the int8 calibration frames ``[(image, radar, K)]`` of ``spec``.

    ``spec``: ``'source[:split[:frames]]'`` (e.g. ``astyx:train:0-49``; the source's default root); at most the
    first ``count`` frames are read, and only when the callable is called (a cached int8 file needs none).
    """
    parts = str(spec).split(':')
    if not parts[0] or len(parts) > 3:
        raise ConfigError(f"calibration must be 'source[:split[:frames]]', e.g. astyx:train:0-49, got {spec!r}")
    source, split, frames = (parts + [None, None])[:3]

    def frames_of_spec():
        reader = open_reader(source, split=split or None, frames=frames or None)
        out = []
        for sample in reader.iterate('raise'):
            out.append((sample.image, sample.radar, sample.intrinsics))
            if len(out) >= count:
                break
        return out
    return frames_of_spec


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--model', default='',
                        help='checkpoint (.safetensors / .json / stem); default: the bundled model trained on '
                             f'--dataset (weights/; for astyx the bundled Astyx model, {ASTYX_TRAINED}), else the '
                             f'bundled demo model ({SYNTHETIC_ONLY})')
    parser.add_argument('--dataset', required=True, help='data source: astyx, nuscenes, zju, synthetic')
    parser.add_argument('--root', default=None, help='data set folder (default: under $RCDEPTH_DATA)')
    parser.add_argument('--split', default=None, help="a split of the source (Astyx: 'train', 'val')")
    parser.add_argument('--frames', default=None, help='frame selection, e.g. 350-435 (Astyx: frame indices)')
    parser.add_argument('--options', default=None,
                        help='reader options as a YAML mapping or a YAML file, e.g. "{config: {num_drives: 2}}"')
    parser.add_argument('--out', default=None, help='folder for metrics.json and evaluation.json')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--half', default='auto', choices=('auto', 'on', 'off'), help='fp16 on CUDA')
    add_engine_arguments(parser, auto_precision='from --half')
    parser.add_argument('--batch-size', type=bounded_number(int, 1), default=1, help='frames per forward pass')
    parser.add_argument('--caps', default='50,70,80', help='depth caps in metres, comma separated')
    parser.add_argument('--per-frame', action='store_true', help='add per-frame metrics to the written files')
    parser.add_argument('--skip-bad-frames', action='store_true', help='skip (and list) unreadable frames')
    parser.add_argument('--progress', action='store_true', help='show a progress bar on stderr')
    add_refine_arguments(parser)


def offline_refine(refine):
    """Return ``refine`` with an unlimited time budget unless it gives one (a RefineSettings is kept as it is)."""
    if refine is None or isinstance(refine, RefineSettings):
        return refine
    mapping = {'mode': refine} if isinstance(refine, str) else dict(refine)
    if mapping.get('mode', 'none') == 'none':
        return RefineSettings.from_mapping(mapping)
    return RefineSettings.from_mapping({'budget_ms': math.inf, **mapping})


def add_engine_arguments(parser, auto_precision):
    """Register ``--backend``, ``--precision`` and ``--calibration`` (``rcdepth eval``, ``eval-bag``)."""
    parser.add_argument('--backend', default='torch', choices=BACKENDS,
                        help='torch, or onnxruntime (ONNX exported on first use, cached beside the checkpoint)')
    parser.add_argument('--precision', default='auto', choices=('auto',) + PRECISIONS,
                        help=f'auto ({auto_precision}), fp32, fp16, bf16 (autocast) or int8 (onnxruntime)')
    parser.add_argument('--calibration', default=None,
                        help='int8: calibration frames when the quantised file is not cached, e.g. astyx:train:0-49')


def engine_options_from_args(args):
    """Return the InferenceEngine keywords of ``--backend`` / ``--precision`` / ``--calibration``."""
    options = {'backend': getattr(args, 'backend', 'torch'), 'precision': getattr(args, 'precision', 'auto')}
    if getattr(args, 'calibration', None):
        options['calibration'] = calibration_frames(args.calibration)
    return options


def add_refine_arguments(parser):
    """Register ``--refine`` and ``--refine-options`` (``rcdepth eval``, ``training.evaluate``, ``eval-bag``)."""
    parser.add_argument('--refine', default='none', choices=('none', 'radar'),
                        help='radar: refine the depth with the radar returns (docs/refinement.md)')
    parser.add_argument('--refine-options', default=None,
                        help='RefineSettings fields as a YAML mapping or file, e.g. "{far_cutoff: 0.3}"; the time '
                             'budget is unlimited unless budget_ms is given, so metrics do not depend on the load')


def refine_from_args(args):
    """Return the RefineSettings of ``--refine`` / ``--refine-options`` (None when off)."""
    options = parse_options(getattr(args, 'refine_options', None), '--refine-options')
    if getattr(args, 'refine', 'none') == 'none':
        if options:
            raise ConfigError('--refine-options given without --refine radar')
        return None
    return offline_refine({**options, 'mode': 'radar'})


def parse_options(text, flag='--options'):
    """Return options from a YAML mapping string or a YAML file path (None: no options)."""
    if not text:
        return {}
    if Path(text).is_file():
        return load_yaml(text)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'{flag}: not valid YAML ({exc})') from None
    if not isinstance(value, dict):
        raise ConfigError(f'{flag}: expected a mapping such as "{{config: {{num_drives: 2}}}}", got {text!r}')
    return value


def parse_caps(text):
    """Return the caps tuple of ``'50,70,80'``."""
    try:
        return tuple(float(c) for c in str(text).split(',') if c.strip())
    except ValueError:
        raise ConfigError(f'--caps: expected numbers such as 50,70,80, got {text!r}') from None


def evaluate_args(args, model=None):
    """
    Run the evaluation the arguments describe; return the full record (see ``evaluate_model``).

    ``--out`` is checked before any frame is read: a folder that cannot be written fails at once, not after the work.
    """
    if args.out:
        check_output_folder(args.out)
    model = model or args.model or str(bundled_model_for(args.dataset))
    half = {'auto': 'auto', 'on': True, 'off': False}[args.half]
    return evaluate_model(model, args.dataset, root=args.root, split=args.split, frames=args.frames,
                          reader_options=parse_options(args.options), device=args.device, half=half,
                          caps=parse_caps(args.caps), batch_size=args.batch_size,
                          on_error='skip' if args.skip_bad_frames else 'raise', keep_frames=args.per_frame,
                          progress=args.progress, refine=refine_from_args(args),
                          engine_options=engine_options_from_args(args))


def write_record(record, out):
    """Write ``metrics.json`` and ``evaluation.json`` into ``out``; return the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'metrics.json').write_text(json.dumps(record['metrics'], indent=2, allow_nan=False) + '\n')
    (out / 'evaluation.json').write_text(json.dumps(record, indent=2, allow_nan=False) + '\n')
    return out


def report(record, out):
    """Print the metrics JSON of ``record`` (without the per-frame list) and write the files to ``out`` if given."""
    metrics = dict(record['metrics'])
    metrics.pop('per_frame', None)
    print(json.dumps(metrics, indent=2, allow_nan=False))
    if out:
        write_record(record, out)
