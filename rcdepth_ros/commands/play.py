"""
``rcdepth play BAG``: publish a rosbag2 bag's raw messages with their original timing (``nodes.player``).

``--rate`` scales time, ``--loop`` restarts at the end, ``--clock`` publishes the bag time on ``/clock`` (run the
nodes with ``use_sim_time:=true``), ``--topics`` restricts what is played, ``--wait-for`` holds the start until
those topics have a subscriber. Anything after ``--ros-args`` goes to rclpy (remappings, node name). The command
stops by itself at the end of the bag (unless ``--loop``) or on Ctrl-C, and prints what it published.
"""

import argparse
import json
import time

HELP = 'publish a rosbag2 file with its original timing (needs rclpy)'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('bag', help='rosbag2 directory (or .mcap / .db3 file)')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1.0)')
    parser.add_argument('--loop', action='store_true', help='start again at the end of the bag')
    parser.add_argument('--clock', action='store_true', help='publish the bag time on /clock')
    parser.add_argument('--clock-hz', type=float, default=50.0, help='/clock rate between messages (default 50)')
    parser.add_argument('--topics', nargs='+', default=None, help='play only these topics')
    parser.add_argument('--wait-for', nargs='+', default=(), metavar='TOPIC',
                        help='wait until these topics have a subscriber before playing')
    parser.add_argument('--wait-timeout', type=float, default=30.0, help='seconds --wait-for waits at most')
    parser.add_argument('--delay', type=float, default=0.0, help='seconds to wait before playing')
    parser.add_argument('--json', action='store_true', help='print the summary as JSON')
    parser.add_argument('--ros-args', nargs=argparse.REMAINDER, default=[], dest='ros_args',
                        help='arguments for rclpy (remappings, parameters), as ros2 run passes them')


def run(args):
    """Play the bag; return 0 (2 when nothing could be published)."""
    # rclpy and the nodes only when the command runs (`rcdepth --help` needs no ROS)
    from rcdepth_ros.nodes.player import BagPlayer
    from rcdepth_ros.nodes.runtime import init_rclpy, StopFlag
    rclpy = init_rclpy(['rcdepth_play', '--ros-args'] + list(args.ros_args) if args.ros_args else None)
    stop = StopFlag().install()
    node = rclpy.create_node('rcdepth_player')
    try:
        player = BagPlayer(node, args.bag, args.rate, args.loop, args.clock, args.topics, args.clock_hz)
        player.stop = stop.event         # Ctrl-C / SIGTERM end the playback cleanly
        missing = player.wait_for_subscribers(list(args.wait_for), args.wait_timeout)
        if missing:
            node.get_logger().warning(f'no subscriber on {", ".join(missing)} after {args.wait_timeout} s; playing')
        if args.delay > 0:
            player.stop.wait(args.delay)
        start = time.monotonic()
        summary = player.play()
        node.get_logger().info(f'played {sum(summary.published.values())} messages in '
                               f'{time.monotonic() - start:.1f} s')
    finally:
        stop.restore()
        node.destroy_node()
        rclpy.try_shutdown()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        for topic, count in sorted(summary.published.items()):
            print(f'{topic}: {count} messages')
        for topic, reason in sorted(summary.skipped_topics.items()):
            print(f'{topic}: skipped ({reason})')
        for topic, count in sorted(summary.oversized.items()):
            print(f'{topic}: {count} messages larger than the shared-memory segment (may not have been received)')
        print(f'publish errors: {summary.publish_errors}; loops: {summary.loops}; bag {summary.bag_s:.2f} s played in '
              f'{summary.wall_s:.2f} s')
    return 0 if sum(summary.published.values()) else 2
