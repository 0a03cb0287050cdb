"""Related notes: semantic, keyword, title and link evidence fused into one ranking, each suggestion with its why.

Every component is computed for every candidate note at once (numpy over the whole vault),
z-normalised per query so that components on different scales can be added, and combined with
weights that are settings (or calibrated per vault by `calibrate`).
"""

from __future__ import annotations

import re
from collections import Counter
import json
import logging
from dataclasses import dataclass, field

import numpy as np

from .graph import LinkGraph
from .store import Store

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
        # Centred on the vault's mean: MiniLM vectors share a large common direction, and removing it
        # makes cosine measure what sets a note apart (+0.01 to +0.02 recall@10 on the benchmark).
        self.note_vectors = _centred(note_vectors)
        chunk_ids, note_ids, chunk_vectors = store.chunk_matrix()
        path_by_id = store.note_path_by_id()
        self.chunk_ids = chunk_ids
        self.chunk_note = np.array([self.index.get(path_by_id[int(i)], -1) for i in note_ids], dtype=np.int64)
        self.chunk_vectors = _centred(chunk_vectors)
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


def _centred(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return vectors
    shifted = vectors - vectors.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(shifted, axis=1, keepdims=True)
    return (shifted / np.maximum(norms, 1e-9)).astype(np.float32)


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

    def components(self, q: int, exclude_links: set[str] = frozenset(), text: str | None = None) -> dict[str, np.ndarray]:
        """Raw evidence for every note of the corpus about note q.

        `exclude_links` are hidden from the graph evidence and `text` replaces the note's text for the
        keyword and title evidence: calibration uses both to predict a note's links without seeing them.
        """
        c = self.corpus
        n = len(c)
        own = c.chunk_note == q
        sims = c.chunk_vectors[own] @ c.chunk_vectors.T if own.any() else np.zeros((1, len(c.chunk_note)))
        best_chunk_sim = sims.max(axis=0)
        chunk = np.full(n, -1.0)
        np.maximum.at(chunk, c.chunk_note[c.chunk_note >= 0], best_chunk_sim[c.chunk_note >= 0])
        text = self._text_of(q) if text is None else text
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
        emb = c.note_vectors @ c.note_vectors[q]
        return {"emb": emb, "chunk": chunk, "bm25": bm25, "title": title, "aa": aa, "back": back,
                "nbr": self._neighbour_links(q, emb, exclude_links), "_chunk_sims": sims, "_own": own}

    def _neighbour_links(self, q: int, emb: np.ndarray, exclude_links: set[str]) -> np.ndarray:
        """Notes that q's closest notes link to, weighted by closeness: notes about the same thing
        tend to cite the same notes, which carries link evidence to a note that has no links yet."""
        c = self.corpus
        scores = np.zeros(len(c))
        similar = emb.copy()
        similar[q] = -np.inf
        for j in np.argsort(-similar)[:NEIGHBOURS]:
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
        total = self.fused(q, parts, candidates)
        order = diversify(total, c.note_vectors, k)
        return [self._suggestion(q, int(j), float(total[j]), parts) for j in order if np.isfinite(total[j])]

    def fused(self, q: int, parts: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
        total = np.zeros(len(self.corpus))
        for name in COMPONENTS:
            total += self.weights.get(name, 0.0) * zscore(parts[name], candidates)
        total[~candidates] = -np.inf
        return total

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


def diversify(scores: np.ndarray, vectors: np.ndarray, k: int) -> list[int]:
    """Greedy maximal-marginal-relevance pick over the best few: ten near-copies make a poor list."""
    finite = np.flatnonzero(np.isfinite(scores))
    pool = finite[np.argsort(-scores[finite], kind="stable")][:DIVERSITY_POOL].tolist()
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
    z = {name: zscore(parts[name], candidates) for name in COMPONENTS}
    pool = set()
    for name in COMPONENTS:
        ranked = np.where(candidates, z[name], -np.inf)
        pool.update(np.argsort(-ranked)[:CALIBRATION_POOL].tolist())
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
