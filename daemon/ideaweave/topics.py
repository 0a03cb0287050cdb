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

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k + 1)
    return found


def _approximate_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """An inverted file (faiss) over the note vectors: each note scans the PROBES lists nearest to it."""
    import faiss

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
    n = len(vectors)
    mean_vector = vectors.mean(axis=0)
    second = (vectors.T @ vectors) / max(n, 1)
    mu = vectors @ mean_vector
    spread = np.sqrt(np.maximum(((vectors @ second) * vectors).sum(axis=1) - mu ** 2, 1e-12))
    cos = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), PAIRS_AT_ONCE):  # a million pairs' vectors at once would be 3 GB
        part = slice(start, start + PAIRS_AT_ONCE)
        cos[part] = np.einsum("ij,ij->i", vectors[rows[part]], vectors[cols[part]])
    return ((cos - mu[rows]) / spread[rows] + (cos - mu[cols]) / spread[cols]) / 2


def topic_graph(notes: TopicInput, k: int = NEIGHBOURS, link_weight: float = LINK_WEIGHT) -> nx.Graph:
    """Notes as nodes 0..n-1; an edge for each nearest neighbour and each link, weighted by their
    standardised similarity (when positive) plus `link_weight` when they are linked."""
    n = len(notes.paths)
    rows, cols = nearest_neighbours(notes.vectors, k)
    links = np.asarray([(a, b) for a, b in notes.links if a != b], dtype=np.int64).reshape(-1, 2)
    all_rows = np.concatenate([rows, links[:, 0]])
    all_cols = np.concatenate([cols, links[:, 1]])
    lo, hi = np.minimum(all_rows, all_cols), np.maximum(all_rows, all_cols)
    pairs = np.unique(lo * n + hi)
    lo, hi = pairs // n, pairs % n
    weights = np.maximum(standardised_similarity(notes.vectors, lo, hi), 0.0)
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
            # The gain of joining community c, up to a constant: links to c minus what chance would give.
            gain = {c: w - degree[m] * volume[c] / total for c, w in links.items()}
            stay = links.get(own, 0.0) - degree[m] * volume[own] / total
            best = max(gain, key=lambda c: (gain[c], c == own), default=own)
            # A note leaves its topic only for a clearly better one: small changes elsewhere move nothing.
            target = best if gain.get(best, -math.inf) > stay + STICKINESS * degree[m] + 1e-12 else own
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


# ------------------------------------------------------------------ the shell


def topic_input(corpus: Corpus) -> TopicInput:
    """The corpus's notes without its templates, with their vectors and links."""
    keep = np.flatnonzero(~corpus.template)
    paths = [corpus.paths[i] for i in keep]
    at = {p: i for i, p in enumerate(paths)}
    links = [(at[a], at[b]) for a, b in corpus.graph.graph.edges() if a in at and b in at]
    return TopicInput(paths, [corpus.titles[i] for i in keep], corpus.note_vectors[keep], sorted(links),
                      corpus.private[keep])


def vault_topics(corpus: Corpus, scanner: VaultScanner) -> list[Topic]:
    """The one answer to "what are the vault's topics", for every surface: names from each note's indexed
    text (the store), descriptions from the prose of the most central notes (read from the vault). The
    answer is kept in the store and seeds the next one, so topics keep their ids and names across edits."""
    def text_of(path: str) -> str:
        return "\n".join(chunk.text for chunk in corpus.store.chunks_of(path))

    guard = NoteGuard(lambda failure: None)  # the guard logs it; the note only describes no topic

    def sentences(path: str) -> list[str]:
        with guard.note(path) as at:
            at.stage = "parse"
            note = scanner.read(path)
            return [] if isinstance(note, Skipped) else [s.text for s in sentences_of(note)]
        return []

    previous = stored_topics(corpus.store)
    topics = build_topics(topic_input(corpus), text_of, sentences, previous=previous)
    if topics != previous:
        private = {p for p, secret in zip(corpus.paths, corpus.private) if secret}
        corpus.store.put_setting(LAST_TOPICS, json.dumps([_kept_form(t, private) for t in topics], ensure_ascii=False))
    return topics


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
