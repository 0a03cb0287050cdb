#!/usr/bin/env python3
"""Duplicates on a real vault: the vault's calibration, the top pairs with both passages (to be read and judged),
the time taken, and, with --plant, where planted duplicates rank.

Usage:
  python bench/duplicates_bench.py VAULT [--state DIR] [--no-index] [-k 20] [--min-closeness 0]
  python bench/duplicates_bench.py VAULT --state DIR --plant NOTE [--reworded FILE]

--plant NOTE copies the vault and its index into a temporary folder, then adds duplicates there (the vault
itself is never written to): NOTE split in two (its sections divided between two new notes, the original
kept), and, with --reworded FILE, FILE as a new note (a passage of some note rewritten by hand, under
another title). Only the new notes are embedded. The report says at which rank each planted pair comes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.app import App  # noqa: E402
from ideaweave.config import Settings, replace  # noqa: E402
from ideaweave.corpus import Corpus  # noqa: E402
from ideaweave.duplicates import vault_duplicates  # noqa: E402

PLANTED = "Planted duplicates"


def split_note(text: str) -> tuple[str, str] | None:
    """A note's body cut in two at a second-level heading near its middle (frontmatter left out)."""
    body = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.DOTALL)
    cuts = [m.start() for m in re.finditer(r"^## ", body, flags=re.MULTILINE)]
    if not cuts:
        return None
    middle = min(cuts, key=lambda c: abs(c - len(body) / 2))
    return body[:middle].strip() + "\n", body[middle:].strip() + "\n"


def plant(vault: Path, state: Path, into: Path, note: str, reworded: Path | None) -> tuple[Path, Path, list[tuple[str, str]]]:
    """A copy of the vault and its index with the planted notes; the pairs that should come first."""
    copy, copy_state = into / "vault", into / "state"
    shutil.copytree(vault, copy, symlinks=True)
    shutil.copytree(state, copy_state)
    halves = split_note((vault / note).read_text(encoding="utf-8"))
    if halves is None:
        raise SystemExit(f"{note}: no second-level heading to split it at")
    folder = copy / PLANTED
    folder.mkdir()
    stem = Path(note).stem
    pairs = []
    for i, half in enumerate(halves, 1):
        (folder / f"{stem} part {i}.md").write_text(f"# {stem} part {i}\n\n{half}", encoding="utf-8")
        pairs.append((note, f"{PLANTED}/{stem} part {i}.md"))
    if reworded is not None:
        text = reworded.read_text(encoding="utf-8")
        source = re.search(r"^rewords: (.+)$", text, flags=re.MULTILINE)
        (folder / reworded.name).write_text(text, encoding="utf-8")
        if source:
            pairs.append((source.group(1).strip(), f"{PLANTED}/{reworded.name}"))
    return copy, copy_state, pairs


def run(vault: Path, state: Path, index: bool, k: int, min_closeness: float | None) -> dict:
    app = App(replace(Settings(), state_dir=str(state), **{"models.verify": False}), vault.resolve())
    if index:
        app.indexer.run()
    corpus = Corpus(app.store)
    wall, cpu = time.perf_counter(), time.process_time()
    options = {} if min_closeness is None else {"min_closeness": min_closeness}
    found, cal = vault_duplicates(corpus, k=k, **options)
    seconds = {"wall": round(time.perf_counter() - wall, 2), "cpu": round(time.process_time() - cpu, 2)}
    app.close()
    return {"vault": str(vault), "notes": len(corpus), "sections": len(corpus.chunk_vid), "seconds": seconds,
            "calibration": cal.as_json(), "duplicates": [d.as_json() for d in found]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vault", type=Path)
    parser.add_argument("--state", type=Path, help="the index's folder (default: a temporary one)")
    parser.add_argument("--no-index", action="store_true", help="use the index in --state as it is")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--min-closeness", type=float, help="list pairs down to this closeness (default: the command's)")
    parser.add_argument("--plant", metavar="NOTE", help="split this note in two in a copy of the vault")
    parser.add_argument("--reworded", type=Path, help="a hand-reworded passage to plant (a line 'rewords: NOTE' names its source)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        vault, state, pairs = args.vault, args.state or Path(scratch) / "state", []
        index = not args.no_index
        if args.plant:
            if args.state is None:
                raise SystemExit("--plant needs --state: the index of the vault to copy")
            vault, state, pairs = plant(args.vault, args.state, Path(scratch), args.plant, args.reworded)
            index = True  # only the planted notes are new
        result = run(vault, state, index, args.k, args.min_closeness)
    listed = [{d["a"]["path"], d["b"]["path"]} for d in result["duplicates"]]
    result["planted"] = [{"pair": list(pair), "rank": listed.index(set(pair)) + 1 if set(pair) in listed else None}
                         for pair in pairs]
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.vault}: {result['notes']} notes, {result['sections']} sections; calibration {result['calibration']}; "
          f"{result['seconds']['wall']} s ({result['seconds']['cpu']} s CPU)")
    for rank, d in enumerate(result["duplicates"], 1):
        print(f"\n#{rank}  similarity {d['similarity']:.3f}  closeness {d['closeness']:.1f}  percentile "
              f"{d['percentile']:.4f}  {d['sections']} passage pair(s)")
        for side in (d["a"], d["b"]):
            print(f"   {side['path']}{'#' + side['heading'] if side['heading'] else ''}\n      {side['passage'][:300]}")
    for entry in result["planted"]:
        print(f"planted {entry['pair'][0]} = {entry['pair'][1]}: rank {entry['rank']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
