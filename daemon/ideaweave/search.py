"""Search: "I face this problem: which of my notes are about it?"

Notes are scored, not chunks. Candidates come from the nearest sections (vectors) and from keywords
(FTS5); every candidate is then scored on the same evidence: its best section, its whole-note vector,
its opening section, keyword relevance, whether the query names its title, and (taken away) how near
the note sits to the vault's centre. The components are standardised over the candidates and added with
weights, as `related` fuses its evidence; each hit carries its best passage, the heading it sits under,
and why it was found.

"More like this passage" goes through the same scorer: the passage (a selection, or a note's section)
stands in for the query, its most frequent content words for the query's keywords, and the note it
comes from is left out of the answer.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from .chunking import passage as chunk_passage
from .corpus import STOPWORDS, Corpus, normalise_title
from .embedding import Embedder
from .relate import keywords as content_words
from .relate import zscore
from .store import Store
from .vectors import row_norms

# Nearest sections and keyword hits fetched to find candidates. 100 rather than 200: every candidate's
# sections are read and scored, and on the search ablation the notes found first come from well inside
# the first 100 (MRR@10 0.733 with 200, 0.732 with 100, 0.731 with 50), at half the reading.
POOL = 100
# Measured on the search ablation (bench/RESULTS.md): the best section and the opening of a note carry most
# of the signal, keywords break the ties that meaning alone leaves. The whole-note vector and a named
# title add little on the benchmark vault (an encyclopedia, whose notes open with their definition) but
# keep small weights for vaults whose notes do not.
#
# "central" counts against a note: an overview note (a field's main page, a long note touching everything
# in it) lies near the vault's centre and so near every query about its field, and wins over the note that
# is about the query itself (hubness). Taking half a standard deviation of that back: MRR@10 0.732 -> 0.750,
# 22 queries up and 7 down; chosen on either half of the queries, it scores 0.758 / 0.730 on the other
# against 0.737 / 0.727 as before (bench/RESULTS.md).
SEARCH_WEIGHTS = {"section": 1.0, "lead": 0.75, "note": 0.25, "keywords": 0.5, "title": 0.1, "central": -0.5}
# A passage ("more like this") is not a question about one thing: the notes it links to are often its
# field's overview notes, and they are fair answers. With centrality counted against them, the passage
# benchmark's recall@10 fell from 0.659 to 0.647 (MRR@10 0.433 -> 0.430), so passages leave it out.
PASSAGE_WEIGHTS = {name: weight for name, weight in SEARCH_WEIGHTS.items() if name != "central"}
# Notes whose whole-note vectors make the vault's centre. The centre is a property of the whole vault and
# moves slowly: on the search ablation, the centre of 50 notes ranks as that of all 386 does. A fixed
# sample keeps its cost after an edit the same at any vault size.
CENTRE_NOTES = 500
# Words that make a question or a request, not its subject ("what is", "how do I").
_QUESTION_WORDS = frozenset("what whats which who whom whose why how when where does do did is are was were can could "
                            "should would will i me my we our you your the a an of about explain tell find notes note".split())
# Nor does the keyword search match stopwords: their weight in BM25 is next to nothing, but FTS5 scores
# every section that holds one, and a stopword is in nearly all of them. Measured on the search
# ablation's 200 queries: MRR@10 0.736 -> 0.733 (one query); at 10,000 notes the keyword query's p95
# fell by half or more (bench/RESULTS.md).
_NOT_SUBJECT = _QUESTION_WORDS | STOPWORDS


@dataclass(frozen=True)
class SearchHit:
    path: str
    title: str
    score: float
    heading: str | None
    passage: str
    why: str = ""

    def as_json(self) -> dict:
        return {"path": self.path, "title": self.title, "score": round(self.score, 5),
                "heading": self.heading, "passage": self.passage, "why": self.why}


@dataclass
class NoteEvidence:
    """The components of every candidate note for one query (raw values, candidates in `paths` order)."""

    paths: list[str]
    titles: list[str]
    parts: dict[str, np.ndarray]
    best_chunk: list[int]  # the vector id of each candidate's best section

    def fused(self, weights: dict[str, float]) -> np.ndarray:
        every = np.ones(len(self.paths), dtype=bool)
        total = np.zeros(len(self.paths))
        for name, weight in weights.items():
            total += weight * zscore(self.parts[name], every)
        return total

    def ranked(self, weights: dict[str, float], k: int) -> list[str]:
        order = np.argsort(-self.fused(weights), kind="stable")[:k]
        return [self.paths[i] for i in order]


@dataclass(frozen=True)
class Query:
    """What the note scorer searches for: a vector, the words keywords must match, and notes left out."""

    text: str  # a question, or a passage
    vector: np.ndarray
    words: str  # what FTS5 matches
    match_any: bool = False  # any word of `words` (a passage's content words), not all of them
    exclude: frozenset[str] = frozenset()
    # The keyword hits of `words`, already asked for while the query was embedded (`question_query`).
    keyword_hits: Future | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Passage:
    """"More like this": text to search by, and the note it comes from (never part of the answer)."""

    text: str
    source: str | None = None
    heading: str | None = None
    # A note's sections as the index already holds them: searched by the mean of their vectors, which
    # covers the whole section where embedding its text would cut it at the model's context.
    vector_ids: tuple[int, ...] = ()


def subject_words(query: str) -> str:
    """The query without the words that only make it a question: what the keyword search should match."""
    words = re.findall(r"[\w'-]+", query)
    return " ".join(w for w in words if w.lower().strip("'-") not in _NOT_SUBJECT)


def question_query(embedder: Embedder, query: str, store: Store | None = None) -> Query | None:
    """A typed question or problem: its meaning, and its subject words, every one of which keywords must match.

    With `store`, its keyword search runs on the store's search thread while the query is embedded:
    llama.cpp and SQLite both let go of Python's lock, so on a machine with a free core a query waits for
    the slower of the two, not for both (search as you type: one query per pause in typing)."""
    query = query.strip()
    if not query:
        return None
    words = subject_words(query)
    keyword_hits = None
    if store is not None and words:
        keyword_hits = store.fts_search_async(words, POOL, else_any=True)  # as `_keyword_hits` asks
    return Query(query, _query_vectors.embed(embedder, query), words, keyword_hits=keyword_hits)


class QueryVectors:
    """The vectors of the last queries embedded, by model and text: a user backspacing over a typed
    query asks again for prefixes already embedded, and the model's answer for a text never changes."""

    def __init__(self, size: int = 256):
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.embedded = 0  # texts the model was asked for

    def embed(self, embedder: Embedder, text: str) -> np.ndarray:
        key = (embedder.model_id, text)
        with self._lock:
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return self._vectors[key]
        vector = embedder.embed([text])[0]
        vector.setflags(write=False)  # shared by every query of this text
        with self._lock:
            self.embedded += 1
            self._vectors[key] = vector
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector


_query_vectors = QueryVectors()


def passage_query(store: Store, embedder: Embedder, passage: Passage) -> Query | None:
    """A passage: its meaning, and its most frequent content words, any of which may match (a passage's
    words are too many for every one to be in one note)."""
    text = passage.text.strip()
    if not text:
        return None
    if passage.vector_ids:
        vectors = store.gather_vectors(list(passage.vector_ids))
        vector = (vectors / np.maximum(row_norms(vectors), 1e-9)[:, None]).mean(axis=0)
    else:
        vector = embedder.embed([text])[0]
    exclude = frozenset([passage.source]) if passage.source else frozenset()
    return Query(text, vector, " ".join(content_words(text)), match_any=True, exclude=exclude)


def note_components(store: Store, query: Query, include_private: bool = False,
                    corpus: Corpus | None = None) -> NoteEvidence | None:
    """Evidence for the notes that the query's nearest sections or its keywords point at.

    `corpus`: the daemon's ranking snapshot. While it is current, the candidates' titles, flags and
    sections are taken from it instead of read from the store: the same values, without three reads
    per query (what search-as-you-type pays for every key)."""
    q = query.vector
    _scores, vector_ids = store.search_vectors(q, POOL)
    nearest = np.asarray([int(v) for v in np.atleast_1d(vector_ids) if v >= 0], dtype=np.int64)
    keywords = _keyword_hits(store, query)
    keyword_paths = {h.note_path for h in keywords}
    snapshot = corpus if corpus is not None and corpus.current else None
    if snapshot is not None:
        table = _snapshot_table(snapshot, nearest, keyword_paths, query.exclude, include_private)
    else:
        table = _store_table(store, nearest, keyword_paths, query.exclude, include_private)
    if table is None:
        return None
    paths, titles, section_start, section_vids = table
    index = {p: i for i, p in enumerate(paths)}
    section, best_chunk, lead, whole, central = _section_evidence(store, q, section_start, section_vids,
                                                                  vault_centre(store, snapshot))
    keyword = np.zeros(len(paths))
    for hit in keywords:
        if hit.note_path in index:
            keyword[index[hit.note_path]] = max(keyword[index[hit.note_path]], hit.score)
    named = np.array([_names_title(query.text, t) for t in titles], dtype=float)
    parts = {"section": section, "note": whole, "lead": lead, "keywords": keyword, "title": named, "central": central}
    return NoteEvidence(paths, titles, parts, best_chunk)


def _keyword_hits(store: Store, query: Query) -> list:
    """Keyword hits: every subject word matching, else (nothing found) any of them. A query whose words
    are all stopwords or question words has no subject to match: FTS5 would rank nearly every section
    (75 ms at 10,000 notes for "The") for no evidence."""
    # The store's search thread also runs a sync slice's prefetched keyword searches, in order: a query still
    # waiting there is run here instead (measured on arbital-math behind a 16-note slice: 87 ms waited).
    if query.keyword_hits is not None and not query.keyword_hits.cancel():
        return query.keyword_hits.result()
    if not query.words:
        return []
    keywords = store.fts_search(query.words, POOL, match_any=query.match_any)
    if not keywords and not query.match_any:
        keywords = store.fts_search(query.words, POOL, match_any=True)
    return keywords


def _visible(flags: tuple, include_private: bool) -> bool:
    _title, template, private, _aliases = flags
    return not template and (include_private or not private)


def _store_table(store: Store, nearest: np.ndarray, keyword_paths: set[str], exclude: frozenset[str],
                 include_private: bool):
    """(paths, titles, section_start, section_vids) of the candidate notes, read from the store: the
    sections of paths[i] are section_vids[section_start[i]:section_start[i + 1]], in order."""
    candidates = ({c.note_path for c in store.chunks_for_vectors(nearest.tolist())} | keyword_paths) - exclude
    flags = store.note_flags(only=candidates)  # (title, is_template, private, aliases) without parsing frontmatter
    paths = sorted(p for p, f in flags.items() if _visible(f, include_private))
    if not paths:
        return None
    return (paths, [flags[p][0] for p in paths]) + _store_sections(store, paths)


def _store_sections(store: Store, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(section_start, section_vids) of `paths`, read from the store: the embedded sections of paths[i]
    are section_vids[section_start[i]:section_start[i + 1]], in order."""
    _ordinals, note_ids, vector_ids = store.chunk_table(only=paths)  # by stored path (a pseudonym for secure notes)
    index = {p: i for i, p in enumerate(paths)}
    path_of = store.note_path_by_id(only=paths)
    # -1: a note deleted between the reads
    owner = np.fromiter((index.get(path_of.get(n, ""), -1) for n in note_ids.tolist()), dtype=np.int64, count=len(note_ids))
    order = np.argsort(owner, kind="stable")[np.count_nonzero(owner < 0):]
    start = np.searchsorted(owner[order], np.arange(len(paths) + 1))
    return start, vector_ids[order]


def _snapshot_table(corpus: Corpus, nearest: np.ndarray, keyword_paths: set[str], exclude: frozenset[str],
                    include_private: bool):
    """As `_store_table`, from a current snapshot. A note it does not hold has no embedded section (the
    snapshot holds every note that has one): only its title and flags are read from the store."""
    _which, rows = corpus.rows_using(nearest)
    candidates = ({corpus.paths[q] for q in corpus.chunk_note[rows].tolist()} | keyword_paths) - exclude
    unknown = [p for p in candidates if p not in corpus.index]
    flags = corpus.store.note_flags(only=unknown) if unknown else {}
    flags.update((p, corpus.notes[corpus.index[p]]) for p in candidates if p in corpus.index)
    paths = sorted(p for p, f in flags.items() if _visible(f, include_private))
    if not paths:
        return None
    return (paths, [flags[p][0] for p in paths]) + _snapshot_sections(corpus, paths)


def _snapshot_sections(corpus: Corpus, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """As `_store_sections`, from a current snapshot, which holds the same sections in the same order."""
    notes = np.array([corpus.index.get(p, -1) for p in paths], dtype=np.int64)
    counts = np.where(notes >= 0, corpus.chunk_start[notes + 1] - corpus.chunk_start[notes], 0)
    start = np.r_[0, np.cumsum(counts)]
    firsts = np.repeat(np.where(notes >= 0, corpus.chunk_start[notes], 0) - start[:-1], counts)
    rows = np.arange(start[-1]) + firsts
    return start, corpus.chunk_vid[rows]


# The vault's centre for each open store: the store's `sections_version` it was last found current at,
# the sample's sections it was computed from, and the centre.
_centres: weakref.WeakKeyDictionary[Store, tuple[int, bytes, np.ndarray]] = weakref.WeakKeyDictionary()


def vault_centre(store: Store, corpus: Corpus | None = None) -> np.ndarray:
    """The vault's centre: the mean whole-note vector of its first CENTRE_NOTES notes, each note's vector the
    normalised mean of its sections' vectors (as `Store.note_means` makes it). Computed again only once the
    store's sections have changed, from the sections of a current snapshot (`corpus`: no read of the
    store's tables) or else of the store: the same sections in the same order, so search through the store
    (the CLI) and through the daemon's snapshot (the API) give one answer.

    Not the snapshot's `note_mean`: that is the mean at its last full load, kept through `updated()` so
    that its vectors stay comparable, which the store alone cannot tell after an edit."""
    version = store.sections_version  # before reading: a change during the read is seen by the next search
    cached = _centres.get(store)
    if cached is not None and cached[0] == version:
        return cached[2]
    sample = sorted(store.oldest_note_paths(CENTRE_NOTES))
    if corpus is not None and corpus.sections_version == version:
        start, vector_ids = _snapshot_sections(corpus, sample)
    else:
        start, vector_ids = _store_sections(store, sample)
    # An edit outside the sample leaves its sections as they were; a vector id is never given to another
    # text (nor to another model's vector), so the same ids are the same vectors and the same centre.
    sections = start.tobytes() + vector_ids.tobytes()
    if cached is not None and cached[1] == sections:
        _centres[store] = (version, sections, cached[2])
        return cached[2]
    counts = np.diff(start)
    has = np.flatnonzero(counts > 0)  # a note without an embedded section has no whole-note vector
    if not len(has):
        centre = np.zeros(store.dim, np.float32)
    else:
        vectors = store.gather_vectors(vector_ids)
        whole = np.add.reduceat(vectors, start[has], axis=0) / counts[has, None]
        centre = (whole / np.maximum(row_norms(whole), 1e-12)[:, None]).mean(axis=0)
    _centres[store] = (version, sections, centre)
    return centre


def _section_evidence(store: Store, q: np.ndarray, start: np.ndarray, vector_ids: np.ndarray, centre: np.ndarray):
    """For each candidate, over all its sections: the best section's cosine and vector id, the first
    section's cosine, the cosine of the note's mean section vector (the whole-note vector, as
    `Store.note_means` makes it, from the vectors already gathered here), and that vector's cosine to the
    vault's centre (how central the note is). -1 for a note without sections (0 for its centrality)."""
    notes = len(start) - 1
    best = np.full(notes, -1.0)
    best_vid = [-1] * notes
    lead = np.full(notes, -1.0)
    whole = np.full(notes, -1.0)
    central = np.zeros(notes)
    if not len(vector_ids):
        return best, best_vid, lead, whole, central
    vectors = store.gather_vectors(vector_ids)
    unit_q = q / max(float(np.linalg.norm(q)), 1e-9)
    raw = vectors @ unit_q
    sims = raw / np.maximum(row_norms(vectors), 1e-9)
    counts = np.diff(start)
    has = np.flatnonzero(counts > 0)  # reduceat needs non-empty runs
    starts, counts = start[has], counts[has]
    top = np.maximum.reduceat(sims, starts)
    group = np.repeat(np.arange(len(starts)), counts)
    _groups, first_top = np.unique(group[sims == top[group]], return_index=True)
    top_at = np.flatnonzero(sims == top[group])[first_top]  # each note's first section with its best cosine
    mean = np.add.reduceat(vectors, starts, axis=0) / counts[:, None]
    mean_norms = np.maximum(row_norms(mean), 1e-9)
    note_cosine = np.add.reduceat(raw, starts) / counts / mean_norms
    best[has] = sims[top_at]
    lead[has] = sims[starts]
    whole[has] = note_cosine
    central[has] = (mean @ centre) / mean_norms
    for i, vid in zip(has.tolist(), vector_ids[top_at].tolist()):
        best_vid[i] = vid
    return best, best_vid, lead, whole, central


def _names_title(query: str, title: str) -> bool:
    """The query names the note's title (all of its words, in order), as a title of a few words would be named."""
    key = normalise_title(title)
    if len(key) < 3 or key in STOPWORDS:
        return False
    return f" {key} " in f" {normalise_title(query)} "


def search(store: Store, embedder: Embedder, query: str, k: int = 20, include_private: bool = False,
           weights: dict[str, float] | None = None, corpus: Corpus | None = None) -> list[SearchHit]:
    """The k notes most about `query`, best first, each with its best passage and why. `corpus`: the
    daemon's ranking snapshot, read instead of the store while it is current (the answer is the same)."""
    return ranked_hits(store, question_query(embedder, query, store), k, include_private, weights, corpus)


def more_like(store: Store, embedder: Embedder, passage: Passage, k: int = 20,
              include_private: bool = False, corpus: Corpus | None = None) -> list[SearchHit]:
    """The k other notes most about `passage` ("what else have I written about this?"), best first."""
    return ranked_hits(store, passage_query(store, embedder, passage), k, include_private, PASSAGE_WEIGHTS, corpus)


def ranked_hits(store: Store, query: Query | None, k: int, include_private: bool = False,
                weights: dict[str, float] | None = None, corpus: Corpus | None = None) -> list[SearchHit]:
    evidence = note_components(store, query, include_private, corpus) if query is not None else None
    if evidence is None:
        return []
    total = evidence.fused(weights or SEARCH_WEIGHTS)
    order = np.argsort(-total, kind="stable")[:k]
    # Keyed by note too: the same text in two notes shares one vector.
    chunks = {(c.vector_id, c.note_path): c
              for c in store.chunks_for_vectors([evidence.best_chunk[i] for i in order if evidence.best_chunk[i] >= 0])}
    hits = []
    for i in order:
        path = evidence.paths[i]
        chunk = chunks.get((evidence.best_chunk[i], path))
        heading = (chunk.heading or None) if chunk else None
        passage = chunk_passage(chunk.text, chunk.heading_path) if chunk else ""
        hits.append(SearchHit(path, evidence.titles[i], float(total[i]), heading, passage, _why(evidence, i, heading)))
    return hits


def note_passage(store: Store, path: str, heading: str | None = None) -> Passage | None:
    """A note's text, or the section under `heading` (with its subsections), as a passage to search by.

    `heading` is matched as Obsidian resolves [[Note#Heading]]: case and spacing aside; "A#B" names
    heading B under heading A. None when the note is not indexed or has no such heading.
    """
    chunks = store.chunks_of(path)
    if heading:
        wanted = [_heading_key(h) for h in heading.split("#") if h.strip()]
        chunks = [c for c in chunks if _contains_in_order([_heading_key(h) for h in c.heading_path], wanted)]
    if not chunks:
        return None
    vector_ids = tuple(c.vector_id for c in chunks if c.vector_id is not None)
    return Passage("\n\n".join(c.text for c in chunks), path, heading or None,
                   vector_ids if len(vector_ids) == len(chunks) else ())


def _heading_key(heading: str) -> str:
    return " ".join(heading.split()).casefold()


def _contains_in_order(path: list[str], wanted: list[str]) -> bool:
    rest = iter(path)
    return all(any(h == w for h in rest) for w in wanted)


def _why(evidence: NoteEvidence, i: int, heading: str | None) -> str:
    reasons = [f"section '{heading}' matches" if heading else "its text matches"]
    if evidence.parts["title"][i]:
        reasons.append("its title is named")
    if evidence.parts["keywords"][i] > 0:
        reasons.append("shares keywords")
    return "; ".join(reasons)
