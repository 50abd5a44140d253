"""The synthetic data set behind the common reader interface: ``SyntheticReader(config)``."""

import copy
import logging
import multiprocessing

from rcdepth_ros.data.readers import ON_ERROR, SampleReader, SkippedFrame
from rcdepth_ros.data.synthetic.config import synthetic_config, SyntheticConfig
from rcdepth_ros.data.synthetic.generator import frame_stamp_ns, SceneGenerator, SOURCE
from rcdepth_ros.errors import ConfigError, DatasetError

# Splits are disjoint sets of drives (different random layouts), each with config.num_drives drives.
SPLITS = {None: 0, 'train': 0, 'val': 1, 'test': 2}
LOG = logging.getLogger(__name__)
_WORKER_READER = {}


def synthetic_frame_id(drive_index, frame_index):
    """Return the frame id of a frame, e.g. ``'drive0003/0012'``."""
    return f'drive{int(drive_index):04d}/{int(frame_index):04d}'


class SyntheticReader(SampleReader):
    """
    Procedural driving scenes: ``config.num_drives`` drives of ``config.frames_per_drive`` frames at 10 Hz.

    ``config`` is a SyntheticConfig or its plain-data form (a dict, as embedded in a YAML file); ``split``
    ('train' = the default drives, 'val', 'test') picks a disjoint set of drives. ``radar_image`` and ``boxes``
    say whether samples carry the full-resolution radar image and the 3D boxes of vehicles and pedestrians;
    ``threads`` moves part of a frame's work to a second thread (same bytes; see SceneGenerator).
    ``sample(frame_id)`` is deterministic and independent of the order frames are asked for.
    """

    source = SOURCE

    def __init__(self, config=None, split=None, radar_image=True, boxes=True, threads=False):
        """Validate the configuration and list the frame ids; nothing is generated yet."""
        if config is None:
            config = SyntheticConfig()
        elif isinstance(config, dict):
            config = synthetic_config(config)
        elif not isinstance(config, SyntheticConfig):
            raise ConfigError(f'synthetic: config must be a SyntheticConfig or a mapping, got {type(config).__name__}')
        if split not in SPLITS:
            raise DatasetError(f"synthetic: unknown split {split!r}; choose from 'train', 'val', 'test'")
        self.config = config
        self.split = split
        self.radar_image = bool(radar_image)
        self.boxes = bool(boxes)
        self._threads = bool(threads)
        self._generator = None
        super().__init__(synthetic_frame_id(d, f) for d in range(config.num_drives)
                         for f in range(config.frames_per_drive))

    @property
    def generator(self):
        """Return the SceneGenerator (built on first use, shared by copies made with ``select``)."""
        if self._generator is None:
            self._generator = SceneGenerator(self.config, SPLITS[self.split], self._threads)
        return self._generator

    def __getstate__(self):
        """Pickle without the generator (a thread pool and caches); a worker process builds its own."""
        state = dict(self.__dict__)
        state['_generator'] = None
        return state

    def resolve_frame_id(self, frame_id):
        """Accept ``'drive0003/0012'`` and ``(3, 12)``; return the canonical frame id."""
        if isinstance(frame_id, tuple) and len(frame_id) == 2:
            frame_id = synthetic_frame_id(*frame_id)
        return super().resolve_frame_id(frame_id)

    def stamp_ns(self, frame_id):
        """Return the stamp of ``frame_id`` without generating it (bag writing orders and spans by it)."""
        drive, frame = self._indices(self.resolve_frame_id(frame_id))
        return frame_stamp_ns(drive, frame, self.config.frames_per_drive)

    def _indices(self, frame_id):
        drive, frame = frame_id[len('drive'):].split('/')
        return int(drive), int(frame)

    def frame(self, frame_id):
        """Return the SyntheticFrame of ``frame_id``: the Sample plus its ground truth (pixel and radar origins)."""
        key = self.resolve_frame_id(frame_id)
        drive, frame = self._indices(key)
        return self.generator.frame(drive, frame, key, self.radar_image, self.boxes)

    def _load(self, frame_id):
        return self.frame(frame_id).sample

    def iterate(self, on_error='raise', workers=0):
        """
        Yield the Sample of every frame in order (see ``SampleReader.iterate``).

        ``workers`` > 1 generates frames in that many worker processes (fork) ahead of the consumer, in order:
        on two free cores about twice the rate of one process, for sequential consumers such as bag writing.
        """
        if workers is None or workers <= 1:
            yield from super().iterate(on_error)
            return
        if on_error not in ON_ERROR:
            raise DatasetError(f'on_error must be one of {ON_ERROR}, got {on_error!r}')
        self.skipped = []
        context = multiprocessing.get_context('fork')
        with context.Pool(int(workers), initializer=_start_worker, initargs=(self,)) as pool:
            for frame_id, sample, error in pool.imap(_worker_sample, self._frame_ids, chunksize=1):
                if error is None:
                    yield sample
                    continue
                if on_error == 'raise':
                    raise DatasetError(error)
                self.skipped.append(SkippedFrame(frame_id, error))
                LOG.warning('skipping %s frame %s: %s', self.source, frame_id, error)


def _start_worker(reader):
    """Keep this worker process's copy of the reader; one thread per worker (the workers share the cores)."""
    reader = copy.copy(reader)
    reader._threads = False
    reader._generator = None
    _WORKER_READER['reader'] = reader


def _worker_sample(frame_id):
    """Return ``(frame_id, sample, None)`` or ``(frame_id, None, message)`` for a DatasetError."""
    try:
        return frame_id, _WORKER_READER['reader'].sample(frame_id), None
    except DatasetError as exc:
        return frame_id, None, str(exc)
