"""File events to batches of notes: which notes a burst of events concerns, and when they are ready.

Pure and driven by the caller's clock: a note is ready once it has been quiet for `quiet` seconds,
and nothing waits longer than `max_batch`. The daemon (`watch.VaultWatcher`) feeds it the observer's
events and processes what `EventBatcher.take` returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CHANGED, DELETED = "changed", "deleted"


# ------------------------------------------------------------------ events and batches


@dataclass(frozen=True)
class FsEvent:
    """One file-system event, with vault-relative "/"-separated paths and a monotonic time."""

    kind: str  # "created" | "modified" | "deleted" | "moved"
    src: str
    dest: str | None = None
    is_directory: bool = False
    at: float = 0.0


@dataclass(frozen=True)
class Batch:
    """Notes ready to be processed together."""

    changed: tuple[str, ...] = ()  # created or modified: index, then sync
    deleted: tuple[str, ...] = ()  # gone (deleted, or the old side of a move)
    retried: tuple[str, ...] = ()  # a write was deferred, or the batch failed: again (indexing is a no-op if unchanged)

    @property
    def paths(self) -> tuple[str, ...]:
        return self.changed + self.deleted

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.retried)


@dataclass
class _Pending:
    state: str  # CHANGED or DELETED: the last event wins, the indexer checks the file anyway
    first: float
    last: float


def is_relevant(event: FsEvent, accepts: Callable[[str], bool]) -> bool:
    """Can this event concern a note? Folder changes can; a folder's mtime moving cannot."""
    if event.is_directory:
        return event.kind != "modified"
    return accepts(event.src) or (event.dest is not None and accepts(event.dest))


class EventBatcher:
    """Coalesces file events into batches of notes: pure, driven by the caller's clock.

    `accepts(path)` says whether a path is a note (editor temp files, dot-files, `.obsidian/` and
    non-markdown files are not); `notes_under(folder)` lists the notes inside a folder, so that
    moving or deleting a folder concerns each of its notes.
    """

    def __init__(self, accepts: Callable[[str], bool], notes_under: Callable[[str], Iterable[str]],
                 quiet: float, max_batch: float):
        self.accepts = accepts
        self.notes_under = notes_under
        self.quiet = quiet
        self.max_batch = max_batch
        self._pending: dict[str, _Pending] = {}
        self._retry: dict[str, float] = {}  # path -> when a deferred write is due again

    def __len__(self) -> int:
        return len(self._pending) + len(self._retry)

    def add(self, event: FsEvent) -> None:
        if event.is_directory:
            self._add_folder(event)
        elif event.kind == "moved":
            self._mark(event.src, DELETED, event.at)
            if event.dest is not None:
                self._mark(event.dest, CHANGED, event.at)
        else:
            self._mark(event.src, DELETED if event.kind == "deleted" else CHANGED, event.at)

    def _add_folder(self, event: FsEvent) -> None:
        if event.kind == "modified":
            return
        if event.kind in ("deleted", "moved"):
            for old in self.notes_under(event.src):
                self._mark(old, DELETED, event.at)
                if event.kind == "moved" and event.dest is not None:
                    self._mark(event.dest + old[len(event.src):], CHANGED, event.at)
        folder = event.dest if event.kind == "moved" else event.src
        if event.kind in ("created", "moved") and folder is not None:
            for new in self.notes_under(folder):
                self._mark(new, CHANGED, event.at)

    def _mark(self, path: str, state: str, at: float) -> None:
        if not self.accepts(path):
            return
        self._retry.pop(path, None)  # the new event brings the note back anyway
        pending = self._pending.get(path)
        if pending is None:
            self._pending[path] = _Pending(state, at, at)
        else:
            pending.state, pending.last = state, max(pending.last, at)

    def defer(self, paths: Iterable[str], until: float) -> None:
        """Bring these notes back at `until`: a write deferred while the user types, a failed batch, resumed writes."""
        for path in paths:
            if path not in self._pending:
                self._retry[path] = until

    def next_due(self) -> float | None:
        """When `take` will next return something (None: only a new event can make it)."""
        times = [p.last + self.quiet for p in self._pending.values()]
        if self._pending:
            times.append(min(p.first for p in self._pending.values()) + self.max_batch)
        times.extend(self._retry.values())
        return min(times, default=None)

    def take(self, now: float) -> Batch | None:
        """Remove and return the notes that are ready at `now`, or None."""
        overdue = bool(self._pending) and now - min(p.first for p in self._pending.values()) >= self.max_batch
        ready = [path for path, p in self._pending.items() if overdue or now - p.last >= self.quiet]
        due = [path for path, until in self._retry.items() if until <= now]
        if not ready and not due:
            return None
        taken = {path: self._pending.pop(path) for path in ready}
        for path in due:
            del self._retry[path]
        return Batch(
            changed=tuple(sorted(p for p, s in taken.items() if s.state == CHANGED)),
            deleted=tuple(sorted(p for p, s in taken.items() if s.state == DELETED)),
            retried=tuple(sorted(due)),
        )

    def paths(self) -> set[str]:
        """Every note waiting, for an event or a retry."""
        return set(self._pending) | set(self._retry)

    def clear(self) -> None:
        self._pending.clear()
        self._retry.clear()


# ------------------------------------------------------------------ watchdog events -> FsEvent


def to_fs_event(event_type: str, src: str, dest: str, is_directory: bool, root: str, at: float) -> FsEvent | None:
    """A watchdog event as a vault-relative FsEvent; None for events that change nothing (reads)."""
    kind = {"created": "created", "modified": "modified", "closed": "modified",
            "deleted": "deleted", "moved": "moved"}.get(event_type)
    if kind is None:
        return None
    src_rel, dest_rel = _relative(src, root), _relative(dest, root) if dest else None
    if kind == "moved":
        if src_rel is None and dest_rel is None:
            return None
        if dest_rel is None:  # moved out of the vault
            return FsEvent("deleted", src_rel, None, is_directory, at)
        if src_rel is None:  # moved in from outside
            return FsEvent("created", dest_rel, None, is_directory, at)
        return FsEvent("moved", src_rel, dest_rel, is_directory, at)
    if src_rel is None:
        return None
    return FsEvent(kind, src_rel, None, is_directory, at)


def _relative(path: str, root: str) -> str | None:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    relative = os.path.relpath(path, root)
    if relative == "." or relative.startswith(".." + os.sep) or relative == "..":
        return None
    return relative.replace(os.sep, "/")
