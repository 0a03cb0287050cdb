#!/usr/bin/env python3
"""The cost of keeping notes sealed at rest: cold index and restart time of a vault with index.encrypt =
"private" (nothing private: the baseline; then a share of the notes private by folder) and "all".

Usage:
  python bench/at_rest_bench.py VAULT [--private-folder GLOB] [--cold 2] [--restarts 5] [--json]

Cold index: a new state folder, every note read, chunked, embedded and stored. Embedding is the same
work in every configuration and dominates (minutes on a busy machine, where it also varies most), so
after one real cold index that is timed on its own, the embedder replays the model's vectors for the
texts it has seen: the timed cold indexes measure reading, chunking, sealing and storing.
Restart: what the daemon does before it can answer, on an unchanged vault: open the store (sealed
vectors are opened into memory), scan the vault (nothing to embed) and load the ranking corpus.
One embedder serves every run, so its loading is in none of the times. The key comes from a passphrase
in the environment (as on a machine without a keyring); the unlocked key is kept for the session, so
scrypt runs once per state folder, as it does for a user. The vault is never written to.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App, resolve_vault  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.modelfiles import checkout_models_dir, require_model  # noqa: E402
from ideaweave.sealing import PASSPHRASE_ENV  # noqa: E402


class ReplayingEmbedder:
    """The real embedder, each text embedded once: later runs get the model's own vector back."""

    def __init__(self, embedder: LlamaEmbedder) -> None:
        self.embedder, self.seen = embedder, {}

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed(self, texts):
        import numpy as np

        new = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if new:
            self.seen.update(zip(new, self.embedder.embed(new)))
        return np.stack([self.seen[t] for t in texts]) if texts else self.embedder.embed(texts)


def configurations(private_folder: str) -> list[tuple[str, dict]]:
    return [
        ("private, no private notes (baseline)", {"index.encrypt": "private"}),
        (f"private, {private_folder} private", {"index.encrypt": "private", "index.private_folders": [private_folder]}),
        ("all", {"index.encrypt": "all"}),
    ]


def app_for(root: Path, state: Path, overrides: dict, embedder, env: dict) -> App:
    settings = replace(Settings(), **{"state_dir": str(state), "models.verify": False,
                                      "index.key_store": "passphrase", **overrides})
    return App(settings, root, env=env, embedder=embedder)


def cold_index(root: Path, work: Path, overrides: dict, embedder, env: dict) -> tuple[float, Path, dict]:
    state = Path(tempfile.mkdtemp(dir=work))
    app = app_for(root, state, overrides, embedder, env)
    started = time.perf_counter()
    report = app.indexer.run()
    seconds = time.perf_counter() - started
    sealed = {"notes": app.store.totals()[0], "sealed_vectors": len(app.store._sealed_ids),
              "bytes": app.store.size_on_disk()}
    app.close()
    assert not report.failed and not report.locked, (report.failed, report.locked)
    return seconds, state, sealed


def restart(root: Path, state: Path, overrides: dict, embedder, env: dict) -> float:
    started = time.perf_counter()
    app = app_for(root, state, overrides, embedder, env)
    app.indexer.run()
    Corpus(app.store)
    seconds = time.perf_counter() - started
    app.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vault")
    parser.add_argument("--private-folder", default="thoughts/**", help="glob of the notes made private in the second run")
    parser.add_argument("--cold", type=int, default=2, help="cold indexes per configuration")
    parser.add_argument("--restarts", type=int, default=5, help="restarts per configuration")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = resolve_vault(args.vault, Settings(), Path.cwd())
    embedder = LlamaEmbedder(require_model(checkout_models_dir() / "all-MiniLM-L6-v2.f16.gguf", hash_it=False),
                             EmbedderOptions(threads=1, batch_tokens=512))
    rows = []
    replaying = ReplayingEmbedder(embedder)
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, PASSPHRASE_ENV: "bench passphrase", "XDG_RUNTIME_DIR": str(Path(work) / "runtime")}
        first_name, first = configurations(args.private_folder)[0]
        embedded_seconds, _, _ = cold_index(root, Path(work), first, replaying, env)
        print(f"one cold index with the model embedding every chunk ({first_name}): {embedded_seconds:.1f} s",
              file=sys.stderr)
        embedder = replaying
        # Interleaved rounds: a machine that slows down mid-run slows every configuration alike.
        results = {name: {"cold": [], "restart": []} for name, _ in configurations(args.private_folder)}
        states, sizes = {}, {}
        for _ in range(args.cold):
            for name, overrides in configurations(args.private_folder):
                seconds, states[name], sizes[name] = cold_index(root, Path(work), overrides, embedder, env)
                results[name]["cold"].append(seconds)
        for _ in range(args.restarts):
            for name, overrides in configurations(args.private_folder):
                results[name]["restart"].append(restart(root, states[name], overrides, embedder, env))
    base = results[configurations(args.private_folder)[0][0]]
    for name, _ in configurations(args.private_folder):
        cold, warm = statistics.median(results[name]["cold"]), statistics.median(results[name]["restart"])
        rows.append({"configuration": name, **sizes[name], "cold_index_s": round(cold, 2),
                     "cold_ratio": round(cold / statistics.median(base["cold"]), 3),
                     "restart_s": round(warm, 3), "restart_ratio": round(warm / statistics.median(base["restart"]), 3),
                     "cold_runs": len(results[name]["cold"]), "restart_runs": len(results[name]["restart"])})
    replaying.embedder.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{root.name}: one cold index embedding with the model: {embedded_seconds:.1f} s; medians of {args.cold} cold "
          f"indexes (embeddings replayed) and {args.restarts} restarts per configuration")
    print("| configuration | notes | sealed vectors | index MB | cold index s | x baseline | restart s | x baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['configuration']} | {r['notes']} | {r['sealed_vectors']} | {r['bytes'] / 1e6:.1f} | "
              f"{r['cold_index_s']:.1f} | {r['cold_ratio']:.2f} | {r['restart_s']:.2f} | {r['restart_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
