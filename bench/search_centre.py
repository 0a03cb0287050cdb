"""What search pays for the vault's centre after an edit, on an existing index.

    python bench/search_centre.py STATE_DIR [--repeats 15] [--json]

STATE_DIR is an index's state folder (for instance the 10,003-note stand-in index that
`bench/scale_bench.py VAULT --precomputed --state-dir STATE_DIR` leaves). An edit is simulated by counting up
the store's `sections_version`, as indexing a changed note does; the daemon's snapshot is taken as brought up
to date after it (`Corpus.updated`). Timed, interleaved, in one run:

- baseline: the centre as search computed it before, the whole-note vectors of the first CENTRE_NOTES notes
  read again from the store's tables (`Store.note_means`) after every edit;
- `vault_centre` when the edit touched one of those notes (computed again), through the store (the CLI) and
  through the daemon's current snapshot (the API);
- `vault_centre` when it did not (their sections unchanged: the centre is kept), through both.

Prints the median of each in ms and its ratio to the baseline, and how far the centres differ.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

import numpy as np  # noqa: E402

from ideaweave import search  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.store import DATABASE_NAME, Store, stored_model_id  # noqa: E402


def former_centre(store: Store) -> np.ndarray:
    """The centre as search computed it before: the sample's whole-note vectors read from the tables."""
    _paths, vectors, _chunk_mean = store.note_means(only=store.oldest_note_paths(search.CENTRE_NOTES))
    return vectors.mean(axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("state_dir")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    model_id = stored_model_id(Path(a.state_dir))
    if model_id is None:
        sys.exit(f"no index in {a.state_dir}")
    with closing(sqlite3.connect(f"file:{Path(a.state_dir) / DATABASE_NAME}?mode=ro", uri=True)) as db:
        dim = int(db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
    store = Store.open(Path(a.state_dir), dim, model_id)
    notes, sections = store.totals()
    corpus = Corpus(store)

    def computed_again(snapshot: Corpus | None) -> np.ndarray:
        search._centres.clear()  # the edit touched one of the sample's notes
        return search.vault_centre(store, snapshot)

    variants = {
        "baseline: read from the tables": lambda: former_centre(store),
        "edit in the sample, store": lambda: computed_again(None),
        "edit in the sample, snapshot": lambda: computed_again(corpus),
        "edit outside it, store": lambda: search.vault_centre(store),
        "edit outside it, snapshot": lambda: search.vault_centre(store, corpus),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    centres: dict[str, np.ndarray] = {}
    for _ in range(a.repeats):
        for name, centre_of in variants.items():
            store.sections_version += 1  # an edit
            corpus.sections_version = store.sections_version  # the daemon's snapshot, brought up to date
            started = time.perf_counter()
            centres[name] = centre_of()
            times[name].append((time.perf_counter() - started) * 1000)
    store.close()
    base = statistics.median(times["baseline: read from the tables"])
    first = centres["baseline: read from the tables"]
    result = {"notes": notes, "sections": sections, "centre_notes": search.CENTRE_NOTES,
              "median_ms": {name: round(statistics.median(xs), 2) for name, xs in times.items()},
              "ratio_to_baseline": {name: round(statistics.median(xs) / base, 3) for name, xs in times.items()},
              "largest_difference": max(float(np.abs(c - first).max()) for c in centres.values())}
    if a.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{notes:,} notes, {sections:,} sections; the centre of the first {search.CENTRE_NOTES} notes, after an edit")
    for name in variants:
        print(f"  {name:32} median {result['median_ms'][name]:7.2f} ms   {result['ratio_to_baseline'][name]:.3f}x the baseline")
    print(f"  largest difference between the centres: {result['largest_difference']:.1e}")


if __name__ == "__main__":
    main()
