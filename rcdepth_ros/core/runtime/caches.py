"""
Time-indexed caches of recent messages by header stamp: one per radar topic (and the evaluator's lidar).

A camera frame takes, of every radar, the sweeps whose stamps fall in ``[t_image - window, t_image + slop]``:
``window`` accumulates several sweeps (multi-sweep input), ``slop`` admits a sweep fired just after the exposure,
the tolerance the approximate-time matching already allows. The first radar's sweep that the synchroniser matched
to the image is always used. At most ``max_sweeps`` sweeps per radar are taken, newest first.

Stamps are header stamps (nanoseconds), never arrival times. Caches are bounded by a span of time and a number of
messages; whatever falls out is counted in ``evicted``.
"""

import bisect
import dataclasses
import threading


@dataclasses.dataclass
class Sweep:
    """One cached message: the index of its radar, its header stamp (ns) and the message itself."""

    radar: int
    stamp_ns: int
    msg: object


class StampedCache:
    """
    Messages of one topic ordered by header stamp, bounded by ``span_s`` behind the newest and ``max_items``.

    A message with a stamp already cached replaces it (counted in ``replaced``).
    """

    def __init__(self, span_s=2.0, max_items=100):
        """Keep messages no older than ``span_s`` before the newest, at most ``max_items``."""
        if not span_s > 0 or int(max_items) < 1:
            raise ValueError(f'stamped cache: need span_s > 0 and max_items >= 1, got {span_s}, {max_items}')
        self.span_ns = int(round(float(span_s) * 1e9))
        self.max_items = int(max_items)
        self._stamps = []
        self._items = []
        self._lock = threading.Lock()
        self.evicted = 0
        self.replaced = 0

    def add(self, stamp_ns, item):
        """Insert ``item`` at ``stamp_ns`` (kept sorted); evict what is now too old or too many."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            position = bisect.bisect_left(self._stamps, stamp_ns)
            if position < len(self._stamps) and self._stamps[position] == stamp_ns:
                self._items[position] = item
                self.replaced += 1
            else:
                self._stamps.insert(position, stamp_ns)
                self._items.insert(position, item)
            horizon = self._stamps[-1] - self.span_ns
            cut = bisect.bisect_left(self._stamps, horizon)
            cut = max(cut, len(self._stamps) - self.max_items)
            if cut > 0:
                del self._stamps[:cut]
                del self._items[:cut]
                self.evicted += cut

    def between(self, start_ns, stop_ns):
        """Return ``[(stamp, item)]`` with ``start_ns <= stamp <= stop_ns``, oldest first."""
        with self._lock:
            lo = bisect.bisect_left(self._stamps, int(start_ns))
            hi = bisect.bisect_right(self._stamps, int(stop_ns))
            return list(zip(self._stamps[lo:hi], self._items[lo:hi]))

    def nearest(self, stamp_ns, tolerance_ns):
        """Return ``(stamp, item)`` nearest to ``stamp_ns`` within ``tolerance_ns`` (earlier wins a tie), or None."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            position = bisect.bisect_left(self._stamps, stamp_ns)
            best = None
            for index in (position - 1, position):
                if 0 <= index < len(self._stamps):
                    distance = abs(self._stamps[index] - stamp_ns)
                    if distance <= tolerance_ns and (best is None or distance < best[0]):
                        best = (distance, index)
            if best is None:
                return None
            return self._stamps[best[1]], self._items[best[1]]

    def newest_stamp(self):
        """Return the newest cached stamp, or None when empty."""
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def clear(self):
        """Forget every cached message (a bag restarted); they are not counted as evicted."""
        with self._lock:
            self._stamps.clear()
            self._items.clear()

    def __len__(self):
        """Return the number of cached messages."""
        with self._lock:
            return len(self._stamps)


class RadarCache:
    """
    One StampedCache per radar topic and the sweep selection of a camera frame (see the module docstring).

    ``window_s`` and ``max_sweeps`` may be changed at run time (they only affect later selections).
    """

    def __init__(self, num_radars, window_s=0.1, max_sweeps=1, span_s=2.0, max_items=100):
        """Create ``num_radars`` caches."""
        if int(num_radars) < 1:
            raise ValueError(f'radar cache: need at least one radar, got {num_radars}')
        self.caches = [StampedCache(span_s, max_items) for _ in range(int(num_radars))]
        self.window_s = float(window_s)
        self.max_sweeps = int(max_sweeps)

    def add(self, radar, stamp_ns, msg):
        """Cache ``msg`` of radar ``radar`` at its header stamp."""
        self.caches[radar].add(stamp_ns, msg)

    def select(self, image_stamp_ns, slop_s=0.0, matched=None):
        """
        Return the Sweeps of every radar for an image stamped ``image_stamp_ns``, radar by radar, oldest first.

        ``matched`` is the ``(stamp_ns, msg)`` of radar 0 the synchroniser paired with the image: it is always
        included (it is within the synchroniser's slop by construction) and counts towards radar 0's
        ``max_sweeps``. Other sweeps are taken from ``[t - window_s, t + slop_s]``.
        """
        start = int(image_stamp_ns) - int(round(self.window_s * 1e9))
        stop = int(image_stamp_ns) + int(round(max(slop_s, 0.0) * 1e9))
        selected = []
        for radar, cache in enumerate(self.caches):
            found = cache.between(start, stop)
            if radar == 0 and matched is not None:
                matched_stamp, matched_msg = int(matched[0]), matched[1]
                others = [(s, m) for s, m in found if s != matched_stamp and s < matched_stamp]
                chosen = others[-(self.max_sweeps - 1):] if self.max_sweeps > 1 else []
                chosen.append((matched_stamp, matched_msg))
            else:
                chosen = found[-self.max_sweeps:]
            selected.extend(Sweep(radar, s, m) for s, m in chosen)
        return selected

    def clear(self):
        """Empty every cache (time jumped backwards)."""
        for cache in self.caches:
            cache.clear()

    @property
    def evicted(self):
        """Return the number of sweeps that fell out of the caches unused or used."""
        return sum(c.evicted for c in self.caches)
