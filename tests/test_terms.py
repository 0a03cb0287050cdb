"""Term signatures and the BM25 scored over them."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st

from ideaweave.terms import B, K1, SIGNATURE_TERMS, TermIndex, decode, signature, term_hash


def low(h: int) -> int:
    """A term as the index holds it: the low 32 bits of its hash."""
    return int(np.array(h, np.int64).astype(np.int32))


WORDS = ["reward", "model", "policy", "agent", "value", "learning", "owl", "forest", "night", "hunting"]


def test_a_signature_keeps_the_most_frequent_content_words():
    words, blob = signature("The reward model: the reward is learned, and the REWARD model is a policy of the agent.")
    hashes, counts = decode(blob)
    by_hash = dict(zip(hashes.tolist(), counts.tolist()))
    assert by_hash[low(term_hash("reward"))] == 3 and by_hash[low(term_hash("model"))] == 2
    assert low(term_hash("the")) not in by_hash  # a stopword says nothing about the note
    assert words == 8


def test_a_long_note_keeps_only_its_signature_terms():
    text = " ".join(f"word{i:03d} " * (1 + i % 7) for i in range(200))
    hashes, _ = decode(signature(text)[1])
    assert len(hashes) == SIGNATURE_TERMS


def test_term_hashes_are_stable_across_processes():
    # Stored signatures are compared with hashes of query words computed in another process.
    assert term_hash("reward") == -5978103433417846991
    assert term_hash("reward") != term_hash("rewards")


def test_bm25_prefers_the_note_sharing_rare_words():
    notes = ["owl forest night hunting owl", "owl reward model policy", "reward model policy agent value",
             "reward model policy value learning"]
    index = TermIndex([signature(t) for t in notes])
    query = np.array([term_hash(w) for w in ["owl", "hunting", "reward"]])
    scores = index.bm25(query, np.arange(len(notes)))
    assert scores[0] > scores[1] > scores[2] >= 0 and scores[3] == scores[2]
    assert index.bm25(query, np.array([2, 0])).tolist() == [scores[2], scores[0]]


def reference_bm25(texts: list[str], query: list[str], row: int) -> float:
    signatures = [dict(zip(*(a.tolist() for a in decode(signature(t)[1])))) for t in texts]
    lengths = [signature(t)[0] for t in texts]
    mean = np.mean([n for n in lengths if n]) if any(lengths) else 1.0
    total = 0.0
    for h in {low(term_hash(w)) for w in query}:
        df = sum(h in s for s in signatures)
        if h in signatures[row]:
            tf = signatures[row][h]
            idf = math.log(1 + (len(texts) - df + 0.5) / (df + 0.5))
            total += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[row] / mean))
    return total


text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(st.lists(text, min_size=1, max_size=6), st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
       st.lists(text, max_size=3), st.data())
def test_an_updated_index_equals_a_fresh_one(texts, query, fresh, data):
    """Scores equal a direct computation, and after notes are kept, moved, dropped and added the index
    holds what an index built from scratch holds."""
    index = TermIndex([signature(t) for t in texts])
    hashes = np.array([term_hash(w) for w in query])
    for row in range(len(texts)):
        assert math.isclose(index.bm25(hashes, np.array([row]))[0], reference_bm25(texts, query, row), abs_tol=1e-6)
    kept = sorted(data.draw(st.sets(st.integers(0, len(texts) - 1))))
    following_texts = [texts[i] for i in kept] + fresh
    order = data.draw(st.permutations(range(len(following_texts))))
    at = np.argsort(order)  # where each of following_texts lands
    updated = index.updated(np.array(kept, np.int64), at[:len(kept)], [signature(t) for t in fresh],
                            at[len(kept):], len(following_texts))
    placed = [following_texts[i] for i in np.argsort(at)]
    rebuilt = TermIndex([signature(t) for t in placed])
    assert updated.start.tolist() == rebuilt.start.tolist()
    assert updated.hashes.tolist() == rebuilt.hashes.tolist() and updated.counts.tolist() == rebuilt.counts.tolist()
    assert updated.words.tolist() == rebuilt.words.tolist()
    live = updated.df > 0
    assert updated.vocabulary[live].tolist() == rebuilt.vocabulary.tolist()
    assert updated.df[live].tolist() == rebuilt.df.tolist()
    rows = np.arange(len(placed))
    assert np.allclose(updated.bm25(hashes, rows), rebuilt.bm25(hashes, rows))
