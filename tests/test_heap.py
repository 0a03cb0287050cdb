"""Giving freed memory back: real glibc, real pages."""

from __future__ import annotations

import sys

import pytest

from ideaweave import heap


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_release_gives_the_free_pages_of_a_fragmented_heap_back():
    """What a batch leaves: many mid-sized objects freed around a few that stay. glibc keeps the holes'
    pages; `release` returns them."""
    if not heap.release():
        pytest.skip("a C library without malloc_trim")
    blocks = [bytearray(2048) for _ in range(100_000)]  # 200 MB in glibc's heap (below its mmap threshold)
    kept = blocks[::64]  # a few stay, so the heap cannot shrink from its top alone
    del blocks
    before = rss_mib()
    assert heap.release()
    after = rss_mib()
    assert before - after > 100, (before, after)
    assert len(kept) == 1563
