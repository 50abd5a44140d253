"""Frame selections: parsing, formatting, bad input."""

import pytest

from rcdepth_ros.data.frames import format_frame_spec, parse_frame_spec
from rcdepth_ros.errors import DatasetError


@pytest.mark.parametrize('spec, expected', [
    ('0-3', [0, 1, 2, 3]),
    ('0-2,7', [0, 1, 2, 7]),
    (' 5 ', [5]),
    ('3 - 4, 1', [3, 4, 1]),
    ('2,2,1-2', [2, 1]),
    (4, [4]),
    ([9, 3, 9], [9, 3]),
])
def test_parse_frame_spec(spec, expected):
    assert parse_frame_spec(spec) == expected


@pytest.mark.parametrize('spec, needle', [
    ('', 'empty item'),
    ('1,,2', 'empty item'),
    ('a-3', "'a-3' is not a number"),
    ('5-2', 'ends before it starts'),
    ('-3', 'not a number'),
    ([1, -2], 'non-negative'),
    ([1.5], 'non-negative integers'),
    (True, 'expected numbers'),
    ([], 'selects no frame'),
])
def test_parse_frame_spec_rejects_bad_input(spec, needle):
    with pytest.raises(DatasetError, match='frame selection') as info:
        parse_frame_spec(spec)
    assert needle in str(info.value)


def test_format_round_trip():
    numbers = [0, 1, 2, 3, 7, 9, 10, 4]
    text = format_frame_spec(numbers)
    assert text == '0-3,7,9-10,4'
    assert parse_frame_spec(text) == numbers
