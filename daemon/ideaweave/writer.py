"""Deciding what to write into a note (pure) and writing it without losing a byte (a thin shell).

Ownership, per managed key:
- ideaweave remembers what it last wrote into each note (`written` in the store);
- a key that holds something ideaweave never wrote belongs to the user: left alone, reported;
- links the user deleted from `related` become rejected for that note, links they added are pinned
  and kept in front; deleting the whole `related` key (or `summary`) opts the note out of that key;
- a summary the user edited is theirs from then on.
Writes happen only when the managed values really change, and an already-written link stays while
it is still among the top candidates (hysteresis), so small score changes never churn the lists.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import frontmatter
from .atomic import fsync_folder, replace_file, temporary_beside, write_synced
from .frontmatter import Unwritable

# An already-written link stays while it ranks within the top (count + HYSTERESIS) candidates.
HYSTERESIS = 3
# For a note re-ranked only because another note changed (it was not edited itself), a written link
# stays while within the top (count + this): one edit must not ripple through a neighbourhood's lists.
# The note's own next edit (or a vanished target) still brings its list up to date.
BYSTANDER_HYSTERESIS = 10
OPTED_OUT = "opted_out"
SWAP_GRACE_SECONDS = 0.002  # marker kept in the written values of a note whose user removed a key
# A note saved by its user again and again while we write it is left for the next round.
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class Candidate:
    """A link ideaweave would like to write, best first."""

    path: str
    link: str  # the full link string, e.g. "[[Corrigibility#Shutdown problem]]"


@dataclass(frozen=True)
class NoteState:
    """What a note holds now, and what ideaweave remembers about it."""

    path: str
    current: Mapping[str, object]  # managed keys present in the file now
    last_written: Mapping[str, object] | None  # values ideaweave last wrote, None if never
    slack: int = HYSTERESIS  # how far below the top `count` a written link may fall and stay


@dataclass(frozen=True)
class Write:
    path: str
    values: dict[str, object]  # key -> new value (None removes the key)
    remembered: dict[str, object]  # what to store as "last written" once the write lands


@dataclass(frozen=True)
class Plan:
    writes: list[Write] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (note, link) the user deleted
    pinned: list[tuple[str, str]] = field(default_factory=list)  # (note, link) the user added

    def add(self, path: str, write: Write | None, problem: str | None, rejects: Sequence[str], pins: Sequence[str]) -> None:
        """Take in what plan_note decided for one note."""
        self.rejected.extend((path, link) for link in rejects)
        self.pinned.extend((path, link) for link in pins)
        if problem:
            self.skipped.append((path, problem))
        if write is None:
            self.unchanged.append(path)
        else:
            self.writes.append(write)


@dataclass(frozen=True)
class Keys:
    related: str = "related"
    summary: str = "summary"
    count: int = 5


def _as_links(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def plan_related(state: NoteState, candidates: Sequence[Candidate], keys: Keys, rejected: set[str]
                 ) -> tuple[list[str] | None, str | None, list[str], list[str]]:
    """(new list or None to leave alone, reason when left alone, newly rejected links, newly pinned links)."""
    key = keys.related
    last = state.last_written or {}
    present = key in state.current
    current = _as_links(state.current.get(key))
    ours = _as_links(last.get(key))
    if last.get(key) == OPTED_OUT:
        return None, None, [], []
    if present and current is None:
        return None, f"`{key}` holds something other than a list of links", [], []
    if present and ours is None:
        return None, f"`{key}` was not written by ideaweave; it is left as it is", [], []
    if not present and ours is not None:
        return None, None, [], []  # the user removed the whole key: opted out (remembered by the caller)
    # Links ideaweave wrote to a note since renamed: the file may still hold the old text (Obsidian did
    # not rewrite it); it is the same link as the remembered new one, neither a pin nor a rejection.
    renamed = last.get("renamed") if isinstance(last.get("renamed"), dict) else {}
    current = [renamed.get(link, link) for link in current or []]
    ours = ours or []
    newly_rejected = [link for link in ours if link not in current]
    pinned = [link for link in current if link not in ours or link in last.get("pinned", [])]
    blocked = rejected | set(newly_rejected) | set(pinned)
    ranked = [c.link for c in candidates if c.path not in rejected and c.link not in blocked]
    window = set(ranked[: keys.count + state.slack])
    kept = [link for link in current if link in window and link not in pinned]
    fresh = [link for link in ranked if link not in kept][: max(0, keys.count - len(kept))]
    return pinned + kept[: keys.count] + fresh, None, newly_rejected, [p for p in pinned if p not in last.get("pinned", [])]


def plan_summary(state: NoteState, summary: str | None, keys: Keys) -> tuple[str | None, bool, str | None]:
    """(value, write it?, reason when left alone)."""
    return plan_value(state, keys.summary, summary)


def plan_value(state: NoteState, key: str, wanted: str | None) -> tuple[str | None, bool, str | None]:
    """(value, write it?, reason when left alone) for a managed key holding one string (`summary`, `topic`):
    ideaweave's until the user edits or removes it, then the user's. `wanted` None removes ours."""
    last = state.last_written or {}
    present = key in state.current
    current = state.current.get(key)
    ours = last.get(key)
    if ours == OPTED_OUT:
        return None, False, None
    if present and ours is None:
        return None, False, f"`{key}` was not written by ideaweave; it is left as it is"
    if present and current != ours:
        return None, False, None  # the user edited what we wrote: it is theirs now
    if not present and ours is not None:
        return None, False, None  # the user removed it: opted out
    if wanted is None:
        return None, present, None  # nothing to say any more: remove what we wrote
    return wanted, wanted != current, None


def plan_note(state: NoteState, candidates: Sequence[Candidate], summary: str | None, keys: Keys,
              rejected: set[str]) -> tuple[Write | None, str | None, list[str], list[str]]:
    """The write for one note (None when nothing changes), the reason a key was left alone, rejects, pins."""
    related, related_problem, new_rejects, new_pins = plan_related(state, candidates, keys, rejected)
    summary_value, summary_changes, summary_problem = plan_summary(state, summary, keys)
    last = dict(state.last_written or {})
    remembered = dict(last)
    values: dict[str, object] = {}
    if related is not None:
        remembered[keys.related] = related
        remembered.pop("renamed", None)  # the file now holds the new link texts
        pins = set(last.get("pinned", [])) | set(new_pins)
        remembered["pinned"] = [link for link in related if link in pins]
        if related != _as_links(state.current.get(keys.related)):
            values[keys.related] = related
    elif keys.related not in state.current and _as_links(last.get(keys.related)) is not None:
        remembered[keys.related] = OPTED_OUT
    if summary_changes:
        values[keys.summary] = summary_value
        remembered[keys.summary] = summary_value
    elif keys.summary not in state.current and isinstance(last.get(keys.summary), str):
        remembered[keys.summary] = OPTED_OUT
    problem = related_problem or summary_problem
    if not values:
        return None, problem, new_rejects, new_pins
    return Write(state.path, values, remembered), problem, new_rejects, new_pins


def plan_topic(state: NoteState, key: str, link: str | None) -> tuple[Write | None, str | None]:
    """The write of a note's `topic` key (None when nothing changes) and the reason it was left alone.
    `link` None removes the key ideaweave wrote (topics.key turned off, or the note's topic has no hub)."""
    value, changes, problem = plan_value(state, key, link)
    if not changes:
        return None, problem
    last = dict(state.last_written or {})
    remembered = {**last, key: value} if value is not None else {k: v for k, v in last.items() if k != key}
    return Write(state.path, {key: value}, remembered), problem


def plan_writes(states: Sequence[NoteState], candidates: Mapping[str, Sequence[Candidate]],
                summaries: Mapping[str, str | None], keys: Keys, rejected: Mapping[str, set[str]]) -> Plan:
    """Pure: for every note, what to write given what it holds and what ideaweave remembers."""
    plan = Plan()
    for state in states:
        plan.add(state.path, *plan_note(
            state, candidates.get(state.path, []), summaries.get(state.path), keys, rejected.get(state.path, set())))
    return plan


# ------------------------------------------------------------------ the file shell


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WriteResult:
    path: str
    status: str  # "written" | "unchanged" | "deferred" | "conflict" | "skipped"
    reason: str | None = None
    checksum: str | None = None


def _unlink_if_ours(path: Path, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass


def atomic_replace(path: Path, data: bytes, expected_checksum: str) -> WriteResult | None:
    """Write data over path atomically, unless the file changed since it was read (compare-and-swap).

    Returns None on success. The temporary file sits in the same folder (same file system, so
    os.replace is atomic) under a dot-name that the scanner and the watcher ignore. The original
    file stays open across the swap: if someone appended to it in the instant between our check and
    the swap, their bytes are in the old file, and we put that file back (their edit wins; re-plan).
    """
    swap = begin_replace(path, data, expected_checksum)
    if isinstance(swap, WriteResult):
        return swap
    time.sleep(SWAP_GRACE_SECONDS)
    conflict = finish_replace(swap)
    if conflict is None:
        fsync_folder(path.parent)
    return conflict


@dataclass
class Swap:
    """A note swapped in whose last look is still to come (`finish_replace`): the file it replaced, open."""

    path: Path
    original: object  # the replaced file, open for reading
    before: os.stat_result  # its state when it was checked


def begin_replace(path: Path, data: bytes, expected_checksum: str) -> WriteResult | Swap:
    """The first half of `atomic_replace`: the checked swap. Returns the conflict, or the `Swap` that
    `finish_replace` must look at once SWAP_GRACE_SECONDS have passed (several swaps share one wait)."""
    with temporary_beside(path) as temporary:
        write_synced(temporary, data)
        try:
            original = open(path, "rb")
        except FileNotFoundError:  # renamed or deleted since it was read: its new name gets planned
            return WriteResult(str(path), "conflict", "the note moved while ideaweave was writing it")
        try:
            before = os.fstat(original.fileno())
            os.chmod(temporary, before.st_mode & 0o7777)  # the note keeps its mode: it is the user's file
            if checksum(original.read()) != expected_checksum:
                original.close()
                return WriteResult(str(path), "conflict", "the note changed while ideaweave was writing it")
            ours = os.stat(temporary).st_ino
            os.replace(temporary, path)
            if os.fstat(original.fileno()).st_nlink >= before.st_nlink:
                # The swap did not unlink the file we read: it was renamed away in the instant before, and the
                # swap made its old name anew. Take that name back (only if it is still our file).
                _unlink_if_ours(path, ours)
                original.close()
                return WriteResult(str(path), "conflict", "the note moved while ideaweave was writing it")
        except BaseException:
            original.close()
            raise
    return Swap(path, original, before)


def finish_replace(swap: Swap) -> WriteResult | None:
    """The second half of `atomic_replace`, SWAP_GRACE_SECONDS after the swap: a save that opened the old
    file just before the swap has landed by now; if one did, the user's version is put back (a conflict).
    None: the swap stands. The folder is not fsynced here: the caller does it once per folder."""
    original = swap.original
    try:
        after = os.fstat(original.fileno())
        if (after.st_size, after.st_mtime_ns) != (swap.before.st_size, swap.before.st_mtime_ns):
            _restore(swap.path, original, swap.before.st_mode & 0o7777)
            return WriteResult(str(swap.path), "conflict", "the note changed while ideaweave was writing it")
        return None
    finally:
        original.close()


def _restore(path: Path, original, mode: int) -> None:
    """Put back the user's version that was written to the old file during our swap."""
    original.seek(0)
    replace_file(path, original.read(), mode)


def apply_write(root: Path, write: Write, base: bytes, defer_seconds: float,
                now: Callable[[], float] = time.time) -> WriteResult:
    """Edit the managed keys of one note on disk; `base` is the content the plan was made from."""
    started = begin_write(root, write, base, defer_seconds, now)
    if isinstance(started, WriteResult):
        return started
    time.sleep(SWAP_GRACE_SECONDS)
    result = finish_write(started)
    if result.status == "written":
        fsync_folder(started.swap.path.parent)
    return result


@dataclass
class PendingWrite:
    """A write swapped in (`begin_write`) and waiting for its last look (`finish_write`)."""

    write: Write
    swap: Swap
    checksum: str  # of the bytes written


def begin_write(root: Path, write: Write, base: bytes, defer_seconds: float,
                now: Callable[[], float] = time.time) -> WriteResult | PendingWrite:
    """`apply_write` up to the swap: its outcome when it ends there (unchanged, deferred, skipped, a
    conflict), else the pending write for `finish_write`. A batch of notes swaps each, waits
    SWAP_GRACE_SECONDS once, finishes each, then fsyncs each folder once (`fsync_folders`)."""
    path = root / write.path
    try:
        stat = path.stat()
    except FileNotFoundError:
        return WriteResult(write.path, "skipped", "the note no longer exists")
    if now() - stat.st_mtime < defer_seconds:
        return WriteResult(write.path, "deferred", "modified moments ago: the user may be typing")
    edited = frontmatter.set_managed(base, write.values)
    if isinstance(edited, Unwritable):
        return WriteResult(write.path, "skipped", edited.reason)
    if edited == base:
        return WriteResult(write.path, "unchanged", checksum=checksum(base))
    swap = begin_replace(path, edited, checksum(base))
    if isinstance(swap, WriteResult):
        return WriteResult(write.path, "conflict", swap.reason)
    return PendingWrite(write, swap, checksum(edited))


def finish_write(pending: PendingWrite) -> WriteResult:
    """The write's outcome once SWAP_GRACE_SECONDS have passed since its swap (its folder not yet fsynced)."""
    conflict = finish_replace(pending.swap)
    if conflict is not None:
        return WriteResult(pending.write.path, "conflict", conflict.reason)
    return WriteResult(pending.write.path, "written", checksum=pending.checksum)


def fsync_folders(paths: Iterable[Path]) -> None:
    """Make the renames into these files' folders durable: one fsync per folder."""
    for folder in sorted({Path(p).parent for p in paths}):
        fsync_folder(folder)


# ------------------------------------------------------------------ the one way a write reaches a note


@dataclass(frozen=True)
class WriteOutcome:
    """How one note's write ended, for the caller's report: `write` and `base` are the last ones tried
    (a conflict plans the note again from the user's new bytes)."""

    status: str  # "written" | "unchanged" | "deferred" | "skipped" | "handed_off"
    write: Write
    base: bytes
    reason: str | None = None


# Plans a note again from its bytes on disk: (write, the bytes it was planned from), None when nothing to write.
Replan = Callable[[], tuple[Write, bytes] | None]


@dataclass
class NoteWriter:
    """The one way a planned write reaches a note, for every managed key (`related`, `summary`, the topic key).

    While the Obsidian bridge is connected, `handoff` takes the write and the plugin applies it inside
    Obsidian; otherwise it is swapped in here, atomically, against the bytes it was planned from. A save
    between plan and write is planned again from the user's bytes (`replan`). The outcome is remembered
    in `store`: what was written, or the note's write issue, which `status` shows. `busy(path)`, when
    given, says a write to the note already waits for the bridge: a new offer would withdraw that one.
    """

    root: Path
    store: object
    defer_seconds: float
    handoff: Callable[[Write, bytes], bool] | None = None
    busy: Callable[[str], bool] | None = None

    def write(self, write: Write, base: bytes, replan: Replan) -> WriteOutcome:
        if self.busy is not None and self.busy(write.path):
            return WriteOutcome("deferred", write, base, "another change to the note waits for the Obsidian bridge")
        if self.handoff is not None and self.handoff(write, base):
            return WriteOutcome("handed_off", write, base)
        for _attempt in range(CONFLICT_RETRIES):
            result = apply_write(self.root, write, base, self.defer_seconds)
            if result.status != "conflict":
                break
            # The user saved the note between our read and our write: their bytes win; plan again from them.
            replanned = replan()
            if replanned is None:
                return WriteOutcome("unchanged", write, base)
            write, base = replanned
        return self.record(write, base, result)

    def record(self, write: Write, base: bytes, result: WriteResult) -> WriteOutcome:
        """Remember a write's outcome in the store (a conflict still standing is a deferral)."""
        store = self.store
        if result.status == "written":
            store.record_written(write.path, result.checksum, write.remembered)
            store.clear_write_issue(write.path)
            return WriteOutcome("written", write, base)
        if result.status == "unchanged":
            store.record_written(write.path, checksum(base), write.remembered)
            return WriteOutcome("unchanged", write, base)
        if result.status in ("deferred", "conflict"):
            return WriteOutcome("deferred", write, base, result.reason)
        store.set_write_issue(write.path, result.reason)
        return WriteOutcome("skipped", write, base, result.reason)
