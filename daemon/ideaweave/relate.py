"""Related notes: semantic, keyword, title and link evidence fused into one ranking, each suggestion with its why.

Every component is computed for every candidate note at once (numpy over the whole vault),
z-normalised per query so that components on different scales can be added, and combined with
weights that are settings (or calibrated per vault by `calibrate`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from .chunking import passage as chunk_passage
from .corpus import STOPWORDS, WORD, Corpus, centre_on
from .terms import term_hash
from .vectors import row_norms

log = logging.getLogger(__name__)

COMPONENTS = ("emb", "chunk", "bm25", "title", "aa", "back", "nbr")
# Measured defaults (bench/RESULTS.md), used as they are when a vault has too few links to calibrate on,
# and as the prior that calibrated weights are shrunk towards.
DEFAULT_WEIGHTS = {"emb": 1.0, "chunk": 0.9, "bm25": 0.4, "title": 0.35, "aa": 0.15, "back": 0.2, "nbr": 0.25}
# Diversity: a candidate loses this much (in z units) per unit of cosine to a suggestion already chosen.
DIVERSITY = 0.6
DIVERSITY_POOL = 30
# Semantic neighbours whose own links are propagated as evidence ("nbr").
NEIGHBOUR_NOTES = 20
# Sections fetched from an inverted file per query note (split among its sections, at least the
# minimum each): enough that the true best section of every note near the top is among them.
SECTION_HITS = 600
SECTION_HITS_MIN = 40
# A long note asks the inverted file with at most this many queries (the means of runs of its sections).
SECTION_QUERIES = 8
PASSAGE_CHARS = 300
KEYWORDS = 40
# Up to this many sections FTS5 scores the keywords exactly (about 10 ms); above, term signatures do, over
# the KEYWORD_POOL notes the other evidence ranks highest.
KEYWORD_SEARCH_SECTIONS = 8_000
KEYWORD_POOL = 200
KEYWORD_HITS = 200  # sections a note's keyword search returns
# Notes whose best-section products `prefetch` takes in one matrix product (bounds its memory: at 50,000
# sections, 16 notes of five sections each make a 16 MB product).
PREFETCH_PRODUCT_NOTES = 16



@dataclass(frozen=True)
class Suggestion:
    path: str
    title: str
    score: float
    heading: str | None  # link to this section ([[Note#Heading]]) when one section is the match
    passage: str  # text of the suggested note that matched
    why: str
    components: dict = field(default_factory=dict, compare=False)

    def as_json(self) -> dict:
        return {"path": self.path, "title": self.title, "score": round(self.score, 4), "heading": self.heading,
                "passage": self.passage, "why": self.why}


def keywords(text: str, k: int = KEYWORDS) -> list[str]:
    """The query note's most frequent content words: a BM25 query that stays short enough to be fast."""
    counts = Counter(w for w in (m.group(0).lower() for m in WORD.finditer(text)) if w not in STOPWORDS)
    return [w for w, _ in counts.most_common(k)]


def zscore(values: np.ndarray, mask: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
    """Standardise over the candidates only; a component constant over them contributes nothing.
    `stats`: (mean, std) estimated elsewhere, for a component known only near the top."""
    if stats is None:
        chosen = values[mask]
        if chosen.size == 0:
            return np.zeros_like(values)
        stats = (chosen.mean(), chosen.std())
    mean, std = stats
    if std < 1e-9:
        return np.zeros_like(values)
    return (values - mean) / std


def standardised(parts: dict, candidates: np.ndarray) -> dict[str, np.ndarray]:
    stats = parts.get("_stats", {})
    return {name: zscore(parts[name], candidates, stats.get(name)) for name in COMPONENTS}


def _run_means(vectors: np.ndarray, count: int) -> np.ndarray:
    """The normalised means of `count` consecutive runs of rows (neighbouring sections of a note tend
    to be about the same thing)."""
    means = np.stack([part.mean(axis=0) for part in np.array_split(vectors, count)])
    return means / np.maximum(row_norms(means), 1e-9)[:, None]


class Relater:
    """Ranks the notes related to a note of the corpus."""

    def __init__(self, corpus: Corpus, weights: dict[str, float] | None = None):
        self.corpus = corpus
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self._batch = PrefetchedEvidence()  # what `prefetch` computed for a batch of notes

    def components(self, q: int, text: str | None = None) -> dict[str, np.ndarray]:
        """Raw evidence for every note of the corpus about note q.

        `text` replaces the note's text for the keyword and title evidence: calibration predicts a
        note's links from its text without them (and from a link graph without them: `calibrate`).
        """
        c = self.corpus
        n = len(c)
        own = c.section_vectors(c.rows_of(q))
        chunk, complete = self._best_sections(q, own)
        stats = {} if complete else {"chunk": c.sample_stats(own)}
        text = self._text_of(q) if text is None else text
        title = np.zeros(n)
        title[c.title_matcher.mentioned(text)] = 1.0
        aa = np.zeros(n)
        shared = np.zeros(n, np.int64)
        ids, scores, counts = c.graph.adamic_adar_arrays(c.paths[q])
        rows = c.rows_of_nodes(ids)
        known = rows >= 0
        aa[rows[known]], shared[rows[known]] = scores[known], counts[known]
        back = np.zeros(n)
        rows = c.rows_of_nodes(c.graph.backlink_ids(c.paths[q]))
        back[rows[rows >= 0]] = 1.0
        emb = c.note_vectors @ c.note_vectors[q]
        parts = {"emb": emb, "chunk": chunk, "bm25": np.zeros(n), "title": title, "aa": aa, "back": back,
                 "nbr": self._neighbour_links(q, emb), "_own": own, "_shared": shared, "_stats": stats}
        parts["bm25"] = self._keyword_scores(q, text, parts)
        return parts

    def _keyword_scores(self, q: int, text: str, parts: dict) -> np.ndarray:
        """BM25 of the note's keywords: FTS5's (best section per note, over the vault's 200 best sections)
        on vaults of up to KEYWORD_SEARCH_SECTIONS sections; above, term signatures scored over a pool.

        FTS5 scores every section that matches any of the 40 keywords (most sections of a large vault):
        70 ms at 10,000 notes, 600 ms at 100,000. A query restricted to the pool's sections (`rowid IN`)
        is slower still: FTS5 counts each keyword's documents again for every rowid (bench/RESULTS.md).
        """
        c = self.corpus
        scores = np.zeros(len(c))
        if not self.weights.get("bm25"):
            return scores
        if len(c.chunk_vid) <= KEYWORD_SEARCH_SECTIONS:
            for hit in self._keyword_hits(text):
                j = c.index.get(hit.note_path)
                if j is not None:
                    scores[j] = max(scores[j], hit.score)
            return scores
        return self._signature_scores(q, text, parts, scores)

    def _keyword_hits(self, text: str) -> list:
        """FTS5's hits for the note's keywords: prefetched with its batch, or searched now."""
        if text in self._batch.keyword_hits:
            return self._batch.keyword_hits[text].result()
        return self.corpus.store.fts_search(" ".join(keywords(text)), KEYWORD_HITS, match_any=True)

    def _signature_scores(self, q: int, text: str, parts: dict, scores: np.ndarray) -> np.ndarray:
        """BM25 of the note's keywords against the term signatures of the KEYWORD_POOL notes that every
        other component together ranks highest; zero elsewhere. Keywords reorder the top of the ranking
        and rarely lift a note from below it, and scoring a pool costs a fraction of a millisecond at
        any vault size (bench/RESULTS.md)."""
        c = self.corpus
        candidates = ~c.template
        candidates[q] = False
        provisional = np.zeros(len(c))
        for name, z in standardised({**parts, "bm25": scores}, candidates).items():
            provisional += self.weights.get(name, 0.0) * z
        provisional[~candidates] = -np.inf
        pool = top_indices(provisional, KEYWORD_POOL)
        query = np.fromiter((term_hash(w) for w in keywords(text)), np.int64)
        scores[pool] = c.terms.bm25(query, pool)
        return scores

    def _best_sections(self, q: int, own: np.ndarray) -> tuple[np.ndarray, bool]:
        """Per note, the best cosine between one of its sections and one of `own` (note q's centred
        section vectors).

        Exact index: a scan of every section. Inverted file: the nearest sections found for each of
        `own`; notes with none found get the lowest score found (they rank below every note found),
        and the component is standardised with the statistics of a sample (Corpus.sample_stats),
        not over these mostly filled-in values. Returns (scores, whether every note's are exact).
        """
        c = self.corpus
        if q in self._batch.sections:
            return self._batch.sections[q]
        chunk = np.full(len(c), -1.0)
        if not len(own):
            return chunk, True
        if c.chunk_vectors is not None:
            best = (own @ c.chunk_vectors.T).max(axis=0)
            rows = np.arange(len(best))
        else:
            queries = own if len(own) <= SECTION_QUERIES else _run_means(own, SECTION_QUERIES)
            k = min(max(SECTION_HITS_MIN, SECTION_HITS // len(queries)), len(c.chunk_vid))
            _, found = c.store.search_vectors(queries, k)
            vids = np.unique(found[found >= 0])
            best_by_vid = (own @ centre_on(c.store.gather_vectors(vids), c.chunk_mean).T).max(axis=0)
            which, rows = c.rows_using(vids)
            best = best_by_vid[which]
            others = c.chunk_note[rows] != q  # q's own sections say nothing about where the others stop
            if others.any():
                chunk[:] = best[others].min()
        _raise_to_best(chunk, c.chunk_note[rows], best)
        return chunk, c.chunk_vectors is not None or len(np.unique(c.chunk_note[rows])) == len(c)

    def _neighbour_links(self, q: int, emb: np.ndarray) -> np.ndarray:
        """Notes that q's closest notes link to, weighted by closeness: notes about the same thing
        tend to cite the same notes, which carries link evidence to a note that has no links yet."""
        c = self.corpus
        scores = np.zeros(len(c))
        near = [j for j in top_indices(emb, NEIGHBOUR_NOTES + 1).tolist() if j != q][:NEIGHBOUR_NOTES]
        targets = [c.graph.outlink_ids(c.paths[j]) for j in near]
        if targets:
            weights = np.repeat([max(float(emb[j]), 0.0) for j in near], [len(t) for t in targets])
            rows = c.rows_of_nodes(np.concatenate(targets))
            known = rows >= 0
            np.add.at(scores, rows[known], weights[known])
        return scores

    def _text_of(self, q: int) -> str:
        return "\n".join(chunk.text for chunk in self.corpus.store.chunks_of(self.corpus.paths[q]))

    def prefetch(self, paths: Sequence[str]) -> None:
        """Compute together what ranking each of these notes needs most time for, so that `rank` of each reads
        it: their best-section evidence in a few matrix products (exact index), and their keyword searches
        on a thread of the store's own (`Store.fts_searches`), which runs while the caller does other work
        (summaries, writes) between two notes' ranks. Replaces what an earlier prefetch held. What `rank`
        returns is the same with or without it (tests/test_relate.py compares them)."""
        self._batch.close()
        self._batch = PrefetchedEvidence()
        c = self.corpus
        rows = [q for q in (c.index.get(p) for p in dict.fromkeys(paths)) if q is not None]
        if not rows:
            return
        if self.weights.get("bm25") and len(c.chunk_vid) <= KEYWORD_SEARCH_SECTIONS:
            texts = [self._text_of(q) for q in rows]
            queries = [" ".join(keywords(t)) for t in texts]
            self._batch.keyword_hits = dict(zip(texts, c.store.fts_searches(queries, KEYWORD_HITS, match_any=True)))
        if c.chunk_vectors is not None:
            for start in range(0, len(rows), PREFETCH_PRODUCT_NOTES):
                self._batch.sections.update(best_sections_together(c, rows[start:start + PREFETCH_PRODUCT_NOTES]))

    def rank_many(self, paths: Sequence[str], k: int = 10, exclude: Mapping[str, set[str]] | None = None,
                  include_private: bool = False) -> dict[str, list[Suggestion]]:
        """`rank` of each note (`exclude[path]`: its rejected links), computed as a batch: the same lists."""
        self.prefetch(paths)
        try:
            return {p: self.rank(p, k, (exclude or {}).get(p, frozenset()), include_private) for p in paths}
        finally:
            self.release()

    def release(self) -> None:
        """Forget what `prefetch` computed (and stop searches not started yet)."""
        self._batch.close()
        self._batch = PrefetchedEvidence()

    def rank(self, path: str, k: int = 10, exclude: set[str] = frozenset(), include_private: bool = False
             ) -> list[Suggestion]:
        """The k notes most related to `path`, best first.

        Excluded: the note itself, templates, notes it already links to, `exclude` (rejected links),
        private notes unless asked for.
        """
        c = self.corpus
        q = c.index.get(path)
        if q is None:
            return []
        linked = c.graph.outlinks(path)
        parts = self.components(q)
        candidates = ~c.template
        candidates[q] = False
        if not include_private:
            candidates &= ~c.private
        for other in linked | set(exclude):
            j = c.index.get(other)
            if j is not None:
                candidates[j] = False
        total = self.fused(q, parts, candidates)
        order = diversify(total, c.note_vectors, k)
        return [self._suggestion(q, int(j), float(total[j]), parts) for j in order if np.isfinite(total[j])]

    def explain(self, path: str, targets: list[str]) -> dict[str, Suggestion]:
        """Suggestions (score, passage, why) for chosen notes of the corpus, ranked or not: a link the user
        pinned is shown with the same evidence as a ranked one."""
        c = self.corpus
        q = c.index.get(path)
        wanted = [t for t in targets if t in c.index and t != path]
        if q is None or not wanted:
            return {}
        parts = self.components(q)
        candidates = ~c.template
        candidates[q] = False
        total = self.fused(q, parts, candidates)
        return {t: self._suggestion(q, c.index[t], float(np.nan_to_num(total[c.index[t]], neginf=0.0)), parts)
                for t in wanted}

    def fused(self, q: int, parts: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
        total = np.zeros(len(self.corpus))
        for name, z in standardised(parts, candidates).items():
            total += self.weights.get(name, 0.0) * z
        total[~candidates] = -np.inf
        return total

    def _suggestion(self, q: int, j: int, score: float, parts: dict) -> Suggestion:
        c = self.corpus
        path = c.paths[j]
        theirs = c.rows_of(j)
        heading, passage, why = None, "", []
        if theirs.size and len(parts["_own"]):
            sims = parts["_own"] @ c.section_vectors(theirs).T
            best = int(theirs[np.unravel_index(np.argmax(sims), sims.shape)[1]])
            per_chunk = sims.max(axis=0)
            chunk = c.section(best)
            if chunk is not None:
                passage = chunk_passage(chunk.text, chunk.heading_path, PASSAGE_CHARS)
                # Link to the section only when it clearly stands out from the rest of the note.
                if chunk.heading and theirs.size > 1 and per_chunk.max() - np.median(per_chunk) > 0.08:
                    heading = chunk.heading
                if chunk.heading:
                    why.append(f"section '{chunk.heading}' matches")
        shared = int(parts["_shared"][j])
        if shared:
            why.append(f"shares {shared} link{'s' if shared > 1 else ''}")
        if parts["title"][j]:
            why.append("its title is mentioned")
        if parts["back"][j]:
            why.append("it links here")
        if not why:
            why.append("similar content")
        components = {name: float(parts[name][j]) for name in COMPONENTS}
        return Suggestion(path, c.titles[j], score, heading, passage, "; ".join(why), components)


def _raise_to_best(scores: np.ndarray, notes: np.ndarray, values: np.ndarray) -> None:
    """scores[n] = max(scores[n], the values of note n): one reduceat over the values grouped by note
    (np.maximum.at, element by element, took 4 ms for the 40,000 sections of a 10,000-note vault)."""
    if not len(notes):
        return
    if (notes[1:] < notes[:-1]).any():
        order = np.argsort(notes, kind="stable")
        notes, values = notes[order], values[order]
    starts = np.flatnonzero(np.r_[True, notes[1:] != notes[:-1]])
    at = notes[starts]
    scores[at] = np.maximum(scores[at], np.maximum.reduceat(values, starts))


@dataclass
class PrefetchedEvidence:
    """Evidence `Relater.prefetch` computed for a batch of notes: best sections by note row, keyword hits
    (futures) by the note's text."""

    sections: dict[int, tuple[np.ndarray, bool]] = field(default_factory=dict)
    keyword_hits: dict[str, Future] = field(default_factory=dict)

    def close(self) -> None:
        for future in self.keyword_hits.values():
            future.cancel()  # a search not started yet is not needed any more


def best_sections_together(c: Corpus, rows: Sequence[int]) -> dict[int, tuple[np.ndarray, bool]]:
    """`Relater._best_sections` of several notes from one product of their sections with every section
    (exact index only): per note, the best cosine between one of its sections and each note's."""
    owns = [c.section_vectors(c.rows_of(q)) for q in rows]
    sizes = [len(own) for own in owns]
    product = np.concatenate(owns) @ c.chunk_vectors.T if sum(sizes) else np.zeros((0, len(c.chunk_note)))
    found = {}
    for q, end, size in zip(rows, np.cumsum(sizes), sizes):
        chunk = np.full(len(c), -1.0)
        if size:
            _raise_to_best(chunk, c.chunk_note, product[end - size:end].max(axis=0))
        found[q] = (chunk, True)
    return found


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first (ties by index), without sorting them all."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > k:
        values = scores[finite]
        cut = np.partition(values, len(finite) - k)[len(finite) - k]
        above = finite[values > cut]
        finite = np.concatenate([above, finite[values == cut][: k - len(above)]])  # ties: lowest index first
        finite.sort()
    return finite[np.argsort(-scores[finite], kind="stable")][:k]


def diversify(scores: np.ndarray, vectors: np.ndarray, k: int) -> list[int]:
    """Greedy maximal-marginal-relevance pick over the best few: ten near-copies make a poor list."""
    pool = top_indices(scores, DIVERSITY_POOL).tolist()
    chosen: list[int] = []
    while pool and len(chosen) < k:
        penalty = (vectors[pool] @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(pool))
        best = int(np.argmax(scores[pool] - DIVERSITY * penalty))
        chosen.append(pool.pop(best))
    return chosen
