"""Keep-latest slot: only the newest item survives, drops are counted, close wakes the worker."""

import threading
import time

from rcdepth_ros.core.runtime.latest import LatestSlot


def test_newest_item_wins_and_replaced_ones_are_counted():
    slot = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0) is None
    assert (slot.put_count, slot.taken, slot.dropped) == (3, 1, 2)


def test_every_put_is_taken_or_dropped_under_concurrency():
    slot = LatestSlot()
    taken = []

    def worker():
        while True:
            item = slot.take(timeout=1.0)
            if item is None:
                return
            taken.append(item)
            time.sleep(0.0005)     # slower than the producer: drops must happen

    thread = threading.Thread(target=worker)
    thread.start()
    for i in range(2000):
        slot.put(i)
    while slot.taken + slot.dropped < slot.put_count:      # until the last item is taken
        time.sleep(0.001)
    slot.close()
    thread.join(5.0)
    assert not thread.is_alive()
    assert slot.put_count == slot.taken + slot.dropped == 2000
    assert len(taken) == slot.taken and slot.dropped > 0
    assert taken == sorted(taken) and taken[-1] == 1999     # the newest item is never lost


def test_close_wakes_a_waiting_take():
    slot = LatestSlot()
    result = []
    thread = threading.Thread(target=lambda: result.append(slot.take()))
    thread.start()
    time.sleep(0.05)
    slot.close()
    thread.join(2.0)
    assert result == [None] and slot.closed
    slot.put('x')                                # a put after close is still stored and taken
    assert slot.take(timeout=0) == 'x' and slot.take(timeout=0) is None
