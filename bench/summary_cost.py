"""What summaries cost next to the index, in the same run: a cold index of a vault, then every note's summary.

    python bench/summary_cost.py [VAULT] [--repeats 3]

Indexes VAULT (default: the shared garden vault) from nothing into a temporary state folder with the real
model and the configured settings, then computes the summary of every note with the configured summary
mode (no cache: each note read and summarised), `--repeats` times. Prints the index's time per note, the
summaries' median time per note, and their ratio (the target: summaries at most 10% of the index).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.config import load_settings, replace  # noqa: E402
from ideaweave.vault import Skipped  # noqa: E402

DEFAULT_VAULT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "vaults" / "garden" / "vault"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", nargs="?", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="summary-cost-") as state:
        settings = replace(load_settings(None, dict(os.environ)), state_dir=state)
        app = App(settings, args.vault.resolve())
        app.embedder  # the model loads outside the timed index
        started = time.perf_counter()
        report = app.indexer.run()
        index_seconds = time.perf_counter() - started
        paths = app.store.note_paths()
        summarizer = app.summaries.summarizer
        runs = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            made = 0
            for path in paths:
                note = app.scanner.read(path)
                if not isinstance(note, Skipped) and summarizer.summarize(note):
                    made += 1
            runs.append(time.perf_counter() - started)
        app.close()
    per_note_index = index_seconds / max(len(paths), 1) * 1000
    per_note_summary = statistics.median(runs) / max(len(paths), 1) * 1000
    print(f"vault: {args.vault} ({len(paths)} notes, {report.chunks} chunks)")
    print(f"summary mode: {settings.summary.mode}; {made} notes got a summary")
    print(f"cold index:  {index_seconds:8.1f} s   {per_note_index:8.2f} ms/note")
    print(f"summaries:   {statistics.median(runs):8.2f} s   {per_note_summary:8.2f} ms/note (median of {args.repeats})")
    print(f"summaries / index: {per_note_summary / per_note_index:.1%} (target: at most 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
