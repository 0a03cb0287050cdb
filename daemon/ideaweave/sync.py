"""Keeping notes' `related` and `summary` in step with the index: relate, summarize, plan, write.

`apply` runs it over the whole vault once; the watcher runs it over the notes a change can affect.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import frontmatter
from .app import App
from .corpus import Corpus
from .failures import INDEX_STAGES, NO_FAULTS, STAGES, WARNING_STAGES, FaultPlan, NoteFailure, NoteGuard
from .frontmatter import Unwritable
from .related import RelatedNotes, link_target
from .store import Store
from .summaries import Summaries
from .writer import (BYSTANDER_HYSTERESIS, HYSTERESIS, SWAP_GRACE_SECONDS, Candidate, Keys, NoteState, NoteWriter,
                     PendingWrite, Plan, Write, WriteOutcome, WriteResult, begin_write, finish_write, fsync_folders,
                     plan_note)

log = logging.getLogger(__name__)

# The stages of a sync: a note that failed at one of them is left alone until it changes.
SYNC_STAGES = tuple(s for s in STAGES if s not in INDEX_STAGES + WARNING_STAGES)


@dataclass
class SyncReport:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)
    failed: list[NoteFailure] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Each note written: (the bytes the write replaced, the managed values it set), for Indexer.record_own_writes.
    rewritten: dict[str, tuple[bytes, dict]] = field(default_factory=dict, repr=False)

    def retried(self, again: SyncReport) -> None:
        """Take in a second run over this run's deferred notes."""
        self.written += again.written
        self.unchanged += again.unchanged
        self.skipped += again.skipped
        self.failed += again.failed
        self.handed_off += again.handed_off
        self.deferred = again.deferred
        self.seconds += again.seconds
        self.rewritten.update(again.rewritten)

    def as_json(self) -> dict:
        return {"written": len(self.written), "unchanged": self.unchanged,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "deferred": self.deferred, "handed_off": self.handed_off, "failed": [f.as_json() for f in self.failed], "written_notes": self.written, "seconds": round(self.seconds, 3)}


@dataclass
class _PlanInputs:
    """What a note's plan was made from, to plan it again when the user saves it under our write."""

    bases: dict[str, bytes] = field(default_factory=dict)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    summaries: dict[str, str | None] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class VaultSync:
    """Relates, summarises and writes notes, from the parts it is given (`for_app` takes them from an App).

    `related_notes(corpus)` gives the one ranking policy over a snapshot; `handoff`, when given, is offered
    each write first (the Obsidian bridge applies it inside Obsidian); it returns False when it cannot take
    the write, and the file is written here.
    """

    root: Path
    store: Store
    related_notes: Callable[[Corpus | None], RelatedNotes]
    summaries: Summaries
    keys: Keys
    defer_seconds: float
    faults: FaultPlan = NO_FAULTS
    handoff: Callable[[Write, bytes], bool] | None = None

    @classmethod
    def for_app(cls, app: App, handoff: Callable[[Write, bytes], bool] | None = None) -> VaultSync:
        return cls(app.root, app.store, app.related_notes, app.summaries, app.keys, app.settings.writer.defer_seconds,
                   app.faults, handoff)

    def run(self, paths: Iterable[str] | None = None, dry_run: bool = False, corpus: Corpus | None = None,
            bystanders: Iterable[str] = ()) -> SyncReport:
        """Relate, summarise and write `paths` (every note when None). `bystanders` are notes synced only
        because other notes changed: their written links are kept within a wider window. Whatever goes
        wrong with one note is that note's failure (recorded, shown by `status`, retried once it changes)."""
        started = time.perf_counter()
        report = SyncReport()
        store = self.store
        guard = NoteGuard(lambda failure: self._failed(failure, report, dry_run), self.faults)
        related = self.related_notes(corpus)
        targets = sorted(paths) if paths is not None else store.note_paths()
        templates = store.template_paths()
        failed_before = dict((p, (stage, reason)) for p, stage, reason in store.problems(SYNC_STAGES))
        inputs = _PlanInputs()
        plan = Plan()
        # The notes' rankings computed as a batch where that is cheaper (see Relater.prefetch): the same lists.
        related.relater.prefetch([p for p in targets if p not in templates and p not in failed_before])
        for path in targets:
            if path in templates:
                continue  # templates are copied into new notes: never write into them
            if path in failed_before:
                stage, reason = failed_before[path]
                report.failed.append(NoteFailure(path, stage, reason))
                continue
            with guard.note(path) as at:
                at.stage = "relate"
                self._plan_note(path, related, bystanders, report, inputs, plan, at)
        related.relater.release()
        self._remember_feedback(plan, related.resolver, dry_run)
        report.skipped.extend(plan.skipped)
        report.unchanged += len(plan.unchanged)
        for path, reason in plan.skipped:
            if not dry_run:
                store.set_write_issue(path, reason)
        self._write_all(plan.writes, guard, report, dry_run, inputs)
        report.seconds = time.perf_counter() - started
        return report

    def _plan_note(self, path: str, related: RelatedNotes, bystanders, report: SyncReport, inputs: _PlanInputs,
                   plan: Plan, at) -> None:
        """Rank, summarise and plan one note into `plan` (`at` names the stage reached, for its failure)."""
        store = self.store
        if path not in related.corpus.index:
            report.skipped.append((path, "no text to relate or summarise"))
            return
        base = self._read(path, report)
        if base is None:
            return
        current = frontmatter.read_managed(base, (self.keys.related, self.keys.summary))
        if isinstance(current, Unwritable):
            report.skipped.append((path, current.reason))
            store.set_write_issue(path, current.reason)
            return
        last = store.last_written(path)
        slack = BYSTANDER_HYSTERESIS if path in bystanders else HYSTERESIS
        state = NoteState(path, current, last.values if last else None, slack)
        feedback = related.feedback(path)
        rejected = set(feedback.rejected)
        candidates = related.candidates(path, slack, current.get(self.keys.related), feedback)
        at.stage = "summarize"
        summary = self.summaries.for_note(path)
        at.stage = "plan"
        decided = plan_note(state, candidates, summary, self.keys, rejected)
        plan.add(path, *decided)
        inputs.bases[path], inputs.candidates[path] = base, candidates
        inputs.summaries[path], inputs.rejected[path] = summary, rejected

    def _failed(self, failure: NoteFailure, report: SyncReport, dry_run: bool) -> None:
        report.failed.append(failure)
        if not dry_run:
            self.store.record_problem(failure.path, failure.stage, failure.reason)

    def _read(self, path: str, report: SyncReport) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError as exc:
            report.skipped.append((path, f"cannot be read: {exc.strerror or exc}"))
            return None

    def _remember_feedback(self, plan, resolver, dry_run: bool) -> None:
        if dry_run:
            return
        for action, pairs in (("rejected", plan.rejected), ("pinned", plan.pinned)):
            for note, link in pairs:
                target = link_target(resolver, link, note)
                if target is not None:
                    self.store.set_feedback(note, target, action)
                    log.debug("%s: %s %s", note, action, link)  # titles only at debug level

    def _write_all(self, writes: Sequence[Write], guard: NoteGuard, report: SyncReport, dry_run: bool,
                   inputs: _PlanInputs) -> None:
        """Write the notes as a batch: each swapped in atomically and checked against the bytes it was planned
        from, then one wait for every swap's last look (writer.SWAP_GRACE_SECONDS), one fsync per folder, and
        only then the store's memory of each write. A note whose first try ends otherwise (a conflict,
        a deferral) goes the one-note way (`_write`), which plans it again from the user's new bytes."""
        if dry_run or self.handoff is not None:  # the bridge takes writes one by one
            for write in writes:
                with guard.note(write.path) as at:
                    at.stage = "write"
                    self._write(write, inputs.bases[write.path], report, dry_run, inputs)
            return
        pending: list[PendingWrite] = []
        again: list[Write] = []
        try:
            for write in writes:
                with guard.note(write.path) as at:
                    at.stage = "write"
                    started = begin_write(self.root, write, inputs.bases[write.path], self.defer_seconds)
                    if isinstance(started, PendingWrite):
                        pending.append(started)
                    elif started.status == "conflict":
                        again.append(write)
                    else:
                        self._record(write, inputs.bases[write.path], started, report)
            if pending:
                time.sleep(SWAP_GRACE_SECONDS)
        finally:
            results = {}
            for started in pending:
                with guard.note(started.write.path) as at:
                    at.stage = "write"
                    results[started.write.path] = finish_write(started)
        fsync_folders(self.root / path for path, result in results.items() if result.status == "written")
        for started in pending:
            write, result = started.write, results.get(started.write.path)
            if result is None:
                continue  # its failure is recorded
            with guard.note(write.path) as at:
                at.stage = "write"
                if result.status == "conflict":
                    again.append(write)
                else:
                    self._record(write, inputs.bases[write.path], result, report)
        for write in again:
            with guard.note(write.path) as at:
                at.stage = "write"
                # The user saved the note between our read and our write: their bytes win; plan again from them.
                replanned = self._replan(write.path, inputs)
                if replanned is None:
                    report.unchanged += 1
                    continue
                self._write(*replanned, report, dry_run, inputs)

    def _write(self, write, base: bytes, report: SyncReport, dry_run: bool, inputs: _PlanInputs) -> None:
        if dry_run:
            edited = frontmatter.set_managed(base, write.values)
            if isinstance(edited, Unwritable):
                report.skipped.append((write.path, edited.reason))
                return
            report.written.append(write.path)
            report.diffs.append(_diff(write.path, base, edited))
            return
        path = write.path
        self._report(self._writer.write(write, base, lambda: self._replan(path, inputs)), report)

    @property
    def _writer(self) -> NoteWriter:
        return NoteWriter(self.root, self.store, self.defer_seconds, self.handoff)

    def _record(self, write: Write, base: bytes, result: WriteResult, report: SyncReport) -> None:
        """Remember a write's outcome in the store and the report."""
        self._report(self._writer.record(write, base, result), report)

    @staticmethod
    def _report(outcome: WriteOutcome, report: SyncReport) -> None:
        path = outcome.write.path
        if outcome.status == "written":
            report.written.append(path)
            report.rewritten[path] = (outcome.base, dict(outcome.write.values))
            log.debug("%s: wrote %s", path, ", ".join(outcome.write.values))
        elif outcome.status == "unchanged":
            report.unchanged += 1
        elif outcome.status == "deferred":
            report.deferred.append(path)
        elif outcome.status == "handed_off":
            report.handed_off.append(path)
        else:
            report.skipped.append((path, outcome.reason))

    def _replan(self, path: str, inputs: _PlanInputs):
        """(write, base) for a note re-read from disk, or None when nothing needs writing any more."""
        base = self._read(path, SyncReport())
        if base is None:
            return None
        current = frontmatter.read_managed(base, (self.keys.related, self.keys.summary))
        if isinstance(current, Unwritable):
            return None
        last = self.store.last_written(path)
        state = NoteState(path, current, last.values if last else None)
        write, _problem, _rejects, _pins = plan_note(
            state, inputs.candidates[path], inputs.summaries[path], self.keys, inputs.rejected[path])
        return None if write is None else (write, base)


def _diff(path: str, before: bytes, after: bytes) -> str:
    lines = difflib.unified_diff(before.decode("utf-8", "replace").splitlines(keepends=True),
                                 after.decode("utf-8", "replace").splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(lines)
