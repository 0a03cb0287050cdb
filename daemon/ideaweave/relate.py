"""Related notes: semantic, keyword, title and link evidence fused into one ranking, each suggestion with its why.

Every component is computed for every candidate note at once (numpy over the whole vault),
z-normalised per query so that components on different scales can be added, and combined with
weights that are settings (or calibrated per vault by `calibrate`). Most components are zero for all
but a few notes; `fused_top` sums the top of the ranking over those notes and the best few by the dense
components, which picks what summing over every note picks.
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
# `top_indices` of at least this many scores selects among those above a cut read off every
# SAMPLE_STEP-th score.
SAMPLED_SELECTION = 4_096
SAMPLE_STEP = 16



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
    # Counted in C, stopwords taken out afterwards: a long note's 5,000 words cost 1 ms instead of 4. Lowering
    # the whole text first finds the same words only when it is ASCII (some letters lower to ASCII ones).
    words = WORD.findall(text.lower()) if text.isascii() else [w.lower() for w in WORD.findall(text)]
    counts = Counter(words)
    for stopword in STOPWORDS & counts.keys():
        del counts[stopword]
    return [w for w, _ in counts.most_common(k)]  # ties: first seen first, as before


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

    def components(self, q: int, text: str | None = None, whole: bool = True) -> dict[str, np.ndarray]:
        """Raw evidence for every note of the corpus about note q.

        `text` replaces the note's text for the keyword and title evidence: calibration predicts a
        note's links from its text without them (and from a link graph without them: `calibrate`).
        `whole=False` lets a large vault's whole-note cosine ("emb") be computed only for the nearest
        notes (`NoteIndex`) and the rows with other evidence, -inf elsewhere: what `fused_top` reads,
        which then takes its spread from the index's moments.
        """
        c = self.corpus
        n = len(c)
        own = c.section_vectors(c.rows_of(q))
        chunk, complete = self._best_sections(q, own)
        stats = {} if complete else {"chunk": c.sample_stats(own)}
        text = self._text_of(q) if text is None else text
        title = np.zeros(n)
        mentioned = c.title_matcher.mentioned(text)
        title[mentioned] = 1.0
        aa = np.zeros(n)
        shared = np.zeros(n, np.int64)
        ids, scores, counts = c.graph.adamic_adar_arrays(c.paths[q])
        rows = c.rows_of_nodes(ids)
        known = rows >= 0
        aa_rows = rows[known]
        aa[aa_rows], shared[aa_rows] = scores[known], counts[known]
        back = np.zeros(n)
        rows = c.rows_of_nodes(c.graph.backlink_ids(c.paths[q]))
        back_rows = rows[rows >= 0]
        back[back_rows] = 1.0
        query = c.note_vectors[q]
        partial = not whole and c.note_index is not None
        if partial:
            near, values = c.note_index.nearest(c.note_vectors, query)
            emb = np.full(n, -np.inf, np.float32)
            emb[near] = values
        else:
            emb = c.note_vectors @ query
        nbr, nbr_rows = self._neighbour_links(q, emb)
        # Where each sparse component differs from its value everywhere else (`_base`, zero unless said),
        # so that fusing reads those rows only (`fused_top`).
        sparse = {"title": mentioned, "aa": aa_rows, "back": back_rows, "nbr": nbr_rows}
        base = {}
        if c.chunk_vectors is None and n:
            # The inverted file's best sections: every note it did not find has the same lowest score.
            base["chunk"] = float(chunk.min())
            sparse["chunk"] = np.flatnonzero(chunk != base["chunk"])
        parts = {"emb": emb, "chunk": chunk, "bm25": np.zeros(n), "title": title, "aa": aa, "back": back,
                 "nbr": nbr, "_own": own, "_shared": shared, "_stats": stats, "_rows": sparse, "_base": base}
        if partial:  # every row with other evidence gets its whole-note cosine (the keyword pool reads it)
            parts["_query"], parts["_near"] = query, near
            _fill_whole_note(c, parts, list(sparse.values()))
        parts["bm25"], sparse["bm25"] = self._keyword_scores(q, text, parts)
        if partial:
            _fill_whole_note(c, parts, [sparse["bm25"]])
        return parts

    def _keyword_scores(self, q: int, text: str, parts: dict) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of the note's keywords: FTS5's (best section per note, over the vault's 200 best sections)
        on vaults of up to KEYWORD_SEARCH_SECTIONS sections; above, term signatures scored over a pool.

        FTS5 scores every section that matches any of the 40 keywords (most sections of a large vault):
        70 ms at 10,000 notes, 600 ms at 100,000. A query restricted to the pool's sections (`rowid IN`)
        is slower still: FTS5 counts each keyword's documents again for every rowid (bench/RESULTS.md).
        Returns (scores, the rows that have one).
        """
        c = self.corpus
        scores = np.zeros(len(c))
        if not self.weights.get("bm25"):
            return scores, np.zeros(0, np.int64)
        if len(c.chunk_vid) <= KEYWORD_SEARCH_SECTIONS:
            for hit in self._keyword_hits(text):
                j = c.index.get(hit.note_path)
                if j is not None:
                    scores[j] = max(scores[j], hit.score)
            return scores, np.flatnonzero(scores)
        return self._signature_scores(q, text, parts, scores)

    def _keyword_hits(self, text: str) -> list:
        """FTS5's hits for the note's keywords: prefetched with its batch, or searched now."""
        if text in self._batch.keyword_hits:
            return self._batch.keyword_hits[text].result()
        return self.corpus.store.fts_search(" ".join(keywords(text)), KEYWORD_HITS, match_any=True)

    def _signature_scores(self, q: int, text: str, parts: dict, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of the note's keywords against the term signatures of the KEYWORD_POOL notes that every
        other component together ranks highest; zero elsewhere. Keywords reorder the top of the ranking
        and rarely lift a note from below it, and scoring a pool costs a fraction of a millisecond at
        any vault size (bench/RESULTS.md)."""
        c = self.corpus
        candidates = ~c.template
        candidates[q] = False
        without = {**parts, "bm25": scores, "_rows": {**parts.get("_rows", {}), "bm25": np.zeros(0, np.int64)}}
        pool, _ = self.fused_top(without, candidates, KEYWORD_POOL)
        query = np.fromiter((term_hash(w) for w in keywords(text)), np.int64)
        scores[pool] = c.terms.bm25(query, pool)
        return scores, np.sort(pool)

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
        if c.chunk_vectors is not None:
            return best_sections_together(c, [q])[q]
        chunk = np.full(len(c), -1.0)
        if not len(own):
            return chunk, True
        queries = own if len(own) <= SECTION_QUERIES else _run_means(own, SECTION_QUERIES)
        k = min(max(SECTION_HITS_MIN, SECTION_HITS // len(queries)), len(c.chunk_vid))
        _, found = c.store.search_vectors(queries, k)
        vids = np.unique(found[found >= 0])
        # The found sections' codes, not their stored vectors: the search finds about 40% of the exact
        # nearest sections, so a cosine within 3e-3 changes no recall (bench/RESULTS.md), and reading
        # some 600 stored vectors took 3 of a ranking's 15 ms.
        found_vectors = c.store.gather_vectors(vids, approximate=True)
        best_by_vid = (own @ centre_on(found_vectors, c.chunk_mean).T).max(axis=0)
        which, rows = c.rows_using(vids)
        best = best_by_vid[which]
        others = c.chunk_note[rows] != q  # q's own sections say nothing about where the others stop
        if others.any():
            chunk[:] = best[others].min()
        _raise_to_best(chunk, c.chunk_note[rows], best)
        return chunk, len(np.unique(c.chunk_note[rows])) == len(c)

    def _neighbour_links(self, q: int, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Notes that q's closest notes link to, weighted by closeness: notes about the same thing
        tend to cite the same notes, which carries link evidence to a note that has no links yet.
        Returns (scores, the rows that have one)."""
        c = self.corpus
        scores = np.zeros(len(c))
        near = [j for j in top_indices(emb, NEIGHBOUR_NOTES + 1).tolist() if j != q][:NEIGHBOUR_NOTES]
        targets = [c.graph.outlink_ids(c.paths[j]) for j in near]
        if not targets:
            return scores, np.zeros(0, np.int64)
        weights = np.repeat([max(float(emb[j]), 0.0) for j in near], [len(t) for t in targets])
        rows = c.rows_of_nodes(np.concatenate(targets))
        known = rows >= 0
        np.add.at(scores, rows[known], weights[known])
        return scores, np.unique(rows[known])

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
        # A negative weight makes `fused_top` sum over every note, which needs every note's evidence.
        parts = self.components(q, whole=any(w < 0 for w in self.weights.values()))
        candidates = ~c.template
        candidates[q] = False
        if not include_private:
            candidates &= ~c.private
        for other in linked | set(exclude):
            j = c.index.get(other)
            if j is not None:
                candidates[j] = False
        pool, scores = self.fused_top(parts, candidates, DIVERSITY_POOL)
        order = pick_diverse(pool, scores, c.note_vectors, k)
        total = dict(zip(pool.tolist(), scores.tolist()))
        return self._suggestions(q, [(j, total[j]) for j in order if np.isfinite(total[j])], parts)

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
        found = self._suggestions(q, [(c.index[t], float(np.nan_to_num(total[c.index[t]], neginf=0.0))) for t in wanted],
                                  parts)
        return dict(zip(wanted, found))

    def fused(self, q: int, parts: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
        """Every candidate's score: the weighted sum of its standardised components (-inf elsewhere)."""
        total = np.zeros(len(self.corpus))
        for name, z in standardised(parts, candidates).items():
            total += self.weights.get(name, 0.0) * z
        total[~candidates] = -np.inf
        return total

    def fused_top(self, parts: dict, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.corpus
        if "_query" in parts and np.count_nonzero(candidates[parts["_near"]]) < k:
            # Too few of the nearest notes are candidates (a hub links to most of them): every note's cosine.
            parts["emb"][:] = c.note_vectors @ parts.pop("_query")
        if "_query" in parts:  # the whole-note cosine is known near the top only: its spread from the moments
            spread = c.note_index.spread(c.note_vectors, parts["_query"], candidates)
            parts = {**parts, "_stats": {**parts["_stats"], "emb": spread}}
        return fused_top(parts, candidates, self.weights, k)

    def _suggestions(self, q: int, chosen: list[tuple[int, float]], parts: dict) -> list[Suggestion]:
        """The suggestion of each (row, score), the section vectors of them all read in one gather (from
        the inverted file of a large vault, a gather per note cost more than the rest of a suggestion)."""
        c = self.corpus
        rows = [c.rows_of(j) for j, _ in chosen]
        vectors = c.section_vectors(np.concatenate(rows)) if rows else None
        ends = np.cumsum([len(r) for r in rows]).tolist()
        return [self._suggestion(q, j, score, parts, rows[i], vectors[ends[i] - len(rows[i]):ends[i]])
                for i, (j, score) in enumerate(chosen)]

    def _suggestion(self, q: int, j: int, score: float, parts: dict, theirs: np.ndarray, vectors: np.ndarray
                    ) -> Suggestion:
        """The suggestion of note j: `theirs` are its section rows, `vectors` their centred vectors."""
        c = self.corpus
        path = c.paths[j]
        heading, passage, why = None, "", []
        if theirs.size and len(parts["_own"]):
            sims = parts["_own"] @ vectors.T
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


def _fill_whole_note(c: Corpus, parts: dict, rows: list[np.ndarray]) -> None:
    """The whole-note cosine of these rows where `components(whole=False)` left it unknown (-inf)."""
    rows = np.concatenate([np.asarray(r, np.int64) for r in rows])
    missing = np.unique(rows[~np.isfinite(parts["emb"][rows])])
    if len(missing):
        parts["emb"][missing] = c.note_vectors[missing] @ parts["_query"]


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
    """Indices of the k largest finite scores, best first (ties by index), without sorting them all.

    Over many scores, only those at or above a cut read off a sample are selected from: every score of
    the k best is at or above any cut that at least k finite scores reach. At 100,000 scores that is
    about 0.2 ms instead of 1 to 2 (three selections a ranking)."""
    if SAMPLED_SELECTION <= len(scores) and 0 < k * SAMPLE_STEP < len(scores):
        sample = scores[::SAMPLE_STEP]
        keep = min(len(sample), 2 * k // SAMPLE_STEP + 32)  # about 2k + 500 scores are at or above it
        # Scores known for few rows (-inf elsewhere) are selected among directly: numpy's partition of a
        # sample of mostly equal values is slower than that.
        if np.count_nonzero(np.isfinite(sample)) < len(sample) // 2:
            return _top_of(scores, k)
        cut = np.partition(sample, len(sample) - keep)[len(sample) - keep]
        if np.isfinite(cut):
            rows = np.flatnonzero(scores >= cut)
            top = rows[_top_of(scores[rows], k)]
            if len(top) == k:
                return top
    return _top_of(scores, k)


def _top_of(scores: np.ndarray, k: int) -> np.ndarray:
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
    pool = top_indices(scores, DIVERSITY_POOL)
    return pick_diverse(pool, scores[pool], vectors, k)


def pick_diverse(pool: np.ndarray, scores: np.ndarray, vectors: np.ndarray, k: int) -> list[int]:
    """`diversify` over a pool of rows with their scores, best first."""
    rows, values = pool.tolist(), np.asarray(scores, dtype=float)
    chosen: list[int] = []
    while rows and len(chosen) < k:
        penalty = (vectors[rows] @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(rows))
        best = int(np.argmax(values - DIVERSITY * penalty))
        chosen.append(rows.pop(best))
        values = np.delete(values, best)
    return chosen


def fused_top(parts: dict, candidates: np.ndarray, weights: dict[str, float], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k candidates with the highest fused score (`Relater.fused`), best first (ties: lowest row
    first), and their scores. Computed over the rows where the sparse components have evidence and the
    best rows by the dense ones (a few hundred) instead of over every note: at 100,000 notes each of
    seven standardisations over every note cost about a millisecond. tests/test_relate.py checks it
    against the sum over every note."""
    spreads = {name: _spread(parts, name, candidates) for name in COMPONENTS if weights.get(name, 0.0)}
    spreads = {name: spread for name, spread in spreads.items() if spread is not None}
    rows = _rows_that_can_lead(parts, candidates, weights, spreads, k)
    if rows is None:
        total = np.zeros(len(candidates))
        for name, z in standardised(parts, candidates).items():
            total += weights.get(name, 0.0) * z
        total[~candidates] = -np.inf
        top = top_indices(total, k)
        return top, total[top]
    total = np.zeros(len(rows))
    for name in COMPONENTS:  # in `fused`'s order, so that the sums round alike
        if name in spreads:
            mean, std = spreads[name]
            total += weights[name] * ((parts[name][rows] - mean) / std)
    top = top_indices(total, k)
    return rows[top], total[top]


def _spread(parts: dict, name: str, candidates: np.ndarray) -> tuple[float, float] | None:
    """(mean, std) of a component over the candidates, as `zscore` takes them; None where `zscore` gives
    zeros (no candidates, or a component constant over them). A sparse component's are summed over the
    rows where it differs from its base value, not over every note."""
    stats = parts.get("_stats", {})
    if name in stats:
        mean, std = stats[name]
    elif name in parts.get("_rows", {}):
        count = int(np.count_nonzero(candidates))
        if not count:
            return None
        rows = parts["_rows"][name]
        base = parts.get("_base", {}).get(name, 0.0)
        above = parts[name][rows[candidates[rows]]] - base  # shifted to the base: no cancellation below
        shift = above.sum() / count
        mean, std = base + shift, float(np.sqrt(max(float(above @ above) / count - shift * shift, 0.0)))
    else:
        chosen = parts[name][candidates]
        if not chosen.size:
            return None
        mean, std = chosen.mean(), chosen.std()
    return None if std < 1e-9 else (mean, std)


def _rows_that_can_lead(parts: dict, candidates: np.ndarray, weights: dict[str, float], spreads: dict,
                        k: int) -> np.ndarray | None:
    """Candidate rows among which the k best fused candidates lie, sorted; None when that cannot be told.

    A sparse component is at its base value outside its rows, and its weight and values there are not
    negative, so outside those rows a candidate scores no more than the dense components alone give it:
    the k best by the dense components, with every sparse component's rows, hold the k best by all."""
    sparse = parts.get("_rows", {})
    if any(w < 0 for w in weights.values()) or any(
            (parts[name][rows] < parts.get("_base", {}).get(name, 0.0)).any() for name, rows in sparse.items()):
        return None
    dense = np.zeros(len(candidates))
    for name in COMPONENTS:
        if name not in sparse and name in spreads:
            mean, std = spreads[name]
            dense += weights[name] * ((parts[name] - mean) / std)
    dense[~candidates] = -np.inf
    found = [top_indices(dense, k)] + [rows for name, rows in sparse.items() if weights.get(name, 0.0)]
    rows = np.unique(np.concatenate(found).astype(np.int64))
    return rows[candidates[rows]]
