"""The pure event batcher, exhaustively: which notes a burst of file events concerns, and when."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave.events import Batch, EventBatcher, FsEvent, is_relevant, to_fs_event
from ideaweave.vault import ScanRules, VaultScanner

ACCEPTS = VaultScanner(Path("/nonexistent-vault"), ScanRules()).accepts


def batcher(notes=(), quiet=1.0, max_batch=10.0) -> EventBatcher:
    known = list(notes)
    return EventBatcher(ACCEPTS, lambda folder: [p for p in known if p.startswith(folder + "/")], quiet, max_batch)


def ev(kind: str, src: str, at: float, dest: str | None = None, folder: bool = False) -> FsEvent:
    return FsEvent(kind, src, dest, folder, at)


# ------------------------------------------------------------------ the pure batcher


def test_a_note_is_ready_once_it_has_been_quiet():
    b = batcher(quiet=1.0)
    b.add(ev("modified", "a.md", 0.0))
    assert b.take(0.5) is None
    assert b.take(1.0) == Batch(changed=("a.md",))
    assert b.take(5.0) is None and len(b) == 0


def test_repeated_events_coalesce_and_extend_the_quiet_period():
    b = batcher(quiet=1.0)
    for t in (0.0, 0.3, 0.6, 0.9):
        b.add(ev("modified", "a.md", t))
    b.add(ev("created", "a.md", 0.95))
    assert b.take(1.5) is None  # last event at 0.95: not quiet yet
    assert b.take(1.95) == Batch(changed=("a.md",))


def test_max_batch_window_flushes_a_note_that_never_goes_quiet():
    b = batcher(quiet=1.0, max_batch=3.0)
    t = 0.0
    while t < 2.9:
        b.add(ev("modified", "busy.md", t))
        assert b.take(t) is None
        t += 0.5
    b.add(ev("modified", "busy.md", 3.0))
    assert b.take(3.0) == Batch(changed=("busy.md",))
    b.add(ev("modified", "busy.md", 3.2))  # a new window starts with the next event
    assert b.take(4.0) is None and b.take(4.2) == Batch(changed=("busy.md",))


def test_the_window_flushes_everything_pending_together():
    b = batcher(quiet=1.0, max_batch=3.0)
    b.add(ev("modified", "old.md", 0.0))
    b.add(ev("modified", "old.md", 0.8))
    b.add(ev("modified", "new.md", 2.9))
    for t in (1.0, 1.5, 2.0, 2.5):
        b.add(ev("modified", "old.md", t))
    assert b.take(3.0) == Batch(changed=("new.md", "old.md"))


def test_quiet_notes_leave_while_busy_ones_stay():
    b = batcher(quiet=1.0, max_batch=10.0)
    b.add(ev("modified", "calm.md", 0.0))
    b.add(ev("modified", "busy.md", 0.0))
    b.add(ev("modified", "busy.md", 0.8))
    assert b.take(1.0) == Batch(changed=("calm.md",))
    assert b.take(1.5) is None
    assert b.take(1.8) == Batch(changed=("busy.md",))


def test_a_move_is_a_delete_and_a_create():
    b = batcher()
    b.add(ev("moved", "a.md", 0.0, dest="sub/b.md"))
    assert b.take(1.0) == Batch(changed=("sub/b.md",), deleted=("a.md",))


def test_the_last_event_of_a_note_wins():
    b = batcher()
    b.add(ev("created", "gone.md", 0.0))
    b.add(ev("deleted", "gone.md", 0.1))
    b.add(ev("deleted", "back.md", 0.0))
    b.add(ev("created", "back.md", 0.1))
    b.add(ev("moved", "x.md", 0.0, dest="y.md"))
    b.add(ev("moved", "y.md", 0.1, dest="x.md"))  # moved there and back again
    assert b.take(2.0) == Batch(changed=("back.md", "x.md"), deleted=("gone.md", "y.md"))


def test_deleting_a_folder_concerns_each_note_in_it():
    b = batcher(notes=["proj/a.md", "proj/sub/b.md", "projects.md", "other/c.md"])
    b.add(ev("deleted", "proj", 0.0, folder=True))
    assert b.take(1.0) == Batch(deleted=("proj/a.md", "proj/sub/b.md"))


def test_moving_a_folder_deletes_the_old_paths_and_creates_the_new():
    b = batcher(notes=["proj/a.md", "proj/sub/b.md", "proj/.hidden.md"])
    b.add(ev("moved", "proj", 0.0, dest="archive/proj", folder=True))
    assert b.take(1.0) == Batch(changed=("archive/proj/a.md", "archive/proj/sub/b.md"),
                                deleted=("proj/a.md", "proj/sub/b.md"))


def test_moving_a_folder_into_the_trash_deletes_its_notes():
    b = batcher(notes=["proj/a.md"])
    b.add(ev("moved", "proj", 0.0, dest=".trash/proj", folder=True))
    assert b.take(1.0) == Batch(deleted=("proj/a.md",))


def test_a_created_folder_brings_the_notes_inside_it():
    b = batcher(notes=["new/a.md", "new/b.md"])  # notes_under also lists notes found on disk
    b.add(ev("created", "new", 0.0, folder=True))
    b.add(ev("modified", "new", 0.0, folder=True))  # a folder's own mtime says nothing
    assert b.take(1.0) == Batch(changed=("new/a.md", "new/b.md"))


@pytest.mark.parametrize("path", [
    ".obsidian/workspace.json", ".obsidian/plugins/x/data.md", ".trash/old.md", "sub/.hidden.md",
    ".note.md.k2j3h4.ideaweave-tmp", "sub/.Note.md.abc.ideaweave-tmp", "note.md.swp", ".note.md.swp",
    "note.md~", ".#note.md", "picture.png", "notes.txt", "canvas.canvas", "4913",
])
def test_paths_that_are_not_notes_are_ignored(path):
    b = batcher()
    for kind in ("created", "modified", "deleted"):
        b.add(ev(kind, path, 0.0))
    b.add(ev("moved", path, 0.0, dest=path + ".bak"))
    assert not is_relevant(ev("modified", path, 0.0), ACCEPTS)
    assert b.take(100.0) is None and len(b) == 0


def test_a_temp_file_renamed_over_a_note_is_a_change_of_that_note():
    b = batcher()
    event = ev("moved", "sub/.Note.md.abc123.ideaweave-tmp", 0.0, dest="sub/Note.md")
    assert is_relevant(event, ACCEPTS)
    b.add(ev("created", "sub/.Note.md.abc123.ideaweave-tmp", 0.0))
    b.add(event)
    assert b.take(1.0) == Batch(changed=("sub/Note.md",))


def test_deferred_notes_come_back_when_due():
    b = batcher(quiet=1.0)
    b.defer(["typing.md"], until=5.0)
    assert b.next_due() == 5.0 and len(b) == 1
    assert b.take(4.9) is None
    assert b.take(5.0) == Batch(retried=("typing.md",))
    assert b.take(10.0) is None


def test_a_new_event_replaces_a_pending_retry():
    b = batcher(quiet=1.0)
    b.defer(["typing.md"], until=5.0)
    b.add(ev("modified", "typing.md", 2.0))
    assert b.take(3.0) == Batch(changed=("typing.md",))
    assert b.take(6.0) is None
    b.add(ev("modified", "again.md", 0.0))
    b.defer(["again.md"], until=0.5)  # already pending: the event brings it back anyway
    assert b.take(0.6) is None


def test_next_due_is_the_earliest_of_quiet_window_and_retries():
    b = batcher(quiet=1.0, max_batch=3.0)
    assert b.next_due() is None
    b.add(ev("modified", "a.md", 0.0))
    assert b.next_due() == 1.0
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        b.add(ev("modified", "a.md", t))
    assert b.next_due() == 3.0  # the window ends before a.md goes quiet
    b.defer(["b.md"], until=2.0)
    assert b.next_due() == 2.0


_NAMES = ["a.md", "b.md", "sub/c.md", ".obsidian/x.json", ".a.md.1.ideaweave-tmp", "a.md~"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["created", "modified", "deleted", "moved", "take"]),
                          st.sampled_from(_NAMES), st.sampled_from(_NAMES),
                          st.floats(min_value=0.0, max_value=1.5)), max_size=40))
def test_every_change_is_delivered_once_never_early_and_in_its_last_state(steps):
    quiet, window = 1.0, 3.0
    b = batcher(quiet=quiet, max_batch=window)
    now, expected, since, last = 0.0, {}, {}, {}

    def check(batch: Batch | None, at: float) -> None:
        if batch is None:
            return
        assert not set(batch.changed) & set(batch.deleted)
        oldest = min(since.values(), default=at)
        for path in batch.paths:
            assert ACCEPTS(path) and path in expected, path
            assert at - last[path] >= quiet or at - oldest >= window, "delivered before it was quiet"
            state = "changed" if path in batch.changed else "deleted"
            assert state == expected.pop(path)
            since.pop(path), last.pop(path)

    def touch(path: str, state: str, at: float) -> None:
        if ACCEPTS(path):
            expected[path] = state
            since.setdefault(path, at)
            last[path] = at

    for kind, src, dest, dt in steps:
        now += dt
        if kind == "take":
            check(b.take(now), now)
            continue
        b.add(ev(kind, src, now, dest=dest if kind == "moved" else None))
        if kind == "moved":
            touch(src, "deleted", now)
            touch(dest, "changed", now)
        else:
            touch(src, "deleted" if kind == "deleted" else "changed", now)
    check(b.take(now + window), now + window)
    assert expected == {} and len(b) == 0  # nothing lost


# ------------------------------------------------------------------ watchdog events


def test_watchdog_events_become_vault_relative():
    root = "/v"
    assert to_fs_event("modified", "/v/a/b.md", "", False, root, 1.0) == FsEvent("modified", "a/b.md", None, False, 1.0)
    assert to_fs_event("closed", "/v/a.md", "", False, root, 1.0).kind == "modified"
    assert to_fs_event("opened", "/v/a.md", "", False, root, 1.0) is None  # our own reads
    assert to_fs_event("closed_no_write", "/v/a.md", "", False, root, 1.0) is None
    assert to_fs_event("moved", "/v/a.md", "/v/b/a.md", False, root, 1.0) == FsEvent("moved", "a.md", "b/a.md", False, 1.0)
    assert to_fs_event("moved", "/v/a.md", "/elsewhere/a.md", False, root, 1.0) == FsEvent("deleted", "a.md", None, False, 1.0)
    assert to_fs_event("moved", "/tmp/x", "/v/dir", True, root, 1.0) == FsEvent("created", "dir", None, True, 1.0)
    assert to_fs_event("modified", "/v", "", True, root, 1.0) is None
    assert to_fs_event("created", "/v2/a.md", "", False, root, 1.0) is None

