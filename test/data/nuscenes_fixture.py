"""
Build a small nuScenes-format data root that the real devkit (``NuScenes(version, dataroot)``) loads.

Three scenes with official split names (scene-0061 train / mini_train, scene-0103 val / mini_val, scene-0077
test), three key samples each (2 Hz), and the sensors of the real car: CAM_FRONT (1600x900 JPEG, keyframes only),
RADAR_FRONT and RADAR_FRONT_LEFT (binary PCD v0.7 in the real 18-field, 43-byte layout, about 13 Hz), LIDAR_TOP
(``.pcd.bin`` float32 x 5, 10 Hz sweeps here), ego poses per sample_data, calibrated sensors with the real
mounting conventions (LIDAR_TOP yawed -90 degrees, an optical camera), a parked and a moving annotated car.

The world is known exactly (``truth``): static points (ground, a wall, the parked car's surface) and the moving
car's surface at any time. Lidar intensity holds -1 for moving-car points and the static point's index otherwise;
radar ``id`` holds the same (moving: 30000 + index), so tests can check every point against the truth.
"""

import hashlib
import json
from pathlib import Path
import struct

import cv2
import numpy as np
from rcdepth_ros.core.geometry.transforms import quaternion_xyzw_from_matrix, transform_points


VERSION = 'v1.0-trainval'
SCENES = (('scene-0061', 'train'), ('scene-0103', 'val'), ('scene-0077', 'test'))
WIDTH, HEIGHT = 1600, 900
K = [[1266.417203, 0.0, 816.267020], [0.0, 1266.417203, 491.507066], [0.0, 0.0, 1.0]]
KEY_TIMES = (0.0, 0.5, 1.0)
LIDAR_TIMES = tuple(round(0.1 * i, 3) for i in range(11))
CAMERA_OFFSET = 0.012
RADAR_TIMES = tuple(round(-0.02 + 0.075 * j, 4) for j in range(15))
MOVING_ID_BASE = 30000

PCD_FIELDS = ('x', 'y', 'z', 'dyn_prop', 'id', 'rcs', 'vx', 'vy', 'vx_comp', 'vy_comp', 'is_quality_valid',
              'ambig_state', 'x_rms', 'y_rms', 'invalid_state', 'pdh0', 'vx_rms', 'vy_rms')
PCD_SIZES = (4, 4, 4, 1, 2, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1)
PCD_TYPES = ('F', 'F', 'F', 'I', 'I', 'F', 'F', 'F', 'F', 'F', 'I', 'I', 'I', 'I', 'I', 'I', 'I', 'I')
PCD_STRUCT = '<fffbhfffffbbbbbbbb'                      # 43 bytes, unaligned, as in the real files

# Mounting on the ego vehicle (x forward, y left, z up; origin on the ground): translation, yaw (deg), optical?
SENSORS = {
    'CAM_FRONT': ('camera', (1.70, 0.01, 1.51), 0.0, True),
    'RADAR_FRONT': ('radar', (3.41, 0.0, 0.50), 0.0, False),
    'RADAR_FRONT_LEFT': ('radar', (2.42, 0.80, 0.50), 45.0, False),
    'LIDAR_TOP': ('lidar', (0.94, 0.0, 1.84), -90.0, False),
}
PARKED = {'center': (20.0, -4.0, 0.80), 'lwh': (4.5, 1.9, 1.6), 'yaw': 0.1}
MOVING = {'center': (14.0, 3.5, 1.05), 'lwh': (4.2, 1.8, 1.5), 'yaw': 0.0, 'velocity': (8.0, 0.0)}


def token(*parts):
    """Return a deterministic 32-hex-digit token."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def _yaw_matrix(yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _transform(R, t):
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _wxyz(R):
    x, y, z, w = quaternion_xyzw_from_matrix(R)
    return [float(w), float(x), float(y), float(z)]


def sensor_calibration(channel):
    """Return T_ego_from_sensor of a channel."""
    _, translation, yaw, optical = SENSORS[channel]
    R = _yaw_matrix(np.radians(yaw))
    if optical:                                           # camera x right, y down, z forward
        R = R @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return _transform(R, translation)


def scene_origin(scene_index):
    """Return T_world_from_start: where a scene's start frame lies in the map (distinct per scene)."""
    return _transform(_yaw_matrix(0.7 + 0.9 * scene_index), (400.0 + 300.0 * scene_index, 1200.0, 0.0))


def ego_in_start(t):
    """Return T_start_from_ego at time ``t`` (s): forward 5 m/s, drifting left, slowly turning."""
    return _transform(_yaw_matrix(0.05 * t), (5.0 * t, 0.5 * t, 0.02 * t))


def _box_surface(center, lwh, yaw, step=0.2):
    """Return points on the six faces of a box (start frame)."""
    length, width, height = lwh
    u = np.arange(-0.5, 0.5 + 1e-9, step / max(length, width, height))
    faces = []
    for axis in range(3):
        for sign in (-0.5, 0.5):
            a, b = np.meshgrid(u, u, indexing='ij')
            local = np.zeros((a.size, 3))
            others = [i for i in range(3) if i != axis]
            local[:, axis] = sign
            local[:, others[0]] = a.ravel()
            local[:, others[1]] = b.ravel()
            faces.append(local)
    local = np.unique(np.concatenate(faces), axis=0) * np.asarray(lwh)
    return local @ _yaw_matrix(yaw).T + np.asarray(center)


def _grid(xs, ys, zs):
    x, y, z = np.meshgrid(xs, ys, zs, indexing='ij')
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def static_parts():
    """Return the static world parts in the start frame: name -> points (ground, wall, parked car)."""
    return {'ground': _grid(np.arange(2.0, 60.0, 0.3), np.arange(-10.0, 10.01, 0.3), [0.0]),
            'wall': _grid([55.0], np.arange(-15.0, 15.01, 0.15), np.arange(0.0, 6.01, 0.15)),
            'parked': _box_surface(PARKED['center'], PARKED['lwh'], PARKED['yaw'])}


def static_points_start():
    """Return the static world points in the start frame: ground, wall, parked car (fixed order)."""
    return np.concatenate(list(static_parts().values()))


def moving_center_start(t):
    """Return the moving car's centre (start frame) at time ``t``."""
    vx, vy = MOVING['velocity']
    x, y, z = MOVING['center']
    return np.array([x + vx * t, y + vy * t, z])


def moving_points_start(t):
    """Return the moving car's surface points (start frame) at time ``t``."""
    return _box_surface(moving_center_start(t), MOVING['lwh'], MOVING['yaw'])


def _write_pcd(path, rows):
    header = ('# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n'
              f'FIELDS {" ".join(PCD_FIELDS)}\nSIZE {" ".join(map(str, PCD_SIZES))}\n'
              f'TYPE {" ".join(PCD_TYPES)}\nCOUNT {" ".join("1" * len(PCD_FIELDS))}\n'
              f'WIDTH {len(rows)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(rows)}\nDATA binary\n')
    # Real sweeps end with zero padding after the records (the devkit's parser even requires a byte more).
    body = b''.join(struct.pack(PCD_STRUCT, *row) for row in rows) + bytes(64)
    assert struct.calcsize(PCD_STRUCT) == 43
    path.write_bytes(header.encode() + body)


def _render_image(T_cam_from_start, t):
    """Draw sky, ground, wall and the two cars (filled silhouettes) as the camera sees them at ``t``."""
    Kmat = np.asarray(K)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = (150, 185, 230)

    def polygon(points_start, colour):
        cam = transform_points(points_start, T_cam_from_start)
        cam = cam[cam[:, 2] > 0.5]
        if len(cam) < 3:
            return
        uv = (cam[:, :2] / cam[:, 2:3]) * Kmat[[0, 1], [0, 1]] + Kmat[:2, 2]
        hull = cv2.convexHull(np.round(uv).astype(np.int32))
        cv2.fillConvexPoly(image, hull, colour)

    polygon(_grid(np.linspace(3.0, 300.0, 60), np.linspace(-40.0, 40.0, 41), [0.0]), (95, 95, 100))
    polygon(_grid([55.0], np.linspace(-15.0, 15.0, 31), np.linspace(0.0, 6.0, 13)), (160, 150, 140))
    polygon(_box_surface(PARKED['center'], PARKED['lwh'], PARKED['yaw'], 0.5), (200, 40, 40))
    polygon(_box_surface(moving_center_start(t), MOVING['lwh'], MOVING['yaw'], 0.5), (40, 60, 200))
    return image


def make_nuscenes_root(root, version=VERSION):
    """Write the data root; return the truth (tokens per scene, static points, moving car, calibrations)."""
    root = Path(root)
    tables = {name: [] for name in ('category', 'attribute', 'visibility', 'instance', 'sensor',
                                    'calibrated_sensor', 'ego_pose', 'log', 'scene', 'sample', 'sample_data',
                                    'sample_annotation', 'map')}
    tables['category'].append({'token': token('cat', 'car'), 'name': 'vehicle.car', 'description': 'car'})
    for name in ('vehicle.moving', 'vehicle.parked', 'vehicle.stopped'):
        tables['attribute'].append({'token': token('attr', name), 'name': name, 'description': name})
    tables['visibility'].append({'token': '4', 'level': 'v80-100', 'description': 'visible'})
    for channel, (modality, _, _, _) in SENSORS.items():
        tables['sensor'].append({'token': token('sensor', channel), 'channel': channel, 'modality': modality})
    static_start = static_points_start()
    truth = {'version': version, 'scenes': {}, 'static_start': static_start, 'K': np.asarray(K)}
    for folder in ('samples', 'sweeps'):
        for channel in SENSORS:
            (root / folder / channel).mkdir(parents=True, exist_ok=True)
    (root / version).mkdir(parents=True, exist_ok=True)

    for scene_index, (scene_name, split) in enumerate(SCENES):
        t0_us = 1_533_151_600_000_000 + scene_index * 3_600_000_000
        log_token = token('log', scene_index)
        tables['log'].append({'token': log_token, 'logfile': f'n008-2018-08-01-15-16-36-0400-{scene_index}',
                              'vehicle': 'n008', 'date_captured': '2018-08-01', 'location': 'singapore-onenorth'})
        T_world_from_start = scene_origin(scene_index)
        calibrations = {}
        for channel in SENSORS:
            T = sensor_calibration(channel)
            calib_token = token('calib', scene_index, channel)
            calibrations[channel] = (calib_token, T)
            tables['calibrated_sensor'].append({
                'token': calib_token, 'sensor_token': token('sensor', channel), 'translation': T[:3, 3].tolist(),
                'rotation': _wxyz(T[:3, :3]), 'camera_intrinsic': K if channel == 'CAM_FRONT' else []})
        sample_tokens = [token('sample', scene_index, k) for k in range(len(KEY_TIMES))]
        for k, t in enumerate(KEY_TIMES):
            tables['sample'].append({
                'token': sample_tokens[k], 'timestamp': t0_us + int(round(t * 1e6)), 'scene_token':
                token('scene', scene_index), 'prev': sample_tokens[k - 1] if k else '',
                'next': sample_tokens[k + 1] if k + 1 < len(sample_tokens) else ''})
        tables['scene'].append({
            'token': token('scene', scene_index), 'log_token': log_token, 'nbr_samples': len(sample_tokens),
            'first_sample_token': sample_tokens[0], 'last_sample_token': sample_tokens[-1], 'name': scene_name,
            'description': f'fixture scene for split {split}'})

        def owner(t):
            """Return the sample a sample_data at time t belongs to: its key, else the next key (devkit rule)."""
            for k, key_time in enumerate(KEY_TIMES):
                if t <= key_time + 0.03:
                    return sample_tokens[k]
            return sample_tokens[-1]

        def add_sample_data(channel, index, t, key, filename, fileformat, chain):
            sd_token = token('sd', scene_index, channel, index)
            pose_token = token('pose', scene_index, channel, index)
            T_world_from_ego = T_world_from_start @ ego_in_start(t)
            tables['ego_pose'].append({'token': pose_token, 'timestamp': t0_us + int(round(t * 1e6)),
                                       'rotation': _wxyz(T_world_from_ego[:3, :3]),
                                       'translation': T_world_from_ego[:3, 3].tolist()})
            record = {'token': sd_token, 'sample_token': owner(t), 'ego_pose_token': pose_token,
                      'calibrated_sensor_token': calibrations[channel][0], 'timestamp': t0_us + int(round(t * 1e6)),
                      'fileformat': fileformat, 'is_key_frame': key, 'height': HEIGHT if channel == 'CAM_FRONT'
                      else 0, 'width': WIDTH if channel == 'CAM_FRONT' else 0, 'filename': filename,
                      'prev': chain[-1]['token'] if chain else '', 'next': ''}
            if chain:
                chain[-1]['next'] = sd_token
            chain.append(record)
            tables['sample_data'].append(record)
            return T_world_from_ego @ calibrations[channel][1]

        scene_truth = {'samples': sample_tokens, 'split': split, 'T_world_from_start': T_world_from_start,
                       'camera_times': {}, 'lidar_key_times': {}}
        # Camera: key frames only.
        chain = []
        for k, t_key in enumerate(KEY_TIMES):
            t = t_key + CAMERA_OFFSET
            stem = f'n008-2018-08-01-15-16-36-0400__CAM_FRONT__{t0_us + int(round(t * 1e6))}'
            filename = f'samples/CAM_FRONT/{stem}.jpg'
            T_world_from_cam = add_sample_data('CAM_FRONT', k, t, True, filename, 'jpg', chain)
            T_cam_from_start = np.linalg.inv(T_world_from_cam) @ T_world_from_start
            image = _render_image(T_cam_from_start, t)
            cv2.imwrite(str(root / filename), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            scene_truth['camera_times'][sample_tokens[k]] = t
        # Lidar sweeps (10 Hz), key sweeps at the sample times.
        chain = []
        for index, t in enumerate(LIDAR_TIMES):
            key = any(abs(t - kt) < 1e-9 for kt in KEY_TIMES)
            folder = 'samples' if key else 'sweeps'
            stem = f'n008-2018-08-01-15-16-36-0400__LIDAR_TOP__{t0_us + int(round(t * 1e6))}'
            filename = f'{folder}/LIDAR_TOP/{stem}.pcd.bin'
            T_world_from_lidar = add_sample_data('LIDAR_TOP', index, t, key, filename, 'pcd', chain)
            T_lidar_from_start = np.linalg.inv(T_world_from_lidar) @ T_world_from_start
            static = transform_points(static_start, T_lidar_from_start)
            moving = transform_points(moving_points_start(t), T_lidar_from_start)
            # Each sweep sees a third of the static points (like a spinning lidar's changing sample pattern), so
            # accumulating sweeps densifies the ground truth.
            near = (np.linalg.norm(static, axis=1) < 70.0) & (np.arange(len(static)) % 3 == index % 3)
            records = np.zeros((near.sum() + len(moving), 5), np.float32)
            records[:near.sum(), :3] = static[near]
            records[:near.sum(), 3] = np.nonzero(near)[0]
            records[near.sum():, :3] = moving
            records[near.sum():, 3] = -1.0
            records[:, 4] = np.arange(len(records)) % 32
            records.astype('<f4').tofile(root / filename)
            if key:
                scene_truth['lidar_key_times'][owner(t)] = t
        # Radars (about 13 Hz): parked-car and wall points are stationary, moving-car points carry its velocity.
        sizes = {name: len(points) for name, points in static_parts().items()}
        wall_start = sizes['ground']
        car_start = wall_start + sizes['wall']
        radar_static = np.concatenate([np.arange(car_start, len(static_start), 7),
                                       np.arange(wall_start, car_start, 53)])
        for channel in ('RADAR_FRONT', 'RADAR_FRONT_LEFT'):
            chain = []
            for index, t in enumerate(RADAR_TIMES):
                key = any(abs(t - kt) < 0.0375 for kt in KEY_TIMES)
                folder = 'samples' if key else 'sweeps'
                stem = f'n008-2018-08-01-15-16-36-0400__{channel}__{t0_us + int(round(t * 1e6))}'
                filename = f'{folder}/{channel}/{stem}.pcd'
                T_world_from_radar = add_sample_data(channel, index, t, key, filename, 'pcd', chain)
                T_radar_from_start = np.linalg.inv(T_world_from_radar) @ T_world_from_start
                rows = []
                static = transform_points(static_start[radar_static], T_radar_from_start)
                for i, p in zip(radar_static, static):
                    invalid = 1 if i % 5 == 0 else 0
                    rows.append((*p, 1, int(i), 12.5, 0.0, 0.0, 0.0, 0.0, 1, 3, 0, 0, invalid, 1, 0, 0))
                moving = transform_points(moving_points_start(t)[::9], T_radar_from_start)
                velocity_radar = T_radar_from_start[:3, :3] @ np.array([*MOVING['velocity'], 0.0])
                for i, p in enumerate(moving):
                    rows.append((*p, 0, MOVING_ID_BASE + i, 7.0, *velocity_radar[:2], *velocity_radar[:2],
                                 1, 3, 0, 0, 0, 1, 0, 0))
                _write_pcd(root / filename, rows)
        # Annotations at the key samples.
        for name, box, attribute in (('parked', PARKED, 'vehicle.parked'), ('moving', MOVING, 'vehicle.moving')):
            instance_token = token('instance', scene_index, name)
            ann_tokens = [token('ann', scene_index, name, k) for k in range(len(KEY_TIMES))]
            for k, t in enumerate(KEY_TIMES):
                center = np.asarray(box['center']) if name == 'parked' else moving_center_start(t)
                T_box = T_world_from_start @ _transform(_yaw_matrix(box['yaw']), center)
                length, width, height = box['lwh']
                tables['sample_annotation'].append({
                    'token': ann_tokens[k], 'sample_token': sample_tokens[k], 'instance_token': instance_token,
                    'visibility_token': '4', 'attribute_tokens': [token('attr', attribute)],
                    'translation': T_box[:3, 3].tolist(), 'size': [width, length, height],
                    'rotation': _wxyz(T_box[:3, :3]), 'prev': ann_tokens[k - 1] if k else '',
                    'next': ann_tokens[k + 1] if k + 1 < len(ann_tokens) else '',
                    'num_lidar_pts': 100, 'num_radar_pts': 5})
            tables['instance'].append({'token': instance_token, 'category_token': token('cat', 'car'),
                                       'nbr_annotations': len(ann_tokens), 'first_annotation_token': ann_tokens[0],
                                       'last_annotation_token': ann_tokens[-1]})
        truth['scenes'][scene_name] = scene_truth
    tables['map'].append({'token': token('map'), 'log_tokens': [log['token'] for log in tables['log']],
                          'category': 'semantic_prior', 'filename': 'maps/fixture.png'})
    (root / 'maps').mkdir(exist_ok=True)
    cv2.imwrite(str(root / 'maps' / 'fixture.png'), np.zeros((16, 16), np.uint8))
    for name, rows in tables.items():
        (root / version / f'{name}.json').write_text(json.dumps(rows, indent=0))
    return truth
