"""The hand-off of frontmatter writes to the Obsidian bridge plugin while it is connected.

While the plugin polls, the daemon offers it writes instead of editing files under Obsidian's feet;
the plugin applies them through Obsidian and acks each one. This module is the bookkeeping of those
offers over a clock: what is offered, what was acked, what was taken back. It reads no files; the
API's backend reads them and asks `PendingWrite` what they mean.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import frontmatter
from .writer import Write, checksum

# The plugin polls /writes every 2-5 s: three missed polls and it counts as gone.
BRIDGE_SECONDS = 15.0
# A write the plugin has not acked by then is taken back and written by the daemon itself.
OFFER_SECONDS = 60.0
# Taken-back writes are remembered this many at a time, so a late ack can still be recorded.
TAKEN_BACK_MEMORY = 1000


@dataclass(frozen=True)
class PendingWrite:
    """A frontmatter write offered to the bridge plugin."""

    id: str
    write: Write
    base_checksum: str  # the file the write was planned from
    offered_at: float
    sequence: int  # order of offers: a later write to the same note supersedes an earlier one

    @property
    def path(self) -> str:
        return self.write.path

    def planned_from(self, data: bytes) -> bool:
        """Is `data` still the file this write was planned from? (Else applying it could undo an edit.)"""
        return checksum(data) == self.base_checksum

    def held_by(self, data: bytes) -> bool:
        """Does `data` already hold this write's values? (It was applied, whoever applied it.)"""
        values = self.write.values
        current = frontmatter.read_managed(data, list(values))
        if isinstance(current, frontmatter.Unwritable):
            return False
        return all(key not in current if value is None else current.get(key) == value for key, value in values.items())

    def as_json(self) -> dict:
        values = self.write.values
        return {"id": self.id, "path": self.write.path,
                "set": {key: value for key, value in values.items() if value is not None},
                "remove": [key for key, value in values.items() if value is None]}


@dataclass(frozen=True)
class Settled:
    """The first ack of a write: what the backend must do about it."""

    entry: PendingWrite
    applied: bool
    # True when no later write to the same note has been acked as applied: only then does this
    # write's content describe the file, and only then is it recorded as what ideaweave wrote.
    newest: bool


class WriteQueue:
    """Writes waiting for the bridge plugin, each applied at most once per id.

    The plugin counts as connected while it polled (`polled()`) within BRIDGE_SECONDS. Unacked writes
    are offered again at every poll; one not acked within OFFER_SECONDS is taken back (`expired`) for
    the daemon to write itself. Reading the queue changes nothing. Thread-safe: the API's threads and
    the daemon's share one queue.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, PendingWrite] = {}
        self._taken_back: collections.OrderedDict[str, PendingWrite] = collections.OrderedDict()
        self._newest_applied: dict[str, int] = {}  # path -> sequence of the newest write acked as applied
        self._sequence = 0
        self._last_poll: float | None = None

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._last_poll is not None and self._clock() - self._last_poll < BRIDGE_SECONDS

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def polled(self) -> None:
        """The plugin asked for its writes: it counts as connected for BRIDGE_SECONDS from now."""
        with self._lock:
            self._last_poll = self._clock()

    def awaiting(self, path: str) -> bool:
        """Is a write to this note offered and not acked yet? (Its file changes may be the plugin's.)"""
        with self._lock:
            return any(entry.path == path for entry in self._pending.values())

    def offer(self, write: Write, base_checksum: str) -> str:
        """Queue a write for the plugin; an earlier unacked write to the same note is withdrawn."""
        with self._lock:
            for entry in [e for e in self._pending.values() if e.path == write.path]:
                self._take_back(entry)
            self._sequence += 1
            # Random ids: the plugin keeps applied ids across restarts of either side, so a counter
            # starting again at 1 would make it skip a new write as already applied.
            entry = PendingWrite(f"w-{secrets.token_hex(8)}", write, base_checksum, self._clock(), self._sequence)
            self._pending[entry.id] = entry
            return entry.id

    def pending(self) -> list[PendingWrite]:
        """The writes to offer now, oldest first."""
        with self._lock:
            return list(self._pending.values())

    def withdraw(self, write_id: str) -> PendingWrite | None:
        """Stop offering a write (its note changed since it was planned); a late ack is still honoured."""
        with self._lock:
            entry = self._pending.get(write_id)
            if entry is not None:
                self._take_back(entry)
            return entry

    def expired(self) -> list[PendingWrite]:
        """Take back the writes not acked in time, for the daemon to write itself."""
        with self._lock:
            cutoff = self._clock() - OFFER_SECONDS
            late = [entry for entry in self._pending.values() if entry.offered_at <= cutoff]
            for entry in late:
                self._take_back(entry)
            return late

    def ack(self, write_id: str, applied: bool) -> Settled | None:
        """Settle a write; None when the id is unknown or was already acked (nothing more to do)."""
        with self._lock:
            # Settled ids are forgotten at once: a repeated ack finds nothing, so nothing happens twice.
            entry = self._pending.pop(write_id, None) or self._taken_back.pop(write_id, None)
            if entry is None:
                return None
            newest = entry.sequence > self._newest_applied.get(entry.path, 0)
            if applied and newest:
                self._newest_applied[entry.path] = entry.sequence
            return Settled(entry, applied, newest)

    def _take_back(self, entry: PendingWrite) -> None:
        del self._pending[entry.id]
        # Kept for a while: the plugin may have applied it already and its ack be on the way.
        self._taken_back[entry.id] = entry
        while len(self._taken_back) > TAKEN_BACK_MEMORY:
            self._taken_back.popitem(last=False)
