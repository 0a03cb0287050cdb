"""The ranking snapshot: its title matcher (which notes a text names by title or alias), and its
note vectors held compact."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.corpus import STOPWORDS, TITLE_WORDS, Corpus, TitleMatcher, _in_order, centre_on, normalise_title
from ideaweave.terms import TermIndex
from ideaweave.vectors import CompactVectors

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"

WORDS = ["goodhart", "law", "reward", "hacking", "the", "agent", "corrigibility", "off-switch", "game", "it's"]
title = st.lists(st.sampled_from(WORDS), min_size=1, max_size=TITLE_WORDS + 1).map(" ".join)
note = st.tuples(title, st.lists(title, max_size=2))


def joined_runs_reference(notes: list[tuple[str, list[str]]], text: str) -> set[int]:
    """Every run of up to TITLE_WORDS words, joined and looked up in a dictionary of the titles."""
    names: dict[str, set[int]] = {}
    for i, (name, aliases) in enumerate(notes):
        for key in (normalise_title(a) for a in [name] + aliases):
            if len(key) >= 3 and key not in STOPWORDS and key.count(" ") < TITLE_WORDS:
                names.setdefault(key, set()).add(i)
    words = normalise_title(text).split()
    found: set[int] = set()
    for start in range(len(words)):
        for size in range(1, TITLE_WORDS + 1):
            found |= names.get(" ".join(words[start:start + size]), set())
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(note, max_size=12), st.lists(st.sampled_from(WORDS + ["Reward", "LAW.", "x", "\n"]), max_size=40))
def test_the_matcher_finds_what_joined_word_runs_find(notes, words):
    text = " ".join(words)
    matcher = TitleMatcher([(name, False, False, aliases) for name, aliases in notes])
    found = matcher.mentioned(text)
    assert sorted(found.tolist()) == sorted(joined_runs_reference(notes, text))
    assert len(set(found.tolist())) == len(found)


def test_a_title_is_found_only_as_whole_words():
    matcher = TitleMatcher([("Reward hacking", False, False, ["reward tampering"]), ("Law", False, False, [])])
    assert matcher.mentioned("On reward hacking, see Goodhart's LAW.").tolist() == [0, 1]
    assert matcher.mentioned("reward tampering").tolist() == [0]
    assert matcher.mentioned("rewards hacking lawful").tolist() == []
    assert matcher.mentioned("").tolist() == []


@pytest.fixture(scope="module")
def example_app(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("corpus") / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(root.parent / "state")), root, embedder=embedder)
    app.indexer.run()
    yield app
    app.close()


def test_signatures_come_in_path_order_and_need_no_rearranging(example_app):
    store = example_app.store
    signatures = store.term_signatures()
    # Secure notes are stored under pseudonyms, which order differently: such a vault takes the long way.
    plain = [p for p in signatures if not store.is_hidden(p)]
    assert plain == sorted(plain) and len(plain) < len(signatures)
    corpus = Corpus(example_app.store)
    # What a load whose signatures came in another order makes of them.
    shuffled = list(reversed(list(signatures)))
    rearranged = _in_order(TermIndex([signatures[p] for p in shuffled]), shuffled, corpus.paths)
    for name in ("start", "hashes", "counts", "words", "vocabulary", "df"):
        np.testing.assert_array_equal(getattr(corpus.terms, name), getattr(rearranged, name))
    assert _in_order(corpus.terms, corpus.paths, corpus.paths) is corpus.terms  # in order already: not copied


def test_compact_note_vectors_rank_every_note_as_float32_vectors_do(example_app):
    app = example_app
    corpus = Corpus(app.store)
    assert isinstance(corpus.note_vectors, CompactVectors)
    assert corpus.note_vectors.nbytes < 0.51 * len(corpus) * app.store.dim * 4  # half of float32's
    # The same snapshot with the float32 vectors it was made from.
    paths, vectors, _ = app.store.note_means()
    assert paths == corpus.paths
    full = copy.copy(corpus)
    full.note_vectors = centre_on(vectors, corpus.note_mean)
    assert np.abs(np.asarray(corpus.note_vectors) - full.note_vectors).max() < 1e-5
    compact, reference = app.relater(corpus), app.relater(full)
    for path in corpus.paths:
        got, want = compact.rank(path, k=10), reference.rank(path, k=10)
        assert [s.path for s in got] == [s.path for s in want], path
        np.testing.assert_allclose([s.score for s in got], [s.score for s in want], atol=1e-4)
        assert [(s.heading, s.why) for s in got] == [(s.heading, s.why) for s in want]
