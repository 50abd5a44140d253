"""
Write samples as a rosbag2 bag (MCAP by default) with ``rosbags``: ``write_bag(samples, out, options)``.

Log time = header stamp for every message; messages are written in time order (equal stamps: transforms, then
camera_info, radar, lidar, image, ground truth). ``/tf_static`` is written before anything else and again whenever
the extrinsics change, each time holding every static transform (a latched subscriber keeps only the last
message). The bag is built in ``OUT.partial/`` and renamed to ``OUT`` when complete, so ``OUT`` is either absent,
the previous bag, or the complete new one; a failure removes the partial bag.

The topic metadata carries serialisation format ``cdr`` and the offered QoS of each topic (``layout.offered_qos``;
``/tf_static`` TRANSIENT_LOCAL), in ``metadata.yaml`` and in the MCAP channels, which is where ``ros2 bag play``
reads them. The custom data holds the layout, the source and the data-set frame ids (``rcdepth.*`` keys).
"""

import dataclasses
import heapq
import json
import os
from pathlib import Path
import shutil
import typing

import numpy as np
from rcdepth_ros.core.bags.layout import BagLayout, offered_qos, TF_TYPE, TOPIC_RANK
from rcdepth_ros.core.bags.messages import body_role, describe, ego_transforms, sample_messages, static_transforms
from rcdepth_ros.core.bags.tf import tf_message, transform_stamped
from rcdepth_ros.core.messages.msgtypes import rosbags_message_types
from rcdepth_ros.errors import BagError

STORAGES = ('mcap', 'sqlite3')
BAG_VERSIONS = (8, 9)
COMPRESSED_FORMATS = ('jpeg', 'png')
# Files a rosbag2 directory holds; --force replaces a directory only when it holds nothing else.
_BAG_SUFFIXES = ('.mcap', '.db3', '.db3-shm', '.db3-wal', '.yaml', '.zstd')


@dataclasses.dataclass
class BagWriteOptions:
    """
    What ``write_bag`` writes and how.

    ``compressed``: CompressedImage on the compressed topic instead of Image (the original JPEG / PNG bytes where
    the sample has them, else the pixels encoded as ``compressed_format`` at ``jpeg_quality``). ``lidar``: the
    lidar cloud, or the sparse GT depth image for sources without points. ``dense_gt``: the dense GT image where
    the source has one. ``storage``: 'mcap' (default since ROS 2 Iron) or 'sqlite3'. ``version``: rosbag2
    metadata version, 9 (Jazzy and later) or 8 (readable by Humble's rosbag2 too).
    """

    compressed: bool = False
    compressed_format: str = 'jpeg'
    jpeg_quality: int = 90
    lidar: bool = True
    dense_gt: bool = False
    storage: str = 'mcap'
    version: int = 9

    def __post_init__(self):
        """Validate; raise BagError naming the option."""
        if self.compressed_format not in COMPRESSED_FORMATS:
            raise BagError(f'bag options: compressed_format must be one of {COMPRESSED_FORMATS}, got '
                           f'{self.compressed_format!r}')
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            raise BagError(f'bag options: jpeg_quality must be an integer in 1-100, got {self.jpeg_quality!r}')
        if self.storage not in STORAGES:
            raise BagError(f'bag options: storage must be one of {STORAGES}, got {self.storage!r}')
        if self.version not in BAG_VERSIONS:
            raise BagError(f'bag options: version must be one of {BAG_VERSIONS}, got {self.version!r}')


@dataclasses.dataclass
class BagSummary:
    """What ``write_bag`` wrote: the bag directory, frames, messages per topic, time span and size on disk."""

    path: Path
    frames: int
    messages: int
    topics: typing.Dict[str, int]
    start_ns: int
    end_ns: int
    size_bytes: int
    frame_ids: typing.List[str]

    @property
    def duration_s(self):
        """Return the time span of the messages in seconds."""
        return (self.end_ns - self.start_ns) / 1e9


def _is_bag_directory(path):
    if not (path / 'metadata.yaml').is_file():
        return False
    return all(p.is_file() and p.name.endswith(_BAG_SUFFIXES) for p in path.iterdir())


def _check_target(out, force):
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise BagError(f'{out} exists already; pass --force (force=True) to replace it')
    if out.is_dir() and not out.is_symlink() and not _is_bag_directory(out):
        raise BagError(f'{out} is a directory that is not a rosbag2 bag (metadata.yaml and bag files only); '
                       f'refusing to replace it even with --force')


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _staging_directory(out, force):
    staging = out.parent / f'{out.name}.partial'
    if staging.exists() or staging.is_symlink():
        if not force:
            raise BagError(f'{staging} exists (left by an interrupted run?); remove it or pass --force')
        _remove(staging)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise BagError(f'{out}: cannot create the bag ({staging}: {exc.strerror or exc})') from None
    if not os.access(staging, os.W_OK):
        shutil.rmtree(staging, ignore_errors=True)
        raise BagError(f'{out}: cannot create the bag: {staging} is not writable')
    return staging


def _install(bag_dir, out):
    """Move the finished ``bag_dir`` to ``out``, replacing what is there (checked by ``_check_target``)."""
    previous = None
    if out.exists() or out.is_symlink():
        previous = out.parent / f'.{out.name}.replaced-{os.getpid()}'
        os.replace(out, previous)
    try:
        os.replace(bag_dir, out)
    except OSError as exc:
        if previous is not None:
            os.replace(previous, out)
        raise BagError(f'{out}: cannot move the finished bag into place ({exc.strerror or exc})') from None
    if previous is not None:
        _remove(previous)


class _OrderedWriter:
    """Serialise messages, hold them in a heap and write them in (stamp, rank) order to a rosbags Writer."""

    def __init__(self, writer, layout, typestore):
        self.writer = writer
        self.layout = layout
        self.typestore = typestore
        self.heap = []
        self.sequence = 0
        self.connections = {}
        self.counts = {}
        self.last_written = None
        self.start_ns = None
        self.serialized_bytes = 0

    def push(self, stamp_ns, kind, topic, msgtype, msg):
        raw = self.typestore.serialize_cdr(msg, msgtype)
        self.serialized_bytes += len(raw)
        heapq.heappush(self.heap, (int(stamp_ns), TOPIC_RANK[kind], self.sequence, kind, topic, msgtype, raw))
        self.sequence += 1

    def flush_before(self, stamp_ns=None):
        """Write every held message stamped before ``stamp_ns`` (all of them for None)."""
        while self.heap and (stamp_ns is None or self.heap[0][0] < stamp_ns):
            stamp, _, _, kind, topic, msgtype, raw = heapq.heappop(self.heap)
            connection = self.connections.get(topic)
            if connection is None:
                qos = offered_qos(kind if kind in ('tf', 'tf_static') else 'sensor')
                connection = self.writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                        serialization_format='cdr', offered_qos_profiles=qos)
                self.connections[topic] = connection
            elif connection.msgtype != msgtype:
                raise BagError(f'topic {topic}: {msgtype} after {connection.msgtype}; one type per topic')
            self.writer.write(connection, stamp, raw)
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.last_written = stamp
            self.start_ns = stamp if self.start_ns is None else self.start_ns


class _SampleWriter:
    """Turn samples into ordered messages: one frame's messages, transforms and the /tf_static updates."""

    def __init__(self, ordered, layout, options, types, radar_records):
        self.ordered = ordered
        self.layout = layout
        self.options = options
        self.types = types
        self.radar_records = radar_records
        self.static = {}
        self.frame_ids = []
        self.sources = []

    def add(self, sample):
        messages = sample_messages(sample, self.layout, self.options, self.types, self.radar_records)
        ego = ego_transforms(sample, self.layout)
        static = static_transforms(sample, self.layout)
        first = min([m.stamp_ns for m in messages] + [stamp for stamp, _ in ego])
        if self.ordered.last_written is not None and first < self.ordered.last_written:
            raise BagError(f'{describe(sample)}: its messages start at {first} ns, before messages already written '
                           f'at {self.ordered.last_written} ns; give the frames in time order (nuScenes: one '
                           f'scene per bag)')
        if self._static_changed(static):
            self.static.update(static)
            transforms = [transform_stamped(self.types, T, parent, child, first)
                          for child, (parent, T) in sorted(self.static.items())]
            self.ordered.push(first, 'tf_static', self.layout.tf_static_topic, TF_TYPE,
                              tf_message(self.types, transforms))
        world = self.layout.frame('world', sample.frames)
        body = self.layout.frame(body_role(sample), sample.frames)
        for stamp, T_world_from_body in ego:
            transform = transform_stamped(self.types, T_world_from_body, world, body, stamp)
            self.ordered.push(stamp, 'tf', self.layout.tf_topic, TF_TYPE, tf_message(self.types, [transform]))
        for message in messages:
            self.ordered.push(message.stamp_ns, message.kind, message.topic, message.msgtype, message.msg)
        self.ordered.flush_before(first)
        self.frame_ids.append(str(sample.frame_id))
        if sample.source not in self.sources:
            self.sources.append(sample.source)

    def _static_changed(self, static):
        for child, (parent, T) in static.items():
            known = self.static.get(child)
            if known is None or known[0] != parent or not np.array_equal(known[1], T):
                return True
        return False


def write_bag(samples, out, options=None, layout=None, force=False, radar_records=None, progress=None):
    """
    Write ``samples`` (an iterable of ``Sample``, in time order) as a rosbag2 bag directory ``out``.

    ``options`` is a BagWriteOptions, ``layout`` a BagLayout (defaults: the package's). An existing ``out`` is
    replaced only with ``force`` (and only if it is a file or a bag directory). ``radar_records(sample, role)``
    may supply raw sensor-frame radar records (see ``messages.radar_messages``). ``progress(frames_written,
    serialized_bytes)`` is called after each sample (the messages' bytes so far: about the bag's size). Returns a
    BagSummary. Raises BagError (or the DatasetError of a bad sample) and then leaves no partial bag behind.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
    options = options or BagWriteOptions()
    layout = layout or BagLayout()
    out = Path(out)
    if not out.name or out.name in ('.', '..'):
        raise BagError(f'bag path {str(out)!r} does not name a bag directory')
    _check_target(out, force)
    staging = _staging_directory(out, force)
    bag_dir = staging / out.name
    types = rosbags_message_types()
    plugin = StoragePlugin.MCAP if options.storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(bag_dir, version=options.version, storage_plugin=plugin)
    try:
        try:
            writer.open()
        except (OSError, WriterError) as exc:
            raise BagError(f'{out}: cannot create the bag ({exc})') from None
        ordered = _OrderedWriter(writer, layout, types.typestore)
        frames = _SampleWriter(ordered, layout, options, types, radar_records)
        for sample in samples:
            frames.add(sample)
            if progress is not None:
                progress(len(frames.frame_ids), ordered.serialized_bytes)
        if not frames.frame_ids:
            raise BagError(f'{out}: no frames to write')
        ordered.flush_before(None)
        writer.set_custom_data('rcdepth.layout', json.dumps(layout.to_dict(), sort_keys=True))
        writer.set_custom_data('rcdepth.source', ','.join(s for s in frames.sources if s))
        writer.set_custom_data('rcdepth.frame_ids', json.dumps(frames.frame_ids))
        writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in bag_dir.iterdir())
    _install(bag_dir, out)
    staging.rmdir()
    return BagSummary(out, len(frames.frame_ids), sum(ordered.counts.values()), dict(ordered.counts),
                      ordered.start_ns, ordered.last_written, size, frames.frame_ids)
