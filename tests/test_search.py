"""Search (keywords and vectors fused) on the bundled example vault with the real model, through the
exact scan and through the inverted file that large vaults use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ideaweave import vectors
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.search import search

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"


@pytest.fixture(params=["exact", "inverted file"])
def app(request, tmp_path, embedder, monkeypatch):
    if request.param == "inverted file":
        monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
        monkeypatch.setattr(vectors, "IVF_PROBES", 3)  # a few clusters of about 8: really approximate
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    app.indexer.run()
    assert app.store.vectors_exact == (request.param == "exact")
    yield app
    app.store.close()


def test_a_remembered_phrase_finds_its_note_first(app):
    hits = search(app.store, app.embedder, "when a measure becomes a target")
    assert hits[0].path == "Concepts/Goodhart's law.md"
    assert "measure" in hits[0].passage.lower()
    assert len({h.path for h in hits}) == len(hits)  # one result per note


def test_a_paraphrase_without_shared_words_finds_the_note_by_meaning(app):
    hits = search(app.store, app.embedder, "an AI that lets humans switch it off", k=5)
    assert {"Concepts/Corrigibility.md", "Papers/The off-switch game.md"} & {h.path for h in hits}


def test_private_notes_and_templates_only_when_asked(app):
    query = "unpublished interpretability result preliminary numbers workshop deadline"
    assert all(not h.path.startswith(("Private/", "Templates/")) for h in search(app.store, app.embedder, query))
    with_private = search(app.store, app.embedder, query, include_private=True)
    assert with_private[0].path == "Private/Unpublished interpretability result draft.md"
    assert search(app.store, app.embedder, "   ") == []


def test_the_passage_of_a_note_without_headings_starts_with_its_first_paragraph(app):
    (app.root / "Plain.md").write_text(
        "Quokkas hop between mangrove roots at dawn.\n\nA second paragraph about tide tables.\n", encoding="utf-8")
    app.indexer.run()
    hits = search(app.store, app.embedder, "quokkas mangrove roots")
    hit = next(h for h in hits if h.path == "Plain.md")
    assert hit.passage.startswith("Quokkas hop between mangrove roots at dawn.")
