"""
The interface every data set reader follows, and helpers readers share.

A reader knows an ordered list of frame ids and builds a ``Sample`` for any one of them on demand::

    reader = AstyxReader(root).select('0-349')
    len(reader), reader.frame_ids[:3]          # 350, ['000000', '000001', '000002']
    sample = reader.sample('000042')           # or reader[42 - first], or reader.sample(42) for Astyx
    for sample in reader.iterate(on_error='skip'):
        ...
    reader.skipped                             # [SkippedFrame('000017', 'camera_front/000017.jpg: ...')]

A bad frame (missing file, corrupt JPEG, empty radar file, calibration without K, unknown frame id) raises
``DatasetError`` naming the file and the frame. ``iterate(on_error='skip')`` goes on past such frames, records each
in ``reader.skipped`` with its reason and logs a warning: nothing is dropped silently.

Subclasses implement ``_load(frame_id) -> Sample``; they may override ``resolve_frame_id`` (accept other spellings
of a frame id) and ``frame_for_number`` (what a number in ``--frames 0-349`` means).
"""

import copy
import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np

from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.geometry.radar_image import radar_image
from rcdepth_ros.data.frames import parse_frame_spec
from rcdepth_ros.errors import DatasetError, RcdepthError

ON_ERROR = ('raise', 'skip')
LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SkippedFrame:
    """A frame that ``iterate(on_error='skip')`` did not yield, and why."""

    frame_id: str
    reason: str


class SampleReader:
    """
    Base class of the data set readers: an ordered list of frame ids and ``sample(frame_id) -> Sample``.

    ``source`` names the data set ('astyx', 'nuscenes', 'zju', 'synthetic'). Readers are cheap to copy:
    ``select`` returns a copy restricted to some frames and shares everything already loaded.
    """

    source = ''

    def __init__(self, frame_ids):
        """Keep the ordered frame ids (strings) this reader serves."""
        self._frame_ids = [str(f) for f in frame_ids]
        self._frame_set = set(self._frame_ids)
        self.skipped = []

    # ----------------------------------------------------------------- frame ids
    @property
    def frame_ids(self):
        """Return the ordered frame ids (a copy)."""
        return list(self._frame_ids)

    def __len__(self):
        """Return the number of frames."""
        return len(self._frame_ids)

    def __contains__(self, frame_id):
        """Return whether ``frame_id`` (any spelling ``resolve_frame_id`` accepts) is one of the frames."""
        try:
            self.resolve_frame_id(frame_id)
        except DatasetError:
            return False
        return True

    def resolve_frame_id(self, frame_id):
        """Return the canonical frame id for ``frame_id``, or raise DatasetError naming it."""
        key = str(frame_id)
        if key not in self._frame_set:
            raise DatasetError(f'{self.source or type(self).__name__}: frame {frame_id!r} is not one of the '
                               f'{len(self)} frames of this reader ({self._describe_ids()})')
        return key

    def _describe_ids(self):
        if not self._frame_ids:
            return 'none'
        if len(self._frame_ids) <= 3:
            return ', '.join(self._frame_ids)
        return f'{self._frame_ids[0]} ... {self._frame_ids[-1]}'

    def frame_for_number(self, number):
        """Return the frame id that number ``number`` of a ``--frames`` selection means (default: position)."""
        if not 0 <= number < len(self._frame_ids):
            raise DatasetError(f'{self.source}: frame number {number} is out of range: this reader has '
                               f'{len(self._frame_ids)} frames (numbers 0-{len(self._frame_ids) - 1})')
        return self._frame_ids[number]

    def select(self, frames):
        """
        Return a copy of this reader restricted to ``frames``, in the order given.

        ``frames`` is a selection string (``'0-349'``, ``'0-10,20'``) or a list of ints, interpreted by
        ``frame_for_number``; or a list of frame-id strings; or None (all frames).
        """
        if frames is None:
            return self._with_frames(self._frame_ids)
        if isinstance(frames, (list, tuple)) and frames and all(isinstance(f, str) for f in frames):
            ids = [self.resolve_frame_id(f) for f in frames]
        else:
            ids = [self.frame_for_number(n) for n in parse_frame_spec(frames)]
        return self._with_frames(ids)

    def _with_frames(self, ids):
        clone = copy.copy(self)
        SampleReader.__init__(clone, ids)
        return clone

    # ----------------------------------------------------------------- samples
    def sample(self, frame_id):
        """
        Return the Sample of ``frame_id``.

        Any package error while reading the frame comes out as a DatasetError naming the source and the frame.
        """
        key = self.resolve_frame_id(frame_id)
        try:
            return self._load(key)
        except DatasetError:
            raise
        except RcdepthError as exc:
            raise DatasetError(f'{self.source} frame {key}: {exc}') from exc

    def _load(self, frame_id):
        """Build the Sample of a canonical frame id (subclasses implement this)."""
        raise NotImplementedError(f'{type(self).__name__} must implement _load(frame_id)')

    def __getitem__(self, index):
        """Return the Sample at position ``index`` (negative counts from the end)."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise DatasetError(f'{self.source}: reader index must be an integer position, got {index!r}; use '
                               f'sample(frame_id) for frame ids')
        if not -len(self) <= index < len(self):
            raise DatasetError(f'{self.source}: position {index} is out of range for {len(self)} frames')
        return self.sample(self._frame_ids[int(index)])

    def iterate(self, on_error='raise'):
        """
        Yield the Sample of every frame in order.

        ``on_error='raise'`` stops at the first bad frame with its DatasetError; ``'skip'`` goes on, appending a
        ``SkippedFrame`` to ``self.skipped`` (reset when the iteration starts) and logging a warning.
        """
        self._check_on_error(on_error)
        self.skipped = []
        for frame_id in self._frame_ids:
            try:
                sample = self.sample(frame_id)
            except DatasetError as exc:
                self._skip_or_raise(frame_id, exc, on_error)
                continue
            yield sample

    @staticmethod
    def _check_on_error(on_error):
        if on_error not in ON_ERROR:
            raise DatasetError(f'on_error must be one of {ON_ERROR}, got {on_error!r}')

    def _skip_or_raise(self, frame_id, error, on_error):
        """Raise ``error`` (on_error 'raise'), else record the frame in ``skipped`` and log a warning."""
        if on_error == 'raise':
            raise error
        self.skipped.append(SkippedFrame(frame_id, str(error)))
        LOG.warning('skipping %s frame %s: %s', self.source, frame_id, error)

    def __iter__(self):
        """Iterate over all samples, stopping at the first bad frame."""
        return self.iterate('raise')


def rasterise_radar(radar_cam, intrinsics, channels, min_depth=1.0):
    """Return the (H, W, C) radar image of camera-frame returns at the resolution of ``intrinsics``."""
    return radar_image(radar_cam, intrinsics.K, intrinsics.width, intrinsics.height, tuple(channels),
                       min_depth=min_depth)


def lidar_depth_image(lidar_cam, intrinsics):
    """Return the sparse (H, W) depth map of camera-frame lidar points (nearest wins, 0 elsewhere)."""
    return sparse_depth_image(lidar_cam, intrinsics.K, intrinsics.width, intrinsics.height)


def read_file(path, where):
    """Return the bytes of ``path``; a missing or unreadable file raises DatasetError prefixed with ``where``."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f'{where}: file not found') from None
    except OSError as exc:
        raise DatasetError(f'{where}: cannot read ({exc.strerror or exc})') from None


def decode_image(path, what, frame_id):
    """Return (RGB uint8 image, the encoded bytes) of a JPEG / PNG file; a missing or corrupt file raises."""
    where = f'{what} {path} (frame {frame_id})'
    raw = read_file(path, where)
    if not raw:
        raise DatasetError(f'{where}: empty file')
    if raw[:2] == b'\xff\xd8' and b'\xff\xd9' not in raw[-64:].rstrip(b'\x00'):
        # libjpeg decodes a truncated JPEG into a grey bottom with only a warning: refuse it here.
        raise DatasetError(f'{where}: truncated JPEG (no end-of-image marker)')
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'{where}: corrupt or not an image')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), raw
