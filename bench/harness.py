"""Drive a real ideaweave daemon from a benchmark: start it, wait until it has settled, edit a note,
measure what the daemon did.

`latency_bench.py` and `scale_bench.py` both go through this module, so that they wait, edit and
summarise in one way, with one percentile definition printed the same way. The daemon is seen only
through its public measurement points (`watch.WatchHooks`, `watch.WatchStats`): nothing private of
the daemon or the store is patched, so renaming internals never breaks a benchmark.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "daemon") not in sys.path:
    sys.path.insert(0, str(REPO / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.watch import BatchOutcome, WatchHooks, WatchStats, run_watch  # noqa: E402

# ------------------------------------------------------------------ one percentile definition

PERCENTILE = 95
PERCENTILE_NOTE = (f"p{PERCENTILE}: nearest rank, the smallest measured value that at least {PERCENTILE}% "
                   "of the measurements do not exceed")


def percentile(values: Sequence[float], p: float = PERCENTILE) -> float:
    """Nearest rank: always a value that was measured, and never below the tail it stands for (a target
    met at p95 was met by 95% of the measurements). NaN without measurements."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def distribution(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> dict:
    """median, p95, max and n of the measurements (times `scale`, rounded to `digits`; counts stay integers)."""
    def shown(value: float) -> float:
        return round(value * scale if scale != 1 else value, digits)
    return {"median": shown(statistics.median(values)), f"p{PERCENTILE}": shown(percentile(values)),
            "max": shown(max(values)), "n": len(values)}


# ------------------------------------------------------------------ waiting and editing


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.01):
    """predicate()'s first true value, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(step)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def borrowed_text(root: Path, paths: Sequence[str], rng: random.Random, sentences: int = 1, min_words: int = 8,
                  tries: int = 20) -> str:
    """Up to `sentences` plain consecutive sentences of a random note (of `min_words` to 40 words, without
    links or markup): new meaning for the note they are appended to, so its summary or related list can move."""
    for _ in range(tries):
        text = (root / rng.choice(paths)).read_text(encoding="utf-8", errors="replace")
        found = [s.strip() for s in _SENTENCE.split(text)
                 if min_words <= len(s.split()) <= 40 and not any(ch in s for ch in "[]#|`:\n")]
        if found:
            start = rng.randrange(len(found))
            return " ".join(found[start:start + sentences])
    return "A distinctive sentence appended to measure how fast and how far the daemon follows an edit."


@dataclass(frozen=True)
class Edit:
    """One save of a note, as the daemon will see it."""

    path: str
    saved_at: float  # wall clock, like BatchOutcome.started and .finished
    seen: int  # batches that had run before the save


# ------------------------------------------------------------------ the daemon


class Daemon:
    """`run_watch` on a thread of this process (stopped on exit), with every batch's outcome kept.

    `around_stage(stage)` is passed on as `WatchHooks.around_stage`: each start-up pass, rescan and
    batch runs inside it on the daemon's own thread (where a profiler must be enabled to see them).
    """

    def __init__(self, app: App, around_stage: Callable[[str], contextlib.AbstractContextManager] | None = None):
        self.app = app
        self.stats = WatchStats()
        self.stop, self.ready = threading.Event(), threading.Event()
        self.outcomes: list[BatchOutcome] = []  # every batch, in order (WatchStats keeps only the latest)
        self.code: int | None = None
        self.error: BaseException | None = None
        self._hooks = WatchHooks(on_batch=self.outcomes.append, around_stage=around_stage)
        self._thread = threading.Thread(target=self._run, name="ideaweave-watch", daemon=True)

    def _run(self) -> None:
        try:
            self.code = run_watch(self.app, stop=self.stop, on_ready=self.ready.set, stats=self.stats,
                                  hooks=self._hooks)
        except BaseException as exc:  # reported by the benchmark, not swallowed
            self.error = exc
            self.ready.set()

    def __enter__(self) -> Daemon:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self._thread.join(timeout=120)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for the start-up pass; True once it is done (False on a timeout or when the daemon failed)."""
        return self.ready.wait(timeout) and self.error is None

    def settle(self, idle: float = 1.0, timeout: float = 600.0) -> bool:
        """Wait until nothing is pending and no batch has run for `idle` seconds (False after `timeout`).

        The file events of the daemon's own writes come back after it wrote, and a write deferred while
        the user may still be typing comes back as a retry: both keep the daemon busy a while after a batch.
        """
        deadline = time.monotonic() + timeout
        seen, since = len(self.outcomes), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.outcomes) != seen or self.stats.pending:
                seen, since = len(self.outcomes), time.monotonic()
            elif time.monotonic() - since >= idle:
                return True
        return False

    def append(self, path: str, text: str) -> Edit:
        """Append `text` to the note, as an editor saving it does."""
        seen = len(self.outcomes)
        with open(self.app.root / path, "a", encoding="utf-8") as handle:
            handle.write(text)
        return Edit(path, time.time(), seen)

    def since(self, edit: Edit) -> list[BatchOutcome]:
        """The batches that ran after the edit was saved."""
        return self.outcomes[edit.seen:]

    def batch_of(self, edit: Edit) -> BatchOutcome | None:
        """The batch that processed the edited note (the first to list it), or None yet."""
        return next((o for o in self.since(edit) if edit.path in o.paths), None)

    def wait_processed(self, edit: Edit, timeout: float) -> BatchOutcome | None:
        return wait_for(lambda: self.batch_of(edit), timeout)
