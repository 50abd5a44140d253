"""
A rosbag2 player for machines without ``ros2 bag play``: raw CDR bytes republished with their original timing.

Each topic gets a publisher of its recorded type, found by importing the ROS Python message module
(``sensor_msgs/msg/Image`` -> ``sensor_msgs.msg.Image``); a topic whose type cannot be imported (``tf2_msgs`` is not
installable from PyPI) is skipped with one warning and its messages counted. Messages are published as the bag's
bytes (``publisher.publish(raw)``, no deserialisation) at ``t0 + (log time - first log time) / rate`` of the wall
clock. ``/tf_static`` (or any topic recorded TRANSIENT_LOCAL) is republished latched. With ``clock`` the bag time
is published on ``/clock`` (before every message and at ``clock_hz`` in between), for nodes with
``use_sim_time``. Publish errors are caught and counted. The bag is read lazily (memory stays at one message);
playback ends at the end of the bag unless ``loop``, or when ``stop`` is set.

A message larger than the shared-memory segment of the Fast DDS profile in use (64 MiB in ``config/fastdds_shm.xml``;
an 8000x8000 rgb8 image is 183 MiB) is still published, but subscribers on this host may never get it and nothing
on their side says so; the player warns once per topic here, where it can be seen, and counts such messages.
"""

import dataclasses
import importlib
import threading
import time
import typing

from rcdepth_ros.core.bags.reader import bag_info, read_bag
from rcdepth_ros.errors import BagError
from rcdepth_ros.ros_env import describe_bytes, shm_segment_bytes


@dataclasses.dataclass
class PlaybackSummary:
    """What a playback did: messages published per topic, topics skipped, errors, loops, wall time, oversized."""

    published: typing.Dict[str, int]
    skipped_topics: typing.Dict[str, str]
    skipped_messages: int
    publish_errors: int
    loops: int
    wall_s: float
    bag_s: float
    oversized: typing.Dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self):
        """Return the summary as plain data."""
        return dataclasses.asdict(self)


def message_class(msgtype):
    """Return the rclpy message class of ``pkg/msg/Name``; raise ImportError naming what is missing."""
    parts = str(msgtype).split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise ImportError(f'{msgtype!r} is not a message type name (package/msg/Name)')
    module = importlib.import_module(f'{parts[0]}.msg')
    try:
        return getattr(module, parts[2])
    except AttributeError:
        raise ImportError(f'{parts[0]}.msg has no {parts[2]}') from None


def publisher_qos(offered):
    """Return the QoSProfile to republish a topic recorded with ``offered`` profiles (plain dicts of bag_info)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    latched = any(q.get('durability') == 'transient_local' for q in offered)
    best_effort = bool(offered) and all(q.get('reliability') == 'best_effort' for q in offered)
    depth = max([int(q.get('depth') or 0) for q in offered] + [1 if latched else 10])
    return QoSProfile(depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagPlayer:
    """Publish a bag on ``node`` (see the module docstring)."""

    def __init__(self, node, bag, rate=1.0, loop=False, clock=False, topics=None, clock_hz=50.0,
                 size_limit='profile'):
        """
        Open the bag's index and create one publisher per playable topic.

        ``size_limit``: messages larger than this many bytes are warned about and counted (``'profile'``: the
        shared-memory segment of the loaded Fast DDS profile; None: no limit).
        """
        if not rate > 0:
            raise BagError(f'play: rate must be > 0, got {rate}')
        self.node = node
        self.bag = bag
        self.rate = float(rate)
        self.loop = bool(loop)
        self.size_limit = shm_segment_bytes() if size_limit == 'profile' else size_limit
        self.oversized = {}
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else None
        self.info = bag_info(bag)
        wanted = list(self.info.topics) if not topics else list(topics)
        missing = [t for t in wanted if t not in self.info.topics]
        if missing:
            raise BagError(f'bag {bag}: no topic {", ".join(missing)}; topics: {", ".join(sorted(self.info.topics))}')
        self.publishers = {}
        self.skipped_topics = {}
        for topic in wanted:
            summary = self.info.topics[topic]
            try:
                kind = message_class(summary.msgtype)
            except ImportError as exc:
                self.skipped_topics[topic] = f'{summary.msgtype} not importable ({exc})'
                node.get_logger().warning(f'{topic}: type {summary.msgtype} cannot be imported here ({exc}); '
                                          f'its {summary.count} messages are skipped')
                continue
            self.publishers[topic] = node.create_publisher(kind, topic, publisher_qos(summary.offered_qos))
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock
            from rclpy.qos import QoSProfile
            self.clock_pub = node.create_publisher(Clock, '/clock', QoSProfile(depth=1))
        self.stop = threading.Event()
        self.published = dict.fromkeys(self.publishers, 0)
        self.skipped_messages = 0
        self.publish_errors = 0
        self.loops = 0
        self.bag_span_ns = 0

    def wait_for_subscribers(self, topics, timeout_s):
        """Wait until every topic in ``topics`` has a subscriber (or ``timeout_s``); return the ones without."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [t for t in topics if t in self.publishers and
                       self.publishers[t].get_subscription_count() == 0]
            if not waiting or time.monotonic() >= deadline or self.stop.is_set():
                return waiting
            time.sleep(0.05)

    def _publish_clock(self, bag_ns):
        if self.clock_pub is None:
            return
        from rosgraph_msgs.msg import Clock
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        try:
            self.clock_pub.publish(msg)
        except Exception:  # noqa: B902 - the clock must not stop the playback
            self.publish_errors += 1

    def _sleep_until(self, wall_target, bag_at):
        """Sleep until ``wall_target`` (monotonic), publishing /clock on the way; return False when stopped."""
        while True:
            remaining = wall_target - time.monotonic()
            if self.stop.is_set():
                return False
            if remaining <= 0:
                return True
            step = remaining if self.clock_period is None or self.clock_pub is None else \
                min(remaining, self.clock_period)
            self.stop.wait(step)
            if self.clock_pub is not None:
                self._publish_clock(bag_at(time.monotonic()))

    def play(self):
        """Publish the bag (looping if asked) until its end or ``stop``; return a PlaybackSummary."""
        start = time.monotonic()
        topics = list(self.publishers) + list(self.skipped_topics)
        while not self.stop.is_set():
            messages = read_bag(self.bag, topics=topics)
            try:
                self._play_once(messages)
            finally:
                messages.close()
            self.loops += 1
            if not self.loop:
                break
        return PlaybackSummary(dict(self.published), dict(self.skipped_topics), self.skipped_messages,
                               self.publish_errors, self.loops, time.monotonic() - start, self.bag_span_ns / 1e9,
                               dict(self.oversized))

    def _check_size(self, topic, raw):
        """Count (and warn once per topic about) a message larger than the shared-memory segment."""
        if self.size_limit is None or len(raw) <= self.size_limit:
            return
        self.oversized[topic] = self.oversized.get(topic, 0) + 1
        if self.oversized[topic] == 1:
            self.node.get_logger().warning(
                f'{topic}: a {describe_bytes(len(raw))} message is larger than the {describe_bytes(self.size_limit)} '
                f'shared-memory segment of the Fast DDS profile: subscribers on this host may never receive it, and '
                f'they cannot tell (make the images smaller, or raise segment_size in the profile of every process); '
                f'further ones on this topic are only counted')

    def _play_once(self, messages):
        wall0 = time.monotonic()
        first_ns = None

        def bag_at(now):
            return first_ns + int((now - wall0) * self.rate * 1e9)

        for topic, _, log_ns, raw in messages:
            if first_ns is None:
                first_ns = log_ns
            if not self._sleep_until(wall0 + (log_ns - first_ns) / 1e9 / self.rate, bag_at):
                return
            self.bag_span_ns = max(self.bag_span_ns, log_ns - first_ns)
            self._publish_clock(log_ns)
            publisher = self.publishers.get(topic)
            if publisher is None:
                self.skipped_messages += 1
                continue
            self._check_size(topic, raw)
            try:
                publisher.publish(raw)
                self.published[topic] += 1
            except Exception as exc:  # noqa: B902 - RCLError and the like: count, warn once, go on
                self.publish_errors += 1
                if self.publish_errors == 1:
                    self.node.get_logger().warning(f'{topic}: publish failed ({type(exc).__name__}: {exc}); '
                                                   f'further failures are only counted')
