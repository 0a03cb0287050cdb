"""One note is the unit of failure: the guard itself, then faults injected into every stage of the real
pipeline (`apply` and the daemon), then whole vaults of hostile notes end to end."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from hostile_markdown import AWKWARD_TEXT, EMPTY_CONTAINERS, FRONTMATTERS, OBSIDIAN_PIECES, PROSE, commonmark_examples
from ideaweave import cli
from ideaweave.config import load_settings
from ideaweave.errors import ConfigError, StoreError
from ideaweave.failures import STAGES, FaultPlan, InjectedFault, NoteGuard, is_about_the_note
from test_watch import NOTES, eventually, make_app, meta, running_daemon, settle, write_vault

# ------------------------------------------------------------------ the guard


def guarded(exc: BaseException):
    failures = []
    with NoteGuard(failures.append).note("a.md") as at:
        at.stage = "chunk"
        raise exc
    return at, failures


def test_a_failure_about_one_note_is_caught_and_reported():
    at, failures = guarded(IndexError("list index out of range"))
    assert at.failed is not None and failures == [at.failed]
    assert (at.failed.path, at.failed.stage, at.failed.reason) == ("a.md", "chunk", "IndexError: list index out of range")


@pytest.mark.parametrize("exc", [StoreError("index unwritable"), sqlite3.OperationalError("disk I/O error"),
                                 MemoryError(), OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failures_that_are_not_about_one_note_stop_the_run(exc):
    with pytest.raises(type(exc)):
        guarded(exc)
    assert not is_about_the_note(exc)


def test_the_stage_reached_is_the_one_reported():
    failures = []
    with NoteGuard(failures.append).note("a.md") as at:
        at.stage = "relate"
        at.stage = "summarize"
        raise ValueError("bad")
    assert failures[0].stage == "summarize"


def test_a_fault_plan_names_a_stage_and_a_note():
    plan = FaultPlan(["embed:a/b.md"])
    plan.check("embed", "other.md")
    plan.check("chunk", "a/b.md")
    with pytest.raises(InjectedFault):
        plan.check("embed", "a/b.md")
    with pytest.raises(ValueError):
        FaultPlan(["nonsense"])
    with pytest.raises(ConfigError, match="STAGE:PATH"):
        load_settings(env={"IDEAWEAVE_DEBUG_FAIL": "teleport:a.md", "XDG_CONFIG_HOME": "/nonexistent"})


# ------------------------------------------------------------------ faults injected into the real pipeline

VICTIM = "Alignment/Reward hacking.md"


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv) + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def cli_vault(tmp_path, monkeypatch):
    vault = write_vault(tmp_path / "vault")
    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
    monkeypatch.setenv("IDEAWEAVE_WRITER_DEFER_SECONDS", "0")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return vault


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "read"])
def test_a_fault_in_any_stage_costs_that_note_only_and_is_retried_once_it_changes(cli_vault, capsys, monkeypatch, stage):
    vault = cli_vault
    assert VICTIM in NOTES
    monkeypatch.setenv("IDEAWEAVE_DEBUG_FAIL", f"{stage}:{VICTIM}")
    code, report = run_cli(capsys, "apply", "--vault", str(vault))
    assert code == 0
    others = [p for p in NOTES if p != VICTIM and not p.startswith("Templates/")]
    assert all(meta(vault, p).get("related") for p in others), "the other notes were not all written"
    assert "related" not in meta(vault, VICTIM) and "summary" not in meta(vault, VICTIM)
    assert {"path": VICTIM, "stage": stage} in [{k: f[k] for k in ("path", "stage")} for f in report["failed"]]

    code, status = run_cli(capsys, "status", "--vault", str(vault))
    assert [(f["path"], f["stage"]) for f in status["failed"]] == [(VICTIM, stage)]
    assert "InjectedFault" in status["failed"][0]["reason"]

    # Unchanged, the note is not tried again (and the fault, still configured, does not fire again).
    code, again = run_cli(capsys, "apply", "--vault", str(vault))
    assert code == 0 and "related" not in meta(vault, VICTIM)
    code, status = run_cli(capsys, "status", "--vault", str(vault))
    assert [(f["path"], f["stage"]) for f in status["failed"]] == [(VICTIM, stage)]

    # Changed (and the fault gone), it is indexed and written, and its failure forgotten.
    monkeypatch.delenv("IDEAWEAVE_DEBUG_FAIL")
    with open(vault / VICTIM, "a", encoding="utf-8") as f:
        f.write("\nOne more sentence about reward signals and their loopholes.\n")
    code, report = run_cli(capsys, "apply", "--vault", str(vault))
    assert code == 0 and report["failed"] == []
    assert meta(vault, VICTIM).get("related") and meta(vault, VICTIM).get("summary")
    code, status = run_cli(capsys, "status", "--vault", str(vault))
    assert status["failed"] == []


def test_status_says_which_notes_failed_in_words(cli_vault, capsys, monkeypatch):
    monkeypatch.setenv("IDEAWEAVE_DEBUG_FAIL", f"summarize:{VICTIM}")
    assert cli.main(["apply", "--vault", str(cli_vault)]) == 0
    out = capsys.readouterr().out
    assert f"failed {VICTIM} — summarize — InjectedFault" in out
    assert cli.main(["status", "--vault", str(cli_vault)]) == 0
    out = capsys.readouterr().out
    assert "failed     1 note (each retried when it changes)" in out
    assert f"  {VICTIM} — summarize — InjectedFault: fault injected at stage summarize" in out


def test_the_daemon_survives_a_failing_note_and_the_api_status_names_it(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder, **{"debug.fail": [f"relate:{VICTIM}"]})
    from ideaweave.api import AppBackend

    with running_daemon(app) as stats:
        others = [p for p in NOTES if p != VICTIM and not p.startswith("Templates/")]
        eventually(lambda: all(meta(vault, p).get("related") for p in others), what="every other note written")
        assert "related" not in meta(vault, VICTIM)
        status = AppBackend(app).status().as_json()
        assert [(f["path"], f["stage"]) for f in status["failed"]] == [(VICTIM, "relate")]
        # An edit of another note is still followed.
        other = others[0]
        with open(vault / other, "a", encoding="utf-8") as f:
            f.write("\nAn added paragraph about corrigibility and shutdown.\n")
        eventually(lambda: stats.batches >= 1, what="the edit processed")
        settle(stats)
        assert stats.ready and meta(vault, other).get("related")


# ------------------------------------------------------------------ whole vaults of hostile notes


def hostile_vault(root: Path) -> tuple[Path, list[str]]:
    """The ordinary notes, then a note for every CommonMark example and every hostile piece."""
    vault = write_vault(root)
    hostile = {}
    for example in commonmark_examples():
        hostile[f"Spec/Example {example['example']:03d}.md"] = example["markdown"]
    pieces = OBSIDIAN_PIECES + EMPTY_CONTAINERS + AWKWARD_TEXT
    for i, piece in enumerate(pieces):
        hostile[f"Pieces/Piece {i:03d}.md"] = FRONTMATTERS[i % len(FRONTMATTERS)] + f"{piece}\n\n{PROSE}\n\n{piece}"
    hostile["Pieces/Huge.md"] = "# Huge\n\n" + ("A long line of text that goes on. " * 40 + "\n") * 1000  # 1.4 MB
    hostile["Pieces/Too large.md"] = "# Too large\n\n" + ("x" * 999 + "\n") * 5000  # 5 MB: skipped, said once
    hostile["Pieces/Deep.md"] = "".join("> " * d + "- " * d + f"level {d}\n" for d in range(60))
    for rel, text in hostile.items():
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        (vault / rel).write_text(text, encoding="utf-8", newline="")
    return vault, sorted(hostile)


def ordinary(vault: Path) -> list[str]:
    return [p for p in NOTES if not p.startswith("Templates/")]


def test_apply_on_a_vault_of_hostile_notes_writes_the_ordinary_ones(cli_vault, capsys, tmp_path):
    vault, hostile = hostile_vault(tmp_path / "hostile")
    before = {rel: (vault / rel).read_bytes() for rel in hostile}
    code, report = run_cli(capsys, "apply", "--vault", str(vault))
    assert code == 0, report
    assert report["failed"] == [], report["failed"]
    for rel in ordinary(vault):
        assert meta(vault, rel).get("related") and meta(vault, rel).get("summary"), rel
    assert report["written"] >= len(ordinary(vault))
    _assert_only_managed_keys_changed(vault, before)


def _assert_only_managed_keys_changed(vault: Path, before: dict[str, bytes]) -> None:
    from ideaweave import frontmatter

    for rel, data in before.items():
        now = (vault / rel).read_bytes()
        if now != data:
            removed = frontmatter.set_managed(now, {"related": None, "summary": None})
            assert removed in (data, b"---\n---\n" + data, b"---\r\n---\r\n" + data), rel


def test_the_daemon_on_a_vault_of_hostile_notes_stays_up_through_edits_and_renames(tmp_path, embedder):
    vault, hostile = hostile_vault(tmp_path / "hostile")
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app, timeout=300) as stats:
        for rel in ordinary(vault):
            assert meta(vault, rel).get("related"), rel
        # Edit a hostile note, rename another, and edit an ordinary one: all followed, nothing stops.
        with open(vault / "Spec/Example 001.md", "a", encoding="utf-8") as f:
            f.write("\n- \n\nA paragraph after an empty bullet.\n")
        shutil.move(vault / "Spec/Example 002.md", vault / "Spec" / "Renamed example.md")
        target = ordinary(vault)[0]
        with open(vault / target, "a", encoding="utf-8") as f:
            f.write("\n- \n\nAn ordinary note gets an empty bullet too.\n")
        eventually(lambda: stats.batches >= 1, what="the changes processed")
        settle(stats, idle=1.5, timeout=120)
        assert stats.ready and stats.last_error is None, stats.last_error
        assert meta(vault, target).get("related")
        assert app.store.note("Spec/Renamed example.md") is not None
        assert app.store.problems(STAGES) == []


def test_apply_waits_for_notes_saved_moments_ago(cli_vault, capsys, monkeypatch):
    # The default window: long enough that indexing on a busy machine does not outlast it.
    monkeypatch.setenv("IDEAWEAVE_WRITER_DEFER_SECONDS", "5")
    fresh = cli_vault / "Fresh note.md"
    fresh.write_text(PROSE + "\n\nIt was saved a moment before apply ran.\n", encoding="utf-8")
    started = time.monotonic()
    code = cli.main(["apply", "--vault", str(cli_vault)])
    captured = capsys.readouterr()
    assert code == 0
    assert "saved moments ago; waiting" in captured.err
    assert time.monotonic() - started >= 1.0
    assert meta(cli_vault, "Fresh note.md").get("related")

    again = cli_vault / "Another fresh note.md"
    again.write_text(PROSE + "\n\nSaved right before apply --now.\n", encoding="utf-8")
    code, report = run_cli(capsys, "apply", "--vault", str(cli_vault), "--now")
    assert code == 0 and report["deferred"] == []
    assert meta(cli_vault, "Another fresh note.md").get("related")
