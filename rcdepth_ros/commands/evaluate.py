"""
``rcdepth eval``: evaluate a checkpoint on frames of a data set and print the metrics JSON.

``rcdepth eval --dataset astyx --root DIR --frames 350-435 [--model CKPT] --out DIR`` runs
``rcdepth_ros.core.evaluation.evaluate_model``: the inference engine on the original images, the protocol of
method.md section 4 (per image, then averaged; MAE / RMSE in mm at caps 50, 70, 80 m). stdout gets exactly the
metrics JSON (``{"frames": N, "caps": {...}}``); ``--out DIR`` also writes it to ``DIR/metrics.json`` and the full
record (data, frames, skipped frames, timing, model) to ``DIR/evaluation.json``.
"""

import json
from pathlib import Path

from rcdepth_ros.config import load_yaml
from rcdepth_ros.errors import ConfigError
import yaml

HELP = 'evaluate a model on a data set and print the metrics JSON'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--model', default='', help='checkpoint (.safetensors / .json / stem); default: the bundled '
                                                     'model trained on --dataset (weights/), else the demo model')
    parser.add_argument('--dataset', required=True, help='data source: astyx, nuscenes, zju, synthetic')
    parser.add_argument('--root', default=None, help='data set folder (default: under $RCDEPTH_DATA)')
    parser.add_argument('--split', default=None, help="a split of the source (Astyx: 'train', 'val')")
    parser.add_argument('--frames', default=None, help='frame selection, e.g. 350-435 (Astyx: frame indices)')
    parser.add_argument('--options', default=None,
                        help='reader options as a YAML mapping or a YAML file, e.g. "{config: {num_drives: 2}}"')
    parser.add_argument('--out', default=None, help='folder for metrics.json and evaluation.json')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--half', default='auto', choices=('auto', 'on', 'off'), help='fp16 on CUDA')
    parser.add_argument('--batch-size', type=int, default=1, help='frames per forward pass')
    parser.add_argument('--caps', default='50,70,80', help='depth caps in metres, comma separated')
    parser.add_argument('--per-frame', action='store_true', help='add per-frame metrics to the written files')
    parser.add_argument('--skip-bad-frames', action='store_true', help='skip (and list) unreadable frames')
    parser.add_argument('--progress', action='store_true', help='show a progress bar on stderr')


def parse_options(text):
    """Return reader options from a YAML mapping string or a YAML file path (None: no options)."""
    if not text:
        return {}
    if Path(text).is_file():
        return load_yaml(text)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'--options: not valid YAML ({exc})') from None
    if not isinstance(value, dict):
        raise ConfigError(f'--options: expected a mapping such as "{{config: {{num_drives: 2}}}}", got {text!r}')
    return value


def parse_caps(text):
    """Return the caps tuple of ``'50,70,80'``."""
    try:
        return tuple(float(c) for c in str(text).split(',') if c.strip())
    except ValueError:
        raise ConfigError(f'--caps: expected numbers such as 50,70,80, got {text!r}') from None


def evaluate_args(args, model=None):
    """Run the evaluation the arguments describe; return the full record (see ``evaluate_model``)."""
    from rcdepth_ros.core.bundled_model import bundled_model_for
    from rcdepth_ros.core.evaluation import evaluate_model
    model = model or args.model or str(bundled_model_for(args.dataset))
    half = {'auto': 'auto', 'on': True, 'off': False}[args.half]
    return evaluate_model(model, args.dataset, root=args.root, split=args.split, frames=args.frames,
                          reader_options=parse_options(args.options), device=args.device, half=half,
                          caps=parse_caps(args.caps), batch_size=args.batch_size,
                          on_error='skip' if args.skip_bad_frames else 'raise', keep_frames=args.per_frame,
                          progress=args.progress)


def write_record(record, out):
    """Write ``metrics.json`` and ``evaluation.json`` into ``out``; return the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'metrics.json').write_text(json.dumps(record['metrics'], indent=2, allow_nan=False) + '\n')
    (out / 'evaluation.json').write_text(json.dumps(record, indent=2, allow_nan=False) + '\n')
    return out


def run(args):
    """Evaluate, print the metrics JSON, write the files; return 0."""
    report(evaluate_args(args), args.out)
    return 0


def report(record, out):
    """Print the metrics JSON of ``record`` (without the per-frame list) and write the files to ``out`` if given."""
    metrics = dict(record['metrics'])
    metrics.pop('per_frame', None)
    print(json.dumps(metrics, indent=2, allow_nan=False))
    if out:
        write_record(record, out)
