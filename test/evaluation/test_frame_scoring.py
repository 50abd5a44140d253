"""One frame scored against lidar: ground truth in the camera, the one field-of-view rule, the frame's metrics."""

import numpy as np
import pytest

from rcdepth_ros.core.geometry.extrinsics import StaticExtrinsics
from rcdepth_ros.core.geometry.model_input import ImageTransform
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.messages.msgtypes import rosbags_message_types
from rcdepth_ros.errors import FrameError
from rcdepth_ros.evaluation.frames import crop_to_field_of_view, evaluate_frame, field_of_view, lidar_ground_truth
from support.frame_messages import CAMERA_FRAME, FrameMessageFactory, LIDAR_FRAME

T0 = 1_700_000_000 * 10 ** 9


@pytest.fixture(scope='module')
def factory():
    return FrameMessageFactory(rosbags_message_types(), width=160, height=120)


@pytest.fixture
def extrinsics(factory):
    return StaticExtrinsics(factory.extrinsics(), CAMERA_FRAME)


def test_lidar_ground_truth_and_metrics(factory, extrinsics):
    T = extrinsics.lookup(CAMERA_FRAME, T0, LIDAR_FRAME, T0)
    gt = lidar_ground_truth(factory.lidar(T0), T, factory.intrinsics.K, 160, 120)
    expected = sparse_depth_image(factory.lidar_camera(T0), factory.intrinsics.K, 160, 120)
    assert np.allclose(gt, expected, atol=1e-3) and (gt > 0).sum() > 500
    depth = np.where(gt > 0, gt, 20.0).astype(np.float32)
    depth[:30] = np.nan                                       # rows the model did not see
    depth[60, 5] = np.nan                                     # a hole inside a seen row: a failure
    cropped = crop_to_field_of_view(gt, depth)
    assert (cropped[:30] == 0).all() and np.array_equal(cropped[30:], gt[30:])
    metrics = evaluate_frame(depth, gt, T0)
    assert metrics.frame_id == str(T0)
    assert metrics.nonfinite_pred == int(gt[60, 5] > 0)
    if gt[60, 5] == 0:
        assert metrics.caps['80']['mae'] == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(FrameError):
        crop_to_field_of_view(gt, depth[:10])


@pytest.mark.parametrize('out_height', [64, 32, 24])
def test_field_of_view_of_a_restored_map_is_the_input_transform_rows(out_height):
    """A finite prediction restored to the original size is finite exactly in the rows the transform kept."""
    transform = ImageTransform.fit_width(96, 192, out_height, 128, crop='bottom')
    restored = transform.restore(np.full((out_height, 128), 7.0, np.float32))
    rows = field_of_view(restored)
    assert np.array_equal(np.isfinite(restored), np.repeat(rows[:, None], 192, axis=1))
    kept = np.nonzero(rows)[0]
    assert kept[-1] == 95 and np.all(np.diff(kept) == 1)
    assert rows.all() == (out_height == 64)
