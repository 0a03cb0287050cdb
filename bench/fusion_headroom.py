"""How far can re-weighting `related`'s evidence go? Fusions of the same components, scored on a linkpred run.

    python bench/fusion_headroom.py MASKED_VAULT RESULT_JSON [--state DIR]

MASKED_VAULT is the masked copy `linkpred.py --masked DIR` wrote and ideaweave indexed (`--external 'ideaweave
related ...'`, with XDG_STATE_HOME=DIR so the index is found again); RESULT_JSON is that run's
`OUT/NAME.RANKER.json` (its query notes and their removed links). Every fusion is scored in this process on the
same components, as recall@10 and MRR over the run's queries, through the same candidates and diversity step
as `related`:

- the fixed default weights (the row should match the linkpred run);
- each component alone;
- weights fitted by coordinate ascent on the vault's own links (its other linked notes, each ranked as if its
  own links were not written yet: what per-vault calibration can learn);
- weights fitted on the benchmark's queries themselves (an upper bound for any weighting of these components:
  in-sample, so not reachable by a fit that does not see the answers);
- a logistic ranker over the components plus candidate features (in-degree, same folder, length, two
  interactions), fitted on the vault's own links and, as its upper bound, on the queries.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.calibrate import components_unlinked  # noqa: E402
from ideaweave.config import Settings  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.relate import COMPONENTS, DEFAULT_WEIGHTS, Relater, diversify, standardised  # noqa: E402

EXTRA = ("indeg", "folder", "length", "chunk_x_aa", "title_x_emb")


def query(relater: Relater, path: str, gold: set[str], body: str | None) -> dict:
    """Features of every candidate note for one query; `body` given: a note of the vault ranked as if its
    own links were not written yet (its outgoing links removed from the graph, their text cut out)."""
    c = relater.corpus
    q = c.index[path]
    parts = components_unlinked(relater, path, body) if body is not None else relater.components(q)
    candidates = ~c.template & ~c.private
    candidates[q] = False
    for other in (c.graph.outlinks(path) if body is None else ()):
        candidates[c.index[other]] = False
    z = standardised(parts, candidates)
    indegree = np.array([len(c.graph.backlinks(p)) - (p in gold and body is not None) for p in c.paths], float)
    folder = posixpath.dirname(path)
    features = {name: z[name] for name in COMPONENTS}
    features.update(indeg=np.log1p(np.maximum(indegree, 0)),
                    folder=np.array([posixpath.dirname(p) == folder for p in c.paths], float),
                    length=np.log1p(np.diff(c.chunk_start).astype(float)),
                    chunk_x_aa=z["chunk"] * z["aa"], title_x_emb=z["title"] * z["emb"])
    return {"features": features, "candidates": candidates, "gold": np.array([p in gold for p in c.paths]),
            "gold_count": len(gold)}


def matrix(sample: dict, names: list[str]) -> np.ndarray:
    return np.stack([sample["features"][n] for n in names], axis=1)


def metrics(samples: list[dict], vectors: np.ndarray, names: list[str], weights: np.ndarray) -> tuple[float, float]:
    recall, rr = [], []
    for s in samples:
        scores = np.where(s["candidates"], matrix(s, names) @ weights, -np.inf)
        hits = s["gold"][diversify(scores, vectors, 10)]
        recall.append(hits.sum() / s["gold_count"])
        rr.append(next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0))
    return float(np.mean(recall)), float(np.mean(rr))


def ascent(samples, vectors, names, start: np.ndarray) -> np.ndarray:
    """Coordinate ascent on recall@10 + MRR/2, the first weight fixed as the scale."""
    def score(w):
        r, m = metrics(samples, vectors, names, w)
        return r + m / 2
    weights, best = start.copy(), score(start)
    for _ in range(2):
        for i in range(1, len(names)):
            for multiplier in (0.0, 0.5, 0.75, 1.33, 2.0):
                trial = weights.copy()
                trial[i] = max(weights[i], 0.05) * multiplier
                value = score(trial)
                if value > best + 1e-4:
                    best, weights = value, trial
    return weights


def logistic(samples, names, l2: float = 1.0, pool: int = 200) -> np.ndarray:
    """Pointwise logistic regression (Newton steps, balanced classes) over each query's best `pool`
    candidates by the default fusion, plus its gold notes."""
    base = [n for n in names if n in COMPONENTS]
    prior = np.array([DEFAULT_WEIGHTS[n] for n in base])
    xs, ys = [], []
    for s in samples:
        fused = np.where(s["candidates"], matrix(s, base) @ prior, -np.inf)
        rows = np.union1d(np.argsort(-fused)[:pool], np.flatnonzero(s["gold"] & s["candidates"]))
        xs.append(matrix(s, names)[rows])
        ys.append(s["gold"][rows].astype(float))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    x = np.c_[(x - mean) / std, np.ones(len(x))]
    balance = np.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = np.zeros(x.shape[1])
    ridge = l2 * np.diag(np.r_[np.ones(len(names)), 0.0])
    for _ in range(25):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (balance * (p - y)) + ridge @ w
        hessian = (x * (balance * p * (1 - p))[:, None]).T @ x + ridge
        w -= np.linalg.solve(hessian, gradient)
    return w[:-1] / std


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masked", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--state", help="XDG_STATE_HOME of the linkpred run (default: the environment's)")
    args = parser.parse_args()
    env = dict(os.environ, **({"XDG_STATE_HOME": args.state} if args.state else {}))
    app = App(Settings(), args.masked, env)
    corpus = Corpus(app.store)
    relater = Relater(corpus.with_graph(corpus.graph.copy()), DEFAULT_WEIGHTS)
    runs = json.loads(args.result.read_text())["per_query"]
    queries = [query(relater, r["note"], set(r["gold"]), None) for r in runs if r["note"] in corpus.index]
    asked = {r["note"] for r in runs}
    own = []
    for i, path in enumerate(corpus.paths):
        links = corpus.graph.outlinks(path)
        body = app.read_body(path) if len(links) >= 2 and not corpus.template[i] and path not in asked else None
        if body is not None:
            own.append(query(relater, path, links, body))
    vectors = corpus.note_vectors
    names = list(COMPONENTS)
    defaults = np.array([DEFAULT_WEIGHTS[n] for n in names])
    rows = [("fixed default weights", metrics(queries, vectors, names, defaults))]
    for i, name in enumerate(names):
        rows.append((f"{name} alone", metrics(queries, vectors, names, np.eye(len(names))[i])))
    rows.append((f"weights fitted on the vault's own links ({len(own)} notes)",
                 metrics(queries, vectors, names, ascent(own, vectors, names, defaults))))
    rows.append(("weights fitted on the queries themselves (upper bound)",
                 metrics(queries, vectors, names, ascent(queries, vectors, names, defaults))))
    wide = names + list(EXTRA)
    rows.append(("logistic, components + candidate features, fitted on the vault's own links",
                 metrics(queries, vectors, wide, logistic(own, wide))))
    rows.append(("logistic, the same, fitted on the queries themselves",
                 metrics(queries, vectors, wide, logistic(queries, wide))))
    print(f"{len(queries)} queries, {len(corpus)} notes\n")
    print("| fusion | recall@10 | MRR |\n|---|---|---|")
    for label, (recall, mrr) in rows:
        print(f"| {label} | {recall:.3f} | {mrr:.3f} |")
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
