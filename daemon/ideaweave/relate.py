"""Related notes: semantic, keyword, title and link evidence fused into one ranking, each suggestion with its why.

Every component is computed for every candidate note at once (numpy over the whole vault),
z-normalised per query so that components on different scales can be added, and combined with
weights that are settings (or calibrated per vault by `calibrate`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .graph import LinkGraph
from .store import Store

COMPONENTS = ("emb", "chunk", "bm25", "title", "aa", "back")
# The fallback when a vault has too few links to calibrate on; see bench/RESULTS.md.
DEFAULT_WEIGHTS = {"emb": 1.0, "chunk": 0.6, "bm25": 0.5, "title": 0.3, "aa": 0.25, "back": 0.2}
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


def zscore(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Standardise over the candidates only; a component constant over them contributes nothing."""
    chosen = values[mask]
    if chosen.size == 0:
        return np.zeros_like(values)
    std = chosen.std()
    if std < 1e-9:
        return np.zeros_like(values)
    return (values - chosen.mean()) / std


class Corpus:
    """An in-memory snapshot of what ranking needs, loaded from the store in a few vectorised reads."""

    def __init__(self, store: Store):
        self.store = store
        notes = [n for n in store.notes()]
        paths, note_vectors = store.note_matrix()
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}
        by_path = {n.path: n for n in notes}
        self.titles = [by_path[p].title for p in paths]
        self.template = np.array([by_path[p].is_template for p in paths], dtype=bool)
        self.private = np.array([by_path[p].private for p in paths], dtype=bool)
        self.note_vectors = note_vectors
        chunk_ids, note_ids, chunk_vectors = store.chunk_matrix()
        path_by_id = store.note_path_by_id()
        self.chunk_ids = chunk_ids
        self.chunk_note = np.array([self.index.get(path_by_id[int(i)], -1) for i in note_ids], dtype=np.int64)
        self.chunk_vectors = chunk_vectors
        self.graph = LinkGraph(store.links(), nodes=paths)
        self.title_index: dict[str, list[int]] = {}
        for i, note in enumerate(by_path[p] for p in paths):
            names = [note.title] + [a for a in _aliases(note.frontmatter)]
            for name in names:
                key = normalise_title(name)
                if len(key) >= 3 and key not in _STOPWORDS:
                    self.title_index.setdefault(key, []).append(i)

    def __len__(self) -> int:
        return len(self.paths)


def _aliases(frontmatter: dict) -> list[str]:
    value = frontmatter.get("aliases", frontmatter.get("alias", []))
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


class Relater:
    """Ranks the notes related to a note of the corpus."""

    def __init__(self, corpus: Corpus, weights: dict[str, float] | None = None):
        self.corpus = corpus
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)

    def components(self, q: int, exclude_links: set[str] = frozenset()) -> dict[str, np.ndarray]:
        """Raw evidence for every note of the corpus about note q."""
        c = self.corpus
        n = len(c)
        own = c.chunk_note == q
        sims = c.chunk_vectors[own] @ c.chunk_vectors.T if own.any() else np.zeros((1, len(c.chunk_note)))
        best_chunk_sim = sims.max(axis=0)
        chunk = np.full(n, -1.0)
        np.maximum.at(chunk, c.chunk_note[c.chunk_note >= 0], best_chunk_sim[c.chunk_note >= 0])
        text = self._text_of(q)
        bm25 = np.zeros(n)
        for hit in c.store.fts_search(" ".join(keywords(text)), 200, match_any=True):
            j = c.index.get(hit.note_path)
            if j is not None:
                bm25[j] = max(bm25[j], hit.score)
        title = np.zeros(n)
        for j in self._mentioned(text):
            title[j] = 1.0
        aa = np.zeros(n)
        for path, (score, _) in c.graph.adamic_adar(c.paths[q], exclude=set(exclude_links)).items():
            j = c.index.get(path)
            if j is not None:
                aa[j] = score
        back = np.zeros(n)
        for path in c.graph.backlinks(c.paths[q]) - set(exclude_links):
            j = c.index.get(path)
            if j is not None:
                back[j] = 1.0
        return {"emb": c.note_vectors @ c.note_vectors[q], "chunk": chunk, "bm25": bm25,
                "title": title, "aa": aa, "back": back, "_chunk_sims": sims, "_own": own}

    def _text_of(self, q: int) -> str:
        return "\n".join(chunk.text for chunk in self.corpus.store.chunks_of(self.corpus.paths[q]))

    def _mentioned(self, text: str) -> set[int]:
        """Notes whose title or alias appears in the text as a run of whole words."""
        words = normalise_title(text).split()
        found: set[int] = set()
        index = self.corpus.title_index
        for size in range(1, 6):
            for start in range(len(words) - size + 1):
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
        total = np.zeros(len(c))
        normalised = {}
        for name in COMPONENTS:
            normalised[name] = zscore(parts[name], candidates)
            total += self.weights.get(name, 0.0) * normalised[name]
        total[~candidates] = -np.inf
        order = np.argsort(-total, kind="stable")[:k]
        return [self._suggestion(q, int(j), float(total[j]), parts) for j in order if np.isfinite(total[j])]

    def _suggestion(self, q: int, j: int, score: float, parts: dict) -> Suggestion:
        c = self.corpus
        path = c.paths[j]
        theirs = np.flatnonzero(c.chunk_note == j)
        heading, passage, why = None, "", []
        if theirs.size:
            sims = parts["_chunk_sims"][:, theirs]
            best = int(theirs[np.unravel_index(np.argmax(sims), sims.shape)[1]])
            per_chunk = sims.max(axis=0)
            chunk = self._chunk(path, int(c.chunk_ids[best]))
            if chunk is not None:
                passage = _passage(chunk.text, has_context_line=bool(chunk.heading_path))
                # Link to the section only when it clearly stands out from the rest of the note.
                if chunk.heading and theirs.size > 1 and per_chunk.max() - np.median(per_chunk) > 0.08:
                    heading = chunk.heading
                if chunk.heading:
                    why.append(f"section '{chunk.heading}' matches")
        shared = c.graph.adamic_adar(c.paths[q]).get(path, (0.0, 0))[1]
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

    def _chunk(self, path: str, chunk_id: int):
        for chunk in self.corpus.store.chunks_of(path):
            if chunk.id == chunk_id:
                return chunk
        return None


def _passage(text: str, has_context_line: bool) -> str:
    """The chunk text without its heading-path line, cut at a word boundary."""
    parts = text.split("\n\n", 1)
    body = parts[1] if has_context_line and len(parts) == 2 else text
    body = " ".join(body.split())
    if len(body) <= PASSAGE_CHARS:
        return body
    return body[:PASSAGE_CHARS].rsplit(" ", 1)[0] + "…"
