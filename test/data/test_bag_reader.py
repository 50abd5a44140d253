"""A recorded bag as a data set (``open_reader('bag', path)``): the frames the writer stored come back."""

import numpy as np
import pytest

from rcdepth_ros.core.bags import write_bag
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.errors import DatasetError, RcdepthError


@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    reader = SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=3, width=192, height=112))
    return reader, write_bag(reader, tmp_path_factory.mktemp('bags') / 'drive').path


def test_bag_frames_come_back_as_the_samples_written(drive):
    original, path = drive
    reader = open_reader('bag', path)
    assert reader.frame_ids == original.frame_ids and len(reader) == 3
    for written, read in zip(original, reader):
        assert read.source == 'bag' and read.frame_id == written.frame_id and read.stamp_ns == written.stamp_ns
        np.testing.assert_array_equal(read.image, written.image)
        np.testing.assert_allclose(read.intrinsics.K, written.intrinsics.K)
        np.testing.assert_allclose(read.radar.xyz, written.radar.xyz, atol=1e-4)
        np.testing.assert_allclose(read.radar.rcs, written.radar.rcs)
        assert np.count_nonzero(read.depth_gt) == np.count_nonzero(written.depth_gt)
        np.testing.assert_allclose(read.depth_gt, written.depth_gt, atol=1e-4)


def test_one_frame_by_id_and_a_selection(drive):
    original, path = drive
    last = original.frame_ids[-1]
    reader = open_reader('bag', path, frames='1-2')
    assert reader.frame_ids == original.frame_ids[1:]
    np.testing.assert_array_equal(reader.sample(last).image, original.sample(last).image)
    assert [s.frame_id for s in reader.iterate('skip')] == original.frame_ids[1:] and reader.skipped == []


def test_bad_bags_are_named(drive, tmp_path):
    _, path = drive
    with pytest.raises(DatasetError, match='no splits'):
        open_reader('bag', path, split='val')
    with pytest.raises(RcdepthError, match='missing'):
        open_reader('bag', tmp_path / 'missing')
