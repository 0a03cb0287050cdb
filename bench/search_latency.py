"""Search-as-you-type latency through the daemon's HTTP API, at 10,000 notes.

    python bench/search_latency.py [--workdir DIR] [--notes 10000] [--seed 0] [--queries 40]
                                   [--min-prefix 3] [--stand-in-index] [--prepare-only] [--profile FILE] [--json]

Generates a vault (`bench/make_vault.py`, text recombined from the garden vault), indexes it once with the
default embedding model and keeps vault and index under `--workdir` (a fresh temporary folder without it:
the first run embeds every note, about half an hour on one thread; later runs with the same workdir start in
seconds). Then it serves the real API (`api.build_api` over `api.AppBackend`, the model loaded once, as
`ideaweave watch` serves it) on a loopback port and sends, through one kept-alive HTTP connection, the
prefixes a user typing real queries sends: every prefix of at least `--min-prefix` characters, one
character at a time (the worst case: the plugin's modal waits for a pause in typing, so it sends fewer).
The queries are the search benchmark's real ones, the one-line teasers people wrote for the arbital-math
notes (`shared/bench/vaults/arbital-math` next to this checkout; questions and problem statements, not
keywords); without that vault, the first sentences of the generated notes.

`--stand-in-index` indexes the notes with `scale_bench.py`'s deterministic stand-in for the model (minutes
instead of half an hour or more on a busy machine) while the queries are still embedded by the real model,
in the daemon, as the user waits for them: the sections, keywords and vectors searched are as many and as
large as the real index's, only the vectors' meaning is not the model's. Its index is kept apart
(`state-stand-in`).

Prints the median and p95 per request (client-side, the whole HTTP exchange, JSON parsed). Target: p95 < 50 ms.
The same requests are then sent again to an API whose search reads every candidate's sections, titles and
flags from the store instead of the daemon's ranking snapshot (how search worked before): the ratio of the
two, taken in one run, holds on a loaded machine where the absolute figures do not.
`--profile FILE` runs the same requests in-process under cProfile and prints search's hotspots.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARBITAL = Path(__file__).resolve().parents[2] / "shared/bench/vaults/arbital-math/vault"
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from ideaweave import config  # noqa: E402
from ideaweave.api import AppBackend, build_api, serve  # noqa: E402
from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.search import search  # noqa: E402
from ideaweave.watch import one_blas_thread  # noqa: E402
from harness import PERCENTILE_NOTE, distribution  # noqa: E402
from scale_bench import PrecomputedEmbedder  # noqa: E402

TARGET_P95_MS = 50.0
WARMUP_REQUESTS = 5  # the first requests pay for imports and cold caches
TOKEN = "search-latency-benchmark-token-0123456789"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Search-as-you-type latency through the daemon's HTTP API.")
    parser.add_argument("--workdir", type=Path, help="keep the generated vault and its index here (reused when present)")
    parser.add_argument("--notes", type=int, default=10_000, help="notes in the generated vault (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=40, help="real queries typed (default 40)")
    parser.add_argument("--min-prefix", type=int, default=3, help="the shortest prefix sent (the modal's minimum)")
    parser.add_argument("--stand-in-index", action="store_true",
                        help="index with the stand-in vectors; queries are still embedded by the real model")
    parser.add_argument("--prepare-only", action="store_true", help="generate and index, then stop")
    parser.add_argument("--profile", type=Path, help="also profile the same searches in-process, into this file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def prepare(work: Path, notes: int, seed: int, stand_in: bool = False) -> App:
    """The generated vault under `work`, indexed (incrementally: a kept index is only brought up to date),
    and the app that serves it."""
    vault = work / "vault"
    if not vault.is_dir():
        subprocess.run([sys.executable, str(REPO / "bench/make_vault.py"), str(vault), "--notes", str(notes),
                        "--seed", str(seed)], check=True)
    threads = int(os.environ.get("IDEAWEAVE_EMBEDDING_THREADS", "1"))
    settings = config.replace(Settings(), **{"state_dir": str(work / ("state-stand-in" if stand_in else "state")),
                                             "embedding.threads": threads})
    stand_in_model = PrecomputedEmbedder() if stand_in else None
    app = App(settings, vault.resolve(), embedder=stand_in_model)
    started = time.perf_counter()
    report = app.indexer.run()
    print(f"index: {report.notes} notes, {report.embedded_chunks} chunks embedded in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    if stand_in_model is None:
        return app
    app.close()
    # Served with the real model for the queries; this app never indexes (its model is not the index's).
    real = App(settings, vault.resolve()).embedder
    return App(settings, vault.resolve(), embedder=RealQueryModel(real, stand_in_model.model_id))


class RealQueryModel:
    """The real model, under the stand-in's model id: what a query costs, over a stand-in index."""

    def __init__(self, real, model_id: str):
        self.real, self.model_id = real, model_id
        self.dim, self.max_tokens = real.dim, real.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def embed(self, texts):
        return self.real.embed(texts)

    def close(self) -> None:
        self.real.close()


_DESCRIPTION = re.compile(r"^description: (.*)$", re.M)
_SENTENCE = re.compile(r"[A-Z][^.!?\n\[\]#`|]{30,120}[.!?]")


def real_queries(count: int, seed: int, generated: Path) -> list[str]:
    """The arbital-math teasers (real queries), or first sentences of generated notes without them."""
    found = []
    if ARBITAL.is_dir():
        for path in sorted(ARBITAL.glob("*.md")):
            match = _DESCRIPTION.search(path.read_text(encoding="utf-8")[:3000])
            if match:
                value = match.group(1)
                query = json.loads(value) if value.startswith('"') else value
                if len(query.split()) >= 5:
                    found.append(query)
    else:
        for path in sorted(generated.rglob("*.md"))[:2000]:
            match = _SENTENCE.search(path.read_text(encoding="utf-8").split("---", 2)[-1])
            if match:
                found.append(match.group(0))
    random.Random(seed).shuffle(found)
    return found[:count]


def typed_prefixes(query: str, shortest: int) -> list[str]:
    """What the modal could send while `query` is typed, one character at a time."""
    return [query[:n] for n in range(shortest, len(query) + 1) if query[:n].strip() and not query[n - 1].isspace()]


class StoreReadingBackend(AppBackend):
    """The baseline: search without the ranking snapshot, every candidate read from the store."""

    def _search_snapshot(self):
        return None


def measure_http(url: str, prefixes: list[str]) -> list[float]:
    """Seconds per request, through one kept-alive connection, from sending to the parsed JSON answer."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "keep-alive"}
    seconds = []
    try:
        for i, prefix in enumerate(prefixes):
            started = time.perf_counter()
            connection.request("GET", "/search?" + urllib.parse.urlencode({"q": prefix, "k": 20}), headers=headers)
            response = connection.getresponse()
            body = json.loads(response.read())
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"/search answered {response.status}: {body}")
            if i >= WARMUP_REQUESTS:
                seconds.append(elapsed)
    finally:
        connection.close()
    return seconds


def profile(app: App, prefixes: list[str], out: Path) -> str:
    corpus = Corpus(app.store)
    profiler = cProfile.Profile()
    profiler.enable()
    for prefix in prefixes:
        search(app.store, app.embedder, prefix, k=20, corpus=corpus)
    profiler.disable()
    profiler.dump_stats(out)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temporary = None if args.workdir else tempfile.TemporaryDirectory(prefix="ideaweave-search-latency-")
    work = args.workdir or Path(temporary.name)
    work.mkdir(parents=True, exist_ok=True)
    app = prepare(work, args.notes, args.seed, args.stand_in_index)
    try:
        if args.prepare_only:
            return 0
        queries = real_queries(args.queries, args.seed, app.root)
        prefixes = [p for q in queries for p in typed_prefixes(q, args.min_prefix)]
        measured = {}
        # numpy's BLAS on one thread, as `ideaweave watch` serves the API: OpenBLAS's spare threads spin
        # after each product and take the core the next query's embedding needs.
        with one_blas_thread():
            for name, backend in (("snapshot", AppBackend), ("store reads", StoreReadingBackend)):
                running = serve(build_api(backend(app), TOKEN), "127.0.0.1", 0)
                try:
                    measured[name] = measure_http(running.url, prefixes)
                finally:
                    running.shutdown()
        seconds, baseline = measured["snapshot"], measured["store reads"]
        report = {"index": "stand-in vectors, real query model" if args.stand_in_index else "real model",
                  "notes": len(app.store.note_paths()), "chunks": app.store.counts()["chunks"],
                  "exact_vector_search": app.store.vectors_exact, "queries": len(queries), "requests": len(seconds),
                  "per_request_ms": distribution(seconds, digits=1, scale=1000), "target_p95_ms": TARGET_P95_MS,
                  "before_per_request_ms": distribution(baseline, digits=1, scale=1000),
                  "load_average": [round(x, 2) for x in os.getloadavg()]}
        if args.profile:
            with one_blas_thread():
                report["profile"] = profile(app, prefixes[:400], args.profile)
    finally:
        app.close()
        if temporary is not None:
            temporary.cleanup()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        per = report["per_request_ms"]
        print(f"{report['notes']} notes, {report['chunks']} chunks, index: {report['index']} (vector search "
              f"{'exact' if report['exact_vector_search'] else 'approximate'}); {report['queries']} real queries typed "
              f"one character at a time: {report['requests']} requests through one kept-alive HTTP connection")
        print(f"per request: median {per['median']} ms, p95 {per['p95']} ms, max {per['max']} ms "
              f"(target: p95 < {TARGET_P95_MS:.0f} ms)")
        base = report["before_per_request_ms"]
        print(f"search as before (the store read): median {base['median']} ms, p95 {base['p95']} ms "
              f"(ratio {per['median'] / base['median']:.2f} at the median, {per['p95'] / base['p95']:.2f} at p95); "
              f"load average {' '.join(str(x) for x in report['load_average'])}")
        print(PERCENTILE_NOTE)
        if "profile" in report:
            print(report["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
