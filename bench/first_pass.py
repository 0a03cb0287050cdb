"""The first pass: from a cold start to every note written, against the embedder alone on the same chunks.

    python bench/first_pass.py [VAULT ...] [--generated N] [--profile] [--json]

For each vault (default: the shared garden vault; `--generated N` adds a vault of N notes made by
`bench/make_vault.py --seed 0`), a copy is taken into a temporary folder (the source is never written)
and the daemon's code path runs in-process on it from a fresh state folder: `run_watch` until its
start-up pass is over, i.e. until every note is indexed and has its `related` and `summary` written.
The model loads before the clock starts. Then, in the same process and at the same priority (the daemon
lowers its own), a fresh embedder embeds every chunk the pass embedded, in groups as the indexer does:
the cost of the embedding alone. Prints, per vault: the indexing phase, the writing phase (ranking,
summaries, writes) and their sum, the embedder alone, and the ratio of the pass to it (target: <= 1.2x).
`--profile` adds the writing phase's top functions (cProfile, cumulative time). Each figure is also printed on
stderr as soon as it is known (the edit's latency, the end of indexing, of writing), so that a run of hours that
is stopped still says how far it came.

The machine's load average is printed before and after: on a shared machine the absolute times move with
it; the ratio, taken in the same run, is the figure to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.config import load_settings, replace  # noqa: E402
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.indexer import EMBED_GROUP  # noqa: E402
from ideaweave.watch import WatchStats, lower_priority, run_watch  # noqa: E402

DEFAULT_VAULT = REPO.parents[0] / "shared" / "bench" / "vaults" / "garden" / "vault"
if not DEFAULT_VAULT.is_dir():  # the benchmark vaults beside the repository, where they are kept
    DEFAULT_VAULT = Path(os.environ.get("IDEAWEAVE_BENCH_VAULTS", REPO / ".scratch" / "vaults")) / "garden" / "vault"
TARGET = 1.2


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def generated_vault(notes: int, scratch: Path) -> Path:
    """A vault of `notes` notes from bench/make_vault.py (seed 0), made once and kept in `scratch`."""
    out = scratch / f"first-pass-{notes}"
    if not out.is_dir():
        part = out.with_suffix(".part")
        shutil.rmtree(part, ignore_errors=True)
        subprocess.run([sys.executable, str(REPO / "bench" / "make_vault.py"), str(part), "--notes", str(notes),
                        "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
        part.rename(out)
    return out


def embedder_alone(model_path: Path, options: EmbedderOptions, texts: list[str]) -> tuple[float, int, dict]:
    """(seconds, tokens, batches by threads) of a fresh embedder embedding `texts` in the indexer's groups.

    It runs on a thread of its own at the daemon's priority: `lower_priority` renices only the thread
    that calls it (a Linux thread is a task of its own), and on a busy machine nice 10 against nice 0
    alone makes a 1.6x difference."""
    result = {}

    def embed() -> None:
        lower_priority()
        alone = LlamaEmbedder(model_path, options)
        try:
            alone.embed(texts[:16])  # as the app's model had embedded before the pass
            result["tokens"] = sum(alone.count_tokens(t) for t in texts)
            started = time.perf_counter()
            for start in range(0, len(texts), EMBED_GROUP):
                alone.embed(texts[start:start + EMBED_GROUP])
            result["seconds"] = time.perf_counter() - started
            result["threads"] = dict(alone.batches_by_threads)
        finally:
            alone.close()

    thread = threading.Thread(target=embed, name="embedder-alone")
    thread.start()
    thread.join()
    return result["seconds"], result["tokens"], result["threads"]


EDIT = ("\n\n## Saved during the first pass\n\nTomato plants lose their leaves to blight in wet summers; water "
        "the soil, not the leaves, and pick off brown leaves early.\n")


class EditDuringPass:
    """The user saves a note while the pass indexes (at `at` of its notes): how long until the daemon
    has written it (its file changes again after the save), and how far the pass had come then."""

    def __init__(self, vault: Path, at: float):
        self.at = at
        self.note = max(p for p in vault.rglob("*.md") if ".obsidian" not in p.parts)  # the backlog's last
        self.saved_bytes: bytes | None = None
        self.saved_at = self.written_at = None
        self.phase_then = self.progress_then = None

    def step(self, stats: WatchStats) -> None:
        if self.saved_bytes is None:
            if stats.pass_phase == "indexing" and stats.pass_total and stats.pass_done >= self.at * stats.pass_total:
                self.saved_bytes = self.note.read_bytes() + EDIT.encode()
                self.note.write_bytes(self.saved_bytes)
                self.saved_at = time.perf_counter()
                self.saved_progress = f"{stats.pass_done}/{stats.pass_total} indexing"
        elif self.written_at is None:
            data = self.note.read_bytes()
            if data != self.saved_bytes and EDIT.encode() in data:
                self.written_at = time.perf_counter()
                self.progress_then = f"{stats.pass_done}/{stats.pass_total} {stats.pass_phase or 'done'}"

    def as_json(self) -> dict | None:
        if self.saved_at is None:
            return None
        latency = None if self.written_at is None else round(self.written_at - self.saved_at, 2)
        return {"note": self.note.name, "saved_at": self.saved_progress, "written_at": self.progress_then,
                "seconds": latency}


def note(line: str) -> None:
    """A figure as soon as it is known (on stderr): a long run interrupted still says how far it came."""
    print(f"[{time.strftime('%H:%M:%S')}] {line} ({load()})", file=sys.stderr, flush=True)


def first_pass(source: Path, settings_env: dict, profile: bool, edit_at: float | None = None) -> dict:
    """Cold start to every note written, on a copy of `source`, then the embedder alone on its chunks."""
    with tempfile.TemporaryDirectory(prefix="first-pass-") as scratch:
        vault = Path(scratch) / "vault"
        shutil.copytree(source, vault, symlinks=True)
        settings = replace(load_settings(None, settings_env), state_dir=str(Path(scratch) / "state"),
                           **{"api.enabled": False, "writer.defer_seconds": 0.0})
        app = App(settings, vault.resolve())
        app.embedder  # the model loads outside the timed pass
        stats, stop, ready = WatchStats(), threading.Event(), threading.Event()
        marks: dict[str, float] = {}
        profiler = cProfile.Profile() if profile else None

        edit = EditDuringPass(vault, edit_at) if edit_at is not None else None

        def watch_phases():
            edit_said = False
            while not ready.is_set():
                if stats.pass_phase == "writing" and "writing" not in marks:
                    marks["writing"] = time.perf_counter()
                    note(f"indexing done after {marks['writing'] - marks['start']:.1f} s; writing {stats.pass_total} notes")
                if edit is not None:
                    edit.step(stats)
                    if edit.written_at is not None and not edit_said:
                        edit_said = True
                        note(f"edit saved at {edit.saved_progress}, written {edit.written_at - edit.saved_at:.2f} s later")
                time.sleep(0.02)

        outcome = {}

        def daemon():
            try:
                outcome["code"] = run_watch(app, stop=stop, on_ready=ready.set, stats=stats)
            except BaseException as exc:  # surfaced below
                outcome["error"] = exc
                ready.set()

        marks["start"] = time.perf_counter()
        thread = threading.Thread(target=daemon, name="first-pass")
        watcher = threading.Thread(target=watch_phases, daemon=True)
        if profiler is not None:
            # The loop's thread is profiled for the whole pass: the writing phase shows apart from the
            # indexer by its functions (sync, relate, summarize, writer).
            thread = threading.Thread(target=lambda: profiler.runcall(daemon), name="first-pass")
        thread.start()
        watcher.start()
        ready.wait()
        marks["written"] = time.perf_counter()
        note(f"every note written after {marks['written'] - marks['start']:.1f} s; now the embedder alone")
        stop.set()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        notes = app.store.note_paths()
        written = app.store.all_written()
        key_r, key_s = settings.writer.related_key, settings.writer.summary_key
        with_both = sum(1 for p in notes if p in written and written[p].values.get(key_r) is not None
                        and written[p].values.get(key_s) is not None)
        texts = {}
        for path in notes:
            for chunk in app.store.chunks_of(path):
                if chunk.text:
                    texts[chunk.hash] = chunk.text
        options = EmbedderOptions(threads=settings.embedding.threads, max_threads=settings.embedding.max_threads,
                                  batch_tokens=settings.embedding.batch_tokens, flash_attn=settings.embedding.flash_attn)
        model_path = app.embedding_model_path
        pass_threads = getattr(app.embedder, "batches_by_threads", {})
        app.close()
        alone_seconds, tokens, alone_threads = embedder_alone(model_path, options, list(texts.values()))
        note(f"embedder alone: {alone_seconds:.1f} s")
    writing_at = marks.get("writing", marks["written"])
    result = {
        "vault": str(source), "notes": len(notes), "chunks": len(texts), "tokens": tokens,
        "notes_with_related_and_summary": with_both, "notes_synced": stats.start_up_synced,
        "indexing_seconds": round(writing_at - marks["start"], 2),
        "writing_seconds": round(marks["written"] - writing_at, 2),
        "pass_seconds": round(marks["written"] - marks["start"], 2),
        "embedder_alone_seconds": round(alone_seconds, 2),
        "ratio": round((marks["written"] - marks["start"]) / alone_seconds, 3),
        "writing_ms_per_note": round((marks["written"] - writing_at) / max(len(notes), 1) * 1000, 1),
        "pass_batches_by_threads": dict(pass_threads), "alone_batches_by_threads": alone_threads,
        "edit_during_pass": edit.as_json() if edit is not None else None,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        result["profile"] = out.getvalue()
    return result


def describe(r: dict) -> str:
    return (f"{Path(r['vault']).name if Path(r['vault']).name != 'vault' else Path(r['vault']).parent.name}: "
            f"{r['notes']} notes, {r['chunks']} chunks, {r['tokens']} tokens; "
            f"{r['notes_with_related_and_summary']} notes hold related and summary\n"
            f"  indexing {r['indexing_seconds']:8.1f} s\n"
            f"  writing  {r['writing_seconds']:8.1f} s   ({r['writing_ms_per_note']:.1f} ms a note)\n"
            f"  pass     {r['pass_seconds']:8.1f} s   (cold start to every note written)\n"
            f"  embedder {r['embedder_alone_seconds']:8.1f} s   (alone, the same chunks, same run)\n"
            f"  ratio    {r['ratio']:8.2f}x  (target <= {TARGET}x)   threads: pass {r['pass_batches_by_threads']}, "
            f"alone {r['alone_batches_by_threads']}"
            + (f"\n  edit     saved at {e['saved_at']}, written {e['seconds']} s later, at {e['written_at']} "
               f"(target: within 10 s)" if (e := r.get("edit_during_pass")) else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vaults", nargs="*", type=Path)
    parser.add_argument("--generated", type=int, action="append", default=[],
                        help="also a vault of N notes from make_vault.py (repeatable); 10003 is the issue's size")
    parser.add_argument("--no-garden", action="store_true", help="without the default garden vault")
    parser.add_argument("--scratch", type=Path, default=REPO / ".scratch", help="where generated vaults are kept")
    parser.add_argument("--profile", action="store_true", help="print the pass's top functions")
    parser.add_argument("--edit-at", type=float, default=None, metavar="SHARE",
                        help="save an edit to a note once the pass has indexed this share of the notes (0.1: "
                             "10%%) and report when the daemon wrote it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sources = list(args.vaults) or ([] if args.no_garden else [DEFAULT_VAULT])
    args.scratch.mkdir(parents=True, exist_ok=True)
    sources += [generated_vault(n, args.scratch) for n in args.generated]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDEAWEAVE_STATE")}
    before = load()
    if not args.json:
        print(f"before: {before}", flush=True)
    results = []
    for source in sources:
        result = first_pass(source, env, args.profile, args.edit_at)
        results.append(result)
        if not args.json:
            print(describe(result), flush=True)
            if args.profile:
                print(result["profile"])
    after = load()
    if args.json:
        print(json.dumps({"load_before": before, "load_after": after, "vaults": results}, indent=2))
    else:
        print(f"after:  {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
