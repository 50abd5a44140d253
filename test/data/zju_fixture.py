"""
Build a small ZJU-4DRadarCam data root in the published layout, with known geometry.

Each frame shows a flat road (camera 1.5 m above it) and a fronto-parallel wall at a known depth, seen by a
nominal pinhole K (the one ``rcdepth_ros.data.zju.nominal_K`` assumes). The dense GT is the exact depth of road and
wall, the sparse GT every 12th row of it (a beam pattern), and radar returns lie on the wall and the road at their
exact depth, so every consumer can check pixels and depths against ``truth``. Also used by the bag tests.
"""

from pathlib import Path

import cv2
import numpy as np

from rcdepth_ros.data.zju import nominal_K

WIDTH, HEIGHT = 1280, 720
CAMERA_HEIGHT = 1.5
WALL_COLUMNS = (420, 860)
SPLITS = {'train': [0, 1, 2, 3], 'val': [4], 'test': [5]}


def frame_depth(K, wall_depth, width=WIDTH, height=HEIGHT):
    """Return the exact (H, W) depth of road and wall (0 for sky) for this fixture's scene."""
    v = np.arange(height, dtype=np.float64)[:, None] * np.ones((1, width))
    u = np.ones((height, 1)) * np.arange(width, dtype=np.float64)[None, :]
    below = v - K[1, 2]
    road = np.where(below > 0.5, K[1, 1] * CAMERA_HEIGHT / np.maximum(below, 0.5), 0.0)
    wall_bottom = K[1, 2] + K[1, 1] * CAMERA_HEIGHT / wall_depth
    wall_top = K[1, 2] - K[1, 1] * 4.0 / wall_depth            # the wall is 5.5 m high
    on_wall = (u >= WALL_COLUMNS[0]) & (u < WALL_COLUMNS[1]) & (v >= wall_top) & (v <= wall_bottom)
    depth = np.where(on_wall, wall_depth, road)
    depth[(depth > 0) & (depth > 120)] = 0.0
    return depth.astype(np.float32), on_wall


def make_zju_root(root, seed=0):
    """Write the fixture under ``root``; return the truth: K, stems, splits, per-frame depth and radar (u, v, d)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder in ('image', 'radar', 'gt', 'gt_interp'):
        (root / folder).mkdir(parents=True, exist_ok=True)
    K = nominal_K(WIDTH, HEIGHT)
    stems = [f'{i:06d}' for i in range(6)]
    truth = {'K': K, 'stems': stems, 'splits': {k: [stems[i] for i in v] for k, v in SPLITS.items()},
             'depth': {}, 'radar': {}, 'wall_depth': {}}
    for i, stem in enumerate(stems):
        wall_depth = 12.0 + 4.0 * i
        depth, on_wall = frame_depth(K, wall_depth)
        image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        image[:] = (150, 190, 235)                                  # sky (RGB)
        image[depth > 0] = (90, 90, 95)                             # road
        image[on_wall] = (170, 60, 40)                              # brick wall
        noise = rng.integers(-12, 13, size=image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / 'image' / f'{stem}.png'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

        sparse = np.zeros_like(depth)
        sparse[::12, ::2] = depth[::12, ::2]
        cv2.imwrite(str(root / 'gt' / f'{stem}.png'), np.round(sparse * 256).astype(np.uint16))
        cv2.imwrite(str(root / 'gt_interp' / f'{stem}.png'), np.round(depth * 256).astype(np.uint16))

        wall_v, wall_u = np.nonzero(on_wall)
        pick = rng.choice(len(wall_v), size=25, replace=False)
        road_v, road_u = np.nonzero((depth > 0) & ~on_wall & (np.arange(HEIGHT)[:, None] > K[1, 2] + 40))
        pick_road = rng.choice(len(road_v), size=10, replace=False)
        u = np.concatenate([wall_u[pick], road_u[pick_road]]).astype(np.float64)
        v = np.concatenate([wall_v[pick], road_v[pick_road]]).astype(np.float64)
        radar = np.stack([u, v, depth[v.astype(int), u.astype(int)]], axis=1).astype(np.float32)
        np.save(root / 'radar' / f'{stem}.npy', radar)
        truth['depth'][stem] = depth
        truth['radar'][stem] = radar
        truth['wall_depth'][stem] = wall_depth
    for split, names in truth['splits'].items():
        (root / f'{split}.txt').write_text(''.join(f'{n}\n' for n in names))
    (root / 'full.txt').write_text(''.join(f'{n}\n' for n in stems))
    return truth
