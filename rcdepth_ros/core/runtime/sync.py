"""
Approximate-time matching of N inputs by header stamp, with per-input counters of what was matched and dropped.

``ApproximateTimeSynchronizer`` reproduces ROS 2 Python ``message_filters.ApproximateTimeSynchronizer``
(same constructor, ``registerCallback``, ``connectInput``, ``add``, ``queues``) for machines without
message_filters: a message arriving on input i is stored in input i's queue keyed by its header stamp (a message
with the same stamp replaces the queued one and keeps its place; beyond ``queue_size`` the oldest stamp is
evicted, which can be the new message itself when it arrives late); the stamps of every other input within
``slop`` of the new one are tried nearest first (``itertools.product`` order), equally near ones in arrival
order, so on a tie the message that arrived first wins whatever its stamp; the first combination whose spread
``max - min`` is below ``slop`` and whose messages are all still queued is emitted and removed. If some other
input has nothing within ``slop``, nothing happens. Stamps always come from ``header.stamp``, never from wall
time: a message without one is counted as dropped (``push`` raises SyncError; the filter path warns, as
message_filters does).

``CountingSynchronizer`` wraps either that class or the real message_filters one (which has no drop callback)
and counts from the outside: received from callbacks on the input filters, matched from the output callback,
dropped = received - matched - still queued. ``make_synchronizer`` picks the real one for real message_filters
inputs when importable.
Every message ends in exactly one of: matched, dropped, or still queued.
"""

import dataclasses
import itertools
import logging
import threading

from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.errors import ConversionError, SyncError

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class InputCounters:
    """Per-input tallies: ``received`` = ``matched`` + ``dropped`` + messages still queued."""

    received: int = 0
    matched: int = 0
    dropped: int = 0

    def as_dict(self):
        """Return the counters as a plain dict (for diagnostics / JSON)."""
        return dataclasses.asdict(self)


def message_stamp_ns(msg, input_name='input'):
    """Return ``msg.header.stamp`` in nanoseconds; SyncError naming the input when there is no usable stamp."""
    header = getattr(msg, 'header', None)
    if header is None or not hasattr(header, 'stamp'):
        raise SyncError(f'synchroniser input {input_name}: {type(msg).__name__} message has no header stamp '
                        f'(headerless messages are never stamped with wall time)')
    try:
        return stamp_to_ns(header.stamp)
    except ConversionError as exc:
        raise SyncError(f'synchroniser input {input_name}: {exc}') from None


class SimpleFilter:
    """
    A message_filters-style input: ``registerCallback(cb, *args)``, and ``signalMessage(msg)`` to feed it.

    Without message_filters, a node's subscription callback calls ``signalMessage``; the synchroniser listens.
    """

    def __init__(self):
        """Start with no callbacks."""
        self.callbacks = {}
        self._next_id = 0

    def registerCallback(self, cb, *args):  # noqa: N802 - message_filters' name
        """Call ``cb(msg, *args)`` for every message; return a connection id."""
        connection = self._next_id
        self._next_id += 1
        self.callbacks[connection] = (cb, args)
        return connection

    def signalMessage(self, *msg):  # noqa: N802 - message_filters' name
        """Pass ``msg`` to every registered callback, in registration order."""
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class ApproximateTimeSynchronizer(SimpleFilter):
    """
    Drop-in for ``message_filters.ApproximateTimeSynchronizer`` (see the module docstring), plus counters.

    ``fs`` are input filters (objects with ``registerCallback``), or an int N to feed inputs by hand with
    ``push(index, msg)``. ``slop`` is in seconds. ``counters[i]`` tallies input i; ``reset()`` clears the
    queues after time jumped backwards (a bag restarted).
    """

    def __init__(self, fs, queue_size, slop, allow_headerless=False, names=None):
        """Connect to the inputs ``fs`` (or create ``fs`` bare inputs when it is an int)."""
        super().__init__()
        if allow_headerless:
            raise SyncError('synchroniser: allow_headerless is not supported: a wall-clock stamp cannot be matched '
                            'against header stamps (wrong under sim time and bag replay)')
        if int(queue_size) < 1 or not slop >= 0:
            raise SyncError(f'synchroniser: need queue_size >= 1 and slop >= 0, got {queue_size}, {slop}')
        self.queue_size = int(queue_size)
        self.slop = float(slop)
        # rclpy's Duration(seconds=slop) truncates to integer nanoseconds the same way.
        self.slop_ns = int(self.slop * 1e9)
        self.lock = threading.Lock()
        count = fs if isinstance(fs, int) else len(fs)
        self.names = list(names) if names is not None else [f'input{i}' for i in range(count)]
        if len(self.names) != count:
            raise SyncError(f'synchroniser: {len(self.names)} names for {count} inputs')
        self.queues = [{} for _ in range(count)]
        self.counters = [InputCounters() for _ in range(count)]
        self.input_connections = []
        self.last_error = None
        if not isinstance(fs, int):
            self.connectInput(fs)

    def connectInput(self, fs):  # noqa: N802 - message_filters' name
        """Listen to the input filters ``fs`` (one queue each)."""
        self.input_connections = [f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues))]

    def push(self, index, msg):
        """
        Feed ``msg`` to input ``index``; return the matched tuple when this message completed one, else None.

        Raises SyncError for an unknown index or a message without a header stamp (counted as dropped).
        """
        if not isinstance(index, int) or not 0 <= index < len(self.queues):
            raise SyncError(f'synchroniser: unknown input index {index!r}; inputs are {self.names}')
        return self._add(msg, index, raise_errors=True)

    def add(self, msg, my_queue, my_queue_index=None):
        """
        Store ``msg`` in ``my_queue`` and try to match (message_filters' signature); return the match or None.

        Called from input filters' callbacks, so like message_filters it does not raise for a message without a
        header stamp: it counts it dropped, logs a warning and keeps the reason in ``last_error``.
        """
        index = my_queue_index if my_queue_index is not None else self._index_of(my_queue)
        return self._add(msg, index, raise_errors=False)

    def _add(self, msg, index, raise_errors):
        my_queue = self.queues[index]
        counters = self.counters[index]
        with self.lock:
            counters.received += 1
            try:
                stamp = message_stamp_ns(msg, self.names[index])
            except SyncError as exc:
                counters.dropped += 1
                self.last_error = str(exc)
                if raise_errors:
                    raise
                _LOG.warning('%s', exc)
                return None
            if stamp in my_queue:
                counters.dropped += 1          # replaced by a message with the same stamp
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
                counters.dropped += 1
            matched = self._match(stamp, index)
        if matched is not None:
            self.signalMessage(*matched)
        return matched

    def _index_of(self, queue):
        for i, q in enumerate(self.queues):
            if q is queue:
                return i
        raise SyncError('synchroniser: add() was given a queue that belongs to no input of this synchroniser')

    def _match(self, stamp, index):
        candidates = []
        for j, queue in enumerate(self.queues):
            if j == index:
                continue
            # Nearest first; equally near stamps stay in the queue's order, i.e. the first to arrive first (a
            # stable sort over the dict's insertion order, as message_filters does), never the earlier stamp.
            near = sorted((s for s in queue if abs(s - stamp) <= self.slop_ns), key=lambda s: abs(s - stamp))
            if not near:
                return None
            candidates.append(near)
        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns and all(s in q for q, s in zip(self.queues, stamps)):
                msgs = tuple(q.pop(s) for q, s in zip(self.queues, stamps))
                for counters in self.counters:
                    counters.matched += 1
                return msgs
        return None

    def pending(self):
        """Return the number of messages queued per input."""
        return [len(q) for q in self.queues]

    def reset(self, clear_counters=False):
        """Forget every queued message (counted as dropped): use it when time jumps backwards (bag restart)."""
        with self.lock:
            for queue, counters in zip(self.queues, self.counters):
                counters.dropped += len(queue)
                queue.clear()
            if clear_counters:
                self.counters = [InputCounters() for _ in self.queues]

    def stats(self):
        """Return ``{input name: {'received', 'matched', 'dropped', 'queued'}}``."""
        return {name: dict(c.as_dict(), queued=len(q)) for name, c, q in zip(self.names, self.counters, self.queues)}


class CountingSynchronizer:
    """
    Count received / matched / dropped per input around any message_filters-compatible synchroniser.

    ``sync`` is built on ``filters`` (it registered its own input callbacks first, so when ours run it has
    already stored the message). Dropped is derived: received - matched - still queued (read from
    ``sync.queues``, present in the ROS 2 implementation and in ours).
    """

    def __init__(self, sync, filters, names=None):
        """Attach counting callbacks to ``filters`` and to the output of ``sync``."""
        self.sync = sync
        self.names = list(names) if names is not None else [f'input{i}' for i in range(len(filters))]
        self._received = [0] * len(filters)
        self._matched = 0
        self._dropped_on_reset = [0] * len(filters)
        self._lock = threading.Lock()
        for i, f in enumerate(filters):
            f.registerCallback(self._on_input, i)
        sync.registerCallback(self._on_match)

    def _on_input(self, msg, index):
        with self._lock:
            self._received[index] += 1

    def _on_match(self, *msgs):
        with self._lock:
            self._matched += 1

    def registerCallback(self, cb, *args):  # noqa: N802 - message_filters' name
        """Call ``cb(*matched_msgs, *args)`` for every match."""
        return self.sync.registerCallback(cb, *args)

    def _queued(self):
        queues = getattr(self.sync, 'queues', None)
        return [len(q) for q in queues] if queues is not None else [0] * len(self._received)

    @property
    def counters(self):
        """Return one InputCounters per input (dropped derived from what is still queued)."""
        with self._lock:
            queued = self._queued()
            return [InputCounters(r, self._matched, max(r - self._matched - q, 0))
                    for r, q in zip(self._received, queued)]

    def stats(self):
        """Return ``{input name: {'received', 'matched', 'dropped', 'queued'}}``."""
        queued = self._queued()
        return {name: dict(c.as_dict(), queued=q) for name, c, q in zip(self.names, self.counters, queued)}

    def reset(self):
        """Clear the wrapped synchroniser's queues (their messages count as dropped)."""
        if hasattr(self.sync, 'reset'):
            self.sync.reset()
            return
        lock = getattr(self.sync, 'lock', None)
        if lock is not None:
            with lock:
                for q in self.sync.queues:
                    q.clear()
        else:
            for q in self.sync.queues:
                q.clear()


def message_filters_available():
    """Return True when the real ROS 2 ``message_filters`` is importable."""
    try:
        import message_filters  # noqa: F401
    except ImportError:
        return False
    return hasattr(message_filters, 'ApproximateTimeSynchronizer')


def make_synchronizer(filters, queue_size=10, slop=0.05, names=None, prefer_message_filters=True):
    """
    Return a CountingSynchronizer over ``filters``: the real message_filters synchroniser where it can serve.

    The real one serves only real message_filters inputs (``message_filters.Subscriber`` on a ROS install), whose
    messages are rclpy messages: it turns every stamp into ``rclpy.time.Time.from_msg``, which refuses anything
    but ``builtin_interfaces.msg.Time`` (a rosbags message, a plain object), so inputs that are the package's
    ``SimpleFilter`` (fed from bags, by the offline evaluator, by tests) get the package's synchroniser, which
    gives the same pairs. Counters and ``registerCallback`` behave the same either way.
    """
    filters = list(filters)
    if prefer_message_filters and message_filters_available():
        import message_filters  # optional: only on a ROS 2 install
        if all(isinstance(f, message_filters.SimpleFilter) for f in filters):
            sync = message_filters.ApproximateTimeSynchronizer(filters, queue_size, slop)
            return CountingSynchronizer(sync, filters, names)
    sync = ApproximateTimeSynchronizer(filters, queue_size, slop, names=names)
    return CountingSynchronizer(sync, filters, names)
