"""
One frame scored against lidar: the ground truth in the camera, the field of view, and the frame's metrics.

Every scorer calls ``evaluate_frame``: ``rcdepth eval`` (a data set's frames through the engine), ``rcdepth
eval-bag`` and the demo (the node's pipeline over a bag), and ``rcdepth_eval_node`` (the depth node's published
images). Each hands it the depth map as published (float32 metres at the original image size, NaN where there is
no prediction) and sparse ground truth at the same size (0 = none).

The field of view is one rule: the rows in which the depth map holds at least one finite value. The engine
restores a model's output to the original size with NaN in the rows its input transform cropped away (method.md
section 4 evaluates the model's input region: nuScenes' 896x1600 crop) and never publishes a non-finite depth
inside the rows it saw, so the rule gives the input transform's rows, and a scorer that sees only the published
image (the live evaluator) finds the same rows as one that knows the transform. A NaN inside a seen row is scored
as a failure of the prediction (``metrics``).
"""

import numpy as np

from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.geometry.transforms import transform_points
from rcdepth_ros.core.messages.clouds import read_points
from rcdepth_ros.errors import FrameError
from rcdepth_ros.evaluation.metrics import compute_frame_metrics, DEFAULT_CAPS


def lidar_points_in_camera(lidar_msg, T_camera_from_lidar):
    """Return the lidar cloud's x, y, z (N, 3) float32 moved into the camera frame (NaN points skipped)."""
    points = read_points(lidar_msg, fields=('x', 'y', 'z'), skip_nans=True)
    xyz = np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float64)
    return transform_points(xyz, T_camera_from_lidar).astype(np.float32)


def lidar_ground_truth(lidar_msg, T_camera_from_lidar, K, width, height):
    """Return the sparse ground truth (H, W) float32 metres, 0 = none: lidar projected, nearest point per pixel."""
    xyz = lidar_points_in_camera(lidar_msg, T_camera_from_lidar)
    return sparse_depth_image(xyz, K, width, height)


def field_of_view(depth):
    """Return the bool (H,) rows of a published depth map that the model saw: those holding a finite value."""
    return np.isfinite(np.asarray(depth)).any(axis=1)


def crop_to_field_of_view(gt, depth):
    """Return ``gt`` with the rows outside ``depth``'s field of view set to 0 (not evaluated)."""
    gt = np.asarray(gt, dtype=np.float32)
    depth = np.asarray(depth)
    if gt.shape != depth.shape:
        raise FrameError(f'evaluation: ground truth {gt.shape} and depth {depth.shape} differ in size', 'gt_size')
    seen_rows = field_of_view(depth)
    if seen_rows.all():
        return gt
    return np.where(seen_rows[:, None], gt, np.float32(0.0))


def evaluate_frame(depth, gt, frame_id, caps=DEFAULT_CAPS):
    """Return the FrameMetrics of a published depth map against sparse ground truth in its field of view."""
    return compute_frame_metrics(depth, crop_to_field_of_view(gt, depth), caps, frame_id=str(frame_id))
