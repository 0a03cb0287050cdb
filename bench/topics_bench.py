#!/usr/bin/env python3
"""Topic quality against a human taxonomy: the agreement (NMI and adjusted Rand) of ideaweave's topics with
a labelling of the vault's notes, against two baselines in the same run: Louvain on the link graph alone,
and k-means on the whole-note vectors with as many clusters as ideaweave found.

Usage:
  python bench/topics_bench.py VAULT --labels RULE [--state DIR] [--no-index]
  python bench/topics_bench.py --synthetic N     (time N stand-in notes: graph, both levels, an update, and the
                                                  daemon's incremental update after one edited note and after 1%)

RULE says where a note's human label comes from:
  folder:D                 its folder at depth D (1: the top folder); notes above depth D are unlabelled
  tag:PREFIX               its first tag starting with PREFIX ("tag:" alone: any tag)
  tag:PREFIX!a,b           ... ignoring the tags a and b (e.g. maturity stages that say nothing of topic)
  none                     no labels: only the topics found and how much the methods agree with each other

Only labelled notes are scored, but every method clusters the whole vault. The vault is indexed with the real
model into --state (default: a temporary folder) and is never written to.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.corpus import Corpus, centre_on  # noqa: E402
from ideaweave.prose import sentences_of  # noqa: E402
from ideaweave.topics import SEED, TopicInput, TopicState, build_topics, topic_graph, topic_input  # noqa: E402
from ideaweave.vault import Skipped  # noqa: E402


# ------------------------------------------------------------------ agreement measures


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), np.int64)
    np.add.at(table, (ai, bi), 1)
    return table


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information, arithmetic-mean normalisation (scikit-learn's default)."""
    table = contingency(a, b).astype(float)
    n = table.sum()
    pa, pb, pab = table.sum(1) / n, table.sum(0) / n, table / n
    nz = pab > 0
    mi = float((pab[nz] * np.log(pab[nz] / np.outer(pa, pb)[nz])).sum())
    ha, hb = float(-(pa * np.log(pa)).sum()), float(-(pb * np.log(pb)).sum())
    if ha == 0 and hb == 0:
        return 1.0
    return mi / max((ha + hb) / 2, 1e-12)


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    table = contingency(a, b)
    pairs = lambda x: (x * (x - 1) / 2).sum()  # noqa: E731
    both, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    total = len(a) * (len(a) - 1) / 2
    expected = rows * cols / total if total else 0.0
    top = (rows + cols) / 2
    return 1.0 if top == expected else float((both - expected) / (top - expected))


# ------------------------------------------------------------------ baselines


def link_louvain(n: int, links: list[tuple[int, int]]) -> np.ndarray:
    """Louvain on the undirected link graph alone; a note without links is a topic of its own."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((a, b) for a, b in links if a != b)
    labels = np.empty(n, np.int64)
    for c, members in enumerate(nx.community.louvain_communities(graph, seed=SEED)):
        labels[list(members)] = c
    return labels


def kmeans(vectors: np.ndarray, k: int, restarts: int = 5, iterations: int = 100) -> np.ndarray:
    """Seeded k-means (k-means++ start, the best of a few restarts by inertia)."""
    rng = np.random.default_rng(SEED)
    best, best_inertia = None, math.inf
    squared = (vectors ** 2).sum(1)
    for _ in range(restarts):
        centres = [vectors[rng.integers(len(vectors))]]
        for _ in range(1, k):
            d = np.min(squared[:, None] - 2 * vectors @ np.array(centres).T + (np.array(centres) ** 2).sum(1), axis=1)
            d = np.maximum(d, 0)
            centres.append(vectors[rng.choice(len(vectors), p=d / d.sum() if d.sum() > 0 else None)])
        centres = np.array(centres)
        for _ in range(iterations):
            d = squared[:, None] - 2 * vectors @ centres.T + (centres ** 2).sum(1)
            labels = d.argmin(1)
            moved = np.array([vectors[labels == c].mean(0) if (labels == c).any() else centres[c] for c in range(k)])
            if np.allclose(moved, centres):
                break
            centres = moved
        inertia = float(d[np.arange(len(vectors)), labels].sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


# ------------------------------------------------------------------ stability


EDITED_SHARE = 0.01


def edited_input(corpus: Corpus, notes: TopicInput, share: float = EDITED_SHARE) -> tuple[TopicInput, list[str]]:
    """The same notes after `share` of them (chosen at random among the notes of two sections or more) lost
    their last section: a real edit, with the vectors the model gave the sections that remain."""
    rng = np.random.default_rng(SEED)
    several = [i for i, p in enumerate(notes.paths) if len(corpus.rows_of(corpus.index[p])) >= 2]
    chosen = sorted(rng.choice(several, size=max(1, round(share * len(notes.paths))), replace=False).tolist())
    vectors = notes.vectors.copy()
    for i in chosen:
        rows = corpus.rows_of(corpus.index[notes.paths[i]])[:-1]
        raw = corpus.store.gather_vectors(corpus.chunk_vid[rows]).mean(axis=0, keepdims=True)
        raw /= np.linalg.norm(raw)
        vectors[i] = centre_on(raw, corpus.note_mean)[0]
    return TopicInput(notes.paths, notes.titles, vectors, notes.links, notes.private), [notes.paths[i] for i in chosen]


def matched(before: list, after: list) -> dict[str, str]:
    """New topic id -> old topic id, one to one, the pairs sharing the most notes first."""
    overlaps = sorted(((len(set(a.notes) & set(b.notes)), b.id, a.id) for a in after for b in before), reverse=True)
    pairs: dict[str, str] = {}
    taken: set[str] = set()
    for shared, old, new in overlaps:
        if shared and new not in pairs and old not in taken:
            pairs[new] = old
            taken.add(old)
    return pairs


def stability(before: list, after: list, level: int) -> dict:
    """Share of notes whose topic (matched by overlap) is the same after the edit, the share that keep
    their topic's id, and share of the matched topics whose notes barely changed (at most one in ten)
    that kept their name."""
    old = [t for t in before if t.level == level]
    new = [t for t in after if t.level == level]
    pairs = matched(old, new)
    topic_before = {p: t.id for t in old for p in t.notes}
    kept = sum(1 for t in new for p in t.notes if pairs.get(t.id) == topic_before.get(p))
    same_id = sum(1 for t in new for p in t.notes if t.id == topic_before.get(p))
    by_id = {t.id: t for t in old}
    close = [(t, by_id[pairs[t.id]]) for t in new if t.id in pairs
             and len(set(t.notes) ^ set(by_id[pairs[t.id]].notes)) <= 0.1 * len(by_id[pairs[t.id]].notes)]
    return {"notes_kept": kept / max(len(topic_before), 1), "ids_kept": same_id / max(len(topic_before), 1),
            "names_kept": sum(a.name == b.name for a, b in close) / max(len(close), 1), "barely_changed": len(close),
            "topics": len(old)}


# ------------------------------------------------------------------ labels


def label_of(note, rule: str) -> str | None:
    kind, _, arg = rule.partition(":")
    if kind == "folder":
        parts = note.path.split("/")[:-1]
        depth = int(arg or 1)
        return "/".join(parts[:depth]) if len(parts) >= depth else None
    if kind == "tag":
        prefix, _, ignored = arg.partition("!")
        skip = {t.lower() for t in ignored.split(",") if t}
        for tag in note.tags:
            if tag.lower().startswith(prefix.lower()) and tag.lower() not in skip:
                return tag.lower()
        return None
    return None


# ------------------------------------------------------------------ the run


def run(vault: Path, rule: str, state: Path, index: bool) -> dict:
    settings = replace(Settings(), state_dir=str(state), **{"models.verify": False})
    app = App(settings, vault.resolve())
    if index:
        app.indexer.run()
    corpus = Corpus(app.store)
    notes = topic_input(corpus)
    n = len(notes.paths)
    read = {p: app.scanner.read(p) for p in notes.paths}

    started = time.perf_counter()
    graph = topic_graph(notes)
    graph_seconds = time.perf_counter() - started

    def sentences(path: str) -> list[str]:
        note = read[path]
        return [] if isinstance(note, Skipped) else [s.text for s in sentences_of(note)]

    def text(path: str) -> str:
        return "\n".join(chunk.text for chunk in app.store.chunks_of(path))

    started = time.perf_counter()
    topics = build_topics(notes, text, sentences, graph=graph)
    topic_seconds = time.perf_counter() - started
    at = {p: i for i, p in enumerate(notes.paths)}
    levels = {}
    for level in (0, 1):
        labels = np.full(n, -1, np.int64)
        for t, topic in enumerate(t for t in topics if t.level == level):
            labels[[at[p] for p in topic.notes]] = t
        assert (labels >= 0).all(), "every note in one topic per level"
        levels[level] = labels

    human = [None if isinstance(read[p], Skipped) else label_of(read[p], rule) for p in notes.paths]
    scored = np.array([h is not None for h in human])
    names = {h: i for i, h in enumerate(sorted({h for h in human if h is not None}))}
    truth = np.array([names.get(h, -1) for h in human], dtype=np.int64)
    rows = []
    links_only = link_louvain(n, notes.links)
    methods = [("ideaweave level 0", levels[0]), ("ideaweave level 1", levels[1]),
               ("Louvain, links alone", links_only)]
    for level in (0, 1):
        k = len(np.unique(levels[level]))
        methods.append((f"k-means, k = {k} (as level {level})", kmeans(notes.vectors, k)))
    for name, labels in methods:
        row = {"method": name, "topics": int(len(np.unique(labels)))}
        if scored.sum() > 1:
            row["nmi"] = nmi(truth[scored], labels[scored])
            row["ari"] = adjusted_rand(truth[scored], labels[scored])
        row["nmi_vs_level0"] = nmi(levels[0], labels)
        rows.append(row)
    edited, which = edited_input(corpus, notes)
    started = time.perf_counter()
    after = build_topics(edited, text, sentences, previous=topics)
    update_seconds = time.perf_counter() - started
    afresh = build_topics(edited, text, sentences)
    steady = {level: stability(topics, after, level) for level in (0, 1)}
    unseeded = {level: stability(topics, afresh, level) for level in (0, 1)}
    return {
        "stability": {"edited": len(which), "seconds": round(update_seconds, 2),
                      **{f"level {k}": v for k, v in steady.items()},
                      "afresh": {f"level {k}": v for k, v in unseeded.items()}},
        "vault": str(vault), "notes": n, "labelled": int(scored.sum()),
        "human_labels": dict(Counter(h for h in human if h is not None).most_common()),
        "links": len(notes.links), "edges": graph.number_of_edges(),
        "seconds": {"graph": round(graph_seconds, 2), "communities_and_names": round(topic_seconds, 2)},
        "methods": rows,
        "level0": [{"name": t.name, "notes": len(t.notes), "central": t.central, "description": t.description}
                   for t in topics if t.level == 0],
    }


def synthetic_input(n: int, centres: int = 300, dim: int = 384) -> TopicInput:
    """Stand-in notes for scale: unit vectors around `centres` random centres (each note about as close to its
    centre as to noise, cosine 0.5 within a cluster), and 2n random links, one in four inside a cluster."""
    rng = np.random.default_rng(SEED)
    centre = rng.integers(centres, size=n)
    vectors = rng.normal(size=(centres, dim)).astype(np.float32)[centre] + rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a = rng.integers(n, size=2 * n)
    b = rng.integers(n, size=2 * n)
    inside = rng.random(2 * n) < 0.25
    by_centre = [np.flatnonzero(centre == c) for c in range(centres)]
    b[inside] = [rng.choice(by_centre[centre[x]]) for x in a[inside]]
    paths = [f"c{centre[i]}/n{i}.md" for i in range(n)]
    return TopicInput(paths, paths, vectors, sorted(zip(a.tolist(), b.tolist())), np.zeros(n, bool))


def edited_vectors(notes: TopicInput, count: int, seed: int) -> TopicInput:
    """The notes after `count` of them were edited: their vectors moved a little."""
    rng = np.random.default_rng(seed)
    vectors = notes.vectors.copy()
    edited = rng.choice(len(vectors), size=count, replace=False)
    vectors[edited] += 0.5 * rng.normal(size=(len(edited), vectors.shape[1])).astype(np.float32) / math.sqrt(vectors.shape[1])
    vectors[edited] /= np.linalg.norm(vectors[edited], axis=1, keepdims=True)
    return TopicInput(notes.paths, notes.titles, vectors, notes.links, notes.private)


def run_synthetic(n: int) -> dict:
    """Time the whole answer (graph, both levels, names) for n stand-in notes, then the update after 1% of
    them are edited (their vectors moved a little), seeded with the first answer; then the daemon's way
    (`TopicState`: the graph kept between updates) after one edited note, three times, and after 1%.
    Wall-clock and CPU seconds (the CPU figure is what one core would take on a machine that is not shared)."""
    notes = synthetic_input(n)
    words = {p: p.split("/")[0] for p in notes.paths}
    timings = {}

    def timed(name, work):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        timings[name] = {"wall": round(time.perf_counter() - wall, 3), "cpu": round(time.process_time() - cpu, 3)}
        return result

    graph = timed("graph", lambda: topic_graph(notes))
    topics = timed("communities_and_names", lambda: build_topics(notes, words.get, lambda p: [], graph=graph))
    moved = edited_vectors(notes, max(1, n // 100), SEED + 1)
    after = timed("update_after_1pct_edited", lambda: build_topics(moved, words.get, lambda p: [], previous=topics))
    state = TopicState()
    kept = timed("incremental_build", lambda: state.build(notes, words.get, lambda p: [], previous=()))
    incremental = {}
    current, answer = notes, kept
    for attempt in range(3):
        current = edited_vectors(current, 1, SEED + 10 + attempt)
        answer = timed(f"incremental_update_one_edited_{attempt + 1}", lambda: state.update(current, words.get, lambda p: []))
    incremental["one edited (3 in turn)"] = {f"level {level}": stability(kept, answer, level) for level in (0, 1)}
    before = answer
    current = edited_vectors(current, max(1, n // 100), SEED + 20)
    answer = timed("incremental_update_1pct_edited", lambda: state.update(current, words.get, lambda p: []))
    incremental["1% edited"] = {f"level {level}": stability(before, answer, level) for level in (0, 1)}
    return {"notes": n, "edges": graph.number_of_edges(), "seconds": timings,
            "topics": {level: sum(t.level == level for t in topics) for level in (0, 1)},
            "stability": {f"level {level}": stability(topics, after, level) for level in (0, 1)},
            "incremental_stability": incremental}


def table(result: dict) -> str:
    lines = ["| method | topics | NMI | ARI | NMI with ideaweave level 0 |", "|---|---|---|---|---|"]
    for row in result["methods"]:
        nmi_text = f"{row['nmi']:.3f}" if "nmi" in row else "-"
        ari_text = f"{row['ari']:.3f}" if "ari" in row else "-"
        lines.append(f"| {row['method']} | {row['topics']} | {nmi_text} | {ari_text} | {row['nmi_vs_level0']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vault", type=Path, nargs="?")
    parser.add_argument("--synthetic", type=int, metavar="N", help="time N stand-in notes instead of a vault")
    parser.add_argument("--labels", default="none", help="folder:D, tag:PREFIX[!ignored,tags] or none")
    parser.add_argument("--state", type=Path, help="the index's folder (default: a temporary one)")
    parser.add_argument("--no-index", action="store_true", help="use the index in --state as it is")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.synthetic:
        print(json.dumps(run_synthetic(args.synthetic), indent=2))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        result = run(args.vault, args.labels, args.state or Path(scratch), not args.no_index)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{result['vault']}: {result['notes']} notes, {result['labelled']} labelled ({args.labels}), "
          f"{result['links']} links, {result['edges']} edges; graph {result['seconds']['graph']} s, "
          f"communities and names {result['seconds']['communities_and_names']} s")
    print(table(result))
    steady = result["stability"]
    print(f"\nstability after {steady['edited']} notes lost their last section (update {steady['seconds']} s):")
    for label, rows in (("seeded with the last answer", steady), ("built afresh", steady["afresh"])):
        print(f"  {label}:")
        for level in (0, 1):
            row = rows[f"level {level}"]
            print(f"    level {level}: {row['notes_kept']:.3f} of the notes keep their topic ({row['ids_kept']:.3f} its id); "
                  f"{row['names_kept']:.3f} of the {row['barely_changed']} topics (of {row['topics']}) whose notes "
                  f"barely changed keep their name")
    print("\nlevel-0 topics:")
    for t in result["level0"]:
        print(f"  {t['notes']:4d}  {t['name']}  [{t['central']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
