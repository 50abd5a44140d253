"""
``rcdepth demo --out out/demo`` (``make demo``): a synthetic drive through the node over real ROS 2 transport.

1. A short procedural drive (``data.synthetic``) is written as a rosbag2 bag (``core.bags.write_bag``).
2. ``rcdepth_node`` (the bundled demo model) and ``rcdepth_eval_node`` start as processes of their own, with the bag's
   ``/tf_static`` as parameter extrinsics (``tf2_msgs`` cannot be installed here, so the player skips ``/tf``).
3. The bag is played into them (``nodes.player``, with ``/clock``; the nodes run on sim time) at a rate the node
   can keep, measured first from one inference with saliency on the bag's first frame.
4. The evaluator writes ``metrics.json`` when stopped; this process keeps a few frames' outputs and draws
   ``contact_sheet.png`` (image | projected radar | depth | saliency | error), writes ``summary.json`` and prints
   the summary: frames in and out, MAE / RMSE, node latency p50 / p95, frames per second.

Every process started here is stopped here (SIGINT, then SIGTERM, then SIGKILL to its process group), on success,
error and Ctrl-C alike. Logs are in ``OUT/logs``.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from rcdepth_ros.core.bags import bag_frames, bag_info, BagWriteOptions, read_bag_messages, write_bag
from rcdepth_ros.core.geometry.extrinsics import StaticExtrinsics
from rcdepth_ros.core.geometry.model_input import ImageTransform
from rcdepth_ros.core.inference.bundled_model import resolve_model_path, SYNTHETIC_ONLY
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.core.pictures.contact_sheet import SheetRow, write_sheet
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.errors import ConfigError, RcdepthError
from rcdepth_ros.evaluation.bags import bag_static_extrinsics
from rcdepth_ros.evaluation.frames import lidar_ground_truth
from rcdepth_ros.models.checkpoint import read_checkpoint_meta
from rcdepth_ros.paths import config_file
from rcdepth_ros.ros_env import configure_ros_environment
import yaml


HELP = 'synthetic drive -> bag -> node over ROS 2 -> live evaluation -> out/demo'
FRAME_PERIOD_S = 0.1           # the synthetic drives are sampled at 10 Hz
# The rate is measured in this process on a warm model; a freshly started node spends its first frames on one-time
# costs that measurement does not see (first publication on each topic, first allocations), and with a fast model
# two frames arriving during a slow first one made keep-latest drop one. Frames never come closer than this.
MIN_FRAME_SPACING_S = 0.3


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    parser.add_argument('--model', default='',
                        help=f'checkpoint (default: the bundled demo model in weights/, {SYNTHETIC_ONLY})')
    parser.add_argument('--frames', type=int, default=20, help='frames of the synthetic drive (default 20)')
    parser.add_argument('--width', type=int, default=800, help='camera width (default 800)')
    parser.add_argument('--height', type=int, default=450, help='camera height (default 450)')
    parser.add_argument('--seed', type=int, default=7, help='synthetic scene seed')
    parser.add_argument('--rate', type=float, default=None,
                        help='playback rate (default: measured so the node keeps up with every frame)')
    parser.add_argument('--sheet-frames', type=int, default=4, help='frames on the contact sheet (default 4)')
    parser.add_argument('--device', default='auto', help='device of the node: auto, cpu, cuda or cuda:N')
    parser.add_argument('--timeout', type=float, default=280.0, help='seconds before the demo gives up')


class ManagedProcess:
    """A child process in its own process group, logging to a file, always stopped by ``stop``."""

    def __init__(self, name, command, env, log_path):
        """Start ``command``."""
        self.name = name
        self.log_path = Path(log_path)
        self.log = open(self.log_path, 'w')
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def alive(self):
        """Return whether the process still runs."""
        return self.process.poll() is None

    def tail(self, lines=15):
        """Return the last lines of its log."""
        self.log.flush()
        try:
            return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return ''

    def stop(self, grace_s=20.0):
        """SIGINT, wait ``grace_s``; then SIGTERM, then SIGKILL to the whole group; return the exit status."""
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        return self.process.poll()


def node_command(module, params_files, overrides, remaps):
    """Return the command line of a node module with parameter files, ``-p`` overrides and ``-r`` remappings."""
    command = [sys.executable, '-m', module, '--ros-args']
    for path in params_files:
        command += ['--params-file', str(path)]
    for name, value in overrides.items():
        command += ['-p', f'{name}:={json.dumps(value)}']
    for source, target in remaps.items():
        command += ['-r', f'{source}:={target}']
    return command


def measure_frame_seconds(model_path, bag, device):
    """Return the seconds of one inference with saliency on the bag's first frame (second run, after warm-up)."""
    engine = InferenceEngine(model_path, device=device)
    frame = next(iter(bag_frames(bag)))
    rgb, radar, intrinsics = frame.rgb(), frame.radar_points(), frame.intrinsics()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        engine.infer(rgb, radar, intrinsics, saliency=True)
        times.append(time.perf_counter() - start)
    return times[-1]


def _float(values, key):
    try:
        return float(values[key])
    except (KeyError, TypeError, ValueError):
        return None


def run(args):
    """Run the demo; return 0 when every played frame was evaluated, 1 otherwise."""
    from rcdepth_ros.nodes.params import extrinsics_overrides     # imports rclpy: only when the demo runs
    started = time.monotonic()
    out = Path(args.out)
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    model = resolve_model_path(args.model)          # CheckpointError naming weights/ and `make demo-model`
    read_checkpoint_meta(model)                      # a missing or foreign checkpoint fails here, clearly
    if args.frames < 1 or args.sheet_frames < 1:
        raise ConfigError('demo: --frames and --sheet-frames must be >= 1')
    env = configure_ros_environment(dict(os.environ))
    configure_ros_environment()

    print(f'[1/5] synthetic drive: {args.frames} frames {args.height}x{args.width} (HxW) -> {out / "bag"}', flush=True)
    reader = SyntheticReader(SyntheticConfig(seed=args.seed, num_drives=1, frames_per_drive=args.frames,
                                             width=args.width, height=args.height))
    summary_bag = write_bag(reader, out / 'bag', BagWriteOptions(), force=True)
    camera, transforms = bag_static_extrinsics(summary_bag.path)
    extrinsics_file = out / 'extrinsics.yaml'
    extrinsics_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': extrinsics_overrides(transforms, camera)}}))

    if args.rate is None:
        print(f'[2/5] measuring the model ({model.name}) on the first frame ...', flush=True)
        seconds = measure_frame_seconds(model, summary_bag.path, args.device)
        rate = min(1.0, FRAME_PERIOD_S / max(2.0 * seconds, MIN_FRAME_SPACING_S))
        print(f'      {seconds * 1e3:.0f} ms per frame with saliency: playing at rate {rate:.3f} '
              f'({FRAME_PERIOD_S / rate:.2f} s between frames)', flush=True)
    else:
        rate = float(args.rate)
        print(f'[2/5] playing at the given rate {rate}', flush=True)

    processes = []
    stop_requested = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda *a: stop_requested.set())
    rclpy = None
    try:
        common = {'use_sim_time': True, 'extrinsics.source': 'parameters'}
        print('[3/5] starting rcdepth_node and rcdepth_eval_node ...', flush=True)
        processes.append(ManagedProcess('rcdepth_node', node_command(
            'rcdepth_ros.nodes.depth_node', [config_file('rcdepth.yaml'), extrinsics_file],
            dict(common, model_path=str(model), device=args.device, radar_topics=['/radar/points'],
                 **{'qos.input': 'reliable', 'qos.input_depth': 50}),
            {'image': '/camera/image', 'camera_info': '/camera/camera_info'}), env, out / 'logs' / 'node.log'))
        processes.append(ManagedProcess('rcdepth_eval_node', node_command(
            'rcdepth_ros.nodes.eval_node', [config_file('rcdepth.yaml'), extrinsics_file],
            dict(common, output=str((out / 'metrics.json').resolve())),
            {'lidar/points': '/lidar/points'}), env, out / 'logs' / 'eval.log'))
        result = _play_and_collect(args, out, summary_bag, rate, camera, transforms, processes, stop_requested,
                                   started)
        rclpy = result.pop('rclpy')
        result['model'] = model
        print('[5/5] stopping the nodes ...', flush=True)
        # The evaluator first: it writes metrics.json on SIGINT.
        result['exit_status'] = {p.name: p.stop() for p in reversed(processes)}
        return _report(args, out, result, model, rate, started, summary_bag)
    finally:
        for process in processes:
            if process.alive():
                process.stop(grace_s=5.0)
        signal.signal(signal.SIGINT, previous_handler)
        if rclpy is not None:
            rclpy.try_shutdown()


def _play_and_collect(args, out, bag_summary, rate, camera, transforms, processes, stop_requested, started):
    # rclpy and the nodes: imported when the demo reaches its ROS part (`rcdepth demo --help` needs no ROS).
    from rcdepth_ros.nodes.demo_listener import DemoListener
    from rcdepth_ros.nodes.player import BagPlayer
    from rcdepth_ros.nodes.runtime import init_rclpy
    from rclpy.executors import SingleThreadedExecutor
    stamps = _sheet_stamps(bag_summary.path, args.sheet_frames)
    rclpy = init_rclpy(['rcdepth_demo'])
    node = rclpy.create_node('rcdepth_demo')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    listener = DemoListener(node, stamps)
    player = BagPlayer(node, bag_summary.path, rate=rate, clock=True)

    def check(what, coming_up=False):
        for process in processes:
            if not process.alive():
                raise RcdepthError(f'demo: {process.name} exited while {what} (status {process.process.poll()}); '
                                   f'last lines of {process.log_path}:\n{process.tail()}')
            # A node that fails to configure stays up, unconfigured, for a lifecycle manager; the demo has none.
            if coming_up and 'configure failed' in process.tail():
                raise RcdepthError(f'demo: {process.name} could not be configured; last lines of '
                                   f'{process.log_path}:\n{process.tail()}')
        if stop_requested.is_set():
            raise RcdepthError('demo: interrupted (Ctrl-C); every process was stopped')
        if time.monotonic() - started > args.timeout:
            raise RcdepthError(f'demo: gave up after {args.timeout:.0f} s while {what}')

    inputs = ['/camera/image', '/camera/camera_info', '/radar/points', '/lidar/points']

    def outputs_reach_the_evaluator():
        # The node's own count of matched subscriptions (its diagnostics): the evaluator's and this listener's on
        # depth/image, the evaluator's on depth/camera_info. A depth image published before the node has matched
        # the evaluator is lost to it (volatile QoS); that the graph lists the subscription is not enough.
        seen = listener.diagnostics or {}
        return int(seen.get('subscribers.depth/image', 0)) >= 2 and \
            int(seen.get('subscribers.depth/camera_info', 0)) >= 1

    while player.wait_for_subscribers(inputs, 0.0) or not outputs_reach_the_evaluator():
        check('waiting for the nodes to come up', coming_up=True)
        executor.spin_once(timeout_sec=0.1)
    print(f'[4/5] playing {bag_summary.frames} frames ({bag_summary.duration_s:.1f} s of bag) at rate {rate:.3f} '
          f'...', flush=True)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault('summary', player.play()), daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            check('playing the bag')
            executor.spin_once(timeout_sec=0.05)
        images = player.published.get('/camera/image', 0)
        # Drain: wait for the last outputs (at most a few frame periods of silence).
        quiet_since = time.monotonic()
        seen = len(listener.depth_arrivals)
        while len(listener.depth_arrivals) < images and time.monotonic() - quiet_since < 10.0 + 3 * 0.1 / rate:
            check('waiting for the last depth images')
            executor.spin_once(timeout_sec=0.05)
            if len(listener.depth_arrivals) != seen:
                seen, quiet_since = len(listener.depth_arrivals), time.monotonic()
        # The node's diagnostics (latency percentiles) of the last frame come on its steady timer.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if listener.diagnostics is not None and _float(listener.diagnostics, 'frames.published') == seen:
                break
            executor.spin_once(timeout_sec=0.1)
    finally:
        player.stop.set()
        thread.join(5.0)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
    return {'rclpy': rclpy, 'listener': listener, 'playback': box.get('summary'), 'stamps': stamps,
            'camera': camera, 'transforms': transforms}


def _sheet_stamps(bag, count):
    info = bag_info(bag)
    layout = info.layout_data() or {}
    topic = layout.get('image_topic', '/camera/image')
    stamps = [stamp_to_ns(m.msg.header) for m in read_bag_messages(bag, topics=[topic])]
    if len(stamps) <= count:
        return stamps
    picks = [round(i * (len(stamps) - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [stamps[i] for i in sorted(set(picks))]


def _sheet_rows(bag, result):
    input_cfg = read_checkpoint_meta(result['model'])[0]
    listener = result['listener']
    extrinsics = StaticExtrinsics(result['transforms'], result['camera'])
    rows = []
    for frame in bag_frames(bag):
        if frame.stamp_ns not in result['stamps']:
            continue
        intrinsics = frame.intrinsics()
        gt = None
        if frame.lidar is not None:
            header = frame.lidar.msg.header
            T = extrinsics.lookup(frame.camera_frame, frame.stamp_ns, str(header.frame_id), stamp_to_ns(header))
            gt = lidar_ground_truth(frame.lidar.msg, T, intrinsics.K, intrinsics.width, intrinsics.height)
        kept = listener.kept
        transform = ImageTransform.fit_width(intrinsics.height, intrinsics.width, input_cfg.height, input_cfg.width,
                                             input_cfg.crop)
        rows.append(SheetRow(f'frame {frame.frame_id}', frame.rgb(), kept['radar'].get(frame.stamp_ns),
                             kept['depth'].get(frame.stamp_ns), kept['saliency'].get(frame.stamp_ns), gt,
                             transform))
    return rows


def _report(args, out, result, model, rate, started, bag_summary):
    listener, playback = result['listener'], result['playback']
    metrics_path = out / 'metrics.json'
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    sheet_path = out / 'contact_sheet.png'
    write_sheet(sheet_path, _sheet_rows(bag_summary.path, result))
    diag = listener.diagnostics or {}
    arrivals = [t for t, _ in listener.depth_arrivals]
    fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 and arrivals[-1] > arrivals[0] \
        else None
    cap = metrics['caps'].get('80') if metrics else None
    summary = {
        'model': str(model), 'device': diag.get('device'), 'input_size': diag.get('input_size'),
        'frames_in': playback.published.get('/camera/image', 0) if playback else 0,
        'frames_out': len(arrivals),
        'frames_evaluated': metrics['evaluation']['evaluated'] if metrics else 0,
        'dropped': {k[len('drops.'):]: int(v) for k, v in diag.items() if k.startswith('drops.') and v != '0'},
        'mae_mm_80m': cap['mae'] if cap else None, 'rmse_mm_80m': cap['rmse'] if cap else None,
        'latency_ms': {'end_to_end_p50': _float(diag, 'latency_ms.end_to_end.p50'),
                       'end_to_end_p95': _float(diag, 'latency_ms.end_to_end.p95'),
                       'processing_p50': _float(diag, 'latency_ms.processing.p50'),
                       'forward_p50': _float(diag, 'latency_ms.forward.p50')},
        'output_fps': fps, 'playback_rate': rate,
        'capacity_fps': 1000.0 / _float(diag, 'latency_ms.processing.p50')
        if _float(diag, 'latency_ms.processing.p50') else None,
        'wall_s': time.monotonic() - started,
        'exit_status': result['exit_status'],
        'files': {'metrics': str(metrics_path), 'contact_sheet': str(sheet_path), 'bag': str(bag_summary.path),
                  'logs': str(out / 'logs')},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(format_summary(summary), flush=True)
    complete = summary['frames_in'] > 0 and summary['frames_evaluated'] == summary['frames_in'] and \
        not any(result['exit_status'].values())
    return 0 if complete else 1


def format_summary(summary):
    """Return the printed summary of the demo."""
    def number(value, fmt='{:.0f}'):
        return 'n/a' if value is None else fmt.format(value)

    latency = summary['latency_ms']
    dropped = ', '.join(f'{k} {v}' for k, v in summary['dropped'].items()) or 'none'
    return '\n'.join([
        'rcdepth demo summary',
        f'  model            {summary["model"]} on {summary["device"]} (input {summary["input_size"]})',
        f'  frames           in {summary["frames_in"]}, out {summary["frames_out"]}, evaluated '
        f'{summary["frames_evaluated"]}; dropped: {dropped}',
        f'  depth @80 m      MAE {number(summary["mae_mm_80m"])} mm, RMSE {number(summary["rmse_mm_80m"])} mm',
        f'  node latency     end-to-end p50 {number(latency["end_to_end_p50"])} ms, p95 '
        f'{number(latency["end_to_end_p95"])} ms (model forward p50 {number(latency["forward_p50"])} ms)',
        f'  frames/second    {number(summary["output_fps"], "{:.2f}")} out at playback rate '
        f'{summary["playback_rate"]:.3f}; node capacity {number(summary["capacity_fps"], "{:.2f}")}',
        f'  files            {summary["files"]["metrics"]}, {summary["files"]["contact_sheet"]}',
        f'  wall time        {summary["wall_s"]:.0f} s',
    ])
