"""
Dense ground truth from sparse lidar depth: linear interpolation over a triangulation, near measurements only.

Used for the accumulated nuScenes ground truth (method.md section 4: many sweeps accumulated, then linearly
interpolated). Pixels farther than ``window`` pixels from any measurement stay 0, so the sky and large holes are
not invented.
"""

import cv2
import numpy as np

from rcdepth_ros.errors import DatasetError


def interpolate_depth(sparse, window=10):
    """
    Return an (H, W) float32 depth map linearly interpolated from the valid pixels (> 0) of ``sparse``.

    Interpolation is barycentric over the Delaunay triangulation of the valid pixels (scipy); pixels outside the
    triangulation, or with no valid pixel within ``window`` pixels (Chebyshev distance), are 0. Valid pixels keep
    their value exactly.
    """
    # scipy is slow to import and only the lidar teacher's ring fill needs it
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import QhullError

    sparse = np.asarray(sparse, dtype=np.float32)
    if sparse.ndim != 2:
        raise DatasetError(f'interpolate_depth: expected an (H, W) depth map, got shape {sparse.shape}')
    if window < 1:
        raise DatasetError(f'interpolate_depth: window must be >= 1 pixel, got {window}')
    valid = sparse > 0
    dense = np.zeros_like(sparse)
    if np.count_nonzero(valid) < 3:
        dense[valid] = sparse[valid]
        return dense
    rows, cols = np.nonzero(valid)
    near = cv2.dilate(valid.astype(np.uint8), np.ones((2 * window + 1, 2 * window + 1), np.uint8)) > 0
    query_rows, query_cols = np.nonzero(near & ~valid)
    try:
        interpolator = LinearNDInterpolator(np.stack([rows, cols], axis=1).astype(np.float64),
                                            sparse[rows, cols].astype(np.float64), fill_value=0.0)
    except QhullError:                               # all valid pixels on one line: nothing to interpolate
        dense[valid] = sparse[valid]
        return dense
    dense[query_rows, query_cols] = interpolator(np.stack([query_rows, query_cols], axis=1).astype(np.float64))
    dense[valid] = sparse[valid]
    return dense


def fill_between_rings(sparse, radius=2):
    """
    Return (filled (H, W) float32, inside (H, W) bool): a sparse lidar depth image filled between its rings.

    A cheap prior for a teacher that reads some lidar rings (``model.lidar_input.prior``): each empty pixel first
    takes the nearest valid pixel of its row within ``radius`` columns (a ring's points are a few columns apart at
    model resolution), then every column is interpolated linearly in depth between the nearest valid pixels above
    and below. Pixels above the highest or below the lowest valid pixel of their column are not ``inside`` (0).
    Valid pixels keep their value. Vectorised: a few array passes, no per-column loop.
    """
    depth = np.asarray(sparse, dtype=np.float32)
    if depth.ndim != 2:
        raise DatasetError(f'fill_between_rings: expected an (H, W) depth map, got shape {depth.shape}')
    height, width = depth.shape
    rowwise = depth.copy()
    distance = np.where(depth > 0, 0, radius + 1)
    for step in range(1, radius + 1):
        for shift in (step, -step):
            moved = np.zeros_like(depth)
            if shift > 0:
                moved[:, shift:] = depth[:, :-shift]
            else:
                moved[:, :shift] = depth[:, -shift:]
            take = (moved > 0) & (distance > step)
            rowwise[take] = moved[take]
            distance[take] = step
    valid = rowwise > 0
    rows = np.arange(height)[:, None]
    above = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)
    below = np.minimum.accumulate(np.where(valid, rows, height)[::-1], axis=0)[::-1]
    inside = (above >= 0) & (below < height)
    cols = np.arange(width)[None, :]
    upper = rowwise[np.clip(above, 0, height - 1), cols]
    lower = rowwise[np.clip(below, 0, height - 1), cols]
    t = np.where(below > above, (rows - above) / np.maximum(below - above, 1), 0.0)
    filled = np.where(inside, upper + (lower - upper) * t, 0.0).astype(np.float32)
    return filled, inside
