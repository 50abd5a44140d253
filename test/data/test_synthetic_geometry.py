"""Synthetic scenes: exact dense depth, lidar against the dense depth, the ray caster's two paths agree."""

import math

import numpy as np
import pytest

from rcdepth_ros.data.synthetic import raycast, SyntheticConfig, SyntheticReader
from rcdepth_ros.data.synthetic.generator import SceneGenerator
from rcdepth_ros.data.synthetic.scenes import bare_drive, CAMERA_X, pole, wall

CONFIG = SyntheticConfig(height=120, width=200, num_drives=1, frames_per_drive=2, radar_clutter=False)


@pytest.fixture(scope='module')
def generator():
    return SceneGenerator(CONFIG)


def test_wall_at_known_distance_renders_its_exact_depth(generator):
    drive = bare_drive(CONFIG, [wall(s=25.0 + CAMERA_X, d=-1.75, width=6.0, height=4.0)], camera_height=1.5)
    frame = generator.render(drive, 0)
    depth = frame.camera.depth
    h, w = depth.shape
    K = drive.rig.K
    # The wall spans 6 m centred on the camera's axis: at 25 m it covers |u - cx| < 3 / 25 * fx.
    u = np.arange(w)
    inside = np.abs(u - K[0, 2]) < 2.5 / 25.0 * K[0, 0]
    rows = slice(int(K[1, 2]) - 5, int(K[1, 2]) + 5)        # around the horizon, on the wall
    np.testing.assert_allclose(depth[rows][:, inside], 25.0, rtol=2e-6)
    # Nothing behind it is visible, the sky above it has no depth.
    assert depth[0, int(K[0, 2])] == 0.0


def test_flat_road_depth_follows_the_camera_height(generator):
    height = 1.5
    drive = bare_drive(CONFIG, [], camera_height=height)
    depth = generator.render(drive, 0).camera.depth
    K = drive.rig.K
    rows = np.arange(int(K[1, 2]) + 6, depth.shape[0])
    column = int(K[0, 2])
    # Ground plane z = 0 seen by a level camera at `height`: depth = fy * height / (v - cy).
    np.testing.assert_allclose(depth[rows, column], K[1, 1] * height / (rows - K[1, 2]), rtol=1e-5)


def test_pole_depth_is_distance_minus_radius(generator):
    distance, radius = 18.0, 0.3
    drive = bare_drive(CONFIG, [pole(s=distance + CAMERA_X, d=-1.75, radius=radius, height=8.0)])
    depth = generator.render(drive, 0).camera.depth
    K = drive.rig.K
    centre = depth[int(K[1, 2]) - 10, int(round(K[0, 2]))]
    # The pixel centre's ray is slightly off the pole's axis: the hit is within a pixel's footprint of d - r.
    assert centre == pytest.approx(distance - radius, abs=distance / K[0, 0])


def test_pitch_moves_the_horizon(generator):
    level = generator.render(bare_drive(CONFIG, [], pitch_deg=0.0), 0).camera.depth
    down = generator.render(bare_drive(CONFIG, [], pitch_deg=3.0), 0).camera.depth
    fy = CONFIG.focal_ratio * CONFIG.width
    first_ground = [int(np.argmax(d[:, CONFIG.width // 2] > 0)) for d in (level, down)]
    assert first_ground[0] - first_ground[1] == pytest.approx(fy * math.tan(math.radians(3.0)), abs=2)


def _surface_depth(frame, u, v):
    """
    Return the rendered depth at sub-pixel positions: 1 / z interpolated bilinearly, which is exact on a plane.

    NaN where the four pixels around a position do not all show the same primitive (or the same ground part).
    """
    depth, index = frame.camera.depth, frame.camera.index
    u0 = np.clip(np.floor(u).astype(int), 0, depth.shape[1] - 2)
    v0 = np.clip(np.floor(v).astype(int), 0, depth.shape[0] - 2)
    fu, fv = u - u0, v - v0
    corners = [(v0, u0), (v0, u0 + 1), (v0 + 1, u0), (v0 + 1, u0 + 1)]
    weights = [(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv]
    same = np.ones(u.shape, dtype=bool)
    inverse = np.zeros(u.shape)
    for (r, c), wgt in zip(corners, weights):
        same &= (index[r, c] == index[v0, u0]) & (depth[r, c] > 0)
        inverse += wgt / np.maximum(depth[r, c], 1e-6)
    return np.where(same, 1.0 / inverse, np.nan)


def test_lidar_agrees_with_dense_depth_within_noise():
    reader = SyntheticReader(SyntheticConfig(height=180, width=320, num_drives=2, frames_per_drive=3))
    errors = []
    for frame_id in ('drive0000/0001', 'drive0001/0002'):
        frame = reader.frame(frame_id)
        points = frame.sample.lidar_xyz.astype(np.float64)
        K = frame.sample.intrinsics.K
        z = points[:, 2]
        front = z > 1.0
        u = K[0, 0] * points[front, 0] / z[front] + K[0, 2]
        v = K[1, 1] * points[front, 1] / z[front] + K[1, 2]
        inside = (u >= 0) & (u <= frame.sample.width - 1) & (v >= 0) & (v <= frame.sample.height - 1)
        surface = _surface_depth(frame, u[inside], v[inside])
        ok = np.isfinite(surface)
        errors.append(z[front][inside][ok] - surface[ok])
    error = np.concatenate(errors)
    assert error.size > 2000
    sigma = reader.config.lidar_range_noise_m
    # Range noise along the beam; a few points sit behind the camera's surface where the lidar, mounted higher,
    # sees past an occluder's edge (parallax) or reaches a surface the camera sees in another pixel.
    assert np.mean(np.abs(error) < 4 * sigma + 1e-3) > 0.95
    assert np.median(np.abs(error)) < sigma
    assert np.abs(np.median(error)) < 0.2 * sigma


def test_noise_free_lidar_points_on_a_wall_are_exact():
    config = SyntheticConfig(height=120, width=200, num_drives=1, frames_per_drive=1, lidar_range_noise_m=0.0,
                             lidar_dropout=0.0)
    generator = SceneGenerator(config)
    drive = bare_drive(config, [wall(s=30.0 + CAMERA_X, d=-1.75, width=20.0, height=10.0)])
    sample = generator.render(drive, 0).sample
    x, y, z = sample.lidar_xyz.T
    on_wall = (np.abs(x) < 5.0) & (y < 1.0) & (z > 20.0)      # y points down: more than 0.5 m above the road
    assert on_wall.sum() > 100
    np.testing.assert_allclose(sample.lidar_xyz[on_wall, 2], 30.0, atol=1e-4)


def test_batched_and_per_primitive_casting_agree(monkeypatch):
    reader = SyntheticReader(SyntheticConfig(height=120, width=200, num_drives=1, frames_per_drive=2))
    frame = reader.frame('drive0000/0001')
    drive, primitives = frame.drive, frame.primitives
    T = np.linalg.inv(frame.sample.ego_pose)
    grid = reader.generator.camera.grid
    results = []
    for area in (0, 10 ** 9):
        monkeypatch.setattr(raycast, 'SMALL_AREA', area)
        results.append(raycast.Caster(grid, T).run(drive.road, primitives))
    single, batch = results
    same = single.index == batch.index
    assert same.mean() > 0.999                      # only pixel centres exactly on an edge may differ
    objects = same & (single.index >= 0)
    np.testing.assert_allclose(batch.t[objects], single.t[objects], rtol=1e-5)


def test_beam_rows_are_culled_conservatively(monkeypatch):
    reader = SyntheticReader(SyntheticConfig(height=96, width=160, num_drives=2, frames_per_drive=30))
    frame = reader.frame('drive0001/0020')
    generator = reader.generator
    full_rows = raycast.SphericalGrid.blocks

    def every_row(grid, corners):
        (r0, r1, c0, c1), valid = full_rows(grid, corners)
        return (np.zeros_like(r0), np.full_like(r1, grid.shape[0]), c0, c1), valid

    for grid, role, reach in ((generator.lidar.grid, 'lidar', 100.0), (generator.radar.grid, 'radar', 150.0)):
        T = np.linalg.inv(frame.sample.sensor_poses[role])
        culled = raycast.Caster(grid, T, max_range=reach).run(frame.drive.road, frame.primitives)
        monkeypatch.setattr(raycast.SphericalGrid, 'blocks', every_row)
        full = raycast.Caster(grid, T, max_range=reach).run(frame.drive.road, frame.primitives)
        monkeypatch.setattr(raycast.SphericalGrid, 'blocks', full_rows)
        assert np.array_equal(culled.index, full.index) and np.array_equal(culled.t, full.t)
        assert (culled.index >= 0).sum() > 100
