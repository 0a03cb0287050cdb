#!/usr/bin/env python3
"""Search ablations, in one process: each component of note-level search alone and fused, on a vault whose
notes carry a one-line `description:` (the query; its own note is the one right answer), as the shared
search benchmark builds its queries.

Usage:
  python bench/search_ablation.py VAULT [--queries 200] [--state DIR]

The copy of the vault (descriptions removed) is indexed once with the real model; every variant then
ranks the same queries through ideaweave's own search code and the figures print as a table (hit@1,
hit@10, MRR@10). `ideaweave search` itself is measured by the shared benchmark, which runs the CLI.

Two levers not in search yet are measured here too:
- a per-note vector of the title with the first paragraph, embedded here for every note, fused at a few
  weights (the index would keep it as one more vector per note);
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

from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.relate import zscore  # noqa: E402
from ideaweave.search import SEARCH_WEIGHTS, note_components, question_query, search  # noqa: E402
from ideaweave.vectors import row_norms  # noqa: E402

GRID = (0.0, 0.25, 0.5, 1.0)  # each weight's values in the learned-weights search

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


def title_lead_vectors(app, paths: list[str]) -> dict[str, np.ndarray]:
    """{note: unit vector of "title. first paragraph"}."""
    flags = app.store.note_flags()
    texts = [f"{flags[p][0]}. {first_paragraph(app.read_body(p) or '')}" for p in paths]
    vectors = np.asarray(app.embedder.embed(texts), dtype=np.float32)
    return dict(zip(paths, vectors / np.maximum(row_norms(vectors), 1e-9)[:, None]))


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
    grid = np.array(list(itertools.product(GRID, repeat=len(names))))
    grid = grid[grid.sum(axis=1) > 0]
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
    lead_of = title_lead_vectors(app, app.store.note_paths())
    for p, q in zip(parts, asked):
        unit = q.vector / max(float(np.linalg.norm(q.vector)), 1e-9)
        p.parts["titlelead"] = np.array([float(lead_of[path] @ unit) for path in p.paths])
    variants = {f"{name} alone": {name: 1.0} for name in SEARCH_WEIGHTS}
    variants["title + first paragraph vector alone"] = {"titlelead": 1.0}
    for weight in (0.25, 0.5, 1.0):
        variants[f"fused + title & first paragraph {weight}"] = dict(SEARCH_WEIGHTS, titlelead=weight)
    variants["fused (weights as shipped)"] = dict(SEARCH_WEIGHTS)
    for name in SEARCH_WEIGHTS:
        variants[f"fused without {name}"] = {k: v for k, v in SEARCH_WEIGHTS.items() if k != name}
    for label, weights in variants.items():
        rows[label] = [score(p.ranked(weights, 10), n) for p, n in zip(parts, sample)]
    for names in (list(SEARCH_WEIGHTS), list(SEARCH_WEIGHTS) + ["titlelead"]):
        mrr, chosen = learned_weights(parts, sample, names)
        label = "learned weights, 2-fold" + (" (+ title & first paragraph)" if "titlelead" in names else "")
        print(f"{label}: MRR@10 {mrr:.3f}; chosen: {chosen}")
    print(f"{len(sample)} queries over {len(app.store.note_paths())} notes; search {seconds * 1000:.1f} ms per query")
    print(f"{'variant':34} hit@1  hit@10 MRR@10")
    for label, values in rows.items():
        means = [sum(v[i] for v in values) / len(values) for i in range(3)]
        print(f"{label:34} {means[0]:.3f}  {means[1]:.3f}  {means[2]:.3f}")
    app.close()


if __name__ == "__main__":
    main()
