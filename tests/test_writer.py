"""Write planning (pure) and safe writes on real files, including a real concurrent editor."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path


from ideaweave import frontmatter
from ideaweave.writer import (
    BYSTANDER_HYSTERESIS, Candidate, Keys, NoteState, Write, apply_write, atomic_replace, checksum, plan_note, plan_writes,
    WriteResult,
)

KEYS = Keys(count=3)


def cands(*names: str) -> list[Candidate]:
    return [Candidate(f"{n}.md", f"[[{n}]]") for n in names]


def test_first_write_takes_the_top_candidates():
    state = NoteState("a.md", {}, None)
    write, problem, rejects, pins = plan_note(state, cands("b", "c", "d", "e"), "A summary.", KEYS, set())
    assert write.values == {"related": ["[[b]]", "[[c]]", "[[d]]"], "summary": "A summary."}
    assert problem is None and rejects == [] and pins == []


def test_nothing_changes_when_values_are_right():
    last = {"related": ["[[b]]", "[[c]]", "[[d]]"], "summary": "S."}
    state = NoteState("a.md", dict(last), last)
    write, *_ = plan_note(state, cands("b", "c", "d", "e"), "S.", KEYS, set())
    assert write is None


def test_hysteresis_keeps_order_and_links_still_near_the_top():
    last = {"related": ["[[b]]", "[[c]]", "[[d]]"], "summary": "S."}
    state = NoteState("a.md", dict(last), last)
    # Scores moved: d now ranks first, b fell to 5th (still inside count + hysteresis): nothing to write.
    write, *_ = plan_note(state, cands("d", "x", "c", "y", "b", "z"), "S.", KEYS, set())
    assert write is None
    # b falls out of the window entirely: only its slot changes, the others keep their places.
    write, *_ = plan_note(state, cands("d", "x", "c", "y", "z", "w", "v", "b"), "S.", KEYS, set())
    assert write.values == {"related": ["[[c]]", "[[d]]", "[[x]]"]}


def test_a_bystander_keeps_its_links_within_a_wider_window():
    """A note re-ranked only because a neighbour changed keeps a link that fell to 8th of 3 written;
    when the note itself changed, the usual window (count + 3) applies and the link is replaced."""
    last = {"related": ["[[b]]", "[[c]]", "[[d]]"], "summary": "S."}
    ranked = cands("new", "d", "x", "c", "y", "z", "w", "b")
    edited, *_ = plan_note(NoteState("a.md", dict(last), last), ranked, "S.", KEYS, set())
    assert edited.values == {"related": ["[[c]]", "[[d]]", "[[new]]"]}
    bystander, *_ = plan_note(NoteState("a.md", dict(last), last, slack=BYSTANDER_HYSTERESIS), ranked, "S.", KEYS, set())
    assert bystander is None
    gone = cands("new", "d", "x", "c", "y", "z", "w")  # b deleted: no window keeps it
    bystander, *_ = plan_note(NoteState("a.md", dict(last), last, slack=BYSTANDER_HYSTERESIS), gone, "S.", KEYS, set())
    assert bystander.values == {"related": ["[[c]]", "[[d]]", "[[new]]"]}


def test_a_renamed_link_is_neither_a_pin_nor_a_rejection():
    """The memory says [[c]] (the note was renamed from b) and remembers the old text."""
    last = {"related": ["[[c]]", "[[d]]"], "summary": "S.", "renamed": {"[[b]]": "[[c]]"}}
    # The file was not rewritten: it still says [[b]]; the list is written again with the new text.
    state = NoteState("a.md", {"related": ["[[b]]", "[[d]]"], "summary": "S."}, last)
    write, problem, rejects, pins = plan_note(state, cands("c", "d", "e"), "S.", Keys(count=2), set())
    assert (rejects, pins, problem) == ([], [], None)
    assert write.values == {"related": ["[[c]]", "[[d]]"]} and "renamed" not in write.remembered
    # Obsidian rewrote it: nothing to do, and still neither a pin nor a rejection.
    state = NoteState("a.md", {"related": ["[[c]]", "[[d]]"], "summary": "S."}, last)
    write, problem, rejects, pins = plan_note(state, cands("c", "d", "e"), "S.", Keys(count=2), set())
    assert (write, rejects, pins) == (None, [], [])


def test_user_deleting_a_link_rejects_it_and_adding_one_pins_it():
    last = {"related": ["[[b]]", "[[c]]", "[[d]]"], "summary": "S."}
    state = NoteState("a.md", {"related": ["[[mine]]", "[[b]]", "[[d]]"], "summary": "S."}, last)
    write, problem, rejects, pins = plan_note(state, cands("b", "c", "d", "e"), "S.", KEYS, set())
    assert rejects == ["[[c]]"] and pins == ["[[mine]]"]
    assert write.values["related"] == ["[[mine]]", "[[b]]", "[[d]]", "[[e]]"]
    assert "[[c]]" not in write.values["related"]
    assert write.remembered["pinned"] == ["[[mine]]"]


def test_rejected_targets_are_never_suggested():
    state = NoteState("a.md", {}, None)
    write, *_ = plan_note(state, cands("b", "c", "d", "e"), None, KEYS, rejected={"c.md"})
    assert write.values == {"related": ["[[b]]", "[[d]]", "[[e]]"]}


def test_values_not_written_by_ideaweave_are_left_alone_and_reported():
    state = NoteState("a.md", {"related": ["[[hand made]]"], "summary": "My own words."}, None)
    plan = plan_writes([state], {"a.md": cands("b")}, {"a.md": "Generated."}, KEYS, {})
    assert plan.writes == [] and plan.unchanged == ["a.md"]
    assert "not written by ideaweave" in plan.skipped[0][1]


def test_user_removing_a_key_opts_out_and_editing_the_summary_owns_it():
    last = {"related": ["[[b]]"], "summary": "Generated."}
    removed = NoteState("a.md", {}, last)
    assert plan_note(removed, cands("x", "y"), "New generated.", KEYS, set())[0] is None
    edited = NoteState("a.md", {"related": ["[[b]]"], "summary": "I rewrote this."}, last)
    write, *_ = plan_note(edited, cands("b"), "New generated.", KEYS, set())
    assert write is None


def test_summary_removed_when_note_became_too_short():
    last = {"related": ["[[b]]"], "summary": "Old."}
    state = NoteState("a.md", dict(last), last)
    write, *_ = plan_note(state, cands("b"), None, Keys(count=1), set())
    assert write.values == {"summary": None}


def note(tmp_path: Path, text: str, age: float = 60.0) -> Path:
    path = tmp_path / "note.md"
    path.write_bytes(text.encode("utf-8"))
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def test_apply_write_changes_only_managed_keys(tmp_path):
    path = note(tmp_path, "---\n# keep me\ntitle: X  # inline\ntags: [a, b]\n---\nBody\r\nstays.")
    base = path.read_bytes()
    result = apply_write(tmp_path, Write("note.md", {"related": ["[[b]]"]}, {}), base, defer_seconds=5)
    assert result.status == "written"
    after = path.read_bytes()
    assert after == b'---\n# keep me\ntitle: X  # inline\ntags: [a, b]\nrelated:\n  - "[[b]]"\n---\nBody\r\nstays.'
    assert result.checksum == checksum(after)
    assert [p.name for p in tmp_path.iterdir()] == ["note.md"]  # no temp file left behind


def test_recently_modified_note_is_deferred(tmp_path):
    path = note(tmp_path, "Body.\n", age=0.5)
    result = apply_write(tmp_path, Write("note.md", {"summary": "S"}, {}), path.read_bytes(), defer_seconds=5)
    assert result.status == "deferred" and path.read_text() == "Body.\n"


def test_compare_and_swap_refuses_a_changed_file(tmp_path):
    path = note(tmp_path, "Body.\n")
    base = path.read_bytes()
    path.write_text("Body.\nThe user typed this.\n")
    conflict = atomic_replace(path, b"---\nsummary: x\n---\nBody.\n", checksum(base))
    assert conflict.status == "conflict"
    assert path.read_text() == "Body.\nThe user typed this.\n"


def test_unparsable_frontmatter_is_never_written(tmp_path):
    path = note(tmp_path, "---\ntitle: [unclosed\n---\nBody.\n")
    before = path.read_bytes()
    result = apply_write(tmp_path, Write("note.md", {"summary": "S"}, {}), before, defer_seconds=0)
    assert result.status == "skipped" and "YAML" in result.reason
    assert path.read_bytes() == before


def _edit_once(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def test_an_edit_between_plan_and_write_wins_and_the_write_is_planned_again(tmp_path):
    """Another process edits the note after ideaweave read it: the swap is refused, nothing is lost,
    and planning again from the new bytes writes both."""
    path = note(tmp_path, "---\ntags: [x]\n---\nStart.\n")
    base = path.read_bytes()
    edited = frontmatter.set_managed(base, {"summary": "planned from the old bytes"})
    editor = multiprocessing.Process(target=_edit_once, args=(str(path), "The user typed this.\n"))
    editor.start()
    editor.join()
    assert atomic_replace(path, edited, checksum(base)).status == "conflict"
    assert path.read_text(encoding="utf-8").endswith("Start.\nThe user typed this.\n")
    fresh = path.read_bytes()
    assert atomic_replace(path, frontmatter.set_managed(fresh, {"summary": "planned again"}), checksum(fresh)) is None
    assert path.read_text(encoding="utf-8") == '---\ntags: [x]\nsummary: "planned again"\n---\nStart.\nThe user typed this.\n'


def _editor(path: str, started, bursts: int) -> None:
    """A user typing in an editor like Obsidian's: the note lives in a buffer, reloaded from disk
    when the editor is idle, and each save writes the whole buffer over the file (in place); bursts of
    saves, then a pause that is long next to ideaweave's defer window."""
    import random

    pauses = random.Random(7)
    started.set()
    line = 0
    for _ in range(bursts):
        with open(path, encoding="utf-8") as handle:
            buffer = handle.read()  # idle: take in what changed on disk (ideaweave's frontmatter)
        for _ in range(5):
            buffer += f"typed line {line}\n"
            with open(path, "r+", encoding="utf-8") as handle:
                handle.write(buffer)
                handle.truncate()
            line += 1
            time.sleep(0.002)
        time.sleep(pauses.uniform(0.15, 0.3))


def test_race_with_a_real_editor_process_loses_no_line(tmp_path):
    """Another process keeps saving while ideaweave writes the way the daemon does (deferring notes
    saved moments ago, compare-and-swap): every line the user saved survives exactly once, and
    ideaweave's own values land (an editor save may overwrite them; the daemon writes them again)."""
    path = note(tmp_path, "---\ntags: [x]\n---\nStart.\n")
    started = multiprocessing.Event()
    editor = multiprocessing.Process(target=_editor, args=(str(path), started, 40))
    editor.start()
    started.wait()
    outcomes = []
    while editor.is_alive():
        base = path.read_bytes()
        write = Write("note.md", {"summary": f"summary {len(outcomes)}"}, {})
        outcomes.append(apply_write(tmp_path, write, base, defer_seconds=0.03).status)
        time.sleep(0.005)
    editor.join()
    text = path.read_text(encoding="utf-8")
    for i in range(200):
        assert text.count(f"typed line {i}\n") == 1, i
    assert text.startswith("---\ntags: [x]\n") and "Start.\n" in text
    assert "written" in outcomes and "deferred" in outcomes


def test_a_note_moved_before_the_swap_is_a_conflict_not_a_crash(tmp_path):
    path = note(tmp_path, "Body.\n")
    base = path.read_bytes()
    path.rename(tmp_path / "moved.md")
    assert atomic_replace(path, b"new", checksum(base)).status == "conflict"
    assert not path.exists() and (tmp_path / "moved.md").read_bytes() == base
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved.md"]


def test_a_save_landing_during_the_swap_is_put_back_with_the_notes_mode(tmp_path, monkeypatch):
    """An editor that opened the note just before the swap saves into the old file: the user's bytes are
    put back, the note keeps its mode (not the 0600 of ideaweave's own state files), nothing is left over."""
    from ideaweave import writer

    path = note(tmp_path, "Body.\n")
    path.chmod(0o644)
    base = path.read_bytes()
    editor = open(path, "ab")  # the editor's handle on the file as it was before the swap

    def save_during_the_grace_window(seconds: float) -> None:
        editor.write(b"Typed during the swap.\n")
        editor.flush()

    monkeypatch.setattr(writer.time, "sleep", save_during_the_grace_window)
    with editor:
        result = atomic_replace(path, b"---\nsummary: x\n---\nBody.\n", checksum(base))
    assert result.status == "conflict"
    assert path.read_bytes() == b"Body.\nTyped during the swap.\n"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.md"]


def test_a_note_renamed_in_the_instant_before_the_swap_does_not_come_back_under_its_old_name(tmp_path, monkeypatch):
    from ideaweave import writer

    path = note(tmp_path, "Body.\n")
    base = path.read_bytes()
    renamed = tmp_path / "renamed.md"
    swap = os.replace

    def rename_then_swap(source, target):
        os.rename(path, renamed)  # the user renames the note after the check, before the swap
        swap(source, target)

    monkeypatch.setattr(writer.os, "replace", rename_then_swap)
    result = atomic_replace(path, b"---\nsummary: x\n---\nBody.\n", checksum(base))
    assert result.status == "conflict"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["renamed.md"]  # no resurrected name, no temporary file
    assert renamed.read_bytes() == base


def test_a_batch_of_swaps_shares_one_wait_and_puts_back_a_save_that_landed_in_it(tmp_path):
    """begin_write swaps each note, one wait serves them all, finish_write looks at each: a save into one
    note's old file during the wait puts that note back; the others stand; nothing is left over."""
    from ideaweave.writer import SWAP_GRACE_SECONDS, begin_write, finish_write, fsync_folders

    bases = {}
    for name in ("a.md", "b.md", "c.md"):
        (tmp_path / name).write_bytes(f"Body of {name}.\n".encode())
        bases[name] = (tmp_path / name).read_bytes()
    editor = open(tmp_path / "b.md", "ab")  # an editor's handle on b.md from before the swap
    pending = [begin_write(tmp_path, Write(n, {"summary": f"S {n}"}, {}), bases[n], defer_seconds=0) for n in bases]
    assert all(not isinstance(p, WriteResult) for p in pending)
    with editor:
        editor.write(b"Typed during the swap.\n")
    time.sleep(SWAP_GRACE_SECONDS)
    results = {p.write.path: finish_write(p) for p in pending}
    fsync_folders(tmp_path / n for n, r in results.items() if r.status == "written")
    assert {n: r.status for n, r in results.items()} == {"a.md": "written", "b.md": "conflict", "c.md": "written"}
    assert (tmp_path / "b.md").read_bytes() == b"Body of b.md.\nTyped during the swap.\n"
    for name in ("a.md", "c.md"):
        data = (tmp_path / name).read_bytes()
        assert data.endswith(bases[name]) and f"summary: \"S {name}\"".encode() in data and results[name].checksum == checksum(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.md", "c.md"]


def test_the_note_writer_hands_off_replans_after_a_save_and_remembers_each_outcome(tmp_path):
    """NoteWriter, the one way every managed key reaches a note: the bridge first, a note another write waits
    on left for later, a save between plan and write kept and planned again from, the outcome remembered."""
    from ideaweave.store import Store
    from ideaweave.writer import NoteWriter

    store = Store.open(tmp_path / "state", 4, "m")
    path = note(tmp_path, "---\ntags: [x]\n---\nStart.\n")
    base = path.read_bytes()
    write = Write("note.md", {"topic": "[[Topics/T]]"}, {"topic": "[[Topics/T]]"})

    def replan():
        fresh = path.read_bytes()
        return Write("note.md", {"topic": "[[Topics/T]]"}, {"topic": "[[Topics/T]]"}), fresh

    offered = []
    bridge = NoteWriter(tmp_path, store, 0.0, handoff=lambda w, b: offered.append(w) or True)
    assert bridge.write(write, base, replan).status == "handed_off" and offered == [write]
    assert NoteWriter(tmp_path, store, 0.0, bridge.handoff, busy=lambda p: True).write(write, base, replan).status == "deferred"
    assert len(offered) == 1 and path.read_bytes() == base and store.last_written("note.md") is None

    path.write_bytes(base + b"Typed after the plan.\n")  # the user saves: the plan's base is stale
    outcome = NoteWriter(tmp_path, store, 0.0).write(write, base, replan)
    assert outcome.status == "written" and outcome.base == base + b"Typed after the plan.\n"
    assert path.read_bytes() == b'---\ntags: [x]\ntopic: "[[Topics/T]]"\n---\nStart.\nTyped after the plan.\n'
    assert store.last_written("note.md").checksum == checksum(path.read_bytes())

    path.unlink()
    gone = NoteWriter(tmp_path, store, 0.0).write(Write("note.md", {"topic": None}, {}), base, replan)
    assert gone.status == "skipped" and store.write_issues() == [("note.md", "the note no longer exists")]
    store.close()
