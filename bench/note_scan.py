"""What the 8-bit note scan (`noteindex.NoteIndex`) costs and saves in `related`: the same notes ranked with
the whole-note cosine read from moments and the nearest notes the scan finds, and with the product with every
note.

    python bench/note_scan.py STATE_DIR VAULT [--precomputed] [--queries 200] [--force]
                              [--gold LINKPRED_RESULT.json] [--single-thread-math] [--json]

STATE_DIR is the state folder of an index of VAULT (for `--precomputed`, one that `bench/scale_bench.py
--precomputed` built: the stand-in embedder is used for nothing but its identity). Sampled notes (seed 0)
are ranked both ways in alternation, in one process: median and p95 time of each, their ratio, how many top-10
lists are identical, the mean share of the top 10 in common, and how many of the 30 notes nearest by
whole-note cosine the scan found. Below NOTE_INDEX_MIN notes ranking does not use the scan; `--force`
builds it anyway, which shows the cost in quality on a vault of real vectors. `--gold` (a result file of the shared
`linkpred.py`, run on the same masked vault) adds recall@10 against the removed links for both rankings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from ideaweave import noteindex  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.relate import Relater, top_indices  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path)
    parser.add_argument("vault", type=Path)
    parser.add_argument("--precomputed", action="store_true", help="an index built with the stand-in embedder")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--force", action="store_true", help="build the scan below NOTE_INDEX_MIN notes too")
    parser.add_argument("--gold", type=Path, help="a linkpred.py result file: recall@10 against its gold links")
    parser.add_argument("--single-thread-math", action="store_true", help="one BLAS thread, as a busy laptop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.single_thread_math:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    from scale_bench import make_settings, open_app

    app, _ = open_app(make_settings(args.state, 1), args.vault, args.precomputed)
    started = time.perf_counter()
    corpus = Corpus(app.store)
    loaded = time.perf_counter() - started
    if corpus.note_index is None and args.force:
        corpus.note_index = noteindex.NoteIndex.build(corpus.note_vectors)
    index = corpus.note_index
    if index is None:
        print(f"{len(corpus):,} notes: fewer than NOTE_INDEX_MIN ({noteindex.NOTE_INDEX_MIN:,}); use --force",
              file=sys.stderr)
        return 2
    relater = Relater(corpus)
    gold = {}
    if args.gold:
        gold = {q["note"]: set(q["gold"]) for q in json.loads(args.gold.read_text())["per_query"]}
        paths = [p for p in gold if p in corpus.index]
    else:
        eligible = [p for i, p in enumerate(corpus.paths) if not corpus.template[i]]
        paths = random.Random(0).sample(eligible, min(args.queries, len(eligible)))
    for path in paths[:3]:  # warm up both ways
        relater.rank(path)
        _with_every_note(corpus, lambda: relater.rank(path))
    times = {"scan": [], "every note": []}
    same, shared, found, recall = 0, [], [], {"scan": [], "every note": []}
    for path in paths:
        started = time.perf_counter()
        scanned = [s.path for s in relater.rank(path)]
        times["scan"].append(time.perf_counter() - started)
        started = time.perf_counter()
        whole = [s.path for s in _with_every_note(corpus, lambda: relater.rank(path))]
        times["every note"].append(time.perf_counter() - started)
        same += scanned == whole
        shared.append(len(set(scanned) & set(whole)) / max(len(whole), 1))
        q = corpus.index[path]
        emb = corpus.note_vectors @ corpus.note_vectors[q]
        emb[q] = -np.inf
        nearest = set(top_indices(emb, 30).tolist())
        near, _ = index.nearest(corpus.note_vectors, corpus.note_vectors[q])
        found.append(len(nearest & set(near.tolist())) / len(nearest))
        if gold:
            for name, ranked in (("scan", scanned), ("every note", whole)):
                recall[name].append(len(set(ranked) & gold[path]) / len(gold[path]))
    result = {
        "notes": len(corpus), "nearest_notes": noteindex.NEAREST_NOTES, "queries": len(paths),
        "load_seconds": round(loaded, 1), "load_average": os.getloadavg()[0],
        "median_ms": {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()},
        "p95_ms": {k: round(percentile(v, 0.95) * 1e3, 2) for k, v in times.items()},
        "identical_top10": round(same / len(paths), 3),
        "shared_top10": round(float(np.mean(shared)), 4),
        "nearest30_found": round(float(np.mean(found)), 4),
    }
    result["p95_ratio"] = round(result["p95_ms"]["scan"] / result["p95_ms"]["every note"], 3)
    result["median_ratio"] = round(result["median_ms"]["scan"] / result["median_ms"]["every note"], 3)
    if gold:
        result["recall@10"] = {k: round(float(np.mean(v)), 4) for k, v in recall.items()}
    app.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['notes']:,} notes, the {result['nearest_notes']} nearest read per query, "
          f"{result['queries']} queries (load average {result['load_average']:.2f})")
    for name in times:
        line = f"  {name:<11} median {result['median_ms'][name]:6.2f} ms   p95 {result['p95_ms'][name]:6.2f} ms"
        if gold:
            line += f"   recall@10 {result['recall@10'][name]:.4f}"
        print(line)
    print(f"  ratio median {result['median_ratio']:.2f}x, p95 {result['p95_ratio']:.2f}x; top 10 identical for "
          f"{result['identical_top10']:.1%} of notes, {result['shared_top10']:.1%} shared; "
          f"the 30 nearest found by the scan: {result['nearest30_found']:.1%}")
    return 0


def _with_every_note(corpus: Corpus, rank):
    """`rank()` with the product with every note (the note scan set aside)."""
    index, corpus.note_index = corpus.note_index, None
    try:
        return rank()
    finally:
        corpus.note_index = index


if __name__ == "__main__":
    sys.exit(main())
