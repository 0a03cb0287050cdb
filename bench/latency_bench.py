"""Latency of the watch daemon: from a note's save to its frontmatter being updated.

    python bench/latency_bench.py [--edits 20] [--seed 0] [--workdir DIR] [--notes N]
                                  [--quiet-ms MS] [--defer-seconds S] [--json] [-v]

Copies the garden vault (749 real notes, `shared/bench/vaults/garden/vault` next to this checkout)
into a working folder, starts the daemon on it (embedding threads: IDEAWEAVE_EMBEDDING_THREADS,
default 1) and waits for the start-up pass. Then, N times, appends a few sentences taken from another
note to a random note (new meaning: the note's summary and related list can move) and measures:

- quiet:      the save -> the start of the batch that processed the note (watch.quiet_ms, plus the
              observer's and the loop's delay);
- processing: that batch, start to end (index, embed, relate, summarize, write);
- written:    the save -> the end of the batch that rewrote the note's frontmatter, when one did
              (an edit that moves neither the summary nor the related list writes nothing); with the
              default writer.defer_seconds the note's own write waits until the user stopped typing;
- others:     other notes the edit rewrote (the cascade).

The first run builds the index (several minutes on one thread); `--workdir DIR` keeps the vault copy
and the index there, so that later runs start in seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GARDEN = Path(__file__).resolve().parents[2] / "shared/bench/vaults/garden/vault"
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave import config  # noqa: E402
from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings  # noqa: E402
from harness import PERCENTILE_NOTE, Daemon, borrowed_text, distribution  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description="Save-to-frontmatter latency of the ideaweave daemon.")
    parser.add_argument("--edits", type=int, default=20, help="edits measured (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the vault copy and the index here (reused when present)")
    parser.add_argument("--vault", type=Path, default=GARDEN, help="vault copied for the run (default: garden)")
    parser.add_argument("--notes", type=int, default=0, help="copy only the first N notes (default: all)")
    parser.add_argument("--quiet-ms", type=int, default=defaults.watch.quiet_ms)
    parser.add_argument("--defer-seconds", type=float, default=defaults.writer.defer_seconds)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every batch")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, work: Path) -> Path:
    """The working copy of the vault (modification times kept, so a kept index stays valid)."""
    copy = work / "vault"
    if copy.is_dir():
        return copy
    if not args.notes:
        shutil.copytree(args.vault, copy, copy_function=shutil.copy2)
        return copy
    for source in sorted(args.vault.rglob("*.md"))[: args.notes]:
        target = copy / source.relative_to(args.vault)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return copy


def build_app(args: argparse.Namespace, vault: Path, work: Path) -> App:
    threads = int(os.environ.get("IDEAWEAVE_EMBEDDING_THREADS", "1"))
    settings = config.replace(Settings(), **{
        "state_dir": str(work / "state"), "embedding.threads": threads, "api.enabled": False,
        "watch.quiet_ms": args.quiet_ms, "writer.defer_seconds": args.defer_seconds,
    })
    return App(settings, vault.resolve())


def one_edit(daemon: Daemon, path: str, paths: list[str], rng: random.Random) -> dict:
    paragraph = borrowed_text(daemon.app.root, paths, rng, sentences=3, min_words=12, tries=50)
    edit = daemon.append(path, "\n\n" + paragraph + "\n")
    if daemon.wait_processed(edit, 120) is None:
        return {"path": path, "error": "not processed within 120 s"}
    daemon.settle(idle=1.0)  # a deferred write of the note comes back as a retry; wait for it too
    history = daemon.since(edit)
    first = daemon.batch_of(edit)
    # The write lands inside its batch: the batch's end bounds it from above (to within one note's write).
    write = next((h for h in history if path in h.written), None)
    others = set().union(*(set(h.written) for h in history)) - {path}
    return {"path": path, "quiet": first.started - edit.saved_at, "processing": first.finished - first.started,
            "written": None if write is None else write.finished - edit.saved_at, "others": len(others),
            "synced": first.synced, "embedded": first.embedded}


def summary(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    out = {"edits": len(results), "failed": len(results) - len(ok)}
    for key in ("quiet", "processing", "written", "others"):
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            out[key] = distribution(values, digits=3)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    temporary = None if args.workdir else tempfile.TemporaryDirectory(prefix="ideaweave-latency-")
    work = args.workdir or Path(temporary.name)
    work.mkdir(parents=True, exist_ok=True)
    vault = prepare(args, work)
    app = build_app(args, vault, work)
    rng = random.Random(args.seed)
    results: list[dict] = []
    try:
        with Daemon(app) as daemon:
            started = time.perf_counter()
            if not daemon.wait_ready():
                raise daemon.error
            start_up = time.perf_counter() - started
            daemon.settle(idle=2.0)
            paths = sorted(n.path for n in app.store.notes() if not n.is_template)
            for _ in range(args.edits):
                results.append(one_edit(daemon, rng.choice(paths), paths, rng))
    finally:
        app.close()
        if temporary is not None:
            temporary.cleanup()
    report = {"vault": str(args.vault), "notes": len(paths), "threads": app.settings.embedding.threads,
              "quiet_ms": args.quiet_ms, "defer_seconds": args.defer_seconds, "start_up_s": round(start_up, 1),
              **summary(results), "each": results}
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def render(report: dict) -> str:
    lines = [f"ideaweave latency: {report['notes']} notes, {report['threads']} thread(s), quiet_ms "
             f"{report['quiet_ms']}, defer_seconds {report['defer_seconds']}; start-up {report['start_up_s']} s",
             f"{report['edits']} edits ({report['failed']} not processed)", ""]
    lines.append(f"{'':28}{'median':>10}{'p95':>10}{'max':>10}{'n':>6}")
    labels = {"quiet": "save -> batch start (s)", "processing": "batch (s)",
              "written": "save -> frontmatter (s)", "others": "other notes rewritten"}
    for key, label in labels.items():
        if key in report:
            row = report[key]
            lines.append(f"{label:28}{row['median']:>10}{row['p95']:>10}{row['max']:>10}{row['n']:>6}")
    lines += ["", PERCENTILE_NOTE]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
