"""
Soak rcdepth_node: many full-size frames over real ROS 2 transport, bad messages mixed in; memory and lost frames.

Run from the repository root (not part of ``make test``; about 17 minutes for the default 10,000 frames at 10 Hz):
``.venv/bin/python benchmarks/bench_soak.py [--frames 10000] [--offer-hz 20] [--bad-every 100]``.

One ``rcdepth_node`` process (the tiny test model, so the run is about the node, not the network; messages full
size: 448x800 rgb8 images, their CameraInfo, 60-return radar PointCloud2s, reliable QoS, the shared-memory Fast DDS
profile) is fed open loop at ``--offer-hz`` by this process. One frame in ``--bad-every`` is bad, the kinds in turn
(``BAD_KINDS``): an image in a non-colour encoding, an image whose data is cut short, a camera_info with K = 0, an
image of another size than its camera_info, a radar sweep in an unknown frame, a sweep with NaN returns. The first
four must give no depth (each counted under its reason), the last two must still give depth.

Written to benchmarks/results/bench_soak.json: the node's RSS every ``--rss-every`` frames and the slope of a
least-squares line over the frames after ``--warmup-frames`` (MB per 1000 frames); every frame accounted for:
depth received + keep-latest drops + frames refused for a counted reason + lost, where lost (any other way a frame
can vanish: transport, synchroniser, worker) should be 0; the node's counters as its diagnostics report them; the
load average before, during (every 1000 frames) and after. Memory and counts do not depend on the machine's load;
the offered rate and the keep-latest drops do.
"""

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

from bench_node import Client, rss_mb, start_node, stop_node, TINY
from benchlib import command_line, load_average, LoadRecord, machine_record, RESULTS, ROOT, timestamp, write_results
import numpy as np

from rcdepth_ros.ros_env import configure_ros_environment

# The made-up frames come from the tests' message factory (test/support).
sys.path.insert(0, str(ROOT / 'test'))
RESULT = RESULTS / 'bench_soak.json'
WIDTH, HEIGHT = 800, 448
# kind -> (depth expected?, the counter the node counts it under)
BAD_KINDS = {'image_encoding': (False, 'bad_image'), 'image_truncated': (False, 'bad_image'),
             'camera_info_k0': (False, 'no_camera_info'), 'image_size': (False, 'image_size_mismatch'),
             'radar_unknown_frame': (True, 'radar_unknown_frame'), 'radar_nan': (True, 'radar_nonfinite_points')}


def make_tiny_checkpoint(folder):
    """Return the tiny model's checkpoint written to ``folder`` (random weights, seed 0)."""
    from rcdepth_ros.models import build_model, load_model_config, save_checkpoint
    import torch
    torch.manual_seed(0)
    input_cfg, model_cfg = load_model_config(TINY)
    return save_checkpoint(Path(folder) / 'tiny', build_model(model_cfg, input_cfg).eval(), input_cfg, model_cfg)


def restamp(messages, stamp):
    """Set the header stamp of every message of ``messages`` to ``stamp``; return them."""
    sec, nanosec = divmod(stamp, 1_000_000_000)
    for msg in messages:
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return messages


def bad_messages(client, kind, stamp):
    """Return (camera_info, radar, image) of one bad frame of ``kind``."""
    from support.frame_messages import FrameMessageFactory
    factory = client.factory
    info, radar, image = factory.camera_info(stamp), factory.radar(stamp), factory.image(stamp)
    if kind == 'image_encoding':
        image = factory.image(stamp, encoding='32FC1')
    elif kind == 'image_truncated':
        image.data = bytes(image.data)[:len(image.data) // 2]
    elif kind == 'camera_info_k0':
        info.k = [0.0] * 9
    elif kind == 'image_size':
        image = FrameMessageFactory(factory.types, width=WIDTH // 2, height=HEIGHT // 2).image(stamp)
    elif kind == 'radar_unknown_frame':
        radar = factory.radar(stamp, frame_id='sonar')
    elif kind == 'radar_nan':
        points = factory.radar_camera(stamp)
        points.xyz[::3] = np.nan
        radar = factory.radar(stamp, points=points)
    return info, radar, image


def soak(client, pid, frames, offer_hz, bad_every, rss_every, warmup):
    """Offer ``frames`` frames open loop; return the record (see the module docstring)."""
    stamp0 = 1_700_000_000 * 10 ** 9
    period_ns = int(1e9 / offer_hz)
    kinds = list(BAD_KINDS)
    # Built once and restamped, as the good frames are: building a 448x800 frame takes the client tens of
    # milliseconds of the CPU it shares with the node, which would make the node drop the frames around it.
    bad_sets = {kind: bad_messages(client, kind, stamp0) for kind in kinds}
    bad = {}                                     # stamp -> kind
    rss, loads = [], []
    start = time.monotonic()
    for i in range(frames):
        stamp = stamp0 + i * period_ns
        if bad_every and i % bad_every == bad_every // 2:
            kind = kinds[(i // bad_every) % len(kinds)]
            bad[stamp] = kind
            info, radar, image = restamp(bad_sets[kind], stamp)
        else:
            info, radar, image = client.message_set(stamp)
        client.info.publish(info)
        client.radar.publish(radar)
        client.image.publish(image)
        if i % rss_every == 0 or i == frames - 1:
            rss.append((i, rss_mb(pid)))
        if i % 1000 == 0:
            loads.append((i, load_average()))
        client.spin(max(start + (i + 1) / offer_hz - time.monotonic(), 0.0))
    offered_s = time.monotonic() - start
    # Drain: keep-latest never drops the newest frame, so the last good one's depth ends the run; then one more
    # diagnostics period brings the final counters.
    last_good = max(stamp0 + i * period_ns for i in range(frames) if stamp0 + i * period_ns not in bad)
    client.wait(lambda: last_good in client.received, 60)
    client.spin(3.0)
    diag = dict(client.diagnostics)
    counters = {k: float(v) for k, v in diag.items() if k.startswith(('frames.', 'drops.', 'errors.'))}
    got = set(client.received)
    good = [stamp0 + i * period_ns for i in range(frames) if stamp0 + i * period_ns not in bad]
    refused = sum(counters.get(f'drops.{reason}', 0)
                  for reason in ('bad_image', 'no_camera_info', 'image_size_mismatch'))
    keep_latest = counters.get('drops.keep_latest', 0)
    lost = frames - len(got) - keep_latest - refused
    steady = [(i, r) for i, r in rss if i >= warmup]
    slope = float(np.polyfit([i for i, _ in steady], [r for _, r in steady], 1)[0] * 1000) if len(steady) > 2 \
        else None
    by_kind = {}
    for stamp, kind in bad.items():
        entry = by_kind.setdefault(kind, {'sent': 0, 'with_depth': 0, 'depth_expected': BAD_KINDS[kind][0],
                                          'counted_as': BAD_KINDS[kind][1]})
        entry['sent'] += 1
        entry['with_depth'] += stamp in got
    return {
        'frames': frames, 'offered_hz': offer_hz, 'offered_seconds': offered_s, 'bad_every': bad_every,
        'images_received_by_node': counters.get('frames.images'), 'depth_received': len(got),
        'good_frames': len(good),
        'good_frames_without_depth': sum(1 for s in good if s not in got),
        'keep_latest_drops': keep_latest, 'refused_for_a_counted_reason': refused,
        'lost_other_than_keep_latest': lost,
        'bad_frames': by_kind,
        'node_counters': counters,
        'rss_mb_first': rss[0][1], 'rss_mb_after_warmup': steady[0][1] if steady else None,
        'rss_mb_end': rss[-1][1], 'rss_mb_max': max(r for _, r in rss),
        'rss_slope_mb_per_1000_frames': slope, 'rss_warmup_frames': warmup,
        'rss_samples': [[i, round(r, 1)] for i, r in rss], 'load_average_every_1000_frames': loads,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=10000, help='frames offered')
    parser.add_argument('--offer-hz', type=float, default=10.0, help='input rate (a camera-like 10 Hz)')
    parser.add_argument('--bad-every', type=int, default=100, help='one bad frame in this many (0: none)')
    parser.add_argument('--rss-every', type=int, default=250, help='frames between two RSS samples')
    parser.add_argument('--warmup-frames', type=int, default=1000, help='frames before the RSS slope starts')
    parser.add_argument('--out', default=str(RESULT))
    args = parser.parse_args(argv)
    env = configure_ros_environment(dict(os.environ))
    configure_ros_environment()
    from rcdepth_ros.nodes.runtime import init_rclpy
    namespace = '/bench_soak'
    with tempfile.TemporaryDirectory() as folder, LoadRecord() as load:
        checkpoint = make_tiny_checkpoint(folder)
        log = Path(folder) / 'node.log'
        process = start_node(checkpoint, namespace, log, env)
        rclpy = init_rclpy(['bench_soak'])
        client = Client(rclpy, namespace, WIDTH, HEIGHT)
        try:
            if not client.ready():
                raise RuntimeError('node did not come up:\n' + log.read_text()[-2000:])
            record = soak(client, process.pid, args.frames, args.offer_hz, args.bad_every, args.rss_every,
                          args.warmup_frames)
        finally:
            client.close()
            rclpy.try_shutdown()
            record_status = stop_node(process)
        warnings = [line for line in log.read_text(errors='replace').splitlines() if '[WARN]' in line]
    record.update(node_exit_status=record_status, node_warnings=len(warnings), node_warning_examples=warnings[:8],
                  image=f'{HEIGHT}x{WIDTH} (HxW) rgb8, 60 radar returns, reliable QoS depth 10, tiny model',
                  date=timestamp(),
                  machine=machine_record(command=command_line('bench_soak.py', argv), **load.as_dict()))
    shown = {k: v for k, v in record.items() if k not in ('rss_samples', 'node_counters', 'node_warning_examples')}
    print(shown, flush=True)
    write_results(args.out, record)
    return record


if __name__ == '__main__':
    main()
