"""
Inference at sensor rate: the engine end to end per backend and precision, and the node's sustained rate.

Run from the repository root: ``.venv/bin/python benchmarks/bench_inference.py`` (CPU, several minutes; wants a
quiet machine) or ``--device cuda`` (``benchmarks/gpu_check.sh`` runs it on the GPU machine). The model is the
student with the bundled demo model's trained weights (``weights/``; trained weights keep activations realistic,
random ones drift into slow denormal floats) at ``--input`` (CPU 448x800, CUDA 896x1600), saved once as a checkpoint
under ``.cache/bench_inference/`` so its ONNX files are cached beside it like any checkpoint's. Frames: ``--image``
(900x1600) uint8 pictures with ``--returns`` (300) radar returns.

- engine phase: ``InferenceEngine.infer`` end to end (preprocessing, forward, restoring to 900x1600, the copy
  back), one ``--configs`` entry per engine (``backend:precision[:preprocess]``), the engines interleaved frame by
  frame so load from other processes hits them alike; ``--runs`` (>= 50) frames each after warm-up, medians and
  p90, the steps' medians, and the same with Grad-CAM saliency.
- node phase (CPU): ``rcdepth_node`` as a process over real ROS 2 transport (bench_node's client: rgb8 Image +
  CameraInfo + PointCloud2 offered at ``--offer-hz``), for ``--node-seconds``, without and with a subscriber on
  ``saliency/image``: depth images out per second. The node runs ``--node-config``.
- pipeline phase: the node's two worker stages (decode + preprocess of frame n + 1 while the model runs frame n)
  in this process, fed at ``--offer-hz`` (on the GPU machine, where rclpy is missing, this is the node rate; it
  leaves out DDS transport, which the node phase includes).

Writes ``benchmarks/results/inference.json`` (``{"cpu": {...}, "cuda": {...} | null}``: ``engine_ms_p50`` of the
first config, ``node_fps``, ``node_fps_saliency``, the command and the load averages; the other device's entry is
kept) and the full tables to ``benchmarks/results/inference_<device>.json``.
"""

import argparse
import json
from pathlib import Path
import statistics
import sys
import threading
import time

from benchlib import command_line, load_average, LoadRecord, machine_record, RESULTS, ROOT, timestamp, write_results
import numpy as np

from rcdepth_ros.core.runtime.latest import LatestSlot
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints

CACHE = ROOT / '.cache' / 'bench_inference'
DEFAULTS = {'cpu': {'input': '448x800', 'configs': 'onnxruntime:int8,onnxruntime:fp32,torch:bf16,torch:fp32',
                    'node': 'onnxruntime:int8'},
            'cuda': {'input': '896x1600', 'configs': 'torch:fp16,torch:fp16:device:nographs,torch:fp32,torch:bf16',
                     'node': 'torch:fp16'}}


def parse_config(text):
    """Return engine keywords of 'backend:precision[:preprocess][:nographs]'."""
    parts = text.split(':')
    options = {'backend': parts[0], 'precision': parts[1] if len(parts) > 1 else 'auto'}
    for extra in parts[2:]:
        if extra == 'nographs':
            options['cuda_graphs'] = False
        elif extra:
            options['preprocess'] = extra
    return options


def student_checkpoint(height, width):
    """Return the bundled demo model saved at ``height`` x ``width`` input (once) under ``.cache/bench_inference``."""
    import dataclasses
    from rcdepth_ros.core.inference.bundled_model import resolve_model_path
    from rcdepth_ros.models import load_checkpoint, save_checkpoint
    from rcdepth_ros.models.checkpoint import checkpoint_paths
    path = CACHE / f'student_{height}x{width}'
    if not checkpoint_paths(path)[0].exists():
        model, input_cfg, model_cfg, meta = load_checkpoint(resolve_model_path(''))
        input_cfg = dataclasses.replace(input_cfg, height=height, width=width)
        save_checkpoint(path, model, input_cfg, model_cfg, training={'from': 'weights/ (bundled demo model)'})
    return checkpoint_paths(path)[0]


def make_frames(count, height, width, returns, seed=0):
    """Return ``count`` frames (uint8 RGB, camera-frame RadarPoints, CameraIntrinsics) of a road-like scene."""
    rng = np.random.default_rng(seed)
    K = np.array([[0.8 * width, 0.0, width / 2.0], [0.0, 0.8 * width, height / 2.0], [0.0, 0.0, 1.0]])
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    base = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2], axis=2)
    frames = []
    for _ in range(count):
        image = np.clip(base + rng.normal(0.0, 12.0, base.shape), 0, 255).astype(np.uint8)
        z = rng.uniform(3.0, 80.0, returns)
        xyz = np.column_stack([rng.uniform(-0.6, 0.6, returns) * z, rng.uniform(-0.05, 0.15, returns) * z, z])
        radar = RadarPoints(xyz, rcs=rng.uniform(-10, 30, returns), v_radial=rng.uniform(-10, 10, returns))
        frames.append((image, radar, CameraIntrinsics(K, width, height)))
    return frames


def summary(values):
    """Return median and p90 (ms) of a list."""
    ordered = sorted(values)
    return {'p50': round(statistics.median(ordered), 2),
            'p90': round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2), 'frames': len(ordered)}


def make_engines(checkpoint, configs, device, threads, calibration):
    """Return {config text: InferenceEngine}."""
    from rcdepth_ros.core.inference.engine import InferenceEngine
    engines = {}
    for text in configs:
        options = parse_config(text)
        if options['precision'] == 'int8' and calibration:
            options['calibration'] = calibration
        engines[text] = InferenceEngine(checkpoint, device=device, threads=threads, **options)
    return engines


def engine_phase(engines, frames, runs, saliency):
    """Time ``infer`` of every engine, interleaved frame by frame; return {config: figures}."""
    for engine in engines.values():              # warm-up: allocators, plans, CUDA graphs
        for image, radar, K in frames[:3]:
            engine.infer(image, radar, K, saliency=saliency)
    totals = {name: [] for name in engines}
    cpu = {name: [] for name in engines}
    steps = {name: {} for name in engines}
    for i in range(runs):
        image, radar, K = frames[i % len(frames)]
        for name, engine in engines.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            result = engine.infer(image, radar, K, saliency=saliency)
            totals[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
            for key, value in result.timings.items():
                steps[name].setdefault(key, []).append(value)
    out = {}
    for name, engine in engines.items():
        steps_p50 = {k: round(statistics.median(v), 2) for k, v in steps[name].items()}
        # CPU time of all the process's threads per frame: less inflated than wall time by other processes'
        # load (a quiet machine's wall time is about this over the threads that run in parallel)
        out[name] = dict(summary(totals[name]), cpu_ms_p50=round(statistics.median(cpu[name]), 2),
                         steps_p50=steps_p50, engine=engine.stats())
    return out


class PipelineRate:
    """
    The node's two worker stages in this process; ``run()`` returns depth frames out per second.

    A producer at ``offer_hz`` fills a keep-latest slot with rgb8 bytes; one thread decodes (one copy, as
    ``image_to_rgb`` does) and prepares, one runs the model and builds the published 32FC1 bytes.
    """

    def __init__(self, engine, frames, offer_hz, seconds, saliency):
        self.engine, self.frames, self.saliency = engine, frames, saliency
        self.offer_hz, self.seconds = offer_hz, seconds
        self.incoming, self.prepared = LatestSlot(), LatestSlot()
        self.done = []
        self.stop = threading.Event()

    def _produce(self):
        start = time.monotonic()
        for i in range(int(self.offer_hz * self.seconds)):
            image, radar, K = self.frames[i % len(self.frames)]
            self.incoming.put((image.tobytes(), image.shape, radar, K))
            time.sleep(max(start + (i + 1) / self.offer_hz - time.monotonic(), 0.0))
        self.stop.set()

    def _prepare(self):
        while not (self.stop.is_set() and not self.incoming._full):
            item = self.incoming.take(timeout=0.05)
            if item is not None:
                data, shape, radar, K = item
                rgb = np.frombuffer(data, np.uint8).reshape(shape).copy()
                self.prepared.put(self.engine.prepare_frame(rgb, radar, K))

    def _finish(self):
        while not (self.stop.is_set() and not self.prepared._full and not self._preparer.is_alive()):
            prepared = self.prepared.take(timeout=0.05)
            if prepared is not None:
                (result,) = self.engine.infer_prepared([prepared], saliency=self.saliency, uncertainty=False)
                np.where(np.isfinite(result.depth), result.depth, np.float32(np.nan)).astype(np.float32).tobytes()
                self.done.append(time.monotonic())

    def run(self):
        self._preparer = threading.Thread(target=self._prepare)
        finisher = threading.Thread(target=self._finish)
        producer = threading.Thread(target=self._produce)
        for thread in (self._preparer, finisher, producer):
            thread.start()
        for thread in (producer, self._preparer, finisher):
            thread.join()
        steady = self.done[3:]
        fps = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
        return {'offered_hz': self.offer_hz, 'seconds': self.seconds, 'published': len(self.done), 'fps': fps,
                'keep_latest_drops': self.incoming.dropped + self.prepared.dropped}


def node_rate(checkpoint, config, image_size, returns, offer_hz, seconds, saliency, threads):
    """Run rcdepth_node as a process on ``checkpoint`` and return the sustained rate (bench_node's rate phase)."""
    import os
    import tempfile
    import bench_node
    from rcdepth_ros.nodes.runtime import init_rclpy
    from rcdepth_ros.ros_env import configure_ros_environment
    env = configure_ros_environment(dict(os.environ))
    configure_ros_environment()
    height, width = image_size
    options = parse_config(config)
    extra = {'backend': options['backend'], 'precision': options['precision'], 'num_threads': threads,
             'saliency.enabled': True}
    if 'preprocess' in options:
        extra['preprocess'] = options['preprocess']
    namespace = f'/bench_inference_{int(saliency)}'
    with tempfile.TemporaryDirectory() as logs:
        process = bench_node.start_node(checkpoint, namespace, Path(logs) / 'node.log', env, **extra)
        rclpy = init_rclpy(['bench_inference'])
        client = bench_node.Client(rclpy, namespace, width, height, radar_points=returns, saliency=saliency)
        try:
            if not client.ready():
                raise RuntimeError('node did not come up:\n' + (Path(logs) / 'node.log').read_text()[-3000:])
            for i in range(5):                          # warm-up frames
                stamp = 1_600_000_000 * 10 ** 9 + i * 100_000_000
                client.send(stamp)
                client.wait(lambda: stamp in client.received, 120)
            result = bench_node.rate_phase(client, seconds, offer_hz)
            result['saliency_images'] = client.saliency_count
            return result
        finally:
            client.close()
            rclpy.try_shutdown()
            bench_node.stop_node(process)


def main(argv=None):
    """Run the phases; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--input', default=None, help='model input HxW (default: CPU 448x800, CUDA 896x1600)')
    parser.add_argument('--image', default='900x1600', help='camera frame HxW')
    parser.add_argument('--returns', type=int, default=300, help='radar returns per frame')
    parser.add_argument('--configs', default=None, help='comma-separated backend:precision[:preprocess][:nographs]')
    parser.add_argument('--node-config', default=None, help='the configuration the node / pipeline phases run')
    parser.add_argument('--runs', type=int, default=60, help='timed frames per engine (>= 50 for the figures)')
    parser.add_argument('--threads', type=int, default=2, help='torch and onnxruntime intra-op threads')
    parser.add_argument('--offer-hz', type=float, default=None, help='input rate (default: CPU 15, CUDA 60)')
    parser.add_argument('--node-seconds', type=float, default=60.0,
                        help='seconds per rate measurement (60: >= 50 frames even at 1 frame/s)')
    parser.add_argument('--calibration', default='astyx:train:0-49',
                        help="int8 calibration frames ('' for the benchmark frames)")
    parser.add_argument('--phases', default=None, help='comma-separated engine,saliency,node,pipeline '
                                                       '(default: CPU all four, CUDA without node)')
    parser.add_argument('--out', default=str(RESULTS / 'inference.json'))
    parser.add_argument('--details-out', default=None,
                        help='full tables (default: inference_<device>.json beside --out)')
    args = parser.parse_args(argv)
    import torch
    from rcdepth_ros.models.export import parse_size
    torch.set_num_threads(args.threads)
    device = args.device
    if device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available here')
    defaults = DEFAULTS[device]
    height, width = parse_size(args.input or defaults['input'])
    image_h, image_w = (int(v) for v in args.image.lower().split('x'))
    configs = (args.configs or defaults['configs']).split(',')
    node_config = args.node_config or defaults['node']
    offer_hz = args.offer_hz or (15.0 if device == 'cpu' else 60.0)
    phases = (args.phases or ('engine,saliency,node,pipeline' if device == 'cpu' else
                              'engine,saliency,pipeline')).split(',')
    checkpoint = student_checkpoint(height, width)
    frames = make_frames(8, image_h, image_w, args.returns)
    calibration = None
    if any(parse_config(c)['precision'] == 'int8' for c in configs + [node_config]):
        if args.calibration:
            from rcdepth_ros.evaluation.datasets import calibration_frames
            calibration = calibration_frames(args.calibration)
        else:
            calibration = lambda: make_frames(50, image_h, image_w, args.returns, seed=1)   # noqa: E731
    details = {'date': timestamp(), 'command': command_line('bench_inference.py', argv),
               'machine': machine_record(), 'device': device, 'model_input': f'{height}x{width}',
               'frame': f'{image_h}x{image_w}, {args.returns} radar returns', 'checkpoint': str(checkpoint),
               'calibration': args.calibration if calibration is not None else None}
    engines = make_engines(checkpoint, sorted(set(configs + [node_config]), key=(configs + [node_config]).index),
                           device, args.threads, calibration)
    if 'engine' in phases:
        with LoadRecord() as load:
            details['engine'] = engine_phase({c: engines[c] for c in configs}, frames, args.runs, False)
        details['engine']['load'] = load.as_dict()
        print('engine', json.dumps(details['engine'], indent=1), flush=True)
    if 'saliency' in phases:
        with LoadRecord() as load:
            details['saliency'] = engine_phase({node_config: engines[node_config]}, frames, args.runs, True)
        details['saliency']['load'] = load.as_dict()
        print('saliency', json.dumps(details['saliency'], indent=1), flush=True)
    for saliency in (False, True):
        key = 'with_saliency' if saliency else 'without_saliency'
        if 'pipeline' in phases:
            with LoadRecord() as load:
                rate = PipelineRate(engines[node_config], frames, offer_hz, args.node_seconds, saliency).run()
            details.setdefault('pipeline', {})[key] = dict(rate, config=node_config, **load.as_dict())
            print('pipeline', key, rate, flush=True)
        if 'node' in phases:
            with LoadRecord() as load:
                rate = node_rate(checkpoint, node_config, (image_h, image_w), args.returns, offer_hz,
                                 args.node_seconds, saliency, args.threads)
            details.setdefault('node', {})[key] = dict(rate, config=node_config, **load.as_dict())
            print('node', key, rate, flush=True)
    out = Path(args.out)
    write_results(args.details_out or out.with_name(f'inference_{device}.json'), details)
    summary_record = json.loads(out.read_text()) if out.is_file() else {'cpu': None, 'cuda': None}
    rates = details.get('node') or details.get('pipeline') or {}
    summary_record[device] = {
        'engine_ms_p50': details.get('engine', {}).get(configs[0], {}).get('p50'),
        'node_fps': rates.get('without_saliency', {}).get('sustained_fps', rates.get('without_saliency', {})
                                                          .get('fps')),
        'node_fps_saliency': rates.get('with_saliency', {}).get('sustained_fps', rates.get('with_saliency', {})
                                                                .get('fps')),
        'engine_config': configs[0], 'node_config': node_config,
        'node_rate_from': 'rcdepth_node over ROS 2 transport' if 'node' in details else
                          "the node's worker stages in process (no ROS 2 transport)",
        'model_input': f'{height}x{width}', 'frame': details['frame'], 'command': details['command'],
        'load_average_before': details.get('engine', {}).get('load', {}).get('load_average_before'),
        'load_average_after': load_average(), 'date': details['date']}
    write_results(out, summary_record)
    return 0


if __name__ == '__main__':
    sys.exit(main())
