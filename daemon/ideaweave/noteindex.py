"""The whole-note cosine evidence of a large vault without a float product with every note.

Ranking standardises the whole-note cosine over the candidates and needs the notes where it is highest.
At 100,000 notes the product of a note's vector with every note's (compact vectors decoded to float32 a
block at a time) costs about 7 ms of a 17 ms ranking. `NoteIndex` answers both from less:

- the spread: the mean and variance of `v . q` over every note follow from the sum of the vectors and
  the sum of their outer products (the Gram matrix, 384 x 384): `q . sum(v)` and `q' G q`. The notes that
  are not candidates (templates, the note itself, its links) are taken out by their own products, so the
  statistics are the same as over the candidates' products, to rounding.
- the top: every note is scanned, but in 8 bits per dimension (faiss's int8 inner product over one byte
  per dimension, a quarter of float32's bytes: about 1.6 ms at 100,000 notes), and only the NEAREST_NOTES
  it finds are scored again from the compact vectors. An 8-bit cosine is off by about 1e-3, far less than
  the cosines of the 200th and the 500th nearest note differ by, so the nearest notes by the exact cosine
  are among those found (tests/test_relate.py compares the rankings with the product with every note).

Built at a full load (`Corpus`); an update carries it over: the moments move by the changed rows, an
edited note's codes are rewritten in place, and notes new since the load are scored exactly (`NoteIndex`).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from .vectors import COMPACT_BLOCK_ROWS, INT8_CODES, CompactVectors, int8_codes, int8_scale, int8_values, one_faiss_thread

# Below this many notes the product with every note takes 2 ms or less: ranking computes it.
NOTE_INDEX_MIN = 30_000
# Notes the 8-bit scan returns: the keyword pool reads the 200 best candidates by the whole-note cosine,
# and a note's own links (not candidates) may be among the nearest.
NEAREST_NOTES = 512


class NoteIndex:
    """Moments and an 8-bit scan of a CompactVectors matrix of note vectors (see the module's docstring).

    The scan's codes are written once, at a full load, a note's code staying where it was while notes come
    and go: `row_of_code` says which row of the matrix each code now stands for (-1: a note gone since), and
    `extra` lists the rows that have none (notes new since the load), which every query scores from the
    compact vectors. An update so copies no codes (38 MB at 100,000 notes)."""

    def __init__(self, scan: faiss.IndexScalarQuantizer, scale: float, total: np.ndarray, gram: np.ndarray,
                 row_of_code: np.ndarray, extra: np.ndarray):
        self.scan, self.scale, self.total, self.gram = scan, scale, total, gram
        self.row_of_code, self.extra = row_of_code, extra

    @classmethod
    def build(cls, vectors: CompactVectors) -> NoteIndex:
        """The index of these rows, decoded a block at a time: one scale for every row, so that the 8-bit
        inner products rank rows as their cosines do (the largest component takes the largest code)."""
        count, dim = vectors.shape
        largest = max((float(np.abs(vectors[start:start + COMPACT_BLOCK_ROWS]).max(initial=0.0))
                       for start in range(0, count, COMPACT_BLOCK_ROWS)), default=0.0)
        scale = int8_scale(largest)
        total, gram = np.zeros(dim), np.zeros((dim, dim))
        scan = _empty_scan(dim)
        for start in range(0, count, COMPACT_BLOCK_ROWS):
            block = vectors[start:start + COMPACT_BLOCK_ROWS]
            scan.add_sa_codes(int8_codes(block, scale))
            total += block.sum(axis=0, dtype=np.float64)
            gram += (block.T @ block).astype(np.float64)
        return cls(scan, scale, total, gram, np.arange(count, dtype=np.int64), np.zeros(0, np.int64))

    def updated(self, vectors: CompactVectors, removed: np.ndarray, kept: np.ndarray, at_kept: np.ndarray,
                fresh_rows: np.ndarray, fresh_before: np.ndarray) -> NoteIndex:
        """The index of `vectors`, the next snapshot's matrix, after rows changed: `removed` are the decoded
        vectors that left (old rows of edited or deleted notes), the old rows `kept` are now at `at_kept`,
        and `fresh_rows` hold new vectors, of notes that were at the old rows `fresh_before` (-1: new notes).
        A note that had a code gets its new one in place: an older snapshot's scan finds it by its new
        vector, and scores it from its own vectors. The scale stays (a new component beyond it is clipped, in
        the scan only); the next full load draws anew."""
        fresh = vectors[fresh_rows]
        removed = np.asarray(removed, np.float32).reshape(-1, fresh.shape[1])
        total = self.total - removed.sum(axis=0, dtype=np.float64) + fresh.sum(axis=0, dtype=np.float64)
        gram = self.gram - (removed.T @ removed).astype(np.float64) + (fresh.T @ fresh).astype(np.float64)
        moved_to = np.full(self.rows + 1, -1, np.int64)  # old row -> new row; the last entry maps -1 to -1
        moved_to[kept] = at_kept
        fresh_before = np.asarray(fresh_before, np.int64)
        had = fresh_before >= 0
        moved_to[fresh_before[had]] = fresh_rows[had]
        row_of_code = moved_to[self.row_of_code]
        code_of_row = _inverse(row_of_code, len(vectors))
        coded = code_of_row[fresh_rows] >= 0
        if coded.any():
            _codes_of(self.scan)[code_of_row[fresh_rows[coded]]] = int8_codes(fresh[coded], self.scale)
        extra = np.union1d(moved_to[self.extra], fresh_rows[~coded])
        return NoteIndex(self.scan, self.scale, total, gram, row_of_code, extra[extra >= 0])

    @property
    def rows(self) -> int:
        """The rows of the matrix it indexes: each has a code or is extra."""
        return len(self.extra) + int(np.count_nonzero(self.row_of_code >= 0))

    def code_of_row(self) -> np.ndarray:
        """Each row's code (-1: an extra row)."""
        return _inverse(self.row_of_code, self.rows)

    def spread(self, vectors: CompactVectors, query: np.ndarray, candidates: np.ndarray) -> tuple[float, float]:
        """(mean, std) of `vectors @ query` over the candidate rows, from the moments over every row less
        the non-candidates' own products (or from the candidates' products, when they are fewer)."""
        query64 = np.asarray(query, np.float64)
        count = int(np.count_nonzero(candidates))
        if not count:
            return 0.0, 0.0
        others = np.flatnonzero(~candidates)
        if count <= len(others):  # mostly not candidates: their products are the longer way
            values = (vectors[np.flatnonzero(candidates)] @ np.asarray(query, np.float32)).astype(np.float64)
            return float(values.mean()), float(values.std())
        theirs = (vectors[others] @ np.asarray(query, np.float32)).astype(np.float64) if len(others) else np.zeros(0)
        first = (query64 @ self.total - theirs.sum()) / count
        second = (query64 @ self.gram @ query64 - theirs @ theirs) / count
        return float(first), float(math.sqrt(max(second - first * first, 0.0)))

    def nearest(self, vectors: CompactVectors, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, `vectors[rows] @ query`) of the NEAREST_NOTES codes the 8-bit scan finds nearest, less
        those of notes gone, and of every extra row; rows sorted."""
        one_faiss_thread()
        k = min(NEAREST_NOTES, self.scan.ntotal)
        found = np.zeros(0, np.int64)
        if k:
            _, codes = self.scan.search(int8_values(np.asarray(query)[None, :], self.scale), k)
            found = self.row_of_code[codes[0][codes[0] >= 0]]
        rows = np.union1d(found[found >= 0], self.extra).astype(np.int64)
        return rows, vectors[rows] @ np.asarray(query, np.float32)


def _inverse(row_of_code: np.ndarray, rows: int) -> np.ndarray:
    """The code of each of `rows` rows (-1: none), from the row of each code (-1: none)."""
    code_of_row = np.full(rows, -1, np.int64)
    live = np.flatnonzero(row_of_code >= 0)
    code_of_row[row_of_code[live]] = live
    return code_of_row


def _empty_scan(dim: int) -> faiss.IndexScalarQuantizer:
    return faiss.IndexScalarQuantizer(dim, INT8_CODES, faiss.METRIC_INNER_PRODUCT)


def _codes_of(scan: faiss.IndexScalarQuantizer) -> np.ndarray:
    """A writable view of the scan's own codes, a row per note."""
    if not scan.ntotal:
        return np.zeros((0, scan.code_size), np.uint8)
    return faiss.rev_swig_ptr(scan.codes.data(), scan.ntotal * scan.code_size).reshape(scan.ntotal, scan.code_size)
