"""
``rcdepth eval-bag BAG --model CKPT --out DIR``: the node's pipeline run offline on a bag, no ROS transport.

The work is ``rcdepth_ros.evaluation.bags.evaluate_bag`` (the same matching, processing and scoring as the node and
``rcdepth_eval_node``). ``DIR/metrics.json`` gets the metrics JSON of ``evaluation.metrics`` with ``per_frame`` and an
``evaluation`` section (frames matched, evaluated, skipped per reason; with ``--refine radar`` the refinement's
outcomes, returns dropped and time); stdout gets the metrics JSON without the per-frame list.
"""

import json
from pathlib import Path

from rcdepth_ros.core.inference.bundled_model import resolve_model_path, SYNTHETIC_ONLY
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.runtime.pipeline import PipelineSettings
from rcdepth_ros.evaluation.bags import evaluate_bag
from rcdepth_ros.evaluation.datasets import (add_engine_arguments, add_refine_arguments, engine_options_from_args,
                                             parse_caps, refine_from_args)
from rcdepth_ros.paths import check_output_folder

HELP = 'evaluate a model on a rosbag2 file offline, through the core'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('bag', help='rosbag2 directory written by rcdepth make-bag (or any bag in that layout)')
    parser.add_argument('--model', default='', help=f'checkpoint (default: the bundled demo model, {SYNTHETIC_ONLY})')
    parser.add_argument('--out', default=None, help='folder for metrics.json')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    add_engine_arguments(parser, auto_precision='fp16 on CUDA')
    parser.add_argument('--extrinsics', default='static', choices=('static', 'tf'),
                        help="static: the bag's /tf_static as fixed transforms; tf: the bag's TF, motion compensated")
    parser.add_argument('--slop', type=float, default=0.05, help='synchroniser slop, seconds (as the node)')
    parser.add_argument('--queue-size', type=int, default=10, help='synchroniser queue size (as the node)')
    parser.add_argument('--radar-window', type=float, default=0.1, help='radar accumulation window, seconds')
    parser.add_argument('--radar-max-sweeps', type=int, default=1, help='sweeps per radar per frame')
    parser.add_argument('--match-tolerance', type=float, default=0.05, help='lidar-to-image stamp tolerance, s')
    parser.add_argument('--caps', default='50,70,80', help='depth caps in metres, comma separated')
    add_refine_arguments(parser)


def run(args):
    """Evaluate the bag, print the metrics JSON, write DIR/metrics.json; return 0."""
    if args.out:
        check_output_folder(args.out)           # before the work: a bad --out must not throw the results away
    engine = InferenceEngine(resolve_model_path(args.model), device=args.device, refine=refine_from_args(args),
                             **engine_options_from_args(args))
    settings = PipelineSettings(args.queue_size, args.slop, args.radar_window, args.radar_max_sweeps)
    result, info = evaluate_bag(args.bag, engine, settings, args.extrinsics, parse_caps(args.caps),
                                args.match_tolerance)
    report = result.to_dict(include_frames=True)
    report['evaluation'] = info
    print(json.dumps(result.to_dict(), indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'metrics.json').write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
    return 0
