"""Projection, z-buffer, radar image and K under resize / crop."""

from hypothesis import given, strategies as st
import numpy as np
import pytest

from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import ImageTransform, prepare_model_input, resize_sparse_depth
from rcdepth_ros.core.geometry.projection import project_points, sparse_depth_image
from rcdepth_ros.core.geometry.radar_image import radar_image
from rcdepth_ros.core.geometry.transforms import (invert_transform, quaternion_xyzw_from_matrix,
                                                  transform_from_translation_quaternion, transform_points)
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import ProjectionError

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def test_projection_drops_invalid_points():
    pts = np.array([
        [0.0, 0.0, 10.0],        # centre
        [0.0, 0.0, -5.0],        # behind
        [0.0, 0.0, 0.5],         # closer than min depth
        [100.0, 0.0, 10.0],      # outside to the right
        [np.nan, 0.0, 10.0],     # NaN
        [0.0, np.inf, 10.0],     # inf
        [1.0, 1.0, 20.0],        # valid
    ])
    hits = project_points(pts, K, 640, 480, min_depth=1.0)
    assert hits.index.tolist() == [0, 6]
    assert (hits.u[0], hits.v[0]) == (320, 240)
    assert (hits.u[1], hits.v[1]) == (345, 265)


def test_nearest_point_wins_on_collision():
    pts = np.array([[0.0, 0.0, 30.0], [0.0, 0.0, 10.0], [0.0, 0.0, 20.0]])
    depth = sparse_depth_image(pts, K, 640, 480)
    assert depth[240, 320] == pytest.approx(10.0)
    assert np.count_nonzero(depth) == 1


def test_radar_image_channels_and_nearest_attributes():
    radar = RadarPoints(xyz=[[0, 0, 30.0], [0, 0, 10.0], [1.0, 0, 10.0]], rcs=[5.0, 7.0, 9.0],
                        v_radial=[1.0, -2.0, 3.0])
    img = radar_image(radar, K, 640, 480, channels=('depth', 'rcs', 'v_radial', 'mask'))
    assert img.shape == (480, 640, 4)
    assert img[240, 320].tolist() == [10.0, 7.0, -2.0, 1.0]
    assert img[240, 370].tolist() == [10.0, 9.0, 3.0, 1.0]
    assert np.count_nonzero(img[..., 3]) == 2


def test_vertical_extension_spans_metric_height():
    radar = RadarPoints(xyz=[[0.0, 0.0, 10.0]], rcs=[1.0])
    img = radar_image(radar, K, 640, 480, channels=('depth', 'mask'), vertical_extension_m=2.0)
    rows = np.nonzero(img[:, 320, 1])[0]
    # fy * h / z = 500 * 2 / 10 = 100 pixels, centred on row 240.
    assert rows.min() == 190 and rows.max() == 290
    assert np.all(img[rows, 320, 0] == 10.0)


def test_bad_shapes_raise_projection_error():
    with pytest.raises(ProjectionError, match='shape'):
        project_points(np.zeros((4, 2)), K, 640, 480)
    with pytest.raises(ProjectionError, match='focal'):
        project_points(np.zeros((1, 3)), np.zeros((3, 3)), 640, 480)
    with pytest.raises(ProjectionError, match='4x4'):
        transform_points(np.zeros((1, 3)), np.eye(3))


def test_empty_points():
    assert sparse_depth_image(np.zeros((0, 3)), K, 64, 48).sum() == 0
    img = radar_image(RadarPoints(np.zeros((0, 3))), K, 64, 48)
    assert img.shape == (48, 64, 4) and not img.any()


@given(scale_w=st.integers(160, 1280).map(lambda w: w - w % 32), crop=st.sampled_from(['bottom', 'top', 'center']),
       x=st.floats(-8, 8), y=st.floats(-3, 3), z=st.floats(2, 80))
def test_intrinsics_follow_resize_and_crop(scale_w, crop, x, y, z):
    """A point projected with the transformed K lands where the resized original pixel lands."""
    tf = ImageTransform.fit_width(480, 640, 128, scale_w, crop)
    Kin = tf.intrinsics(K)
    u0 = K[0, 0] * x / z + K[0, 2]
    v0 = K[1, 1] * y / z + K[1, 2]
    u1 = Kin[0, 0] * x / z + Kin[0, 2]
    v1 = Kin[1, 1] * y / z + Kin[1, 2]
    assert u1 == pytest.approx(tf.scale * (u0 + 0.5) - 0.5, abs=1e-6)
    sy = tf.scaled_height / 480
    assert v1 == pytest.approx(sy * (v0 + 0.5) - 0.5 - tf.offset_top, abs=1e-6)


def test_image_transform_apply_and_restore_round_trip():
    tf = ImageTransform.fit_width(618, 2048, 192, 640, 'bottom')
    assert (tf.scaled_height, tf.offset_top) == (193, 1)
    image = np.random.default_rng(0).integers(0, 255, (618, 2048, 3), dtype=np.uint8)
    assert tf.apply(image).shape == (192, 640, 3)
    small = np.full((192, 640), 7.0, np.float32)
    back = tf.restore(small)
    assert back.shape == (618, 2048)
    assert np.isnan(back[0]).all()            # the cropped top row has no prediction
    assert np.allclose(back[10:], 7.0)


def test_prepare_model_input_shapes_and_scaling():
    cfg = InputConfig(height=96, width=160)
    image = np.zeros((240, 320, 3), np.uint8)
    radar = RadarPoints(xyz=[[0.0, 0.0, 20.0]], rcs=[10.0], v_radial=[4.0])
    Kimg = np.array([[250.0, 0, 160], [0, 250.0, 120], [0, 0, 1]])
    mi = prepare_model_input(image, radar, Kimg, cfg)
    assert mi.image.shape == (3, 96, 160) and mi.radar.shape == (4, 96, 160)
    v, u = np.nonzero(mi.radar_raw[..., 3])
    assert len(u) == 1
    assert mi.radar[0, v[0], u[0]] == pytest.approx(20.0 / cfg.radar_scale['depth'])
    assert mi.radar[1, v[0], u[0]] == pytest.approx(10.0 / cfg.radar_scale['rcs'])


def test_transform_round_trip_and_quaternion():
    T = transform_from_translation_quaternion([1, 2, 3], [0.1, 0.2, 0.3, 0.9])
    assert np.allclose(invert_transform(T) @ T, np.eye(4))
    q = quaternion_xyzw_from_matrix(T[:3, :3])
    assert np.allclose(q, np.array([0.1, 0.2, 0.3, 0.9]) / np.linalg.norm([0.1, 0.2, 0.3, 0.9]))


def test_resize_sparse_depth_keeps_values():
    depth = np.zeros((480, 640), np.float32)
    depth[240, 320] = 12.5
    depth[479, 0] = 3.0
    tf = ImageTransform.fit_width(480, 640, 224, 320, 'bottom')
    out = resize_sparse_depth(depth, tf)
    assert sorted(out[out > 0].tolist()) == [3.0, 12.5]
