"""
Benchmark the ROS-free core: Image / PointCloud2 conversions and radar projection at the sizes the node sees.

Run from the repository root: ``.venv/bin/python benchmarks/bench_core.py [--runs N]``. Prints the median (and
p90 / min) over N runs (default 50, at least 30) after warm-up and writes benchmarks/results/bench_core.json.
Messages are rclpy's generated classes (as in the node); the rosbags flavour is timed for comparison.
"""

import argparse
import statistics
import time

from benchlib import command_line, machine_record, RESULTS, write_results
import numpy as np

from rcdepth_ros.ros_env import configure_ros_environment

RESULT = RESULTS / 'bench_core.json'
NUSCENES_K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def timed(fn, runs, warmup=3):
    """Return the per-run wall times of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def summary(times):
    """Return median / p90 / min in ms."""
    ordered = sorted(times)
    return {'median_ms': round(statistics.median(ordered), 4),
            'p90_ms': round(ordered[int(0.9 * (len(ordered) - 1))], 4),
            'min_ms': round(ordered[0], 4), 'runs': len(ordered)}


def radar_points(n, seed=0):
    """Return ``n`` camera-frame radar returns spread like a front radar's (1-100 m ahead, +-30 m wide)."""
    from rcdepth_ros.core.sensor_types import RadarPoints
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 100.0, n)
    xyz = np.stack([rng.uniform(-0.6, 0.6, n) * z, rng.uniform(-1.5, 2.0, n), z], axis=1)
    return RadarPoints(xyz, rng.normal(5, 10, n), rng.normal(0, 5, n), rng.normal(0, 5, (n, 2)), 'camera')


def image_cases(types, flavour):
    """Return {name: callable} building and decoding 900x1600 32FC1 and rgb8 images."""
    from rcdepth_ros.core.messages.images import depth_to_image_msg, image_to_numpy, image_to_rgb, numpy_to_image
    from rcdepth_ros.core.messages.msgtypes import make_header
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 80, (900, 1600)).astype(np.float32)
    rgb = rng.integers(0, 256, (900, 1600, 3), dtype=np.uint8)
    header = make_header(types, 1_700_000_000_000_000_000, 'camera')
    depth_msg = numpy_to_image(depth, '32FC1', header, types)
    rgb_msg = numpy_to_image(rgb, 'rgb8', header, types)
    assert np.array_equal(image_to_numpy(depth_msg), depth) and np.array_equal(image_to_rgb(rgb_msg), rgb)
    return {
        f'image_32FC1_900x1600_build_decode_{flavour}':
            lambda: image_to_numpy(numpy_to_image(depth, '32FC1', header, types)),
        f'image_32FC1_900x1600_build_{flavour}': lambda: numpy_to_image(depth, '32FC1', header, types),
        f'image_32FC1_900x1600_decode_copy_{flavour}': lambda: image_to_numpy(depth_msg),
        f'image_32FC1_900x1600_decode_view_{flavour}': lambda: image_to_numpy(depth_msg, copy=False),
        f'depth_to_image_msg_900x1600_{flavour}': lambda: depth_to_image_msg(depth, header, types),
        f'image_rgb8_900x1600_build_decode_{flavour}':
            lambda: image_to_numpy(numpy_to_image(rgb, 'rgb8', header, types)),
        f'image_to_rgb_rgb8_900x1600_{flavour}': lambda: image_to_rgb(rgb_msg),
    }


def cloud_cases(types, flavour):
    """Return {name: callable} for the PointCloud2 round trip of 10 000 radar returns."""
    from rcdepth_ros.core.messages.clouds import read_points
    from rcdepth_ros.core.messages.radar import pointcloud2_to_radar, radar_to_pointcloud2
    radar = radar_points(10_000)
    msg = radar_to_pointcloud2(radar, types=types)
    back = pointcloud2_to_radar(msg)
    assert np.array_equal(back.xyz, radar.xyz) and np.array_equal(back.rcs, radar.rcs)
    return {
        f'pointcloud2_radar_10000_round_trip_{flavour}': lambda: pointcloud2_to_radar(radar_to_pointcloud2(
            radar, types=types)),
        f'pointcloud2_radar_10000_build_{flavour}': lambda: radar_to_pointcloud2(radar, types=types),
        f'pointcloud2_radar_10000_parse_{flavour}': lambda: pointcloud2_to_radar(msg),
        f'pointcloud2_read_points_10000_{flavour}': lambda: read_points(msg),
    }


def geometry_cases():
    """Return {name: callable} for projection and radar image of 10 000 returns at two sizes."""
    from rcdepth_ros.core.geometry.projection import project_points
    from rcdepth_ros.core.geometry.radar_image import radar_image
    radar = radar_points(10_000)
    cases = {}
    for height, width in ((900, 1600), (448, 800)):
        K = NUSCENES_K.copy()
        K[:2] *= width / 1600.0
        hits = project_points(radar.xyz, K, width, height)
        assert len(hits) > 1000
        cases[f'project_points_10000_{height}x{width}'] = (lambda K=K, w=width, h=height:
                                                           project_points(radar.xyz, K, w, h))
        cases[f'radar_image_10000_{height}x{width}'] = (lambda K=K, w=width, h=height:
                                                        radar_image(radar, K, w, h))
        cases[f'radar_image_10000_{height}x{width}_vertical_0.5m'] = (
            lambda K=K, w=width, h=height: radar_image(radar, K, w, h, vertical_extension_m=0.5))
    return cases


def main(argv=None):
    """Run every case, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=50)
    args = parser.parse_args(argv)
    runs = max(args.runs, 30)
    configure_ros_environment()
    from rcdepth_ros.core.messages.msgtypes import ros_message_types, rosbags_message_types
    cases = {}
    for flavour, types in (('rclpy', ros_message_types()), ('rosbags', rosbags_message_types())):
        cases.update(image_cases(types, flavour))
        cases.update(cloud_cases(types, flavour))
    cases.update(geometry_cases())
    results = {}
    for name, fn in cases.items():
        results[name] = summary(timed(fn, runs))
        print(f'{name:58s} median {results[name]["median_ms"]:9.3f} ms   p90 {results[name]["p90_ms"]:9.3f} ms',
              flush=True)
    report = {'command': command_line('bench_core.py', argv), 'machine': machine_record(), 'results': results}
    write_results(RESULT, report)


if __name__ == '__main__':
    main()
