"""VaultSync on its own, built from explicit parts: what it writes, what it leaves alone, what it hands off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ideaweave import frontmatter
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.sync import VaultSync
from ideaweave.writer import checksum

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"
NOTE = "Concepts/Reward hacking.md"


@pytest.fixture
def app(tmp_path, embedder):
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state"), **{"writer.defer_seconds": 0.0}), root,
              embedder=embedder)
    app.indexer.run()
    yield app
    app.close()


def sync_of(app: App, **parts) -> VaultSync:
    given = dict(root=app.root, store=app.store, related_notes=app.related_notes, summaries=app.summaries,
                 keys=app.keys, defer_seconds=0.0)
    return VaultSync(**{**given, **parts})


def managed(app: App, path: str) -> dict:
    return frontmatter.read_managed((app.root / path).read_bytes(), ("related", "summary"))


def test_a_run_writes_every_note_once_and_then_nothing(app):
    first = sync_of(app).run()
    assert NOTE in first.written and not first.failed
    assert len(managed(app, NOTE)["related"]) == app.keys.count and managed(app, NOTE)["summary"]
    again = sync_of(app).run()
    assert again.written == [] and again.unchanged >= len(first.written)


def test_a_dry_run_shows_the_diff_and_writes_nothing(app):
    before = (app.root / NOTE).read_bytes()
    report = sync_of(app).run(paths=[NOTE], dry_run=True)
    assert report.written == [NOTE] and (app.root / NOTE).read_bytes() == before
    assert report.diffs and "+related:" in report.diffs[0] and app.store.last_written(NOTE) is None


def test_writes_go_to_the_handoff_while_it_takes_them(app):
    offered = []
    report = sync_of(app, handoff=lambda write, base: offered.append((write.path, base)) or True).run(paths=[NOTE])
    assert report.handed_off == [NOTE] and offered[0][0] == NOTE
    assert "related" not in managed(app, NOTE)  # the bridge writes it, inside Obsidian
    report = sync_of(app, handoff=lambda write, base: False).run(paths=[NOTE])
    assert report.written == [NOTE] and managed(app, NOTE)["related"]


def test_a_note_saved_within_the_deferral_window_waits(app):
    (app.root / NOTE).write_text((app.root / NOTE).read_text(encoding="utf-8") + "\nJust typed.\n", encoding="utf-8")
    report = sync_of(app, defer_seconds=60.0).run(paths=[NOTE])
    assert report.deferred == [NOTE] and "related" not in managed(app, NOTE)


def test_templates_are_never_written(app):
    templates = app.store.template_paths()
    assert templates
    report = sync_of(app).run(paths=sorted(templates))
    assert report.written == [] and all("related" not in managed(app, t) for t in templates)


def test_in_a_batch_of_writes_one_notes_failure_or_conflict_costs_that_note_only(app, monkeypatch):
    """The writes of a run are one batch (swaps, one wait, one fsync per folder): a note that fails to be
    written, and a note the user saves between the plan and the write, change nothing for the others;
    the saved note is planned again from the user's bytes, which stay."""
    from ideaweave import sync as sync_module
    from ideaweave.failures import FaultPlan

    paths = sorted(p for p in app.store.note_paths() if p not in app.store.template_paths())
    failing, saved = paths[1], paths[2]
    typed = "\nTyped while ideaweave was writing.\n"
    batch = sync_module.VaultSync._write_all

    def user_saves_before_the_writes(self, writes, *args):
        assert len(writes) > 3  # the batch
        (app.root / saved).write_text((app.root / saved).read_text(encoding="utf-8") + typed, encoding="utf-8")
        return batch(self, writes, *args)

    monkeypatch.setattr(sync_module.VaultSync, "_write_all", user_saves_before_the_writes)
    report = sync_of(app, faults=FaultPlan([f"write:{failing}"])).run(paths=paths)
    assert [f.path for f in report.failed] == [failing] and report.failed[0].stage == "write"
    assert "related" not in managed(app, failing)
    assert set(report.written) == set(paths) - {failing}
    assert (app.root / saved).read_text(encoding="utf-8").endswith(typed) and managed(app, saved)["related"]
    for path in report.written:  # each write remembered with the bytes it put there
        assert app.store.last_written(path).checksum == checksum((app.root / path).read_bytes())
