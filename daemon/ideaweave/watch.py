"""The daemon: watch the vault and keep every note's `related` and `summary` current.

`events.EventBatcher` decides *which* notes a burst of file events concerns and *when* they are
ready; the pure functions here (`notes_citing`, `nearest_notes`) decide which other notes a change
can move. The threaded shell (`run_watch`, `VaultWatcher`) carries it out: a watchdog observer pushes
events into a bounded queue, one loop pops ready batches, indexes them, and re-syncs the changed notes
plus the few notes whose related lists they can change. The daemon recognises its own writes by
checksum, so writing a note never starts a second round of work.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from . import __version__, heap
from .app import App
from .atomic import replace_file
from .errors import LockError, VaultError
from .events import Batch, EventBatcher, FsEvent, is_relevant, to_fs_event
from .relate import top_indices
from .vault import link_names, split_wikilink
from .writer import checksum

log = logging.getLogger(__name__)

# How many nearest notes (by note vector) are re-ranked when a note's content changes: a changed
# note can only enter the lists of notes it is close to, and hysteresis keeps most lists as they are.
NEIGHBOURS = 10
# Events buffered between the observer thread and the loop; past this, a full rescan replaces them.
QUEUE_LIMIT = 10_000
# Notes synced per slice of the start-up pass, so that a stop request is noticed between slices.
SYNC_SLICE = 16
# Chunks embedded per group while the start-up pass indexes: the user's edits are served between
# groups, so a group must take a second or two, not tens of seconds (16 chunks: about 0.6 s on two idle
# cores, 5 s on a machine loaded ten times over).
PASS_EMBED_GROUP = 16
# The loop wakes at least this often to notice a stop request.
MAX_WAIT = 0.25
BATTERY_CHECK_SECONDS = 30.0
# A batch that failed is tried again after this long; after this many failures in a row, the daemon
# exits with an error and lets the service manager restart it.
RETRY_AFTER_ERROR = 10.0
MAX_FAILURES = 5
HISTORY = 200


# ------------------------------------------------------------------ pure: which notes a change concerns


def notes_citing(written: Mapping[str, object] | Iterable[tuple[str, object]], targets: Iterable[str]) -> set[str]:
    """Notes whose written `related` list links to one of `targets` (matched by link text). `written`:
    note -> its written list, as a mapping or as (note, list) pairs read one at a time.

    Matching text rather than resolving links lets this find links to notes that are gone or renamed.
    """
    names = set().union(*(link_names(t) for t in targets)) if targets else set()
    if not names:
        return set()
    found = set()
    for note, links in (written.items() if isinstance(written, Mapping) else written):
        if not isinstance(links, list):
            continue
        for link in links:
            parts = split_wikilink(link) if isinstance(link, str) else None
            if parts and parts[0].strip().lower() in names:
                found.add(note)
                break
    return found


def nearest_notes(paths: Sequence[str], vectors: np.ndarray, index: Mapping[str, int], of: str, k: int,
                  excluded: np.ndarray | None = None) -> list[str]:
    """The k notes whose note vectors are closest to `of`'s (cosine: the vectors are unit length)."""
    q = index.get(of)
    if q is None or len(paths) < 2:
        return []
    sims = vectors @ vectors[q]
    sims[q] = -np.inf
    if excluded is not None:
        sims[excluded] = -np.inf
    return [paths[j] for j in top_indices(sims, k)]


# ------------------------------------------------------------------ status shared with the API


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did; `started`/`finished` are wall-clock times."""

    started: float
    finished: float
    paths: tuple[str, ...]  # notes the batch indexed (own writes excluded)
    own_writes: int
    indexed: int  # notes whose content was read anew
    embedded: int  # chunks embedded
    synced: int  # notes whose related/summary were recomputed
    written: tuple[str, ...]
    deferred: tuple[str, ...]


@dataclass(frozen=True)
class PassProgress:
    """How far a long pass (the start-up pass, a rescan) has come: what `status`, the API and the
    plugin's status bar show while it runs."""

    phase: str  # "indexing" (reading and embedding notes), "embedding" (chunks left without a vector, after a
    # model change: every note's) or "writing" (ranking, summarising, writing)
    done: int
    total: int
    rate: float  # notes per second in this phase so far
    eta_seconds: float | None  # None until there is a rate to go by

    def as_json(self) -> dict:
        eta = None if self.eta_seconds is None else round(self.eta_seconds)
        return {"phase": self.phase, "done": self.done, "total": self.total, "rate": round(self.rate, 2),
                "eta_seconds": eta}

    def describe(self) -> str:
        left = "" if self.eta_seconds is None else f", about {describe_duration(self.eta_seconds)} left"
        return f"{self.phase} {self.done}/{self.total} notes ({self.rate:.1f} notes/s{left})"


def pass_progress(phase: str, done: int, total: int, elapsed: float) -> PassProgress:
    rate = done / elapsed if done and elapsed > 0 else 0.0
    return PassProgress(phase, done, total, rate, (total - done) / rate if rate else None)


def describe_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class WatchStats:
    """Counters and state of a running daemon; read by tests, the bench and the API."""

    ready: bool = False
    observer: str = ""  # "native" or "polling"
    batches: int = 0
    notes_indexed: int = 0
    chunks_embedded: int = 0
    notes_synced: int = 0
    notes_written: int = 0
    own_writes_ignored: int = 0
    deferred: int = 0
    full_rescans: int = 0
    start_up_synced: int = 0  # notes the start-up pass synced (every note after a crash)
    pending: int = 0
    indexing_done: int = 0
    indexing_total: int = 0
    indexing_active: bool = False
    paused_on_battery: bool = False
    last_error: str | None = None
    writes_paused: threading.Event = field(default_factory=threading.Event)
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    # The long pass under way, if any: its phase, notes done of total, and when the phase began (monotonic).
    pass_phase: str | None = None
    pass_done: int = 0
    pass_total: int = 0
    pass_started: float = 0.0
    edits_during_pass: int = 0  # batches of changes (not only own writes) handled ahead of a long pass's backlog
    topics_updates: int = 0  # times the topics (and their hubs and keys) were brought up to date
    topics: list | None = None  # the topics last drawn (None until the daemon draws them: topics.write or .key)
    hubs_written: int = 0

    def start_phase(self, phase: str, total: int) -> None:
        self.pass_phase, self.pass_done, self.pass_total, self.pass_started = phase, 0, total, time.monotonic()

    def end_pass(self) -> None:
        self.pass_phase = None

    @property
    def start_up_pass(self) -> PassProgress | None:
        """The long pass's progress now; None when none runs."""
        phase = self.pass_phase
        if phase is None:
            return None
        return pass_progress(phase, self.pass_done, self.pass_total, time.monotonic() - self.pass_started)

    def record(self, outcome: BatchOutcome) -> None:
        self.batches += 1
        self.notes_indexed += outcome.indexed
        self.chunks_embedded += outcome.embedded
        self.notes_synced += outcome.synced
        self.notes_written += len(outcome.written)
        self.own_writes_ignored += outcome.own_writes
        self.deferred += len(outcome.deferred)
        self.history.append(outcome)


@dataclass(frozen=True)
class WatchHooks:
    """Where a benchmark or a test looks inside the running loop; the daemon itself sets none.

    Both are called on the loop's own thread, so a profiler enabled in `around_stage` sees the loop's work.
    """

    # After every batch (own writes only, too), once `WatchStats` counts it: what the batch did.
    on_batch: Callable[[BatchOutcome], None] | None = None
    # Each start-up pass ("start-up"), rescan after an overflow ("rescan"), batch ("batch") and publishing of
    # the topics ("topics": their hub notes and keys; the topics are drawn on a thread of their own) runs
    # inside `around_stage(stage)`.
    around_stage: Callable[[str], contextlib.AbstractContextManager] | None = None


# ------------------------------------------------------------------ what the last run left unsynced


def sync_fingerprint(settings) -> str:
    """What a note's related list and summary depend on besides the notes: the version and these settings."""
    writer = settings.writer
    relevant = {"version": __version__, "embedding": settings.models.embedding,
                "writer": [writer.enabled, writer.related_key, writer.summary_key, writer.related_count],
                **{name: dataclasses.asdict(getattr(settings, name)) for name in ("index", "relate", "summary")}}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def sync_ledger(app: App) -> SyncLedger:
    """The ledger of the daemon that watches `app`'s vault, in its state folder."""
    # Secure notes are named by their pseudonyms in the ledger, as in the rest of the state folder.
    return SyncLedger(app.state_dir / "watch-ledger.json", sync_fingerprint(app.settings),
                      hide=lambda path: app.store.pseudonym(path), show=lambda name: app.store.real_path(name))


class SyncLedger:
    """Whether every note was in step when the daemon last stopped cleanly, with the same settings.

    Syncing every note at start-up ranks the whole vault once per note (minutes for a few thousand
    notes), so after a clean stop only the notes changed since, and those they affect, are synced.
    The ledger is removed while the daemon runs: after a crash, or with other settings or another
    version, the start-up pass syncs every note again.
    """

    def __init__(self, path: Path, fingerprint: str, hide=lambda path: path, show=lambda name: name):
        self.path, self.fingerprint = path, fingerprint
        self.hide, self.show = hide, show

    def take(self) -> list[str] | None:
        """The notes left unsynced at the last clean stop (and remove the ledger); None: sync every note."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        finally:
            self.path.unlink(missing_ok=True)
        if not isinstance(record, dict) or record.get("fingerprint") != self.fingerprint:
            return None
        unsynced = record.get("unsynced")
        if not isinstance(unsynced, list):
            return None
        paths = [self.show(p) for p in unsynced if isinstance(p, str)]
        # A secure note this process cannot name (no key) cannot be synced by it: sync everything instead.
        return None if None in paths else paths

    def close(self, unsynced: Iterable[str]) -> None:
        """Record a clean stop: every note is in step but these (a 0600 file, like all state)."""
        record = {"fingerprint": self.fingerprint, "unsynced": sorted(self.hide(p) for p in unsynced)}
        replace_file(self.path, json.dumps(record).encode("utf-8"))


# ------------------------------------------------------------------ a long pass's progress, for `status`

PASS_FILE = "pass-progress.json"


class PassFile:
    """The running daemon's long-pass progress in its state folder, so that `ideaweave status` (another
    process) can show it. Written at most once a second; removed when the pass ends. It names the
    daemon's PID: a file left by a daemon that was killed is not shown."""

    def __init__(self, path: Path, interval: float = 1.0):
        self.path, self.interval = path, interval
        self._written_at = 0.0

    def publish(self, progress: PassProgress | None) -> None:
        now = time.monotonic()
        if progress is None or now - self._written_at < self.interval:
            return
        self._written_at = now
        record = {"pid": os.getpid(), "updated": time.time(), **progress.as_json()}
        try:
            replace_file(self.path, json.dumps(record).encode("utf-8"))
        except OSError as exc:  # progress is a courtesy: never a reason to stop the pass
            log.debug("cannot record the pass's progress: %s", exc)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self._written_at = 0.0


THREADS_FILE = "embedding-threads.json"


class ThreadsFile:
    """The running daemon's embedding thread count (see `threads`) in its state folder, for `ideaweave
    status`: written when it changes, with the daemon's PID like the pass's progress."""

    def __init__(self, path: Path):
        self.path = path
        self._last: dict | None = None

    def publish(self, mode: dict | None) -> None:
        if mode is None or mode == self._last:
            return
        self._last = dict(mode)
        try:
            replace_file(self.path, json.dumps({"pid": os.getpid(), **mode}).encode("utf-8"))
        except OSError as exc:  # a courtesy, like the pass's progress
            log.debug("cannot record the embedding threads: %s", exc)

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        self._last = None


def read_embedding_threads(state_dir: Path) -> dict | None:
    """The thread count a running daemon embeds with now (mode, threads...); None when none runs."""
    record = _read_live_record(state_dir / THREADS_FILE)
    return None if record is None else {k: v for k, v in record.items() if k != "pid"}


def _read_live_record(path: Path) -> dict | None:
    """A record a daemon published in its state folder, if that daemon still runs."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) or not psutil.pid_exists(record["pid"]):
        return None
    return record


def read_pass_progress(state_dir: Path) -> dict | None:
    """The progress a running daemon published for its long pass; None when no pass runs."""
    record = _read_live_record(state_dir / PASS_FILE)
    if record is None:
        return None
    return {k: record.get(k) for k in ("phase", "done", "total", "rate", "eta_seconds", "updated")}


# ------------------------------------------------------------------ process-level guards


@contextlib.contextmanager
def daemon_lock(state_dir: Path, root: Path) -> Iterator[Path]:
    """Hold `daemon.lock` in the state folder for as long as the daemon runs: one daemon per vault.

    flock locks vanish with their process, so a daemon killed with -9 never leaves a stale lock.
    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise LockError(f"another ideaweave daemon (PID {holder}) is already watching {root} "
                        f"(lock {path}); stop it before starting a new one") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (only the main thread may install signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def one_blas_thread() -> contextlib.AbstractContextManager:
    """numpy's BLAS on one thread while the daemon runs (process-wide, like faiss's in `vectors`).

    The daemon's products are small (a note's sections against the vault's), and OpenBLAS's extra
    threads spin-wait for a core on a busy machine: one thread ranks a note several times faster there,
    and the products take milliseconds on an idle one. The embedder's threads are llama.cpp's, chosen in `threads`."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def lower_priority(niceness: int = 10) -> None:
    """Run at `niceness` (never raising priority back: only root could)."""
    try:
        current = os.nice(0)
        if current < niceness:
            os.nice(niceness - current)
    except OSError as exc:
        log.warning("cannot lower the daemon's CPU priority: %s", exc)


def runs_on_battery(reading) -> bool:
    """Does this battery reading (`psutil.sensors_battery()`: None without a battery) say the
    machine runs on its battery? Only an unplugged charger says so: when psutil cannot tell
    (`power_plugged` None), work goes on, as it does on a machine without a battery."""
    return reading is not None and reading.power_plugged is False


def on_battery() -> bool:
    """Is this machine running on its battery (Linux, macOS, Windows, BSD)? False when it cannot tell."""
    try:
        reading = psutil.sensors_battery()
    except (AttributeError, OSError, RuntimeError) as exc:  # no sensor support on this platform, or unreadable
        log.debug("cannot read the battery: %s", exc)
        return False
    return runs_on_battery(reading)


class BatteryGate:
    """Says whether heavy work should wait for mains power; checks the battery at most every 30 s."""

    def __init__(self, enabled: bool, check: Callable[[], bool] = on_battery,
                 clock: Callable[[], float] = time.monotonic, interval: float = BATTERY_CHECK_SECONDS):
        self.enabled, self.check, self.clock, self.interval = enabled, check, clock, interval
        self._checked_at: float | None = None
        self._paused = False

    def paused(self) -> bool:
        if not self.enabled:
            return False
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.interval:
            was = self._paused
            self._paused, self._checked_at = self.check(), now
            if self._paused != was:
                log.warning("on battery: indexing paused until mains power returns" if self._paused
                            else "mains power: indexing resumed")
        return self._paused


_TEMP_NAME = re.compile(r"^\..+\.ideaweave-tmp$")


def remove_stale_temp_files(root: Path) -> int:
    """Delete the temporary files of writes a crash interrupted (ours by name; the lock says no write is running)."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".obsidian", ".trash", ".git")]
        for name in filenames:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    if removed:
        log.warning("removed %d temporary file%s left by an interrupted write", removed, _s(removed))
    return removed


# ------------------------------------------------------------------ the observer


def start_observer(root: Path, handler, mode: str, poll_seconds: float, native_factory=None):
    """(observer, "native" | "polling"): native events where they work, polling otherwise.

    "auto" falls back to polling when the native observer cannot start (inotify's watch limit on a
    large vault, a network drive); "native" turns that failure into an error.
    """
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if mode != "polling":
        observer = (native_factory or Observer)()
        try:
            observer.schedule(handler, str(root), recursive=True)
            observer.start()
            return observer, "native"
        except OSError as exc:
            with contextlib.suppress(Exception):
                observer.stop()
            if mode == "native":
                raise VaultError(f"cannot watch {root} for changes: {exc}; set watch.observer = \"polling\"") from exc
            log.warning("native file watching failed (%s); polling every %.1f s instead", exc, poll_seconds)
    observer = PollingObserver(timeout=poll_seconds)
    observer.schedule(handler, str(root), recursive=True)
    observer.start()
    return observer, "polling"


class _QueueingHandler:
    """Runs on the observer's thread: turns watchdog events into FsEvents on a bounded queue."""

    def __init__(self, root: Path, events: queue.Queue, overflowed: threading.Event,
                 accepts: Callable[[str], bool]):
        self.root, self.events, self.overflowed, self.accepts = str(root), events, overflowed, accepts

    def dispatch(self, event) -> None:  # the method watchdog calls
        fs_event = to_fs_event(event.event_type, event.src_path, event.dest_path, event.is_directory,
                               self.root, time.monotonic())
        if fs_event is None or not is_relevant(fs_event, self.accepts):
            return
        try:
            self.events.put_nowait(fs_event)
        except queue.Full:
            self.overflowed.set()  # the loop rescans the whole vault instead


# ------------------------------------------------------------------ the daemon


class _Stopped(Exception):
    """Raised from the indexer's progress callback to abandon a long pass when asked to stop."""


def _sha256_of(path: Path) -> str | None:
    try:
        return checksum(path.read_bytes())
    except OSError:
        return None


class VaultWatcher:
    """The loop: start-up reconcile, then batches of file events until asked to stop."""

    def __init__(self, app: App, stop: threading.Event, stats: WatchStats | None = None,
                 battery: BatteryGate | None = None, api=None, hooks: WatchHooks | None = None):
        watch = app.settings.watch
        self.app = app
        self.stop = stop
        self.api = api  # the API's backend: told of each fresh index, hands back writes the bridge dropped
        self.stats = stats if stats is not None else WatchStats()
        self.battery = battery or BatteryGate(watch.pause_on_battery)
        self.hooks = hooks or WatchHooks()
        self.events: queue.Queue[FsEvent] = queue.Queue(maxsize=QUEUE_LIMIT)
        self.overflowed = threading.Event()
        self.batcher = EventBatcher(app.scanner.accepts, self._notes_under,
                                    quiet=watch.quiet_ms / 1000, max_batch=watch.max_batch_ms / 1000)
        self._held: set[str] = set()  # notes to sync once writing is resumed
        self._corpus = None  # the ranking snapshot, carried from batch to batch
        self._failures = 0
        self._cut_short = False  # a sync was abandoned to stop: the next start syncs every note
        self.ledger = sync_ledger(app)
        self.pass_file = PassFile(app.state_dir / PASS_FILE)
        # Topics are drawn again once edits have settled (not on every save): when this monotonic time comes.
        topics = app.settings.topics
        self._topics_wanted = topics.write or topics.key
        self._topics_due: float | None = None
        self._topic_graph = None  # topics.TopicState: the graph of the last answer, so an update costs only the edits
        # The topics are drawn on a thread of their own (a first build takes seconds at 10,000 notes, and the
        # loop must follow edits meanwhile); the loop publishes each answer. At most one drawing at a time.
        self._topics_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ideaweave-topics")
        self._topics_drawing: concurrent.futures.Future | None = None
        self.threads_file = ThreadsFile(app.state_dir / THREADS_FILE)

    # ---- entry

    def run(self, on_ready: Callable[[], None] | None = None) -> int:
        handler = _QueueingHandler(self.app.root, self.events, self.overflowed, self.app.scanner.accepts)
        watch = self.app.settings.watch
        # Watching starts before the start-up pass, so that nothing saved during it is missed.
        observer, self.stats.observer = start_observer(self.app.root, handler, watch.observer, watch.poll_seconds)
        try:
            with self._stage("start-up"):
                self._reconcile(self.ledger.take())
            if self.stop.is_set():
                return 0
            self.stats.ready = True
            if on_ready is not None:
                on_ready()
            self._topics_after(0.0)
            while not self.stop.is_set():
                self._step()
            if not self._cut_short:  # own writes still waiting as events need nothing
                self.ledger.close({p for p in self.batcher.paths() if not self._is_own_write(p)} | self._held)
            return 0
        except _Stopped:
            return 0
        finally:
            observer.stop()
            observer.join(timeout=5)
            self._topics_pool.shutdown(wait=True)  # a drawing still running must not outlive the store
            self.threads_file.clear()
            self.app.store.flush()

    # ---- the start-up pass (and the rescan after an overflow)

    def _reconcile(self, unsynced: Sequence[str] | None) -> None:
        """Index the whole vault (stat-based: nothing unchanged is re-read), then sync the notes out of step.

        `unsynced` None syncs every note; otherwise the notes the index changed, those they affect,
        and `unsynced` (left over from the last run).
        """
        from .corpus import Corpus

        self._wait_for_power()
        self.stats.indexing_active = True
        self.stats.start_phase("indexing", 0)
        self._corpus = None  # a rescan reads a whole new snapshot: the old one goes first (one at a time)
        try:
            index = self.app.indexer.run(progress=self._pass_progress, pause=self._serve_edits_while_indexing,
                                         group_chunks=PASS_EMBED_GROUP, phases=self._pass_phase)
            corpus = self._corpus = Corpus(self.app.store)
            self._refresh_api(corpus)
            if unsynced is None:
                paths = self.app.store.note_paths()
            else:
                touched = index.changed + index.deleted + [old for old, _ in index.renamed]
                paths = sorted((self._sync_targets(touched, index, {}, corpus) | set(unsynced)) & set(corpus.paths))
            self.stats.indexing_active = False
            self.stats.start_phase("writing", len(paths))
            written, deferred = self._sync_or_hold(paths, corpus, long_pass=True)
        finally:
            self.stats.indexing_active = False
            self.stats.end_pass()
            self.pass_file.clear()
        self.stats.start_up_synced += len(paths)
        log.info("start-up: %d notes (%d read, %d embedded chunks), synced %d, wrote %d, %d deferred",
                 index.notes, index.read, index.embedded_chunks, len(paths), len(written), len(deferred))

    def _progress(self, done: int, total: int) -> None:
        self.stats.indexing_done, self.stats.indexing_total = done, total
        if self.stop.is_set():
            raise _Stopped

    def _pass_phase(self, phase: str, total: int) -> None:
        """A new phase of the pass's indexing (the re-embed after a model change): its own progress and rate."""
        self.stats.start_phase(phase, total)
        self.pass_file.publish(self.stats.start_up_pass)

    def _pass_progress(self, done: int, total: int) -> None:
        """The long pass's indexing progress (a batch served inside it reports through `_progress`)."""
        self.stats.pass_done, self.stats.pass_total = done, total
        self.pass_file.publish(self.stats.start_up_pass)
        self._publish_threads()
        self._progress(done, total)

    def _serve_edits_while_indexing(self) -> None:
        """Between two embedding groups of the pass's indexing: the user's saves go first, ranked
        against the notes indexed so far (the writing phase ranks every note again on the full index)."""
        self._serve_edits(fresh_snapshot=True)
        self.stats.indexing_active = True  # the served batch's own indexing ended; the pass's has not

    def _serve_edits(self, fresh_snapshot: bool = False) -> None:
        """Between two slices of a long pass: changes whose quiet period is over (the user's saves)
        are indexed, ranked and written now, ahead of the pass's backlog. `fresh_snapshot`: the index
        grew since the last ranking snapshot (the pass is indexing), so a new one is read first."""
        from .corpus import Corpus

        self._drain(0)
        self.stats.pending = len(self.batcher)
        if self.overflowed.is_set() or self.battery.paused():
            return  # the loop rescans or waits once the pass is over
        batch = self.batcher.take(time.monotonic())
        if batch:
            if fresh_snapshot:
                self._corpus = None  # one snapshot at a time: the old one goes before the new one is read
                self._corpus = Corpus(self.app.store)
            handled = self.stats.batches
            self._handle_safely(batch)
            if self.stats.batches > handled and self.stats.history[-1].paths:  # not only the pass's own writes
                self.stats.edits_during_pass += 1

    def _wait_for_power(self) -> None:
        while self.battery.paused() and not self.stop.is_set():
            self.stats.paused_on_battery = True
            self.stop.wait(1.0)
        self.stats.paused_on_battery = False

    # ---- one turn of the loop

    def _step(self) -> None:
        paused = self.stats.paused_on_battery = self.battery.paused()
        # On battery, events keep being gathered (bounded by the number of notes) but not processed.
        self._drain(MAX_WAIT if paused else self._wait_time())
        self.stats.pending = len(self.batcher)
        if self.overflowed.is_set() and not paused:
            self._rescan()
            return
        if paused:
            return
        if self._held and not self.stats.writes_paused.is_set():
            self.batcher.defer(self._held, 0.0)
            self._held.clear()
        if self.api is not None and hasattr(self.api, "expired_writes"):
            # Writes the Obsidian bridge did not apply in time: planned again and written here.
            self.batcher.defer({w.path for w in self.api.expired_writes()}, 0.0)
        batch = self.batcher.take(time.monotonic())
        if batch:
            self._handle_safely(batch)
        elif self._topics_drawing is not None:
            if self._topics_drawing.done():
                self._publish_topics()
        elif self._topics_due is not None and time.monotonic() >= self._topics_due and not len(self.batcher):
            self._update_topics()

    def _wait_time(self) -> float:
        # The topics wait for the queue to empty (`_step`): while edits are queued, only their time counts,
        # or a topics update that is due but held back would make every wait zero.
        # While the topics are being drawn, the loop looks in every MAX_WAIT for the answer.
        topics_due = self._topics_due if not len(self.batcher) and self._topics_drawing is None else None
        due = min((d for d in (self.batcher.next_due(), topics_due) if d is not None), default=None)
        if due is None:
            return MAX_WAIT
        return min(MAX_WAIT, max(0.0, due - time.monotonic()))

    # ---- the topics, their hub notes and the notes' topic keys

    def _topics_after(self, seconds: float) -> None:
        """Draw the topics again `seconds` from now; each new edit before then pushes it later."""
        if self._topics_wanted:
            self._topics_due = time.monotonic() + seconds

    def _update_topics(self) -> None:
        """Start drawing the topics (`vault_topics`, the one answer, kept in the store) off the loop's thread;
        `_publish_topics` writes the hub notes and keys once the answer is there. What the drawing reads of
        the snapshot (`topic_input`: paths, titles, vectors, links) is copied here, on the loop's thread,
        so that the drawing holds no snapshot: a batch meanwhile may change the current one in place or let
        it go for the next. The topic graph is the drawing's own until it ends."""
        from .topics import TopicState, draw_topics, topic_input

        self._topics_due = None
        corpus = self._corpus
        if corpus is None or self.stats.writes_paused.is_set():
            return
        if self._topic_graph is None:
            self._topic_graph = TopicState()
        notes = topic_input(corpus)
        self._topics_drawing = self._topics_pool.submit(draw_topics, corpus.store, notes, self.app.scanner,
                                                        self._topic_graph)

    def _publish_topics(self) -> None:
        """On the loop's thread, as every write into notes is: the hub notes and each note's topic key."""
        from .topics import within

        drawing, self._topics_drawing = self._topics_drawing, None
        try:
            with self._stage("topics"):
                topics = drawing.result()
                if self.stats.writes_paused.is_set() or self._corpus is None:
                    return  # as when paused before drawing: the next edit draws them again
                topics = within(topics, self._corpus.index)  # notes deleted or renamed while they were drawn
                # Topic keys meet the Obsidian bridge as the daemon's other writes do (writer.NoteWriter).
                writes = getattr(self.api, "writes", None)
                published = self.app.publish_topics(self._corpus, topics, hubs=self.app.settings.topics.write,
                                                    handoff=getattr(self.api, "hand_off", None),
                                                    busy=getattr(writes, "awaiting", None))
        except Exception as exc:  # the topics are a picture of the vault: failing to draw it stops nothing
            self._topic_graph = None  # the next update builds the graph again
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error("updating the topics failed (%s); trying again after the next edit", type(exc).__name__)
            log.debug("the failure: %s", exc, exc_info=True)
            return
        self.stats.topics = topics
        self.stats.topics_updates += 1
        self.stats.hubs_written += len(published.hubs.written) if published.hubs else 0
        self._after_writes(published.keys.written, published.keys.deferred)
        if published.keys.deferred:  # the notes being typed in get their key once they rest
            self._topics_after(self.app.settings.writer.defer_seconds)
        described = published.describe()
        if described:
            log.info("%s", described)

    def _drain(self, timeout: float) -> None:
        """Move queued events into the batcher, waiting up to `timeout` for the first one."""
        try:
            event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            self.batcher.add(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _rescan(self) -> None:
        log.warning("too many changes at once to follow one by one: rescanning the vault")
        self.overflowed.clear()
        with contextlib.suppress(queue.Empty):
            while True:
                self.events.get_nowait()
        self.batcher.clear()
        self.stats.full_rescans += 1
        with self._stage("rescan"):
            self._reconcile(unsynced=[])  # the index shows what changed; its cascade covers the rest
        self._topics_after(self.app.settings.topics.delay_seconds)

    @contextlib.contextmanager
    def _stage(self, stage: str):
        """One stage of the daemon's work; once it is over, what it freed goes back to the system."""
        around = self.hooks.around_stage
        try:
            with around(stage) if around is not None else contextlib.nullcontext():
                yield
        finally:
            heap.release()

    def _handle_safely(self, batch: Batch) -> None:
        try:
            with self._stage("batch"):
                outcome = self._handle(batch)
        except _Stopped:
            raise
        except FileNotFoundError as exc:
            # A note vanished between two steps (renamed while being written): its events are on
            # their way; go over the batch again once they have settled.
            log.debug("a note moved while being processed (%s); processing the batch again", exc)
            self.batcher.defer(batch.paths + batch.retried, time.monotonic() + self.batcher.quiet)
        except Exception as exc:  # one bad batch must not end the daemon; a broken index will
            self._failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            # The message can name a note: only its kind is logged above debug level.
            log.error("processing %d changed notes failed (%s); trying again in %.0f s",
                      len(batch.paths) + len(batch.retried), type(exc).__name__, RETRY_AFTER_ERROR)
            log.debug("the failure: %s", exc, exc_info=True)
            if self._failures >= MAX_FAILURES:
                raise
            self.batcher.defer(batch.paths + batch.retried, time.monotonic() + RETRY_AFTER_ERROR)
        else:
            self._failures = 0
            self.stats.record(outcome)
            if outcome.paths:  # the user's changes (not only our own writes) can move notes between topics
                self._topics_after(self.app.settings.topics.delay_seconds)
            self._publish_threads()
            if self.hooks.on_batch is not None:  # outside the guard: a failing hook is not a failing batch
                self.hooks.on_batch(outcome)

    # ---- one batch

    def _handle(self, batch: Batch) -> BatchOutcome:
        started = time.time()
        # Retried notes are indexed again too (a no-op when unchanged): a batch that failed half-way
        # comes back as retries.
        fresh = [p for p in batch.paths if not self._is_own_write(p)] + list(batch.retried)
        own = len(batch.paths) + len(batch.retried) - len(fresh)
        fresh += self._move_partners(fresh)
        if not fresh:
            return BatchOutcome(started, time.time(), (), own, 0, 0, 0, (), ())
        before = {p: self._fingerprint(p) for p in fresh}
        self.stats.indexing_active = True
        try:
            index = self.app.indexer.update(fresh, progress=self._progress)
        finally:
            self.stats.indexing_active = False
        # The next snapshot reads only what this batch changed (a full load takes seconds at 100k notes).
        touched = set(fresh) | set(index.deleted) | {p for pair in index.renamed for p in pair} | set(index.relinked)
        corpus = self._next_snapshot(touched)
        self._refresh_api(corpus)
        targets = self._sync_targets(fresh, index, before, corpus) | set(batch.retried)
        written, deferred = self._sync_or_hold(sorted(targets), corpus, bystanders=targets - set(fresh))
        outcome = BatchOutcome(started, time.time(), tuple(fresh), own, len(index.changed), index.embedded_chunks,
                               len(targets), tuple(written), tuple(deferred))
        self._log(outcome)
        return outcome

    def _next_snapshot(self, touched: set[str]):
        """The snapshot after `touched` changed: carried over from the last one (which _reconcile made),
        or, when a whole new one is due, read after the old one is let go (one snapshot at a time)."""
        from .corpus import Corpus

        if self._corpus is None or self._corpus.reload_due(touched):
            self._corpus = None
            self._corpus = Corpus(self.app.store)
        else:
            self._corpus = self._corpus.updated(touched)
        return self._corpus

    def _is_own_write(self, path: str) -> bool:
        """Does the file hold exactly what ideaweave last wrote into it, and does the index know it?"""
        digest = self._holds_our_write(path)
        note = self.app.store.note(path) if digest else None
        return note is not None and note.content_hash == digest

    def _move_partners(self, paths: Sequence[str]) -> list[str]:
        """The other half of moves this batch saw only half of.

        The two halves of a move do not always arrive together: a note moved into a folder created
        a moment before is seen deleted at once and created only once the new folder's watch is set
        up, and the other way round. Handing the indexer both halves in one update lets it pair them
        by content, so a move keeps the note's vectors and the memory of what ideaweave wrote.
        """
        exists = lambda p: (self.app.root / p).exists()  # noqa: E731 - a short local predicate
        listed_known = self.app.store.note_stats(only=paths)
        if all((p in listed_known) == exists(p) for p in paths):
            return []  # edits only: nothing vanished or appeared, so no move to pair
        known = self.app.store.note_stats()  # the other half of a move may be any note
        listed = set(paths)
        if any(p in known and not exists(p) for p in paths):  # vanished: its new name may be anywhere
            listed |= {f.path for f in self.app.scanner.scan() if f.path not in known}
        new_hashes = {_sha256_of(self.app.root / p) for p in listed if p not in known and exists(p)} - {None}
        if new_hashes:  # appeared: a note with the same bytes may have vanished from elsewhere
            written = self.app.store.written_checksums()
            listed |= {p for p, stat in known.items()
                       if (stat.content_hash in new_hashes or written.get(p) in new_hashes) and not exists(p)}
        return sorted(listed - set(paths))

    def _fingerprint(self, path: str) -> tuple[str, ...]:
        return self.app.store.chunk_hashes(path)

    def _sync_targets(self, fresh: Sequence[str], index, before: Mapping[str, tuple[str, ...]], corpus) -> set[str]:
        """The changed notes, plus the notes whose related candidates the change can move."""
        old_name = {new: old for old, new in index.renamed}
        gone = set(index.deleted) | set(old_name.values())
        # Only a change of embedded text moves a note among its neighbours: a frontmatter edit or a
        # rename does not (a rename changes link texts, which the notes citing it pick up).
        meaning_changed = {p for p in index.changed
                           if self._fingerprint(p) != before.get(old_name.get(p, p), ())}
        targets = {p for p in fresh if p in corpus.index}
        # A renamed note's citers are remembered with its new name already (Indexer._follow_renames):
        # their files may still hold the old one.
        cited = gone | meaning_changed | set(old_name)
        if cited:
            # One written note at a time: at 100,000 notes every remembered value at once is some 200 MB.
            key = self.app.settings.writer.related_key
            targets |= notes_citing(((r.path, r.values.get(key)) for r in self.app.store.each_written()), cited)
        hidden = corpus.template | corpus.private if len(corpus) else None
        for path in meaning_changed:
            q = corpus.index.get(path)
            if q is not None and not corpus.private[q]:  # a private note is never suggested elsewhere
                targets.update(nearest_notes(corpus.paths, corpus.note_vectors, corpus.index, path,
                                             NEIGHBOURS, excluded=hidden))
        return {p for p in targets if p in corpus.index}

    def _sync_or_hold(self, paths: Sequence[str], corpus, bystanders: Iterable[str] = (),
                      long_pass: bool = False) -> tuple[list[str], list[str]]:
        """Relate, summarize and write these notes, a slice at a time: (written, deferred).
        `bystanders`: notes synced only because others changed (see writer.BYSTANDER_HYSTERESIS).
        `long_pass`: the start-up pass or a rescan; the user's changes are handled between its slices
        (each slice then ranks against the snapshot those changes left) and its progress is published."""
        from .sync import VaultSync

        if self.stats.writes_paused.is_set():
            self._held.update(paths)
            return [], []
        # While the Obsidian bridge is connected, it applies the writes inside Obsidian.
        sync = VaultSync.for_app(self.app, handoff=getattr(self.api, "hand_off", None))
        dry_run = not self.app.settings.writer.enabled  # "compute only": summaries cached, nothing written
        written, deferred = [], []
        for start in range(0, len(paths), SYNC_SLICE):
            if self.stop.is_set():
                self._cut_short = True  # the rest waits for the next start-up pass
                break
            report = sync.run(paths=paths[start:start + SYNC_SLICE], dry_run=dry_run,
                              corpus=self._corpus if long_pass else corpus, bystanders=bystanders)
            if not dry_run:
                self._after_writes(report.written, report.deferred, report.rewritten)
                written += report.written
                deferred += report.deferred
            if long_pass:
                self.stats.pass_done = min(len(paths), start + SYNC_SLICE)
                self.pass_file.publish(self.stats.start_up_pass)
                self._serve_edits()
        return written, deferred

    def _publish_threads(self) -> None:
        """The embedder's thread count now, for `status` (a fake embedder in a test has none)."""
        self.threads_file.publish(getattr(self.app.embedder, "thread_mode", None))

    def _refresh_api(self, corpus) -> None:
        if self.api is not None and hasattr(self.api, "refresh"):
            self.api.refresh(corpus)

    def _after_writes(self, written: Sequence[str], deferred: Sequence[str],
                      rewritten: Mapping[str, tuple[bytes, dict]] | None = None) -> None:
        """Index our own writes at once, and come back to the notes whose write had to wait.

        Indexing the bytes just written (no embedding: only the frontmatter changed) keeps the
        index's content hash equal to the file's, which is how a later rename is recognised and how
        the write's own file events are told apart from the user's. `rewritten` (what each write
        replaced and set) lets the index record most of them without reading them again.
        """
        ours = [p for p in written if self._holds_our_write(p)]
        if ours and rewritten:
            recorded = set(self.app.indexer.record_own_writes({p: rewritten[p] for p in ours if p in rewritten}))
            ours = [p for p in ours if p not in recorded]
        if ours:
            self.app.indexer.update(ours)
        defer_seconds = self.app.settings.writer.defer_seconds
        for path in deferred:
            self.batcher.defer([path], time.monotonic() + self._seconds_until_writable(path, defer_seconds))

    def _holds_our_write(self, path: str) -> str | None:
        """The file's checksum when it holds exactly what ideaweave last wrote into it, else None."""
        last = self.app.store.last_written(path)
        digest = _sha256_of(self.app.root / path) if last is not None else None
        return digest if digest is not None and digest == last.checksum else None

    def _seconds_until_writable(self, path: str, defer_seconds: float) -> float:
        try:
            age = time.time() - (self.app.root / path).stat().st_mtime
        except OSError:
            return 0.0
        return max(0.05, defer_seconds - age + 0.05)

    def _notes_under(self, folder: str) -> list[str]:
        """Notes the index knows inside `folder`, and notes now on disk there."""
        prefix = folder.rstrip("/") + "/"
        known = [p for p in self.app.store.note_paths() if p.startswith(prefix)]
        on_disk = []
        for dirpath, dirnames, filenames in os.walk(self.app.root / folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.app.root).as_posix()
            on_disk += [f"{rel}/{name}" for name in filenames if self.app.scanner.accepts(f"{rel}/{name}")]
        return sorted(set(known) | set(on_disk))

    def _log(self, outcome: BatchOutcome) -> None:
        others = len(set(outcome.written) - set(outcome.paths))
        log.info("indexed %d note%s (%d embedded chunk%s), wrote %d note%s (%d others; synced %d%s) in %.2f s",
                 outcome.indexed, _s(outcome.indexed), outcome.embedded, _s(outcome.embedded),
                 len(outcome.written), _s(len(outcome.written)), others, outcome.synced,
                 f"; {len(outcome.deferred)} deferred" if outcome.deferred else "",
                 outcome.finished - outcome.started)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# ------------------------------------------------------------------ entry point


def run_watch(app: App, stop: threading.Event | None = None, on_ready: Callable[[], None] | None = None,
              api_backend_factory: Callable[[App, WatchStats], object] | None = None,
              stats: WatchStats | None = None, hooks: WatchHooks | None = None) -> int:
    """Watch the vault until SIGINT/SIGTERM or `stop` is set; returns the exit code.

    `on_ready()` is called once the start-up pass is done. `api_backend_factory(app, stats)`, when
    given and the API is enabled, starts the local API and returns an object with `close()` (such as
    `api.start_api`); its `backend`, if any, gets `refresh(corpus)` after every index change and is
    asked for `expired_writes()`. `hooks` let a benchmark or a test look inside the loop. The caller
    owns `app` and closes it afterwards; the store is flushed here.
    """
    stop = stop if stop is not None else threading.Event()
    stats = stats if stats is not None else WatchStats()
    with daemon_lock(app.state_dir, app.root), stop_on_signals(stop), one_blas_thread():
        lower_priority()
        remove_stale_temp_files(app.root)
        server = None
        if api_backend_factory is not None and app.settings.api.enabled:
            server = api_backend_factory(app, stats)
        try:
            return VaultWatcher(app, stop, stats, api=getattr(server, "backend", None), hooks=hooks).run(on_ready)
        finally:
            if server is not None and hasattr(server, "close"):
                server.close()
