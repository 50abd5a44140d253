"""
Build a small data root in the KITTI-style 4D-radar layout of View-of-Delft, with known geometry.

View-of-Delft's licence forbids shipping its frames, so this writes the same layout: ``lidar/`` and ``radar/``
with ``training/{image_2,velodyne,calib}`` and ``lidar/ImageSets``. Every frame sees a fronto-parallel wall at a
known depth; lidar and radar points are placed on it in the camera frame and written in their own sensor frames
(a lidar 1.7 m above and 0.3 m behind the camera, a radar 0.8 m below and 0.1 m ahead, both x forward / y left /
z up, the radar yawed by 2 degrees), so a reader that composes the calibration right gets the camera-frame points
back. Frame 00003's calibration uses a P2 with a baseline column and a non-identity R0_rect (KITTI's own form).
"""

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 320, 200
K = np.array([[250.0, 0.0, 160.0], [0.0, 250.0, 100.0], [0.0, 0.0, 1.0]])
STEMS = ['00000', '00001', '00002', '00003', '00005']
SPLITS = {'train': ['00000', '00001', '00005'], 'val': ['00002', '00003'], 'test': []}
# Axes of a sensor (x forward, y left, z up) in the optical camera frame (x right, y down, z forward).
SENSOR_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def _yaw(degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_from_sensor(position_cam, yaw_deg=0.0):
    """Return T_camera_from_sensor of a sensor at ``position_cam`` (camera frame), yawed by ``yaw_deg``."""
    T = np.eye(4)
    T[:3, :3] = SENSOR_AXES @ _yaw(yaw_deg)
    T[:3, 3] = position_cam
    return T


T_CAM_FROM_LIDAR = camera_from_sensor([0.0, -1.7, -0.3])
T_CAM_FROM_RADAR = camera_from_sensor([0.05, 0.8, 0.1], yaw_deg=2.0)


def _line(key, matrix):
    return f'{key}: ' + ' '.join(f'{v:.12e}' for v in np.asarray(matrix).reshape(-1)) + '\n'


def _calib(T_cam_from_sensor, kitti_form):
    """Return a calib text whose P2 R0_rect Tr_velo_to_cam compose to K [I | 0] T_cam_from_sensor."""
    P2 = np.zeros((3, 4))
    P2[:, :3] = K
    rectify = np.eye(4)
    offset = np.eye(4)
    if kitti_form:
        rectify[:3, :3] = _yaw(3.0)                          # any rotation: R0_rect
        offset[:3, 3] = [0.06, 0.0, 0.0]                     # camera 2 beside the reference camera
        P2[:, 3] = K @ offset[:3, 3]
    Tr = np.linalg.inv(offset @ rectify) @ T_cam_from_sensor
    lines = [_line('P0', P2), _line('P1', P2), _line('P2', P2), _line('P3', P2)]
    lines += [_line('R0_rect', rectify[:3, :3]), _line('Tr_velo_to_cam', Tr[:3, :]), _line('Tr_imu_to_velo',
                                                                                           np.eye(4)[:3, :])]
    return ''.join(lines)


def _wall_points(rng, depth, count, spread=(4.0, 1.5)):
    """Return (count, 3) camera-frame points on a wall ``depth`` metres ahead, inside the image."""
    x = rng.uniform(-spread[0], spread[0], count)
    y = rng.uniform(-spread[1], spread[1], count)
    return np.stack([x, y, np.full(count, depth)], axis=1)


def _to_sensor(points_cam, T_cam_from_sensor):
    T = np.linalg.inv(T_cam_from_sensor)
    return points_cam @ T[:3, :3].T + T[:3, 3]


def make_kitti_radar_root(root, seed=0):
    """Write the fixture under ``root``; return the truth: K, stems, splits and per-frame points and values."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    truth = {'K': K, 'stems': list(STEMS), 'splits': SPLITS, 'frames': {}}
    for folder in ('lidar/training/image_2', 'lidar/training/velodyne', 'lidar/training/calib',
                   'radar/training/velodyne', 'radar/training/calib', 'lidar/ImageSets', 'lidar/testing/image_2',
                   'radar/testing/velodyne'):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, stems in SPLITS.items():
        (root / 'lidar' / 'ImageSets' / f'{split}.txt').write_text(''.join(f'{s}\n' for s in stems))
    for index, stem in enumerate(STEMS):
        depth = 8.0 + 3.0 * index
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[:, :, 0] = 40 * index
        image[20:180, 40:280] = (200, 30, 30)
        cv2.imwrite(str(root / 'lidar/training/image_2' / f'{stem}.jpg'), image[:, :, ::-1])
        lidar_cam = _wall_points(rng, depth, 300)
        intensity = rng.uniform(0, 1, len(lidar_cam))
        behind = np.array([[0.0, 0.0, -5.0], [1.0, 0.0, -2.0]])          # behind the camera: not in the GT
        lidar_all = np.vstack([lidar_cam, behind])
        lidar_records = np.column_stack([_to_sensor(lidar_all, T_CAM_FROM_LIDAR),
                                         np.concatenate([intensity, [0.5, 0.5]])]).astype('<f4')
        (root / 'lidar/training/velodyne' / f'{stem}.bin').write_bytes(lidar_records.tobytes())
        radar_cam = _wall_points(rng, depth, 12)
        rcs = rng.uniform(-10, 20, len(radar_cam))
        v_r = rng.uniform(-3, 3, len(radar_cam))
        v_comp = v_r + 1.5
        time = np.zeros(len(radar_cam))
        radar_records = np.column_stack([_to_sensor(radar_cam, T_CAM_FROM_RADAR), rcs, v_r, v_comp,
                                         time]).astype('<f4')
        (root / 'radar/training/velodyne' / f'{stem}.bin').write_bytes(radar_records.tobytes())
        kitti_form = stem == '00003'
        (root / 'lidar/training/calib' / f'{stem}.txt').write_text(_calib(T_CAM_FROM_LIDAR, kitti_form))
        (root / 'radar/training/calib' / f'{stem}.txt').write_text(_calib(T_CAM_FROM_RADAR, kitti_form))
        truth['frames'][stem] = {'depth': depth, 'lidar_cam': lidar_cam.astype(np.float32),
                                 'radar_cam': radar_cam.astype(np.float32), 'rcs': rcs.astype(np.float32),
                                 'v_r': v_r.astype(np.float32), 'v_r_compensated': v_comp.astype(np.float32)}
    return truth
