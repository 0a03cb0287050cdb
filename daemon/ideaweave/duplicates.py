"""Same idea, different names: pairs of notes whose passages say the same thing, most similar first.

Every section asks the stored vector index for its nearest sections (a faiss search per section; nothing
compares every pair). How close two passages are is then read against the vault's own habits: each
section's nearest section in another note gives one similarity, and a pair's *closeness* is how far its
similarity stands above that distribution (a robust z: distance from the median in units of the median
absolute deviation, scaled to a standard deviation). A vault of one narrow subject has close neighbours
everywhere, a vault of scattered notes has few; a closeness of 4 means "as far above this vault's usual
nearest neighbour" in both, where a raw cosine of 0.8 would mean a duplicate in one and a neighbour in the
other. Raw (uncentred) cosines are used, as `novelty` does, so a copied section scores 1.

A pair is left out when the two notes already link to each other (the user knows), when the user said they
are not duplicates (`mark_not_duplicates`), when either passage is too short to say anything, or when
either note is a template; private notes only when asked for.

`find_duplicates` decides over plain data; `vault_duplicates` is the shell that reads the index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .chunking import passage
from .corpus import WORD, Corpus
from .store import Store

HITS = 8  # nearest sections asked for per section: enough to pass the note's own other sections
QUERIES_AT_ONCE = 2_000
# A pair is a duplicate when its similarity stands this many (robust) standard deviations above the
# similarity of an ordinary close neighbour in the vault. A paragraph copied with its wording changed
# stands at 3.3 to 3.8, a copy under another heading at 4 or more (the test vault, the garden; RESULTS).
MIN_CLOSENESS = 3.0
MIN_WORDS = 12  # a passage of fewer words ("See also: ...", a lone link) says too little to duplicate another
BOILERPLATE_NOTES = 4  # the same text in this many notes or more is boilerplate, not a copied idea
PASSAGE_CHARS = 400
SHOWN_SECTIONS = 3  # matching section pairs listed per note pair
NOT_DUPLICATES = "duplicates.not"  # store setting: the pairs the user marked as not duplicates


@dataclass(frozen=True)
class SectionPair:
    """Two sections of different notes (rows of the corpus's section table) and their cosine."""

    row_a: int
    row_b: int
    similarity: float


@dataclass(frozen=True)
class Calibration:
    """The vault's distribution of each section's similarity to its nearest section in another note."""

    median: float
    spread: float  # 1.4826 x the median absolute deviation: a standard deviation for a normal distribution
    sorted_best: np.ndarray  # each section's similarity to its second nearest note, ascending

    def closeness(self, similarity: float) -> float:
        return (similarity - self.median) / self.spread

    def percentile(self, similarity: float) -> float:
        """The share of the vault's sections whose second nearest note is less similar."""
        if not len(self.sorted_best):
            return 1.0
        return float(np.searchsorted(self.sorted_best, similarity, side="left") / len(self.sorted_best))

    def as_json(self) -> dict:
        return {"median": round(self.median, 4), "spread": round(self.spread, 4), "sections": len(self.sorted_best)}


def calibration(best: np.ndarray) -> Calibration:
    """From each section's similarity to the sections of its nearest other notes: column 0 its nearest
    note's, column 1 its second nearest's (NaN: none found).

    The scale is the distribution of the second: an ordinary close neighbour. The nearest note is
    sometimes the duplicate itself; in a small vault with a few duplicates those would widen the
    distribution they are measured against (the second nearest is rarely a duplicate too)."""
    best = np.asarray(best, dtype=float)
    best = best[:, 1] if best.ndim == 2 else best
    best = np.sort(best[~np.isnan(best)])
    if not len(best):
        return Calibration(1.0, 1.0, best)
    median = float(np.median(best))
    # A floor for vaults so uniform the deviation vanishes (every note the same boilerplate).
    spread = max(1.4826 * float(np.median(np.abs(best - median))), 0.01)
    return Calibration(median, spread, best)


@dataclass(frozen=True)
class Passage:
    path: str
    heading: str | None
    text: str

    def as_json(self) -> dict:
        return {"path": self.path, "heading": self.heading, "passage": self.text}


@dataclass(frozen=True)
class Duplicate:
    """Two notes that say the same thing: their closest passages side by side."""

    a: Passage
    b: Passage
    similarity: float  # cosine of the two passages' vectors
    closeness: float  # robust z of the similarity against the vault's nearest-section similarities
    percentile: float  # share of the vault's sections whose nearest section elsewhere is less similar
    sections: int  # how many section pairs of the two notes are duplicates
    more: tuple[tuple[Passage, Passage, float], ...]  # the next matching section pairs, with their similarity

    def as_json(self) -> dict:
        return {"a": self.a.as_json(), "b": self.b.as_json(), "similarity": round(self.similarity, 4),
                "closeness": round(self.closeness, 2), "percentile": round(self.percentile, 4),
                "sections": self.sections,
                "more": [{"a": a.as_json(), "b": b.as_json(), "similarity": round(s, 4)} for a, b, s in self.more]}


# ------------------------------------------------------------------ deciding (pure)


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def find_duplicates(pairs: Sequence[SectionPair], note_of: Callable[[int], str], cal: Calibration,
                    excluded: Callable[[str, str], bool], says_enough: Callable[[int], bool],
                    min_closeness: float = MIN_CLOSENESS) -> list[tuple[tuple[str, str], list[SectionPair]]]:
    """The duplicate note pairs, most similar first, each with its section pairs (most similar first):
    section pairs at or above `min_closeness`, of passages that say enough, of note pairs not excluded."""
    by_notes: dict[tuple[str, str], dict[tuple[int, int], SectionPair]] = {}
    for pair in sorted(pairs, key=lambda p: (-p.similarity, p.row_a, p.row_b)):
        if cal.closeness(pair.similarity) < min_closeness:
            break
        key = pair_key(note_of(pair.row_a), note_of(pair.row_b))
        if key[0] == key[1] or excluded(*key):
            continue
        rows = (min(pair.row_a, pair.row_b), max(pair.row_a, pair.row_b))
        found = by_notes.setdefault(key, {})
        if rows not in found and says_enough(pair.row_a) and says_enough(pair.row_b):
            found[rows] = pair
    kept = [(key, list(found.values())) for key, found in by_notes.items() if found]
    return sorted(kept, key=lambda kv: (-kv[1][0].similarity, -len(kv[1]), kv[0]))


def says_enough(text: str, heading_path: Sequence[str]) -> bool:
    return len(WORD.findall(passage(text, heading_path, limit=10_000))) >= MIN_WORDS


# ------------------------------------------------------------------ the user's word


def not_duplicates(store: Store) -> set[tuple[str, str]]:
    """The note pairs the user marked as not duplicates (each pair in path order)."""
    raw = store.get_setting(NOT_DUPLICATES)
    try:
        return {pair_key(a, b) for a, b in json.loads(raw)} if raw else set()
    except (ValueError, TypeError):  # a damaged setting forgets the marks rather than stopping the command
        return set()


def mark_not_duplicates(store: Store, a: str, b: str, marked: bool = True) -> bool:
    """Record (or, with marked=False, forget) that notes a and b are not duplicates; True when it changed."""
    pairs = not_duplicates(store)
    key = pair_key(a, b)
    if (key in pairs) == marked:
        return False
    pairs = pairs | {key} if marked else pairs - {key}
    store.put_setting(NOT_DUPLICATES, json.dumps(sorted(pairs)))
    return True


# ------------------------------------------------------------------ reading the index (the shell)


def section_pairs(corpus: Corpus, hits: int = HITS) -> tuple[list[SectionPair], np.ndarray]:
    """(the candidate section pairs, and for each section row its similarity to its nearest and its second
    nearest other note (columns 0 and 1; NaN when not found)), from a search of the stored index per
    distinct section text. Template notes and boilerplate (the same text in many notes) take no part, as
    sections asking or as sections found."""
    store = corpus.store
    usable = ~corpus.template[corpus.chunk_note]
    vids = np.unique(corpus.chunk_vid[usable])
    for vid, rows in _rows_by_vid(corpus, vids):
        if len(set(corpus.chunk_note[rows].tolist())) >= BOILERPLATE_NOTES:
            usable[rows] = False
    vids = np.unique(corpus.chunk_vid[usable])
    best = np.full((len(corpus.chunk_vid), 2), np.nan)
    pairs: list[SectionPair] = []
    for start in range(0, len(vids), QUERIES_AT_ONCE):
        batch = vids[start:start + QUERIES_AT_ONCE]
        scores, found = store.search_vectors(store.gather_vectors(batch), hits)
        for vid, row_scores, row_found in zip(batch.tolist(), scores, found):
            _pairs_of_section(corpus, vid, row_scores, row_found, usable, best, pairs)
    return pairs, best


def _rows_by_vid(corpus: Corpus, vids: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    which, rows = corpus.rows_using(vids)
    bounds = np.searchsorted(which, np.arange(len(vids) + 1))
    for i, v in enumerate(vids.tolist()):
        yield v, rows[bounds[i]:bounds[i + 1]]


def _pairs_of_section(corpus: Corpus, vid: int, scores: np.ndarray, found: np.ndarray, usable: np.ndarray,
                      best: np.ndarray, pairs: list[SectionPair]) -> None:
    """The pairs one section text makes with its hits (itself included: the same text in two notes is a
    copy), and the best similarity of each section row using it."""
    _, own = corpus.rows_using(np.array([vid], np.int64))
    own = own[usable[own]]
    valid = found >= 0
    which, rows = corpus.rows_using(found[valid])
    keep = usable[rows]
    which, rows = which[keep], rows[keep]
    similarity = scores[valid][which]
    for row in own.tolist():
        elsewhere = corpus.chunk_note[rows] != corpus.chunk_note[row]
        if not elsewhere.any():
            continue
        # Hits come best first: the first hit of each other note is that note's best.
        _, first = np.unique(corpus.chunk_note[rows[elsewhere]], return_index=True)
        by_note = np.sort(similarity[elsewhere][first])[::-1]
        best[row, :min(2, len(by_note))] = by_note[:2]
        pairs.extend(SectionPair(row, int(r), float(s)) for r, s in zip(rows[elsewhere].tolist(), similarity[elsewhere].tolist()))


def vault_duplicates(corpus: Corpus, k: int = 20, include_private: bool = False,
                     min_closeness: float = MIN_CLOSENESS) -> tuple[list[Duplicate], Calibration]:
    """The one answer to "which notes say the same thing": the k most similar duplicate pairs, and the
    vault's calibration they were measured against."""
    pairs, best = section_pairs(corpus)
    cal = calibration(best)
    marked = not_duplicates(corpus.store)
    private = corpus.private

    def excluded(a: str, b: str) -> bool:
        if not include_private and (private[corpus.index[a]] or private[corpus.index[b]]):
            return True
        return (a, b) in marked or b in corpus.graph.neighbours(a)

    chunks: dict[int, object] = {}

    def chunk(row: int):
        if row not in chunks:
            chunks[row] = corpus.section(row)
        return chunks[row]

    def enough(row: int) -> bool:
        found = chunk(row)
        return found is not None and says_enough(found.text, found.heading_path)

    def note_of(row: int) -> str:
        return corpus.paths[corpus.chunk_note[row]]

    found = find_duplicates(pairs, note_of, cal, excluded, enough, min_closeness)[:k]
    return [_as_duplicate(key, section_list, chunk, cal) for key, section_list in found], cal


def _as_duplicate(key: tuple[str, str], sections: list[SectionPair], chunk: Callable[[int], object],
                  cal: Calibration) -> Duplicate:
    def passages(pair: SectionPair) -> tuple[Passage, Passage]:
        one, two = chunk(pair.row_a), chunk(pair.row_b)
        first, second = (Passage(c.note_path, c.heading or None, passage(c.text, c.heading_path, PASSAGE_CHARS))
                         for c in (one, two))
        return (first, second) if first.path == key[0] else (second, first)

    top = sections[0]
    a, b = passages(top)
    more = tuple((*passages(p), p.similarity) for p in sections[1:1 + SHOWN_SECTIONS])
    return Duplicate(a, b, top.similarity, cal.closeness(top.similarity), cal.percentile(top.similarity),
                     len(sections), more)
