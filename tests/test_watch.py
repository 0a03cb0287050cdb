"""The watch daemon: its pure cascade and process guards, then the real daemon on real files with the real model.

The event batcher it feeds is tested in test_events.py."""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import frontmatter as pyfrontmatter  # python-frontmatter: an independent check that notes still parse
import numpy as np
import psutil
import pytest
from ideaweave import config
from ideaweave.app import App, scan_rules
from ideaweave.config import Settings
from ideaweave.errors import LockError, VaultError
from ideaweave.indexer import Indexer
from ideaweave.store import Store
from ideaweave.vault import VaultScanner, link_names
from ideaweave.writer import checksum
from ideaweave.watch import (
    BatteryGate, SyncLedger, VaultWatcher, WatchHooks, WatchStats, daemon_lock, nearest_notes, notes_citing,
    on_battery, remove_stale_temp_files, run_watch, runs_on_battery, start_observer, sync_fingerprint,
)

DAEMON_DIR = Path(__file__).resolve().parents[1] / "daemon"


# ------------------------------------------------------------------ links, neighbours


def test_link_names_are_the_trailing_parts_of_a_path():
    assert link_names("Concepts/AI/Corrigibility.md") == {"corrigibility", "ai/corrigibility", "concepts/ai/corrigibility"}


def test_notes_citing_finds_links_by_their_text():
    written = {
        "a.md": ["[[Corrigibility#Shutdown problem]]", "[[Other]]"],
        "b.md": ["[[concepts/corrigibility|the idea]]"],
        "c.md": ["[[Corrigibility 2]]", "[[Incorrigibility]]"],
        "d.md": "opted_out",
        "e.md": None,
        "f.md": ["[[Reward hacking]]"],
    }
    assert notes_citing(written, {"Concepts/Corrigibility.md"}) == {"a.md", "b.md"}
    assert notes_citing(written, {"Concepts/Corrigibility.md", "Reward hacking.md"}) == {"a.md", "b.md", "f.md"}
    assert notes_citing(written, set()) == set()
    # Read one written note at a time (the daemon's way at 100,000 notes): the same answer.
    assert notes_citing(iter(written.items()), {"Concepts/Corrigibility.md"}) == {"a.md", "b.md"}


def test_nearest_notes_by_note_vector():
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.95, 0, 0.05], [0.8, 0.2, 0]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = ["q.md", "near.md", "far.md", "nearest.md", "template.md"]
    index = {p: i for i, p in enumerate(paths)}
    excluded = np.array([False, False, False, False, True])
    assert nearest_notes(paths, vectors, index, "q.md", 2, excluded) == ["nearest.md", "near.md"]
    assert nearest_notes(paths, vectors, index, "q.md", 10, excluded) == ["nearest.md", "near.md", "far.md"]
    assert nearest_notes(paths, vectors, index, "missing.md", 2) == []


# ------------------------------------------------------------------ process guards


# What psutil.sensors_battery() returns on a machine with a battery (None without one).
BatteryReading = collections.namedtuple("BatteryReading", "percent secsleft power_plugged")


def test_only_an_unplugged_charger_means_running_on_battery():
    assert runs_on_battery(BatteryReading(100, psutil.POWER_TIME_UNLIMITED, True)) is False  # plugged in, full
    assert runs_on_battery(BatteryReading(40, psutil.POWER_TIME_UNLIMITED, True)) is False  # plugged in, charging
    assert runs_on_battery(BatteryReading(40, 5400, False)) is True  # discharging
    assert runs_on_battery(BatteryReading(3, psutil.POWER_TIME_UNKNOWN, False)) is True
    assert runs_on_battery(BatteryReading(40, psutil.POWER_TIME_UNKNOWN, None)) is False  # psutil cannot tell
    assert runs_on_battery(None) is False  # no battery: a desktop, a server


def test_on_battery_asks_the_real_battery_sensor():
    reading = psutil.sensors_battery()  # this machine's, through the same library the daemon uses
    assert on_battery() is runs_on_battery(reading)
    if reading is None:  # no battery (this test machine): work is never paused
        assert on_battery() is False


def test_battery_gate_checks_at_most_every_interval():
    calls, clock = [], [0.0]
    gate = BatteryGate(True, check=lambda: calls.append(1) or True, clock=lambda: clock[0], interval=30.0)
    assert gate.paused() and gate.paused() and len(calls) == 1
    clock[0] = 31.0
    assert gate.paused() and len(calls) == 2
    assert BatteryGate(False, check=lambda: True).paused() is False


def test_a_second_lock_on_the_same_state_folder_names_the_holder(tmp_path):
    with daemon_lock(tmp_path / "state", tmp_path / "vault"):
        with pytest.raises(LockError, match=rf"PID {os.getpid()}\b"):
            with daemon_lock(tmp_path / "state", tmp_path / "vault"):
                pass
    with daemon_lock(tmp_path / "state", tmp_path / "vault"):  # released on exit
        pass


class _NoInotify:
    """A native observer that cannot start, as when the inotify watch limit is reached."""

    def schedule(self, *args, **kwargs):
        raise OSError(28, "inotify watch limit reached")

    def stop(self):
        pass


def test_observer_falls_back_to_polling_when_native_watching_fails(tmp_path):
    from watchdog.events import FileSystemEventHandler

    observer, kind = start_observer(tmp_path, FileSystemEventHandler(), "auto", 0.5, native_factory=_NoInotify)
    try:
        assert kind == "polling" and observer.is_alive()
    finally:
        observer.stop()
        observer.join()
    with pytest.raises(VaultError, match="polling"):
        start_observer(tmp_path, FileSystemEventHandler(), "native", 0.5, native_factory=_NoInotify)


def test_stale_temp_files_of_a_crashed_write_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.md.x1y2z3.ideaweave-tmp", tmp_path / "sub" / ".B c.md.q.ideaweave-tmp"]
    kept = [tmp_path / "a.md", tmp_path / ".a.md.swp", tmp_path / "sub" / "x.ideaweave-tmp.md"]
    for path in stale + kept:
        path.write_text("x")
    assert remove_stale_temp_files(tmp_path) == 2
    assert [p.exists() for p in stale] == [False, False] and all(p.exists() for p in kept)


def test_the_ledger_remembers_a_clean_stop_once_and_only_for_the_same_settings(tmp_path):
    ledger = SyncLedger(tmp_path / "ledger.json", "f1")
    assert ledger.take() is None  # never stopped cleanly: sync every note
    ledger.close({"b.md", "a.md"})
    assert ledger.take() == ["a.md", "b.md"]
    assert ledger.take() is None  # taken: a crash from now on means a full sync
    ledger.close([])
    assert SyncLedger(tmp_path / "ledger.json", "f2").take() is None
    (tmp_path / "ledger.json").write_text("{not json")
    assert ledger.take() is None and not (tmp_path / "ledger.json").exists()


def test_the_fingerprint_follows_the_settings_that_shape_related_and_summary():
    base = Settings()
    assert sync_fingerprint(base) == sync_fingerprint(config.replace(base, **{"watch.quiet_ms": 5}))
    assert sync_fingerprint(base) == sync_fingerprint(config.replace(base, **{"writer.defer_seconds": 0.0}))
    assert sync_fingerprint(base) != sync_fingerprint(config.replace(base, **{"writer.related_count": 7}))
    assert sync_fingerprint(base) != sync_fingerprint(config.replace(base, **{"summary.sentences": 3}))


# ------------------------------------------------------------------ the real daemon

NOTES = {
    "Garden/Tomatoes.md": """---
tags: [garden]
---
# Tomatoes

Tomatoes want full sun, deep watering and a stake or cage to climb. Pinch the side shoots of cordon varieties
so the plant puts its energy into fruit rather than leaves. Feed with a high potash fertiliser once the first truss sets.

Blight arrives in warm wet weather: remove the lower leaves and water the soil, not the foliage.
""",
    "Garden/Compost.md": """# Compost

A compost heap turns kitchen scraps, grass clippings and autumn leaves into dark crumbly soil food.
Balance green nitrogen-rich material with brown carbon-rich material, keep it as damp as a wrung sponge,
and turn it every few weeks so air reaches the middle. A hot heap kills weed seeds.
""",
    "Garden/Watering.md": """# Watering

Water the garden early in the morning so the soil holds moisture through the heat of the day. Deep, infrequent
watering grows deeper roots than a daily sprinkle. Mulch with straw or compost to keep water in the ground,
and collect rain in butts for dry spells.
""",
    "Garden/Seed saving.md": """# Seed saving

Save seed from open-pollinated vegetables such as beans, peas and tomatoes. Let the best plants go to seed,
dry the pods on the plant, and store the seed in paper envelopes somewhere cool and dry. Label every packet
with the variety and the year.
""",
    "Alignment/Reward hacking.md": """# Reward hacking

A reinforcement learning agent hacks its reward when it finds a way to score highly that its designers did not
intend, such as looping forever to collect points instead of finishing the race. The reward function is a proxy
for what we want, and optimisation pressure finds the gaps between the proxy and the goal.
""",
    "Alignment/Goodhart's law.md": """# Goodhart's law

When a measure becomes a target, it ceases to be a good measure. Optimising a proxy metric hard enough breaks
the correlation between the proxy and the true objective. In machine learning this shows up as specification
gaming and reward hacking by optimising agents.
""",
    "Alignment/Corrigibility.md": """---
aliases: [corrigible agent]
---
# Corrigibility

A corrigible AI system lets its overseers correct it, change its goals or shut it down, and does not resist or
manipulate them into stopping. Most goals give an agent an instrumental reason to avoid being switched off,
so corrigibility has to be designed in.
""",
    "Alignment/Scalable oversight.md": """# Scalable oversight

How can humans supervise AI systems on tasks too hard for them to evaluate directly? Proposals include debate
between two models, recursive reward modelling and amplification, where weaker overseers with AI help judge
the outputs of a stronger model.
""",
    "Kitchen/Sourdough.md": """# Sourdough

A sourdough starter is flour and water colonised by wild yeast and lactic acid bacteria. Feed it daily, mix
the dough with a ripe starter, let it ferment slowly in the fridge overnight, and bake in a hot covered pot
so the loaf gets a crackling crust and an open crumb.
""",
    "Kitchen/Fermentation.md": """# Fermentation

Lacto-fermentation preserves vegetables with salt alone: cabbage becomes sauerkraut and kimchi as lactic acid
bacteria turn sugars into acid. Keep the vegetables under the brine, at cool room temperature, and taste
after a week. Fermented food keeps for months.
""",
    "Kitchen/Stock.md": """# Stock

A good stock simmers bones, onion, carrot and celery in cold water for hours without boiling. Skim the scum,
never stir, strain through a fine sieve and cool it quickly. Reduce it for sauces, or freeze it in portions
for soups and risotto.
""",
    "Kitchen/Knife skills.md": """# Knife skills

Hold the knife with a pinch grip on the blade and curl the fingers of the guiding hand into a claw. Rock the
blade for herbs, slice with long strokes for onions, and keep the edge sharp with a whetstone: a dull knife
slips and cuts fingers.
""",
}


def write_vault(root: Path, notes: dict[str, str] = NOTES) -> Path:
    (root / ".obsidian").mkdir(parents=True)
    (root / ".obsidian" / "app.json").write_text("{}")
    for rel, text in notes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def make_settings(tmp_path: Path, **overrides) -> Settings:
    values = {"state_dir": str(tmp_path / "state"), "watch.quiet_ms": 200, "watch.max_batch_ms": 2000,
              "writer.defer_seconds": 0.0, "api.enabled": False, "models.verify": False}
    values.update(overrides)
    return config.replace(Settings(), **values)


def make_app(vault: Path, tmp_path: Path, embedder, **overrides) -> App:
    app = App(make_settings(tmp_path, **overrides), vault.resolve(), embedder=embedder)
    return app


@contextlib.contextmanager
def running_daemon(app: App, timeout: float = 60.0, watcher: VaultWatcher | None = None, wait_ready: bool = True):
    """run_watch (or a VaultWatcher's run, without the process guards) on a thread, stopped on exit."""
    stop, ready, outcome = threading.Event(), threading.Event(), {}
    stats = watcher.stats if watcher is not None else WatchStats()
    if watcher is not None:
        watcher.stop = stop

    def daemon() -> None:
        try:
            if watcher is not None:
                outcome["code"] = watcher.run(on_ready=ready.set)
            else:
                outcome["code"] = run_watch(app, stop=stop, on_ready=ready.set, stats=stats)
        except BaseException as exc:  # surfaced in the test's thread below
            outcome["error"] = exc
            ready.set()

    thread = threading.Thread(target=daemon, name="watch-daemon", daemon=True)
    thread.start()
    stats.ready_event = ready
    assert not wait_ready or ready.wait(timeout), "the daemon never finished its start-up pass"
    if "error" in outcome:
        raise outcome["error"]
    try:
        yield stats
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the daemon did not stop"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["code"] == 0


def eventually(check, timeout: float = 20.0, what: str = "condition", detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for: {what} {detail()}")
        time.sleep(0.1)


def settle(stats: WatchStats, idle: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until nothing is pending and no batch ran for `idle` seconds."""
    deadline = time.monotonic() + timeout
    seen, since = stats.batches, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if stats.batches != seen or stats.pending:
            seen, since = stats.batches, time.monotonic()
        elif time.monotonic() - since >= idle:
            return
    pytest.fail("the daemon never went idle")


def meta(vault: Path, rel: str) -> dict:
    return pyfrontmatter.loads((vault / rel).read_text(encoding="utf-8")).metadata


def related_of(vault: Path, rel: str) -> list[str]:
    return list(meta(vault, rel).get("related") or [])


def all_related(vault: Path) -> dict[str, list[str]]:
    return {p.relative_to(vault).as_posix(): related_of(vault, p.relative_to(vault).as_posix())
            for p in vault.rglob("*.md") if ".obsidian" not in p.parts}


def citing(vault: Path, name: str) -> set[str]:
    return {note for note, links in all_related(vault).items() if any(link.startswith(f"[[{name}") for link in links)}


def test_start_up_writes_every_note_then_new_and_edited_notes_follow(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app) as stats:
        for rel in NOTES:  # the start-up pass wrote every note
            assert related_of(vault, rel) and meta(vault, rel).get("summary"), rel
        assert stats.observer == "native"

        (vault / "Garden/Slugs.md").write_text(
            "# Slugs\n\nSlugs eat seedlings, lettuce and hostas at night in damp weather. Beer traps, copper tape, "
            "nematodes and a torchlit hunt after rain keep them down; thrushes and frogs eat them too.\n")
        eventually(lambda: related_of(vault, "Garden/Slugs.md") and meta(vault, "Garden/Slugs.md").get("summary"),
                   what="the new note gets related links and a summary")
        assert any("Garden" in link or name in link for link in related_of(vault, "Garden/Slugs.md")
                   for name in ("Tomatoes", "Compost", "Watering", "Seed saving"))

        new_body = ("# Knife skills\n\nA reward model trained on human preferences can be gamed: the policy learns "
                    "to please the reward model rather than the humans behind it. Overseers must check the "
                    "agent's behaviour, not only its reward, and specification gaming should be expected.\n")
        # The user rewrites the body entirely (the frontmatter stays: removing a key would opt the note out).
        old = (vault / "Kitchen/Knife skills.md").read_text()
        frontmatter_block = old[:old.index("\n---\n", 3) + 5]
        (vault / "Kitchen/Knife skills.md").write_text(frontmatter_block + new_body)
        eventually(lambda: "reward model" in (meta(vault, "Kitchen/Knife skills.md").get("summary") or ""),
                   what="the rewritten note's summary follows its new text")
        eventually(lambda: any("Reward hacking" in link or "Goodhart" in link
                               for link in related_of(vault, "Kitchen/Knife skills.md")),
                   what="the rewritten note's related links follow its new topic")
        body = (vault / "Kitchen/Knife skills.md").read_text()
        assert body.endswith(new_body)


def test_own_writes_cause_no_second_round_and_an_edit_cascades_to_few_notes(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app) as stats:
        settle(stats)  # the start-up pass's own writes come back as events: all ignored
        assert stats.notes_indexed == 0 and stats.notes_written == 0
        before = (stats.batches, stats.notes_indexed, stats.notes_written, stats.own_writes_ignored)
        history_before = len(stats.history)

        with open(vault / "Garden/Compost.md", "a", encoding="utf-8") as handle:
            handle.write("\nWorms in the compost heap speed everything up; a wormery works on a balcony too.\n")
        eventually(lambda: stats.notes_indexed > before[1], what="the edit is indexed")
        settle(stats)

        batches = list(stats.history)[history_before:]
        working = [b for b in batches if b.paths]
        assert len(working) == 1, batches  # exactly one batch did work: the user's edit
        work = working[0]
        assert work.paths == ("Garden/Compost.md",) and work.indexed == 1 and work.embedded >= 1
        others = set(work.written) - {"Garden/Compost.md"}
        assert len(others) <= 3, f"one edit rewrote {len(others)} other notes: {sorted(others)}"
        assert work.synced <= 1 + 10  # the note, notes citing it, and its nearest neighbours at most
        # Every note the daemon wrote came back as a file event and was recognised as its own write.
        assert stats.notes_indexed - before[1] == 1
        assert stats.own_writes_ignored - before[3] == stats.notes_written - before[2] == len(work.written)
        assert all(not b.paths and b.indexed == 0 and b.synced == 0 for b in batches if b is not work)


def hub_holding(vault: Path, note: str) -> str | None:
    """The hub note in Topics/ of the finest topic that links to `note`."""
    link = f"[[{note[:-3]}]]"
    found = sorted((("level: 1" in text), p.name) for p in (vault / "Topics").glob("*.md")
                   if link in (text := p.read_text(encoding="utf-8")))
    return found[-1][1] if found else None


def test_the_daemon_draws_topics_after_start_up_and_moves_a_note_between_hubs_once_edits_rest(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder, **{"topics.write": True, "topics.key": True, "topics.delay_seconds": 1.0})
    moved = "Garden/Seed saving.md"
    with running_daemon(app) as stats:
        eventually(lambda: stats.topics_updates >= 1, what="topics after the start-up pass")
        settle(stats)
        assert stats.hubs_written >= 3 and stats.notes_indexed == 0  # hubs and keys are not indexed as edits
        assert app.store.get_setting("topics.last")
        garden_hub = hub_holding(vault, moved)
        kitchen_hub = hub_holding(vault, "Kitchen/Sourdough.md")
        assert garden_hub and kitchen_hub and garden_hub != kitchen_hub
        assert meta(vault, moved)["topic"] == f"[[Topics/{garden_hub[:-3]}]]"
        assert not set(app.store.note_paths()) & {f"Topics/{h.name}" for h in (vault / "Topics").glob("*.md")}
        updates = stats.topics_updates
        text = (vault / moved).read_text(encoding="utf-8").split("\n# Seed saving")[0]  # keeps ideaweave's keys
        (vault / moved).write_text(text + "\n# Sourdough bread\n\n" + NOTES["Kitchen/Sourdough.md"].split("\n", 2)[2]
                                   + NOTES["Kitchen/Fermentation.md"].split("\n", 2)[2], encoding="utf-8")
        eventually(lambda: stats.topics_updates > updates and hub_holding(vault, moved) == hub_holding(vault, "Kitchen/Sourdough.md"),
                   timeout=60, what="the edited note moves to the kitchen's hub")
        eventually(lambda: meta(vault, moved).get("topic") == f"[[Topics/{hub_holding(vault, moved)[:-3]}]]",
                   timeout=30, what="its topic key follows")
        # The API answers with the topics the hubs show, not a topics build of its own.
        from ideaweave.api import AppBackend

        finest = max(t.level for t in stats.topics)
        holding = {n: t.id for t in AppBackend(app, stats).topics() if t.level == finest for n in t.notes}
        assert holding[moved] == holding["Kitchen/Sourdough.md"]
        assert AppBackend(app, stats).topics() is stats.topics


def test_an_edit_saved_while_the_topics_are_drawn_is_written_without_waiting_for_them(tmp_path, embedder, monkeypatch):
    """The first topics build takes seconds at 10,000 notes: it runs off the loop, so an edit saved meanwhile
    is indexed and written as any other. The real build runs; the test holds it open until the edit is
    written, then the topics are published on the loop."""
    from ideaweave import topics as topics_module

    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder, **{"topics.write": True, "topics.key": True})
    drawing, release = threading.Event(), threading.Event()
    real = topics_module.draw_topics

    def held_open(*args, **kwargs):
        drawing.set()
        release.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(topics_module, "draw_topics", held_open)
    compost = "Garden/Compost.md"
    try:
        with running_daemon(app) as stats:
            assert drawing.wait(30), "the topics are drawn after the start-up pass"
            # A new opening paragraph: the summary (read from the note's start) changes, so the batch writes.
            path = vault / compost
            summary = meta(vault, compost)["summary"]
            path.write_text(path.read_text(encoding="utf-8").replace(
                "# Compost\n", "# Compost\n\nWorms in the compost heap speed everything up; a wormery works too.\n", 1),
                encoding="utf-8")
            saved = time.time()
            written = eventually(lambda: next((o for o in list(stats.history) if compost in o.paths and compost in o.written),
                                              None), what="the edit written while the topics are drawn")
            assert stats.topics_updates == 0 and not release.is_set()  # the drawing is still under way
            print(f"edit written {written.finished - saved:.2f} s after its save, during the topics build")
            assert meta(vault, compost)["summary"] != summary
            release.set()
            eventually(lambda: stats.topics_updates >= 1, what="the topics published once drawn")
            eventually(lambda: str(meta(vault, compost).get("topic", "")).startswith("[[Topics/"),
                       what="the note's topic key")
    finally:
        release.set()


def test_a_note_deleted_while_the_topics_are_drawn_lets_its_snapshot_go_and_is_not_published(tmp_path, embedder,
                                                                                              monkeypatch):
    """The drawing holds what it reads of the snapshot, not the snapshot: a note deleted meanwhile makes a
    new snapshot and the old one is let go at once. The answer, drawn with the deleted note, is published
    against the current snapshot: no hub links to the deleted note, and nothing fails."""
    import gc
    import weakref

    from ideaweave import topics as topics_module

    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder, **{"topics.write": True, "topics.key": True})
    watcher = VaultWatcher(app, threading.Event())
    drawing, release = threading.Event(), threading.Event()
    real = topics_module.draw_topics
    drawn_with = []

    def held_open(store, notes, *args, **kwargs):
        drawn_with.append(notes.paths)
        drawing.set()
        release.wait(120)
        return real(store, notes, *args, **kwargs)

    monkeypatch.setattr(topics_module, "draw_topics", held_open)
    gone = "Garden/Compost.md"
    try:
        with running_daemon(app, watcher=watcher) as stats:
            assert drawing.wait(30), "the topics are drawn after the start-up pass"
            drawn_from = weakref.ref(watcher._corpus)
            (vault / gone).unlink()
            eventually(lambda: watcher._corpus is not None and gone not in watcher._corpus.index,
                       what="the deletion's batch")
            gc.collect()
            assert drawn_from() is None, "the drawing holds the snapshot it was drawn from"
            assert gone in drawn_with[0] and not release.is_set()
            release.set()
            eventually(lambda: stats.topics_updates >= 1, what="the topics published once drawn")
            assert stats.last_error is None
            assert stats.topics and all(gone not in t.notes and t.central != gone for t in stats.topics)
            hubs = [p.read_text(encoding="utf-8") for p in (vault / app.settings.topics.folder).glob("*.md")]
            assert hubs and not any("[[Compost" in text or "Garden/Compost" in text for text in hubs)
    finally:
        release.set()


def test_a_re_embed_at_start_up_shows_its_own_phase_and_progress(tmp_path, embedder, monkeypatch):
    """After a model change every chunk is embedded again at start-up, long after every note was read:
    `status`, the API and the status bar show an "embedding" phase whose notes done move, not an
    indexing pass stuck at its end."""
    from ideaweave import watch as watch_module

    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder)
    app.indexer.run()
    app.store.reset_vectors()  # what a model change does
    watcher = VaultWatcher(app, threading.Event())
    seen, embed = [], embedder.embed

    def embed_and_look(texts):
        seen.append(watcher.stats.start_up_pass)
        return embed(texts)

    monkeypatch.setattr(embedder, "embed", embed_and_look)
    monkeypatch.setattr(watch_module, "PASS_EMBED_GROUP", 4)
    with running_daemon(app, watcher=watcher):
        pass
    during = [p for p in seen if p is not None and p.phase == "embedding"]
    assert len(during) >= 3 and all(p.total == len(NOTES) for p in during)
    assert during[0].done == 0 and during[-1].done > 0 and [p.done for p in during] == sorted(p.done for p in during)
    assert "embedding" in during[-1].describe()


def test_the_hooks_hear_of_every_batch_and_wrap_every_stage_on_the_loop_thread(tmp_path, embedder, monkeypatch):
    """...and once each stage is over, its freed memory goes back to the system (`heap.release`, the real one)."""
    from ideaweave import heap

    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:4]})
    app = make_app(vault, tmp_path, embedder)
    heard, stages, open_stages, released = [], [], [], []
    release = heap.release

    def recorded_release() -> bool:
        released.append(list(open_stages))
        return release()

    monkeypatch.setattr(heap, "release", recorded_release)

    @contextlib.contextmanager
    def around_stage(stage: str):
        stages.append((stage, threading.current_thread().name))
        open_stages.append(stage)
        try:
            yield
        finally:
            open_stages.pop()

    def on_batch(outcome) -> None:
        heard.append((outcome, list(open_stages), threading.current_thread().name))

    watcher = VaultWatcher(app, threading.Event(), hooks=WatchHooks(on_batch=on_batch, around_stage=around_stage))
    with running_daemon(app, watcher=watcher) as stats:
        assert stages == [("start-up", "watch-daemon")] and open_stages == []
        # A new opening paragraph: the summary (read from the note's start) changes, so the batch writes.
        compost = vault / "Garden/Compost.md"
        compost.write_text(compost.read_text(encoding="utf-8").replace(
            "# Compost\n", "# Compost\n\nWorms in the compost heap speed everything up; a wormery works on a balcony too.\n", 1),
            encoding="utf-8")
        eventually(lambda: any("Garden/Compost.md" in outcome.paths for outcome, _, _ in heard),
                   what="the hook hears of the edit's batch")
        settle(stats)
        outcomes = [outcome for outcome, _, _ in heard]
        # Every batch the stats count, in order, and nothing else.
        assert stats.batches == len(outcomes) == len(stats.history) and outcomes == list(stats.history)
    edit = next(outcome for outcome in outcomes if "Garden/Compost.md" in outcome.paths)
    assert edit.indexed == 1 and "Garden/Compost.md" in edit.written
    assert [stage for stage, _ in stages] == ["start-up"] + ["batch"] * len(outcomes)
    # On the loop's own thread, once the batch's stage is over.
    assert {thread for _, thread in stages} == {thread for _, _, thread in heard} == {"watch-daemon"}
    assert all(still_open == [] for _, still_open, _ in heard)
    assert len(released) == len(stages) and all(still_open == [] for still_open in released)


def test_a_rename_obsidian_carries_into_related_lists_is_neither_a_pin_nor_a_rejection(tmp_path, embedder):
    """Obsidian, when it updates internal links on a rename, rewrites [[Old]] to [[New]] inside the
    related lists ideaweave wrote, right after moving the file."""
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app) as stats:
        settle(stats)
        citers = citing(vault, "Reward hacking")
        assert citers, "precondition: some note lists Reward hacking"
        os.rename(vault / "Alignment/Reward hacking.md", vault / "Alignment/Reward tampering.md")
        for note in citers:  # what Obsidian does to the files that link to the renamed note
            path = vault / note
            path.write_text(path.read_text(encoding="utf-8").replace("[[Reward hacking", "[[Reward tampering"),
                            encoding="utf-8")
        eventually(lambda: app.store.note("Alignment/Reward tampering.md") is not None
                   and all(app.store.last_written(n) and "[[Reward tampering]]" in json.dumps(app.store.last_written(n).values)
                           for n in citers), what="the rename is indexed and followed in what ideaweave remembers")
        settle(stats)
        assert citing(vault, "Reward tampering") >= citers and not citing(vault, "Reward hacking")
        assert all(app.store.feedback_for(n) == {} for n in app.store.note_paths()), \
            "the renamed link was taken for the user's pin or rejection"
        for note in citers:
            values = app.store.last_written(note).values
            assert "[[Reward tampering]]" in values["related"] and not values.get("pinned")


def test_renames_moves_and_deletes_update_the_links_in_other_notes(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app) as stats:
        citers = citing(vault, "Reward hacking")
        assert citers, "precondition: some note lists Reward hacking"
        embedded = stats.chunks_embedded

        os.rename(vault / "Alignment/Reward hacking.md", vault / "Alignment/Reward tampering.md")
        eventually(lambda: not citing(vault, "Reward hacking") and citing(vault, "Reward tampering") >= citers,
                   what="links to the renamed note use its new name")
        assert stats.chunks_embedded == embedded, "a rename re-embedded the note"
        assert app.store.note("Alignment/Reward hacking.md") is None

        # Settled first: a note moved in the instant after the daemon wrote it, before it indexed its own
        # write, is not recognised as moved (the indexer pairs moves by the hash it last indexed).
        settle(stats)
        (vault / "Archive").mkdir()
        os.rename(vault / "Alignment/Corrigibility.md", vault / "Archive/Corrigibility.md")
        eventually(lambda: app.store.note("Archive/Corrigibility.md") is not None
                   and app.store.note("Alignment/Corrigibility.md") is None, what="the moved note is indexed")
        assert related_of(vault, "Archive/Corrigibility.md")
        assert app.store.last_written("Archive/Corrigibility.md") is not None, "the move lost what ideaweave wrote"
        assert stats.chunks_embedded == embedded, "a move re-embedded the note"

        shutil.move(str(vault / "Kitchen"), str(vault / "Recipes"))
        eventually(lambda: not [p for p in app.store.note_paths() if p.startswith("Kitchen/")]
                   and len([p for p in app.store.note_paths() if p.startswith("Recipes/")]) == 4,
                   what="a moved folder's notes are re-indexed under the new folder")
        assert stats.chunks_embedded == embedded, ("moving a folder re-embedded its notes", list(stats.history))

        gone = citing(vault, "Goodhart's law")
        assert gone, "precondition: some note lists Goodhart's law"
        (vault / "Alignment/Goodhart's law.md").unlink()
        eventually(lambda: not citing(vault, "Goodhart's law"), what="links to a deleted note disappear")

        shutil.rmtree(vault / "Garden")
        eventually(lambda: not [p for p in app.store.note_paths() if p.startswith("Garden/")]
                   and not any(citing(vault, n) for n in ("Tomatoes", "Compost", "Watering", "Seed saving")),
                   what="a deleted folder's notes leave the index and every related list",
                   detail=lambda: ({p: (r.values.get("related")) for p, r in app.store.all_written().items()}, all_related(vault), [(b.paths, b.written, b.synced) for b in stats.history if b.paths]))
        settle(stats)
        # Every remaining link resolves to a note that exists.
        names = {p.stem.lower() for p in vault.rglob("*.md")}
        for note, links in all_related(vault).items():
            for link in links:
                assert re.match(r"\[\[([^\]|#]*)", link).group(1).split("/")[-1].lower() in names, (note, link)


def test_a_restart_after_a_clean_stop_syncs_only_what_changed_meanwhile(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    with running_daemon(make_app(vault, tmp_path, embedder)) as stats:
        assert stats.start_up_synced == len(NOTES)  # first start: every note
    with running_daemon(make_app(vault, tmp_path, embedder)) as stats:
        assert stats.start_up_synced == 0  # nothing changed while it was stopped
    path = vault / "Garden/Compost.md"
    text = path.read_text()
    path.write_text(text[:text.index("# Compost")] + "# Compost\n\nWorms in a wormery turn kitchen scraps into "
                    "rich compost on a balcony. A wormery needs shade, damp bedding and no citrus peel. The worms "
                    "eat their own weight in scraps every day and leave a dark liquid feed for pot plants.\n")
    with running_daemon(make_app(vault, tmp_path, embedder)) as stats:
        assert 1 <= stats.start_up_synced <= 1 + 10 + 5  # the note, its neighbours, the notes citing it
        assert "orm" in meta(vault, "Garden/Compost.md")["summary"]  # the note edited while stopped was synced
    (tmp_path / "state" / "watch-ledger.json").unlink()  # as after a crash: no record of a clean stop
    with running_daemon(make_app(vault, tmp_path, embedder)) as stats:
        assert stats.start_up_synced == len(NOTES)


def test_the_polling_observer_follows_changes_too(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:6]})
    app = make_app(vault, tmp_path, embedder, **{"watch.observer": "polling", "watch.poll_seconds": 0.3})
    with running_daemon(app) as stats:
        assert stats.observer == "polling"
        (vault / "Garden/Slugs.md").write_text(
            "# Slugs\n\nSlugs eat seedlings and lettuce at night in damp weather; beer traps and copper tape help, "
            "and so do frogs, thrushes and a torchlit hunt after the rain on a warm evening in the vegetable garden.\n")
        eventually(lambda: related_of(vault, "Garden/Slugs.md"), what="the polled change is processed")


def test_a_second_daemon_on_the_same_vault_is_refused(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:3]})
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app):
        second = make_app(vault, tmp_path, embedder)
        with pytest.raises(LockError, match=rf"PID {os.getpid()}"):
            run_watch(second, stop=threading.Event())
    with running_daemon(make_app(vault, tmp_path, embedder)):  # the lock went with the first daemon
        pass


def test_paused_writes_are_held_and_written_on_resume(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:6]})
    app = make_app(vault, tmp_path, embedder)
    with running_daemon(app) as stats:
        settle(stats)
        stats.writes_paused.set()  # what the API's POST /pause does
        (vault / "Garden/Slugs.md").write_text("# Slugs\n\nSlugs eat seedlings and lettuce at night in damp weather; beer traps and "
                          "copper tape help, and so do frogs and thrushes in the vegetable garden after rain.\n")
        eventually(lambda: app.store.note("Garden/Slugs.md") is not None, what="indexed while paused")
        settle(stats)
        assert "related" not in meta(vault, "Garden/Slugs.md") and stats.pending == 0
        stats.writes_paused.clear()
        eventually(lambda: related_of(vault, "Garden/Slugs.md"), what="written once resumed")


class _Bridge:
    """The API backend's side of the daemon: takes writes while the Obsidian bridge is connected."""

    def __init__(self):
        self.connected, self.offered, self.refreshed, self.expired = True, [], 0, []

    def refresh(self, corpus) -> None:
        self.refreshed += 1

    def hand_off(self, write, base: bytes) -> bool:
        if self.connected:
            self.offered.append(write.path)
        return self.connected

    def expired_writes(self) -> list:
        taken, self.expired = self.expired, []
        return taken


def test_writes_go_to_the_bridge_while_connected_and_expired_ones_are_written_here(tmp_path, embedder):
    from types import SimpleNamespace

    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:4]})
    app = make_app(vault, tmp_path, embedder)
    bridge = _Bridge()
    with running_daemon(app, watcher=VaultWatcher(app, threading.Event(), api=bridge)) as stats:
        assert sorted(bridge.offered) == sorted(list(NOTES)[:4]) and bridge.refreshed >= 1
        assert not any(related_of(vault, rel) for rel in list(NOTES)[:4])  # the bridge writes, not the daemon
        bridge.connected = False
        bridge.expired = [SimpleNamespace(path="Garden/Compost.md")]  # not acked in time: taken back
        eventually(lambda: related_of(vault, "Garden/Compost.md"), what="an expired write is written by the daemon")
        assert not related_of(vault, "Garden/Tomatoes.md")


def test_on_battery_the_start_up_pass_waits_for_mains_power(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:3]})
    app = make_app(vault, tmp_path, embedder)
    power = {"battery": True}
    watcher = VaultWatcher(app, threading.Event(), battery=BatteryGate(True, check=lambda: power["battery"],
                                                                        interval=0.05))
    with running_daemon(app, watcher=watcher, wait_ready=False) as stats:
        time.sleep(1.0)
        assert stats.paused_on_battery and not stats.ready and app.store.counts()["notes"] == 0
        power["battery"] = False
        assert stats.ready_event.wait(30)
        assert related_of(vault, "Garden/Tomatoes.md")


def test_an_overflowing_event_queue_turns_into_a_full_rescan(tmp_path, embedder):
    import queue

    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:4]})
    app = make_app(vault, tmp_path, embedder)
    watcher = VaultWatcher(app, threading.Event())
    watcher.events = queue.Queue(maxsize=3)  # memory stays bounded: past the limit, events give way to a rescan
    with running_daemon(app, watcher=watcher) as stats:
        for i in range(12):
            (vault / f"Bulk/Note {i}.md").parent.mkdir(exist_ok=True)
            (vault / f"Bulk/Note {i}.md").write_text(f"# Note {i}\n\n" + list(NOTES.values())[4 + i % 8])
        eventually(lambda: all(related_of(vault, f"Bulk/Note {i}.md") for i in range(12)),
                   what="every note of the burst is written")
        assert stats.full_rescans >= 1


def test_the_daemon_reads_a_whole_snapshot_only_once_the_old_one_is_let_go(tmp_path, embedder, monkeypatch):
    """Two whole ranking snapshots at once are some 250 MB more at 100,000 notes: a rescan (and any full
    reload) lets the old snapshot go before it reads the next."""
    import gc
    import queue
    import weakref

    from ideaweave import corpus as corpus_module

    snapshots, alive_at_load = weakref.WeakSet(), []
    assemble, load = corpus_module.Corpus._assemble, corpus_module.Corpus.__init__

    def tracked_assemble(self, *args, **kwargs):
        assemble(self, *args, **kwargs)
        snapshots.add(self)

    def tracked_load(self, *args, **kwargs):
        gc.collect()
        alive_at_load.append(len(snapshots))
        load(self, *args, **kwargs)

    monkeypatch.setattr(corpus_module.Corpus, "_assemble", tracked_assemble)
    monkeypatch.setattr(corpus_module.Corpus, "__init__", tracked_load)
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:4]})
    app = make_app(vault, tmp_path, embedder)
    watcher = VaultWatcher(app, threading.Event())
    # Unbounded until the edit's batch has run: the start-up pass's own writes must not overflow it first
    # (then the edit would be read by a rescan, not by a batch).
    watcher.events = queue.Queue()
    with running_daemon(app, watcher=watcher) as stats:
        (vault / "Garden/Compost.md").write_text("# Compost\n\nWorms speed the heap up.\n", encoding="utf-8")
        eventually(lambda: stats.batches >= 1, what="an edit's batch (a snapshot carried over)")
        assert stats.full_rescans == 0
        watcher.events.maxsize = 3  # now a burst overflows it: a full rescan, with a whole new snapshot
        (vault / "Bulk").mkdir()
        for i in range(12):
            (vault / f"Bulk/Note {i}.md").write_text(f"# Note {i}\n\n" + list(NOTES.values())[4 + i % 8])
        eventually(lambda: stats.full_rescans >= 1 and all(related_of(vault, f"Bulk/Note {i}.md") for i in range(12)),
                   what="the rescan and every note of the burst written")
    assert len(alive_at_load) >= 2 and alive_at_load == [0] * len(alive_at_load)


# ------------------------------------------------------------------ torture: a second process edits while the daemon writes


def strip_managed(text: str) -> str:
    """The note without the `related` and `summary` keys (and without a frontmatter left empty)."""
    if not text.startswith("---\n"):
        return text
    end = text.find("\n---\n", 3)
    if end < 0:
        return text
    kept, skipping = [], False
    for line in text[4:end + 1].splitlines(keepends=True):
        if re.match(r"(related|summary):", line):
            skipping = True
            continue
        if skipping and line[:1] in (" ", "\t"):
            continue
        skipping = False
        kept.append(line)
    rest = text[end + 5:]
    return "---\n" + "".join(kept) + "---\n" + rest if kept else rest


def _torture(root: str, initial: dict[str, str], stop, seconds: float, seed: int, results) -> None:
    """Append numbered lines to random notes and rename some, like a user typing in several notes, until
    told to stop (or for `seconds` at most)."""
    rng = random.Random(seed)
    words = " ".join(initial.values()).replace("#", " ").split()
    notes = dict(initial)  # current path -> expected text without the managed keys
    lines, renames, started = 0, 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - started < seconds:
        path = rng.choice(sorted(notes))
        if rng.random() < 0.08:
            folder = rng.choice(["Garden", "Alignment", "Kitchen", ""])
            new = f"{folder}/Renamed {renames}.md".lstrip("/")
            os.rename(os.path.join(root, path), os.path.join(root, new))
            notes[new] = notes.pop(path)
            renames += 1
        else:
            # Words from other notes move summaries and related lists: the daemon writes a lot.
            line = f"torture line {lines:05d} " + " ".join(rng.choice(words) for _ in range(12)) + "\n"
            with open(os.path.join(root, path), "a", encoding="utf-8") as handle:
                handle.write(line)
            notes[path] += line
            lines += 1
        time.sleep(rng.uniform(0.0, 0.06))
    results.put((notes, lines, renames))


def test_torture_a_second_process_appends_and_renames_while_the_daemon_writes(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault")
    app = make_app(vault, tmp_path, embedder, **{"watch.quiet_ms": 100, "watch.max_batch_ms": 500})
    with running_daemon(app) as stats:
        initial = {rel: strip_managed((vault / rel).read_text(encoding="utf-8")) for rel in NOTES}
        context = multiprocessing.get_context("spawn")
        results, stop = context.Queue(), context.Event()
        editor = context.Process(target=_torture, args=(str(vault), initial, stop, 120.0, 7, results))
        editor.start()
        # The editor types for at least 12 s, and on until the daemon has written through a dozen batches
        # meanwhile: on a loaded machine the daemon gets through fewer batches a second, and the test is
        # about the daemon writing while the user edits, not about its speed.
        started = time.monotonic()
        while time.monotonic() - started < 110 and not (
                time.monotonic() - started >= 12 and stats.batches > 10 and stats.notes_written > 20):
            time.sleep(0.2)
        stop.set()
        expected, lines, renames = results.get(timeout=60)
        editor.join(10)
        settle(stats, idle=1.5)
    assert editor.exitcode == 0
    print(f"torture: {lines} lines, {renames} renames; daemon: {stats.batches} batches, {stats.notes_indexed} notes "
          f"indexed, {stats.notes_written} written, {stats.own_writes_ignored} own writes ignored")
    assert lines > 100 and renames > 5 and stats.batches > 10 and stats.notes_written > 20, (lines, renames, stats)

    found = {p.relative_to(vault).as_posix() for p in vault.rglob("*") if p.is_file() and ".obsidian" not in p.parts}
    assert found == set(expected), "notes appeared or vanished (a resurrected name or a leftover temp file)"
    text_of = {rel: (vault / rel).read_text(encoding="utf-8") for rel in expected}
    for rel, text in text_of.items():
        pyfrontmatter.loads(text)  # parses
        assert strip_managed(text) == expected[rel], f"{rel}: bytes outside the managed keys changed"
    counts = {}
    for text in text_of.values():
        for number in re.findall(r"^torture line (\d+) ", text, flags=re.M):
            counts[number] = counts.get(number, 0) + 1
    assert len(counts) == lines and set(counts.values()) == {1}


# ------------------------------------------------------------------ crash: kill -9 during indexing and writing

RUNNER = """
import sys
from pathlib import Path
sys.path.insert(0, {daemon!r})
from ideaweave import config
from ideaweave.app import App, scan_rules
from ideaweave.config import Settings
from ideaweave.watch import run_watch

settings = config.replace(Settings(), **{settings!r})
app = App(settings, Path({vault!r}))
code = run_watch(app, on_ready=lambda: print("ready", flush=True))
app.close()
sys.exit(code)
"""


def _long_notes(count: int, seed: int) -> dict[str, str]:
    """Notes of several paragraphs, so that indexing and writing them takes seconds."""
    rng = random.Random(seed)
    words = " ".join(NOTES.values()).replace("#", " ").split()
    notes = {}
    for i in range(count):
        paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randint(60, 120))) + "." for _ in range(4)]
        notes[f"Bulk/Note {i:02d}.md"] = f"# Note {i}\n\n" + "\n\n".join(paragraphs) + "\n"
    return notes


def test_kill_9_at_random_moments_leaves_notes_intact_and_the_index_consistent(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {**NOTES, **_long_notes(8, seed=3)})
    overrides = {"state_dir": str(tmp_path / "state"), "watch.quiet_ms": 100, "watch.max_batch_ms": 500,
                 "writer.defer_seconds": 0.0, "api.enabled": False, "models.verify": False}
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER.format(daemon=str(DAEMON_DIR), settings=overrides, vault=str(vault)))
    expected = {p.relative_to(vault).as_posix(): p.read_text(encoding="utf-8") for p in vault.rglob("*.md")}
    rng = random.Random(11)
    words = " ".join(NOTES.values()).replace("#", " ").split()
    phases, started = [], time.monotonic()
    while time.monotonic() - started < 15 or len(phases) < 4:
        # The user changes a few notes between runs, so that every run has indexing and writing to do.
        for rel in rng.sample(sorted(expected), 3):
            line = f"\nEdited before run {len(phases)}: " + " ".join(rng.choice(words) for _ in range(15)) + ".\n"
            with open(vault / rel, "a", encoding="utf-8") as handle:
                handle.write(line)
            expected[rel] = strip_managed(expected[rel]) + line
        before = {rel: (vault / rel).read_bytes() for rel in expected}
        daemon = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if len(phases) % 2:  # aim at the writes: kill within 30 ms of the first byte written
            deadline = time.monotonic() + 10
            while (time.monotonic() < deadline and not select.select([daemon.stdout], [], [], 0.003)[0]
                   and all((vault / r).read_bytes() == d for r, d in before.items())):
                pass
            time.sleep(rng.uniform(0.0, 0.03))
        else:  # anywhere: a full start-up here takes about 4 s, a restart about 1.5 s
            time.sleep(rng.uniform(0.5, 4.5))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        wrote = any((vault / rel).read_bytes() != data for rel, data in before.items())
        phases.append("after start-up" if daemon.stdout.read() else "while writing" if wrote else "while indexing")
        for rel, text in expected.items():  # intact after every crash
            current = (vault / rel).read_text(encoding="utf-8")
            pyfrontmatter.loads(current)
            assert strip_managed(current) == strip_managed(text), f"{rel} damaged by a crash"
    assert "while writing" in phases and "while indexing" in phases, phases

    daemon = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert daemon.stdout.readline().strip() == "ready", daemon.stderr.read()
    time.sleep(1.0)  # the start-up pass's own writes come back as events and are ignored
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.stderr.read()

    leftovers = [p.name for p in vault.rglob("*") if p.is_file() and p.suffix not in (".md", ".json")]
    assert leftovers == [], "temporary files of crashed writes were left behind"
    for rel, text in expected.items():
        current = (vault / rel).read_text(encoding="utf-8")
        assert strip_managed(current) == strip_managed(text)
        assert meta(vault, rel).get("related"), f"{rel} was never written"

    def contents(state: Path) -> dict[str, tuple[str, ...]]:
        with Store.open(state, embedder.dim, embedder.model_id) as store:
            assert store.counts().get("chunks_without_vectors", 0) == 0
            return {p: tuple(c.hash for c in store.chunks_of(p)) for p in store.note_paths()}

    survivor = contents(tmp_path / "state")
    with Store.open(tmp_path / "clean", embedder.dim, embedder.model_id) as store:
        Indexer(VaultScanner(vault, scan_rules(Settings())), store, embedder, Settings().embedding.max_tokens).run()
    assert survivor == contents(tmp_path / "clean")
    print("kills:", phases)


# ------------------------------------------------------------------ edits first: the user's saves go ahead of a long pass


def _short_notes(count: int, seed: int) -> dict[str, str]:
    """Notes of one paragraph: quick to embed, so that the start-up pass is mostly ranking and writing."""
    rng = random.Random(seed)
    words = " ".join(NOTES.values()).replace("#", " ").split()
    return {f"Bulk/Note {i:03d}.md": f"# Note {i}\n\n" + " ".join(rng.choice(words) for _ in range(40)) + ".\n"
            for i in range(count)}


def _save_during_the_pass(vault, last, stats) -> tuple[dict, float]:
    """Save a new text to note `last`, wait until the daemon has written its summary and related for it;
    returns the pass's phase and progress at that moment, and the seconds since the save."""
    saved = time.monotonic()
    (vault / last).write_text("# Tomato blight\n\nTomato plants lose their leaves to blight in wet summers; "
                              "water the soil, not the leaves, and pick off brown leaves early.\n")
    seen = {}

    def written_with_new_text():
        if "blight" in (meta(vault, last).get("summary") or "") and related_of(vault, last):
            seen.setdefault("phase", stats.pass_phase)
            seen.setdefault("done", stats.pass_done)
            return True
        return False

    eventually(written_with_new_text, timeout=60, what="the saved note is indexed, ranked and written")
    return seen, time.monotonic() - saved



def test_a_note_saved_during_the_start_up_pass_is_written_ahead_of_its_backlog(tmp_path, embedder):
    from ideaweave.watch import SYNC_SLICE, read_pass_progress

    notes = {**NOTES, **_short_notes(300, seed=3)}
    vault = write_vault(tmp_path / "vault", notes)
    app = make_app(vault, tmp_path, embedder)
    app.indexer.run()  # indexed already (as after a crash): the start-up pass ranks and writes every note
    last = max(notes)  # the backlog reaches this note last
    with running_daemon(app, wait_ready=False) as stats:
        eventually(lambda: stats.pass_phase == "writing" and stats.pass_done >= 2 * SYNC_SLICE, timeout=120,
                   what="the start-up pass is writing")
        progress = stats.start_up_pass
        assert progress.total == len(notes) and 0 < progress.done < progress.total and progress.rate > 0
        assert progress.eta_seconds is not None and progress.eta_seconds > 0
        eventually(lambda: read_pass_progress(app.state_dir) is not None, what="status can read the progress")
        published = read_pass_progress(app.state_dir)
        assert published["phase"] == "writing" and published["total"] == len(notes)

        seen, latency = _save_during_the_pass(vault, last, stats)
        # Written while the pass still had most of its backlog to go, not when its turn came.
        assert seen["phase"] == "writing" and seen["done"] < len(notes) - 4 * SYNC_SLICE, (seen, len(notes))
        eventually(lambda: stats.edits_during_pass >= 1, what="the batch is counted as handled during the pass")
        assert any("Garden/Tomatoes.md" in link or "Tomatoes" in link for link in related_of(vault, last))
        assert stats.ready_event.wait(300), "the start-up pass finished"
        assert stats.start_up_pass is None and read_pass_progress(app.state_dir) is None
        assert all(related_of(vault, rel) for rel in notes)
    print(f"saved during the pass, written {latency:.1f} s later, at {seen['done']}/{len(notes)} notes")


def test_a_note_saved_while_the_start_up_pass_indexes_is_written_before_indexing_ends(tmp_path, embedder):
    from ideaweave.watch import PASS_EMBED_GROUP, read_embedding_threads, read_pass_progress

    notes = {**NOTES, **_short_notes(600, seed=5)}
    vault = write_vault(tmp_path / "vault", notes)
    app = make_app(vault, tmp_path, embedder)  # a fresh state: the pass embeds every note first
    last = max(notes)
    with running_daemon(app, wait_ready=False) as stats:
        eventually(lambda: stats.pass_phase == "indexing" and stats.pass_done >= PASS_EMBED_GROUP, timeout=120,
                   what="the start-up pass is indexing")
        eventually(lambda: (read_pass_progress(app.state_dir) or {}).get("phase") == "indexing",
                   what="status can read the indexing progress")
        threads = eventually(lambda: read_embedding_threads(app.state_dir), what="status can read the threads")
        assert threads["threads"] == embedder.threads and threads["mode"] in ("auto", "fixed")

        seen, latency = _save_during_the_pass(vault, last, stats)
        assert seen["phase"] == "indexing" and seen["done"] < len(notes) - 2 * PASS_EMBED_GROUP, (seen, len(notes))
        assert latency < 10, f"written {latency:.1f} s after its save"
        eventually(lambda: stats.edits_during_pass >= 1, what="the batch is counted as handled during the pass")
        assert stats.ready_event.wait(300), "the start-up pass finished"
        # The writing phase ranked it again on the whole index: its neighbours are the garden notes now.
        assert any("Tomatoes" in link for link in related_of(vault, last)), related_of(vault, last)
        assert all(related_of(vault, rel) for rel in notes)
        assert app.store.note(last).content_hash == checksum((vault / last).read_bytes())
    assert read_embedding_threads(app.state_dir) is None, "a stopped daemon's threads are not shown"
    print(f"saved while indexing, written {latency:.1f} s later, at {seen['done']}/{len(notes)} notes")
