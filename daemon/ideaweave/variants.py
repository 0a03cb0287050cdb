"""Which build of the embedding model runs fastest on this CPU: f16 or q8_0.

The default model is built twice (`models build`): f16, the reference (cosine 0.99999 to
sentence-transformers), and q8_0. Which is faster depends on the CPU's kernels: on an AMD EPYC with
AVX-512 VNNI q8_0 is 10-24% faster, elsewhere f16 can win. So on first start both are timed for a few
seconds on the vault's own text, and the fastest whose vectors agree with f16's to cosine >= 0.99 is
used. The choice is cached per machine (CPU model and flags) and model files, so later starts do not
measure again. An index already built with one variant keeps it: changing the variant means embedding
every note again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

VARIANTS = ("f16", "q8_0")
REFERENCE = "f16"
MIN_COSINE = 0.99  # the fidelity the model tests hold every build to
MEASURE_SECONDS = 1.5  # per variant and round; two rounds, taking turns
SAMPLE_TEXTS = 96
_VARIANT_NAME = re.compile(r"^(?P<stem>.+)\.(?P<variant>f16|q8_0)\.gguf$")


@dataclass(frozen=True)
class Trial:
    variant: str
    tokens_per_s: float
    cosine: float  # the lowest cosine between its vector and the reference's, over the sample


@dataclass(frozen=True)
class Choice:
    variant: str | None  # None: the configured model has no other builds
    reason: str
    trials: tuple[Trial, ...] = field(default=())

    def as_json(self) -> dict:
        return {"variant": self.variant, "reason": self.reason, "trials": [asdict(t) for t in self.trials]}

    def describe(self) -> str:
        if self.variant is None:
            return self.reason
        return f"{self.variant} ({self.reason})"


def variant_of(path: Path) -> str | None:
    match = _VARIANT_NAME.match(Path(path).name)
    return match.group("variant") if match else None


def sibling(path: Path, variant: str) -> Path:
    """The same model built as `variant` (all-MiniLM-L6-v2.f16.gguf -> all-MiniLM-L6-v2.q8_0.gguf)."""
    match = _VARIANT_NAME.match(Path(path).name)
    if match is None:
        return Path(path)
    return Path(path).with_name(f"{match.group('stem')}.{variant}.gguf")


def machine_key(cpuinfo: str, machine: str = platform.machine()) -> str:
    """The CPU model and a hash of its feature flags: what decides which kernels llama.cpp can use."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or "unknown CPU"
    flags = fields.get("flags") or fields.get("Features") or ""
    return f"{machine} {model} flags:{hashlib.sha256(' '.join(sorted(flags.split())).encode()).hexdigest()[:12]}"


def cpu_name(cpuinfo: str) -> str:
    return machine_key(cpuinfo).split(" flags:")[0]


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: the processor string is what there is
        return f"model name : {platform.processor() or platform.machine()}"


def choose(trials: Sequence[Trial]) -> Choice:
    """The fastest variant whose vectors agree with the reference's; the reference when none measured."""
    faithful = [t for t in trials if t.variant == REFERENCE or t.cosine >= MIN_COSINE]
    if not faithful:
        return Choice(REFERENCE, "not measured", tuple(trials))
    best = max(faithful, key=lambda t: t.tokens_per_s)
    reference = next((t for t in trials if t.variant == REFERENCE), None)
    if reference is None or best.variant == REFERENCE:
        return Choice(best.variant, "fastest on this CPU", tuple(trials))
    return Choice(best.variant, f"fastest on this CPU: {best.tokens_per_s / reference.tokens_per_s:.2f}x {REFERENCE}, "
                                f"cosine {best.cosine:.4f} to it", tuple(trials))


def measure(paths: dict[str, Path], texts: Sequence[str], load: Callable[[Path], object],
            seconds: float = MEASURE_SECONDS) -> list[Trial]:
    """Tokens per second of each variant on `texts`, taking turns (two rounds, so a burst of load from
    another process does not fall on one variant only), and each one's agreement with the reference."""
    embedders = {v: load(p) for v, p in paths.items()}
    try:
        tokens = {v: sum(e.count_tokens(t) for t in texts) for v, e in embedders.items()}
        vectors = {v: e.embed(texts) for v, e in embedders.items()}  # also the warm-up
        done = {v: [0, 0.0] for v in embedders}
        for _ in range(2):
            for variant, embedder in embedders.items():
                started = time.perf_counter()
                while time.perf_counter() - started < seconds:
                    embedder.embed(texts)
                    done[variant][0] += tokens[variant]
                done[variant][1] += time.perf_counter() - started
    finally:
        for embedder in embedders.values():
            embedder.close()
    reference = vectors.get(REFERENCE)
    return [Trial(v, round(n / s, 1), 1.0 if reference is None or v == REFERENCE else
                  round(float(np.sum(vectors[v] * reference, axis=1).min()), 5))
            for v, (n, s) in done.items()]


def cache_key(machine: str, configured: Path) -> str:
    """The machine and the model files (name and size of each variant): a rebuilt model is measured again."""
    files = [sibling(configured, v) for v in VARIANTS]
    sizes = ",".join(f"{f.name}:{f.stat().st_size if f.is_file() else 0}" for f in files)
    return f"{machine} | {sizes}"


def read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(cache_file: Path, key: str) -> Choice | None:
    entry = read_cache(cache_file).get(key)
    if not isinstance(entry, dict) or entry.get("variant") not in VARIANTS:
        return None
    trials = tuple(Trial(**t) for t in entry.get("trials", []) if isinstance(t, dict))
    return Choice(entry["variant"], entry.get("reason", "measured earlier"), trials)


def save_choice(cache_file: Path, key: str, choice: Choice) -> None:
    data = read_cache(cache_file)
    data[key] = {**choice.as_json(), "measured_at": time.time()}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        temporary.replace(cache_file)
    except OSError as error:  # measured again next time: slower, not wrong
        log.warning("could not cache the model variant choice in %s: %s", cache_file, error)


def variant_cache_file(env: dict[str, str]) -> Path:
    """Where the choice is cached: the user's cache folder (it is about the machine, not one vault)."""
    import os
    import sys

    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "ideaweave" / "model-variants.json"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "ideaweave" / "model-variants.json"


def vault_sample(scanner, count: int = SAMPLE_TEXTS, notes: int = 48) -> list[str]:
    """Paragraphs of notes spread over the vault (every k-th note by path): what the model will embed."""
    from .vault import Note

    listed = scanner.scan()
    step = max(1, len(listed) // notes)
    texts: list[str] = []
    for entry in listed[::step]:
        note = scanner.read(entry.path)
        if not isinstance(note, Note):
            continue
        for paragraph in re.split(r"\n\s*\n", note.text[note.body_start:]):
            if len(paragraph.split()) >= 12:
                texts.append(paragraph.strip()[:1200])
        if len(texts) >= count:
            break
    return texts[:count]


def known_choice(configured: Path, setting: str, stored_model: str | None, cache_file: Path, machine: str
                 ) -> tuple[Path, Choice] | None:
    """The model file and why, when it is known without timing anything (None: it has to be measured)."""
    if variant_of(configured) is None:
        return configured, Choice(None, "the configured model has no other builds")
    if setting != "auto":
        return sibling(configured, setting), Choice(setting, "set by embedding.variant")
    available = {v: sibling(configured, v) for v in VARIANTS if sibling(configured, v).is_file()}
    built_with = variant_of(Path(stored_model.split(":", 1)[0])) if stored_model else None
    if built_with in available:
        return available[built_with], Choice(built_with, "the index was built with it")
    if len(available) < 2:
        return configured, Choice(variant_of(configured), "the only build present")
    choice = cached_choice(cache_file, cache_key(machine, configured))
    if choice is None or choice.variant not in available:
        return None
    return available[choice.variant], choice


def pick_variant(configured: Path, setting: str, stored_model: str | None, cache_file: Path, machine: str,
                 sample: Callable[[], list[str]], load: Callable[[Path], object]) -> tuple[Path, Choice]:
    """The model file to embed with, and why; times the builds when that is not known yet.

    `stored_model` is the model id the vault's index was built with (None: no index yet); `sample()`
    gives texts of the vault to time the builds on; `load(path)` makes an embedder."""
    known = known_choice(configured, setting, stored_model, cache_file, machine)
    if known is not None:
        return known
    texts = sample()
    if not texts:  # an empty vault: nothing of its own to time; measured at a later start
        return configured, Choice(variant_of(configured), "not measured yet (no text in the vault)")
    available = {v: sibling(configured, v) for v in VARIANTS}
    choice = choose(measure(available, texts, load))
    save_choice(cache_file, cache_key(machine, configured), choice)
    log.info("embedding model variant: %s", choice.describe())
    return available[choice.variant], choice
