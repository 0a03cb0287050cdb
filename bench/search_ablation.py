#!/usr/bin/env python3
"""Search ablations, in one process: each component of note-level search alone and fused, on a vault whose
notes carry a one-line `description:` (the query; its own note is the one right answer), as the shared
search benchmark builds its queries.

Usage:
  python bench/search_ablation.py VAULT [--queries 200] [--state DIR]

The copy of the vault (descriptions removed) is indexed once with the real model; every variant then
ranks the same queries through ideaweave's own search code and the figures print as a table (hit@1,
hit@10, MRR@10). `ideaweave search` itself is measured by the shared benchmark, which runs the CLI.

Levers not in search are measured here too, each alone and added to the shipped fusion:
- per-note vectors the index would have to keep (embedded here for every note): the title with the first
  paragraph; openings (the title with the first 1 or 3 sentences); the title with the aliases;
- sentence-level evidence (every sentence of every note embedded, `prose.sentences_of`): the best sentence,
  the best of the first three, the first sentence, the mean of the best two; with the tokens it would
  add to the index;
- other fusions: reciprocal rank instead of z-scores, and z-scores over the first 30 only (a second stage);
- weights learned on the vault: every combination of weights on a grid, chosen on half of the queries and
  scored on the other half (2-fold, both ways): what fitting the weights to a vault can give at best, since
  it learns from the real queries where a vault would learn from pseudo-queries.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

import numpy as np  # noqa: E402

from ideaweave.app import App, scan_rules  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.prose import sentences_of  # noqa: E402
from ideaweave.relate import zscore  # noqa: E402
from ideaweave.search import SEARCH_WEIGHTS, note_components, question_query, search  # noqa: E402
from ideaweave.vault import parse_note  # noqa: E402
from ideaweave.vectors import row_norms  # noqa: E402

GRID = (0.0, 0.25, 0.5, 1.0)  # each weight's values in the learned-weights search
LEARNED = ("section", "lead", "note", "keywords", "title")  # the components whose weights are learned
SECOND_STAGE = 30  # candidates standardised by the second-stage variant

DESCRIPTION = re.compile(r"^description: (.*)\n", re.M)


def strip_descriptions(vault: Path) -> dict[str, str]:
    """Remove the `description:` line of every note in place; {note: description} for those of 5+ words."""
    queries = {}
    for path in sorted(vault.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        m = re.match(r"---\n(.*?\n)---\n", text, re.S)
        found = DESCRIPTION.search(m.group(1)) if m else None
        if not found:
            continue
        value = found.group(1)
        query = json.loads(value) if value.startswith('"') else value
        path.write_text(text[:m.start(1)] + DESCRIPTION.sub("", m.group(1), count=1) + text[m.end(1):], encoding="utf-8")
        if len(query.split()) >= 5:
            queries[path.relative_to(vault).as_posix()] = query
    return queries


def score(ranked: list[str], gold: str) -> tuple[float, float, float]:
    r = ranked.index(gold) + 1 if gold in ranked else 0
    return float(r == 1), float(0 < r <= 10), 1 / r if 0 < r <= 10 else 0.0


def first_paragraph(body: str) -> str:
    """The note's first paragraph of prose (headings, lists of links and empty blocks skipped)."""
    for block in re.split(r"\n\s*\n", body):
        text = " ".join(line for line in block.strip().splitlines() if not line.lstrip().startswith("#"))
        text = re.sub(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]", r"\1", text)
        if len(text.split()) >= 5:
            return text
    return ""


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(row_norms(vectors), 1e-9)[:, None]


def note_extras(app, paths: list[str]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], dict]:
    """Per-note vectors ({lever: {note: unit vector}}), every note's sentence vectors, and token counts."""
    rules = scan_rules(app.settings)
    notes = {p: parse_note(p, (app.root / p).read_bytes(), 0, rules, "") for p in paths}
    sentences = {p: [s.text for s in sentences_of(n)] for p, n in notes.items()}
    flags = app.store.note_flags()
    texts = {
        "title + first paragraph": [f"{flags[p][0]}. {first_paragraph(app.read_body(p) or '')}" for p in paths],
        "opening: title + first sentence": [f"{flags[p][0]}. {' '.join(sentences[p][:1])}" for p in paths],
        "opening: title + first 3 sentences": [f"{flags[p][0]}. {' '.join(sentences[p][:3])}" for p in paths],
        "title + aliases": ["; ".join([flags[p][0], *flags[p][3]]) for p in paths],
    }
    vectors = {name: dict(zip(paths, unit_rows(app.embedder.embed(t)))) for name, t in texts.items()}
    flat = [s for p in paths for s in sentences[p]]
    embedded = unit_rows(app.embedder.embed(flat)) if flat else np.zeros((0, app.embedder.dim), np.float32)
    bounds = np.cumsum([0] + [len(sentences[p]) for p in paths])
    sentence_vectors = {p: embedded[bounds[i]:bounds[i + 1]] for i, p in enumerate(paths)}
    tokens = {"sentences": len(flat), "sentence tokens": sum(app.embedder.count_tokens(s) for s in flat),
              "section tokens": sum(app.embedder.count_tokens(c.text) for p in paths for c in app.store.chunks_of(p))}
    for name, t in texts.items():
        tokens[f"{name} tokens"] = sum(app.embedder.count_tokens(x) for x in t)
    return vectors, sentence_vectors, tokens


def add_extra_parts(evidence, query_vector: np.ndarray, vectors: dict, sentence_vectors: dict) -> None:
    """The levers not in search, as more components of one query's candidates."""
    unit = query_vector / max(float(np.linalg.norm(query_vector)), 1e-9)
    for name, of_note in vectors.items():
        evidence.parts[name] = np.array([float(of_note[p] @ unit) if p in of_note else -1.0 for p in evidence.paths])
    sims = [sentence_vectors[p] @ unit if len(sentence_vectors.get(p, ())) else np.array([-1.0]) for p in evidence.paths]
    evidence.parts["best sentence"] = np.array([s.max() for s in sims])
    evidence.parts["best of the first 3 sentences"] = np.array([s[:3].max() for s in sims])
    evidence.parts["first sentence"] = np.array([s[0] for s in sims])
    evidence.parts["mean of the best 2 sentences"] = np.array([np.sort(s)[-2:].mean() for s in sims])


def reciprocal_rank_fused(evidence, weights: dict[str, float], k: int = 60) -> list[str]:
    """Each component's rank turned into weight / (k + rank) and added (a negative weight ranks that
    component from its low end)."""
    total = np.zeros(len(evidence.paths))
    for name, weight in weights.items():
        order = np.argsort(-np.sign(weight) * evidence.parts[name], kind="stable")
        rank = np.empty(len(order))
        rank[order] = np.arange(1, len(order) + 1)
        total += abs(weight) / (k + rank)
    return [evidence.paths[i] for i in np.argsort(-total, kind="stable")[:10]]


def second_stage(evidence, weights: dict[str, float], n: int = SECOND_STAGE) -> list[str]:
    """The first n of the fusion ranked again, each component standardised over those n only."""
    top = np.argsort(-evidence.fused(weights), kind="stable")[:n]
    chosen = np.zeros(len(evidence.paths), dtype=bool)
    chosen[top] = True
    total = sum(w * zscore(evidence.parts[name], chosen) for name, w in weights.items())
    order = top[np.argsort(-total[top], kind="stable")]
    return [evidence.paths[i] for i in order[:10]]


def gold_rank_scores(z: np.ndarray, gold: int, weights: np.ndarray) -> np.ndarray:
    """Reciprocal rank@10 of the gold candidate under every row of `weights` (components x candidates z)."""
    if gold < 0:
        return np.zeros(len(weights))
    fused = weights @ z
    # Ties are broken by candidate order, as the stable sort in NoteEvidence.ranked does.
    ahead = (fused > fused[:, [gold]]).sum(axis=1) + (fused[:, :gold] == fused[:, [gold]]).sum(axis=1)
    rank = ahead + 1
    return np.where(rank <= 10, 1.0 / rank, 0.0)


def learned_weights(parts, sample: list[str], names: list[str]) -> tuple[float, list[dict]]:
    """2-fold cross-validated MRR@10 of grid-searched weights, and the weights each fold chose."""
    # A component that counts against a note (centrality) is searched over negative weights.
    axes = [[-g for g in GRID] if SEARCH_WEIGHTS.get(n, 1.0) < 0 else list(GRID) for n in names]
    grid = np.array(list(itertools.product(*axes)))
    grid = grid[np.abs(grid).sum(axis=1) > 0]
    rr = []
    for p, gold in zip(parts, sample):
        every = np.ones(len(p.paths), dtype=bool)
        z = np.stack([zscore(p.parts[n].astype(float), every) for n in names])
        rr.append(gold_rank_scores(z, p.paths.index(gold) if gold in p.paths else -1, grid))
    rr = np.stack(rr)  # queries x grid
    folds = np.arange(len(sample)) % 2
    scores, chosen = [], []
    for fold in (0, 1):
        best = int(np.argmax(rr[folds != fold].mean(axis=0)))
        chosen.append(dict(zip(names, grid[best].tolist())))
        scores.append(rr[folds == fold, best])
    return float(np.concatenate(scores).mean()), chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vault")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--state")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="search-ablation-"))
    vault = work / "vault"
    shutil.copytree(a.vault, vault)
    queries = strip_descriptions(vault)
    sample = sorted(queries)
    random.Random(0).shuffle(sample)
    sample = sorted(sample[:a.queries])
    app = App(replace(Settings(), state_dir=a.state or str(work / "state")), vault)
    app.indexer.run()
    rows = {}
    started = time.perf_counter()
    results = [[h.path for h in search(app.store, app.embedder, queries[n], k=10)] for n in sample]
    rows["search (as shipped)"] = [score(r, n) for r, n in zip(results, sample)]
    seconds = (time.perf_counter() - started) / len(sample)
    asked = [question_query(app.embedder, queries[n]) for n in sample]
    parts = [note_components(app.store, q) for q in asked]
    vectors, sentence_vectors, tokens = note_extras(app, app.store.note_paths())
    for p, q in zip(parts, asked):
        add_extra_parts(p, q.vector, vectors, sentence_vectors)
    levers = list(vectors) + ["best sentence", "best of the first 3 sentences", "first sentence",
                              "mean of the best 2 sentences"]
    # A component alone ranks by its own direction: a note's centrality counts against it.
    variants = {f"{name} alone": {name: 1.0 if weight > 0 else -1.0} for name, weight in SEARCH_WEIGHTS.items()}
    variants["fused (weights as shipped)"] = dict(SEARCH_WEIGHTS)
    for name in SEARCH_WEIGHTS:
        variants[f"fused without {name}"] = {k: v for k, v in SEARCH_WEIGHTS.items() if k != name}
    for name in levers:
        variants[f"{name} alone"] = {name: 1.0}
        for weight in (0.25, 0.5, 1.0):
            variants[f"fused + {name} {weight}"] = dict(SEARCH_WEIGHTS, **{name: weight})
    for label, weights in variants.items():
        rows[label] = [score(p.ranked(weights, 10), n) for p, n in zip(parts, sample)]
    rows["reciprocal rank fusion (k 60), shipped weights"] = [
        score(reciprocal_rank_fused(p, SEARCH_WEIGHTS), n) for p, n in zip(parts, sample)]
    rows[f"z-scores over the first {SECOND_STAGE} only"] = [score(second_stage(p, SEARCH_WEIGHTS), n)
                                                           for p, n in zip(parts, sample)]
    for names in (list(LEARNED), list(SEARCH_WEIGHTS), list(SEARCH_WEIGHTS) + ["title + first paragraph"]):
        mrr, chosen = learned_weights(parts, sample, names)
        print(f"learned weights, 2-fold, over {', '.join(names)}: MRR@10 {mrr:.3f}; chosen: {chosen}")
    print(f"{len(sample)} queries over {len(app.store.note_paths())} notes; search {seconds * 1000:.1f} ms per query")
    print("tokens embedded: " + ", ".join(f"{k} {v:,}" for k, v in tokens.items()))
    width = max(len(label) for label in rows)
    print(f"{'variant':{width}} hit@1  hit@10 MRR@10")
    for label, values in rows.items():
        means = [sum(v[i] for v in values) / len(values) for i in range(3)]
        print(f"{label:{width}} {means[0]:.3f}  {means[1]:.3f}  {means[2]:.3f}")
    app.close()


if __name__ == "__main__":
    main()
