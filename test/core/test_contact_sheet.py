"""Contact sheet pictures: panel layout, missing panels, and radar placed back at the original geometry."""

import numpy as np
import pytest

from rcdepth_ros.config import InputConfig
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.pictures.contact_sheet import error_map, render_sheet, SheetRow, sparse_to_original, write_sheet
from rcdepth_ros.core.sensor_types import RadarPoints


def test_sparse_model_map_lands_where_the_returns_project_in_the_original_image():
    K = np.array([[400.0, 0.0, 399.5], [0.0, 400.0, 224.5], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(0)
    xyz = np.column_stack([rng.uniform(-8, 8, 50), rng.uniform(-1, 2, 50), rng.uniform(8, 60, 50)])
    cfg = InputConfig(height=192, width=640)
    model_input = prepare_model_input(np.zeros((450, 800, 3), np.uint8), RadarPoints(xyz), K, cfg)
    back = sparse_to_original(model_input.radar_raw[:, :, 0], model_input.transform)
    truth = sparse_depth_image(xyz, K, 800, 450, 1.0)
    assert back.shape == (450, 800)
    for v, u in zip(*np.nonzero(back)):
        window = truth[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3]
        assert np.any(np.isclose(window, back[v, u], atol=1e-3)), (v, u)   # within 2 px of its true pixel


def test_sheet_layout_and_missing_panels(tmp_path):
    rgb = np.full((90, 160, 3), 100, np.uint8)
    depth = np.full((90, 160), 10.0, np.float32)
    gt = np.zeros_like(depth)
    gt[50, 20:30] = 12.0
    full = SheetRow('a', rgb, np.zeros((32, 64), np.float32), depth, np.zeros_like(depth), gt)
    empty = SheetRow('b', rgb, None, None, None, None)
    sheet = render_sheet([full, empty], width=100)
    assert sheet.shape == (2 * 56 + 2, 500, 3) and sheet.dtype == np.uint8
    assert np.allclose(error_map(depth, gt)[50, 20:30], 2.0) and error_map(depth, gt)[0, 0] == 0
    assert write_sheet(tmp_path / 'sheet.png', [full], width=80) == (45, 400)
    with pytest.raises(ValueError):
        render_sheet([])
