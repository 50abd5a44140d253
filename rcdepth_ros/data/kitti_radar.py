"""
4D-radar data sets in the KITTI-style layout View-of-Delft uses: camera, lidar and radar per frame, calibration text.

Layout (``root`` is the data set folder holding ``lidar/`` and ``radar/``)::

    lidar/ImageSets/{train,val,test}.txt       one frame stem per line (optional: else every image is a frame)
    lidar/training/image_2/<stem>.jpg          the camera image (.png accepted)
    lidar/training/velodyne/<stem>.bin         lidar: float32 records x y z intensity (lidar frame)
    lidar/training/calib/<stem>.txt            P2 (camera 2 projection) and Tr_velo_to_cam (lidar -> camera)
    radar/training/velodyne/<stem>.bin         radar: float32 records x y z RCS v_r v_r_compensated time
    radar/training/calib/<stem>.txt            P2 and Tr_velo_to_cam (here: radar -> camera)

``split`` 'test' reads ``testing/`` instead of ``training/``. ``radar_folder`` picks another radar folder with the
same layout (View-of-Delft ships ``radar_3frames`` / ``radar_5frames``, sweeps accumulated over 3 or 5 scans);
``radar_columns`` names the float32 columns of a radar record when another data set stores others (x, y, z are
required; RCS and the radial velocity are found by name as for a PointCloud2, the ego-motion compensated one
preferred: ``radar_velocity``).

Calibration: each ``KEY: numbers`` line of a calib file; ``P2`` (3x4) gives K = P2[:, :3] and camera 2's offset
from the rectified reference camera (K^-1 P2[:, 3]); ``R0_rect`` (3x3, identity when absent) and
``Tr_velo_to_cam`` (3x4) complete ``T_camera_from_sensor = [I | K^-1 p4] R0_rect Tr_velo_to_cam``, as a KITTI
projection ``P2 R0_rect Tr_velo_to_cam x`` composes them. Radar and lidar are moved into the camera frame with
their own calib file's transform; the ground truth is the lidar projected into the image.

Timestamps: the layout has none per sensor (the frames are already synchronised). A frame's stamp is
``KITTI_RADAR_EPOCH_NS + number * 100 ms`` for a numeric stem (its rank otherwise), the same in every split.
"""

from pathlib import Path

import numpy as np

from rcdepth_ros.core.geometry.transforms import transform_points
from rcdepth_ros.core.messages.radar import radar_from_structured, RadarFieldMap
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.data.readers import decode_image, lidar_depth_image, rasterise_radar, read_file, SampleReader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError, RcdepthError

KITTI_RADAR_SPLITS = ('train', 'val', 'test')
KITTI_RADAR_EPOCH_NS = 1_577_836_800 * 1_000_000_000          # 2020-01-01T00:00:00Z
KITTI_RADAR_FRAME_PERIOD_NS = 100_000_000
VOD_RADAR_COLUMNS = ('x', 'y', 'z', 'rcs', 'v_r', 'v_r_compensated', 'time')
LIDAR_COLUMNS = ('x', 'y', 'z', 'intensity')
RADAR_CHANNELS = ('depth', 'rcs', 'v_radial', 'mask')
FRAMES = {'camera': 'camera_2', 'radar': 'radar', 'lidar': 'velodyne'}
_CALIB_ALIASES = {'R_rect': 'R0_rect', 'Tr_velo_cam': 'Tr_velo_to_cam'}
_CALIB_SIZES = {'P2': 12, 'R0_rect': 9, 'Tr_velo_to_cam': 12}


def read_kitti_calibration(path, frame_id=None):
    """
    Return ``{key: float64 array}`` of a KITTI calibration text file (``KEY: n1 n2 ...`` per line).

    ``R_rect`` / ``Tr_velo_cam`` are accepted for ``R0_rect`` / ``Tr_velo_to_cam``. A missing file, a line that is
    not numbers, or a P2 / R0_rect / Tr_velo_to_cam of the wrong size raises DatasetError naming the file.
    """
    where = f'calibration {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    text = read_file(path, where).decode('utf-8', errors='replace')
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, rest = line.partition(':')
        if not colon:
            raise DatasetError(f'{where}: line {number} is not "KEY: numbers": {line[:60]!r}')
        key = _CALIB_ALIASES.get(key.strip(), key.strip())
        try:
            numbers = np.array(rest.split(), dtype=np.float64)
        except ValueError:
            raise DatasetError(f'{where}: line {number} ({key}) holds something that is not a number') from None
        expected = _CALIB_SIZES.get(key)
        if expected is not None and numbers.size != expected:
            raise DatasetError(f'{where}: {key} needs {expected} numbers, got {numbers.size}')
        if not np.all(np.isfinite(numbers)):
            raise DatasetError(f'{where}: {key} holds a NaN or inf')
        values[key] = numbers
    return values


def camera_calibration(calib, where):
    """Return (K, T_camera_from_sensor) from a parsed calibration (P2, optional R0_rect, Tr_velo_to_cam)."""
    for key in ('P2', 'Tr_velo_to_cam'):
        if key not in calib:
            raise DatasetError(f'{where}: no {key} line (present: {sorted(calib)})')
    P2 = calib['P2'].reshape(3, 4)
    K = P2[:, :3].copy()
    if not (K[0, 0] > 0 and K[1, 1] > 0) or abs(np.linalg.det(K)) < 1e-12:
        raise DatasetError(f'{where}: P2 has no usable focal lengths (fx={K[0, 0]}, fy={K[1, 1]})')
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(K, P2[:, 3])
    rectify = np.eye(4)
    if 'R0_rect' in calib:
        rectify[:3, :3] = calib['R0_rect'].reshape(3, 3)
    sensor = np.eye(4)
    sensor[:3, :] = calib['Tr_velo_to_cam'].reshape(3, 4)
    T = offset @ rectify @ sensor
    if abs(np.linalg.det(T[:3, :3]) - 1.0) > 1e-3:
        raise DatasetError(f'{where}: R0_rect Tr_velo_to_cam is not a rotation (det {np.linalg.det(T[:3, :3]):.4f})')
    return K, T


def read_float32_records(path, columns, what, frame_id=None):
    """Return a structured float32 array of the records of a ``.bin`` file with ``columns`` float32 values each."""
    where = f'{what} {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    raw = read_file(path, where)
    record = 4 * len(columns)
    if len(raw) % record:
        raise DatasetError(f'{where}: {len(raw)} bytes is not a whole number of {len(columns)}-float32 records '
                           f'({", ".join(columns)}: {record} bytes each)')
    values = np.frombuffer(raw, dtype='<f4').reshape(-1, len(columns))
    out = np.empty(len(values), dtype=[(name, np.float32) for name in columns])
    for i, name in enumerate(columns):
        out[name] = values[:, i]
    return out


class KittiRadarReader(SampleReader):
    """
    Samples of a KITTI-style 4D-radar data set (View-of-Delft layout; see the module docstring).

    ``split`` 'train', 'val' or 'test' reads ``lidar/ImageSets/<split>.txt``; without it every image of
    ``training/`` is a frame. Numbers in ``select`` / ``--frames`` are frame numbers (the stems' value).
    """

    source = 'kitti_radar'

    def __init__(self, root, split=None, frames=None, radar_folder='radar', radar_columns=VOD_RADAR_COLUMNS,
                 radar_velocity='v_r_compensated', radar_image=True):
        """Find the frames; no frame file is opened until its sample is asked for."""
        self.root = Path(root)
        self.radar_folder = str(radar_folder)
        self.radar_columns = tuple(str(c) for c in radar_columns)
        missing = [c for c in ('x', 'y', 'z') if c not in self.radar_columns]
        if missing or len(set(self.radar_columns)) != len(self.radar_columns):
            raise DatasetError(f'kitti_radar: radar_columns must name x, y and z once each, got '
                               f'{list(self.radar_columns)}')
        self.field_map = RadarFieldMap(v_radial=radar_velocity if radar_velocity in self.radar_columns else None)
        self.radar_image = bool(radar_image)
        if split is not None and split not in KITTI_RADAR_SPLITS:
            raise DatasetError(f'kitti_radar: unknown split {split!r}; choose from {KITTI_RADAR_SPLITS}')
        self.split = split
        self.part = 'testing' if split == 'test' else 'training'
        for sensor in ('lidar', self.radar_folder):
            if not (self.root / sensor / self.part).is_dir():
                raise DatasetError(f'kitti_radar {self.root}: folder {sensor}/{self.part} not found (expected the '
                                   f'View-of-Delft layout: lidar/ and radar/ with training/ and testing/)')
        if split is None:
            stems = sorted(p.stem for p in (self.root / 'lidar' / self.part / 'image_2').glob('*')
                           if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))
        else:
            stems = self._read_list(split)
        stems = list(dict.fromkeys(stems))
        if not stems:
            raise DatasetError(f'kitti_radar {self.root}: no frames in {self.part} '
                               f'({"ImageSets/" + split + ".txt" if split else "image_2/"})')
        self._numbers = {s: int(s) for s in stems if s.isdigit()}
        self._rank = {s: i for i, s in enumerate(stems)}
        self._all_ids = set(stems)
        super().__init__(stems)
        if frames is not None:
            SampleReader.__init__(self, self.select(frames).frame_ids)

    def _read_list(self, split):
        path = self.root / 'lidar' / 'ImageSets' / f'{split}.txt'
        text = read_file(path, f'kitti_radar split list {path}').decode('utf-8', errors='replace')
        return [line.strip() for line in text.splitlines() if line.strip()]

    def resolve_frame_id(self, frame_id):
        """Accept a stem (``'00042'``) or a frame number (``42``); return the stem or raise DatasetError."""
        key = str(frame_id)
        if key not in self._all_ids:
            by_number = {n: s for s, n in self._numbers.items()}
            try:
                key = by_number.get(int(frame_id), key)
            except (TypeError, ValueError):
                pass
        if key not in self._frame_set:
            raise DatasetError(f'kitti_radar: frame {frame_id!r} is not among the {len(self)} frames of this reader '
                               f'({self._describe_ids()})')
        return key

    def frame_for_number(self, number):
        """Return the frame whose stem has the value ``number`` (View-of-Delft numbers its frames 00000-)."""
        by_number = {n: s for s, n in self._numbers.items() if s in self._frame_set}
        if number not in by_number:
            raise DatasetError(f'kitti_radar: no frame number {number} among the {len(self)} frames of this reader '
                               f'({self._describe_ids()})')
        return by_number[number]

    def stamp_ns(self, frame_id):
        """Return the documented deterministic stamp of a frame (10 Hz from its number)."""
        number = self._numbers.get(frame_id, self._rank[frame_id])
        return KITTI_RADAR_EPOCH_NS + number * KITTI_RADAR_FRAME_PERIOD_NS

    def _path(self, sensor, kind, frame_id, suffix):
        return self.root / sensor / self.part / kind / f'{frame_id}{suffix}'

    def _image_path(self, frame_id):
        for suffix in ('.jpg', '.png', '.jpeg'):
            path = self._path('lidar', 'image_2', frame_id, suffix)
            if path.is_file():
                return path
        return self._path('lidar', 'image_2', frame_id, '.jpg')

    def calibration(self, frame_id, sensor='lidar'):
        """Return (K, T_camera_from_sensor) of ``sensor`` ('lidar' or 'radar') for a frame."""
        folder = 'lidar' if sensor == 'lidar' else self.radar_folder
        path = self._path(folder, 'calib', frame_id, '.txt')
        return camera_calibration(read_kitti_calibration(path, frame_id), f'calibration {path} (frame {frame_id})')

    def _load(self, frame_id):
        stamp = self.stamp_ns(frame_id)
        image_path = self._image_path(frame_id)
        image, _ = decode_image(image_path, 'kitti_radar camera image', frame_id)
        K, T_cam_from_lidar = self.calibration(frame_id, 'lidar')
        _, T_cam_from_radar = self.calibration(frame_id, 'radar')
        intrinsics = CameraIntrinsics(K, image.shape[1], image.shape[0], frame_id=FRAMES['camera'])

        radar_path = self._path(self.radar_folder, 'velodyne', frame_id, '.bin')
        records = read_float32_records(radar_path, self.radar_columns, 'kitti_radar radar', frame_id)
        try:
            radar = radar_from_structured(records, self.field_map, FRAMES['radar'], stamp,
                                          source=f'kitti_radar radar {radar_path}')
        except RcdepthError as exc:
            raise DatasetError(f'kitti_radar frame {frame_id}: {exc}') from None
        radar_cam = radar.transformed(T_cam_from_radar, FRAMES['camera'])

        lidar_path = self._path('lidar', 'velodyne', frame_id, '.bin')
        lidar = read_float32_records(lidar_path, LIDAR_COLUMNS, 'kitti_radar lidar', frame_id)
        xyz = np.stack([lidar['x'], lidar['y'], lidar['z']], axis=1).astype(np.float64)
        lidar_cam = transform_points(xyz[np.all(np.isfinite(xyz), axis=1)], T_cam_from_lidar).astype(np.float32)
        depth_gt = lidar_depth_image(lidar_cam, intrinsics)

        sample = Sample(
            source=self.source, frame_id=frame_id, stamp_ns=stamp, image=image, intrinsics=intrinsics,
            radar=radar_cam, lidar_xyz=lidar_cam, depth_gt=depth_gt,
            extrinsics={'radar': T_cam_from_radar, 'lidar': T_cam_from_lidar}, frames=dict(FRAMES),
            stamps_ns={'camera': stamp, 'radar': stamp, 'lidar': stamp}, image_path=str(image_path))
        if self.radar_image:
            sample.radar_image = rasterise_radar(radar_cam, intrinsics, RADAR_CHANNELS)
            sample.radar_channels = RADAR_CHANNELS
        return sample
