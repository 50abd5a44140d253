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
