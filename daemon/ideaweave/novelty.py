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
    _, found = store.search_vectors(own_vectors, len(own_chunks) + 5)
    scores, found = _cosines_best_first(corpus, own_vectors, found)
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


def _cosines_best_first(corpus: Corpus, own_vectors: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hits' cosines from their stored vectors, and the hits in that order: a large vault's inverted
    file scores its 8-bit codes (within 3e-3 of the cosine), enough to change which section is nearest."""
    vids = np.unique(found[found >= 0])
    if not len(vids):
        return np.full(found.shape, -np.inf), found
    cosines = own_vectors @ corpus.store.gather_vectors(vids).T
    positions = np.searchsorted(vids, found).clip(0, len(vids) - 1)
    scores = np.where(found >= 0, np.take_along_axis(cosines, positions, axis=1), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(found, order, axis=1)
