#!/usr/bin/env python3
"""The idea map at scale: the Python time to build the page for N notes, and the page's load-to-drawn time in
headless Chromium, against a baseline in the same run (the same page for a vault of BASELINE notes).

Usage:
  python bench/map_bench.py [--notes 10000] [--loads 7] [--page FILE ...]
  python bench/map_bench.py --screenshot OUT.png --page FILE [--hover NOTE]   (the picture in docs/)

Notes are the stand-in vectors of `topics_bench.py --synthetic` (300 clusters), their topics computed as
`ideaweave topics` would, each with a summary of about 200 characters so the page is as heavy as a real one.
--page times pages written by `ideaweave map --html` as well (e.g. a real vault's).

Load-to-drawn is read by the page itself: `performance.now()` (time since navigation started) in the first
animation frame after the map was drawn. Each load is a fresh browser context; the median is printed, with the
load average, since Chromium shares the machine with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ideaweave.ideamap import build_map, render_page  # noqa: E402
from ideaweave.topics import build_topics  # noqa: E402
from topics_bench import synthetic_input  # noqa: E402

BASELINE = 100
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SUMMARY = ("A stand-in summary of about two hundred characters, as long as the one sentence ideaweave writes "
           "into a note's frontmatter, so that the page carries as much text as a real vault's map does.")


def synthetic_page(n: int, builds: int = 3) -> tuple[str, dict]:
    """The page for n stand-in notes, and the seconds its parts took (topics once; the map `builds` times; CPU
seconds are what one unshared core would take, the wall clock depends on the machine's load)."""
    notes = synthetic_input(n, centres=min(300, max(2, n // 30)))
    words = {p: p.split("/")[0] for p in notes.paths}
    started = time.perf_counter()
    topics = build_topics(notes, words.get, lambda p: [])
    topic_seconds = time.perf_counter() - started
    at = {p: i for i, p in enumerate(notes.paths)}
    map_seconds, map_cpu, page_seconds = [], [], []
    for _ in range(builds):
        started, cpu = time.perf_counter(), time.process_time()
        idea_map = build_map(topics, "Synthetic", lambda p: notes.vectors[at[p]], lambda p: p.rsplit("/", 1)[-1][:-3],
                             lambda p: SUMMARY, lambda p: False)
        map_seconds.append(time.perf_counter() - started)
        map_cpu.append(time.process_time() - cpu)
        started = time.perf_counter()
        page = render_page(idea_map)
        page_seconds.append(time.perf_counter() - started)
    return page, {"notes": len(idea_map.notes), "topics": {level: sum(t.level == level for t in topics) for level in (0, 1)},
                  "topics_seconds": round(topic_seconds, 2),
                  "map_seconds_median": round(statistics.median(map_seconds), 3),
                  "map_cpu_seconds_median": round(statistics.median(map_cpu), 3),
                  "page_seconds_median": round(statistics.median(page_seconds), 3),
                  "page_bytes": len(page.encode("utf-8"))}


def load_times(browser, path: Path, loads: int) -> dict:
    """Median load-to-drawn (ms, as the page measures it) and wall time from navigation to the drawn flag."""
    drawn, wall = [], []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
        started = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("document.documentElement.dataset.drawn === 'true'", timeout=60_000, polling=10)
        wall.append((time.perf_counter() - started) * 1000)
        drawn.append(page.evaluate("window.ideaweaveMap.drawnAt"))
        context.close()
        if errors:
            raise RuntimeError(f"{path.name}: {errors[0]}")
    return {"drawn_ms_median": round(statistics.median(drawn)), "drawn_ms_max": round(max(drawn)),
            "wall_ms_median": round(statistics.median(wall)), "loads": loads}


def screenshot(chromium: str, page_file: Path, out: Path, hover: str | None) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(page_file.resolve().as_uri())
        page.wait_for_function("document.documentElement.dataset.drawn === 'true'")
        if hover:
            at = page.evaluate("path => window.ideaweaveMap.screenOf(path)", hover)
            if at is None:
                print(f"map_bench: no note {hover} on the map", file=sys.stderr)
                return 1
            page.mouse.move(at["x"], at["y"])
        page.wait_for_timeout(200)
        page.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--page", type=Path, action="append", default=[], help="also time this map page")
    parser.add_argument("--screenshot", type=Path, metavar="OUT", help="only take a picture of the first --page")
    parser.add_argument("--hover", metavar="NOTE", help="with --screenshot: the note the pointer rests on")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("map_bench: no chromium on this machine (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    if args.screenshot:
        return screenshot(chromium, args.page[0], args.screenshot, args.hover)
    result = {"load_average": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as folder:
        pages = {}
        for label, n in (("baseline", BASELINE), ("measured", args.notes)):
            page, built = synthetic_page(n)
            pages[label] = Path(folder) / f"map-{n}.html"
            pages[label].write_text(page, encoding="utf-8")
            result[label] = {"build": built}
        for extra in args.page:
            pages[str(extra)] = extra.resolve()
            result[str(extra)] = {}
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, args=FLAGS)
            for label, path in pages.items():
                result[label]["load"] = load_times(browser, path, args.loads)
            browser.close()
    base = result["baseline"]["load"]["drawn_ms_median"]
    result["ratio_to_baseline"] = {label: round(result[label]["load"]["drawn_ms_median"] / base, 2)
                                   for label in pages if label != "baseline"}
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
