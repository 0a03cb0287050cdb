"""How many CPU threads llama.cpp embeds with: the count that is fastest now, found by measuring.

The best count depends on what else the machine is doing. On an idle 2-core machine two threads
embed about 1.8x faster than one; while another process keeps a core busy, two threads collapse
below one (llama.cpp's threads wait for each other at every layer, and one of them keeps losing its
core). So the count is not configured once but chosen by `ThreadController` from the embedder's own
throughput, batch by batch:

- it starts from the cores that are idle, less one left for the user when more than two are idle
  (on two idle cores both are used: the count that would leave one to the user is the one that is
  0.55x as fast, and the controller gives a core back within a few batches when the user needs it);
- now and then it runs a short *trial* against a neighbouring count (one more, or one fewer),
  alternating batches between the two so both see the same texts and the same load, and keeps the
  faster; a count must beat the one below it by a real margin, or the extra thread is not worth
  taking from the user;
- when the throughput at the current count falls well below what it was (another process started,
  the CPU throttles), it tries one fewer at once instead of waiting for the next trial.

The controller is pure: it is fed (threads, tokens, seconds) observations and says which count to
use next. `FreeCores` is the thin part that reads the machine's load.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPolicy:
    max_threads: int
    start: int
    # One more thread must add at least this share of one thread's throughput to be kept:
    # two threads on two cores give ~1.8x when idle, so 1.25x keeps them; 1.05x would not.
    gain: float = 0.25
    # Embedding time (seconds) at a steady count before a neighbouring count is tried again;
    # doubled after each trial the current count wins, up to max_backoff times.
    probe_seconds: float = 15.0
    first_probe_seconds: float = 1.0
    # Each trial the current count wins doubles the wait before the next, up to this factor: on an
    # idle machine every trial of one fewer thread costs its batches at the slower count, and after a
    # few wins the collapse check (not the trials) is what notices a competitor.
    max_backoff: int = 32
    pairs: int = 4  # batches at each count in a trial
    # Throughput below this share of the count's reference: something competes; try one fewer now.
    collapse: float = 0.6
    # Batches with fewer tokens than this are dominated by fixed costs and say nothing about threads.
    min_tokens: int = 64


@dataclass
class _Trial:
    candidate: int
    rates: dict[int, list[float]]


class ThreadController:
    """Chooses the thread count for the next batch from the throughput of the batches before it."""

    def __init__(self, policy: ThreadPolicy):
        self.policy = policy
        self.steady = max(1, min(policy.start, policy.max_threads))
        self.threads = self.steady  # the count the next batch runs with
        self._trial: _Trial | None = None
        self._since_probe = 0.0
        self._due = policy.first_probe_seconds
        self._backoff = 1
        # Which neighbour the next scheduled trial tries: one fewer first when starting above one
        # (is the user's core worth more than the last thread?), else one more.
        self._direction = -1 if self.steady > 1 else +1
        self._lost = set()  # directions whose trial the current count won since it was chosen
        self._recent: deque[float] = deque(maxlen=3)
        self._reference: float | None = None
        self.switches = 0
        self.trials = 0

    def observe(self, threads: int, tokens: int, seconds: float, free_cores: float | None = None) -> int:
        """Record one batch (run with `threads`) and return the count for the next one.

        `free_cores`: cores that no other process uses (None when unknown); a trial of one more
        thread waits while there is no free core for it.
        """
        if tokens < self.policy.min_tokens or seconds <= 0 or threads != self.threads:
            return self.threads
        rate = tokens / seconds
        if self._trial is not None:
            self._trial_step(threads, rate)
        else:
            self._steady_step(rate, seconds, free_cores)
        return self.threads

    def _steady_step(self, rate: float, seconds: float, free_cores: float | None) -> None:
        self._recent.append(rate)
        self._since_probe += seconds
        if self._reference is None and len(self._recent) == self._recent.maxlen:
            self._reference = statistics.median(self._recent)
        collapsed = (self._reference is not None and len(self._recent) == self._recent.maxlen
                     and statistics.median(self._recent) < self.policy.collapse * self._reference)
        if collapsed and self.steady > 1:
            self._start_trial(self.steady - 1)
            return
        if collapsed:
            self._reference = statistics.median(self._recent)  # one thread, slower: the new normal
        if self._since_probe < self._due:
            return
        candidate = self.steady + self._direction
        if not 1 <= candidate <= self.policy.max_threads:
            self._direction = -self._direction
            candidate = self.steady + self._direction
        if not 1 <= candidate <= self.policy.max_threads:
            self._since_probe = 0.0  # only one count is allowed: nothing to try
            return
        if candidate > self.steady and free_cores is not None and free_cores < candidate - 0.5:
            # Every core is busy: one more thread would only wait for a core. Look again later.
            self._direction = -1 if self.steady > 1 else +1
            self._since_probe = 0.0
            return
        self._start_trial(candidate)

    def _start_trial(self, candidate: int) -> None:
        self._trial = _Trial(candidate, {self.steady: [], candidate: []})
        self.threads = candidate
        self.trials += 1

    def _trial_step(self, threads: int, rate: float) -> None:
        trial = self._trial
        trial.rates[threads].append(rate)
        if (threads == trial.candidate > self.steady and self._reference is not None
                and rate < self.policy.collapse * self._reference):
            # One more thread collapsed at once (no core was really free): each further batch at this
            # count would cost several batches' time. The current count wins without more pairs.
            trial.rates[self.steady] = trial.rates[self.steady] or [self._reference]
            trial.rates[threads] = [rate]
            self._decide(trial)
            return
        if self._decisive(trial):
            self._decide(trial)
            return
        other = self.steady if threads == trial.candidate else trial.candidate
        if len(trial.rates[other]) < self.policy.pairs:
            self.threads = other  # alternate, so both counts see the same texts and the same load
            return
        self._decide(trial)

    def _ratios(self, trial: _Trial) -> tuple[int, int, list[float]]:
        lower, higher = sorted((self.steady, trial.candidate))
        # Adjacent batches form pairs: texts are packed longest first, so neighbours are alike.
        return lower, higher, [h / lo for h, lo in zip(trial.rates[higher], trial.rates[lower])]

    def _decisive(self, trial: _Trial) -> bool:
        """Whether the first pair already settles the trial: the higher count twice the margin ahead
        (two idle cores: ~1.8x against the 1.25x needed), so more pairs at the slower count would
        only cost time. A close or contrary first pair runs the full trial, so noise decides nothing."""
        lower, _higher, ratios = self._ratios(trial)
        return len(ratios) == 1 and ratios[0] >= 1 + 2 * self.policy.gain / lower

    def _decide(self, trial: _Trial) -> None:
        lower, higher, ratios = self._ratios(trial)
        higher_wins = statistics.median(ratios) >= 1 + self.policy.gain / lower
        winner = higher if higher_wins else lower
        self._trial = None
        self._recent.clear()
        self._reference = statistics.median(trial.rates[winner])
        self._since_probe = 0.0
        direction = trial.candidate - self.steady
        if winner == trial.candidate:
            self.switches += 1
            self.steady = winner
            self._lost = {-direction}  # the count just left lost to this one
            self._backoff = 1
            self._direction = direction  # it paid: try one further that way soon
            onward = 1 <= self.steady + direction <= self.policy.max_threads
            self._due = self.policy.first_probe_seconds if onward else self.policy.probe_seconds
            if not onward:
                self._direction = -direction
        else:
            self._lost.add(direction)
            self._direction = -direction
            other_untried = -direction not in self._lost and 1 <= self.steady - direction <= self.policy.max_threads
            if other_untried:
                self._due = self.policy.first_probe_seconds
            else:
                # Both neighbours lost to this count: it is the right one for now; look less often.
                self._due = self.policy.probe_seconds * self._backoff
                self._backoff = min(self._backoff * 2, self.policy.max_backoff)
        self.threads = self.steady


def cpu_cores() -> int:
    """Cores llama.cpp may use: physical cores (a second hyperthread adds little to matrix work),
    within the CPUs this process may run on."""
    import psutil

    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = physical
    return max(1, min(physical, allowed))


class FreeCores:
    """Cores that no other process is using, read from the machine's CPU times at most once a second."""

    def __init__(self, cores: int, refresh_seconds: float = 1.0):
        import psutil

        self.cores = cores
        self.refresh_seconds = refresh_seconds
        self._own = psutil.Process()
        self._psutil = psutil
        self._own.cpu_percent(None)
        psutil.cpu_percent(None)
        self._at = time.monotonic()
        self._value: float | None = None

    def now(self) -> float | None:
        """Free cores as of the last reading (None before the first one is due)."""
        if time.monotonic() - self._at >= self.refresh_seconds:
            total = self._psutil.cpu_percent(None) * (os.cpu_count() or self.cores) / 100
            own = self._own.cpu_percent(None) / 100
            self._value = max(0.0, self.cores - max(0.0, total - own))
            self._at = time.monotonic()
        return self._value


def threads_for_idle(cores: int, busy: float, max_threads: int, measured: bool = True) -> int:
    """A starting count, given how many cores other work keeps busy: the idle cores, at least one, at
    most max_threads. A `measured` model (the embedder) leaves one to the user only when more than two
    are idle: its controller gives a thread back within a few batches when the user needs it. A model
    that does not measure itself (the text model) cannot, so it always leaves one."""
    idle = int(cores - busy + 0.5)  # a core busy a third of the time is mostly idle
    spare = 1 if idle > 2 or not measured else 0
    return max(1, min(max_threads, idle - spare))


def busy_cores() -> float:
    """Cores other work keeps busy, from the one-minute load average (0 where there is none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def thread_limit(max_threads: int, cores: int | None = None) -> int:
    """The most threads `auto` may use: the cores, or `embedding.max_threads` when it sets fewer."""
    cores = cpu_cores() if cores is None else cores
    return min(cores, max_threads) if max_threads > 0 else cores


def start_threads(cores: int, max_threads: int) -> int:
    """Where the embedder's controller starts on this machine now."""
    return threads_for_idle(cores, busy_cores(), max_threads)


def initial_threads(threads: int | str, max_threads: int = 0) -> int:
    """A thread count for a model that does not measure its own throughput (the text model): the
    configured number, or for "auto" the idle cores less one."""
    if threads != "auto":
        return int(threads)
    cores = cpu_cores()
    return threads_for_idle(cores, busy_cores(), thread_limit(max_threads, cores), measured=False)


def configured_threads(threads: int | str, max_threads: int = 0) -> dict:
    """The thread mode as configured, for `status` when no embedder runs to say its current count."""
    if threads == "auto":
        return {"mode": "auto", "threads": None, "max_threads": thread_limit(max_threads)}
    return {"mode": "fixed", "threads": int(threads)}


def describe_threads(mode: dict) -> str:
    """`2 now (auto, at most 2)`, `1 (fixed)`, or `auto (chosen while the daemon embeds; none runs)`."""
    if mode["mode"] == "fixed":
        return f"{mode['threads']} (fixed by embedding.threads)"
    if mode.get("threads") is None:
        return f"auto, at most {mode['max_threads']} (chosen while the daemon embeds; none runs)"
    return f"{mode['threads']} now (auto, at most {mode['max_threads']}; {mode.get('trials', 0)} trials so far)"
