#!/usr/bin/env python3
""""More like this passage" quality: a note's section, searched by (`ideaweave search --from NOTE#Heading`),
should find the notes that section links to.

Usage:
  python bench/search_passage.py VAULT [--sections 200] [--state DIR]

For a sample of sections that link to other notes (wikilinks resolved by the index), the section is
searched by through `search.note_passage` and `search.more_like` (the note it comes from left out) and
the notes it links to are looked for among the first 10 results: hit@10 (at least one of them there),
recall@10 (the share of them there) and MRR@10 of the first one found. The baseline in the same run ranks
the other notes by the cosine of their whole-note vector (the mean of their section vectors) to the
section's mean vector: "the nearest notes".
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

import numpy as np  # noqa: E402

from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.search import more_like, note_passage  # noqa: E402
from ideaweave.vectors import row_norms  # noqa: E402

WIKILINK = re.compile(r"\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|[^\]]*)?\]\]")


def linking_sections(app: App) -> list[tuple[str, tuple[str, ...], set[str]]]:
    """(note, heading path, notes linked from that section) for every headed section linking elsewhere."""
    found = []
    for path in app.store.note_paths():
        text = (app.root / path).read_text(encoding="utf-8")
        targets = {link.raw: link.target_path for link in app.store.outgoing_links(path) if link.target_path}
        for chunk in app.store.chunks_of(path):
            if not chunk.heading_path:
                continue
            linked = {targets.get(raw.strip()) for raw in WIKILINK.findall(text[chunk.start:chunk.end])}
            linked = {t for t in linked if t and t != path}
            if linked:
                found.append((path, tuple(chunk.heading_path), linked))
    return found


def scores(ranked: list[str], wanted: set[str]) -> tuple[float, float, float]:
    top = ranked[:10]
    first = next((i + 1 for i, p in enumerate(top) if p in wanted), 0)
    return float(first > 0), len(wanted & set(top)) / len(wanted), 1 / first if first else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vault")
    ap.add_argument("--sections", type=int, default=200)
    ap.add_argument("--state", required=True, help="the index's folder (kept, reused when present)")
    a = ap.parse_args()
    app = App(replace(Settings(), state_dir=a.state), Path(a.vault).resolve())
    app.indexer.run()
    sections = linking_sections(app)
    random.Random(0).shuffle(sections)
    sample = sections[:a.sections]
    paths, means, _ = app.store.note_means()
    means = means / np.maximum(row_norms(means), 1e-9)[:, None]
    rows = {"more like this (search --from NOTE#Heading)": [], "nearest whole-note vectors (baseline)": []}
    for path, headings, linked in sample:
        passage = note_passage(app.store, path, "#".join(headings))
        if passage is None or not passage.vector_ids:
            continue
        rows["more like this (search --from NOTE#Heading)"].append(
            scores([h.path for h in more_like(app.store, app.embedder, passage, k=10)], linked))
        vectors = app.store.gather_vectors(list(passage.vector_ids))
        query = (vectors / np.maximum(row_norms(vectors), 1e-9)[:, None]).mean(axis=0)
        order = [paths[i] for i in np.argsort(-(means @ query), kind="stable") if paths[i] != path]
        rows["nearest whole-note vectors (baseline)"].append(scores(order, linked))
    counted = len(rows["nearest whole-note vectors (baseline)"])
    print(f"{counted} sections (of {len(sections)} that link to other notes) over {len(paths)} notes")
    print(f"{'variant':46} hit@10 recall@10 MRR@10")
    for label, values in rows.items():
        m = [sum(v[i] for v in values) / len(values) for i in range(3)]
        print(f"{label:46} {m[0]:.3f}  {m[1]:.3f}     {m[2]:.3f}")
    app.close()


if __name__ == "__main__":
    main()
