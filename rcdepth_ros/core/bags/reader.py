"""
Read rosbag2 bags (MCAP or sqlite3, a bag directory or a bare ``.mcap`` / ``.db3`` file) with ``rosbags``.

``read_bag`` yields raw CDR bytes, which a player publishes as they are (``publisher.publish(raw)`` in rclpy) or
turns into rclpy messages with ``rclpy.serialization.deserialize_message``; ``read_bag_messages`` deserialises
them with rosbags (the types come from the bag's own message definitions, checked against their RIHS01 hashes).
``bag_info`` gives what ``ros2 bag info`` shows plus the offered QoS of each topic, which a player needs to
republish ``/tf_static`` latched.
"""

import collections
import dataclasses
import json
from pathlib import Path
import typing

from rcdepth_ros.errors import BagError
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import get_typestore, Stores
import yaml

BagMessage = collections.namedtuple('BagMessage', 'topic msgtype log_time_ns raw msg')
BagMessage.__doc__ = 'One message of a bag: topic, type, log time (ns), raw CDR bytes and the deserialised message.'


@dataclasses.dataclass
class TopicSummary:
    """One topic of a bag: type, message count, serialisation format and offered QoS profiles (plain dicts)."""

    msgtype: str
    count: int
    serialization_format: str
    offered_qos: typing.List[dict]


@dataclasses.dataclass
class BagInfo:
    """What a bag holds: storage, rosbag2 version, time span, topics and custom data."""

    path: Path
    storage: str
    version: typing.Optional[int]
    start_ns: int
    end_ns: int
    message_count: int
    topics: typing.Dict[str, TopicSummary]
    custom_data: typing.Dict[str, str]

    @property
    def duration_s(self):
        """Return the time between the first and the last message in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def layout_data(self):
        """Return the bag layout the package's writer stored (plain data), or None for other bags."""
        raw = self.custom_data.get('rcdepth.layout')
        return None if raw is None else json.loads(raw)

    def frame_ids(self):
        """Return the data-set frame ids the package's writer stored, or None for other bags."""
        raw = self.custom_data.get('rcdepth.frame_ids')
        return None if raw is None else [str(f) for f in json.loads(raw)]


def _bag_path(path):
    path = Path(path)
    if not path.exists():
        raise BagError(f'bag {path}: not found')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError(f'bag {path}: a directory without metadata.yaml is not a rosbag2 bag')
    return path


def _qos_dict(qos):
    return {'history': qos.history.name.lower(), 'depth': int(qos.depth),
            'reliability': qos.reliability.name.lower(), 'durability': qos.durability.name.lower(),
            'liveliness': qos.liveliness.name.lower()}


def bag_info(path):
    """Return the BagInfo of a bag; a missing or unreadable bag raises BagError naming it."""
    path = _bag_path(path)
    version, storage = None, {'.mcap': 'mcap', '.db3': 'sqlite3'}.get(path.suffix, '')
    if path.is_dir():
        try:
            metadata = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
            version, storage = int(metadata['version']), str(metadata['storage_identifier'])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise BagError(f'bag {path}: unreadable metadata.yaml ({exc})') from None
    try:
        with Reader(path) as reader:
            topics = {}
            for connection in reader.connections:
                ext = connection.ext
                summary = topics.setdefault(connection.topic, TopicSummary(
                    connection.msgtype, 0, getattr(ext, 'serialization_format', ''),
                    [_qos_dict(q) for q in getattr(ext, 'offered_qos_profiles', ())]))
                summary.count += connection.msgcount
            custom = dict(reader.storage.metadata.custom or {})
            count = reader.message_count
            start = reader.start_time if count else 0
            end = reader.end_time - 1 if count else 0
    except (ReaderError, OSError, KeyError, ValueError) as exc:
        raise BagError(f'bag {path}: cannot read ({exc})') from None
    return BagInfo(path, storage, version, start, end, count, topics, custom)


class _OpenBag:
    """An open AnyReader with the connections of the requested topics (all by default)."""

    def __init__(self, path, topics):
        self.path = _bag_path(path)
        self.errors = (AnyReaderError, ReaderError, OSError, KeyError, ValueError, AssertionError)
        try:
            self.reader = AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
            self.reader.open()
        except self.errors as exc:
            raise BagError(f'bag {self.path}: cannot open ({type(exc).__name__}: {exc})') from None
        present = sorted({c.topic for c in self.reader.connections})
        if topics is None:
            self.connections = list(self.reader.connections)
        else:
            topics = [str(t) for t in topics]
            missing = [t for t in topics if t not in present]
            if missing:
                self.reader.close()
                raise BagError(f'bag {self.path}: no topic {", ".join(missing)}; topics: {", ".join(present)}')
            self.connections = [c for c in self.reader.connections if c.topic in topics]

    def messages(self, start_ns, stop_ns):
        try:
            for connection, log_time, raw in self.reader.messages(self.connections, start_ns, stop_ns):
                yield connection, log_time, raw
        except self.errors as exc:
            raise BagError(f'bag {self.path}: cannot read messages ({type(exc).__name__}: {exc})') from None

    def deserialize(self, raw, msgtype, topic, log_time):
        try:
            return self.reader.deserialize(raw, msgtype)
        except self.errors as exc:
            raise BagError(f'bag {self.path}: {topic} message at {log_time} ns does not deserialise as {msgtype} '
                           f'({exc})') from None

    def close(self):
        self.reader.close()


def read_bag(path, topics=None, start_ns=None, stop_ns=None):
    """
    Yield ``(topic, msgtype, log_time_ns, raw_cdr_bytes)`` for every message of a bag, in log-time order.

    ``topics`` restricts to those topics (a topic the bag lacks raises BagError naming the topics present);
    ``start_ns`` / ``stop_ns`` bound the log time (start included, stop excluded). ``raw_cdr_bytes`` is ``bytes``.
    """
    bag = _OpenBag(path, topics)
    try:
        for connection, log_time, raw in bag.messages(start_ns, stop_ns):
            yield connection.topic, connection.msgtype, int(log_time), bytes(raw)
    finally:
        bag.close()


def read_bag_messages(path, topics=None, start_ns=None, stop_ns=None):
    """Yield a BagMessage (topic, msgtype, log_time_ns, raw, msg deserialised with rosbags) per message."""
    bag = _OpenBag(path, topics)
    try:
        for connection, log_time, raw in bag.messages(start_ns, stop_ns):
            raw = bytes(raw)
            msg = bag.deserialize(raw, connection.msgtype, connection.topic, log_time)
            yield BagMessage(connection.topic, connection.msgtype, int(log_time), raw, msg)
    finally:
        bag.close()
