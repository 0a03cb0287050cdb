"""Relatedness, calibration and novelty on the bundled example vault, with the real model."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.novelty import novelty
from ideaweave.calibrate import FOLDS, MIN_GAIN, _calibration_sample, calibrate, calibration_record, describe_weights
from ideaweave.corpus import Corpus
from ideaweave.relate import COMPONENTS, DEFAULT_WEIGHTS, Relater, diversify, keywords, top_indices, zscore
from ideaweave.vectors import int8_codes

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"


@pytest.fixture(scope="module")
def example_app(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("relate") / "vault"
    shutil.copytree(EXAMPLE, root)
    settings = replace(Settings(), state_dir=str(root.parent / "state"))
    app = App(settings, root, embedder=embedder)
    app.indexer.run()
    yield app
    app.store.close()


def test_finds_the_unlinked_twin_notes(example_app):
    relater = example_app.relater()
    top = [s.path for s in relater.rank("Concepts/Reward hacking.md", k=5)]
    assert "Concepts/Specification gaming.md" in top
    top = [s.path for s in relater.rank("Concepts/Eliciting latent knowledge.md", k=5)]
    assert "Projects/Honest reporting heads.md" in top


def test_passages_are_text_of_the_suggested_note(example_app):
    relater = example_app.relater()
    for path in example_app.store.note_paths():
        for s in relater.rank(path, k=5, include_private=True):
            chunk_texts = " ".join(" ".join(c.text.split()) for c in example_app.store.chunks_of(s.path))
            assert s.passage.rstrip("…") in chunk_texts, (path, s.path)
            if s.heading:
                assert s.heading in {c.heading for c in example_app.store.chunks_of(s.path)}


def test_excludes_self_linked_rejected_templates_and_private(example_app):
    relater = example_app.relater()
    corpus = relater.corpus
    for path in example_app.store.note_paths():
        linked = corpus.graph.outlinks(path)
        rejected = {p for p in example_app.store.note_paths() if p.startswith("Papers/")}
        suggested = {s.path for s in relater.rank(path, k=10, exclude=rejected)}
        assert path not in suggested
        assert not suggested & linked
        assert not suggested & rejected
        assert not any(p.startswith(("Templates/", "Private/")) for p in suggested)


def test_every_suggestion_explains_itself(example_app):
    for s in example_app.relater().rank("Concepts/Deceptive alignment.md", k=10):
        assert s.why and np.isfinite(s.score)
        assert set(s.components) == set(COMPONENTS)


def test_diversify_skips_near_copies():
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0.7, 0.7]], dtype=np.float32)
    scores = np.array([3.0, 2.5, 2.2, 1.0])  # 2.5 - 0.6 * 1.0 < 2.2: the near-copy drops below
    assert diversify(scores, vectors, 2) == [0, 2]


def test_zscore_ignores_non_candidates():
    values = np.array([1.0, 2.0, 3.0, 100.0])
    mask = np.array([True, True, True, False])
    z = zscore(values, mask)
    assert abs(z[:3].mean()) < 1e-9 and z[1] == 0


def test_keywords_skip_stopwords():
    assert keywords("The reward the REWARD model and the policy", 2) == ["reward", "model"]


def test_calibration_needs_enough_linked_notes(example_app):
    relater = example_app.relater()
    assert calibrate(relater, example_app.read_body) is None  # 19 notes: too few to learn from


def _topic_family_vault(root: Path) -> None:
    """Ten topics of four notes, each note linking the other three of its topic."""
    root.mkdir()
    topics = ["rivers", "volcanoes", "bees", "chess", "violins", "glaciers", "satellites", "bread", "tides", "owls"]
    for i, topic in enumerate(topics):
        for j in range(4):
            others = [f"{topic} {k}" for k in range(4) if k != j]
            links = " ".join(f"[[{o}]]" for o in others)
            (root / f"{topic} {j}.md").write_text(
                f"Notes number {j} about {topic}: facts, questions and observations about {topic}. {links}\n", encoding="utf-8")


def test_calibration_on_a_linked_vault(tmp_path, embedder):
    root = tmp_path / "vault"
    _topic_family_vault(root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    app.indexer.run()
    corpus = Corpus(app.store)
    edges = set(corpus.graph.edges())
    result = calibrate(Relater(corpus), app.read_body)
    assert set(corpus.graph.edges()) == edges  # calibration hides links in its own copy of the graph
    assert result is not None and result.queries >= 20 and len(result.gains) == FOLDS
    # Kept only when the weights win on notes they were not fitted on, by more than the folds disagree.
    assert result.kept == (result.gain > max(MIN_GAIN, result.spread))
    assert result.weights is None or set(result.weights) == set(COMPONENTS)


def test_a_calibration_query_hides_its_own_links_only(tmp_path, embedder):
    """A held-out note is scored as if its author had not linked yet: its own links are gone from every
    component, and the links other notes make (to it, and from its neighbours) are still evidence."""
    root = tmp_path / "vault"
    _topic_family_vault(root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    app.indexer.run()
    corpus = Corpus(app.store)
    held_out = Relater(corpus.with_graph(corpus.graph.copy()))
    z, gold = _calibration_sample(held_out, "owls 0.md", app.read_body("owls 0.md"))
    assert gold.sum() == 3
    # The three other owl notes link back to it: that evidence is what a new note's author would see.
    assert (z["back"][gold] > 0).all() and (z["back"][~gold] <= 0).all()
    assert held_out.corpus.graph.outlinks("owls 0.md") == corpus.graph.outlinks("owls 0.md")  # restored
    app.close()


def test_calibration_keeps_the_defaults_when_links_say_nothing(tmp_path, embedder):
    """Links drawn at random carry no signal a weight could learn: the held-out check keeps the defaults."""
    root = tmp_path / "vault"
    root.mkdir()
    rng = random.Random(0)
    names = [f"note {i}" for i in range(60)]
    words = "river volcano bee chess violin glacier satellite bread tide owl lantern copper meadow".split()
    for name in names:
        links = " ".join(f"[[{o}]]" for o in rng.sample([n for n in names if n != name], 4))
        text = " ".join(rng.choice(words) for _ in range(30))
        (root / f"{name}.md").write_text(f"{text.capitalize()}. {links}\n", encoding="utf-8")
    app = App(replace(Settings(), state_dir=str(tmp_path / "state"), **{"relate.weights": "auto"}), root,
              embedder=embedder)
    app.indexer.run()
    result = calibrate(Relater(Corpus(app.store)), app.read_body)
    assert result is not None and not result.kept
    assert app.relater().weights == Settings().relate.weights_dict()
    assert "did not win on held-out notes" in describe_weights("auto", calibration_record(app.store))
    app.close()


def test_novelty_ranks_a_copied_section_least_novel(example_app, tmp_path):
    root = example_app.root
    source = (root / "Concepts" / "Goodhart's law.md").read_text(encoding="utf-8")
    (root / "Copycat.md").write_text(
        "# Something new\n\nBeekeeping in winter: insulate the hive and leave enough honey for the colony.\n\n"
        "# Borrowed\n\n" + source.split("\n", 2)[-1], encoding="utf-8")
    example_app.indexer.run()
    sections = novelty(Corpus(example_app.store), "Copycat.md")
    assert sections[-1].heading == "Borrowed" and sections[-1].novelty < 0.1
    assert sections[-1].nearest_path == "Concepts/Goodhart's law.md"
    assert sections[0].heading == "Something new" and sections[0].novelty > sections[-1].novelty + 0.2
    (root / "Copycat.md").unlink()
    example_app.indexer.run()


def indexed_copy(example_app, tmp_path) -> App:
    """The example vault copied and indexed afresh (with whatever store limits the test has set)."""
    root = tmp_path / "vault"
    shutil.copytree(example_app.root, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=example_app.embedder)
    app.indexer.run()
    return app


@pytest.mark.parametrize("codes", [False, True])
def test_an_inverted_file_probing_every_cluster_ranks_like_the_scan(example_app, tmp_path, monkeypatch, codes):
    """Large vaults rank through the store's inverted file (sections fetched, not scanned); with every
    cluster probed it must give the very same suggestions, scores, passages and headings when the found
    sections' stored vectors are read. Ranking reads their 8-bit codes (`IvfIndex.decoded`), which move a
    score by a few hundredths at most: a note's score stays that close, and only near-ties change places."""
    from ideaweave import vectors

    if not codes:
        monkeypatch.setattr(vectors.IvfIndex, "decoded", vectors.IvfIndex.gather)
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
    monkeypatch.setattr(vectors, "IVF_PROBES", 10_000)
    app = indexed_copy(example_app, tmp_path)
    try:
        corpus = Corpus(app.store)
        assert not corpus.exact and corpus.chunk_vectors is None
        weights = dict(DEFAULT_WEIGHTS)
        exact = Relater(Corpus(example_app.store), weights)
        assert exact.corpus.exact
        approximate = Relater(corpus, weights)
        shared = []
        for path in app.store.note_paths():
            want = {s.path: (s.score, s.passage, s.heading, s.why) for s in exact.rank(path, k=10)}
            got = {s.path: (s.score, s.passage, s.heading, s.why) for s in approximate.rank(path, k=10)}
            if not codes:
                assert list(got) == list(want) and all(got[p][1:] == want[p][1:] for p in got), path
            # A cosine within 3e-3, over the best-section evidence's spread (about 0.1), times its weight.
            for p in got.keys() & want.keys():
                assert got[p][0] == pytest.approx(want[p][0], abs=0.05 if codes else 5e-5), (path, p)
            shared.append(len(got.keys() & want.keys()) / len(want) if want else float(not got))
        assert np.mean(shared) >= (0.95 if codes else 1.0)
        borrowed = novelty(corpus, "Concepts/Goodhart's law.md")
        assert borrowed == novelty(exact.corpus, "Concepts/Goodhart's law.md")
    finally:
        app.store.close()


def corpus_state(corpus: Corpus) -> dict:
    return {
        "paths": corpus.paths, "notes": corpus.notes, "template": corpus.template.tolist(),
        "private": corpus.private.tolist(), "chunk_ordinal": corpus.chunk_ordinal.tolist(),
        "chunk_note": corpus.chunk_note.tolist(), "chunk_vid": corpus.chunk_vid.tolist(),
        "chunk_start": corpus.chunk_start.tolist(), "titles": (corpus.title_matcher.keys.tolist(), corpus.title_matcher.rows.tolist()),
        "edges": sorted(corpus.graph.edges()),
        "terms": [sorted(zip(corpus.terms.hashes[a:b].tolist(), corpus.terms.counts[a:b].tolist()))
                  for a, b in zip(corpus.terms.start[:-1], corpus.terms.start[1:])],
        "words": corpus.terms.words.tolist(),
        "df": {h: d for h, d in zip(corpus.terms.vocabulary.tolist(), corpus.terms.df.tolist()) if d},
    }


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "inverted file"])
def test_an_updated_corpus_equals_a_fresh_load(tmp_path, embedder, monkeypatch, exact):
    """The daemon carries its snapshot over from batch to batch, reading only the notes that changed:
    after edits, new notes, deletions, renames and changed links it must hold what a full load holds."""
    from ideaweave import vectors

    if not exact:
        monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    app.indexer.run()
    try:
        corpus = Corpus(app.store)
        assert corpus.exact == exact
        (root / "Concepts" / "Reward hacking.md").write_text(
            "---\naliases: [reward tampering]\n---\n# Reward hacking\n\nAn agent tampers with its reward sensor. "
            "See [[Goodhart's law]] and [[Wireheading]].\n", encoding="utf-8")
        (root / "Concepts" / "Wireheading.md").write_text(
            "# Wireheading\n\nStimulating one's own reward channel directly. [[Corrigibility]]\n", encoding="utf-8")
        (root / "Concepts" / "Sparse autoencoders.md").unlink()
        (root / "Papers" / "AI safety via debate.md").rename(root / "Papers" / "Debate.md")
        report = app.indexer.run()
        touched = set(report.changed) | set(report.deleted) | {old for old, _ in report.renamed} | set(report.relinked)
        assert "Concepts/Wireheading.md" in touched and report.relinked  # links to the deleted and renamed notes
        updated = corpus.updated(touched)
        fresh = Corpus(app.store, note_mean=corpus.note_mean, chunk_mean=corpus.chunk_mean)
        assert corpus_state(updated) == corpus_state(fresh)
        np.testing.assert_allclose(updated.note_vectors, fresh.note_vectors, atol=1e-6)
        if exact:
            np.testing.assert_allclose(updated.chunk_vectors, fresh.chunk_vectors, atol=1e-6)
        want = [(s.path, round(s.score, 4)) for s in Relater(fresh).rank("Concepts/Reward hacking.md")]
        assert [(s.path, round(s.score, 4)) for s in Relater(updated).rank("Concepts/Reward hacking.md")] == want
        assert corpus.updated(set()) is corpus
        # Edits only (no note comes or goes): the vectors are updated in place, with the same result.
        (root / "Concepts" / "Corrigibility.md").write_text(
            "# Corrigibility\n\nAn agent that lets its overseers correct or shut it down.\n", encoding="utf-8")
        report = app.indexer.run()
        assert report.changed == ["Concepts/Corrigibility.md"] and not report.relinked
        again = updated.updated(report.changed)
        fresh = Corpus(app.store, note_mean=corpus.note_mean, chunk_mean=corpus.chunk_mean)
        assert again.note_vectors is updated.note_vectors and corpus_state(again) == corpus_state(fresh)
        np.testing.assert_allclose(again.note_vectors, fresh.note_vectors, atol=1e-6)
        updated = again
        # A frontmatter-only change (what the daemon's own writes are) is indexed again without the
        # snapshot being told: its sections are named by (note, position), so passages still resolve.
        suggested = [s.path for s in Relater(updated).rank("Concepts/Reward hacking.md")]
        for path in suggested:
            text = (root / path).read_text(encoding="utf-8")
            (root / path).write_text("---\nreviewed: true\n---\n" + text if not text.startswith("---") else
                                     text.replace("---\n", "---\nreviewed: true\n", 1), encoding="utf-8")
        assert set(app.indexer.run().changed) == set(suggested)
        after = [(s.path, s.passage, s.heading) for s in Relater(updated).rank("Concepts/Reward hacking.md")]
        assert after == [(s.path, s.passage, s.heading) for s in Relater(fresh).rank("Concepts/Reward hacking.md")]
        assert all(passage for _, passage, _ in after)
    finally:
        app.store.close()


def test_a_partly_searched_inverted_file_scores_what_it_found(example_app, tmp_path, monkeypatch):
    """When only the nearest sections are fetched, the notes they belong to get the score of their best
    fetched section, the others the lowest score fetched, and the evidence is standardised over a sample."""
    from ideaweave import relate as relate_module
    from ideaweave import vectors

    monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
    monkeypatch.setattr(vectors, "IVF_PROBES", 2)
    monkeypatch.setattr(relate_module, "SECTION_HITS", 12)
    monkeypatch.setattr(relate_module, "SECTION_HITS_MIN", 4)
    app = indexed_copy(example_app, tmp_path)
    try:
        relater = Relater(Corpus(app.store))
        exact = Relater(Corpus(example_app.store))
        for path in app.store.note_paths():
            q = relater.corpus.index.get(path)
            if q is None:
                continue
            parts, truth = relater.components(q), exact.components(exact.corpus.index[path])
            floor = parts["chunk"].min()
            found = parts["chunk"] > floor + 1e-6
            assert set(parts["_stats"]) == {"chunk"} and (~found).sum() > 1
            # A found note's score is its best fetched section: never above the truth, often equal to it
            # (read from the sections' 8-bit codes: a cosine within 3e-3).
            assert (parts["chunk"][found] <= truth["chunk"][found] + 3e-3).all()
            assert np.isclose(parts["chunk"][found], truth["chunk"][found], atol=3e-3).mean() > 0.5
            for s in relater.rank(path, k=5):
                assert s.passage and s.path != path and np.isfinite(s.score)
    finally:
        app.store.close()


def test_top_indices_equals_a_full_stable_sort_even_with_many_ties():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 20))
        scores = rng.integers(0, 5, n).astype(float)  # few distinct values: ties everywhere
        scores[rng.random(n) < 0.1] = -np.inf
        finite = np.flatnonzero(np.isfinite(scores))
        assert top_indices(scores, k).tolist() == finite[np.argsort(-scores[finite], kind="stable")][:k].tolist()


def reference_link_and_title_evidence(corpus: Corpus, q: int, text: str) -> dict[str, np.ndarray]:
    """The title, Adamic-Adar, backlink and neighbour-link evidence as the ranker computed it over a
    networkx graph and a dictionary of joined title words: the integer-array graph and the hashed title
    runs must give the very same values."""
    import math

    import networkx as nx

    from ideaweave.corpus import STOPWORDS as stop, TITLE_WORDS, normalise_title
    from ideaweave.relate import NEIGHBOUR_NOTES

    graph = nx.DiGraph()
    graph.add_nodes_from(corpus.paths)
    graph.add_edges_from(corpus.graph.edges())
    around = lambda p: set(graph.successors(p)) | set(graph.predecessors(p))
    n, path = len(corpus), corpus.paths[q]
    aa, shared, back, nbr, title = np.zeros(n), np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.zeros(n)
    for middle in around(path):
        others = around(middle)
        for other in others - {path}:
            aa[corpus.index[other]] += 1.0 / math.log(max(len(others), 2))
            shared[corpus.index[other]] += 1
    for other in graph.predecessors(path):
        back[corpus.index[other]] = 1.0
    emb = corpus.note_vectors @ corpus.note_vectors[q]
    for j in [j for j in top_indices(emb, NEIGHBOUR_NOTES + 1) if j != q][:NEIGHBOUR_NOTES]:
        for target in graph.successors(corpus.paths[j]):
            nbr[corpus.index[target]] += max(float(emb[j]), 0.0)
    names: dict[str, list[int]] = {}
    for i, (name, _, _, aliases) in enumerate(corpus.notes):
        for key in (normalise_title(a) for a in [name] + list(aliases)):
            if len(key) >= 3 and key not in stop and key.count(" ") < TITLE_WORDS:
                names.setdefault(key, []).append(i)
    words = normalise_title(text).split()
    for start in range(len(words)):
        for size in range(1, TITLE_WORDS + 1):
            for i in names.get(" ".join(words[start:start + size]), []):
                title[i] = 1.0
    return {"title": title, "aa": aa, "_shared": shared, "back": back, "nbr": nbr}


def test_link_and_title_evidence_equal_the_reference_on_every_note(example_app):
    """Every note of a real vault (links, aliases, multi-word titles) gets the evidence the networkx graph
    and the title dictionary gave, so no ranking moves."""
    relater = example_app.relater()
    corpus = relater.corpus
    assert corpus.graph.number_of_edges() > 10 and any(aliases for _, _, _, aliases in corpus.notes)
    mentioned = 0
    for q, path in enumerate(corpus.paths):
        text = relater._text_of(q)
        parts = relater.components(q, text)
        for name, want in reference_link_and_title_evidence(corpus, q, text).items():
            assert np.allclose(parts[name], want, rtol=1e-12, atol=0), (path, name)
        mentioned += int(parts["title"].sum())
    assert mentioned > 5  # the vault's notes do name each other's titles


def test_a_vault_too_large_for_fts5_scores_keywords_by_signatures_over_the_pool(example_app, monkeypatch):
    """Above KEYWORD_SEARCH_SECTIONS the keywords are scored against term signatures, for the pool of
    notes the other evidence ranks highest only, and FTS5 is not asked."""
    from ideaweave import relate

    monkeypatch.setattr(relate, "KEYWORD_SEARCH_SECTIONS", 0)
    monkeypatch.setattr(relate, "KEYWORD_POOL", 5)
    relater = Relater(Corpus(example_app.store))
    corpus = relater.corpus

    def no_fts(*args, **kwargs):
        raise AssertionError("FTS5 asked on a vault above the limit")

    monkeypatch.setattr(corpus.store, "fts_search", no_fts)
    q = corpus.index["Concepts/Reward hacking.md"]
    parts = relater.components(q)
    candidates = ~corpus.template
    candidates[q] = False
    provisional = sum(relater.weights[name] * z for name, z in
                      relate.standardised({**parts, "bm25": np.zeros(len(corpus))}, candidates).items())
    provisional[~candidates] = -np.inf
    scored = set(np.flatnonzero(parts["bm25"]).tolist())
    assert scored and scored <= set(top_indices(provisional, 5).tolist())
    monkeypatch.setattr(relate, "KEYWORD_POOL", 200)
    top = [s.path for s in relater.rank("Concepts/Reward hacking.md", k=5)]
    assert "Concepts/Specification gaming.md" in top


def test_rank_many_gives_each_note_what_rank_gives(example_app):
    """The batched ranking (one product for the best sections of several notes, the keyword searches on the
    store's search thread) names the same notes, in the same order, with the same passages and reasons."""
    relater = example_app.relater()
    paths = example_app.store.note_paths()
    rejected = {p: {q for q in paths if q.startswith("Papers/")} for p in paths[::2]}
    for include_private in (False, True):
        alone = {p: relater.rank(p, k=8, exclude=rejected.get(p, set()), include_private=include_private) for p in paths}
        together = relater.rank_many(paths, k=8, exclude=rejected, include_private=include_private)
        assert relater._batch.sections == {} and relater._batch.keyword_hits == {}  # released
        for p in paths:
            assert [(s.path, s.heading, s.passage, s.why) for s in together[p]] == \
                   [(s.path, s.heading, s.passage, s.why) for s in alone[p]], p
            # float32 products of another shape may round the last digit differently
            assert np.allclose([s.score for s in together[p]], [s.score for s in alone[p]], atol=1e-5), p
        assert any(alone[p] for p in paths)


def test_prefetched_evidence_is_what_each_note_computes_alone(example_app):
    relater = example_app.relater()
    corpus = relater.corpus
    paths = example_app.store.note_paths()
    relater.prefetch(paths)
    prefetched = dict(relater._batch.sections)
    texts = {t: f.result() for t, f in relater._batch.keyword_hits.items()}
    relater.release()
    assert set(prefetched) == {corpus.index[p] for p in paths if p in corpus.index} and texts
    for q, (chunk, complete) in prefetched.items():
        alone, alone_complete = relater._best_sections(q, corpus.section_vectors(corpus.rows_of(q)))
        assert complete == alone_complete and np.allclose(chunk, alone, atol=1e-6)
    for text, hits in texts.items():
        assert [(h.chunk_id, h.note_path) for h in hits] == [(h.chunk_id, h.note_path) for h in relater._keyword_hits(text)]


def fused_over_every_note(parts: dict, candidates: np.ndarray, weights: dict) -> np.ndarray:
    """The straightforward fusion: every component standardised over every candidate and summed."""
    from ideaweave.relate import standardised

    total = np.zeros(len(candidates))
    for name, z in standardised(parts, candidates).items():
        total += weights.get(name, 0.0) * z
    total[~candidates] = -np.inf
    return total


def generated_evidence(n: int, rng: np.random.Generator, levels: int | None = None, exact: bool = False) -> dict:
    """Evidence shaped like a real query's: dense cosines, link and keyword evidence on a few rows,
    best sections found for some notes (the rest at the lowest score found) or, `exact`, for all.
    `levels`: values drawn from that many distinct levels, so that ties are everywhere."""
    def draw(size):
        values = rng.random(size)
        return np.floor(values * levels) / levels if levels else values

    emb = (draw(n) * 2 - 1).astype(np.float32)
    parts: dict = {"emb": emb, "_rows": {}, "_base": {}, "_stats": {}}
    for name, share in (("title", 0.0001), ("aa", 0.001), ("back", 0.0002), ("nbr", 0.001), ("bm25", 0.002)):
        rows = np.unique(rng.integers(0, n, max(1, int(n * share))))
        values = np.zeros(n)
        values[rows] = 1.0 if name in ("title", "back") else draw(len(rows)) * 3 + 0.01
        parts[name], parts["_rows"][name] = values, rows
    if exact:
        parts["chunk"] = draw(n) * 0.8
    else:
        rows = np.unique(rng.integers(0, n, max(2, n // 500)))
        chunk = np.full(n, 0.2)
        chunk[rows] = 0.2 + draw(len(rows)) * 0.3
        parts["chunk"], parts["_rows"]["chunk"], parts["_base"]["chunk"] = chunk, rows, 0.2
        parts["_stats"]["chunk"] = (0.25, 0.05)
    return parts


def test_fusing_the_top_rows_only_picks_what_fusing_every_note_picks_at_100k():
    """At 100,000 notes the fusion reads only the rows with sparse evidence and the best rows by the
    dense components; it must pick the same notes, in the same order, with the same scores, as
    standardising every component over every note."""
    from ideaweave.relate import fused_top

    rng = np.random.default_rng(7)
    n = 100_000
    for trial in range(6):
        parts = generated_evidence(n, rng, exact=trial % 3 == 2)
        candidates = rng.random(n) > 0.05  # templates, private, linked and rejected notes left out
        for k in (10, 30, 200):
            rows, scores = fused_top(parts, candidates, DEFAULT_WEIGHTS, k)
            total = fused_over_every_note(parts, candidates, DEFAULT_WEIGHTS)
            want = top_indices(total, k)
            assert rows.tolist() == want.tolist(), (trial, k)
            assert np.allclose(scores, total[want], rtol=0, atol=1e-9)


def test_fusing_the_top_rows_only_breaks_ties_as_fusing_every_note_does():
    """Few distinct values (ties everywhere), small and odd candidate sets, zero and calibrated weights."""
    from ideaweave.relate import fused_top

    rng = np.random.default_rng(3)
    for trial in range(400):
        n = int(rng.integers(1, 80))
        parts = generated_evidence(n, rng, levels=int(rng.integers(1, 4)), exact=trial % 4 == 0)
        candidates = rng.random(n) > rng.random()
        weights = {name: float(rng.choice([0.0, 0.1, 0.5, 1.0])) for name in COMPONENTS}
        k = int(rng.integers(1, 12))
        rows, scores = fused_top(parts, candidates, weights, k)
        total = fused_over_every_note(parts, candidates, weights)
        want = top_indices(total, k)
        # Two sums that tie exactly one way may differ in the last bit the other way: notes may swap
        # only where their scores tie, and equal scores come lowest row first.
        assert len(rows) == len(want) and np.allclose(total[rows], total[want], rtol=0, atol=1e-9), trial
        assert np.allclose(scores, total[want], rtol=0, atol=1e-9)
        assert all(a < b for a, b, x, y in zip(rows, rows[1:], scores, scores[1:]) if x == y), trial
    # A negative weight breaks the bound the shortcut rests on: it fuses every note instead, alike.
    parts = generated_evidence(500, rng)
    weights = dict(DEFAULT_WEIGHTS, aa=-0.3)
    candidates = np.ones(500, bool)
    total = fused_over_every_note(parts, candidates, weights)
    assert fused_top(parts, candidates, weights, 10)[0].tolist() == top_indices(total, 10).tolist()


def straightforward_rank(relater: Relater, path: str, k: int = 10) -> list[tuple[str, float]]:
    """`rank` as it reads: every component over every note, fused, diversified."""
    c = relater.corpus
    q = c.index[path]
    parts = relater.components(q)
    candidates = ~c.template & ~c.private
    candidates[q] = False
    for other in c.graph.outlinks(path):
        candidates[c.index[other]] = False
    total = relater.fused(q, parts, candidates)
    return [(c.paths[j], float(total[j])) for j in diversify(total, c.note_vectors, k)]


@pytest.mark.parametrize("inverted_file", [False, True, "note scan"])
def test_rank_gives_the_straightforward_ranking_on_every_note(example_app, tmp_path, monkeypatch, inverted_file):
    """On every note of a real vault, with the exact scan, with the inverted file (sparse best-section
    evidence, keywords by signatures) and with the whole-note cosine of the nearest notes found by the
    8-bit scan and its spread from the moments (`NoteIndex`), `rank` names the notes the straightforward
    fusion names."""
    from ideaweave import corpus as corpus_module
    from ideaweave import noteindex
    from ideaweave import relate as relate_module
    from ideaweave import vectors

    if inverted_file == "note scan":
        monkeypatch.setattr(corpus_module, "NOTE_INDEX_MIN", 2)
        monkeypatch.setattr(noteindex, "NEAREST_NOTES", 10)
        monkeypatch.setattr(relate_module, "DIVERSITY_POOL", 5)
        monkeypatch.setattr(relate_module, "KEYWORD_POOL", 6)
    if inverted_file:
        monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
        monkeypatch.setattr(vectors, "IVF_PROBES", 2)
        monkeypatch.setattr(relate_module, "KEYWORD_SEARCH_SECTIONS", 0)
        app = indexed_copy(example_app, tmp_path)
    else:
        app = example_app
    try:
        relater = Relater(Corpus(app.store))
        assert (relater.corpus.chunk_vectors is None) == bool(inverted_file)
        assert (relater.corpus.note_index is not None) == (inverted_file == "note scan")
        ranked = 0
        for path in relater.corpus.paths:
            got = [(s.path, s.score) for s in relater.rank(path, k=10)]
            want = straightforward_rank(relater, path)
            assert [p for p, _ in got] == [p for p, _ in want], path
            # The moments give the whole-note cosine's spread to float32 rounding, not bit for bit.
            tolerance = 1e-5 if inverted_file == "note scan" else 1e-9
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=tolerance), path
            ranked += len(got)
        assert ranked > (60 if inverted_file == "note scan" else 100)
    finally:
        if inverted_file:
            app.store.close()


def test_top_indices_of_many_scores_equals_a_full_stable_sort():
    """Many scores select among those above a sampled cut: the same indices in the same order, whatever
    the order of the scores (sorted either way: the sample says nothing), with ties and -inf."""
    from ideaweave.relate import SAMPLE_STEP, SAMPLED_SELECTION

    rng = np.random.default_rng(5)
    n = SAMPLED_SELECTION * 5
    shapes = {
        "random": rng.standard_normal(n),
        "ties": rng.integers(0, 7, n).astype(float),
        "ascending": np.sort(rng.standard_normal(n)),
        "descending": -np.sort(rng.standard_normal(n)),
        "mostly -inf": np.where(rng.random(n) < 0.995, -np.inf, rng.standard_normal(n)),
        "float32": rng.standard_normal(n).astype(np.float32),
    }
    shapes["ties and -inf"] = np.where(rng.random(n) < 0.5, -np.inf, shapes["ties"])
    # The best scores sit where the sample looks, fewer of them than asked for: the rest lie below its cut.
    shapes["sampled best"] = np.where(np.arange(n) % (2 * SAMPLE_STEP) == 0, 5.0, rng.random(n))
    for name, scores in shapes.items():
        finite = np.flatnonzero(np.isfinite(scores))
        full = finite[np.argsort(-scores[finite], kind="stable")]
        for k in (1, 10, 21, 30, 200, 1000, n):
            assert top_indices(scores, k).tolist() == full[:k].tolist(), (name, k)


def test_keywords_equal_counting_word_by_word():
    """Counting in C and taking stopwords out afterwards gives the words, and the order of ties, that
    counting each lowered word did; also for text whose non-ASCII letters lower to ASCII ones."""
    from collections import Counter

    from ideaweave.corpus import STOPWORDS, WORD

    def word_by_word(text: str, k: int = 40) -> list[str]:
        counts = Counter(w for w in (m.group(0).lower() for m in WORD.finditer(text)) if w not in STOPWORDS)
        return [w for w, _ in counts.most_common(k)]

    rng = random.Random(4)
    vocabulary = ["Alpha", "beta", "GAMMA", "the", "and", "it's", "x-ray", "\u212aelvin", "\u0130stanbul", "na\u00efve",
                  "r\u00e9sum\u00e9", "one", "data", "Data", "DATA", "of"] + [f"w{i}" for i in range(60)]
    ascii_only = [w for w in vocabulary if w.isascii()]
    for trial in range(300):
        words = ascii_only if trial % 2 else vocabulary
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 400)))
        for k in (1, 5, 40):
            assert keywords(text, k) == word_by_word(text, k)


def test_the_nearest_notes_of_the_8_bit_scan_score_each_suggestion_as_the_full_fusion_does(example_app, tmp_path,
                                                                                          monkeypatch):
    """With the whole-note cosine read only for the nearest notes the 8-bit scan finds (`NoteIndex`) and
    for every note with other evidence, every component is as the product with every note gives it where
    it is known, and every note rank names has the score the fusion over every note gives it: the same
    spread (from the moments), the same neighbours' links. A note whose nearest notes are mostly its own
    links reads every note's cosine instead. As in a large vault, sections come from an inverted file and
    keywords from term signatures."""
    from ideaweave import corpus as corpus_module
    from ideaweave import noteindex
    from ideaweave import relate as relate_module
    from ideaweave import vectors

    monkeypatch.setattr(vectors, "EXACT_LIMIT", 10)
    monkeypatch.setattr(vectors, "IVF_PROBES", 2)
    monkeypatch.setattr(relate_module, "KEYWORD_SEARCH_SECTIONS", 0)
    monkeypatch.setattr(corpus_module, "NOTE_INDEX_MIN", 2)
    monkeypatch.setattr(noteindex, "NEAREST_NOTES", 8)
    monkeypatch.setattr(relate_module, "NEIGHBOUR_NOTES", 3)
    monkeypatch.setattr(relate_module, "DIVERSITY_POOL", 4)
    monkeypatch.setattr(relate_module, "KEYWORD_POOL", 4)
    app = indexed_copy(example_app, tmp_path)
    corpus = Corpus(app.store)
    index = corpus.note_index
    assert index is not None and corpus.chunk_vectors is None
    relater = Relater(corpus)
    named = read_every_note = partly_known = 0
    for path in corpus.paths:
        q = corpus.index[path]
        whole, part = relater.components(q), relater.components(q, whole=False)
        known = np.isfinite(part["emb"])
        partly_known += known.sum() < len(corpus)
        assert np.allclose(part["emb"][known], whole["emb"][known], atol=1e-6)
        for name, rows in part["_rows"].items():
            assert known[rows].all(), name
        for name in set(COMPONENTS) - {"emb", "nbr"}:
            assert np.array_equal(part[name], whole[name]), name
        assert np.allclose(part["nbr"], whole["nbr"], rtol=0, atol=1e-6)  # weighted by cosines, to rounding
        near, values = index.nearest(corpus.note_vectors, corpus.note_vectors[q])
        exact = np.argsort(-whole["emb"], kind="stable")
        assert len(near) == 8 and set(exact[:5].tolist()) <= set(near.tolist()), path
        assert np.allclose(values, whole["emb"][near], atol=1e-6)
        candidates = ~corpus.template & ~corpus.private
        candidates[q] = False
        for other in corpus.graph.outlinks(path):
            candidates[corpus.index[other]] = False
        read_every_note += np.count_nonzero(candidates[near]) < 4
        total = relater.fused(q, whole, candidates)
        for suggestion in relater.rank(path, k=10):
            assert suggestion.score == pytest.approx(float(total[corpus.index[suggestion.path]]), abs=1e-5), path
            named += 1
    app.store.close()
    assert named > 40 and partly_known > len(corpus) // 2 and read_every_note < len(corpus)


def test_the_note_moments_and_codes_follow_the_vectors_after_updates(tmp_path, embedder, monkeypatch):
    """The whole-note cosine's mean and spread over the candidates, from the moments less the others,
    equal those computed over the candidates' own cosines, and the 8-bit scan holds each row's codes or
    lists the row as extra: at a load, after edits (vectors and codes changed in place) and after notes came
    and went (codes kept where they were, a new note extra), for masks of every size."""
    from ideaweave import corpus as corpus_module
    from ideaweave import noteindex

    monkeypatch.setattr(corpus_module, "NOTE_INDEX_MIN", 2)
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    app.indexer.run()
    rng = np.random.default_rng(3)

    def check(corpus: Corpus) -> None:
        index = corpus.note_index
        decoded = np.asarray(corpus.note_vectors, dtype=np.float64)
        np.testing.assert_allclose(index.total, decoded.sum(axis=0), atol=1e-4)
        np.testing.assert_allclose(index.gram, decoded.T @ decoded, atol=1e-4)
        # Every row has a code (written at the load, or in place since) or is an extra row, not both.
        code_of_row = index.code_of_row()
        assert len(code_of_row) == len(corpus) and set(np.flatnonzero(code_of_row < 0)) == set(index.extra.tolist())
        coded = np.flatnonzero(code_of_row >= 0)
        assert np.array_equal(noteindex._codes_of(index.scan)[code_of_row[coded]],
                              int8_codes(decoded[coded], index.scale))
        q = int(rng.integers(len(corpus)))
        near, values = index.nearest(corpus.note_vectors, corpus.note_vectors[q])
        assert q in near.tolist() and set(index.extra.tolist()) <= set(near.tolist())
        assert np.allclose(values, (corpus.note_vectors @ corpus.note_vectors[q])[near], atol=1e-6)
        for share in (0.05, 0.3, 0.7, 1.0):
            candidates = rng.random(len(corpus)) < share
            q = int(rng.integers(len(corpus)))
            values = (corpus.note_vectors @ corpus.note_vectors[q])[candidates].astype(np.float64)
            mean, std = index.spread(corpus.note_vectors, corpus.note_vectors[q], candidates)
            if len(values):
                assert (mean, std) == pytest.approx((values.mean(), values.std()), abs=1e-6)

    try:
        corpus = Corpus(app.store)
        check(corpus)
        (root / "Concepts" / "Corrigibility.md").write_text(
            "# Corrigibility\n\nAn agent that lets its overseers correct or shut it down.\n", encoding="utf-8")
        edited = corpus.updated(app.indexer.run().changed)
        assert edited.note_vectors is corpus.note_vectors and edited.note_index.scan is corpus.note_index.scan
        check(edited)
        (root / "Concepts" / "Sparse autoencoders.md").unlink()
        (root / "Concepts" / "Wireheading.md").write_text("# Wireheading\n\nStimulating one's own reward.\n",
                                                           encoding="utf-8")
        report = app.indexer.run()
        moved = edited.updated(set(report.changed) | set(report.deleted) | set(report.relinked))
        assert moved.note_vectors is not edited.note_vectors and len(moved) == len(edited)
        assert moved.note_index.scan is edited.note_index.scan  # no codes copied
        assert moved.note_index.extra.tolist() == [moved.index["Concepts/Wireheading.md"]]
        check(moved)
    finally:
        app.store.close()
