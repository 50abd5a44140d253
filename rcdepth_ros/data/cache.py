"""
A disk cache of the expensive per-frame preprocessing, so an epoch does not re-parse text files or decode JPEGs.

What is cached is a frame's "base" (see ``data.dataset``): the image decoded and scaled to the model width (all
rows, before any crop), its K, the camera-frame radar and lidar points, and ground-truth images at that
resolution. Everything after it (row crop, augmentation, rasterising radar at model resolution, normalising) is
cheap and runs every time, so one cache entry serves every crop, augmentation and radar-channel choice.

Entries are ``.npz`` files under ``directory/<source>/``, named by a hash of: the reader's identity (class, source
and its options, see ``reader_identity``), the frame id, the model input width (the only ``InputConfig`` field the
base depends on) and ``CACHE_VERSION`` (bumped whenever the base's content changes). They are written atomically
(a temporary file in the same folder, then ``os.replace``), so parallel DataLoader workers and interrupted runs
never leave a half-written entry; an unreadable entry is deleted and rebuilt.

Default directory: ``$RCDEPTH_CACHE``, else ``.cache/rcdepth`` under the current directory.
"""

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile
import zipfile

import numpy as np

from rcdepth_ros.errors import DatasetError

CACHE_VERSION = 2          # 2: the base holds the lidar rings ('lidar_ring') where the source has them
CACHE_ENV = 'RCDEPTH_CACHE'
LOG = logging.getLogger(__name__)
# Reader attributes that do not change what a frame's Sample holds. (The split does, for synthetic drives.)
NOT_IDENTITY = ('skipped',)


def default_cache_directory():
    """Return ``$RCDEPTH_CACHE`` or ``.cache/rcdepth`` (relative to the current directory)."""
    return Path(os.environ.get(CACHE_ENV) or Path('.cache') / 'rcdepth')


def _plain(value):
    """Return a JSON-able form of a reader option, or None when it is not plain data."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, np.ndarray) and value.size <= 64:
        return value.tolist()
    if isinstance(value, (list, tuple)) and len(value) <= 64:
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, dict) and len(value) <= 64:
        items = {str(k): _plain(v) for k, v in value.items()}
        return None if any(items[str(k)] is None and v is not None for k, v in value.items()) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return None


def reader_identity(reader):
    """
    Return what identifies a reader's samples: class, source and every public plain-data attribute (root, options).

    Two readers with the same identity produce the same Sample for a frame id; a different option (nuScenes
    ``gt_sweeps``, ZJU ``crop_rows``, a synthetic config) gives a different identity and so other cache entries.
    """
    identity = {'class': f'{type(reader).__module__}.{type(reader).__qualname__}', 'source': reader.source}
    for name, value in sorted(vars(reader).items()):
        if name.startswith('_') or name in NOT_IDENTITY:
            continue
        plain = _plain(value)
        if plain is not None or value is None:
            identity[name] = plain
    return identity


class PreprocessCache:
    """``.npz`` entries of per-frame preprocessed arrays, with hit / miss / write counters."""

    def __init__(self, directory=None):
        """Use ``directory`` (created on the first write) or ``default_cache_directory()``."""
        self.directory = Path(directory) if directory is not None else default_cache_directory()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.rebuilt = 0

    def key(self, reader, frame_id, width):
        """Return the entry name of ``frame_id`` of ``reader`` for model input width ``width``."""
        payload = json.dumps({'reader': reader_identity(reader), 'frame': str(frame_id), 'width': int(width),
                              'version': CACHE_VERSION}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()

    def path(self, source, key):
        """Return the file of an entry."""
        return self.directory / source / f'{key}.npz'

    def load(self, source, key):
        """Return the arrays of an entry (a dict), or None on a miss; a corrupt entry is deleted (a miss)."""
        path = self.path(source, key)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (FileNotFoundError, NotADirectoryError):
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            LOG.warning('cache entry %s is unreadable (%s): rebuilding it', path, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            self.rebuilt += 1
            return None
        self.hits += 1
        return arrays

    def store(self, source, key, arrays):
        """Write an entry atomically (temporary file in the same folder, then rename)."""
        path = self.path(source, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f'.{key}.', suffix='.npz.partial', dir=path.parent)
            try:
                with os.fdopen(handle, 'wb') as stream:
                    np.savez(stream, **arrays)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise DatasetError(f'cache {self.directory}: cannot write {path} ({exc.strerror or exc})') from exc
        self.writes += 1

    def stats(self):
        """Return the counters as a dict."""
        return {'hits': self.hits, 'misses': self.misses, 'writes': self.writes, 'rebuilt': self.rebuilt}
