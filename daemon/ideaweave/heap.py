"""Giving the daemon's freed memory back to the system.

Each batch lets go of a ranking snapshot's Python objects (dictionaries and lists over every note) and of
what writing notes allocated. glibc keeps such freed pages in its heap, where they are counted in the
daemon's memory until something reuses them: at 100,000 notes, some 60 to 90 MiB after a batch
(bench/RESULTS.md). `release()` asks glibc to return them (`malloc_trim`, a few milliseconds); with another
C library it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release() -> bool:
    """Return the heap's free pages to the system; False where that cannot be done."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
