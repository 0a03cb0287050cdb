#!/usr/bin/env python3
"""Search ablations, in one process: each component of note-level search alone and fused, on a vault whose
notes carry a one-line `description:` (the query; its own note is the one right answer), as the shared
search benchmark builds its queries.

Usage:
  python bench/search_ablation.py VAULT [--queries 200] [--state DIR]

The copy of the vault (descriptions removed) is indexed once with the real model; every variant then
ranks the same queries through ideaweave's own search code and the figures print as a table (hit@1,
hit@10, MRR@10). `ideaweave search` itself is measured by the shared benchmark, which runs the CLI.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.search import SEARCH_WEIGHTS, note_components, question_query, search  # noqa: E402

DESCRIPTION = re.compile(r"^description: (.*)\n", re.M)


def strip_descriptions(vault: Path) -> dict[str, str]:
    """Remove the `description:` line of every note in place; {note: description} for those of 5+ words."""
    queries = {}
    for path in sorted(vault.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        m = re.match(r"---\n(.*?\n)---\n", text, re.S)
        found = DESCRIPTION.search(m.group(1)) if m else None
        if not found:
            continue
        value = found.group(1)
        query = json.loads(value) if value.startswith('"') else value
        path.write_text(text[:m.start(1)] + DESCRIPTION.sub("", m.group(1), count=1) + text[m.end(1):], encoding="utf-8")
        if len(query.split()) >= 5:
            queries[path.relative_to(vault).as_posix()] = query
    return queries


def score(ranked: list[str], gold: str) -> tuple[float, float, float]:
    r = ranked.index(gold) + 1 if gold in ranked else 0
    return float(r == 1), float(0 < r <= 10), 1 / r if 0 < r <= 10 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vault")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--state")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="search-ablation-"))
    vault = work / "vault"
    shutil.copytree(a.vault, vault)
    queries = strip_descriptions(vault)
    sample = sorted(queries)
    random.Random(0).shuffle(sample)
    sample = sorted(sample[:a.queries])
    app = App(replace(Settings(), state_dir=a.state or str(work / "state")), vault)
    app.indexer.run()
    rows = {}
    started = time.perf_counter()
    results = [[h.path for h in search(app.store, app.embedder, queries[n], k=10)] for n in sample]
    rows["search (as shipped)"] = [score(r, n) for r, n in zip(results, sample)]
    seconds = (time.perf_counter() - started) / len(sample)
    parts = [note_components(app.store, question_query(app.embedder, queries[n])) for n in sample]
    variants = {f"{name} alone": {name: 1.0} for name in SEARCH_WEIGHTS}
    variants["fused (weights as shipped)"] = dict(SEARCH_WEIGHTS)
    for name in SEARCH_WEIGHTS:
        variants[f"fused without {name}"] = {k: v for k, v in SEARCH_WEIGHTS.items() if k != name}
    for label, weights in variants.items():
        rows[label] = [score(p.ranked(weights, 10), n) for p, n in zip(parts, sample)]
    print(f"{len(sample)} queries over {len(app.store.note_paths())} notes; search {seconds * 1000:.1f} ms per query")
    print(f"{'variant':34} hit@1  hit@10 MRR@10")
    for label, values in rows.items():
        means = [sum(v[i] for v in values) / len(values) for i in range(3)]
        print(f"{label:34} {means[0]:.3f}  {means[1]:.3f}  {means[2]:.3f}")
    app.close()


if __name__ == "__main__":
    main()
