"""Where the daemon's memory goes: its steps one by one in a fresh process, with the RSS after each step
and the peak inside it, on an existing index (copied first: the steps write into it).

    python bench/daemon_memory.py VAULT STATE [--precomputed] [--sync 200] [--edits 10] [--tracemalloc] [--json]

STATE is an index of VAULT that this script may change (give it a copy: it deletes one note from the
index and saves the vector index). The vault is only read: the sync step ranks and summarises without
writing (a dry run). The steps are the daemon's: open the store (the faiss index with it), the start-up
pass's indexing (stat only: nothing changed), the ranking snapshot (`Corpus`), the relater, ranking and
summarising `--sync` notes a slice at a time, `Corpus.updated` after edit batches, after a deletion,
and saving the vector index.

Each step's peak is VmHWM after the high-water mark was reset before it (Linux: /proc/self/clear_refs),
so it is the step's own, over what the steps before left. `--tracemalloc` adds Python's and numpy's
traced memory (faiss's and SQLite's own allocations are not traced) and the largest allocation sites
of the steps that peak highest; it slows the run several times.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from scale_bench import PrecomputedEmbedder, make_settings, rss_mib  # noqa: E402

from ideaweave.app import App  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.sync import VaultSync  # noqa: E402
from ideaweave.vectors import load_index  # noqa: E402
from ideaweave.watch import SYNC_SLICE  # noqa: E402


def high_water_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water() -> None:
    """Restart VmHWM at the current RSS (nothing is freed or trimmed: the daemon would not do that)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


class Steps:
    """Runs named steps, recording (RSS before, peak inside, RSS after, seconds) and traced memory."""

    def __init__(self, traced: bool, top: int = 8):
        self.rows: list[dict] = []
        self.traced, self.top = traced, top
        if traced:
            tracemalloc.start(8)

    @contextlib.contextmanager
    def step(self, name: str):
        gc.collect()
        before = rss_mib()
        reset_high_water()
        if self.traced:
            tracemalloc.reset_peak()
            traced_before = tracemalloc.get_traced_memory()[0]
            snapshot_before = tracemalloc.take_snapshot()
        started = time.perf_counter()
        yield
        row = {"step": name, "seconds": round(time.perf_counter() - started, 2), "rss_before_mib": round(before),
               "peak_mib": round(high_water_mib()), "rss_after_mib": round(rss_mib())}
        if self.traced:
            current, peak = tracemalloc.get_traced_memory()
            row.update(traced_peak_over_before_mib=round((peak - traced_before) / 2**20, 1),
                       traced_kept_mib=round((current - traced_before) / 2**20, 1))
            grown = tracemalloc.take_snapshot().compare_to(snapshot_before, "lineno")
            row["kept_by"] = [f"{s.size_diff / 2**20:+.1f} MiB {s.traceback[0].filename.rsplit('/', 1)[-1]}:"
                              f"{s.traceback[0].lineno}" for s in grown[:self.top] if abs(s.size_diff) >= 2**20]
        self.rows.append(row)
        print(describe(row), file=sys.stderr, flush=True)


def describe(row: dict) -> str:
    text = (f"{row['step']:<44} {row['seconds']:>7.2f} s  RSS {row['rss_before_mib']:>5} -> peak {row['peak_mib']:>5}"
            f" -> {row['rss_after_mib']:>5} MiB")
    if "traced_peak_over_before_mib" in row:
        text += f"  (traced: peak +{row['traced_peak_over_before_mib']} MiB, kept {row['traced_kept_mib']:+} MiB)"
        text += "".join(f"\n{'':>48}{site}" for site in row["kept_by"])
    return text


def held_by(corpus: Corpus) -> dict[str, float]:
    """MiB held by the snapshot's largest arrays (numpy only; the Python lists and dicts are not counted)."""
    sizes = {}
    for name, value in vars(corpus).items():
        nbytes = getattr(value, "nbytes", None)
        if nbytes:
            sizes[name] = nbytes
    for name, value in vars(corpus.terms).items():
        if getattr(value, "nbytes", None):
            sizes[f"terms.{name}"] = value.nbytes
    for name, value in vars(corpus.graph).items():
        if getattr(value, "nbytes", None):
            sizes[f"graph.{name}"] = value.nbytes
    return {k: round(v / 2**20, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v >= 2**20 / 2}


def run(args: argparse.Namespace) -> dict:
    steps = Steps(args.tracemalloc)
    settings = make_settings(args.state, 1)
    rng = random.Random(args.seed)
    result: dict = {"imports_rss_mib": round(rss_mib())}
    with steps.step("faiss index alone (loaded, then dropped)"):
        index = load_index(args.state / "vectors.faiss", 384, read_vectors=lambda ids: None)  # never gathers
        result["faiss_index"] = type(index).__name__ if index is not None else None
        del index
    with steps.step("open the store (database, faiss index)"):
        app = App(settings, args.vault, embedder=PrecomputedEmbedder() if args.precomputed else None)
        store = app.store
    try:
        with steps.step("start-up pass: indexing (nothing changed)"):
            app.indexer.run()
        with steps.step("ranking snapshot: Corpus load"):
            corpus = Corpus(store)
        result["snapshot_arrays_mib"] = held_by(corpus)
        with steps.step("relater (calibration cached)"):
            related = app.related_notes(corpus)
        eligible = [p for i, p in enumerate(corpus.paths) if not corpus.template[i] and not corpus.private[i]]
        chosen = sorted(rng.sample(eligible, min(args.sync, len(eligible))))
        with steps.step(f"rank and summarise {len(chosen)} notes (dry run)"):
            sync = VaultSync.for_app(app)
            for start in range(0, len(chosen), SYNC_SLICE):
                sync.run(paths=chosen[start:start + SYNC_SLICE], dry_run=True, corpus=corpus)
        del related, sync
        for batch in range(3):
            touched = set(rng.sample(eligible, args.edits))
            with steps.step(f"Corpus.updated: {args.edits} notes edited ({batch + 1})"):
                corpus = corpus.updated(touched)
        gone = rng.choice(eligible)
        store.delete_notes([gone])
        with steps.step("Corpus.updated: a note deleted"):
            corpus = corpus.updated({gone})
        with steps.step("save the vector index (flush)"):
            store.flush()
        result["snapshot_notes"] = len(corpus)
    finally:
        app.close()
    result["steps"] = steps.rows
    result["peak_of_steps_mib"] = max(row["peak_mib"] for row in steps.rows)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", type=Path)
    parser.add_argument("state", type=Path, help="a copy of the vault's index (this script changes it)")
    parser.add_argument("--precomputed", action="store_true", help="the deterministic stand-in embedder of scale_bench")
    parser.add_argument("--sync", type=int, default=200, help="notes ranked and summarised")
    parser.add_argument("--edits", type=int, default=10, help="notes per Corpus.updated batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python's and numpy's allocations")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.state / "index.sqlite3").is_file():
        print(f"{args.state}: no index there", file=sys.stderr)
        return 2
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"peak of the steps: {result['peak_of_steps_mib']} MiB (after imports: {result['imports_rss_mib']} MiB)")
        print("snapshot arrays (MiB):", ", ".join(f"{k} {v}" for k, v in result["snapshot_arrays_mib"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
