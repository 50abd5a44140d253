"""Extrinsics providers: fixed transforms (parameters, /tf_static) and a bag's TF buffer through the world frame."""

import numpy as np
import pytest

from rcdepth_ros.core.bags.tf import TransformBuffer
from rcdepth_ros.core.geometry.extrinsics import (static_extrinsics_from_buffer, StaticExtrinsics,
                                                  TransformBufferExtrinsics)
from rcdepth_ros.core.geometry.transforms import invert_transform, transform_from_translation_quaternion
from rcdepth_ros.errors import ProjectionError


def _pose(x, yaw_deg=0.0):
    half = np.deg2rad(yaw_deg) / 2
    return transform_from_translation_quaternion((x, 0.2, -0.1), (0.0, np.sin(half), 0.0, np.cos(half)))


def test_static_lookup_chains_through_the_camera_and_names_unknown_frames():
    radar, lidar = _pose(1.0, 10.0), _pose(-0.5, -20.0)
    extrinsics = StaticExtrinsics({'radar': radar, 'lidar': lidar}, 'cam')
    assert np.allclose(extrinsics.lookup('cam', 0, 'radar', 5), radar)
    assert np.allclose(extrinsics.lookup('cam', 0, 'cam', 0), np.eye(4))
    assert np.allclose(extrinsics.lookup('lidar', 0, 'radar', 0), invert_transform(lidar) @ radar)
    with pytest.raises(ProjectionError, match="'sonar'.*known frames \\['lidar', 'radar'\\]"):
        extrinsics.lookup('cam', 0, 'sonar', 0)
    any_camera = StaticExtrinsics({'radar': radar})       # camera frame name not configured: the image's is used
    assert np.allclose(any_camera.lookup('whatever_optical', 0, 'radar', 0), radar)
    with pytest.raises(ProjectionError, match='4x4'):
        StaticExtrinsics({'radar': np.eye(3)})


def test_buffer_lookups_static_and_through_the_world_frame():
    buffer = TransformBuffer()
    radar = _pose(1.0, 10.0)
    buffer.set_transform('cam', 'radar', radar, static=True)
    static = TransformBufferExtrinsics(buffer, 'odom')
    assert np.allclose(static.lookup('cam', 0, 'radar', 0), radar)
    assert np.allclose(static_extrinsics_from_buffer(buffer, 'cam').lookup('cam', 0, 'radar', 0), radar)
    # ego motion: the camera moves 1 m along its z between t=0 and t=1 s
    buffer.set_transform('odom', 'cam', np.eye(4), 0, static=False)
    moved = np.eye(4)
    moved[2, 3] = 1.0
    buffer.set_transform('odom', 'cam', moved, 10 ** 9, static=False)
    moving = TransformBufferExtrinsics(buffer, 'odom')
    T = moving.lookup('cam', 10 ** 9, 'radar', 0)      # radar fired at t=0, image at t=1 s
    assert np.allclose(T, invert_transform(moved) @ radar)
    with pytest.raises(ProjectionError, match='lidar'):
        moving.lookup('cam', 10 ** 9, 'lidar', 0)


def test_static_extrinsics_ignore_the_dynamic_parent_and_chain_siblings():
    buffer = TransformBuffer()
    base_from_camera, base_from_radar = _pose(1.5, 5.0), _pose(3.0, -7.0)
    buffer.set_transform('base_link', 'cam', base_from_camera, static=True)
    buffer.set_transform('base_link', 'radar', base_from_radar, static=True)
    buffer.set_transform('odom', 'base_link', _pose(10.0), 0, static=False)      # ego motion: not used
    extrinsics = static_extrinsics_from_buffer(buffer, 'cam')
    assert extrinsics.frames() == ['base_link', 'radar']
    assert np.allclose(extrinsics.lookup('cam', 0, 'radar', 0),
                       invert_transform(base_from_camera) @ base_from_radar)
