"""Opening readers by source name."""

import pytest

from rcdepth_ros.data import registry
from rcdepth_ros.data.zju import ZJUReader
from rcdepth_ros.errors import DatasetError


def test_sources_and_default_roots(monkeypatch, tmp_path):
    assert registry.source_names() == ('astyx', 'nuscenes', 'zju', 'kitti_radar', 'synthetic', 'bag')
    monkeypatch.setenv('RCDEPTH_DATA', str(tmp_path))
    assert registry.default_root('astyx') == tmp_path / 'astyx_hires2019'
    assert registry.default_root('synthetic') is None
    assert registry.default_root('kitti_radar') == tmp_path / 'view_of_delft_PUBLIC'
    with pytest.raises(DatasetError, match="unknown data source 'waymo'"):
        registry.default_root('waymo')
    with pytest.raises(DatasetError, match="unknown data source 'waymo'; choose from astyx, nuscenes"):
        registry.open_reader('waymo')


def test_open_reader_passes_split_frames_and_options(zju_fixture):
    root, truth = zju_fixture
    reader = registry.open_reader('zju', root, split='train', frames='0,2', crop_rows=None)
    assert isinstance(reader, ZJUReader) and reader.crop_rows is None
    assert reader.frame_ids == [truth['splits']['train'][0], truth['splits']['train'][2]]
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['zoom'\]; known: \['crop_rows', 'intrinsics', "
                                           r"'radar_image'\]"):
        registry.open_reader('zju', root, zoom=2)


def test_open_reader_uses_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv('RCDEPTH_DATA', str(tmp_path))
    with pytest.raises(DatasetError, match=f'{tmp_path}/astyx_hires2019/dataset.json: file not found'):
        registry.open_reader('astyx')


def test_synthetic_source_takes_no_root():
    synthetic = pytest.importorskip('rcdepth_ros.data.synthetic')
    if not hasattr(synthetic, 'SyntheticReader'):
        pytest.skip('rcdepth_ros.data.synthetic has no SyntheticReader yet')
    reader = registry.open_reader('synthetic', frames='0-1')
    assert reader.source == 'synthetic' and len(reader) == 2
    with pytest.raises(DatasetError, match='is generated and reads no files'):
        registry.open_reader('synthetic', root='/tmp')
