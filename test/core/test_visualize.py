"""Colour pictures of depth maps: range, invalid pixels black, sparse dilation keeps the nearest depth."""

import numpy as np
import pytest

from rcdepth_ros.core.pictures.colour import colorize, dilate_sparse


def test_colorize_range_and_invalid_pixels():
    depth = np.array([[0.0, np.nan, 5.0], [10.0, 20.0, np.inf]], dtype=np.float32)
    picture = colorize(depth, 0.0, 10.0, 'gray')
    assert picture.shape == (2, 3, 3) and picture.dtype == np.uint8
    assert (picture[0, 0] == 0).all() and (picture[0, 1] == 0).all() and (picture[1, 2] == 0).all()
    assert picture[0, 2, 0] == 128 and picture[1, 0, 0] == 255 and picture[1, 1, 0] == 255   # clipped at high
    assert (colorize(depth, 0.0, 10.0, 'turbo', invert=True)[1, 0] != picture[1, 0]).any()
    with pytest.raises(ValueError, match='colour map'):
        colorize(depth, 0, 1, 'nope')
    with pytest.raises(ValueError, match='high > low'):
        colorize(depth, 1, 1)


def test_dilate_sparse_grows_points_nearest_first():
    sparse = np.zeros((5, 5), np.float32)
    sparse[2, 2] = 10.0
    sparse[2, 3] = 4.0
    grown = dilate_sparse(sparse, 1)
    assert grown[1, 1] == pytest.approx(10.0) and grown[2, 2] == pytest.approx(4.0)
    assert grown[0, 0] == 0 and grown[2, 4] == pytest.approx(4.0)
    assert np.array_equal(dilate_sparse(sparse, 0), sparse)
