"""Hybrid search: FTS5 keywords and vector similarity, fused by reciprocal rank, one result per note."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import passage as chunk_passage
from .embedding import Embedder
from .store import Store

# Reciprocal-rank fusion constant: the usual 60 keeps one list's top hit from drowning the other list.
RRF_K = 60
POOL = 100


@dataclass(frozen=True)
class SearchHit:
    path: str
    title: str
    score: float
    heading: str | None
    passage: str

    def as_json(self) -> dict:
        return {"path": self.path, "title": self.title, "score": round(self.score, 5),
                "heading": self.heading, "passage": self.passage}


def fuse_rankings(rankings: list[list[int]]) -> dict[int, float]:
    """Reciprocal-rank fusion of several ranked lists of chunk ids."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return scores


def search(store: Store, embedder: Embedder, query: str, k: int = 20, include_private: bool = False) -> list[SearchHit]:
    query = query.strip()
    if not query:
        return []
    keyword_hits = store.fts_search(query, POOL) or store.fts_search(query, POOL, match_any=True)
    scores, vector_ids = store.search_vectors(embedder.embed([query])[0], POOL)
    vector_chunks = store.chunks_for_vectors([int(v) for v in np.atleast_1d(vector_ids) if v >= 0])
    fused = fuse_rankings([[h.chunk_id for h in keyword_hits], [c.id for c in vector_chunks]])
    by_id = {c.id: c for c in vector_chunks}
    by_id.update(store.chunks_by_id(h.chunk_id for h in keyword_hits if h.chunk_id not in by_id))
    notes = store.notes_at({chunk.note_path for chunk in by_id.values()})
    best: dict[str, SearchHit] = {}
    for chunk_id, score in sorted(fused.items(), key=lambda item: -item[1]):
        chunk = by_id.get(chunk_id)
        if chunk is None or chunk.note_path in best:
            continue
        note = notes.get(chunk.note_path)
        if note is None or note.is_template or (note.private and not include_private):
            continue
        passage = chunk_passage(chunk.text, chunk.heading_path)
        best[chunk.note_path] = SearchHit(chunk.note_path, note.title, score, chunk.heading or None, passage)
        if len(best) >= k:
            break
    return list(best.values())
