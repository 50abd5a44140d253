"""The common reader interface: frame ids, selection, iteration with raise / skip."""

import numpy as np
import pytest

from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.readers import SampleReader, SkippedFrame
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError, RadarFormatError


class TinyReader(SampleReader):
    """A reader whose frame 'b' is broken (a DatasetError) and 'c' fails deeper (a RadarFormatError)."""

    source = 'tiny'

    def __init__(self):
        super().__init__(['a', 'b', 'c', 'd'])
        self.loaded = []

    def _load(self, frame_id):
        self.loaded.append(frame_id)
        if frame_id == 'b':
            raise DatasetError('tiny frame b: image b.jpg is corrupt')
        if frame_id == 'c':
            raise RadarFormatError('c.txt: empty radar file')
        K = np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]])
        return Sample('tiny', frame_id, 0, np.zeros((6, 8, 3), np.uint8), CameraIntrinsics(K, 8, 6),
                      RadarPoints(np.zeros((0, 3))), None, np.zeros((6, 8), np.float32))


def test_frame_ids_len_contains_getitem():
    reader = TinyReader()
    assert len(reader) == 4 and reader.frame_ids == ['a', 'b', 'c', 'd']
    assert 'a' in reader and 'z' not in reader
    assert reader[0].frame_id == 'a' and reader[-1].frame_id == 'd'
    with pytest.raises(DatasetError, match='position 4 is out of range'):
        reader[4]
    with pytest.raises(DatasetError, match="frame 'z' is not one of the 4 frames"):
        reader.sample('z')


def test_iterate_raise_stops_at_first_bad_frame():
    reader = TinyReader()
    got = []
    with pytest.raises(DatasetError, match='b.jpg'):
        for sample in reader:
            got.append(sample.frame_id)
    assert got == ['a']


def test_iterate_skip_counts_every_skipped_frame_with_its_reason():
    reader = TinyReader()
    got = [s.frame_id for s in reader.iterate(on_error='skip')]
    assert got == ['a', 'd']
    assert [s.frame_id for s in reader.skipped] == ['b', 'c']
    assert isinstance(reader.skipped[0], SkippedFrame)
    # A deeper package error is wrapped so the message names the source and the frame.
    assert 'tiny frame c' in reader.skipped[1].reason and 'empty radar file' in reader.skipped[1].reason
    # A new iteration starts a new count.
    list(reader.select('0').iterate(on_error='skip'))
    assert len(reader.skipped) == 2


def test_iterate_rejects_unknown_policy():
    with pytest.raises(DatasetError, match='on_error'):
        list(TinyReader().iterate(on_error='ignore'))


def test_select_by_number_and_by_id():
    reader = TinyReader()
    assert reader.select('3,0-1').frame_ids == ['d', 'a', 'b']
    assert reader.select(['c', 'a']).frame_ids == ['c', 'a']
    assert reader.select(None).frame_ids == reader.frame_ids
    assert len(reader) == 4, 'select must not change the original reader'
    with pytest.raises(DatasetError, match='frame number 9 is out of range'):
        reader.select('9')
    subset = reader.select('3')
    with pytest.raises(DatasetError, match="frame 'a' is not one"):
        subset.sample('a')
