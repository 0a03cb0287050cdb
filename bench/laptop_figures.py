"""Every "fast on a real laptop" figure in one run: each with its value before, its value now, and its ratio
to the baseline measured in the same run.

    python bench/laptop_figures.py [--notes 10003] [--only NAME ...] [--json]

`make bench-full` runs it. Each figure comes from one of the benchmarks below, run as a subprocess with
`--json`; a figure's "before" is the value bench/RESULTS.md recorded before the work that moved it. What
each figure is measured against in the same run:

- auto threads: fixed 1 and fixed 2 threads on the same chunks, taking turns (bench/embed_threads.py);
- the first pass: the embedder alone on the chunks the pass embedded (bench/first_pass.py), on the garden
  vault and a generated vault of `--notes` notes; an edit saved during its indexing phase and how long
  until the daemon wrote it;
- related p95, the daemon's peak RSS, the embedding kernel: bench/scale_bench.py and
  bench/embed_throughput.py (their rows below read keys those benchmarks print; a benchmark that does not
  print a key yet shows "not measured").

A step that fails prints its error and the others still run. The machine's load average is printed
before and after: on a busy machine, compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SCRATCH = REPO / ".scratch"


@dataclass(frozen=True)
class Step:
    """One benchmark run with --json."""

    name: str
    command: Callable[[argparse.Namespace], list[str]]


@dataclass(frozen=True)
class Figure:
    name: str
    step: str
    before: str  # the value before, as recorded in bench/RESULTS.md
    target: str
    read: Callable[[dict], str | None]  # the value now (with its same-run ratio) from the step's JSON


def dig(data, *keys):
    for key in keys:
        if not isinstance(data, (dict, list)):
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def threads_figure(situation: str, against: str) -> Callable[[dict], str | None]:
    def read(data: dict) -> str | None:
        rates = dig(data, situation, "tokens_per_s")
        if not rates:
            return None
        base = max(rates["fixed 1"], rates["fixed 2"]) if against == "best" else rates["fixed 1"]
        return (f"{rates['auto'] / base:.2f}x  (auto {rates['auto']:,.0f} tokens/s; fixed 1 {rates['fixed 1']:,.0f}, "
                f"fixed 2 {rates['fixed 2']:,.0f})")
    return read


def pass_of(data: dict, which: str) -> dict | None:
    """The first-pass result of the garden vault or of the generated one."""
    for r in data.get("vaults", []):
        if ("first-pass-" in r["vault"]) == (which == "generated"):
            return r
    return None


def first_pass_figure(which: str) -> Callable[[dict], str | None]:
    def read(data: dict) -> str | None:
        r = pass_of(data, which)
        if not r:
            return None
        return (f"{r['ratio']:.2f}x  ({r['notes']} notes: pass {r['pass_seconds']:,.0f} s = indexing "
                f"{r['indexing_seconds']:,.0f} + writing {r['writing_seconds']:,.0f} ({r['writing_ms_per_note']} ms a note); embedder alone "
                f"{r['embedder_alone_seconds']:,.0f} s)")
    return read


def edit_figure(which: str) -> Callable[[dict], str | None]:
    def read(data: dict) -> str | None:
        e = dig(pass_of(data, which) or {}, "edit_during_pass")
        if not e:
            return None
        return f"{e['seconds']} s  (saved at {e['saved_at']}, written at {e['written_at']})"
    return read


def scale_figure(*keys: str, unit: str = "") -> Callable[[dict], str | None]:
    def read(data: dict) -> str | None:
        value = dig(data, *keys)
        return None if value is None else f"{value}{unit}"
    return read


STEPS = [
    Step("threads", lambda a: [sys.executable, str(BENCH / "embed_threads.py"), "--chunks", "200", "--repeats", "3", "--json"]),
    Step("first-pass", lambda a: [sys.executable, str(BENCH / "first_pass.py"), "--generated", str(a.notes),
                                  "--edit-at", "0.1", "--json", *(["--no-garden"] if a.skip_garden else [])]),
    # Related at 10k and 100k, RSS at 100k, the kernel: the benchmarks that measure them (their keys below).
    Step("scale-10k", lambda a: [sys.executable, str(BENCH / "scale_bench.py"), str(SCRATCH / f"first-pass-{a.notes}"),
                                 "--queries", "200", "--edits", "10", "--json"]),
    Step("scale-100k", lambda a: [sys.executable, str(BENCH / "scale_bench.py"), str(SCRATCH / "bench-100k"),
                                  "--precomputed", "--queries", "200", "--edits", "10", "--json"]),
]

FIGURES = [
    Figure("auto threads idle / best fixed", "threads", "0.91x", ">= 0.95x", threads_figure("idle", "best")),
    Figure("auto threads contended / fixed 1", "threads", "1.03x", ">= 1.0x", threads_figure("contended", "one")),
    Figure("first pass / embedder alone, garden", "first-pass", "1.28x idle (writing 30.8 ms a note)", "<= 1.2x",
           first_pass_figure("garden")),
    Figure("first pass / embedder alone, generated", "first-pass",
           "about 3.4x at 10,003 notes (index 1,509 s, then about 0.35 s a note)", "<= 1.2x", first_pass_figure("generated")),
    Figure("edit during the first pass, written after", "first-pass",
           "waited for the end of indexing (1,509 s at 10,003 notes)", "<= 10 s", edit_figure("generated")),
    Figure("related p95 at 10k (keywords kept)", "scale-10k", "87.1 ms", "< 20 ms",
           scale_figure("related", "p95_ms", unit=" ms")),
    Figure("related p95 at 100k", "scale-100k", "26.4 ms", "< 20 ms", scale_figure("related", "p95_ms", unit=" ms")),
    Figure("daemon peak RSS at 100k", "scale-100k", "977 MiB", "< 768 MiB",
           scale_figure("daemon_peak_rss_mib", unit=" MiB")),
]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def run_step(step: Step, args: argparse.Namespace) -> dict:
    command = step.command(args)
    print(f"[{step.name}] {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": "no JSON in its output"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10003, help="the generated vault's size (the issue's: 10003)")
    parser.add_argument("--skip-garden", action="store_true", help="the first pass on the generated vault only")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in STEPS], help="run only these steps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    SCRATCH.mkdir(exist_ok=True)
    before = load()
    results = {s.name: run_step(s, args) for s in STEPS if not args.only or s.name in args.only}
    rows = []
    for f in FIGURES:
        data = results.get(f.step)
        if data is None:
            now = "not run"
        elif "error" in data:
            now = f"failed: {data['error']}"
        else:
            now = f.read(data) or "not measured"
        rows.append({"figure": f.name, "before": f.before, "now": now, "target": f.target})
    if args.json:
        print(json.dumps({"load_before": before, "load_after": load(), "figures": rows, "runs": results}, indent=2))
        return 0
    print(f"before: {before}")
    for row in rows:
        print(f"{row['figure']}\n    before {row['before']}\n    now    {row['now']}\n    target {row['target']}")
    print(f"after:  {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
