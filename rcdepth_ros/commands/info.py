"""
``rcdepth info``: parameters per module, MACs at an input size, and forward latency of a model config or checkpoint.

MACs are counted with forward hooks (``rcdepth_ros.models.complexity``: conv, transposed conv, linear, batch norm).
Latency is the median of ``--runs`` forward passes (batch 1, after warm-up) on ``--device``, fp32 channels_last
(fp16 on CUDA), under ``torch.inference_mode``.
"""

import json

from rcdepth_ros.config import bounded_number
from rcdepth_ros.core.inference.engine import resolve_device
from rcdepth_ros.models.checkpoint import load_config_or_checkpoint
from rcdepth_ros.models.complexity import count_macs, count_parameters, measure_latency, median
from rcdepth_ros.models.export import example_inputs, parse_size
import torch

HELP = 'parameters per module, MACs and latency of a model config or checkpoint'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--model', required=True, help='model YAML (config/models/*.yaml) or checkpoint')
    parser.add_argument('--size', default=None, help='input size HxW (default: the config input size)')
    parser.add_argument('--runs', type=bounded_number(int, 0), default=10,
                        help='timed forward passes (0: no latency)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--depth', type=bounded_number(int, 1), default=1,
                        help='module name depth of the per-module table')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def describe_model(model, input_cfg, height, width, runs=10, device='auto', depth=1):
    """Return a dict: parameters and MACs per module, totals, and latency (ms, median) when ``runs`` > 0."""
    params = count_parameters(model, depth)
    image, radar = example_inputs(input_cfg, height, width)
    total_macs, macs = count_macs(model.eval().cpu().float(), image, radar, depth=depth)
    info = {'architecture': model.model_cfg.architecture, 'size': [height, width],
            'radar_channels': list(input_cfg.radar_channels), 'parameters': dict(params),
            'macs': dict(macs), 'total_macs': total_macs}
    if runs > 0:
        dev = resolve_device(device)
        dtype = torch.float16 if dev.type == 'cuda' else torch.float32
        net = model.to(dev, dtype).to(memory_format=torch.channels_last)
        image = image.to(dev, dtype).contiguous(memory_format=torch.channels_last)
        radar = radar.to(dev, dtype).contiguous(memory_format=torch.channels_last)
        sync = torch.cuda.synchronize if dev.type == 'cuda' else None

        def forward():
            with torch.inference_mode():
                net(image, radar)

        times = measure_latency(forward, runs=runs, warmup=2, synchronize=sync)
        info['latency_ms'] = median(times)
        info['latency_setup'] = {'device': str(dev), 'dtype': str(dtype).replace('torch.', ''), 'runs': runs,
                                 'threads': torch.get_num_threads(), 'memory_format': 'channels_last'}
    return info


def format_table(info):
    """Return the human-readable table of ``describe_model``'s dict."""
    height, width = info['size']
    lines = [f'architecture: {info["architecture"]}    input {height}x{width} (HxW)    radar channels: '
             f'{", ".join(info["radar_channels"])}',
             f'{"module":<28}{"parameters":>14}{"GMAC":>10}']
    for name, count in info['parameters'].items():
        if name == 'total':
            continue
        lines.append(f'{name:<28}{count:>14,}{info["macs"].get(name, 0) / 1e9:>10.3f}')
    lines.append(f'{"total":<28}{info["parameters"]["total"]:>14,}{info["total_macs"] / 1e9:>10.3f}')
    if 'latency_ms' in info:
        setup = info['latency_setup']
        lines.append(f'latency: {info["latency_ms"]:.1f} ms (median of {setup["runs"]}, batch 1, {setup["device"]}, '
                     f'{setup["dtype"]}, {setup["memory_format"]}, {setup["threads"]} threads)')
    return '\n'.join(lines)


def run(args):
    """Load the model, print its description; return 0."""
    model, input_cfg, _, _ = load_config_or_checkpoint(args.model)
    height, width = parse_size(args.size) if args.size else (input_cfg.height, input_cfg.width)
    info = describe_model(model, input_cfg, height, width, args.runs, args.device, args.depth)
    info['model'] = str(args.model)
    print(json.dumps(info, indent=2) if args.json else format_table(info))
    return 0
