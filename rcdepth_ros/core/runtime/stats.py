"""
Run-time statistics the node reports in its diagnostics: event rates, latency percentiles, named counters.

All three are thread-safe (callbacks, the worker and the diagnostics timer touch them from different threads) and
bounded (a ring of recent samples), so a node that runs for days keeps the same memory. Times are taken from
``time.monotonic`` unless the caller passes its own, which keeps the tests deterministic.
"""

import collections
import threading
import time

import numpy as np

PERCENTILES = (50, 95, 99)


class RateMeter:
    """
    Events per second over the last ``window_s`` seconds.

    ``tick(now=None)`` records one event; ``rate(now=None)`` is ``(n - 1) / (newest - oldest)`` over the events of
    the window (the inverse of the mean period), 0 with fewer than two events in it. ``count`` is every event ever.
    """

    def __init__(self, window_s=5.0, max_events=10000):
        """Keep at most ``max_events`` event times of the last ``window_s`` seconds."""
        if not window_s > 0:
            raise ValueError(f'rate window must be > 0 s, got {window_s}')
        self.window_s = float(window_s)
        self._times = collections.deque(maxlen=int(max_events))
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now=None):
        """Record one event at ``now`` (monotonic seconds)."""
        now = time.monotonic() if now is None else float(now)
        with self._lock:
            self._times.append(now)
            self.count += 1
            self._trim(now)

    def _trim(self, now):
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now=None):
        """Return the event rate in Hz over the window ending at ``now``."""
        now = time.monotonic() if now is None else float(now)
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def reset(self):
        """Forget the recent events (the total ``count`` stays)."""
        with self._lock:
            self._times.clear()


class LatencyStats:
    """
    The last ``size`` values of a latency (milliseconds) and their percentiles.

    ``add(ms)`` records one; ``summary()`` returns ``{'count', 'mean', 'max', 'p50', 'p95', 'p99'}`` over the ring
    (None values when empty); ``count`` is every value ever added.
    """

    def __init__(self, size=1000):
        """Keep the last ``size`` values."""
        self._values = collections.deque(maxlen=int(size))
        self._lock = threading.Lock()
        self.count = 0

    def add(self, value_ms):
        """Record one latency in milliseconds (NaN and negative values are ignored)."""
        value = float(value_ms)
        if not value >= 0:
            return
        with self._lock:
            self._values.append(value)
            self.count += 1

    def values(self):
        """Return the recent values as a numpy array (oldest first)."""
        with self._lock:
            return np.asarray(self._values, dtype=np.float64)

    def percentile(self, q):
        """Return the ``q``-th percentile of the recent values, or None when there are none."""
        values = self.values()
        return float(np.percentile(values, q)) if values.size else None

    def summary(self):
        """Return count, mean, max and the PERCENTILES of the recent values (None when empty)."""
        values = self.values()
        out = {'count': self.count}
        if not values.size:
            out.update({'mean': None, 'max': None}, **{f'p{q}': None for q in PERCENTILES})
            return out
        out.update({'mean': float(values.mean()), 'max': float(values.max())})
        for q, value in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
            out[f'p{q}'] = float(value)
        return out

    def reset(self):
        """Forget the recent values (``count`` stays)."""
        with self._lock:
            self._values.clear()


class Counters:
    """Named integer counters (drops per reason, warnings per kind): ``add(name, n=1)``, ``get``, ``snapshot``."""

    def __init__(self, names=()):
        """Start every name in ``names`` at 0 (so diagnostics list them before they first happen)."""
        self._counts = collections.OrderedDict((str(n), 0) for n in names)
        self._lock = threading.Lock()

    def add(self, name, n=1):
        """Add ``n`` to counter ``name`` (created on first use); return the new value."""
        with self._lock:
            value = self._counts.get(str(name), 0) + int(n)
            self._counts[str(name)] = value
            return value

    def get(self, name):
        """Return the value of ``name`` (0 when never counted)."""
        with self._lock:
            return self._counts.get(str(name), 0)

    def snapshot(self):
        """Return a copy of every counter as a plain dict."""
        with self._lock:
            return dict(self._counts)

    def total(self):
        """Return the sum of every counter."""
        with self._lock:
            return sum(self._counts.values())


class Throttle:
    """
    Per-key rate limit for warnings: ``ready(key)`` is True at most once per ``period_s`` for each key.

    ``suppressed(key)`` says how many calls were held back since the key last passed (the next warning reports it).
    """

    def __init__(self, period_s=5.0):
        """Let each key through at most once per ``period_s`` seconds (0: always)."""
        self.period_s = float(period_s)
        self._last = {}
        self._held = {}
        self._lock = threading.Lock()

    def ready(self, key, now=None):
        """Return True when ``key`` may be logged now; count it as held back otherwise."""
        now = time.monotonic() if now is None else float(now)
        with self._lock:
            last = self._last.get(key)
            if last is None or now - last >= self.period_s:
                self._last[key] = now
                return True
            self._held[key] = self._held.get(key, 0) + 1
            return False

    def suppressed(self, key):
        """Return and reset the number of calls of ``key`` held back since it last passed."""
        with self._lock:
            return self._held.pop(key, 0)
