"""Embedding threads, fixed against "auto", on an idle machine and with a CPU-bound process competing.

    python bench/embed_threads.py [VAULT] [--repeats 3] [--chunks 400] [--competitors 1]

Embeds the same real chunks (taken as bench/embed_throughput.py takes them) with llama.cpp f16 at a
fixed 1 thread, a fixed 2 threads and `threads = "auto"`, first on the machine as it is ("idle"),
then while this script runs `--competitors` busy-looping processes of its own ("contended"). The
three embedders take turns within each repeat, so a change in the machine's load hits all of them.
Prints tokens/s (median over the repeats), auto's ratio to the best fixed count and to one thread,
and which counts auto ran its batches with. The load average is printed before and after: on a
machine shared with other work, the figures move with it.

Targets: auto >= 0.95x the best fixed count idle, >= 1.0x one thread contended. "auto" keeps one
embedder (and so one controller) across the repeats, as the daemon does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from embed_throughput import DEFAULT_VAULT, vault_chunks  # noqa: E402
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.modelfiles import checkout_models_dir  # noqa: E402

CONFIGS = {"fixed 1": 1, "fixed 2": 2, "auto": "auto"}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def start_competitors(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait()


def measure(model: Path, texts: list[str], tokens: int, repeats: int) -> dict:
    """tokens/s (median of the repeats) per configuration, and auto's batches per thread count."""
    embedders = {name: LlamaEmbedder(model, EmbedderOptions(threads=threads)) for name, threads in CONFIGS.items()}
    try:
        for e in embedders.values():
            e.embed(texts[:32])
        auto = embedders["auto"]
        before = Counter(auto.batches_by_threads)
        times: dict[str, list[float]] = {name: [] for name in embedders}
        for _ in range(repeats):
            for name, e in embedders.items():
                started = time.perf_counter()
                e.embed(texts)
                times[name].append(time.perf_counter() - started)
        used = auto.batches_by_threads - before
        return {"tokens_per_s": {name: tokens / statistics.median(t) for name, t in times.items()},
                "seconds": times, "auto_batches_by_threads": dict(sorted(used.items())),
                "auto_trials": auto.controller.trials, "auto_threads_at_end": auto.threads}
    finally:
        for e in embedders.values():
            e.close()


def report(situation: str, result: dict) -> str:
    rates = result["tokens_per_s"]
    best = max(rates["fixed 1"], rates["fixed 2"])
    used = ", ".join(f"{t}: {n}" for t, n in result["auto_batches_by_threads"].items())
    return (f"{situation:<11}{rates['fixed 1']:>10.0f}{rates['fixed 2']:>10.0f}{rates['auto']:>10.0f}"
            f"{rates['auto'] / best:>11.2f}x{rates['auto'] / rates['fixed 1']:>9.2f}x   batches by threads {{{used}}}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", nargs="?", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=400, help="the first N chunks of the vault (0: all)")
    parser.add_argument("--competitors", type=int, default=1, help="busy-looping processes in the contended run")
    parser.add_argument("--model", default="all-MiniLM-L6-v2.f16.gguf")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = checkout_models_dir() / args.model
    probe = LlamaEmbedder(model)
    texts = vault_chunks(args.vault, probe, 256)
    texts = texts[: args.chunks] if args.chunks else texts
    tokens = sum(probe.count_tokens(t) for t in texts)
    probe.close()
    results = {"chunks": len(texts), "tokens": tokens, "load_before": load()}
    # Each row is printed as soon as it is measured: on a busy machine a run takes half an hour.
    show = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    show(f"{len(texts)} chunks, {tokens} tokens, {args.model}, median of {args.repeats}; "
         f"contended: {args.competitors} busy process(es)")
    show(f"before: {results['load_before']}")
    show(f"{'tokens/s':<11}{'fixed 1':>10}{'fixed 2':>10}{'auto':>10}{'auto/best':>12}{'auto/1':>10}")
    results["idle"] = measure(model, texts, tokens, args.repeats)
    show(report("idle", results["idle"]))
    competitors = start_competitors(args.competitors)
    try:
        results["contended"] = measure(model, texts, tokens, args.repeats)
    finally:
        stop(competitors)
    show(report("contended", results["contended"]))
    results["load_after"] = load()
    show(f"after:  {results['load_after']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
