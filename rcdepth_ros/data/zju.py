"""
ZJU-4DRadarCam in its published layout (RadarCam-Depth): images, pre-projected radar, sparse and dense lidar GT.

Layout (``root`` is the data set folder or its ``data/`` folder)::

    image/<stem>.png        RGB camera image, 1280x720 (.jpg accepted)
    radar/<stem>.npy        radar returns already projected into the image: N x 3 (u, v, depth) float
    gt/<stem>.png           single-frame lidar depth, uint16 PNG, metres * 256, 0 = none
    gt_interp/<stem>.png    interpolated (dense) lidar depth, same encoding
    train.txt val.txt test.txt full.txt     one <stem> per line

The protocol evaluates rows 240:540 (300x1280); ``crop_rows=(240, 540)`` (the default) crops image and ground
truth and moves K's principal point up by 240 rows; ``crop_rows=None`` keeps full frames.

Intrinsics: the layout ships none. The reader takes ``intrinsics`` (a 3x3 K, or a text file with 9 numbers), else
reads ``K.txt`` / ``intrinsics.txt`` in the root, else assumes a nominal pinhole ``NOMINAL_K`` (horizontal field of
view 65 degrees, principal point at the image centre). Radar returns are stored in the camera frame by
back-projecting (u, v, depth) with that K, so projecting them with the same K gives back exactly their pixels:
the radar image, and the model input at any resize / crop, are right whatever K is; depth (z) is exact; only the
lateral and vertical metres (x, y) scale with an assumed K. Radar carries no RCS or velocity here (channels 0).
Ground truth comes as depth images only: ``lidar_xyz`` is None and the torch Dataset resamples the sparse GT
with ``geometry.resize_sparse_depth``.

Timestamps: none in the layout. A frame's stamp is ``ZJU_EPOCH_NS + rank * 100 ms`` where ``rank`` is the position
of its stem in the sorted union of all split lists (numeric order when every stem is a number), so a frame has
the same stamp in every split.
"""

from pathlib import Path

import cv2
import numpy as np

from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.readers import decode_image, rasterise_radar, SampleReader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError

ZJU_SPLITS = ('train', 'val', 'test', 'full')
ZJU_CROP_ROWS = (240, 540)
ZJU_EPOCH_NS = 1_640_995_200 * 1_000_000_000          # 2022-01-01T00:00:00Z
ZJU_FRAME_PERIOD_NS = 100_000_000
ZJU_RADAR_CHANNELS = ('depth', 'mask')
ZJU_DEPTH_SCALE = 256.0
ZJU_CAMERA_FRAME = 'zju_camera'
NOMINAL_HFOV_DEG = 65.0


def nominal_K(width, height, hfov_deg=NOMINAL_HFOV_DEG):
    """Return the assumed K of a ``width`` x ``height`` image: square pixels, centred principal point."""
    focal = 0.5 * width / np.tan(np.radians(0.5 * hfov_deg))
    return np.array([[focal, 0.0, 0.5 * (width - 1)], [0.0, focal, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])


def read_depth_png(path, frame_id, what):
    """Read a uint16 PNG depth map (metres * 256, 0 = none) as float32 metres; bad files raise DatasetError."""
    where = f'ZJU {what} {path} (frame {frame_id})'
    if not Path(path).is_file():
        raise DatasetError(f'{where}: file not found')
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise DatasetError(f'{where}: corrupt or not a PNG')
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise DatasetError(f'{where}: expected a single-channel uint16 PNG, got {depth.dtype} with shape '
                           f'{depth.shape}')
    return depth.astype(np.float32) / np.float32(ZJU_DEPTH_SCALE)


def read_zju_radar(path, frame_id=None):
    """Read a ZJU radar .npy: (N, 3) rows of (u, v, depth); return it as float64."""
    where = f'ZJU radar {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f'{where}: file not found') from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f'{where}: not a readable .npy file ({exc})') from None
    if array.ndim != 2 or array.shape[1] < 3 or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f'{where}: expected an (N, 3) numeric array of (u, v, depth), got {array.dtype} '
                           f'{array.shape}')
    return array[:, :3].astype(np.float64)


def _read_k_file(path):
    try:
        values = np.array(Path(path).read_text().replace(',', ' ').split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f'ZJU intrinsics {path}: expected 9 numbers ({exc})') from None
    if values.size != 9:
        raise DatasetError(f'ZJU intrinsics {path}: expected 9 numbers (a 3x3 K), got {values.size}')
    return values.reshape(3, 3)


def _sort_key(stems):
    if all(s.replace('.', '', 1).isdigit() for s in stems):
        return lambda s: (float(s), s)
    return lambda s: s


class ZJUReader(SampleReader):
    """Samples of ZJU-4DRadarCam; ``split`` is 'train', 'val', 'test' or 'full' (default: full)."""

    source = 'zju'

    def __init__(self, root, split=None, frames=None, crop_rows=ZJU_CROP_ROWS, intrinsics=None, radar_image=True):
        """Read the split lists; no frame file is opened until its sample is asked for."""
        root = Path(root)
        if not any((root / f'{s}.txt').is_file() for s in ZJU_SPLITS) and (root / 'data').is_dir():
            root = root / 'data'
        self.root = root
        self.radar_image = bool(radar_image)
        if crop_rows is not None:
            crop_rows = tuple(int(r) for r in crop_rows)
            if len(crop_rows) != 2 or not 0 <= crop_rows[0] < crop_rows[1]:
                raise DatasetError(f'ZJU: crop_rows must be (first, stop) with 0 <= first < stop, got {crop_rows}')
        self.crop_rows = crop_rows
        lists = {s: self._read_list(s) for s in ZJU_SPLITS if (root / f'{s}.txt').is_file()}
        if not lists:
            raise DatasetError(f'ZJU {root}: no split list (train.txt, val.txt, test.txt, full.txt) found')
        everything = sorted({stem for stems in lists.values() for stem in stems},
                            key=_sort_key([s for stems in lists.values() for s in stems]))
        self._rank = {stem: i for i, stem in enumerate(everything)}
        if split is None:
            split = 'full' if 'full' in lists else None
        if split is None:
            ids = everything
        elif split not in ZJU_SPLITS:
            raise DatasetError(f'ZJU: unknown split {split!r}; choose from {ZJU_SPLITS}')
        elif split not in lists:
            raise DatasetError(f'ZJU {root}: split list {split}.txt not found')
        else:
            ids = lists[split]
        self.split = split
        self._K = self._intrinsics_option(intrinsics)
        super().__init__(ids)
        if frames is not None:
            SampleReader.__init__(self, self.select(frames).frame_ids)

    def _read_list(self, split):
        path = self.root / f'{split}.txt'
        stems = []
        for line in path.read_text().splitlines():
            stem = line.strip()
            if stem:
                stems.append(Path(stem).stem if stem.endswith(('.png', '.jpg', '.npy')) else stem)
        return list(dict.fromkeys(stems))

    def _intrinsics_option(self, intrinsics):
        if intrinsics is None:
            for name in ('K.txt', 'intrinsics.txt'):
                if (self.root / name).is_file():
                    return _read_k_file(self.root / name)
            return None
        if isinstance(intrinsics, (str, Path)):
            return _read_k_file(intrinsics)
        K = np.asarray(intrinsics, dtype=np.float64)
        if K.shape != (3, 3):
            raise DatasetError(f'ZJU: intrinsics must be a 3x3 K or a file, got shape {K.shape}')
        return K

    def stamp_ns(self, frame_id):
        """Return the documented deterministic stamp of a frame."""
        return ZJU_EPOCH_NS + self._rank[frame_id] * ZJU_FRAME_PERIOD_NS

    def _image_path(self, frame_id):
        for extension in ('.png', '.jpg', '.jpeg'):
            path = self.root / 'image' / f'{frame_id}{extension}'
            if path.is_file():
                return path
        return self.root / 'image' / f'{frame_id}.png'

    def _load(self, frame_id):
        image_path = self._image_path(frame_id)
        image, _ = decode_image(image_path, 'ZJU image', frame_id)
        full_height, width = image.shape[:2]
        K_full = nominal_K(width, full_height) if self._K is None else self._K.copy()
        radar_uvd = read_zju_radar(self.root / 'radar' / f'{frame_id}.npy', frame_id)
        depth_gt = read_depth_png(self.root / 'gt' / f'{frame_id}.png', frame_id, 'sparse GT')
        dense_path = self.root / 'gt_interp' / f'{frame_id}.png'
        depth_dense = read_depth_png(dense_path, frame_id, 'dense GT') if dense_path.exists() else None
        for name, depth in (('gt', depth_gt), ('gt_interp', depth_dense)):
            if depth is not None and depth.shape != (full_height, width):
                raise DatasetError(f'ZJU {name}/{frame_id}.png (frame {frame_id}): size {depth.shape[0]}x'
                                   f'{depth.shape[1]} (HxW) differs from the image ({full_height}x{width})')

        finite = np.all(np.isfinite(radar_uvd), axis=1) & (radar_uvd[:, 2] > 0)
        u, v, z = radar_uvd[finite].T
        xyz = np.stack([(u - K_full[0, 2]) * z / K_full[0, 0], (v - K_full[1, 2]) * z / K_full[1, 1], z], axis=1)
        stamp = self.stamp_ns(frame_id)
        radar = RadarPoints(xyz, frame_id=ZJU_CAMERA_FRAME, stamp_ns=stamp)

        K = K_full.copy()
        if self.crop_rows is not None:
            first, stop = self.crop_rows
            if stop > full_height:
                raise DatasetError(f'ZJU image {image_path} (frame {frame_id}): crop rows {first}:{stop} exceed '
                                   f'its height {full_height}')
            image = np.ascontiguousarray(image[first:stop])
            depth_gt = np.ascontiguousarray(depth_gt[first:stop])
            depth_dense = None if depth_dense is None else np.ascontiguousarray(depth_dense[first:stop])
            K[1, 2] -= first
        intrinsics = CameraIntrinsics(K, image.shape[1], image.shape[0], frame_id=ZJU_CAMERA_FRAME)
        sample = Sample(
            source=self.source, frame_id=frame_id, stamp_ns=stamp, image=image, intrinsics=intrinsics, radar=radar,
            lidar_xyz=None, depth_gt=depth_gt, depth_gt_dense=depth_dense,
            extrinsics={'radar': np.eye(4)}, frames={'camera': ZJU_CAMERA_FRAME, 'radar': ZJU_CAMERA_FRAME},
            stamps_ns={'camera': stamp, 'radar': stamp},
            image_path=None if self.crop_rows is not None else str(image_path))
        if self.radar_image:
            sample.radar_image = rasterise_radar(radar, intrinsics, ZJU_RADAR_CHANNELS)
            sample.radar_channels = ZJU_RADAR_CHANNELS
        return sample
