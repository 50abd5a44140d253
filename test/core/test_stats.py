"""Run-time statistics: rates over a window, latency percentiles, counters."""

import numpy as np
import pytest

from rcdepth_ros.core.runtime.stats import Counters, LatencyStats, RateMeter, Throttle


def test_rate_is_the_inverse_mean_period_within_the_window():
    meter = RateMeter(window_s=2.0)
    assert meter.rate(now=0.0) == 0.0
    for i in range(11):
        meter.tick(now=i * 0.1)           # 10 Hz for 1 s
    assert meter.rate(now=1.0) == pytest.approx(10.0)
    assert meter.rate(now=2.05) == pytest.approx(10.0)   # events older than 2 s are trimmed (0.0 and 0.05 gone)
    assert meter.rate(now=10.0) == 0.0   # nothing recent
    assert meter.count == 11
    meter.reset()
    assert meter.rate(now=1.0) == 0.0 and meter.count == 11
    with pytest.raises(ValueError):
        RateMeter(window_s=0)


def test_latency_percentiles_over_the_ring():
    stats = LatencyStats(size=100)
    empty = stats.summary()
    assert empty['count'] == 0 and empty['p50'] is None and empty['mean'] is None
    for value in range(1, 201):
        stats.add(value)
    stats.add(float('nan'))
    stats.add(-1.0)
    summary = stats.summary()
    assert summary['count'] == 200
    recent = np.arange(101, 201, dtype=float)     # the ring keeps the last 100
    assert summary['p50'] == pytest.approx(np.percentile(recent, 50))
    assert summary['p95'] == pytest.approx(np.percentile(recent, 95))
    assert summary['max'] == 200 and summary['mean'] == pytest.approx(recent.mean())
    assert stats.percentile(99) == pytest.approx(np.percentile(recent, 99))


def test_counters_start_listed_and_add_up():
    counters = Counters(['a', 'b'])
    assert counters.snapshot() == {'a': 0, 'b': 0}
    assert counters.add('a') == 1
    assert counters.add('c', 5) == 5
    assert counters.get('a') == 1 and counters.get('missing') == 0
    assert counters.total() == 6
    assert list(counters.snapshot()) == ['a', 'b', 'c']


def test_throttle_lets_each_key_through_once_per_period():
    throttle = Throttle(period_s=5.0)
    assert throttle.ready('a', now=0.0)
    assert not throttle.ready('a', now=1.0) and not throttle.ready('a', now=4.9)
    assert throttle.ready('b', now=1.0)                  # keys are independent
    assert throttle.suppressed('a') == 2 and throttle.suppressed('a') == 0
    assert throttle.ready('a', now=5.0)
    assert Throttle(0.0).ready('x', now=0.0) and Throttle(0.0).ready('x', now=0.0)
