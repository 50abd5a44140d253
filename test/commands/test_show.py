"""``rcdepth show``: pictures of frames with radar and lidar drawn, and its errors."""

import cv2
import numpy as np
import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.commands.show import render_sample
from rcdepth_ros.core.geometry.projection import project_points
from rcdepth_ros.data.zju import ZJUReader

pytest.importorskip('matplotlib')


def test_show_zju_writes_image_with_dense_panel(zju_fixture, tmp_path, capsys):
    root, _ = zju_fixture
    out = tmp_path / 'zju.png'
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', '2', '--out', str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] == 1600
    assert picture.shape[0] > 600, 'the dense GT panel is drawn below the image'
    printed = capsys.readouterr().out
    assert 'dense GT yes' in printed and 'radar' in printed


def test_render_draws_points_where_they_project(zju_fixture, tmp_path):
    root, _ = zju_fixture
    sample = ZJUReader(root).sample('000001')
    with_points = tmp_path / 'a.png'
    summary = render_sample(sample, with_points)
    inside = len(project_points(sample.radar.xyz, sample.intrinsics.K, sample.width, sample.height))
    assert 0 < inside < len(sample.radar)
    assert summary.startswith(f'radar {inside} of {len(sample.radar)} returns in the image')
    sample.radar = sample.radar.select(np.zeros(0, dtype=int))
    without = tmp_path / 'b.png'
    render_sample(sample, without)
    a, b = cv2.imread(str(with_points)), cv2.imread(str(without))
    assert a.shape == b.shape and np.count_nonzero(np.any(a != b, axis=2)) > 500


def test_show_astyx_with_boxes(astyx_root, tmp_path, capsys):
    out = tmp_path / 'astyx.png'
    assert main(['show', '--source', 'astyx', '--root', str(astyx_root), '--frame', '400', '--out', str(out)]) == 0
    assert cv2.imread(str(out)) is not None
    assert '5 boxes' in capsys.readouterr().out


def test_show_errors(zju_fixture, tmp_path, capsys):
    root, _ = zju_fixture
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', '17', '--out',
                 str(tmp_path / 'x.png')]) == 2
    assert 'frame number 17 is out of range' in capsys.readouterr().err
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', 'nope', '--out',
                 str(tmp_path / 'x.png')]) == 2
    assert "frame 'nope' is not one of" in capsys.readouterr().err
    assert main(['show', '--source', 'zju', '--root', str(root), '--frame', '1', '--max-depth', '0', '--out',
                 str(tmp_path / 'x.png')]) == 2
    assert '--max-depth must be positive' in capsys.readouterr().err


def test_show_synthetic(tmp_path, capsys):
    synthetic = pytest.importorskip('rcdepth_ros.data.synthetic')
    if not hasattr(synthetic, 'SyntheticReader'):
        pytest.skip('rcdepth_ros.data.synthetic has no SyntheticReader yet')
    out = tmp_path / 'synthetic.png'
    assert main(['show', '--source', 'synthetic', '--frame', '3', '--out', str(out)]) == 0
    assert cv2.imread(str(out)) is not None and 'dense GT yes' in capsys.readouterr().out
