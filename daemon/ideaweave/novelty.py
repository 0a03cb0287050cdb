"""What is new in a note: each section against its nearest section elsewhere in the vault."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunking import passage
from .corpus import Corpus


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


def novelty(corpus: Corpus, path: str) -> list[SectionNovelty]:
    """The note's sections, most novel first. Uses the raw (uncentred) cosine so scores are comparable
    across vaults: a section copied from another note scores about 0."""
    store = corpus.store
    q = corpus.index.get(path)
    if q is None:
        return []
    own_chunks = [c for c in store.chunks_of(path) if c.vector_id is not None]
    if not own_chunks or len(corpus) < 2:
        return []
    own_vectors = store.gather_vectors([c.vector_id for c in own_chunks])
    # Only the note's own sections can come before the nearest other note's: a few more hits suffice.
    scores, found = store.search_vectors(own_vectors, len(own_chunks) + 5)
    results = []
    for chunk, row_scores, row_vids in zip(own_chunks, scores, found):
        match = _nearest_elsewhere(corpus, q, row_scores, row_vids)
        if match is None:
            continue
        score, match_row = match
        nearest = corpus.section(match_row)
        results.append(SectionNovelty(
            chunk.heading or None, passage(chunk.text, chunk.heading_path, 200), float(1.0 - score),
            corpus.paths[corpus.chunk_note[match_row]], nearest.heading or None if nearest else None,
            passage(nearest.text, nearest.heading_path, 200) if nearest else ""))
    return sorted(results, key=lambda s: -s.novelty)


def _nearest_elsewhere(corpus: Corpus, q: int, scores: np.ndarray, vids: np.ndarray) -> tuple[float, int] | None:
    """(cosine, section row) of the best hit that is a section of another note than q."""
    valid = vids >= 0
    which, rows = corpus.rows_using(vids[valid])
    elsewhere = corpus.chunk_note[rows] != q
    if not elsewhere.any():
        return None
    first = int(np.argmax(elsewhere))  # rows come in hit order, best first
    return float(scores[valid][which[first]]), int(rows[first])
