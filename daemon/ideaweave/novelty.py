"""What is new in a note: each section against its nearest section elsewhere in the vault."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .relate import Corpus


@dataclass(frozen=True)
class SectionNovelty:
    heading: str | None
    passage: str
    novelty: float  # 1 - cosine to the nearest section of another note (0: said before, 1: new)
    nearest_path: str | None
    nearest_heading: str | None
    nearest_passage: str

    def as_json(self) -> dict:
        return {"heading": self.heading, "passage": self.passage, "novelty": round(self.novelty, 4),
                "nearest": {"path": self.nearest_path, "heading": self.nearest_heading, "passage": self.nearest_passage}}


def _body(text: str, has_context_line: bool, limit: int = 200) -> str:
    parts = text.split("\n\n", 1)
    body = " ".join((parts[1] if has_context_line and len(parts) == 2 else text).split())
    return body if len(body) <= limit else body[:limit].rsplit(" ", 1)[0] + "…"


def novelty(corpus: Corpus, path: str) -> list[SectionNovelty]:
    """The note's sections, most novel first. Uses the raw (uncentred) cosine so scores are comparable
    across vaults: a section copied from another note scores about 0."""
    store = corpus.store
    q = corpus.index.get(path)
    if q is None:
        return []
    own_chunks = store.chunks_of(path)
    ids, note_ids, vectors = store.chunk_matrix()
    position = {int(chunk_id): i for i, chunk_id in enumerate(ids)}
    own_rows = [position[c.id] for c in own_chunks if c.id in position]
    if not own_rows:
        return []
    others = np.flatnonzero(corpus.chunk_note != q)
    if others.size == 0:
        return []
    sims = vectors[own_rows] @ vectors[others].T
    best = sims.argmax(axis=1)
    by_id = {}
    results = []
    for row, chunk in zip(range(len(own_rows)), [c for c in own_chunks if c.id in position]):
        match = int(others[best[row]])
        match_path = corpus.paths[corpus.chunk_note[match]]
        if match_path not in by_id:
            by_id[match_path] = {c.id: c for c in store.chunks_of(match_path)}
        nearest = by_id[match_path].get(int(ids[match]))
        results.append(SectionNovelty(
            chunk.heading or None, _body(chunk.text, bool(chunk.heading_path)), float(1.0 - sims[row, best[row]]),
            match_path, nearest.heading or None if nearest else None,
            _body(nearest.text, bool(nearest.heading_path)) if nearest else ""))
    return sorted(results, key=lambda s: -s.novelty)
