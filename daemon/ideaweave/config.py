"""Settings, declared once: every field has a default and a help line.

Loaded from TOML (``config.example.toml`` documents every key, and is generated from
these declarations by ``ideaweave config --example``), then overridden by
``IDEAWEAVE_<SECTION>_<KEY>`` environment variables (``IDEAWEAVE_API_PORT=9000``,
``IDEAWEAVE_EMBEDDING_THREADS=2``; top-level keys drop the section: ``IDEAWEAVE_VAULT``).
Only the entry points (``cli``, the daemon's start-up) call :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .failures import FaultPlan
from .relate import COMPONENTS, DEFAULT_WEIGHTS


def setting(default, help: str):  # noqa: A002 - "help" reads best at the declarations
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelSettings:
    dir: str = setting("", "Folder holding the model files; empty: the models/build folder of this checkout, else $XDG_DATA_HOME/ideaweave/models.")
    embedding: str = setting("all-MiniLM-L6-v2.f16.gguf", "Embedding model: a GGUF file name inside models.dir, or a path to any llama.cpp embedding GGUF.")
    text: str = setting("SmolLM2-135M-Instruct.Q4_1.gguf", "Text-generation model for summary.mode = \"llm\": a GGUF file name inside models.dir, or a path.")
    verify: bool = setting(True, "Check the sha256 of the default models against models/manifest.toml when they load.")


@dataclass(frozen=True)
class EmbeddingSettings:
    threads: int | str = setting("auto", "CPU threads llama.cpp uses for embedding: \"auto\" measures throughput batch by batch and keeps the count that is fastest now (starting from the idle cores, less one for the user when more than two are idle, backing off when another process competes); a number fixes the count.")
    max_threads: int = setting(0, "With threads = \"auto\": the most threads it may use; 0: every physical core.")
    batch_tokens: int = setting(512, "Tokens packed into one llama.cpp batch (n_batch = n_ubatch). Larger batches waste attention work across packed texts.")
    max_tokens: int = setting(256, "Token budget of one chunk; must not exceed batch_tokens or the model's context.")
    flash_attn: bool = setting(True, "Use flash attention in llama.cpp.")
    variant: str = setting("auto", "Which build of the default embedding model to run: \"auto\" times f16 and q8_0 on the vault's text at first start and keeps the fastest whose vectors agree with f16's (cached per machine); \"f16\" or \"q8_0\" forces one. An existing index keeps the build it was made with.")


@dataclass(frozen=True)
class IndexSettings:
    include: list[str] = setting([], "Glob patterns (relative to the vault) of notes to index; empty: every .md note.")
    exclude: list[str] = setting([], "Glob patterns of notes never read (in addition to .obsidian/, .trash/, dot-folders and Obsidian's own excluded files).")
    template_folder: str = setting("", "Folder of note templates, never embedded; empty: the folder set in .obsidian/templates.json, if any.")
    private_folders: list[str] = setting([], "Glob patterns of private notes: indexed for themselves, but never named or quoted in other notes.")
    max_note_bytes: int = setting(2_000_000, "Notes larger than this are skipped and reported.")
    encrypt: str = setting("private", "What the state folder keeps sealed: \"private\" (private notes: no text, sealed vectors and names) or \"all\" (every note; keyword search then finds nothing).")
    key_store: str = setting("auto", "Where the key of sealed notes is kept: \"keyring\" (the system keyring), \"passphrase\" (`ideaweave unlock`), or \"auto\" (the keyring when one is usable).")


@dataclass(frozen=True)
class RelateSettings:
    k: int = setting(10, "Number of related notes computed per note (CLI, API).")
    weights: str = setting("fixed", "\"fixed\": the weights below as they are (the measured defaults); \"auto\": weights fitted on the vault's own links (held out and predicted), kept only when they beat these on notes they were not fitted on.")
    emb_weight: float = setting(DEFAULT_WEIGHTS["emb"], "Weight of whole-note semantic similarity.")
    chunk_weight: float = setting(DEFAULT_WEIGHTS["chunk"], "Weight of the best section-to-section semantic match.")
    bm25_weight: float = setting(DEFAULT_WEIGHTS["bm25"], "Weight of keyword (BM25) evidence.")
    title_weight: float = setting(DEFAULT_WEIGHTS["title"], "Weight of the note's title or alias being mentioned.")
    aa_weight: float = setting(DEFAULT_WEIGHTS["aa"], "Weight of shared links (Adamic-Adar over the link graph).")
    back_weight: float = setting(DEFAULT_WEIGHTS["back"], "Weight of the candidate already linking to the note.")
    nbr_weight: float = setting(DEFAULT_WEIGHTS["nbr"], "Weight of links made by the note's closest notes.")

    def weights_dict(self) -> dict[str, float]:
        """The weights by ranking component: field `<component>_weight` for each one."""
        return {name: getattr(self, f"{name}_weight") for name in COMPONENTS}


@dataclass(frozen=True)
class SummarySettings:
    mode: str = setting("extractive", "\"extractive\" (the note's own sentences as its structure ranks them; no model), \"centroid\" (the sentences nearest the note's centre of meaning; embeds every sentence) or \"llm\" (the text model, falling back to extractive).")
    sentences: int = setting(2, "Sentences in an extractive summary.")
    min_words: int = setting(10, "Notes with fewer words than this get no summary.")
    max_chars: int = setting(300, "Longest summary written.")


@dataclass(frozen=True)
class WriterSettings:
    enabled: bool = setting(True, "Write related/summary into the notes' frontmatter (false: compute only).")
    related_key: str = setting("related", "Frontmatter key holding the related links.")
    summary_key: str = setting("summary", "Frontmatter key holding the summary.")
    related_count: int = setting(5, "How many related links are written into a note.")
    defer_seconds: float = setting(5.0, "A note modified less than this many seconds ago is not written yet (the user is typing).")


@dataclass(frozen=True)
class WatchSettings:
    quiet_ms: int = setting(1500, "A changed note is processed once it has not changed for this long.")
    max_batch_ms: int = setting(10000, "Longest time changes are gathered before they are processed anyway.")
    observer: str = setting("auto", "\"auto\", \"native\" (inotify and friends) or \"polling\" (network drives).")
    poll_seconds: float = setting(5.0, "Interval of the polling observer.")
    pause_on_battery: bool = setting(True, "Pause indexing and embedding while the machine runs on a discharging battery (where the power supply can be read).")


@dataclass(frozen=True)
class TopicsSettings:
    write: bool = setting(False, "Write one hub note per topic into topics.folder (its name, description, notes and neighbouring topics), so that Obsidian's graph view shows the topics; a hub you edit becomes yours and is left alone.")
    folder: str = setting("Topics", "The folder, inside the vault, that ideaweave's hub notes live in; nothing else is written there.")
    key: bool = setting(False, "Write `topic: \"[[<folder>/<hub>]]\"` into each note's frontmatter, linking it to its topic's hub (with topics.write); turning it off removes the key ideaweave wrote.")
    key_name: str = setting("topic", "Frontmatter key holding a note's topic hub.")
    delay_seconds: float = setting(30.0, "The daemon recomputes topics (and hubs) once no note has changed for this long after an edit.")


@dataclass(frozen=True)
class ApiSettings:
    enabled: bool = setting(True, "Serve the local HTTP API while watching.")
    host: str = setting("127.0.0.1", "Address the API binds to; only loopback addresses are accepted.")
    port: int = setting(8765, "Port of the local API.")


@dataclass(frozen=True)
class DebugSettings:
    fail: list[str] = setting([], "For testing that a failure costs one note only: \"STAGE:PATH\" entries make that stage (parse, chunk, embed, store, relate, summarize, plan, write) fail for that note.")


@dataclass(frozen=True)
class Settings:
    vault: str = setting("", "The vault folder; empty: --vault, else the enclosing folder that has .obsidian/.")
    state_dir: str = setting("", "Where the index lives; empty: $XDG_STATE_HOME/ideaweave/<vault-id>/ (never inside the vault).")
    private_mode: bool = setting(False, "Refuse every setting that could reach the network.")
    log_level: str = setting("warning", "Logging level: debug, info, warning or error.")
    models: ModelSettings = field(default_factory=ModelSettings, metadata={"help": "Model files."})
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings, metadata={"help": "The llama.cpp embedder."})
    index: IndexSettings = field(default_factory=IndexSettings, metadata={"help": "Which notes are read and how."})
    relate: RelateSettings = field(default_factory=RelateSettings, metadata={"help": "Ranking related notes."})
    summary: SummarySettings = field(default_factory=SummarySettings, metadata={"help": "Summaries."})
    writer: WriterSettings = field(default_factory=WriterSettings, metadata={"help": "Writing into notes."})
    watch: WatchSettings = field(default_factory=WatchSettings, metadata={"help": "The watch daemon."})
    topics: TopicsSettings = field(default_factory=TopicsSettings, metadata={"help": "Topics and their hub notes in the vault."})
    api: ApiSettings = field(default_factory=ApiSettings, metadata={"help": "The local HTTP API."})
    debug: DebugSettings = field(default_factory=DebugSettings, metadata={"help": "Aids for testing ideaweave itself."})


def _coerce(value, tp, where: str):
    """Check a TOML value against a field type (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType:  # `int | str`: a number, or a word such as "auto"
        if isinstance(value, bool) or not isinstance(value, typing.get_args(tp)):
            raise ConfigError(f"{where}: expected a whole number or a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return list(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _from_env(text: str, tp, where: str):
    """Parse an environment variable's text as the field's type."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType:
        return int(text) if text.strip().isdigit() else text.strip()
    try:
        if origin is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{where}: cannot read {text!r} as {getattr(tp, '__name__', tp)}") from None
    return text


def _build(cls, table: dict, env: dict[str, str], prefix: str, where: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(names))})")
    values = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        env_name = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(tp):
            sub = table.get(f.name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{where}: [{f.name}] must be a table")
            values[f.name] = _build(tp, sub, env, f"IDEAWEAVE_{f.name.upper()}_", f"{where} [{f.name}]")
            continue
        if env_name in env:
            values[f.name] = _from_env(env[env_name], tp, env_name)
        elif f.name in table:
            values[f.name] = _coerce(table[f.name], tp, f"{where}: {f.name}")
    return cls(**values)


def default_config_path(env: dict[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ideaweave" / "config.toml"


def load_settings(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read settings from a TOML file (if any) and IDEAWEAVE_* variables, then validate them.

    ``path`` None means $IDEAWEAVE_CONFIG, else ~/.config/ideaweave/config.toml when it exists.
    """
    env = dict(os.environ if env is None else env)
    explicit = path is not None or "IDEAWEAVE_CONFIG" in env
    config_path = Path(path if path is not None else env.get("IDEAWEAVE_CONFIG") or default_config_path(env))
    table: dict = {}
    if config_path.is_file():
        try:
            table = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config_path}: cannot read the configuration: {exc}") from None
    elif explicit:
        raise ConfigError(f"{config_path}: configuration file not found")
    settings = _build(Settings, table, env, "IDEAWEAVE_", str(config_path))
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Checks across fields, each with a message that says what to change."""
    if settings.summary.mode not in ("extractive", "centroid", "llm"):
        raise ConfigError(f"summary.mode must be \"extractive\", \"centroid\" or \"llm\", not {settings.summary.mode!r}")
    if settings.watch.observer not in ("auto", "native", "polling"):
        raise ConfigError(f"watch.observer must be \"auto\", \"native\" or \"polling\", not {settings.watch.observer!r}")
    if settings.relate.weights not in ("auto", "fixed"):
        raise ConfigError(f"relate.weights must be \"auto\" or \"fixed\", not {settings.relate.weights!r}")
    if settings.index.encrypt not in ("private", "all"):
        raise ConfigError(f"index.encrypt must be \"private\" or \"all\", not {settings.index.encrypt!r}")
    if settings.index.key_store not in ("auto", "keyring", "passphrase"):
        raise ConfigError(f"index.key_store must be \"auto\", \"keyring\" or \"passphrase\", not {settings.index.key_store!r}")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level must be debug, info, warning or error, not {settings.log_level!r}")
    threads = settings.embedding.threads
    if threads != "auto" and not (isinstance(threads, int) and 1 <= threads <= 256):
        raise ConfigError(f"embedding.threads must be \"auto\" or a number between 1 and 256, not {threads!r}")
    if settings.embedding.variant not in ("auto", "f16", "q8_0"):
        raise ConfigError(f"embedding.variant must be \"auto\", \"f16\" or \"q8_0\", not {settings.embedding.variant!r}")
    if not 0 <= settings.embedding.max_threads <= 256:
        raise ConfigError(f"embedding.max_threads must be between 0 and 256, not {settings.embedding.max_threads}")
    if not 32 <= settings.embedding.max_tokens <= settings.embedding.batch_tokens:
        raise ConfigError(
            f"embedding.max_tokens ({settings.embedding.max_tokens}) must be at least 32 and at most "
            f"embedding.batch_tokens ({settings.embedding.batch_tokens})"
        )
    if not 0 < settings.api.port < 65536:
        raise ConfigError(f"api.port must be a TCP port (1-65535), not {settings.api.port}")
    if settings.writer.related_key == settings.writer.summary_key:
        raise ConfigError("writer.related_key and writer.summary_key must differ")
    if settings.topics.key_name in (settings.writer.related_key, settings.writer.summary_key):
        raise ConfigError("topics.key_name must differ from writer.related_key and writer.summary_key")
    folder = settings.topics.folder.strip("/")
    if not folder or folder.startswith(".") or ".." in folder.split("/") or Path(settings.topics.folder).is_absolute():
        raise ConfigError(f"topics.folder must be a folder inside the vault, such as \"Topics\", not {settings.topics.folder!r}")
    try:
        FaultPlan(settings.debug.fail)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def replace(settings: Settings, **changes) -> Settings:
    """A copy with dotted keys changed: replace(s, **{"embedding.threads": 2})."""
    top, sections = {}, {}
    for dotted, value in changes.items():
        section, _, key = dotted.partition(".")
        if key:
            sections.setdefault(section, {})[key] = value
        else:
            top[section] = value
    for section, values in sections.items():
        top[section] = dataclasses.replace(getattr(settings, section), **values)
    return dataclasses.replace(settings, **top)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, int) else f"{value}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def example_toml() -> str:
    """The documented example configuration: every key, its default and its help line."""
    lines = [
        "# ideaweave configuration: every key with its default value.",
        "# Copy to ~/.config/ideaweave/config.toml (or pass --config) and change what you need.",
        "# Any key can also be set by an environment variable: IDEAWEAVE_<SECTION>_<KEY>,",
        "# e.g. IDEAWEAVE_API_PORT=9000; top-level keys drop the section: IDEAWEAVE_VAULT=~/notes.",
        "",
    ]
    defaults = Settings()
    tables = []
    for f in dataclasses.fields(Settings):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            tables.append((f, value))
            continue
        lines += [f"# {f.metadata['help']}", f"{f.name} = {_toml_value(value)}", ""]
    for f, section in tables:
        lines += [f"# {f.metadata['help']}", f"[{f.name}]"]
        for sub in dataclasses.fields(section):
            lines += [f"# {sub.metadata['help']}", f"{sub.name} = {_toml_value(getattr(section, sub.name))}"]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
