"""
Offline teacher targets: what the distillation terms need from the teacher, computed once per training frame.

A KD step with the online teacher runs the teacher too (and a Grad-CAM backward through it for saliency KD); the
teacher is frozen and, without augmentation, sees the same frame every epoch, so its outputs can be computed once.
For each frame of the training split, on the unaugmented frame at the student's input size (the rows of the cached
base that the model input keeps), the teacher's ``depth``, its bin ``logits`` (teachers with a bin head, at
1/``logits_divisor`` of the base resolution: the KD resolution) and its Grad-CAM ``saliency`` (when a term needs
it) are placed on canvases the size of the cached base (``rcdepth_ros.data.dataset``: the image scaled to the
model width, all rows) with a ``valid`` mask of the rows the teacher saw, and stored as one safetensors file per
frame. During training the dataset cuts, mirrors and resizes them exactly as the augmented image
(``RadarCameraDataset(aligned_maps=...)``, ``augment.follow_view``), so a KD epoch costs about a direct one.

Keying and staleness: the folder is ``<cache dir>/teacher_targets/<teacher hash>`` (the hash of the teacher
checkpoint's weights and configuration, as the preprocessing cache keys entries by their inputs), with a
``manifest.json`` saying what the targets were made from: teacher hash and path, ``TARGETS_VERSION``, the
preprocessing ``CACHE_VERSION``, the input configuration, the data reader, what is stored and how. A run whose
teacher, cache version, input (KD resolution) or settings differ from a folder's manifest is refused with a
message naming both; every file also carries the teacher hash, checked when it is read. Building takes a lock on
the folder, so parallel runs of one table build the targets once.
"""

import fcntl
import hashlib
import json
import os
from pathlib import Path
import tempfile
import time

import cv2
import numpy as np
from rcdepth_ros.config import to_dict
from rcdepth_ros.core.geometry.model_input import ImageTransform
from rcdepth_ros.data.cache import CACHE_VERSION, default_cache_directory, reader_identity
from rcdepth_ros.errors import ConfigError, DatasetError
from rcdepth_ros.models.checkpoint import checkpoint_paths
from safetensors import safe_open
from safetensors.numpy import save_file
import torch
import torch.nn.functional as F

TARGETS_VERSION = 1
MANIFEST = 'manifest.json'


def teacher_hash(checkpoint):
    """Return the sha256 (hex) of a checkpoint's weights file and its model / input configuration."""
    weights, config = checkpoint_paths(checkpoint)
    digest = hashlib.sha256()
    try:
        with open(weights, 'rb') as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b''):
                digest.update(chunk)
        meta = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f'distill.teacher {checkpoint}: cannot read the checkpoint to hash it ({exc})') from exc
    digest.update(json.dumps({'input': meta.get('input'), 'model': meta.get('model')}, sort_keys=True).encode())
    return digest.hexdigest()


def default_directory(cache_dir, digest):
    """Return ``<cache dir>/teacher_targets/<first 16 hex digits of the teacher hash>``."""
    root = Path(cache_dir) if cache_dir else default_cache_directory()
    return root / 'teacher_targets' / digest[:16]


def expected_manifest(experiment, teacher_path, digest, reader, stored, saliency=None):
    """Return the manifest a run expects of its targets folder (everything but the frame list)."""
    targets = experiment.distill.targets
    return {'format': 'rcdepth-teacher-targets', 'targets_version': TARGETS_VERSION, 'cache_version': CACHE_VERSION,
            'teacher_hash': digest, 'teacher': str(teacher_path), 'input': to_dict(experiment.input),
            'reader': reader_identity(reader), 'stored': sorted(stored),
            'logits_divisor': targets.logits_divisor,
            'saliency': None if saliency is None else {
                'layer': saliency.teacher_layer, 'target': saliency.target, 'normalise': saliency.normalise,
                'size_divisor': saliency.size_divisor}}


COMPARED = ('format', 'targets_version', 'cache_version', 'teacher_hash', 'input', 'reader', 'stored',
            'logits_divisor', 'saliency')


def check_manifest(found, expected, directory):
    """Raise ConfigError naming both sides when a folder's manifest does not fit the run's expectation."""
    for key in COMPARED:
        if found.get(key) != expected.get(key):
            what = {'teacher_hash': 'teacher', 'cache_version': 'preprocessing cache version',
                    'targets_version': 'targets format version', 'input': 'input configuration (KD resolution)'}
            mine = expected.get(key)
            theirs = found.get(key)
            if key == 'teacher_hash':
                theirs = f'{str(theirs)[:16]} ({found.get("teacher")})'
                mine = f'{str(mine)[:16]} ({expected.get("teacher")})'
            raise ConfigError(f'offline teacher targets {directory}: stale, made for another '
                              f'{what.get(key, key)}: they hold {theirs}, this run needs {mine}; delete the folder '
                              f'(it is rebuilt) or set distill.targets.directory to another one')


def manifest_serves(found, expected):
    """
    Return True when a folder made as ``found`` holds everything a run expecting ``expected`` reads.

    Every compared field must agree, except that the folder may store more maps than the run needs (a run
    distilling depth alone can read the folder of a depth + saliency run of the same teacher); saliency settings only
    matter when the run reads the saliency map.
    """
    for key in COMPARED:
        if key == 'stored':
            if not set(expected.get('stored') or ()) <= set(found.get('stored') or ()):
                return False
        elif key == 'saliency':
            if expected.get('saliency') is not None and 'saliency' in (expected.get('stored') or ()) and \
                    found.get('saliency') != expected.get('saliency'):
                return False
        elif found.get(key) != expected.get(key):
            return False
    return True


class TargetStore:
    """
    A folder of offline teacher targets (one ``<frame key>.safetensors`` per frame and ``manifest.json``).

    ``load(frame_id)`` is what ``RadarCameraDataset(aligned_maps=...)`` calls, in DataLoader workers too: it returns
    ``{'teacher_depth', 'teacher_valid', 'teacher_logits', 'teacher_saliency'}`` (those stored) as base-size
    (Hb, Wb, C) float32 arrays with their resampling ('nearest' for depth and mask, 'linear' for the rest).
    """

    def __init__(self, directory, manifest):
        """Keep the folder and its (checked) manifest."""
        self.directory = Path(directory)
        self.manifest = manifest
        self.digest = manifest['teacher_hash']
        self.frames = dict(manifest.get('frames') or {})

    def path(self, frame_id):
        """Return the file of a frame."""
        name = self.frames.get(str(frame_id))
        if name is None:
            raise DatasetError(f'offline teacher targets {self.directory}: no entry for frame {frame_id} (built for '
                               f'{len(self.frames)} frames of another selection?)')
        return self.directory / name

    def load(self, frame_id):
        """Return the base-size maps of a frame (see the class docstring)."""
        path = self.path(frame_id)
        try:
            with safe_open(str(path), framework='numpy') as handle:
                meta = handle.metadata() or {}
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}
        except (OSError, ValueError, RuntimeError) as exc:
            raise DatasetError(f'offline teacher targets {path} (frame {frame_id}): unreadable ({exc}); delete '
                               f'{self.directory} to rebuild them') from None
        if meta.get('teacher_hash') != self.digest or meta.get('frame_id') != str(frame_id):
            raise DatasetError(f'offline teacher targets {path}: made by teacher {meta.get("teacher_hash", "?")[:16]} '
                               f'for frame {meta.get("frame_id")}, this run needs teacher {self.digest[:16]} frame '
                               f'{frame_id}; delete {self.directory} to rebuild them')
        depth = arrays['depth'].astype(np.float32)
        height, width = depth.shape
        out = {'teacher_depth': (depth[..., None], 'nearest'),
               'teacher_valid': (arrays['valid'].astype(np.float32)[..., None], 'nearest')}
        if 'logits' in arrays:
            logits = arrays['logits'].astype(np.float32).transpose(1, 2, 0)        # (h, w, K)
            if logits.shape[:2] != (height, width):
                logits = cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR)
            out['teacher_logits'] = (logits.reshape(height, width, -1), 'linear')
        if 'saliency' in arrays:
            out['teacher_saliency'] = (arrays['saliency'].astype(np.float32)[..., None], 'linear')
        return out


def teacher_output_from_batch(batch, device, bin_centers=None):
    """Return the teacher output dict of a batch carrying offline targets (``teacher_*`` keys)."""
    out = {'depth': batch['teacher_depth'].to(device, non_blocking=True),
           'valid': batch['teacher_valid'].to(device, non_blocking=True)}
    if 'teacher_logits' in batch:
        out['logits'] = batch['teacher_logits'].to(device, non_blocking=True)
        out['bin_centers'] = bin_centers.to(device) if bin_centers is not None else None
    if 'teacher_saliency' in batch:
        out['saliency'] = batch['teacher_saliency'].to(device, non_blocking=True)
    return out


def _write_frame(path, arrays, metadata):
    handle, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.partial', dir=path.parent)
    os.close(handle)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, temporary, metadata=metadata)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _write_json(path, data):
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + '\n')
    os.replace(tmp, path)


def place_on_base(value, transform):
    """Return the base-size (scaled_height, W[, C]) canvas of a model-input map (zeros outside) and its row mask."""
    value = np.asarray(value)
    canvas = np.zeros((transform.scaled_height,) + value.shape[1:], dtype=value.dtype)
    valid = np.zeros((transform.scaled_height, value.shape[1]), dtype=np.uint8)
    s0, s1, d0 = transform._rows()
    canvas[s0:s1] = value[d0:d0 + (s1 - s0)]
    valid[s0:s1] = 1
    return canvas, valid


def build_targets(store_dir, manifest, runner, dataset, device, batch_size=4, log=print):
    """
    Compute and write the targets of every frame of ``dataset`` (unaugmented) missing from ``store_dir``.

    ``runner`` is the ``TeacherRunner``; ``manifest`` the expected manifest (the frame list is added). Returns the
    manifest written. The caller holds the folder's lock.
    """
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    path = store_dir / MANIFEST
    frames = {}
    if path.is_file():
        found = json.loads(path.read_text())
        check_manifest(found, manifest, store_dir)
        frames = {f: n for f, n in (found.get('frames') or {}).items() if (store_dir / n).is_file()}
    stored = set(manifest['stored'])
    todo = [i for i, f in enumerate(dataset.frame_ids) if f not in frames]
    divisor = manifest['logits_divisor']
    started = time.perf_counter()
    cfg = dataset.input_cfg
    for first in range(0, len(todo), batch_size):
        indices = todo[first:first + batch_size]
        items = [dataset[i] for i in indices]
        image = torch.stack([it['image'] for it in items]).to(device)
        radar = torch.stack([it['radar'] for it in items]).to(device)
        lidar = torch.stack([it['lidar'] for it in items]).to(device) if 'lidar' in items[0] else None
        out = runner(image, radar, lidar)
        for row, (index, item) in enumerate(zip(indices, items)):
            frame_id = dataset.frame_ids[index]
            base = dataset.base(index)
            transform = ImageTransform.fit_width(base['image'].shape[0], base['image'].shape[1],
                                                 cfg.height, cfg.width, cfg.crop)
            depth, valid = place_on_base(out['depth'][row, 0].float().cpu().numpy(), transform)
            arrays = {'depth': depth.astype(np.float32), 'valid': valid}
            if 'logits' in stored:
                logits = out['logits'][row:row + 1].float()
                canvas, _ = place_on_base(logits[0].permute(1, 2, 0).cpu().numpy(), transform)
                small = torch.from_numpy(canvas).permute(2, 0, 1)[None]
                if divisor > 1:
                    small = F.avg_pool2d(small, divisor, ceil_mode=True)
                arrays['logits'] = small[0].numpy().astype(np.float16)
            if 'saliency' in stored:
                sal = F.interpolate(out['saliency'][row:row + 1].float(), size=(cfg.height, cfg.width),
                                    mode='bilinear', align_corners=False)[0, 0].cpu().numpy()
                arrays['saliency'] = place_on_base(sal, transform)[0].astype(np.float16)
            name = hashlib.sha1(f'{frame_id}'.encode()).hexdigest()[:20] + '.safetensors'
            _write_frame(store_dir / name, arrays, {'teacher_hash': manifest['teacher_hash'], 'frame_id': frame_id,
                                                    'targets_version': str(TARGETS_VERSION),
                                                    'cache_version': str(CACHE_VERSION)})
            frames[frame_id] = name
        if log and (first // batch_size) % 25 == 0:
            log(f'offline teacher targets: {min(first + batch_size, len(todo))}/{len(todo)} frames '
                f'({time.perf_counter() - started:.0f} s)')
    written = dict(manifest, frames=frames, built_seconds=time.perf_counter() - started)
    _write_json(path, written)
    return written


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock`` (other processes building the same targets wait)."""

    def __init__(self, folder):
        """Remember the folder."""
        self.path = Path(folder) / '.lock'
        self.handle = None

    def __enter__(self):
        """Create the folder and take the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, 'a')
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        """Release the lock."""
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
        return False


def open_targets(directory, expected, runner, dataset, device, log=print):
    """
    Return the TargetStore of ``directory`` for ``dataset``'s frames, building what is missing (under the lock).

    A folder whose manifest differs from ``expected`` is refused (``check_manifest``), never overwritten; a complete
    folder that stores more maps than the run reads serves it (``manifest_serves``).
    """
    directory = Path(directory)
    with FolderLock(directory):
        path = directory / MANIFEST
        manifest = json.loads(path.read_text()) if path.is_file() else None
        missing = manifest is None or any(f not in (manifest.get('frames') or {}) or
                                          not (directory / manifest['frames'][f]).is_file()
                                          for f in dataset.frame_ids)
        if manifest is not None and not (not missing and manifest_serves(manifest, expected)):
            check_manifest(manifest, expected, directory)
        if missing:
            manifest = build_targets(directory, expected, runner, dataset, device, log=log)
    return TargetStore(directory, manifest)
