"""What approximate search costs in quality: the inverted file that large vaults use against exact search,
on an index built by ideaweave (real vectors).

    python bench/ann_recall.py STATE_DIR [--queries 300] [--notes 200] [--probes 16]

1. Vector search: for stored section vectors taken as queries, recall@10 and recall@100 of the inverted
   file (as the store builds it above EXACT_LIMIT vectors) against an exact scan, and the time per query.
2. Related notes: for sampled notes, how many of the top 10 the approximate ranking shares with the exact
   one, with and without the keyword evidence (large vaults rank without it: FTS5 is too slow there).

The state folder is only read: the inverted-file ranking runs on a copy of it.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave import vectors as vector_index  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.relate import DEFAULT_WEIGHTS, Relater  # noqa: E402
from ideaweave.store import Store  # noqa: E402


def open_store(state: Path) -> Store:
    """The index with the model and dimension it was built with."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'index.sqlite3'}?mode=ro", uri=True)) as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
    return Store.open(state, int(meta["dim"]), meta["model_id"])


def vector_recall(exact: Store, approximate: Store, queries: int, seed: int) -> dict:
    """Stored section vectors as queries: the inverted file the store built against the exact scan."""
    ids = np.unique(exact.chunk_table()[2])
    rng = np.random.default_rng(seed)
    sample = exact.gather_vectors(np.sort(rng.choice(ids, size=min(queries, len(ids)), replace=False)))
    search = approximate.vector_search()
    result = {"vectors": len(ids), "lists": search["clusters"], "probes": search["probed"], "queries": len(sample)}
    for name, store in (("exact", exact), ("ivf", approximate)):
        times = []
        for q in sample:
            started = time.perf_counter()
            store.search_vectors(q, 100)
            times.append(time.perf_counter() - started)
        result[f"{name}_ms_per_query"] = round(1000 * statistics.median(times), 3)
    _, truth = exact.search_vectors(sample, 100)
    _, found = approximate.search_vectors(sample, 100)
    for k in (10, 100):
        result[f"recall@{k}"] = round(float(np.mean([len(set(t[:k]) & set(f[:k])) / len(t[:k]) for t, f in zip(truth, found)])), 4)
    return result


def related_agreement(exact_store: Store, approximate_store: Store, notes: int, seed: int) -> dict:
    exact, approximate = Corpus(exact_store), Corpus(approximate_store)
    eligible = [p for i, p in enumerate(exact.paths) if not exact.template[i]]
    chosen = random.Random(seed).sample(eligible, min(notes, len(eligible)))
    without_keywords = dict(DEFAULT_WEIGHTS, bm25=0.0)
    rankers = {"exact": Relater(exact), "exact_no_keywords": Relater(exact, without_keywords),
               "ivf": Relater(approximate)}
    tops = {name: [[s.path for s in r.rank(p, k=10)] for p in chosen] for name, r in rankers.items()}

    def overlap(a: str, b: str) -> float:
        return round(float(np.mean([len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(tops[a], tops[b])])), 4)
    return {"notes": len(chosen), "top10_shared_ivf_vs_exact_without_keywords": overlap("ivf", "exact_no_keywords"),
            "top10_shared_ivf_vs_exact": overlap("ivf", "exact"),
            "top10_shared_exact_without_keywords_vs_exact": overlap("exact_no_keywords", "exact")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path, help="an ideaweave state folder (index.sqlite3 + vectors.faiss)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--probes", type=int, default=vector_index.IVF_PROBES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.state / "index.sqlite3").is_file():
        print(f"{args.state}: no ideaweave index here", file=sys.stderr)
        return 2
    exact = open_store(args.state)
    if not exact.vectors_exact:
        exact.close()
        print(f"{args.state}: this index is already an inverted file; compare on an index below the exact limit",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ideaweave-ann-") as work:
        copy = Path(work) / "state"
        shutil.copytree(args.state, copy)
        # The copy is opened as a large vault: the store rebuilds it as the inverted file it would use.
        vector_index.EXACT_LIMIT = 10
        vector_index.IVF_PROBES = args.probes
        approximate = open_store(copy)
        try:
            vectors = vector_recall(exact, approximate, args.queries, args.seed)
            related = related_agreement(exact, approximate, args.notes, args.seed)
        finally:
            approximate.close()
            exact.close()
    print(f"vector search, {vectors['vectors']} vectors, {vectors['lists']} clusters, {vectors['probes']} probed:")
    print(f"  recall@10 {vectors['recall@10']:.3f}  recall@100 {vectors['recall@100']:.3f}  "
          f"({vectors['queries']} queries; median {vectors['ivf_ms_per_query']:.2f} ms per query, "
          f"exact scan {vectors['exact_ms_per_query']:.2f} ms)")
    print(f"related notes, {related['notes']} notes, share of the top 10 in common:")
    print(f"  inverted file vs exact, both without keyword evidence  {related['top10_shared_ivf_vs_exact_without_keywords']:.3f}")
    print(f"  inverted file (large vaults) vs exact with keywords     {related['top10_shared_ivf_vs_exact']:.3f}")
    print(f"  exact without keywords vs exact with keywords            {related['top10_shared_exact_without_keywords_vs_exact']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
