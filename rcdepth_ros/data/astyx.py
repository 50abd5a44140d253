"""
Astyx HiRes2019 in its original layout: ``dataset.json`` index, calibration chain, camera, radar, lidar, boxes.

Everything comes from ``dataset.json`` and the files it names, so the reader works on any copy of the public data
set (all 546 frames or a subset) without counts written in the code.

Calibration: each sensor's ``calib_data.T_to_ref_COS`` takes points from that sensor into the reference frame
(the radar's: x forward, y left, z up). The camera is optical (z forward) and has ``K``. A point p of sensor S
lands in the camera at ``inv(T_camera) @ T_S @ p``; ``Sample.extrinsics['radar' | 'lidar']`` hold these
``T_camera_from_sensor`` matrices.

Boxes (``groundtruth_obj3d``): ``center3d`` and ``dimension3d`` (length, width, height) in the reference frame;
``orientation_quat`` is (w, x, y, z), a rotation about (nearly) the vertical axis that turns the box length from
the reference x axis into the heading. This was checked on the images: with (w, x, y, z) the projected boxes sit
on the parked cars of frame 0 (cars parked across the driving direction) and on the cars ahead in frames 100 and
400; read as (x, y, z, w) they would stand on their sides.

Timestamps: the files carry none per frame (the lidar column is a sensor-internal counter). The stamp of frame
index i is ``ASTYX_EPOCH_NS + i * 100 ms`` (10 Hz from 2019-01-01T00:00:00Z), for all sensors of the frame: it is
deterministic, monotonic in the frame index and keeps consecutive frames 0.1 s apart.
"""

import json
from pathlib import Path

import numpy as np

from rcdepth_ros.core.geometry.transforms import as_transform, transform_points
from rcdepth_ros.core.sensor_types import CameraIntrinsics
from rcdepth_ros.data.boxes import Box3D
from rcdepth_ros.data.radar_files import read_astyx_radar
from rcdepth_ros.data.readers import decode_image, lidar_depth_image, rasterise_radar, read_file, SampleReader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError, RcdepthError

ASTYX_EPOCH_NS = 1_546_300_800 * 1_000_000_000
ASTYX_FRAME_PERIOD_NS = 100_000_000
# The project's benchmark split: contiguous ranges, because neighbouring frames are correlated.
# 'dev' (300-349) is held out of 'fit' (0-299) for model selection and distillation settings, so that 'val' is
# looked at only by the final table; 'train' (0-349) = 'fit' + 'dev'.
ASTYX_SPLITS = {'train': '0-349', 'val': '350-435', 'fit': '0-299', 'dev': '300-349'}
ASTYX_RADAR_CHANNELS = ('depth', 'rcs', 'v_radial', 'mask')
# Sensor uids of the public release, used when dataset.json does not list its sensors.
DEFAULT_SENSORS = {'camera': 'camera_front', 'radar': 'radar_6455', 'lidar': 'lidar_vlp16',
                   'calibration': 'calibration', 'labels_object3d': 'groundtruth_obj3d'}


def _read_json(path, what, frame_id=None):
    where = f' (frame {frame_id})' if frame_id is not None else ''
    try:
        with open(path, 'rb') as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DatasetError(f'Astyx {what} {path}{where}: file not found') from None
    except OSError as exc:
        raise DatasetError(f'Astyx {what} {path}{where}: cannot read ({exc.strerror or exc})') from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f'Astyx {what} {path}{where}: not valid JSON ({exc})') from None


def _matrix(value, shape, what):
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f'{what}: not a numeric matrix') from None
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise DatasetError(f'{what}: expected a finite {shape[0]}x{shape[1]} matrix, got shape {matrix.shape}')
    return matrix


class AstyxCalibration:
    """
    One frame's calibration: ``T_ref_from[uid]`` per sensor and the camera's ``K``.

    ``T_camera_from(uid)`` chains them: ``inv(T_ref_from[camera]) @ T_ref_from[uid]``.
    """

    def __init__(self, T_ref_from, K, camera_uid):
        """Keep the per-sensor transforms (uid -> 4x4) and K (3x3) of ``camera_uid``."""
        self.T_ref_from = dict(T_ref_from)
        self.K = K
        self.camera_uid = camera_uid

    def T_camera_from(self, uid):
        """Return the 4x4 transform taking points of sensor ``uid`` into the camera frame."""
        if uid not in self.T_ref_from:
            raise DatasetError(f'Astyx calibration: no sensor {uid!r} (have {sorted(self.T_ref_from)})')
        return self.T_camera_from_ref @ self.T_ref_from[uid]

    @property
    def T_camera_from_ref(self):
        """Return ``inv(T_camera)`` (a general inverse: the published rotations are orthonormal to 1e-7 only)."""
        return np.linalg.inv(self.T_ref_from[self.camera_uid])


def read_astyx_calibration(path, camera_uid='camera_front', frame_id=None):
    """Read an Astyx calibration JSON; a missing sensor list, transform or camera K raises DatasetError."""
    data = _read_json(path, 'calibration', frame_id)
    where = f'Astyx calibration {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    sensors = data.get('sensors') if isinstance(data, dict) else None
    if not isinstance(sensors, list) or not sensors:
        raise DatasetError(f'{where}: no "sensors" list')
    transforms, K = {}, None
    for entry in sensors:
        if not isinstance(entry, dict) or 'sensor_uid' not in entry:
            raise DatasetError(f'{where}: a sensor entry has no "sensor_uid"')
        uid = entry['sensor_uid']
        calib = entry.get('calib_data') or {}
        if 'T_to_ref_COS' not in calib:
            raise DatasetError(f'{where}: sensor {uid!r} has no calib_data.T_to_ref_COS')
        T = _matrix(calib['T_to_ref_COS'], (4, 4), f'{where}: {uid} T_to_ref_COS')
        try:
            transforms[uid] = as_transform(T, f'{where}: {uid} T_to_ref_COS')
        except RcdepthError as exc:
            raise DatasetError(str(exc)) from None
        if uid == camera_uid:
            if 'K' not in calib:
                raise DatasetError(f'{where}: camera {uid!r} has no calib_data.K (intrinsics)')
            K = _matrix(calib['K'], (3, 3), f'{where}: {uid} K')
            if K[0, 0] <= 0 or K[1, 1] <= 0:
                raise DatasetError(f'{where}: camera {uid!r} K has non-positive focal lengths')
    if camera_uid not in transforms:
        raise DatasetError(f'{where}: no camera sensor {camera_uid!r} (have {sorted(transforms)})')
    return AstyxCalibration(transforms, K, camera_uid)


def _read_text_table(path, what, frame_id, required):
    """Read a whitespace table with a header line; return a structured float64 array with the header's names."""
    where = f'Astyx {what} {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    text = read_file(path, where).decode('ascii', errors='replace')
    header, _, body = text.partition('\n')
    names = header.split()
    if not names:
        raise DatasetError(f'{where}: empty file (expected a header line {" ".join(required)} ...)')
    missing = [n for n in required if n not in names]
    if missing:
        raise DatasetError(f'{where}: header {names} lacks column(s) {missing}')
    tokens = body.split()
    if len(tokens) % len(names):
        raise DatasetError(f'{where}: {len(tokens)} values do not fill rows of {len(names)} columns {names}')
    try:
        values = np.array(tokens, dtype=np.float64).reshape(-1, len(names))
    except ValueError:
        raise DatasetError(f'{where}: a row holds a non-numeric value') from None
    records = np.zeros(values.shape[0], dtype=[(n, np.float64) for n in names])
    for i, name in enumerate(names):
        records[name] = values[:, i]
    return records


def read_astyx_lidar(path, frame_id=None):
    """
    Read an Astyx VLP-16 text file (header ``X Y Z Reflectivity LaserID Timestamp``) as a structured array.

    Field names are the header's; X, Y, Z (metres, lidar frame) are required. Rows with a non-finite coordinate
    are dropped (they cannot be ground truth).
    """
    records = _read_text_table(path, 'lidar', frame_id, ('X', 'Y', 'Z'))
    finite = np.isfinite(records['X']) & np.isfinite(records['Y']) & np.isfinite(records['Z'])
    return records[finite]


def read_astyx_boxes(path, frame_id=None, box_frame='radar_6455'):
    """Read Astyx ``groundtruth_obj3d`` boxes (reference frame) as a list of Box3D."""
    data = _read_json(path, 'boxes', frame_id)
    where = f'Astyx boxes {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    objects = data.get('objects') if isinstance(data, dict) else None
    if not isinstance(objects, list):
        raise DatasetError(f'{where}: no "objects" list')
    boxes = []
    for number, obj in enumerate(objects):
        try:
            attributes = {k: obj[k] for k in ('occlusion', 'label_certainty', 'object_id', 'score') if k in obj}
            boxes.append(Box3D.from_quaternion(obj['center3d'], obj['dimension3d'], obj['orientation_quat'],
                                               str(obj.get('classname', '')), box_frame, attributes))
        except (KeyError, TypeError, ValueError, RcdepthError) as exc:
            raise DatasetError(f'{where}: object {number} is not a box with center3d, dimension3d, '
                               f'orientation_quat ({exc})') from None
    return boxes


class AstyxReader(SampleReader):
    """
    Samples of Astyx HiRes2019 in its original layout.

    ``split`` ('train', 'val', 'fit', 'dev': ``ASTYX_SPLITS``) or ``frames`` ('0-349', '0-10,20': frame indices of
    dataset.json) restrict the frames; numbers in ``select`` are frame indices too. ``radar_image`` computes
    ``Sample.radar_image`` at image resolution (20 MB a frame; the torch Dataset does not need it); ``boxes`` loads the
    3D boxes.
    """

    source = 'astyx'

    def __init__(self, root, split=None, frames=None, radar_image=True, boxes=True):
        """Read ``root/dataset.json``; no frame file is opened until its sample is asked for."""
        self._read_radar = read_astyx_radar
        self.root = Path(root)
        self.radar_image = bool(radar_image)
        self.boxes = bool(boxes)
        index = _read_json(self.root / 'dataset.json', 'index')
        entries = index.get('data') if isinstance(index, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise DatasetError(f'Astyx index {self.root / "dataset.json"}: no "data" mapping of frames')
        self.sensors = dict(DEFAULT_SENSORS)
        for sensor in index.get('sensors') or ():
            if isinstance(sensor, dict) and sensor.get('sensor_type') in self.sensors and sensor.get('sensor_uid'):
                self.sensors[sensor['sensor_type']] = sensor['sensor_uid']
        self._entries = {}
        for key, entry in entries.items():
            try:
                number = int(key)
            except ValueError:
                raise DatasetError(f'Astyx index {self.root / "dataset.json"}: frame key {key!r} is not a '
                                   f'number') from None
            if not isinstance(entry, dict):
                raise DatasetError(f'Astyx index: frame {key} is not a mapping of sensor -> file')
            self._entries[f'{number:06d}'] = entry
        super().__init__(sorted(self._entries, key=int))
        self._all_ids = set(self._entries)
        if split is not None:
            if split not in ASTYX_SPLITS:
                raise DatasetError(f'Astyx: unknown split {split!r}; choose from {sorted(ASTYX_SPLITS)}')
            first, last = (int(n) for n in ASTYX_SPLITS[split].split('-'))
            SampleReader.__init__(self, [f for f in self._frame_ids if first <= int(f) <= last])
        if frames is not None:
            SampleReader.__init__(self, self.select(frames).frame_ids)

    def resolve_frame_id(self, frame_id):
        """Accept ``'000042'``, ``'42'`` or ``42``; return ``'000042'`` or raise DatasetError naming it."""
        try:
            key = f'{int(frame_id):06d}'
        except (TypeError, ValueError):
            raise DatasetError(f'astyx: frame id {frame_id!r} is not a frame number') from None
        if key not in self._all_ids:
            raise DatasetError(f'astyx: frame {key} is not in {self.root / "dataset.json"}')
        if key not in self._frame_set:
            raise DatasetError(f'astyx: frame {key} is not among the {len(self)} selected frames '
                               f'({self._describe_ids()})')
        return key

    def frame_for_number(self, number):
        """Return the frame id of Astyx frame index ``number`` (must be listed in dataset.json)."""
        key = f'{int(number):06d}'
        if key not in self._all_ids:
            raise DatasetError(f'astyx: frame {key} is not in {self.root / "dataset.json"} '
                               f'({len(self._all_ids)} frames listed)')
        if key not in self._frame_set:
            raise DatasetError(f'astyx: frame {key} is not among the {len(self)} frames of this selection '
                               f'({self._describe_ids()})')
        return key

    def file(self, frame_id, sensor_type):
        """Return the path of ``sensor_type``'s file for a frame ('camera', 'radar', ...), or None if unlisted."""
        entry = self._entries[self.resolve_frame_id(frame_id)]
        relative = entry.get(self.sensors[sensor_type])
        return None if relative is None else self.root / relative

    def _required_file(self, frame_id, sensor_type):
        path = self.file(frame_id, sensor_type)
        if path is None:
            raise DatasetError(f'astyx frame {frame_id}: dataset.json lists no {self.sensors[sensor_type]} file')
        return path

    def stamp_ns(self, frame_id):
        """Return the documented deterministic stamp of a frame (10 Hz from ASTYX_EPOCH_NS)."""
        return ASTYX_EPOCH_NS + int(frame_id) * ASTYX_FRAME_PERIOD_NS

    def calibration(self, frame_id):
        """Return the frame's AstyxCalibration."""
        return read_astyx_calibration(self._required_file(frame_id, 'calibration'), self.sensors['camera'],
                                      frame_id)

    def _load(self, frame_id):
        camera, radar_uid, lidar_uid = self.sensors['camera'], self.sensors['radar'], self.sensors['lidar']
        calib = self.calibration(frame_id)
        T_cam_from_radar = calib.T_camera_from(radar_uid)
        T_cam_from_lidar = calib.T_camera_from(lidar_uid)
        image_path = self._required_file(frame_id, 'camera')
        image, _ = decode_image(image_path, 'Astyx camera image', frame_id)
        stamp = self.stamp_ns(frame_id)
        intrinsics = CameraIntrinsics(calib.K, image.shape[1], image.shape[0], frame_id=camera)

        radar_path = self._required_file(frame_id, 'radar')
        try:
            radar = self._read_radar(radar_path, frame_id=radar_uid, stamp_ns=stamp)
        except RcdepthError as exc:
            raise DatasetError(f'astyx frame {frame_id}: radar file {radar_path}: {exc}') from None
        radar_cam = radar.transformed(T_cam_from_radar, camera)

        lidar = read_astyx_lidar(self._required_file(frame_id, 'lidar'), frame_id)
        xyz = np.stack([lidar['X'], lidar['Y'], lidar['Z']], axis=1)
        lidar_cam = transform_points(xyz, T_cam_from_lidar).astype(np.float32)
        depth_gt = lidar_depth_image(lidar_cam, intrinsics)
        rings = lidar['LaserID'].astype(np.int16) if 'LaserID' in lidar.dtype.names else None

        boxes = None
        box_path = self.file(frame_id, 'labels_object3d') if self.boxes else None
        if box_path is not None:
            T_cam_from_ref = calib.T_camera_from_ref
            boxes = [b.transformed(T_cam_from_ref, camera) for b in read_astyx_boxes(box_path, frame_id, radar_uid)]

        sample = Sample(
            source=self.source, frame_id=frame_id, stamp_ns=stamp, image=image, intrinsics=intrinsics,
            radar=radar_cam, lidar_xyz=lidar_cam, depth_gt=depth_gt,
            extrinsics={'radar': T_cam_from_radar, 'lidar': T_cam_from_lidar},
            frames={'camera': camera, 'radar': radar_uid, 'lidar': lidar_uid},
            stamps_ns={'camera': stamp, 'radar': stamp, 'lidar': stamp},
            boxes=boxes, image_path=str(image_path), lidar_ring=rings)
        if self.radar_image:
            sample.radar_image = rasterise_radar(radar_cam, intrinsics, ASTYX_RADAR_CHANNELS)
            sample.radar_channels = ASTYX_RADAR_CHANNELS
        return sample
