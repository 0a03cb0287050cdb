"""Related notes: semantic, keyword, title and link evidence fused into one ranking, each suggestion with its why.

Every component is computed for every candidate note at once (numpy over the whole vault),
z-normalised per query so that components on different scales can be added, and combined with
weights that are settings (or calibrated per vault by `calibrate`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .graph import LinkGraph
from .store import Store
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
NEIGHBOURS = 20
# Sections fetched from an inverted file per query note (split among its sections, at least the
# minimum each): enough that the true best section of every note near the top is among them.
SECTION_HITS = 600
SECTION_HITS_MIN = 40
SAMPLE_NOTES = 1000  # notes whose sections estimate the spread of the best-section evidence there
# A long note asks the inverted file with at most this many queries (the means of runs of its sections).
SECTION_QUERIES = 8
TITLE_WORDS = 5  # titles and aliases of up to this many words are looked for in a note's text
PASSAGE_CHARS = 300
KEYWORDS = 40
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]{2,}")
_STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just let me more most my myself no nor not now of
off on once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves one two also like use used using get make way thing
things much many may might must need via per etc""".split())


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


def normalise_title(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def keywords(text: str, k: int = KEYWORDS) -> list[str]:
    """The query note's most frequent content words: a BM25 query that stays short enough to be fast."""
    counts = Counter(w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS)
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


class Corpus:
    """An in-memory snapshot of what ranking needs, loaded from the store in a few vectorised reads.

    Memory holds one vector per note (float32, centred). Section vectors stay in the store's vector
    index; only a small vault's (an exact index) are also copied here, centred, for an exact scan.
    A snapshot is never changed: `updated()` makes the next one, reading only the notes that changed.
    """

    def __init__(self, store: Store, note_mean: np.ndarray | None = None, chunk_mean: np.ndarray | None = None):
        """Load everything; `note_mean`/`chunk_mean` centre the vectors on given means instead of the
        vault's own (what `updated()` does, so that a note keeps its vector between snapshots)."""
        paths, note_vectors, own_chunk_mean = store.note_means()
        flags = store.note_flags()
        # A note deleted between the two reads keeps a placeholder until the next load.
        notes = [_flags_of(flags, p) for p in paths]
        del flags
        # Centred on the vault's mean: MiniLM vectors share a large common direction, and removing it
        # makes cosine measure what sets a note apart (+0.01 to +0.02 recall@10 on the benchmark).
        if note_mean is None:
            note_mean = note_vectors.mean(axis=0) if len(paths) > 1 else np.zeros(store.dim, np.float32)
        if chunk_mean is None:
            chunk_mean = own_chunk_mean if len(paths) > 1 else np.zeros_like(own_chunk_mean)
        note_vectors = _centre_on(note_vectors, note_mean, in_place=True)
        ordinals, note_ids, vector_ids = store.chunk_table()
        chunk_paths = _lookup_paths(store.note_path_by_id(), note_ids)
        # The graph keys its edges by the corpus's own path strings, not a fresh copy per link.
        same = {p: p for p in paths}
        graph = LinkGraph(((same.get(a, a), same.get(b, b)) for a, b in store.each_link()), nodes=paths)
        del same
        self._assemble(store, paths, notes, note_vectors, note_mean, chunk_mean,
                       (ordinals, chunk_paths, vector_ids), None, graph, store.vectors_exact)
        self.changes_since_load = 0

    def _assemble(self, store: Store, paths: list[str], notes: list, note_vectors: np.ndarray,
                  note_mean: np.ndarray, chunk_mean: np.ndarray, chunks: tuple, chunk_vectors: np.ndarray | None,
                  graph: LinkGraph, exact: bool, sample: tuple | None = None) -> None:
        """Everything derived from the per-note data: indexes, sections grouped by note, title index.

        `chunks` is (ordinals, note path of each, vector_ids); sections of notes not in `paths` are
        dropped. `chunk_vectors` (exact index only) are the centred vectors of those rows, or None to
        gather them from the store."""
        self.store = store
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}
        self.notes = notes  # (title, is_template, private, aliases) per note
        self.titles = [title for title, _, _, _ in notes]
        self.template = np.array([is_template for _, is_template, _, _ in notes], dtype=bool)
        self.private = np.array([private for _, _, private, _ in notes], dtype=bool)
        self.note_vectors, self.note_mean, self.chunk_mean = note_vectors, note_mean, chunk_mean
        ordinals, chunk_paths, vector_ids = chunks
        chunk_note = np.fromiter((self.index.get(p, -1) for p in chunk_paths), dtype=np.int64, count=len(chunk_paths))
        # Sections grouped by note (a note's sections are rows start[q]:start[q + 1]), in their order;
        # a note indexed between two reads is left out rather than misattributed.
        keep = np.flatnonzero(chunk_note >= 0)
        keep = keep[np.argsort(chunk_note[keep], kind="stable")]
        self.chunk_ordinal, self.chunk_note, self.chunk_vid = ordinals[keep], chunk_note[keep], vector_ids[keep]
        self.chunk_start = np.searchsorted(self.chunk_note, np.arange(len(paths) + 1))
        self.exact = exact
        # An exact index is small: scanning a centred copy is fastest. A large one is searched.
        if not exact:
            self.chunk_vectors = None
        elif chunk_vectors is not None:
            self.chunk_vectors = chunk_vectors[keep]
        else:
            self.chunk_vectors = _centre_on(store.gather_vectors(self.chunk_vid), chunk_mean)
        by_vid = np.argsort(self.chunk_vid, kind="stable")
        self._vid_sorted, self._vid_rows = self.chunk_vid[by_vid], by_vid
        self.graph = graph
        self._sample_sections(sample)
        self.title_index: dict[str, list[int]] = {}
        self.title_words: dict[str, int] = {}  # first word of a title -> most words of such a title (<= 5)
        for i, (title, _, _, aliases) in enumerate(notes):
            for name in [title] + aliases:
                key = normalise_title(name)
                if len(key) >= 3 and key not in _STOPWORDS:
                    self.title_index.setdefault(key, []).append(i)
                    first, size = key.split(" ", 1)[0], key.count(" ") + 1
                    if size <= TITLE_WORDS:
                        self.title_words[first] = max(self.title_words.get(first, 0), size)

    def _sample_sections(self, carried: tuple | None) -> None:
        """A fixed random sample of notes whose section vectors stay in memory (large vaults only):
        the best-section evidence is found for the top notes only, and standardised with the
        spread it has over this sample."""
        if self.exact:
            self.sample_vectors, self.sample_starts = None, None
        elif carried is not None:
            self.sample_vectors, self.sample_starts = carried
        else:
            chosen = np.sort(np.random.default_rng(0).choice(len(self.paths), size=min(SAMPLE_NOTES, len(self.paths)),
                                                             replace=False))
            rows = [self.rows_of(int(q)) for q in chosen]
            self.sample_starts = np.cumsum([0] + [len(r) for r in rows])[:-1]
            self.sample_vectors = self.section_vectors(np.concatenate(rows)) if rows else None

    def sample_stats(self, own: np.ndarray) -> tuple[float, float]:
        """(mean, std) of the best-section cosine to `own` over the sample's notes."""
        if self.sample_vectors is None or not len(self.sample_vectors) or not len(own):
            return 0.0, 0.0
        best = np.maximum.reduceat((own @ self.sample_vectors.T).max(axis=0), self.sample_starts)
        return float(best.mean()), float(best.std())

    def updated(self, touched: Iterable[str]) -> Corpus:
        """The next snapshot, after the notes `touched` were indexed again, added or deleted (for a
        rename, both names; and notes whose links the indexer re-resolved). Only those notes are
        read; the rest is carried over. Vectors stay centred on this snapshot's means, so a full
        load happens instead once a tenth of the vault has changed since the last one, or when the
        store switched between exact and approximate search.

        The link graph (and, when no note came or went, the note vectors) are shared and brought up to
        date in place: an older snapshot still in use sees the new links and vectors, which is harmless
        (it only looks up the notes it knows)."""
        touched = set(touched)
        if not touched:
            return self
        changes = self.changes_since_load + len(touched)
        if changes > max(len(self) // 10, 50) or self.store.vectors_exact != self.exact or len(self) < 2:
            return Corpus(self.store)
        store = self.store
        fresh_paths, fresh_vectors, _ = store.note_means(only=touched)
        flags = store.note_flags(only=touched)  # every touched note that still exists
        kept = [i for i, p in enumerate(self.paths) if p not in touched]
        paths = sorted([self.paths[i] for i in kept] + fresh_paths)
        index = {p: i for i, p in enumerate(paths)}
        at_kept = np.fromiter((index[self.paths[i]] for i in kept), dtype=np.int64, count=len(kept))
        at_fresh = np.fromiter((index[p] for p in fresh_paths), dtype=np.int64, count=len(fresh_paths))
        kept = np.asarray(kept, dtype=np.int64)
        if paths == self.paths:
            # The same notes (edits only, the usual batch): the vectors are updated in place rather than
            # copied (a copy is 150 MB at 100,000 notes); an older snapshot still in use sees the edited
            # notes' new vectors, as it sees their new links.
            note_vectors = self.note_vectors
        else:
            note_vectors = np.empty((len(paths), self.note_vectors.shape[1]), np.float32)
            note_vectors[at_kept] = self.note_vectors[kept]
        note_vectors[at_fresh] = _centre_on(fresh_vectors, self.note_mean, in_place=True)
        notes: list = [None] * len(paths)
        for old, new in zip(kept.tolist(), at_kept.tolist()):
            notes[new] = self.notes[old]
        for path, new in zip(fresh_paths, at_fresh.tolist()):
            notes[new] = _flags_of(flags, path)
        # Sections: the kept notes' rows as they were, the fresh notes' rows from the store.
        carried = np.isin(self.chunk_note, kept)
        ordinals, note_ids, vids = store.chunk_table(only=fresh_paths)
        fresh_chunk_paths = _lookup_paths(store.note_path_by_id(only=fresh_paths), note_ids)
        old_paths = np.asarray(self.paths, dtype=object)
        chunks = (np.concatenate([self.chunk_ordinal[carried], ordinals]),
                  np.concatenate([old_paths[self.chunk_note[carried]], np.asarray(fresh_chunk_paths, dtype=object)]),
                  np.concatenate([self.chunk_vid[carried], vids]))
        chunk_vectors = None
        if self.exact:
            fresh_chunks = _centre_on(store.gather_vectors(vids), self.chunk_mean) if len(vids) else (
                np.zeros((0, self.note_vectors.shape[1]), np.float32))
            chunk_vectors = np.concatenate([self.chunk_vectors[carried], fresh_chunks])
        graph = self.graph
        same = {p: p for p in fresh_paths}
        outgoing: dict[str, set[str]] = {}
        for source, target in store.links(only=touched):
            outgoing.setdefault(source, set()).add(target)
        for path in touched:
            if path in flags:
                graph.replace_outlinks(same.get(path, path), outgoing.get(path, ()))
            else:
                graph.remove_note(path)
        following = Corpus.__new__(Corpus)
        following._assemble(store, paths, notes, note_vectors, self.note_mean, self.chunk_mean, chunks,
                            chunk_vectors, graph, self.exact, sample=(self.sample_vectors, self.sample_starts))
        following.changes_since_load = changes
        return following

    def __len__(self) -> int:
        return len(self.paths)

    def rows_of(self, q: int) -> np.ndarray:
        """The section rows of note q."""
        return np.arange(self.chunk_start[q], self.chunk_start[q + 1])

    def section(self, row: int):
        """The stored chunk of a section row (its text, heading), or None if it is gone since."""
        return self.store.chunk_at(self.paths[self.chunk_note[row]], int(self.chunk_ordinal[row]))

    def section_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Centred unit vectors of these section rows."""
        if self.chunk_vectors is not None:
            return self.chunk_vectors[rows]
        return _centre_on(self.store.gather_vectors(self.chunk_vid[rows]), self.chunk_mean)

    def rows_using(self, vector_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions into vector_ids, section rows) of every section embedded as one of these vectors
        (the same text in two notes is one vector)."""
        lo = np.searchsorted(self._vid_sorted, vector_ids, side="left")
        hi = np.searchsorted(self._vid_sorted, vector_ids, side="right")
        counts = hi - lo
        which = np.repeat(np.arange(len(vector_ids)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return which, self._vid_rows[np.repeat(lo, counts) + offsets]


def _run_means(vectors: np.ndarray, count: int) -> np.ndarray:
    """The normalised means of `count` consecutive runs of rows (neighbouring sections of a note tend
    to be about the same thing)."""
    means = np.stack([part.mean(axis=0) for part in np.array_split(vectors, count)])
    return means / np.maximum(row_norms(means), 1e-9)[:, None]


def _flags_of(flags: dict, path: str) -> tuple:
    """A note's (title, is_template, private, aliases); a placeholder for a note deleted since it was listed."""
    return flags.get(path) or (Path(path).stem, False, False, [])


def _lookup_paths(path_by_id: dict[int, str], note_ids: np.ndarray) -> list[str | None]:
    return [path_by_id.get(int(i)) for i in note_ids]


def _centre_on(vectors: np.ndarray, mean: np.ndarray, in_place: bool = False) -> np.ndarray:
    out = np.asarray(vectors, dtype=np.float32) if in_place else np.array(vectors, dtype=np.float32)
    out -= np.asarray(mean, dtype=np.float32)
    out /= np.maximum(row_norms(out), 1e-9)[:, None]
    return out


class Relater:
    """Ranks the notes related to a note of the corpus."""

    def __init__(self, corpus: Corpus, weights: dict[str, float] | None = None):
        self.corpus = corpus
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)

    def components(self, q: int, exclude_links: set[str] = frozenset(), text: str | None = None) -> dict[str, np.ndarray]:
        """Raw evidence for every note of the corpus about note q.

        `exclude_links` are hidden from the graph evidence and `text` replaces the note's text for the
        keyword and title evidence: calibration uses both to predict a note's links without seeing them.
        """
        c = self.corpus
        n = len(c)
        own = c.section_vectors(c.rows_of(q))
        chunk, complete = self._best_sections(q, own)
        stats = {} if complete else {"chunk": c.sample_stats(own)}
        text = self._text_of(q) if text is None else text
        bm25 = np.zeros(n)
        for hit in self._keyword_hits(text):
            j = c.index.get(hit.note_path)
            if j is not None:
                bm25[j] = max(bm25[j], hit.score)
        title = np.zeros(n)
        for j in self._mentioned(text):
            title[j] = 1.0
        aa = np.zeros(n)
        shared: dict[int, int] = {}
        for path, (score, count) in c.graph.adamic_adar(c.paths[q], exclude=set(exclude_links)).items():
            j = c.index.get(path)
            if j is not None:
                aa[j] = score
                shared[j] = count
        back = np.zeros(n)
        for path in c.graph.backlinks(c.paths[q]) - set(exclude_links):
            j = c.index.get(path)
            if j is not None:
                back[j] = 1.0
        emb = c.note_vectors @ c.note_vectors[q]
        return {"emb": emb, "chunk": chunk, "bm25": bm25, "title": title, "aa": aa, "back": back,
                "nbr": self._neighbour_links(q, emb, exclude_links), "_own": own, "_shared": shared, "_stats": stats}

    def _keyword_hits(self, text: str):
        """FTS5 hits for the note's keywords, on vaults small enough to search exactly.

        FTS5 scores every chunk that matches any keyword (about 15 microseconds each), and a note's
        40 keywords match most chunks of a large vault: 600 ms per query at 100,000 notes against
        20 ms for everything else (bench/RESULTS.md). Large vaults rank without the keyword evidence.
        """
        if not self.weights.get("bm25") or not self.corpus.exact:
            return []
        return self.corpus.store.fts_search(" ".join(keywords(text)), 200, match_any=True)

    def _best_sections(self, q: int, own: np.ndarray) -> tuple[np.ndarray, bool]:
        """Per note, the best cosine between one of its sections and one of `own` (note q's centred
        section vectors).

        Exact index: a scan of every section. Inverted file: the nearest sections found for each of
        `own`; notes with none found get the lowest score found (they rank below every note found),
        and the component is standardised with the statistics of a sample (Corpus.sample_stats),
        not over these mostly filled-in values. Returns (scores, whether every note's are exact).
        """
        c = self.corpus
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
            best_by_vid = (own @ _centre_on(c.store.gather_vectors(vids), c.chunk_mean).T).max(axis=0)
            which, rows = c.rows_using(vids)
            best = best_by_vid[which]
            others = c.chunk_note[rows] != q  # q's own sections say nothing about where the others stop
            if others.any():
                chunk[:] = best[others].min()
        np.maximum.at(chunk, c.chunk_note[rows], best)
        return chunk, c.chunk_vectors is not None or len(np.unique(c.chunk_note[rows])) == len(c)

    def _neighbour_links(self, q: int, emb: np.ndarray, exclude_links: set[str]) -> np.ndarray:
        """Notes that q's closest notes link to, weighted by closeness: notes about the same thing
        tend to cite the same notes, which carries link evidence to a note that has no links yet."""
        c = self.corpus
        scores = np.zeros(len(c))
        for j in [j for j in top_indices(emb, NEIGHBOURS + 1) if j != q][:NEIGHBOURS]:
            weight = max(float(emb[j]), 0.0)
            for target in c.graph.outlinks(c.paths[j]) - exclude_links:
                t = c.index.get(target)
                if t is not None:
                    scores[t] += weight
        return scores

    def _text_of(self, q: int) -> str:
        return "\n".join(chunk.text for chunk in self.corpus.store.chunks_of(self.corpus.paths[q]))

    def _mentioned(self, text: str) -> set[int]:
        """Notes whose title or alias appears in the text as a run of whole words."""
        words = normalise_title(text).split()
        found: set[int] = set()
        index, longest = self.corpus.title_index, self.corpus.title_words
        for start, word in enumerate(words):
            # Only runs that start like some title can be one, and no longer than the longest such title.
            for size in range(1, longest.get(word, 0) + 1):
                hit = index.get(" ".join(words[start:start + size]))
                if hit:
                    found.update(hit)
        return found

    def rank(self, path: str, k: int = 10, exclude: set[str] = frozenset(), include_private: bool = False,
             mask_links: bool = False) -> list[Suggestion]:
        """The k notes most related to `path`, best first.

        Excluded: the note itself, templates, notes it already links to, `exclude` (rejected links),
        private notes unless asked for. `mask_links` also hides the note's own links from the graph
        evidence (used when calibrating on held-out links).
        """
        c = self.corpus
        q = c.index.get(path)
        if q is None:
            return []
        linked = c.graph.outlinks(path)
        parts = self.components(q, exclude_links=linked if mask_links else set())
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
                passage = _passage(chunk.text, has_context_line=bool(chunk.heading_path))
                # Link to the section only when it clearly stands out from the rest of the note.
                if chunk.heading and theirs.size > 1 and per_chunk.max() - np.median(per_chunk) > 0.08:
                    heading = chunk.heading
                if chunk.heading:
                    why.append(f"section '{chunk.heading}' matches")
        shared = parts["_shared"].get(j, 0)
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


def _passage(text: str, has_context_line: bool) -> str:
    """The chunk text without its heading-path line, cut at a word boundary."""
    parts = text.split("\n\n", 1)
    body = parts[1] if has_context_line and len(parts) == 2 else text
    body = " ".join(body.split())
    if len(body) <= PASSAGE_CHARS:
        return body
    return body[:PASSAGE_CHARS].rsplit(" ", 1)[0] + "…"


# ------------------------------------------------------------------ per-vault calibration

CALIBRATION_QUERIES = 120
MIN_CALIBRATION_QUERIES = 20
CALIBRATION_POOL = 200
_MULTIPLIERS = (0.0, 0.5, 1.5, 2.0)
_LINK_SPANS = re.compile(r"!?\[\[[^\[\]\n]*\]\]|!?\[[^\]\n]*\]\([^)\n]*\)")


@dataclass(frozen=True)
class Calibration:
    weights: dict
    queries: int
    default_score: float  # recall@10 + MRR/2 of the default weights on the held-out links
    calibrated_score: float


def _evaluate(samples: list, weights: dict, k: int = 10) -> float:
    """recall@k + MRR/2 over samples of (z-scored components restricted to a pool, gold mask)."""
    total = 0.0
    for z, gold in samples:
        fused = sum(weights.get(name, 0.0) * z[name] for name in z)
        top = np.argsort(-fused, kind="stable")[:k]
        hits = gold[top]
        total += hits.sum() / max(gold.sum(), 1) + 0.5 * next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    return total / max(len(samples), 1)


def _calibration_sample(relater: Relater, path: str, body: str) -> tuple[dict, np.ndarray] | None:
    """One held-out query: the note's links are hidden from every component, then scored like a query."""
    c = relater.corpus
    q = c.index[path]
    gold_paths = c.graph.outlinks(path)
    masked = _LINK_SPANS.sub(" ", body)
    parts = relater.components(q, exclude_links=gold_paths, text=masked)
    candidates = ~c.template
    candidates[q] = False
    z = standardised(parts, candidates)
    pool = set()
    for name in COMPONENTS:
        ranked = np.where(candidates, z[name], -np.inf)
        pool.update(top_indices(ranked, CALIBRATION_POOL).tolist())
    pool = np.array(sorted(j for j in pool if candidates[j]))
    gold = np.array([c.paths[j] in gold_paths for j in pool])
    if not gold.any():
        return None
    return {name: z[name][pool] for name in COMPONENTS}, gold


def calibrate(relater: Relater, read_body, prior: dict | None = None, seed: int = 0) -> Calibration | None:
    """Weights chosen on the vault's own links: hold each sampled note's links out, rank, keep what
    finds them best. Shrunk half-way to the defaults so a small or odd sample cannot run away."""
    c = relater.corpus
    eligible = [p for i, p in enumerate(c.paths) if not c.template[i] and len(c.graph.outlinks(p)) >= 3]
    if len(eligible) < MIN_CALIBRATION_QUERIES:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(CALIBRATION_QUERIES, len(eligible)), replace=False).tolist())
    samples = []
    for path in chosen:
        body = read_body(path)
        sample = _calibration_sample(relater, path, body) if body is not None else None
        if sample is not None:
            samples.append(sample)
    if len(samples) < MIN_CALIBRATION_QUERIES:
        return None
    prior = dict(prior or DEFAULT_WEIGHTS)
    weights = dict(prior)
    best = default_score = _evaluate(samples, weights)
    for _ in range(2):
        for name in COMPONENTS:
            if name == "emb":
                continue  # the scale anchor
            for multiplier in _MULTIPLIERS:
                trial = dict(weights, **{name: round(max(weights[name], 0.05) * multiplier, 4)})
                score = _evaluate(samples, trial)
                if score > best + 1e-4:
                    best, weights = score, trial
    shrunk = {name: round((prior[name] + weights[name]) / 2, 4) for name in COMPONENTS}
    return Calibration(shrunk, len(samples), default_score, _evaluate(samples, shrunk))


def weights_for(relater: Relater, store: Store, mode: str, configured: dict, read_body) -> dict:
    """The fusion weights for this vault: the configured ones, or ("auto") calibrated from them on the
    vault's own links and cached until the vault has changed by a tenth."""
    if mode != "auto":
        return dict(configured)
    c = relater.corpus
    links = c.graph.graph.number_of_edges()
    key = json.dumps(configured, sort_keys=True)
    cached = store.get_setting("relate.calibration")
    if cached:
        data = json.loads(cached)
        fresh = abs(data["notes"] - len(c)) <= 0.1 * data["notes"] and abs(data["links"] - links) <= 0.1 * max(data["links"], 1)
        if fresh and data.get("prior") == key:
            return data["weights"] or dict(configured)
    result = calibrate(relater, read_body, prior=configured)
    weights = result.weights if result else None
    store.put_setting("relate.calibration", json.dumps({
        "notes": len(c), "links": links, "prior": key, "weights": weights,
        "queries": result.queries if result else 0,
        "default_score": result.default_score if result else None,
        "calibrated_score": result.calibrated_score if result else None,
    }))
    if result:
        log.info("calibrated relatedness weights on %d held-out notes: %s", result.queries, weights)
    else:
        log.info("too few linked notes to calibrate; using the configured weights")
    return weights or dict(configured)
