"""Per-radar time-indexed caches: bounds, nearest lookups, and the sweep selection of a camera frame."""

import pytest

from rcdepth_ros.core.runtime.caches import RadarCache, StampedCache

MS = 1_000_000


def test_cache_keeps_stamp_order_and_its_bounds():
    cache = StampedCache(span_s=0.5, max_items=4)
    for stamp in (300, 100, 200):
        cache.add(stamp * MS, f'm{stamp}')
    assert [s for s, _ in cache.between(0, 10 ** 12)] == [100 * MS, 200 * MS, 300 * MS]
    cache.add(200 * MS, 'again')
    assert cache.replaced == 1 and dict(cache.between(0, 10 ** 12))[200 * MS] == 'again'
    cache.add(750 * MS, 'm750')           # 100 and 200 are now more than 0.5 s behind the newest
    assert [s for s, _ in cache.between(0, 10 ** 12)] == [300 * MS, 750 * MS] and cache.evicted == 2
    for stamp in (710, 720, 740):
        cache.add(stamp * MS, stamp)
    assert len(cache) == 4 and cache.evicted == 3      # max_items
    assert cache.newest_stamp() == 750 * MS
    with pytest.raises(ValueError):
        StampedCache(span_s=0)


def test_nearest_within_tolerance_and_clear():
    cache = StampedCache(span_s=10.0)
    for stamp in (100, 200, 300):
        cache.add(stamp * MS, stamp)
    assert cache.nearest(190 * MS, 20 * MS) == (200 * MS, 200)
    assert cache.nearest(150 * MS, 50 * MS) == (100 * MS, 100)        # a tie goes to the earlier one
    assert cache.nearest(150 * MS, 49 * MS) is None
    assert cache.nearest(1000 * MS, 10 ** 12) == (300 * MS, 300)
    assert len(cache) == 3
    cache.clear()
    assert len(cache) == 0 and cache.newest_stamp() is None


def test_selection_takes_the_window_before_the_image_and_the_matched_sweep():
    cache = RadarCache(2, window_s=0.2, max_sweeps=1)
    for stamp in (700, 800, 900, 1010, 1100):
        cache.add(0, stamp * MS, f'r0@{stamp}')
    for stamp in (850, 960, 1040, 1200):
        cache.add(1, stamp * MS, f'r1@{stamp}')
    image = 1000 * MS
    picked = cache.select(image, slop_s=0.05, matched=(1010 * MS, 'r0@1010'))
    assert [(s.radar, s.msg) for s in picked] == [(0, 'r0@1010'), (1, 'r1@1040')]
    cache.max_sweeps = 3
    picked = cache.select(image, slop_s=0.05, matched=(1010 * MS, 'r0@1010'))
    # radar 0: the matched sweep plus the two before it inside [0.8, 1.05] s; radar 1: all three in the window
    assert [(s.radar, s.msg) for s in picked] == [(0, 'r0@800'), (0, 'r0@900'), (0, 'r0@1010'),
                                                  (1, 'r1@850'), (1, 'r1@960'), (1, 'r1@1040')]
    cache.window_s = 0.0
    picked = cache.select(image, slop_s=0.0, matched=(1010 * MS, 'r0@1010'))
    assert [(s.radar, s.msg) for s in picked] == [(0, 'r0@1010')]      # radar 1 has nothing at the image stamp
    cache.clear()
    assert cache.select(image, 0.05) == []
    with pytest.raises(ValueError):
        RadarCache(0)
