"""The vault's topics: what the notes are about, grouped, in two levels (a few broad topics, each split
into finer ones), each named and described from its own notes' words, without a language model.

Topics are communities (Leiden, seeded) of a graph that joins two kinds of evidence `related` ranks by:
each note's nearest notes by whole-note vector, weighted by their standardised similarity (the `emb`
evidence, standardised per note as `related` does), and the notes' own links. Each note asks only for
its nearest neighbours (exact for small vaults, an inverted file for large ones): nothing compares every
pair of notes. Levels come from the vault: level 0 is the partition that maximises modularity over the
whole graph; each level-0 topic is split again by the same method over its own notes, and stays whole
when no split of it is better.

Topics stay steady across edits: the last answer is kept, each note starts in its old topic and leaves it
only for a clearly better one, a new topic takes the id of the old one it shares most notes with, and a
topic whose notes barely changed keeps its name. When a partition found afresh is clearly better, the
vault has drifted and it is drawn again (ids still passed on by overlap).

`build_topics` decides, over plain data; `vault_topics` is the thin shell that reads what it needs.
Templates belong to no topic. A private note never names or describes a topic it shares with other notes."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from .corpus import STOPWORDS, WORD, Corpus
from .failures import NoteGuard
from .prose import sentences_of
from .vault import Skipped, VaultScanner
from .vectors import one_faiss_thread


NEIGHBOURS = 10  # nearest notes each note is joined to
# What a link between two notes adds to their edge, in the same units as the standardised similarity:
# about what a note's nearest neighbours score (z of 2 to 4), so a link counts as much as a close neighbour.
LINK_WEIGHT = 2.0
EXACT_NOTES = 20_000  # up to this many notes the nearest neighbours are found exactly
PAIRS_AT_ONCE = 50_000
PROBES = 12  # inverted-file lists scanned per note above EXACT_NOTES
MIN_SPLIT = 8  # a topic of fewer notes is not split into finer ones
SEED = 0  # Leiden visits nodes in a random order: one seed, one answer
# How much better (in links, as a share of the note's own weighted degree) another topic must hold a note
# before the note leaves the topic it had.
STICKINESS = 0.1
# A partition found afresh replaces the settled previous one when it is better by this much modularity: the
# vault has changed enough that its topics should be drawn again (ids still pass on by overlap).
REBUILD_GAIN = 0.02
SWEEPS = 20  # at most this many passes of moving notes from their previous topics
PHRASES = 3  # key phrases in a topic's name
NEIGHBOUR_TOPICS = 5
TITLE_REPEAT = 3  # a title's words count this many times: a title says what a note is about
NOTE_TEXT_CHARS = 4000  # text of each note read for its topic's key phrases
DESCRIPTION_MIN_WORDS = 6
DESCRIPTION_CHARS = 240
DESCRIBING_NOTES = 3  # the most central notes tried, in turn, for a describing sentence
BARELY_CHANGED = 0.1  # a topic that lost or gained at most this share of its notes keeps its words
UNNAMED = "private notes"
LAST_TOPICS = "topics.last"  # store setting: the last answer, which seeds the next  # the name of a topic that only private notes could name

_NOISE = re.compile(r"https?://\S+|\$\$.*?\$\$|\$[^$\n]*\$|\\[A-Za-z]+|```.*?```|`[^`\n]*`|<[^>\n]*>", re.DOTALL)


@dataclass(frozen=True)
class TopicInput:
    """What topics are made of: the notes (templates already left out), their centred unit vectors, and
    their links (pairs of indices into `paths`)."""

    paths: list[str]
    titles: list[str]
    vectors: np.ndarray
    links: list[tuple[int, int]]
    private: np.ndarray  # bool per note


@dataclass(frozen=True)
class Topic:
    id: str  # the same for the same notes at the same level
    level: int  # 0 is the broadest
    parent: str | None
    name: str  # its most distinctive key phrases
    phrases: tuple[str, ...]
    central: str | None  # its most central note that may speak for it (None: only private notes, or none)
    description: str  # one sentence, taken from its most central notes
    notes: tuple[str, ...]  # most central first
    neighbours: tuple[str, ...]  # ids of the topics of its level most joined to it, most first

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "level": self.level, "parent": self.parent,
                "notes": list(self.notes), "phrases": list(self.phrases), "central": self.central,
                "description": self.description, "neighbours": list(self.neighbours)}


# ------------------------------------------------------------------ the graph (pure)


def nearest_neighbours(vectors: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns): each note's k nearest other notes by cosine, as index pairs."""
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found = _exact_neighbours(vectors, k) if n <= EXACT_NOTES else _approximate_neighbours(vectors, k)
    rows = np.repeat(np.arange(n), found.shape[1])
    cols = found.ravel()
    keep = (cols >= 0) & (cols != rows)
    return rows[keep], cols[keep]


def _exact_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """Every note against every other, in faiss's blocked scan with a top-k heap (one partial sort of
    the whole row per note in numpy costs ten times as much)."""
    import faiss

    one_faiss_thread()  # topics are found in a worker thread, whose OpenMP default is every core
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k + 1)
    return found


def _approximate_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """An inverted file (faiss) over the note vectors: each note scans the PROBES lists nearest to it."""
    import faiss

    one_faiss_thread()  # training and search alike: a worker thread's OpenMP default is every core
    n, dim = vectors.shape
    # About 2 sqrt(n) lists trained on 20 notes each: training and search then cost about the same
    # (some 10 s each at 100,000 notes on one core).
    lists = int(2 * math.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = SEED
    index.cp.min_points_per_centroid = 20  # enough to place a list's centre; faiss would ask for 39
    sample = vectors[np.random.default_rng(SEED).choice(n, size=min(n, lists * 20), replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index.nprobe = PROBES
    _, found = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k + 1)
    return found


def standardised_similarity(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The cosine of each pair, standardised over each note's similarities to every note and averaged
    over the pair's two ends: `related`'s `emb` evidence, made symmetric.

    A note's mean and variance of similarity to all notes come from the vault's mean vector and second
    moment (v.m and v'Sv - (v.m)^2), exactly and without comparing the note with every other one."""
    mu, spread = similarity_spread(vectors, vectors.sum(axis=0), vectors.T @ vectors, len(vectors))
    return _standardised(vectors, rows, cols, mu, spread)


def similarity_spread(vectors: np.ndarray, total: np.ndarray, second: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of `vectors`' mean and spread of similarity to all `n` notes, from the notes' summed vectors
    `total` and summed outer products `second` (which an update keeps by adding and taking away)."""
    mean_vector = total / max(n, 1)
    mu = vectors @ mean_vector
    spread = np.sqrt(np.maximum(((vectors @ (second / max(n, 1))) * vectors).sum(axis=1) - mu ** 2, 1e-12))
    return mu, spread


def _standardised(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray, mu: np.ndarray, spread: np.ndarray) -> np.ndarray:
    cos = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), PAIRS_AT_ONCE):  # a million pairs' vectors at once would be 3 GB
        part = slice(start, start + PAIRS_AT_ONCE)
        cos[part] = np.einsum("ij,ij->i", vectors[rows[part]], vectors[cols[part]])
    return ((cos - mu[rows]) / spread[rows] + (cos - mu[cols]) / spread[cols]) / 2


def topic_graph(notes: TopicInput, k: int = NEIGHBOURS, link_weight: float = LINK_WEIGHT) -> nx.Graph:
    """Notes as nodes 0..n-1; an edge for each nearest neighbour and each link, weighted by their
    standardised similarity (when positive) plus `link_weight` when they are linked."""
    return graph_of_pairs(notes, *nearest_neighbours(notes.vectors, k), link_weight)


def graph_of_pairs(notes: TopicInput, rows: np.ndarray, cols: np.ndarray, link_weight: float = LINK_WEIGHT,
                   spread: tuple[np.ndarray, np.ndarray] | None = None) -> nx.Graph:
    """The topic graph over the neighbour pairs (rows, cols) and the notes' links. `spread`: the notes'
    (mean, spread) of similarity when the caller already has them (`similarity_spread`)."""
    n = len(notes.paths)
    links = np.asarray([(a, b) for a, b in notes.links if a != b], dtype=np.int64).reshape(-1, 2)
    all_rows = np.concatenate([rows, links[:, 0]])
    all_cols = np.concatenate([cols, links[:, 1]])
    lo, hi = np.minimum(all_rows, all_cols), np.maximum(all_rows, all_cols)
    pairs = np.unique(lo * n + hi)
    lo, hi = pairs // n, pairs % n
    similarity = (standardised_similarity(notes.vectors, lo, hi) if spread is None
                  else _standardised(notes.vectors, lo, hi, *spread))
    weights = np.maximum(similarity, 0.0)
    if len(links):
        linked = np.isin(pairs, np.unique(np.minimum(links[:, 0], links[:, 1]) * n + np.maximum(links[:, 0], links[:, 1])))
        weights = weights + link_weight * linked
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from((int(a), int(b), float(w)) for a, b, w in zip(lo, hi, weights) if w > 0)
    return graph


# ------------------------------------------------------------------ communities (pure)


def communities(graph: nx.Graph, nodes: Sequence[int] | None = None,
                start: Mapping[int, int] | None = None) -> list[list[int]]:
    """Leiden communities of `graph` (or of the subgraph of `nodes`), largest first, each sorted.

    `start` (note -> community label) seeds the search with a previous partition: Leiden then moves a note
    only where that raises modularity, so an edit that changes little moves little. Notes without an edge
    are communities of their own."""
    import graspologic_native

    sub = graph if nodes is None else graph.subgraph(nodes)
    if sub.number_of_nodes() == 0:
        return []
    edges = [(str(a), str(b), float(w)) for a, b, w in sub.edges(data="weight")]
    joined = [m for m in sub.nodes if sub.degree(m) > 0]
    found: dict[int, list[int]] = defaultdict(list)
    if edges:
        _, membership = graspologic_native.leiden(edges, starting_communities=_seeding(joined, start),
                                                  resolution=1.0, seed=SEED)
        for node, label in membership.items():
            found[label].append(int(node))
    groups = list(found.values()) + [[m] for m in sub.nodes if sub.degree(m) == 0]
    return sorted((sorted(c) for c in groups), key=lambda c: (-len(c), c[0]))


def settled(graph: nx.Graph, nodes: Sequence[int] | None, start: Mapping[int, int],
            sweeps: int = SWEEPS) -> list[list[int]]:
    """The partition `start` (note -> label; notes without one start alone), with each note moved to the
    neighbouring community that raises modularity most, sweep after sweep until none moves: the previous
    topics, kept wherever they are still as good locally. Largest first, each sorted."""
    sub = graph if nodes is None else graph.subgraph(nodes)
    fresh = iter(range(-1, -sub.number_of_nodes() - 1, -1))
    label = {m: start[m] if m in start else next(fresh) for m in sub.nodes}
    degree = {m: float(d) for m, d in sub.degree(weight="weight")}
    total = sum(degree.values())
    if total <= 0:
        return sorted(([m] for m in sub.nodes), key=lambda c: c[0])
    volume: Counter = Counter()
    for m, d in degree.items():
        volume[label[m]] += d
    for _ in range(sweeps):
        moved = 0
        for m in sorted(sub.nodes):
            own = label[m]
            links: Counter = Counter()
            for other, data in sub[m].items():
                if other != m:
                    links[label[other]] += data["weight"]
            volume[own] -= degree[m]
            target = _chosen(links, own, volume, degree[m], total)
            volume[target] += degree[m]
            if target != own:
                label[m] = target
                moved += 1
        if not moved:
            break
    groups: dict[int, list[int]] = defaultdict(list)
    for m, c in label.items():
        groups[c].append(m)
    return sorted((sorted(c) for c in groups.values()), key=lambda c: (-len(c), c[0]))


def _chosen(links: Mapping[int, float], own: int, volume: Mapping[int, float], degree: float, total: float) -> int:
    """The community a note of this degree belongs to, given its link weight to each neighbouring community and
    the communities' volumes without it: the one joining raises modularity most, if clearly better than `own`."""
    # The gain of joining community c, up to a constant: links to c minus what chance would give.
    gain = {c: w - degree * volume[c] / total for c, w in links.items()}
    stay = links.get(own, 0.0) - degree * volume[own] / total
    best = max(gain, key=lambda c: (gain[c], c == own), default=own)
    # A note leaves its topic only for a clearly better one: small changes elsewhere move nothing.
    return best if gain.get(best, -math.inf) > stay + STICKINESS * degree + 1e-12 else own


def _seeding(nodes: Sequence[int], start: Mapping[int, int] | None) -> dict[str, int] | None:
    """Leiden's starting communities: each note's previous label, renumbered from 0; a note that had none
    (new, or edited out of its old graph) starts alone."""
    if not start:
        return None
    labels: dict[object, int] = {}
    seeded = {}
    for m in nodes:
        key = ("old", start[m]) if m in start else ("new", m)
        seeded[str(m)] = labels.setdefault(key, len(labels))
    return seeded


def two_levels(graph: nx.Graph, previous: Mapping[int, tuple[str, str]] | None = None
               ) -> tuple[list[list[int]], list[tuple[int, list[int]]]]:
    """(broad topics, [(index of the broad topic, notes)] of the finer ones). A broad topic too small to
    split, or that Leiden finds no split of, is its own single finer topic. `previous` (note -> its
    topic ids at levels 0 and 1 in the last answer) is kept where it is still good (`partition`)."""
    broad = partition(graph, None, _labels({m: ids[0] for m, ids in (previous or {}).items()}))
    fine: list[tuple[int, list[int]]] = []
    for b, members in enumerate(broad):
        start = _labels({m: previous[m][1] for m in members if m in previous}) if previous else None
        parts = partition(graph, members, start) if len(members) >= MIN_SPLIT else [members]
        fine += [(b, part) for part in parts]
    return broad, fine


def partition(graph: nx.Graph, nodes: Sequence[int] | None, start: Mapping[int, int] | None) -> list[list[int]]:
    """Communities of the graph (or of `nodes`): the previous ones `start` settled after the edits, unless a
    partition found afresh is better by more than REBUILD_GAIN in modularity (the topics drifted)."""
    sub = graph if nodes is None else graph.subgraph(nodes).copy()  # a view is slow to walk again and again
    fresh = communities(sub)
    if not start:
        return fresh
    kept = settled(sub, None, start)
    return fresh if modularity(sub, fresh) - modularity(sub, kept) > REBUILD_GAIN else kept


def modularity(graph: nx.Graph, groups: Sequence[Sequence[int]]) -> float:
    """Newman's weighted modularity of a partition (one pass over the edges; 0 for a graph without any)."""
    label = {m: g for g, members in enumerate(groups) for m in members}
    inside = 0.0
    volume: Counter = Counter()
    total = 0.0
    for a, b, w in graph.edges(data="weight"):
        total += w
        volume[label[a]] += w
        volume[label[b]] += w
        if label[a] == label[b]:
            inside += w
    if total <= 0:
        return 0.0
    return inside / total - sum(v * v for v in volume.values()) / (4 * total * total)


def _labels(ids: Mapping[int, str]) -> dict[int, int]:
    numbers: dict[str, int] = {}
    return {m: numbers.setdefault(i, len(numbers)) for m, i in ids.items()}


def centrality(graph: nx.Graph, members: Sequence[int]) -> dict[int, float]:
    """Each member's weighted degree inside its topic: how strongly the topic holds it."""
    inside = set(members)
    return {m: sum(d["weight"] for other, d in graph[m].items() if other in inside) for m in members}


def neighbouring(graph: nx.Graph, groups: Sequence[Sequence[int]], ids: Sequence[str]) -> list[tuple[str, ...]]:
    """For each group, the ids of the other groups with the most edge weight to it, most first."""
    label = {m: g for g, members in enumerate(groups) for m in members}
    between: dict[int, Counter] = defaultdict(Counter)
    for a, b, w in graph.edges(data="weight"):
        la, lb = label.get(a), label.get(b)
        if la is not None and lb is not None and la != lb:
            between[la][lb] += w
            between[lb][la] += w
    return [tuple(ids[o] for o, _ in sorted(between[g].items(), key=lambda kv: (-kv[1], ids[kv[0]]))[:NEIGHBOUR_TOPICS])
            for g in range(len(groups))]


def topic_id(level: int, paths: Sequence[str]) -> str:
    """A name that stays the same for the same notes at the same level."""
    digest = hashlib.sha256(("\n".join([str(level), *sorted(paths)])).encode("utf-8")).hexdigest()
    return f"t{level}-{digest[:10]}"


# ------------------------------------------------------------------ names and descriptions (pure)


def terms(text: str) -> list[str]:
    """A text's content words and the two-word phrases they make, lower-cased (links, maths, code and
    addresses left out)."""
    words = [w.lower().strip("'-") for w in WORD.findall(_NOISE.sub(" ", text))]
    found, previous = [], None
    for word in words:
        if word in STOPWORDS or len(word) < 3 or word.isdigit():
            previous = None
            continue
        found.append(word)
        if previous is not None and previous != word:
            found.append(f"{previous} {word}")
        previous = word
    return found


def key_phrases(documents: Sequence[Sequence[list[str]]], count: int = PHRASES) -> list[tuple[str, ...]]:
    """For each class (a list of its notes' terms), its most distinctive terms: class-based TF-IDF, with
    each note's terms normalised to one so that a long note does not speak for its whole topic.

    Terms used by one note only are passed over in a class of several notes, when enough others exist."""
    frequency: list[Counter] = []
    spread: list[Counter] = []
    for notes in documents:
        tf: Counter = Counter()
        df: Counter = Counter()
        for note_terms in notes:
            counts = Counter(note_terms)
            total = sum(counts.values()) or 1
            for term, c in counts.items():
                tf[term] += c / total
            df.update(counts.keys())
        frequency.append(tf)
        spread.append(df)
    overall: Counter = Counter()
    for tf in frequency:
        overall.update(tf)
    average = sum(len(notes) for notes in documents) / max(len(documents), 1)
    named = []
    for tf, df, notes in zip(frequency, spread, documents):
        scored = sorted(((-(w * math.log(1 + average / overall[t])), t) for t, w in tf.items()))
        shared = [t for _, t in scored if df[t] >= 2] if len(notes) > 1 else []
        ranked = shared if len(shared) >= count else [t for _, t in scored]
        named.append(_distinct(ranked, count))
    return named


def _distinct(ranked: Sequence[str], count: int) -> tuple[str, ...]:
    """The first `count` terms, skipping any that repeats a word (or its plural) of one already chosen."""
    chosen: list[str] = []
    said: set[str] = set()
    for term in ranked:
        words = {_singular(w) for w in term.split()}
        if words & said:
            continue
        chosen.append(term)
        said |= words
        if len(chosen) == count:
            break
    return tuple(chosen)


def _singular(word: str) -> str:
    """"numbers" and "number" say one thing twice in a name."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word


def describe(ranked_paths: Sequence[str], sentences_of: Callable[[str], list[str]], fallback: str) -> str:
    """A sentence of the topic's most central notes: the first statement of some length in the first
    of them that has one."""
    for path in ranked_paths[:DESCRIBING_NOTES]:
        for sentence in sentences_of(path):
            if len(sentence.split()) >= DESCRIPTION_MIN_WORDS and not sentence.rstrip().endswith("?"):
                return sentence if len(sentence) <= DESCRIPTION_CHARS else sentence[:DESCRIPTION_CHARS].rsplit(" ", 1)[0] + "…"
    return fallback


def speakers(members: Sequence[int], private: np.ndarray) -> list[int]:
    """The members that may name and describe their topic: the non-private ones. A private note speaks
    only for a topic it is alone in; a topic of several private notes and nothing else goes unnamed."""
    public = [m for m in members if not private[m]]
    return public or (list(members) if len(members) == 1 else [])


# ------------------------------------------------------------------ assembling the topics (pure)


def build_topics(notes: TopicInput, text_of: Callable[[str], str], sentences_of: Callable[[str], list[str]],
                 graph: nx.Graph | None = None, previous: Sequence[Topic] = ()) -> list[Topic]:
    """Every topic of the vault: the broad ones (level 0) first, largest first, then the finer ones (level 1)
    in their parents' order. `text_of(path)` is a note's text, `sentences_of(path)` its prose sentences.

    `previous` (the last answer) keeps topics steady across edits: it seeds the communities, each new topic
    takes the id of the old one it shares most notes with (one to one), and a topic whose notes barely
    changed keeps its name and description."""
    if not notes.paths:
        return []
    graph = topic_graph(notes) if graph is None else graph
    at = {p: i for i, p in enumerate(notes.paths)}
    was = _previous_membership(previous, at)
    broad, fine = two_levels(graph, was)
    fine_groups = [members for _, members in fine]
    levels = [(0, broad, [None] * len(broad)), (1, fine_groups, [b for b, _ in fine])]
    old = {level: [t for t in previous if t.level == level] for level in (0, 1)}
    heirs = {level: inherited(old[level], [[notes.paths[m] for m in g] for g in groups])
             for level, groups, _ in levels}
    ids = {level: [heirs[level][i].id if heirs[level][i] else topic_id(level, [notes.paths[m] for m in g])
                   for i, g in enumerate(groups)] for level, groups, _ in levels}
    ranked = {level: [_by_centrality(graph, g, notes.paths) for g in groups] for level, groups, _ in levels}
    terms_of = {}
    for level, groups, _ in levels:
        for g in groups:
            for m in speakers(g, notes.private):
                if m not in terms_of:
                    title = notes.titles[m]
                    terms_of[m] = terms(" ".join([title] * TITLE_REPEAT) + "\n" + text_of(notes.paths[m])[:NOTE_TEXT_CHARS])
    topics: list[Topic] = []
    for level, groups, parents in levels:
        voices = [_kept(ranked[level][i], set(speakers(g, notes.private))) for i, g in enumerate(groups)]
        phrases = key_phrases([[terms_of[m] for m in v] for v in voices])
        around = neighbouring(graph, groups, ids[level])
        for i, g in enumerate(groups):
            central = notes.paths[voices[i][0]] if voices[i] else None
            title = notes.titles[voices[i][0]] if voices[i] else ""
            parent = None if parents[i] is None else ids[0][parents[i]]
            topic = Topic(
                id=ids[level][i], level=level, parent=parent, name=", ".join(phrases[i]) or title or UNNAMED,
                phrases=phrases[i], central=central,
                description=describe([notes.paths[m] for m in voices[i]], sentences_of, title),
                notes=tuple(notes.paths[m] for m in ranked[level][i]), neighbours=around[i])
            topics.append(_keeping_words(topic, heirs[level][i], {notes.paths[m] for m in voices[i]}))
    return topics


def _previous_membership(previous: Sequence[Topic], at: Mapping[str, int]) -> dict[int, tuple[str, str]] | None:
    """note index -> (its level-0 topic id, its level-1 topic id) in the previous answer."""
    if not previous:
        return None
    ids: dict[int, list[str | None]] = defaultdict(lambda: [None, None])
    for topic in previous:
        for path in topic.notes:
            if path in at and topic.level in (0, 1):
                ids[at[path]][topic.level] = topic.id
    return {m: (pair[0], pair[1]) for m, pair in ids.items() if pair[0] is not None and pair[1] is not None}


def inherited(old: Sequence[Topic], groups: Sequence[Sequence[str]]) -> list[Topic | None]:
    """For each new group of notes, the old topic it continues: one to one, the pairs sharing the most
    notes first (then the old topic's id, for one answer); None when it shares no note with a free one."""
    members = [set(g) for g in groups]
    topic_of = {path: j for j, t in enumerate(old) for path in t.notes}
    shared: dict[tuple[int, int], int] = Counter()
    for i, g in enumerate(members):
        for path in g:
            if path in topic_of:
                shared[i, topic_of[path]] += 1
    heirs: list[Topic | None] = [None] * len(groups)
    taken: set[int] = set()
    for (i, j), count in sorted(shared.items(), key=lambda kv: (-kv[1], old[kv[0][1]].id, kv[0][0])):
        if heirs[i] is None and j not in taken:
            heirs[i] = old[j]
            taken.add(j)
    return heirs


def barely_changed(before: Sequence[str], after: Sequence[str]) -> bool:
    """At most one note in ten came or went."""
    return len(set(before) ^ set(after)) <= BARELY_CHANGED * len(before)


def _keeping_words(topic: Topic, heir: Topic | None, speakers_now: set[str]) -> Topic:
    """The topic with its old name and description when its notes barely changed and the note that spoke
    for it may still do so (a note that became private takes its words with it)."""
    if heir is None or not barely_changed(heir.notes, topic.notes) or heir.central not in speakers_now:
        return topic
    return dataclasses.replace(topic, name=heir.name, phrases=heir.phrases, central=heir.central,
                               description=heir.description)


def _kept(ranked: Sequence[int], allowed: set[int]) -> list[int]:
    return [m for m in ranked if m in allowed]


def _by_centrality(graph: nx.Graph, members: Sequence[int], paths: Sequence[str]) -> list[int]:
    degree = centrality(graph, members)
    return sorted(members, key=lambda m: (-degree[m], paths[m]))


# ------------------------------------------------------------------ keeping the graph between updates


# The corpus centres note vectors on its mean, which an edit moves by a hair: a note whose vector turned by
# less than this is not an edited note.
UNMOVED_COSINE = 0.9999
# Past this share of the notes changed since the graph was built, the next update builds it again (and lets
# a partition found afresh replace the settled one, which updates never do).
REBUILD_SHARE = 0.1
ROWS_AT_ONCE = 256  # edited notes compared with every note at once (256 x 100,000 similarities: 100 MB)
# Moves tried per note an update touched before the settling stops: a bound on an edit's ripple.
MOVES_PER_TOUCHED = 50


class TopicState:
    """The topic graph and the last answer, kept between updates (the daemon holds one), so that an edit
    costs the rows of the notes it changed rather than the whole graph again.

    Each note is a node that keeps its number for the state's life (a deleted note's number is not reused);
    its row is its `k` nearest notes. An update compares each edited note with every note exactly (one
    product of its vector with all of them), puts it into the rows it now belongs to, takes the edges of the
    notes whose rows changed again, then lets the notes near those changes move between the topics they
    had, as `settled` does; topics whose notes did not change are carried over as they were. Notes whose
    rows hold an edited note keep it with its new similarity until they are rebuilt: the graph drifts from
    the one a build would make only by such rows and by every other note's similarity spread, which is not
    recomputed; a build every REBUILD_SHARE of the vault puts both right."""

    def __init__(self, k: int = NEIGHBOURS):
        self.k = k
        self.topics: list[Topic] = []
        self.built = False

    # ---- a full build

    def build(self, notes: TopicInput, text_of: Callable[[str], str], sentences_of: Callable[[str], list[str]],
              previous: Sequence[Topic] = ()) -> list[Topic]:
        """The topics as `build_topics` finds them, keeping the graph for the updates that follow."""
        n = len(notes.paths)
        rows, cols = nearest_neighbours(notes.vectors, self.k)
        self.paths: list[str | None] = list(notes.paths)
        self.node = {p: i for i, p in enumerate(notes.paths)}
        self.vectors = np.array(notes.vectors, dtype=np.float32)
        self.total = self.vectors.sum(axis=0, dtype=np.float64)
        self.second = (self.vectors.T @ self.vectors).astype(np.float64)
        self.count = n
        self.mu, self.spread = similarity_spread(self.vectors, self.total, self.second, n)
        self.rows = np.full((n, self.k + 1), -1, np.int64)
        position = np.arange(len(rows)) - np.searchsorted(rows, rows)
        self.rows[rows, position] = cols
        self.row_sims = np.full((n, self.k + 1), np.inf, np.float32)  # each row's similarities (inf: a free place)
        self.row_sims[rows, position] = np.einsum("ij,ij->i", self.vectors[rows], self.vectors[cols])
        self.pointing: dict[int, set[int]] = defaultdict(set)
        for a, b in zip(rows.tolist(), cols.tolist()):
            self.pointing[b].add(a)
        self.link_keys = _link_keys(notes.links, np.arange(n))
        self.linked: dict[int, set[int]] = defaultdict(set)
        for key in self.link_keys.tolist():
            a, b = divmod(key, LINK_KEY)
            self.linked[a].add(b)
            self.linked[b].add(a)
        self.graph = graph_of_pairs(notes, rows, cols, spread=(self.mu, self.spread))
        self.degree = np.zeros(n, np.float64)
        for m, d in self.graph.degree(weight="weight"):
            self.degree[m] = d
        self.total_weight = float(self.degree.sum())
        self.topics = build_topics(notes, text_of, sentences_of, graph=self.graph, previous=previous)
        self._labels_from(self.topics)
        self.changed_since_build = 0
        self.built = True
        return self.topics

    def _labels_from(self, topics: Sequence[Topic]) -> None:
        """Each node's topic at both levels, as label numbers (-1: none), and each label's topic."""
        self.label = [np.full(len(self.paths), -1, np.int64) for _ in (0, 1)]
        self.topic_of_label: list[dict[int, Topic]] = [{}, {}]
        for level in (0, 1):
            for number, topic in enumerate(t for t in topics if t.level == level):
                self.topic_of_label[level][number] = topic
                self.label[level][[self.node[p] for p in topic.notes]] = number

    # ---- an update

    def update(self, notes: TopicInput, text_of: Callable[[str], str], sentences_of: Callable[[str], list[str]]
               ) -> list[Topic]:
        """The topics after the notes changed to `notes`; a full build when there is none yet, or when much
        of the vault changed since the last one."""
        if not self.built:
            return self.build(notes, text_of, sentences_of)
        nodes, removed = self._nodes_of(notes.paths)
        vectors = np.asarray(notes.vectors, dtype=np.float32)
        edited_at = self._edited(nodes, vectors)
        self.changed_since_build += len(edited_at) + len(removed)
        if self.changed_since_build > REBUILD_SHARE * max(len(notes.paths), 1):
            return self.build(notes, text_of, sentences_of, previous=self.topics)
        self._left: tuple[set[int], set[int]] = (set(), set())  # labels that lost a note in this update
        touched = self._remove(removed)
        touched |= self._move(nodes[edited_at], vectors[edited_at])
        touched |= self._relink(notes, nodes)
        touched = {m for m in touched if self.paths[m] is not None}
        for m in sorted(touched):
            self._reweigh(m)
        moved0 = self._settle_broad(touched)
        self.topics = self._assemble(notes, nodes, touched, moved0, text_of, sentences_of)
        return self.topics

    def _edited(self, nodes: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Positions (in the input) of the notes whose vectors turned, new notes among them. Unedited notes'
        vectors are the same bytes from one snapshot to the next, so only those that differ are measured."""
        same_order = len(nodes) <= len(self.vectors) and np.array_equal(nodes, np.arange(len(nodes)))
        old = self.vectors[:len(nodes)] if same_order else self.vectors[nodes]
        differ = np.flatnonzero((old != vectors).any(axis=1))
        a, b = old[differ], vectors[differ]
        cos = np.einsum("ij,ij->i", a, b)
        scale = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return differ[cos < UNMOVED_COSINE * np.maximum(scale, 1e-12)]

    def _nodes_of(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """(each path's node, made for new notes, and the nodes of notes that are gone)."""
        wanted = set(paths)
        removed = [m for p, m in self.node.items() if p not in wanted]
        added = []
        for path in paths:
            if path not in self.node:
                self.node[path] = len(self.paths)
                self.paths.append(path)
                added.append(self.node[path])
        if added:
            grow = len(added)
            self.vectors = np.concatenate([self.vectors, np.zeros((grow, self.vectors.shape[1]), np.float32)])
            self.rows = np.concatenate([self.rows, np.full((grow, self.k + 1), -1, np.int64)])
            self.row_sims = np.concatenate([self.row_sims, np.full((grow, self.k + 1), np.inf, np.float32)])
            self.mu, self.spread = np.concatenate([self.mu, np.zeros(grow)]), np.concatenate([self.spread, np.ones(grow)])
            self.degree = np.concatenate([self.degree, np.zeros(grow)])
            self.label = [np.concatenate([labels, np.full(grow, -1, np.int64)]) for labels in self.label]
            self.graph.add_nodes_from(added)
        return np.fromiter((self.node[p] for p in paths), np.int64, len(paths)), removed

    def _remove(self, removed: Sequence[int]) -> set[int]:
        """Take deleted notes out of the graph; the notes whose rows held them must find another neighbour."""
        touched: set[int] = set()
        for m in removed:
            self._account(self.vectors[m], np.zeros_like(self.vectors[m]), -1)
            self.vectors[m] = 0.0
            for other in list(self.graph[m]):
                self._put_edge(m, other, 0.0)
            for other in self.pointing.pop(m, set()):
                held = self.rows[other] == m
                self.rows[other][held] = -1
                self.row_sims[other][held] = np.inf
                touched.add(other)
            for b in self.rows[m][self.rows[m] >= 0].tolist():
                self.pointing[b].discard(m)
            self.rows[m] = -1
            self.row_sims[m] = np.inf
            for other in self.linked.pop(m, set()):
                self.linked[other].discard(m)
                touched.add(other)
            del self.node[self.paths[m]]
            self.paths[m] = None
            for level in (0, 1):
                if self.label[level][m] >= 0:
                    self._left[level].add(int(self.label[level][m]))
                self.label[level][m] = -1
        if touched:  # rows that lost a neighbour are searched again, as an edited note's is
            alive = np.asarray(sorted(touched - set(removed)), np.int64)
            self._search_rows(alive)
        return touched - set(removed)

    def _account(self, old: np.ndarray, new: np.ndarray, count_change: int) -> None:
        self.total += new.astype(np.float64) - old
        self.second += np.outer(new, new) - np.outer(old, old)
        self.count += count_change

    def _move(self, edited: np.ndarray, vectors: np.ndarray) -> set[int]:
        """Give edited (and new) notes their vectors and rows, and put them into the rows of the notes they
        are now among the nearest of. Returns every node whose row changed."""
        if not len(edited):
            return set()
        for m, vector in zip(edited.tolist(), vectors):
            self._account(self.vectors[m], vector, 0 if self.vectors[m].any() else 1)
            self.vectors[m] = vector
        self.mu[edited], self.spread[edited] = similarity_spread(self.vectors[edited], self.total, self.second, self.count)
        touched = self._search_rows(edited, insert=True)
        for m in edited.tolist():  # rows that hold an edited note keep it, at its new similarity
            for other in self.pointing.get(m, ()):
                self.row_sims[other][self.rows[other] == m] = float(self.vectors[m] @ self.vectors[other])
                touched.add(other)
        return touched

    def _search_rows(self, nodes: np.ndarray, insert: bool = False) -> set[int]:
        """Each node's row found again exactly (its vector against every live note); with `insert`, each
        node also enters the rows of the notes it is now nearer to than their farthest neighbour."""
        touched = set(nodes.tolist())
        dead = np.asarray([m for m, p in enumerate(self.paths) if p is None], np.int64)
        floor = self._row_floor() if insert else None
        for start in range(0, len(nodes), ROWS_AT_ONCE):
            part = nodes[start:start + ROWS_AT_ONCE]
            sims = self.vectors @ self.vectors[part].T  # (notes, part)
            sims[dead] = -np.inf
            sims[part, np.arange(len(part))] = -np.inf
            for j, m in enumerate(part.tolist()):
                column = sims[:, j]
                nearest = np.argpartition(-column, min(self.k, len(column) - 1))[:self.k]
                nearest = nearest[np.isfinite(column[nearest])]
                nearest = nearest[np.argsort(-column[nearest])]
                self._set_row(m, nearest, column[nearest])
                if insert:
                    closer = np.flatnonzero(column > floor)
                    for other in closer.tolist():
                        if other != m and m not in self.rows[other]:
                            self._enter_row(other, m, column[other])
                            touched.add(other)
        return touched

    def _row_floor(self) -> np.ndarray:
        """Each node's similarity to the farthest note of its row (-inf while its row has room; +inf for a
        deleted note, which takes no neighbour)."""
        held = self.rows >= 0
        floor = self.row_sims.min(axis=1)
        floor[held.sum(axis=1) < self.k] = -np.inf
        floor[[m for m, p in enumerate(self.paths) if p is None]] = np.inf
        return floor

    def _set_row(self, m: int, nearest: np.ndarray, sims: np.ndarray) -> None:
        for b in self.rows[m][self.rows[m] >= 0].tolist():
            self.pointing[b].discard(m)
        self.rows[m], self.row_sims[m] = -1, np.inf
        self.rows[m, :len(nearest)], self.row_sims[m, :len(nearest)] = nearest, sims
        for b in nearest.tolist():
            self.pointing[b].add(m)

    def _enter_row(self, other: int, m: int, similarity: float) -> None:
        """Put `m` into `other`'s row in place of its farthest neighbour (or into a free place)."""
        row, sims = self.rows[other], self.row_sims[other]
        free = np.flatnonzero(row[:self.k] < 0)
        if len(free):
            place = int(free[0])
        else:
            place = int(np.argmin(np.where(row >= 0, sims, np.inf)))
            self.pointing[int(row[place])].discard(other)
        row[place], sims[place] = m, similarity
        self.pointing[m].add(other)

    def _relink(self, notes: TopicInput, nodes: np.ndarray) -> set[int]:
        """Follow the links that came and went; both ends of each are touched."""
        now = _link_keys(notes.links, nodes)
        touched: set[int] = set()
        for key in np.setdiff1d(now, self.link_keys, assume_unique=True).tolist():
            a, b = divmod(key, LINK_KEY)
            self.linked[a].add(b)
            self.linked[b].add(a)
            touched |= {a, b}
        for key in np.setdiff1d(self.link_keys, now, assume_unique=True).tolist():
            a, b = divmod(key, LINK_KEY)
            self.linked[a].discard(b)
            self.linked[b].discard(a)
            touched |= {a, b}
        self.link_keys = now
        return touched

    def _reweigh(self, m: int) -> None:
        """Every edge of `m` as a build would weigh it now: its row, the rows holding it, and its links."""
        wanted = set(self.rows[m][self.rows[m] >= 0].tolist()) | self.pointing.get(m, set()) | self.linked.get(m, set())
        for other in set(self.graph[m]) | wanted:
            weight = 0.0
            if other in wanted:
                cos = float(self.vectors[m] @ self.vectors[other])
                z = ((cos - self.mu[m]) / self.spread[m] + (cos - self.mu[other]) / self.spread[other]) / 2
                weight = max(z, 0.0) + (LINK_WEIGHT if other in self.linked.get(m, ()) else 0.0)
            self._put_edge(m, other, weight)

    def _put_edge(self, a: int, b: int, weight: float) -> None:
        old = self.graph[a][b]["weight"] if self.graph.has_edge(a, b) else 0.0
        if weight > 0:
            self.graph.add_edge(a, b, weight=weight)
        elif old:
            self.graph.remove_edge(a, b)
        change = weight - old
        self.degree[a] += change
        self.degree[b] += change
        self.total_weight += 2 * change

    # ---- settling

    def _settle_broad(self, touched: set[int]) -> set[int]:
        """Level 0: the touched notes, and any note next to one that moved, may move to a neighbouring topic
        that holds it clearly better (as `settled`, one note at a time). Returns the notes that moved."""
        label = self.label[0]
        fresh = label.max(initial=-1) + 1
        for m in sorted(touched):
            if label[m] < 0 and self.paths[m] is not None:
                label[m], fresh = fresh, fresh + 1
        alive = label >= 0
        volume: Counter = Counter()
        sums = np.bincount(label[alive], weights=self.degree[alive])
        volume.update({c: float(v) for c, v in enumerate(sums) if v})
        return _local_moves(self.graph, label, volume, self.degree, self.total_weight, sorted(touched),
                            MOVES_PER_TOUCHED * max(len(touched), 1), self._left[0])

    # ---- the answer

    def _assemble(self, notes: TopicInput, nodes: np.ndarray, touched: set[int], moved0: set[int],
                  text_of: Callable[[str], str], sentences_of: Callable[[str], list[str]]) -> list[Topic]:
        """Topics at both levels: those whose notes and edges did not change as they were, the others
        ranked, named (or keeping their words when they barely changed) and linked again."""
        private = set(nodes[np.flatnonzero(notes.private)].tolist())
        position = np.full(len(self.paths), -1, np.int64)
        position[nodes] = np.arange(len(nodes))
        title = _Titles(notes.titles, position)
        label0, label1 = self.label
        changed0 = {int(label0[m]) for m in touched | moved0 if label0[m] >= 0} | self._left[0]
        # Finer topics are settled again inside each broad topic that changed.
        home = self._homes()
        moved1: set[int] = set()
        for c in sorted(changed0):
            moved1 |= self._settle_fine(c, np.flatnonzero(label0 == c), home)
        near = touched | moved0 | moved1
        changed1 = {int(label1[m]) for m in near if label1[m] >= 0} | self._left[1]
        topics: list[Topic] = []
        groups = {level: _groups(self.label[level]) for level in (0, 1)}
        renamed: dict[tuple[int, int], list[int]] = {}
        for level, changed in ((0, changed0), (1, changed1)):
            old = self.topic_of_label[level]
            for c, members in groups[level].items():
                if c not in changed and c in old:
                    continue
                renamed[level, c] = members
            for c in list(old):
                if c not in groups[level]:
                    del old[c]
        # Only topics that changed more than barely are named again: the others keep their words.
        fresh_words = [key for key in sorted(renamed) if not self._keeps_words(*key, renamed[key], private)]
        words = dict(zip(fresh_words, self._names([renamed[key] for key in fresh_words], private, title, text_of)))
        ids = {level: {c: (self.topic_of_label[level][c].id if c in self.topic_of_label[level] else
                           topic_id(level, [self.paths[m] for m in members]))
                       for c, members in groups[level].items()} for level in (0, 1)}
        live_ids = set(ids[0].values()) | set(ids[1].values())
        for level in (0, 1):
            for c, members in groups[level].items():
                key = (level, c)
                parent = None if level == 0 else ids[0][int(label0[members[0]])]
                if key not in renamed:
                    kept = self.topic_of_label[level][c]
                    around = tuple(i for i in kept.neighbours if i in live_ids)
                    topic = kept if (parent, around) == (kept.parent, kept.neighbours) else \
                        dataclasses.replace(kept, parent=parent, neighbours=around)
                else:
                    topic = self._topic(level, c, members, parent, ids, words.get(key), private, title, sentences_of)
                self.topic_of_label[level][c] = topic
                topics.append(topic)
        order0 = {t.id: i for i, t in enumerate(sorted((t for t in topics if t.level == 0),
                                                       key=lambda t: (-len(t.notes), min(t.notes))))}
        return sorted(topics, key=lambda t: (t.level, order0.get(t.id if t.level == 0 else t.parent, 0),
                                             -len(t.notes), min(t.notes)))

    def _homes(self) -> dict[int, int]:
        """Each finer topic's broad topic: the level-0 label its parent had in the last answer."""
        numbers = {t.id: c for c, t in self.topic_of_label[0].items()}
        return {c: numbers.get(t.parent, -1) for c, t in self.topic_of_label[1].items()}

    def _settle_fine(self, broad: int, members: np.ndarray, home: Mapping[int, int]) -> set[int]:
        """Level 1 inside one broad topic: its notes settled from the finer topics they had there (a note that
        came from another broad topic starts alone). Returns the notes whose finer topic changed."""
        label1 = self.label[1]
        before = label1[members].copy()
        at_home = {int(m): int(label1[m]) for m in members.tolist() if home.get(int(label1[m])) == broad}
        groups = settled(self.graph.subgraph(members.tolist()), None, at_home) if len(members) >= MIN_SPLIT \
            else [members.tolist()]
        fresh = max(label1.max(initial=-1), max(home, default=-1)) + 1
        used: set[int] = set()
        for group in groups:
            counts = Counter(at_home[m] for m in group if m in at_home and at_home[m] not in used)
            number = min(counts, key=lambda c: (-counts[c], c)) if counts else -1
            if number < 0:
                number, fresh = fresh, fresh + 1
            used.add(number)
            label1[group] = number
        moved = {int(m): old for m, old in zip(members.tolist(), before.tolist()) if label1[m] != old}
        self._left[1].update(old for old in moved.values() if old >= 0)
        return set(moved)

    def _keeps_words(self, level: int, c: int, members: list[int], private: set[int]) -> bool:
        heir = self.topic_of_label[level].get(c)
        if heir is None or not barely_changed(heir.notes, [self.paths[m] for m in members]):
            return False
        voices = [m for m in members if m not in private] or (members if len(members) == 1 else [])
        return heir.central in {self.paths[m] for m in voices}

    def _names(self, groups: list[list[int]], private: set[int], title: _Titles,
               text_of: Callable[[str], str]) -> list[tuple[str, ...]]:
        """Key phrases of the changed topics, set apart from one another (the topics that did not change
        keep theirs: naming them again would read every note of the vault)."""
        voices = [[m for m in _by_centrality(self.graph, g, self.paths) if m not in private] or (g if len(g) == 1 else []) for g in groups]
        terms_of = {m: terms(" ".join([title.get(m, "")] * TITLE_REPEAT) + "\n" + text_of(self.paths[m])[:NOTE_TEXT_CHARS])
                    for v in voices for m in v[:DESCRIBING_NOTES * 10]}
        return key_phrases([[terms_of[m] for m in v[:DESCRIBING_NOTES * 10]] for v in voices])

    def _topic(self, level: int, c: int, members: list[int], parent: str | None, ids, phrases: tuple[str, ...] | None,
               private: set[int], title: _Titles, sentences_of: Callable[[str], list[str]]) -> Topic:
        ranked = _by_centrality(self.graph, members, self.paths)
        voices = [m for m in ranked if m not in private] or (ranked if len(ranked) == 1 else [])
        central = self.paths[voices[0]] if voices else None
        label = self.label[level]
        between: Counter = Counter()
        inside = set(members)
        for m in members:
            for other, data in self.graph[m].items():
                if other not in inside and label[other] >= 0:
                    between[int(label[other])] += data["weight"]
        neighbours = tuple(ids[level][o] for o, _ in sorted(between.items(), key=lambda kv: (-kv[1], ids[level][kv[0]]))
                           if o in ids[level])[:NEIGHBOUR_TOPICS]
        notes = tuple(self.paths[m] for m in ranked)
        if phrases is None:  # barely changed: its words stay
            heir = self.topic_of_label[level][c]
            return Topic(id=ids[level][c], level=level, parent=parent, name=heir.name, phrases=heir.phrases,
                         central=heir.central, description=heir.description, notes=notes, neighbours=neighbours)
        name_title = title.get(voices[0], "") if voices else ""
        return Topic(id=ids[level][c], level=level, parent=parent, name=", ".join(phrases) or name_title or UNNAMED,
                     phrases=phrases, central=central,
                     description=describe([self.paths[m] for m in voices], sentences_of, name_title),
                     notes=notes, neighbours=neighbours)


LINK_KEY = 1 << 32  # a link between nodes a < b is kept as the number a * LINK_KEY + b


def _link_keys(links: Sequence[tuple[int, int]], nodes: np.ndarray) -> np.ndarray:
    """The links (pairs of input positions) as sorted unique numbers over their nodes."""
    pairs = nodes[np.asarray(links, dtype=np.int64).reshape(-1, 2)]
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(np.minimum(pairs[:, 0], pairs[:, 1]) * LINK_KEY + np.maximum(pairs[:, 0], pairs[:, 1]))


class _Titles:
    """node -> its note's title, looked up only for the notes that need one."""

    def __init__(self, titles: Sequence[str], position: np.ndarray):
        self.titles, self.position = titles, position

    def get(self, m: int, default: str = "") -> str:
        at = self.position[m] if 0 <= m < len(self.position) else -1
        return self.titles[at] if at >= 0 else default


def _groups(labels: np.ndarray) -> dict[int, list[int]]:
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    found = {}
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(ordered)]):
        if ordered[start] >= 0:
            found[int(ordered[start])] = order[start:stop].tolist()
    return found


def _local_moves(graph: nx.Graph, label: np.ndarray, volume: Counter, degree: np.ndarray, total: float,
                 queue_start: Sequence[int], budget: int, left: set[int]) -> set[int]:
    """`settled`'s moves, for the notes in a queue: a note that moves puts its neighbours in the queue. At
    most `budget` notes are looked at. Returns the notes that moved; the labels they left go into `left`."""
    if total <= 0:
        return set()
    queue = collections.deque(queue_start)
    waiting = set(queue_start)
    moved: set[int] = set()
    while queue and budget > 0:
        budget -= 1
        m = queue.popleft()
        waiting.discard(m)
        own = int(label[m])
        links: Counter = Counter()
        for other, data in graph[m].items():
            if other != m and label[other] >= 0:
                links[int(label[other])] += data["weight"]
        volume[own] -= degree[m]
        target = _chosen(links, own, volume, degree[m], total)
        volume[target] += degree[m]
        if target != own:
            label[m] = target
            moved.add(m)
            left.add(own)
            for other in graph[m]:
                if other not in waiting:
                    queue.append(other)
                    waiting.add(other)
    return moved


# ------------------------------------------------------------------ the shell


def topic_input(corpus: Corpus) -> TopicInput:
    """The corpus's notes without its templates, with their vectors and links."""
    keep = np.flatnonzero(~corpus.template)
    paths = [corpus.paths[i] for i in keep]
    at = {p: i for i, p in enumerate(paths)}
    links = [(at[a], at[b]) for a, b in corpus.graph.edges() if a in at and b in at]
    return TopicInput(paths, [corpus.titles[i] for i in keep], corpus.note_vectors[keep], sorted(links),
                      corpus.private[keep])


def vault_topics(corpus: Corpus, scanner: VaultScanner, state: TopicState | None = None) -> list[Topic]:
    """The one answer to "what are the vault's topics", for every surface: names from each note's indexed
    text (the store), descriptions from the prose of the most central notes (read from the vault). The
    answer is kept in the store and seeds the next one, so topics keep their ids and names across edits.
    `state` (the daemon keeps one) holds the graph of the last answer: an update then costs only what the
    edits changed."""
    return draw_topics(corpus.store, topic_input(corpus), scanner, state)


def draw_topics(store, notes: TopicInput, scanner: VaultScanner, state: TopicState | None = None) -> list[Topic]:
    """`vault_topics` from what it reads of a snapshot (`topic_input`): the daemon draws on a thread of its
    own from this alone, so that the drawing holds no snapshot (one at a time, and one changed in place
    by an edit meanwhile is never read half written)."""
    def text_of(path: str) -> str:
        return "\n".join(chunk.text for chunk in store.chunks_of(path))

    guard = NoteGuard(lambda failure: None)  # the guard logs it; the note only describes no topic

    def sentences(path: str) -> list[str]:
        with guard.note(path) as at:
            at.stage = "parse"
            note = scanner.read(path)
            return [] if isinstance(note, Skipped) else [s.text for s in sentences_of(note)]
        return []

    if state is not None and state.built:
        previous = state.topics  # the last answer, as the store keeps it unless a private note spoke
        topics = state.update(notes, text_of, sentences)
    else:
        previous = stored_topics(store)
        build = build_topics if state is None else state.build
        topics = build(notes, text_of, sentences, previous=previous)
    if topics != previous:
        private = {p for p, secret in zip(notes.paths, notes.private) if secret}
        store.put_setting(LAST_TOPICS, json.dumps([_kept_form(t, private) for t in topics], ensure_ascii=False))
    return topics


def within(topics: Sequence[Topic], index: Mapping[str, int]) -> list[Topic]:
    """The topics without the notes a newer snapshot no longer holds (deleted or renamed while they were
    drawn): what is published must not link to them. The next drawing places the notes that came."""
    kept = []
    for topic in topics:
        central_gone = topic.central is not None and topic.central not in index
        if central_gone or any(n not in index for n in topic.notes):
            topic = dataclasses.replace(topic, notes=tuple(n for n in topic.notes if n in index),
                                        central=topic.central if topic.central in index else None)
        kept.append(topic)
    return kept


def stored_topics(store) -> list[Topic]:
    """The last answer kept in the store (none when there is none, or it cannot be read)."""
    raw = store.get_setting(LAST_TOPICS)
    try:
        return [Topic(id=t["id"], level=t["level"], parent=t["parent"], name=t["name"], phrases=tuple(t["phrases"]),
                      central=t["central"], description=t["description"], notes=tuple(t["notes"]),
                      neighbours=tuple(t["neighbours"])) for t in json.loads(raw)] if raw else []
    except (ValueError, TypeError, KeyError):  # a damaged record only costs the topics their history
        return []


def _kept_form(topic: Topic, private: set[str]) -> dict:
    """What is kept of a topic: all of it, except the words of a topic a private note speaks for (the
    store keeps no sentence of a private note beside its index); such a topic is named afresh each time."""
    if topic.central in private:
        topic = dataclasses.replace(topic, name="", phrases=(), central=None, description="")
    return topic.as_json()
