"""Search (keywords and vectors fused) on the bundled example vault with the real model, through the
exact scan and through the inverted file that large vaults use."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from ideaweave import search as search_module
from ideaweave import vectors
from ideaweave.app import App
from ideaweave.corpus import Corpus
from ideaweave.config import Settings, replace
from ideaweave.store import Store
from ideaweave.search import (SEARCH_WEIGHTS, Passage, QueryVectors, more_like, note_components, note_passage,
                              question_query, ranked_hits, search, vault_centre)

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


# ---- "more like this passage"

SHUTDOWN = ("The agent can see the construction coming: whichever branch has the higher expected utility, it "
            "wants to end up there, so it has a reason to influence whether the off button gets pressed.")


def test_a_selected_passage_finds_the_other_notes_about_it_never_its_own(app):
    hits = more_like(app.store, app.embedder, Passage(SHUTDOWN, source="Concepts/Corrigibility.md"), k=5)
    paths = [h.path for h in hits]
    assert "Concepts/Corrigibility.md" not in paths
    assert paths[0] == "Papers/The off-switch game.md"
    assert all(h.why and h.passage for h in hits)
    # Without a source nothing is left out: the passage's own note is the best match.
    assert more_like(app.store, app.embedder, Passage(SHUTDOWN), k=1)[0].path == "Concepts/Corrigibility.md"


def test_a_notes_section_is_a_passage_to_search_by(app):
    section = note_passage(app.store, "Concepts/Corrigibility.md", "shutdown  PROBLEM")  # as Obsidian matches
    assert section is not None and section.source == "Concepts/Corrigibility.md"
    assert "U_S" in section.text and "Utility indifference" not in section.text.split("\n\n", 1)[1]
    assert section.vector_ids  # searched by the vectors the index holds: no model call
    nested = note_passage(app.store, "Concepts/Corrigibility.md", "Corrigibility#Shutdown problem")
    assert nested is not None and nested.text == section.text
    whole = note_passage(app.store, "Concepts/Corrigibility.md")
    assert len(whole.text) > len(section.text)
    assert note_passage(app.store, "Concepts/Corrigibility.md", "No such heading") is None
    assert note_passage(app.store, "Nowhere.md") is None

    hits = more_like(app.store, app.embedder, section, k=5)
    assert "Concepts/Corrigibility.md" not in [h.path for h in hits]
    assert hits[0].path == "Papers/The off-switch game.md"


def test_passage_search_keeps_private_notes_out_unless_asked_and_templates_always(app):
    draft = note_passage(app.store, "Private/Unpublished interpretability result draft.md", "Claim")
    passage = Passage(draft.text)  # no source: the private note itself would be the best match
    shown = [h.path for h in more_like(app.store, app.embedder, passage, k=30)]
    assert shown and not any(p.startswith(("Private/", "Templates/")) for p in shown)
    asked = [h.path for h in more_like(app.store, app.embedder, passage, k=30, include_private=True)]
    # Among the first: a private note keeps no keyword index rows at rest, so only its vectors find it.
    assert "Private/Unpublished interpretability result draft.md" in asked[:3]
    assert not any(p.startswith("Templates/") for p in asked)


def test_templates_never_appear_even_when_private_notes_are_asked_for(app):
    for query in ("daily note log ideas open tasks notes touched today", "One idea worth keeping, even a half-formed one"):
        for include_private in (False, True):
            assert all(not h.path.startswith("Templates/")
                       for h in search(app.store, app.embedder, query, k=50, include_private=include_private))


# ---- the daemon's snapshot: the same answer as the store's, only while it is current

SNAPSHOT_QUERIES = ("when a measure becomes a target", "an AI that lets humans switch it off",
                    "What is the", "unpublished interpretability result preliminary numbers")


def _answers(app, corpus, include_private=False):
    return [[h.as_json() for h in search(app.store, app.embedder, q, k=10, include_private=include_private,
                                         corpus=corpus)] for q in SNAPSHOT_QUERIES]


def test_a_current_snapshot_gives_the_answer_the_store_gives(app):
    corpus = Corpus(app.store)
    assert corpus.current
    for include_private in (False, True):
        assert _answers(app, corpus, include_private) == _answers(app, None, include_private)
    section = note_passage(app.store, "Concepts/Corrigibility.md", "Shutdown problem")
    assert ([h.as_json() for h in more_like(app.store, app.embedder, section, corpus=corpus)]
            == [h.as_json() for h in more_like(app.store, app.embedder, section)])


def test_a_snapshot_is_left_aside_once_a_note_changes_and_kept_when_only_frontmatter_does(app):
    corpus = Corpus(app.store)
    note = app.root / "Concepts/Goodhart's law.md"
    text = note.read_text(encoding="utf-8")
    # Only the frontmatter (what ideaweave writes): the sections, title and flags stay as the snapshot has them.
    note.write_text("---\nsummary: A measure that becomes a target.\n---\n" + text if not text.startswith("---\n")
                    else text.replace("---\n", "---\nsummary: A measure that becomes a target.\n", 1), encoding="utf-8")
    app.indexer.run()
    assert corpus.current
    # A new section: the snapshot no longer holds what the store holds, and search reads the store.
    with note.open("a", encoding="utf-8") as f:
        f.write("\n\n## Quokka census\n\nQuokkas counted on Rottnest island every spring by volunteers.\n")
    app.indexer.run()
    assert not corpus.current
    hits = search(app.store, app.embedder, "quokka census on Rottnest island", k=3, corpus=corpus)
    assert hits[0].path == "Concepts/Goodhart's law.md" and hits[0].heading == "Quokka census"
    fresh = corpus.updated(["Concepts/Goodhart's law.md"])
    assert fresh.current and _answers(app, fresh) == _answers(app, None)


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, real):
        self.real, self.texts = real, []
        self.model_id, self.dim, self.max_tokens = real.model_id, real.dim, real.max_tokens

    def count_tokens(self, text):
        return self.real.count_tokens(text)

    def embed(self, texts):
        self.texts.extend(texts)
        return self.real.embed(texts)


def test_a_query_asked_again_is_answered_the_same_without_embedding_it_again(app, monkeypatch):
    monkeypatch.setattr(search_module, "_query_vectors", QueryVectors())  # none remembered from other tests
    model = CountingEmbedder(app.embedder)
    typed = ["when a measure becomes", "when a measure becomes a target", "when a measure becomes"]
    answers = [search(app.store, model, q) for q in typed]
    assert model.texts.count("when a measure becomes") == 1  # the prefix backspaced to is remembered
    assert [h.as_json() for h in answers[0]] == [h.as_json() for h in answers[2]]
    fresh = QueryVectors()
    assert np.array_equal(fresh.embed(model, typed[1]), app.embedder.embed([typed[1]])[0])


def test_the_keyword_query_run_beside_the_embedding_gives_the_answer_run_after_it(app):
    for query in ["when a measure becomes a target", "Goodhart measure quokka", "What is"]:
        beside = question_query(app.embedder, query, app.store)
        after = question_query(app.embedder, query)
        assert (beside.keyword_hits is not None) == bool(beside.words)
        if beside.keyword_hits is not None:
            beside.keyword_hits.result()  # answered on the store's thread (not run again by the search)
        assert ([h.as_json() for h in ranked_hits(app.store, beside, 20)]
                == [h.as_json() for h in ranked_hits(app.store, after, 20)])


def test_the_keyword_query_beside_the_embedding_runs_on_the_stores_search_thread(app, monkeypatch):
    # One pool for keyword searches off the caller's thread, the store's: its own read connection, so the
    # query does not wait for the store's lock while the caller embeds.
    asked = []
    side_search = Store._side_fts_search

    def recorded(store, query, k, match_any):
        asked.append((threading.current_thread().name, query, match_any))
        return side_search(store, query, k, match_any)

    monkeypatch.setattr(Store, "_side_fts_search", recorded)
    found = question_query(app.embedder, "when a measure becomes a target", app.store)
    assert found.keyword_hits.result()
    assert asked == [(asked[0][0], "measure becomes target", False)] and asked[0][0].startswith("ideaweave-search")
    asked.clear()
    question_query(app.embedder, "Goodhart measure quokka", app.store).keyword_hits.result()  # no section has all three
    assert [(q, any_word) for _, q, any_word in asked] == [("Goodhart measure quokka", False), ("Goodhart measure quokka", True)]


def test_a_keyword_query_still_waiting_on_the_stores_thread_is_run_by_the_search_itself(app, monkeypatch):
    # The store's thread may be busy with a sync slice's keyword searches: the typed search does not wait.
    gate = threading.Event()
    side_search = Store._side_fts_search

    def held(store, query, k, match_any):
        gate.wait(30)
        return side_search(store, query, k, match_any)

    monkeypatch.setattr(Store, "_side_fts_search", held)
    ahead = app.store.fts_search_async("measure", 5)  # holds the store's search thread until the gate opens
    text = "when a measure becomes a target"
    queued = question_query(app.embedder, text, app.store)
    hits = ranked_hits(app.store, queued, 20)
    assert queued.keyword_hits.cancelled() and not gate.is_set()
    gate.set()
    assert ahead.result()
    assert [h.as_json() for h in hits] == [h.as_json() for h in ranked_hits(app.store, question_query(app.embedder, text), 20)]


# ---- the vault's centre: a note near it (an overview) counts against it

def test_the_vault_centre_is_the_mean_whole_note_vector_of_the_first_notes_and_follows_changes(app, monkeypatch):
    _paths, vectors, _ = app.store.note_means()
    assert np.allclose(vault_centre(app.store), vectors.mean(axis=0), atol=1e-6)
    (app.root / "Quokkas.md").write_text("# Quokkas\n\nQuokkas hop between mangrove roots at dawn.\n", encoding="utf-8")
    app.indexer.run()
    _paths, vectors, _ = app.store.note_means()
    assert np.allclose(vault_centre(app.store), vectors.mean(axis=0), atol=1e-6)
    # A large vault: the centre of its first notes only, the same from one search to the next.
    monkeypatch.setattr(search_module, "CENTRE_NOTES", 3)
    (app.root / "Wombats.md").write_text("# Wombats\n\nWombats dig burrows.\n", encoding="utf-8")
    app.indexer.run()
    first = app.store.oldest_note_paths(3)
    _paths, vectors, _ = app.store.note_means(only=first)
    assert len(first) == 3 and np.allclose(vault_centre(app.store), vectors.mean(axis=0), atol=1e-6)


def test_after_an_edit_a_current_snapshot_gives_the_centre_without_reading_the_stores_sections(app, monkeypatch):
    corpus = Corpus(app.store)
    (app.root / "Quokkas.md").write_text("# Quokkas\n\nQuokkas hop between mangrove roots at dawn.\n", encoding="utf-8")
    app.indexer.run()
    fresh = corpus.updated(["Quokkas.md"])
    through_store = vault_centre(app.store)
    search_module._centres.clear()  # computed again, from the snapshot this time

    def unread(*args, **kwargs):
        raise AssertionError("the centre read the store's sections although the snapshot holds them")

    with monkeypatch.context() as patched:
        for read in ("chunk_table", "note_means", "note_path_by_id"):
            patched.setattr(app.store, read, unread)
        assert fresh.current and np.array_equal(vault_centre(app.store, fresh), through_store)
    # One answer: search through the snapshot and through the store agree after the edit.
    search_module._centres.clear()
    assert _answers(app, fresh) == _answers(app, None)
    # An edit to a note outside the sample: the sample's sections are as they were, and so is the centre.
    monkeypatch.setattr(search_module, "CENTRE_NOTES", 3)
    search_module._centres.clear()
    before = vault_centre(app.store, fresh)
    assert "Quokkas.md" not in app.store.oldest_note_paths(3)
    (app.root / "Quokkas.md").write_text("# Quokkas\n\nQuokkas sleep in the shade at noon.\n", encoding="utf-8")
    app.indexer.run()
    following = fresh.updated(["Quokkas.md"])
    with monkeypatch.context() as patched:
        patched.setattr(app.store, "gather_vectors", unread)
        assert following.current and np.array_equal(vault_centre(app.store, following), before)
    search_module._centres.clear()
    assert np.array_equal(vault_centre(app.store), before)


def test_how_central_a_candidate_is_counts_against_it(app):
    query = question_query(app.embedder, "an AI that lets humans switch it off")
    evidence = note_components(app.store, query)
    paths, vectors, _ = app.store.note_means(only=evidence.paths)
    centre = vault_centre(app.store)
    expected = dict(zip(paths, vectors @ centre))
    central = dict(zip(evidence.paths, evidence.parts["central"]))
    assert all(abs(central[p] - expected[p]) < 1e-5 for p in paths)
    # The most central candidate loses ground to every other when centrality counts; the rest of the fusion is unchanged.
    without = {k: w for k, w in SEARCH_WEIGHTS.items() if k != "central"}
    gain = evidence.fused(SEARCH_WEIGHTS) - evidence.fused(without)
    most = int(np.argmax(evidence.parts["central"]))
    assert SEARCH_WEIGHTS["central"] < 0 and gain[most] == gain.min()

