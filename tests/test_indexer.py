"""Incremental indexing over real files, the real model and a real store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ideaweave.indexer import Indexer, plan_scan
from ideaweave.store import NoteStat, Store
from ideaweave.vault import NoteFile, ScanRules, VaultScanner


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    (root / ".obsidian").mkdir(parents=True)
    write(root, "Alignment.md", "# Alignment\n\nMaking AI systems pursue what their designers intend.\n\nSee [[Reward hacking]].\n")
    write(root, "Reward hacking.md", "---\ntags: [rl]\n---\n# Reward hacking\n\nA policy exploits flaws in its reward signal.\n")
    write(root, "topics/Gardening.md", "Tomatoes need sun, water and patience. Compost helps the soil.\n")
    return root


def make_indexer(vault: Path, state: Path, embedder) -> Indexer:
    store = Store.open(state, embedder.dim, embedder.model_id)
    return Indexer(VaultScanner(vault, ScanRules()), store, embedder, max_tokens=128)


def test_plan_scan_reads_only_changed_files():
    files = [NoteFile("a.md", 10, 1), NoteFile("b.md", 20, 2), NoteFile("c.md", 5, 3)]
    known = {"a.md": NoteStat(10, 1, "h"), "b.md": NoteStat(20, 9, "h"), "gone.md": NoteStat(1, 1, "h")}
    plan = plan_scan(files, known, skipped={"c.md": (5, 3)})
    assert [f.path for f in plan.to_read] == ["b.md"]
    assert plan.deleted == ("gone.md",) and plan.unchanged == 2


def test_cold_index_then_restart_embeds_nothing(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    first = indexer.run()
    assert first.notes == 3 and first.embedded_chunks == first.chunks > 0
    indexer.store.close()
    again = make_indexer(vault, tmp_path / "state", embedder).run()
    assert again.embedded_chunks == 0 and again.read == 0 and again.notes == 3


def test_touch_without_change_rereads_but_does_not_embed(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    os.utime(vault / "Alignment.md", ns=(1, 1))
    report = indexer.run()
    assert report.read == 1 and report.embedded_chunks == 0 and report.changed == []


def test_edit_embeds_only_the_changed_chunk(vault, tmp_path, embedder):
    write(vault, "Long.md", "# One\n\nFirst section about corrigibility.\n\n# Two\n\nSecond section about interpretability.\n")
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    write(vault, "Long.md", "# One\n\nFirst section about corrigibility.\n\n# Two\n\nSecond section, now about debate.\n")
    report = indexer.run()
    assert report.changed == ["Long.md"] and report.embedded_chunks == 1


def test_rename_reembeds_nothing_and_keeps_links(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    (vault / "topics").rename(vault / "garden")
    (vault / "Reward hacking.md").rename(vault / "Reward gaming.md")
    report = indexer.run()
    assert report.embedded_chunks == 0
    assert sorted(report.renamed) == [("Reward hacking.md", "Reward gaming.md"), ("topics/Gardening.md", "garden/Gardening.md")]
    assert sorted(indexer.store.note_paths()) == ["Alignment.md", "Reward gaming.md", "garden/Gardening.md"]
    # [[Reward hacking]] no longer resolves once its target is renamed.
    assert ("Alignment.md", "Reward hacking.md") not in indexer.store.links()
    assert indexer.store.counts()["vectors"] == indexer.store.counts()["chunks"]


def test_delete_removes_note_everywhere(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    (vault / "Reward hacking.md").unlink()
    report = indexer.run()
    assert report.deleted == ["Reward hacking.md"]
    store = indexer.store
    assert "Reward hacking.md" not in store.note_paths()
    assert store.fts_search("exploits flaws", 10) == []
    assert store.links() == []
    assert store.counts()["vectors"] == sum(len(store.chunks_of(p)) for p in store.note_paths())


def test_bad_files_are_reported_and_do_not_stop_indexing(vault, tmp_path, embedder):
    write(vault, "broken yaml.md", "---\ntitle: [unclosed\n---\nThe body still counts and mentions gardening.\n")
    write(vault, "binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" + bytes(range(256)))
    write(vault, "latin1.md", "caf\xe9 cr\xe8me".encode("latin-1"))
    write(vault, "huge.md", "word " * 1_000_000)  # 5 MB
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    report = indexer.run()
    reasons = dict(report.skipped)
    assert set(reasons) == {"binary.md", "latin1.md", "huge.md"}
    assert "binary" in reasons["binary.md"] and "UTF-8" in reasons["latin1.md"] and "larger" in reasons["huge.md"]
    assert "broken yaml.md" in indexer.store.note_paths()
    assert indexer.store.fts_search("body still counts", 5)[0].note_path == "broken yaml.md"
    # Unchanged bad files are not read again on the next run.
    assert indexer.run().read == 0


def test_update_handles_create_modify_delete(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    write(vault, "New.md", "A brand new note about scalable oversight.\n")
    (vault / "topics" / "Gardening.md").unlink()
    report = indexer.update(["New.md", "topics/Gardening.md", ".obsidian/workspace.json"])
    assert report.changed == ["New.md"] and report.deleted == ["topics/Gardening.md"]
    assert sorted(indexer.store.note_paths()) == ["Alignment.md", "New.md", "Reward hacking.md"]


def test_interrupted_run_is_completed_next_time(vault, tmp_path, embedder):
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    # Simulate a crash that left chunks without vectors (e.g. a model reset half-way).
    indexer.store.reset_vectors()
    report = indexer.run()
    assert report.embedded_chunks == indexer.store.counts()["chunks"] > 0
    assert indexer.store.counts()["chunks_without_vectors"] == 0


def test_links_follow_notes_that_appear_and_disappear_elsewhere(vault, tmp_path, embedder):
    write(vault, "Plans.md", "Read [[Goodhart]] then [[garden/Goodhart|the other one]] and [x](Goodhart.md).\n\nAlso [[Alignment]].\n")
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    targets = lambda: [link.target_path for link in indexer.store.outgoing_links("Plans.md")]  # noqa: E731
    assert targets() == [None, None, None, "Alignment.md"]
    write(vault, "garden/Goodhart.md", "When a measure becomes a target it ceases to be a good measure.\n")
    indexer.run()  # the only note of that name: every link to the name finds it
    assert targets() == ["garden/Goodhart.md", "garden/Goodhart.md", "garden/Goodhart.md", "Alignment.md"]
    write(vault, "Goodhart.md", "A second note of the same name, at the root, next to Plans.\n")
    indexer.run()  # nearer to Plans.md: the bare links move to it, the folder-qualified one stays
    assert targets() == ["Goodhart.md", "garden/Goodhart.md", "Goodhart.md", "Alignment.md"]
    (vault / "Goodhart.md").unlink()
    indexer.run()
    assert targets() == ["garden/Goodhart.md", "garden/Goodhart.md", "garden/Goodhart.md", "Alignment.md"]
    (vault / "garden" / "Goodhart.md").rename(vault / "garden" / "Campbell.md")  # a rename is both at once
    indexer.run()
    assert targets() == [None, None, None, "Alignment.md"]


def test_an_update_run_in_a_pause_of_the_pass_is_kept_and_the_pass_completes(tmp_path, embedder):
    vault = tmp_path / "bulk"
    for i in range(40):
        write(vault, f"Note {i:02d}.md", f"# Note {i}\n\nParagraph {i} about gardens, soil and the seasons of year {i}.\n")
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    last = "Note 39.md"
    pauses = []

    def edit_the_last_note_ahead_of_the_pass():
        pauses.append(indexer.store.totals()[0])
        if len(pauses) == 1:  # the user saves a note the pass has not reached yet
            write(vault, last, "# Tomato blight\n\nWet summers bring blight to tomato leaves.\n")
            assert indexer.update([last]).changed == [last]

    report = indexer.run(pause=edit_the_last_note_ahead_of_the_pass, group_chunks=8)
    assert len(pauses) >= 3 and pauses == sorted(pauses) and pauses[0] < 40
    assert report.notes == 40 and not report.failed
    note = indexer.store.note(last)
    assert note.size == (vault / last).stat().st_size
    assert any("blight" in c.text for c in indexer.store.chunks_of(last))
    # Nothing is left half-done: a second pass finds every note as the first left it.
    again = indexer.run()
    assert again.read == 0 and again.embedded_chunks == 0


def test_a_re_embed_of_the_vault_pauses_for_the_users_edits_between_groups(tmp_path, embedder):
    vault = tmp_path / "bulk"
    for i in range(30):
        write(vault, f"Note {i:02d}.md", f"# Note {i}\n\nParagraph {i} about gardens, soil and the seasons of year {i}.\n")
    indexer = make_indexer(vault, tmp_path / "state", embedder)
    indexer.run()
    indexer.store.reset_vectors()  # what a model change does: every chunk waits to be embedded again
    edited = "Note 29.md"
    waiting = []

    def edit_during_the_re_embed():
        waiting.append(indexer.store.counts()["chunks_without_vectors"])
        if len(waiting) == 1:  # the user saves a note while the vault is embedded again
            write(vault, edited, "# Tomato blight\n\nWet summers bring blight to tomato leaves.\n")
            assert indexer.update([edited]).changed == [edited]

    phases, progress = [], []
    report = indexer.run(pause=edit_during_the_re_embed, group_chunks=8,
                         phases=lambda name, total: phases.append((name, total)),
                         progress=lambda done, total: progress.append((done, total)))
    assert report.read == 0  # nothing to read: only the re-embed, which paused between its groups
    # Its progress is told as the reading's is, in notes, after the phase's start.
    assert phases == [("embedding", 30)]
    assert len(progress) >= 3 and progress[-1] == (30, 30) and all(t == 30 for _, t in progress)
    assert [d for d, _ in progress] == sorted({d for d, _ in progress})
    assert len(waiting) >= 3 and waiting == sorted(waiting, reverse=True) and 0 < waiting[-1] < waiting[0]
    assert indexer.store.counts()["chunks_without_vectors"] == 0
    assert any("blight" in c.text and c.vector_id is not None for c in indexer.store.chunks_of(edited))
    again = indexer.run()
    assert again.read == 0 and again.embedded_chunks == 0


def _index_rows(store: Store) -> dict:
    """What the index holds of every note, as a fresh indexing would store it (ids and times aside)."""
    import json
    import sqlite3

    db = sqlite3.connect(store.database_path)
    try:
        notes = {path: (title, size, mtime_ns, content_hash, is_template, private, fm if fm.startswith("\x1e") else json.loads(fm)) for
                 path, title, size, mtime_ns, content_hash, is_template, private, fm in db.execute(
                     "SELECT path, title, size, mtime_ns, content_hash, is_template, private, frontmatter_json FROM notes")}
        chunks = sorted(db.execute(
            "SELECT notes.path, ordinal, heading, heading_path_json, start_offset, end_offset, hash, text"
            " FROM chunks JOIN notes ON notes.id = chunks.note_id"))
        links = sorted(db.execute("SELECT notes.path, raw, target_path, heading, kind FROM links JOIN notes ON notes.id = links.source_id"), key=repr)
        tags = sorted(db.execute("SELECT notes.path, tag FROM tags JOIN notes ON notes.id = tags.note_id"))
    finally:
        db.close()
    return {"notes": notes, "chunks": chunks, "links": links, "tags": tags}


def test_own_writes_recorded_without_reading_equal_indexing_the_notes_again(tmp_path, embedder):
    """After a sync writes every note, recording the writes (record_own_writes) leaves the index as a fresh
    index of the written vault: properties, sections (moved with the body), links, tags; and the keyword
    search finds the same sections."""
    import shutil

    from ideaweave.app import App
    from ideaweave.config import Settings, replace
    from ideaweave.sync import VaultSync

    root = tmp_path / "vault"
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples" / "vault", root)
    write(root, "No frontmatter.md", "# Heading\r\n\r\nA note without properties, its lines ending in CRLF, about reward hacking.\r\n")
    write(root, "Odd block.md", "---  \ntags: [x]\n---\t\n\n\nBody after blank lines, about corrigibility and shutdown.\n")
    app = App(replace(Settings(), state_dir=str(tmp_path / "state"), **{"writer.defer_seconds": 0.0}), root, embedder=embedder)
    app.indexer.run()
    report = VaultSync.for_app(app).run()
    assert len(report.written) > 10 and set(report.rewritten) == set(report.written)
    recorded = app.indexer.record_own_writes(report.rewritten)
    assert "No frontmatter.md" in recorded
    long_way = set(report.written) - set(recorded)
    # Secure notes go the long way. A "---  " block, which the vault reads as frontmatter, is the block the
    # writer edits too (one rule finds it for both): its body stays where it was and its write is recorded.
    assert "Odd block.md" in recorded
    assert long_way and all(p.startswith("Private/") for p in long_way)
    app.indexer.update(sorted(long_way))
    secure = {p for p in long_way if p.startswith("Private/")}
    assert secure
    fresh = App(replace(Settings(), state_dir=str(tmp_path / "fresh")), root, embedder=embedder)
    fresh.indexer.run()
    ours, theirs = _index_rows(app.store), _index_rows(fresh.store)
    # Secure notes are stored sealed, under pseudonyms, with each store's own key: compared by the rest.
    shown = {p for p in app.store.note_paths() if p not in secure}
    public = lambda rows: [r for r in rows if r[0] in shown]  # noqa: E731 - a filter for the three tables
    assert len(shown) > 10 and {p: v for p, v in ours["notes"].items() if p in shown} == \
           {p: v for p, v in theirs["notes"].items() if p in shown}
    for table in ("chunks", "links", "tags"):
        assert public(ours[table]) == public(theirs[table]), table
    for query in ("reward hacking", "corrigibility shutdown", "Eliciting latent knowledge"):
        assert [(h.note_path, round(h.score, 9)) for h in app.store.fts_search(query, 20, match_any=True)] == \
               [(h.note_path, round(h.score, 9)) for h in fresh.store.fts_search(query, 20, match_any=True)]
    assert app.indexer.update(report.written).changed == []  # nothing left for the long way to see
    fresh.close()
    app.close()
