"""Sizes are written height x width everywhere (``rcdepth info``, the node's log and diagnostics, every message)."""

import re

import pytest

from rcdepth_ros.paths import SOURCE_ROOT

# An f-string that puts a width-like value before a height-like one: '{width}x{height}', '{shape[1]}x{shape[0]}'.
WIDTH_FIRST = re.compile(r'\{[^{}]*(width|shape\[1\])[^{}]*\}x[\'"]?\s*(f[\'"])?\{[^{}]*(height|shape\[0\])')
SOURCES = sorted(p for folder in ('rcdepth_ros', 'training', 'benchmarks', 'launch')
                 for p in (SOURCE_ROOT / folder).rglob('*.py'))


@pytest.mark.parametrize('path', SOURCES, ids=[str(p.relative_to(SOURCE_ROOT)) for p in SOURCES])
def test_no_size_is_written_width_first(path):
    # join continued f-strings ('...{a.width}x' 'f{a.height}') so a size split over two lines is seen whole
    text = re.sub(r"x['\"]\s*\n\s*f['\"]", 'x', path.read_text())
    assert not WIDTH_FIRST.search(text), WIDTH_FIRST.search(text).group(0)


def test_info_says_height_by_width_as_the_node_does(tiny_student):
    from rcdepth_ros.commands.info import describe_model, format_table
    model, input_cfg, _ = tiny_student
    table = format_table(describe_model(model, input_cfg, input_cfg.height, input_cfg.width, runs=0))
    assert 'input 64x128 (HxW)' in table     # test/nodes/test_depth_node.py: the node reports input_size 64x128
