"""
``rcdepth make-bag``: write frames of a data set as a rosbag2 bag (MCAP) in the package's topic layout.

``rcdepth make-bag --source astyx --frames 0-99 --compressed out/astyx_0-99`` writes ``out/astyx_0-99/`` with
``metadata.yaml`` and one ``.mcap`` file; ``ros2 bag info`` / ``ros2 bag play`` read it. The topics, frames and QoS
are those of ``rcdepth_ros.core.bags.layout``. Frames are written in time order. An existing OUT is replaced only
with ``--force``; the bag is built in ``OUT.partial`` and renamed when complete.

``--source synthetic`` without ``--frames`` writes one drive (the first: 100 frames, 10 s at 10 Hz with the default
scenes), not every drive of the data set; ``--frames`` selects more. Before writing, the command says how many
frames and how many seconds of bag time it will write, and after the first frame about how large the bag will be.
"""

import sys

from rcdepth_ros.core.bags import BagWriteOptions, write_bag
from rcdepth_ros.core.bags.writer import BAG_VERSIONS, COMPRESSED_FORMATS, STORAGES
from rcdepth_ros.data.readers import ON_ERROR
from rcdepth_ros.data.registry import open_reader, source_names
from rcdepth_ros.errors import DatasetError
import yaml

HELP = 'write a data set as a rosbag2 (MCAP) file'


def add_arguments(parser):
    """Register the command's arguments."""
    parser.add_argument('out', metavar='OUT', help='bag directory to create')
    parser.add_argument('--source', required=True, choices=source_names(), help='data set')
    parser.add_argument('--root', default=None, help='data set folder (default: under $RCDEPTH_DATA)')
    parser.add_argument('--split', default=None, help='split to take the frames from (source specific)')
    parser.add_argument('--frames', default=None,
                        help='frames, e.g. 0-99 or 0-10,20 (Astyx: frame indices; others: positions in the split)')
    parser.add_argument('--compressed', action='store_true',
                        help='CompressedImage with the original JPEG / PNG bytes where the source has them')
    parser.add_argument('--compressed-format', default='jpeg', choices=COMPRESSED_FORMATS,
                        help='encoding for images without an original file (with --compressed)')
    parser.add_argument('--jpeg-quality', type=int, default=90, help='JPEG quality for re-encoded images')
    parser.add_argument('--no-lidar', action='store_true', help='leave out the lidar / ground-truth topic')
    parser.add_argument('--dense-gt', action='store_true', help='add the dense ground truth where the source has it')
    parser.add_argument('--storage', default='mcap', choices=STORAGES, help='rosbag2 storage plugin')
    parser.add_argument('--bag-version', type=int, default=9, choices=BAG_VERSIONS,
                        help='rosbag2 metadata version: 9 (Jazzy and later) or 8 (Humble can read it)')
    parser.add_argument('--reader-option', '-o', action='append', default=[], metavar='KEY=VALUE',
                        help='reader constructor option, value parsed as YAML (e.g. -o radars=[RADAR_FRONT])')
    parser.add_argument('--on-error', default='raise', choices=ON_ERROR,
                        help='a bad frame stops the conversion (raise) or is skipped and reported (skip)')
    parser.add_argument('--force', action='store_true', help='replace OUT if it exists')


def parse_reader_options(items):
    """Return ``{key: value}`` from ``KEY=VALUE`` strings, values parsed as YAML; bad items raise DatasetError."""
    options = {}
    for item in items:
        key, sep, raw = item.partition('=')
        if not sep or not key.strip():
            raise DatasetError(f'reader option {item!r}: expected KEY=VALUE')
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise DatasetError(f'reader option {item!r}: value is not valid YAML ({exc})') from None
    return options


def in_time_order(reader):
    """Return ``reader`` with its frames sorted by stamp when it can tell stamps without loading a frame."""
    stamp = getattr(reader, 'stamp_ns', None)
    if stamp is None or len(reader) < 2:
        return reader
    ordered = sorted(reader.frame_ids, key=stamp)
    return reader if ordered == reader.frame_ids else reader.select(ordered)


def time_span_s(reader):
    """Return the seconds between the first and the last frame when the reader tells stamps cheaply, else None."""
    stamp = getattr(reader, 'stamp_ns', None)
    if stamp is None or not len(reader):
        return None
    stamps = [stamp(frame_id) for frame_id in reader.frame_ids]
    return (max(stamps) - min(stamps)) / 1e9


def nuscenes_radar_records(reader):
    """
    Return ``records(sample, role)`` giving a nuScenes key sweep's raw 18-field PCD records, or None.

    Only for a reader whose samples hold each radar's key sweep unfiltered (``radar_sweeps=1``,
    ``radar_filter='none'``): then the raw records are exactly the sample's returns, in their sensor frame.
    """
    if getattr(reader, 'radar_sweeps', None) != 1 or getattr(reader, 'radar_filter', None) != 'none':
        return None
    from rcdepth_ros.data.radar_files import read_nuscenes_pcd
    channels = {('radar' if number == 0 else channel.lower()): channel for number, channel in
                enumerate(reader.radars)}

    def records(sample, role):
        channel = channels.get(role)
        if channel is None:
            return None
        token = reader.nusc.get('sample', sample.frame_id)['data'][channel]
        path = reader.root / reader.nusc.get('sample_data', token)['filename']
        return read_nuscenes_pcd(path)[0]

    return records


def run(args):
    """Open the reader, write the bag, print a summary; return 0."""
    options = BagWriteOptions(compressed=args.compressed, compressed_format=args.compressed_format,
                              jpeg_quality=args.jpeg_quality, lidar=not args.no_lidar, dense_gt=args.dense_gt,
                              storage=args.storage, version=args.bag_version)
    reader_options = parse_reader_options(args.reader_option)
    reader = open_reader(args.source, args.root, split=args.split, frames=args.frames, **reader_options)
    if not len(reader):
        raise DatasetError(f'{args.source}: the selection holds no frame')
    which = ''
    if args.source == 'synthetic' and args.frames is None:
        reader = reader.select(reader.frame_ids[:reader.config.frames_per_drive])
        which = ' of the first synthetic drive (--frames selects others)'
    reader = in_time_order(reader)
    radar_records = nuscenes_radar_records(reader) if args.source == 'nuscenes' else None
    span = time_span_s(reader)
    span_text = f' ({span:.1f} s of bag time)' if span is not None else ''
    print(f'writing {len(reader)} frames{span_text}{which} to {args.out}', file=sys.stderr, flush=True)

    def progress(count, serialized_bytes):
        if count == 1 and len(reader) > 1:
            print(f'  about {serialized_bytes * len(reader) / 1e6:.0f} MB for {len(reader)} frames (from the first '
                  f'frame)', file=sys.stderr, flush=True)
        if count % 50 == 0:
            print(f'  {count} / {len(reader)} frames', file=sys.stderr, flush=True)

    summary = write_bag(reader.iterate(args.on_error), args.out, options, force=args.force,
                        radar_records=radar_records, progress=progress)
    topics = ', '.join(f'{topic} {count}' for topic, count in sorted(summary.topics.items()))
    print(f'{summary.path}: {summary.frames} frames, {summary.messages} messages, {summary.size_bytes / 1e6:.1f} MB, '
          f'{summary.duration_s:.2f} s ({options.storage}, rosbag2 v{options.version})')
    print(f'  topics: {topics}')
    for skipped in reader.skipped:
        print(f'  skipped frame {skipped.frame_id}: {skipped.reason}', file=sys.stderr)
    if reader.skipped:
        print(f'  {len(reader.skipped)} frame(s) skipped', file=sys.stderr)
    return 0
