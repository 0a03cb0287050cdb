"""One note is the unit of failure.

Every loop over notes (indexing, ranking, summarising, planning and making writes) handles each note
inside a `NoteGuard`: whatever goes wrong with that note is caught at its boundary, logged as one line
(the note, the stage, the exception; the traceback at debug level), handed to the caller as a
`NoteFailure`, and the loop goes on. Failures that are not about one note (the index cannot be
written, the model is missing, memory ran out) pass through and stop the run, as they must.

`FaultPlan` is the test seam: it makes a chosen stage raise for a chosen note, so the isolation can be
tested through the real code paths (configured by `debug.fail`).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import IdeaweaveError

log = logging.getLogger(__name__)

# The stages a note passes through, in order. "frontmatter" is a warning (the note is indexed by its
# body only), every other stage is a failure.
STAGES = ("read", "parse", "chunk", "embed", "store", "relate", "summarize", "plan", "write")
INDEX_STAGES = ("read", "parse", "chunk", "embed", "store")
WARNING_STAGES = ("frontmatter",)
FAILURE_STAGES = STAGES

# OSErrors that speak of the machine, not of one note: every other note would fail the same way.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


@dataclass(frozen=True)
class NoteFailure:
    path: str
    stage: str
    reason: str  # "ExceptionType: message", one line

    def as_json(self) -> dict:
        return {"path": self.path, "stage": self.stage, "reason": self.reason}

    def line(self) -> str:
        return f"{self.path} — {self.stage} — {self.reason}"


def is_about_the_note(exc: BaseException) -> bool:
    """False for failures that would stop every note alike: those must stop the run instead."""
    if isinstance(exc, (IdeaweaveError, sqlite3.Error, MemoryError)):
        return False
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        return False
    return isinstance(exc, Exception)  # KeyboardInterrupt and SystemExit pass


def describe(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class InjectedFault(RuntimeError):
    """Raised by a FaultPlan: a failure made on purpose, to test that it costs one note only."""


class FaultPlan:
    """Which (stage, note) pairs must fail: entries "stage:path" (path relative to the vault)."""

    def __init__(self, entries: Iterable[str] = ()):
        self._pairs = set()
        for entry in entries:
            stage, sep, path = entry.partition(":")
            if not sep or stage not in STAGES:
                raise ValueError(f"debug.fail entry {entry!r}: expected \"STAGE:PATH\" with STAGE one of {', '.join(STAGES)}")
            self._pairs.add((stage, path))

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def check(self, stage: str, path: str) -> None:
        if (stage, path) in self._pairs:
            raise InjectedFault(f"fault injected at stage {stage}")


NO_FAULTS = FaultPlan()


class NoteGuard:
    """`with guard.note(path) as at:` then `at.stage = "chunk"` ... `at.stage = "embed"` ...; failures go
    to `on_failure`, naming the stage last entered.

    The body of the with-statement is skipped from the failing line on; the caller learns of it from
    `at.failed`.
    """

    def __init__(self, on_failure: Callable[[NoteFailure], None], faults: FaultPlan = NO_FAULTS):
        self.on_failure = on_failure
        self.faults = faults

    def note(self, path: str) -> _AtNote:
        return _AtNote(self, path)


class _AtNote:
    def __init__(self, guard: NoteGuard, path: str):
        self._guard = guard
        self.path = path
        self._stage = "read"
        self.failed: NoteFailure | None = None

    @property
    def stage(self) -> str:
        return self._stage

    @stage.setter
    def stage(self, value: str) -> None:
        self._stage = value
        self._guard.faults.check(value, self.path)

    def __enter__(self) -> _AtNote:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not is_about_the_note(exc):
            return False
        self.failed = NoteFailure(self.path, self._stage, describe(exc))
        # Note paths appear in warnings already (skipped files); the message can quote note text: kept short.
        log.warning("%s: failed while %s (%s); the note is retried when it changes",
                    self.path, _VERBS.get(self._stage, self._stage), self.failed.reason)
        log.debug("the failure in %s", self.path, exc_info=(exc_type, exc, tb))
        self._guard.on_failure(self.failed)
        return True


_VERBS = {"read": "reading", "parse": "parsing", "chunk": "chunking", "embed": "embedding", "store": "storing",
          "relate": "ranking related notes", "summarize": "summarising", "plan": "planning its write",
          "write": "writing"}
