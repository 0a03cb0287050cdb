"""VaultSync on its own, built from explicit parts: what it writes, what it leaves alone, what it hands off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ideaweave import frontmatter
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.sync import VaultSync

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
