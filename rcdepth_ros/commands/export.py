"""
``rcdepth export``: write a checkpoint as ONNX and / or TorchScript, and check each file against torch.

The check runs the exported file (onnxruntime on the CPU; ``torch.jit.load``) and the torch model on the same
example input and fails (exit status 2) when the depth differs by more than ``--tolerance`` metres. Each step says
on stderr what it starts and how long it took (an ONNX export and its check take tens of seconds on a CPU).
"""

import sys
import time

from rcdepth_ros.config import bounded_number
from rcdepth_ros.errors import ExportError
from rcdepth_ros.models.checkpoint import load_checkpoint
from rcdepth_ros.models.export import check_onnx, check_torchscript, export_onnx, export_torchscript, parse_size
from rcdepth_ros.paths import check_output_file

HELP = 'export a checkpoint to ONNX and TorchScript, checked against torch'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--model', required=True, help='checkpoint (.safetensors with its .json beside it)')
    parser.add_argument('--onnx', default=None, help='output ONNX file')
    parser.add_argument('--torchscript', default=None, help='output TorchScript file')
    parser.add_argument('--size', default=None, help='input size HxW (default: the checkpoint input size)')
    parser.add_argument('--opset', type=bounded_number(int, 7), default=17, help='ONNX opset')
    parser.add_argument('--tolerance', type=bounded_number(float, 0.0), default=1e-3,
                        help='largest accepted depth difference, metres')


def step(what, work):
    """Say on stderr that ``what`` starts, do ``work()``, say how long it took; return its result."""
    print(f'{what} ...', file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = work()
    print(f'  done in {time.perf_counter() - start:.1f} s', file=sys.stderr, flush=True)
    return result


def run(args):
    """Export and check; return 0."""
    if not args.onnx and not args.torchscript:
        raise ExportError('give --onnx OUT.onnx and / or --torchscript OUT.pt')
    for option, path in (('--onnx', args.onnx), ('--torchscript', args.torchscript)):
        if path:
            check_output_file(path, option)       # before the export: a bad path must not cost the work
    model, input_cfg, _, _ = step('loading the checkpoint', lambda: load_checkpoint(args.model))
    height, width = parse_size(args.size) if args.size else (input_cfg.height, input_cfg.width)
    if args.onnx:
        path = step(f'exporting ONNX (opset {args.opset}, input {height}x{width} (HxW))',
                    lambda: export_onnx(model, args.onnx, height, width, args.opset))
        diffs = step('checking the ONNX file with onnxruntime against torch',
                     lambda: check_onnx(model, path, height, width, tolerance=args.tolerance))
        print(f'{path}: ONNX opset {args.opset}, input {height}x{width} (HxW), max |onnxruntime - torch|: '
              + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    if args.torchscript:
        path = step(f'exporting TorchScript (input {height}x{width} (HxW))',
                    lambda: export_torchscript(model, args.torchscript, height, width))
        diffs = step('checking the TorchScript file against torch',
                     lambda: check_torchscript(model, path, height, width, tolerance=args.tolerance))
        print(f'{path}: TorchScript, input {height}x{width} (HxW), max |torchscript - torch|: '
              + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    return 0
