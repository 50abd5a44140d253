"""
nuScenes through nuscenes-devkit 1.2.0, following the papers' protocol (method.md section 4).

One frame per key sample (its token is the frame id): the CAM_FRONT image, RADAR_FRONT (other radars and earlier
sweeps optional), single-sweep LIDAR_TOP ground truth, and optionally a multi-sweep accumulated ground truth.

Time: every point cloud is moved into the camera frame AT THE IMAGE TIME through the ego poses:
``T_camera(t_img)_from_sensor(t) = inv(ego(t_img) @ cam_calib) @ ego(t) @ sensor_calib``, so a static object
lands where the image shows it even though radar, lidar and camera fire at different moments.
``Sample.extrinsics[role]`` holds the static, ego-fixed calibration ``inv(cam_calib) @ sensor_calib``;
``Sample.ego_pose`` is ``T_world_from_camera`` at the image time and ``Sample.sensor_poses[role]``
``T_world_from_sensor`` at that sensor's key sweep, so ``inv(ego_pose) @ sensor_poses[role]`` is the transform
actually applied to the key sweep. Quaternions in the tables are (w, x, y, z).

Radar: channels depth, RCS, vx, vy (``vx_comp``, ``vy_comp``: ego-motion compensated velocity in the radar's own
frame, as the papers feed them), returns closer than 1 m dropped when rasterised, nearest wins on collisions.
``radar_filter='none'`` (default) keeps every return, as the protocol does not filter; ``'devkit'`` applies the
devkit's default filters (invalid_state 0, dyn_prop 0-6, ambig_state 3).

Ground truth: ``depth_gt`` is the single LIDAR_TOP sweep of the sample (the test protocol). With ``gt_sweeps=N``
the ``N`` lidar sweeps before and the ``N`` after the key sweep are accumulated too (the papers use 80 + 1 + 80);
from every non-key sweep the points inside annotated moving objects (``remove_moving``; attribute vehicle.moving,
cycle.with_rider, pedestrian.moving, or an annotation speed above ``moving_speed``; boxes interpolated to the
sweep time by the devkit and grown by ``box_margin``) are removed, because they would smear along the object's
path. The accumulated depth goes to ``depth_gt_dense``, linearly interpolated when ``dense_gt=True``
(``data.densify``). ``crop_top=4`` gives the 896x1600 evaluation input (the top 4 rows removed, K moved).

Splits: the official scene splits of ``nuscenes.utils.splits`` ('train', 'val', 'test', 'mini_train',
'mini_val', ...); ``version`` defaults to the table folder that holds them (v1.0-test for 'test', v1.0-mini for
the mini splits, else v1.0-trainval), or the only ``v1.0-*`` folder present.
"""

from pathlib import Path

import numpy as np

from rcdepth_ros.core.geometry.transforms import transform_from_translation_quaternion, transform_points
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.boxes import Box3D
from rcdepth_ros.data.densify import interpolate_depth
from rcdepth_ros.data.radar_files import read_nuscenes_pcd
from rcdepth_ros.data.readers import decode_image, lidar_depth_image, rasterise_radar, read_file, SampleReader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError, RcdepthError

NUSCENES_RADARS = ('RADAR_FRONT', 'RADAR_FRONT_LEFT', 'RADAR_FRONT_RIGHT', 'RADAR_BACK_LEFT', 'RADAR_BACK_RIGHT')
NUSCENES_RADAR_CHANNELS = ('depth', 'rcs', 'vx', 'vy', 'mask')
NUSCENES_EVAL_CROP_TOP = 4
MOVING_ATTRIBUTES = ('vehicle.moving', 'cycle.with_rider', 'pedestrian.moving')
WORLD_FRAME = 'map'
LIDAR_FIELDS = 5                              # x, y, z, intensity, ring index (float32)
# Loading the trainval tables takes about a minute and GBs: readers of the same tables (train and val, options
# that differ) share one devkit object, keyed by the table files' names, sizes and modification times.
_TABLES = {}


def pose_matrix(record):
    """Return the 4x4 transform of a calibrated_sensor or ego_pose record (translation, rotation w, x, y, z)."""
    try:
        w, x, y, z = (float(q) for q in record['rotation'])
        return transform_from_translation_quaternion(record['translation'], (x, y, z, w))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f'nuScenes record {record.get("token", "?")}: bad translation / rotation ({exc})') \
            from None


def read_nuscenes_lidar(path, frame_id=None):
    """Read a nuScenes ``.pcd.bin`` lidar sweep: float32 records (x, y, z, intensity, ring); return (N, 5)."""
    where = f'nuScenes lidar {path}' + (f' (frame {frame_id})' if frame_id is not None else '')
    raw = read_file(path, where)
    if not raw or len(raw) % (4 * LIDAR_FIELDS):
        raise DatasetError(f'{where}: {len(raw)} bytes is not a whole number of {LIDAR_FIELDS} float32 records')
    return np.frombuffer(raw, dtype='<f4').reshape(-1, LIDAR_FIELDS).astype(np.float32)


class NuScenesReader(SampleReader):
    """Key samples of nuScenes (CAM_FRONT + radars + LIDAR_TOP), see the module docstring for every option."""

    source = 'nuscenes'

    def __init__(self, root, split=None, frames=None, version=None, camera='CAM_FRONT', radars=('RADAR_FRONT',),
                 radar_sweeps=1, radar_filter='none', lidar='LIDAR_TOP', gt_sweeps=0, dense_gt=False,
                 dense_window=10, remove_moving=True, moving_speed=0.5, box_margin=0.2, crop_top=0, radar_image=True,
                 boxes=True):
        """Load the devkit tables of ``root`` (``NuScenes(version, dataroot=root)``) and list the key samples."""
        self.root = Path(root)
        if isinstance(radars, str):
            radars = (radars,)
        radars = tuple(radars)
        unknown = [r for r in radars if r not in NUSCENES_RADARS]
        if not radars or unknown:
            raise DatasetError(f'nuScenes: unknown radar channel(s) {unknown or radars}; choose from '
                               f'{NUSCENES_RADARS}')
        if radar_filter not in ('none', 'devkit'):
            raise DatasetError(f"nuScenes: radar_filter must be 'none' or 'devkit', got {radar_filter!r}")
        for name, value, low in (('radar_sweeps', radar_sweeps, 1), ('gt_sweeps', gt_sweeps, 0),
                                 ('crop_top', crop_top, 0), ('dense_window', dense_window, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DatasetError(f'nuScenes: {name} must be an integer >= {low}, got {value!r}')
        self.camera, self.radars, self.lidar = camera, radars, lidar
        self.radar_sweeps, self.radar_filter = radar_sweeps, radar_filter
        self.gt_sweeps, self.dense_gt, self.dense_window = gt_sweeps, bool(dense_gt), dense_window
        self.remove_moving, self.moving_speed, self.box_margin = bool(remove_moving), float(moving_speed), \
            float(box_margin)
        self.crop_top, self.radar_image, self.boxes = crop_top, bool(radar_image), bool(boxes)
        self.version = self._choose_version(version, split)
        self.nusc = self._load_tables()
        scenes = self.nusc.scene
        if split is not None:
            # nuscenes-devkit: optional, only the nuScenes reader needs it
            from nuscenes.utils.splits import create_splits_scenes
            splits = create_splits_scenes(verbose=False)
            if split not in splits:
                raise DatasetError(f'nuScenes: unknown split {split!r}; choose from {sorted(splits)}')
            names = set(splits[split])
            scenes = [s for s in scenes if s['name'] in names]
        self.split = split
        tokens = []
        for scene in scenes:
            token = scene['first_sample_token']
            while token:
                tokens.append(token)
                token = self.nusc.get('sample', token)['next']
        self._moving = {}
        super().__init__(tokens)
        if frames is not None:
            SampleReader.__init__(self, self.select(frames).frame_ids)

    # ----------------------------------------------------------------- tables
    def _choose_version(self, version, split):
        if version is not None:
            if not (self.root / version).is_dir():
                raise DatasetError(f'nuScenes {self.root}: table folder {version} not found')
            return version
        present = sorted(p.name for p in self.root.glob('v1.0-*') if p.is_dir())
        if split == 'test':
            preferred = 'v1.0-test'
        elif split is not None and split.startswith('mini'):
            preferred = 'v1.0-mini'
        else:
            preferred = 'v1.0-trainval'
        if preferred in present:
            return preferred
        if len(present) == 1:
            return present[0]
        raise DatasetError(f'nuScenes {self.root}: cannot choose a table folder for split {split!r} among '
                           f'{present or "none (no v1.0-* folder)"}; pass version=')

    def _load_tables(self):
        """Return the devkit's NuScenes object, shared by readers of the same unchanged tables in this process."""
        try:
            from nuscenes.nuscenes import NuScenes
        except ImportError as exc:
            raise DatasetError(f'nuScenes: nuscenes-devkit is not importable ({exc}); pip install '
                               f'nuscenes-devkit==1.2.0') from exc
        table_dir = self.root / self.version
        key = (str(table_dir.resolve()), tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                                      for p in table_dir.glob('*.json'))))
        if key not in _TABLES:
            try:
                nusc = NuScenes(version=self.version, dataroot=str(self.root), verbose=False)
            except (AssertionError, OSError, KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f'nuScenes {table_dir}: the devkit cannot load the tables '
                                   f'({type(exc).__name__}: {exc})') from exc
            _TABLES.clear()                    # the full tables take GBs: keep the latest set only
            _TABLES[key] = nusc
        return _TABLES[key]

    def _record(self, table, token, frame_id):
        try:
            return self.nusc.get(table, token)
        except KeyError:
            raise DatasetError(f'nuScenes frame {frame_id}: {table} record {token!r} not found') from None

    def _sample_data(self, sample, channel, frame_id):
        token = sample['data'].get(channel)
        if token is None:
            raise DatasetError(f'nuScenes frame {frame_id}: the sample has no {channel} data '
                               f'(has {sorted(sample["data"])})')
        return self._record('sample_data', token, frame_id)

    def T_world_from_sensor(self, sample_data, frame_id=None):
        """Return ``ego_pose @ calibrated_sensor`` of a sample_data record (sensor -> world at its time)."""
        pose = self._record('ego_pose', sample_data['ego_pose_token'], frame_id)
        calib = self._record('calibrated_sensor', sample_data['calibrated_sensor_token'], frame_id)
        return pose_matrix(pose) @ pose_matrix(calib)

    def _calibration(self, sample_data, frame_id):
        return pose_matrix(self._record('calibrated_sensor', sample_data['calibrated_sensor_token'], frame_id))

    def _path(self, sample_data):
        return self.root / sample_data['filename']

    # ----------------------------------------------------------------- sensors
    def _radar_sweeps(self, key_sd, frame_id):
        sweeps = [key_sd]
        while len(sweeps) < self.radar_sweeps and sweeps[-1]['prev']:
            sweeps.append(self._record('sample_data', sweeps[-1]['prev'], frame_id))
        return sweeps

    def _read_radar(self, sample_data, frame_id):
        path = self._path(sample_data)
        try:
            records, radar = read_nuscenes_pcd(path, frame_id=sample_data['channel'].lower())
        except DatasetError:
            raise
        except RcdepthError as exc:
            raise DatasetError(f'nuScenes frame {frame_id}: radar file {path}: {exc}') from None
        if self.radar_filter == 'devkit':
            names = records.dtype.names
            missing = [n for n in ('invalid_state', 'dyn_prop', 'ambig_state') if n not in names]
            if missing:
                raise DatasetError(f'nuScenes frame {frame_id}: radar file {path} lacks {missing} for the devkit '
                                   f'filters')
            keep = ((records['invalid_state'] == 0) & (records['dyn_prop'] >= 0) & (records['dyn_prop'] <= 6)
                    & (records['ambig_state'] == 3))
            radar = radar.select(np.nonzero(keep)[0])
        return radar

    def _lidar_world(self, sample_data, frame_id):
        points = read_nuscenes_lidar(self._path(sample_data), frame_id)[:, :3]
        return transform_points(points, self.T_world_from_sensor(sample_data, frame_id))

    def _is_moving(self, annotation_token):
        if annotation_token not in self._moving:
            annotation = self.nusc.get('sample_annotation', annotation_token)
            names = {self.nusc.get('attribute', a)['name'] for a in annotation.get('attribute_tokens', ())}
            moving = bool(names & set(MOVING_ATTRIBUTES))
            if not moving:
                velocity = self.nusc.box_velocity(annotation_token)
                moving = bool(np.all(np.isfinite(velocity)) and np.linalg.norm(velocity[:2]) > self.moving_speed)
            self._moving[annotation_token] = moving
        return self._moving[annotation_token]

    def _boxes_world(self, sample_data_token):
        """Return the devkit's annotation boxes at a sample_data's time (interpolated) as world-frame Box3D."""
        boxes = []
        for box in self.nusc.get_boxes(sample_data_token):
            width, length, height = box.wlh
            moving = self._is_moving(box.token)
            boxes.append(Box3D(box.center, (length, width, height), box.orientation.rotation_matrix, box.name,
                               WORLD_FRAME, {'annotation_token': box.token, 'moving': moving}))
        return boxes

    def accumulated_lidar(self, frame_id):
        """
        Return the accumulated lidar points (N, 3) in the camera frame at the image time.

        The key sweep and ``gt_sweeps`` sweeps before and after it; from every non-key sweep the points inside
        moving annotated boxes are removed.
        """
        key = self.resolve_frame_id(frame_id)
        sample = self._record('sample', key, key)
        camera_sd = self._sample_data(sample, self.camera, key)
        T_cam_from_world = np.linalg.inv(self.T_world_from_sensor(camera_sd, key))
        key_sd = self._sample_data(sample, self.lidar, key)
        sweeps = []
        for direction in ('prev', 'next'):
            current = key_sd
            for _ in range(self.gt_sweeps):
                if not current[direction]:
                    break
                current = self._record('sample_data', current[direction], key)
                sweeps.append(current)
        parts = [self._lidar_world(key_sd, key)]
        for sweep in sweeps:
            points = self._lidar_world(sweep, key)
            keep = np.ones(len(points), dtype=bool)
            for box in self._boxes_world(sweep['token']) if self.remove_moving else ():
                if box.attributes['moving']:
                    keep &= ~box.contains(points, self.box_margin)
            parts.append(points[keep])
        return transform_points(np.concatenate(parts), T_cam_from_world).astype(np.float32)

    # ----------------------------------------------------------------- samples
    def _load(self, frame_id):
        sample = self._record('sample', frame_id, frame_id)
        camera_sd = self._sample_data(sample, self.camera, frame_id)
        camera_calib = self._record('calibrated_sensor', camera_sd['calibrated_sensor_token'], frame_id)
        K = np.asarray(camera_calib.get('camera_intrinsic') or [], dtype=np.float64)
        if K.shape != (3, 3):
            raise DatasetError(f'nuScenes frame {frame_id}: calibrated_sensor {camera_calib["token"]} of '
                               f'{self.camera} has no 3x3 camera_intrinsic (K)')
        image_path = self._path(camera_sd)
        image, _ = decode_image(image_path, f'nuScenes {self.camera} image', frame_id)
        T_world_from_cam = self.T_world_from_sensor(camera_sd, frame_id)
        T_cam_from_world = np.linalg.inv(T_world_from_cam)
        T_ego_from_cam = pose_matrix(camera_calib)
        camera_frame = self.camera.lower()
        stamp = int(camera_sd['timestamp']) * 1000
        frames = {'camera': camera_frame, 'world': WORLD_FRAME}
        stamps = {'camera': stamp}
        extrinsics, sensor_poses = {}, {'camera': T_world_from_cam}

        radar_parts = []
        for number, channel in enumerate(self.radars):
            role = 'radar' if number == 0 else channel.lower()
            key_sd = self._sample_data(sample, channel, frame_id)
            for sweep in self._radar_sweeps(key_sd, frame_id):
                T = T_cam_from_world @ self.T_world_from_sensor(sweep, frame_id)
                radar_parts.append(self._read_radar(sweep, frame_id).transformed(T, camera_frame))
            frames[role] = channel.lower()
            stamps[role] = int(key_sd['timestamp']) * 1000
            extrinsics[role] = np.linalg.inv(T_ego_from_cam) @ self._calibration(key_sd, frame_id)
            sensor_poses[role] = self.T_world_from_sensor(key_sd, frame_id)
        radar = RadarPoints.concatenate(radar_parts, camera_frame)
        radar.stamp_ns = stamps['radar']

        lidar_sd = self._sample_data(sample, self.lidar, frame_id)
        lidar_cam = transform_points(self._lidar_world(lidar_sd, frame_id), T_cam_from_world) \
            .astype(np.float32)
        frames['lidar'] = self.lidar.lower()
        stamps['lidar'] = int(lidar_sd['timestamp']) * 1000
        extrinsics['lidar'] = np.linalg.inv(T_ego_from_cam) @ self._calibration(lidar_sd, frame_id)
        sensor_poses['lidar'] = self.T_world_from_sensor(lidar_sd, frame_id)

        K = K.copy()
        if self.crop_top:
            if self.crop_top >= image.shape[0]:
                raise DatasetError(f'nuScenes frame {frame_id}: crop_top {self.crop_top} >= image height '
                                   f'{image.shape[0]}')
            image = np.ascontiguousarray(image[self.crop_top:])
            K[1, 2] -= self.crop_top
        intrinsics = CameraIntrinsics(K, image.shape[1], image.shape[0], frame_id=camera_frame)
        depth_gt = lidar_depth_image(lidar_cam, intrinsics)
        dense = None
        if self.gt_sweeps > 0:
            dense = lidar_depth_image(self.accumulated_lidar(frame_id), intrinsics)
            if self.dense_gt:
                dense = interpolate_depth(dense, self.dense_window)

        boxes = None
        if self.boxes:
            boxes = [b.transformed(T_cam_from_world, camera_frame) for b in self._boxes_world(camera_sd['token'])]

        result = Sample(
            source=self.source, frame_id=frame_id, stamp_ns=stamp, image=image, intrinsics=intrinsics, radar=radar,
            lidar_xyz=lidar_cam, depth_gt=depth_gt, depth_gt_dense=dense, extrinsics=extrinsics, frames=frames,
            stamps_ns=stamps, boxes=boxes, image_path=None if self.crop_top else str(image_path),
            ego_pose=T_world_from_cam, sensor_poses=sensor_poses)
        if self.radar_image:
            result.radar_image = rasterise_radar(radar, intrinsics, NUSCENES_RADAR_CHANNELS)
            result.radar_channels = NUSCENES_RADAR_CHANNELS
        return result
