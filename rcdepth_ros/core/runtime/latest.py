"""
A keep-latest slot between the callbacks that match frames and the worker that runs the model.

The producer ``put``s every matched frame; the worker ``take``s the newest one. A frame still waiting when a newer
one arrives is replaced and counted as dropped, so the worker never works through a backlog: latency stays one
inference whatever the input rate. ``close`` wakes a waiting worker so it can exit.
"""

import threading
import time


class LatestSlot:
    """
    One-item, thread-safe hand-over that keeps only the newest item.

    ``put(item)`` returns the item it replaced (None when the slot was empty); ``take(timeout)`` blocks until an
    item is there, the slot is closed, or the timeout passes, and returns the item or None. ``dropped`` counts the
    replaced items, ``put_count`` every put, ``taken`` every successful take.
    """

    def __init__(self):
        """Start empty and open."""
        self._condition = threading.Condition()
        self._item = None
        self._full = False
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.dropped = 0

    def put(self, item):
        """Store ``item``, replacing (and counting as dropped) an item not yet taken; return the replaced one."""
        with self._condition:
            replaced = self._item if self._full else None
            if self._full:
                self.dropped += 1
            self._item = item
            self._full = True
            self.put_count += 1
            self._condition.notify()
            return replaced

    def take(self, timeout=None):
        """Return the newest item, waiting up to ``timeout`` seconds (None: forever); None if closed or timed out."""
        deadline = None if timeout is None else time.monotonic() + max(float(timeout), 0.0)
        with self._condition:
            while not self._full and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)
            if not self._full:
                return None
            item = self._item
            self._item = None
            self._full = False
            self.taken += 1
            return item

    def close(self):
        """Wake every waiting ``take`` (they return None once the slot is empty); later puts still store items."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self):
        """Return whether ``close`` was called."""
        return self._closed
