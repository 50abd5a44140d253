"""
Keep numpy's large temporaries in the heap instead of fresh ``mmap`` pages (glibc only).

A frame makes hundreds of temporary arrays of 0.1-4 MB. With glibc's defaults many of them are served by
``mmap`` and returned with ``munmap``, so every frame touches fresh pages and pays a page fault per 4 KB, a
sizeable share of the frame time on a virtual machine (benchmarks/bench_synthetic.py measures the frame rate).
Raising the mmap threshold to 32 MB (glibc's own upper bound for its dynamic threshold) and the trim threshold to
128 MB keeps that memory in the process for reuse. Memory is not leaked: it is reused by the next frame.
"""

import ctypes
import ctypes.util
import logging
import sys

LOG = logging.getLogger(__name__)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024
_done = False


def keep_temporaries_in_heap():
    """Set glibc's mmap and trim thresholds once per process; do nothing elsewhere. Return whether it applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError) as exc:
        LOG.debug('mallopt unavailable (%s): keeping the allocator defaults', exc)
        return False
    _done = ok
    return ok
