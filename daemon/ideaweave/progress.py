"""A one-line progress bar on a terminal (stderr), silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, unit: str = "notes", stream: TextIO | None = None, enabled: bool | None = None):
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last_draw < 0.1 and done < total):
            return
        self._last_draw = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        width = 28
        filled = int(width * done / total) if total else width
        line = (f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}"
                f"  {rate:.1f} {self.unit}/s  ETA {int(eta // 60)}:{int(eta % 60):02d}")
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def begin(self, label: str, total: int) -> None:
        """A new phase: its own line, label and rate (`Indexer.run`'s `phases`)."""
        self.close()
        self.label, self.started, self._last_draw, self._drawn = label, time.monotonic(), 0.0, False
        self(0, total)

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
