"""Linear interpolation of sparse depth into dense ground truth."""

import numpy as np
import pytest

from rcdepth_ros.data.densify import interpolate_depth
from rcdepth_ros.errors import DatasetError


def test_a_plane_is_interpolated_exactly_and_far_pixels_stay_empty():
    rows, cols = np.mgrid[0:60, 0:80]
    plane = (10.0 + 0.1 * rows + 0.05 * cols).astype(np.float32)
    sparse = np.zeros_like(plane)
    sparse[::6, ::5] = plane[::6, ::5]
    sparse[:, 60:] = 0.0                               # a hole wider than the window on the right
    dense = interpolate_depth(sparse, window=4)
    inside = (rows <= 54) & (cols <= 55)               # inside the triangulation of the samples
    np.testing.assert_allclose(dense[inside], plane[inside], rtol=1e-5)
    assert np.all(dense[:, 60:] == 0)
    np.testing.assert_array_equal(dense[sparse > 0], sparse[sparse > 0])


def test_degenerate_inputs():
    few = np.zeros((10, 10), np.float32)
    few[2, 3] = 5.0
    np.testing.assert_array_equal(interpolate_depth(few), few)
    line = np.zeros((10, 10), np.float32)
    line[4, :] = 7.0                                   # collinear samples: no triangle to interpolate in
    np.testing.assert_array_equal(interpolate_depth(line), line)
    with pytest.raises(DatasetError, match='expected an'):
        interpolate_depth(np.zeros(5))
    with pytest.raises(DatasetError, match='window'):
        interpolate_depth(line, window=0)


def test_fill_between_rings_by_hand():
    from rcdepth_ros.data.densify import fill_between_rings
    sparse = np.zeros((6, 5), np.float32)
    sparse[1, 0], sparse[4, 0] = 10.0, 40.0          # column 0: two rings, 3 rows apart
    sparse[2, 3] = 7.0                                # a ring point one column from column 4
    filled, inside = fill_between_rings(sparse, radius=1)
    assert filled[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 0.0]
    assert inside[:, 0].tolist() == [False, True, True, True, True, False]
    assert filled[2, 4] == 7.0 and filled[2, 2] == 7.0 and inside[:, 4].sum() == 1   # row fill within radius 1
    assert filled[:, 1].tolist() == filled[:, 0].tolist()          # column 1 borrows column 0's ring points
    assert filled[sparse > 0].tolist() == sparse[sparse > 0].tolist()
    assert not fill_between_rings(sparse, radius=0)[1][:, 4].any()
