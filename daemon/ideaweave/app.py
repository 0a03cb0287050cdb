"""The composition root for one vault: settings in, wired parts out.

The CLI and the daemon build one `App` from the settings and the vault path; every other module
receives what it needs as arguments. The model and the store open lazily, so cheap commands stay cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .calibrate import weights_for
from .config import Settings
from .corpus import Corpus
from .embedding import Embedder, EmbedderOptions, LlamaEmbedder
from .errors import VaultError
from .failures import FaultPlan
from .indexer import Indexer
from .modelfiles import models_dir, require_model, resolve_model
from .relate import Relater
from .related import RelatedNotes
from .sealing import Keychain, KeyPlace, runtime_dir_for
from .store import Store, stored_model_id
from .variants import Choice, machine_key, pick_variant, read_cpuinfo, variant_cache_file, variant_of, vault_sample
from .vault import ScanRules, VaultScanner, find_vault_root
from .writer import Keys

if TYPE_CHECKING:  # summaries builds its parts from an App
    from .summaries import Summaries


def resolve_vault(cli_vault: str | None, settings: Settings, cwd: Path) -> Path:
    """--vault, else the configured vault, else the enclosing folder that has .obsidian/."""
    chosen = cli_vault or settings.vault
    if chosen:
        root = Path(chosen).expanduser()
        if not root.is_dir():
            raise VaultError(f"{root}: vault folder not found")
        return root.resolve()
    found = find_vault_root(cwd)
    if found is None:
        raise VaultError(f"{cwd}: not inside a vault (no .obsidian/ folder above it); pass --vault PATH")
    return found.resolve()


def vault_id(root: Path) -> str:
    """A readable, stable id for a vault: its folder name and a hash of its absolute path."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-") or "vault"
    return f"{slug}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def state_dir_for(root: Path, settings: Settings, env: dict[str, str]) -> Path:
    if settings.state_dir:
        return Path(settings.state_dir).expanduser()
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "ideaweave" / vault_id(root)


def key_place(state_dir: Path, settings: Settings, env: dict[str, str]) -> KeyPlace:
    """Where a vault's key is kept: named in the keyring after its state folder (one key per index)."""
    entry = "index-" + hashlib.sha256(str(Path(state_dir).expanduser().resolve()).encode()).hexdigest()[:16]
    return KeyPlace(Path(state_dir), entry, runtime_dir_for(env), settings.index.key_store)


def scan_rules(settings: Settings) -> ScanRules:
    return ScanRules(
        include=tuple(settings.index.include),
        exclude=tuple(settings.index.exclude),
        template_folder=settings.index.template_folder,
        private_folders=tuple(settings.index.private_folders),
        max_note_bytes=settings.index.max_note_bytes,
        managed_keys=(settings.writer.related_key, settings.writer.summary_key)
        + ((settings.topics.key_name,) if settings.topics.key else ()),
    )


class App:
    """Everything ideaweave knows how to do for one vault.

    The parts are built on first use, so cheap commands stay cheap. An embedder or a store given to the
    constructor is used instead of loading the configured one, and is not closed by `close()`: its owner
    closes it.
    """

    def __init__(self, settings: Settings, root: Path, env: dict[str, str] | None = None,
                 embedder: Embedder | None = None, store: Store | None = None):
        self.settings = settings
        self.root = root
        self.env = dict(os.environ if env is None else env)
        self.state_dir = state_dir_for(root, settings, self.env)
        # Hub notes are ideaweave's picture of the vault, not notes of it: while they are written, the ones
        # ideaweave wrote stay out of the index (a user's own note in their folder stays in).
        self.scanner = VaultScanner(root, scan_rules(settings), owned=self.hub_paths if settings.topics.write else None,
                                    owned_folder=settings.topics.folder)
        self.keys = Keys(settings.writer.related_key, settings.writer.summary_key, settings.writer.related_count)
        self._embedder = embedder
        self._owns_embedder = embedder is None
        self._store = store
        self._owns_store = store is None
        # The daemon's loop and the API's threads both reach for the parts: each must be built once, or
        # two stores would each hold their own copy of the vector index.
        self._building = threading.RLock()
        self._parts: dict[str, object] = {}
        self.faults = FaultPlan(settings.debug.fail)

    @property
    def models_dir(self) -> Path:
        return models_dir(self.settings.models.dir, self.env)

    @property
    def embedding_model_path(self) -> Path:
        """The embedding model file in use: the configured model, as the build that is fastest here."""
        return self.embedding_variant[0]

    @property
    def embedding_variant(self) -> tuple[Path, Choice]:
        """(model file, why that build of it): see `variants`. Measured once per machine and model."""
        return self._once("embedding_variant", self._choose_variant)

    def _choose_variant(self) -> tuple[Path, Choice]:
        configured = resolve_model(self.settings.models.embedding, self.models_dir)
        if not self._owns_embedder:
            return configured, Choice(variant_of(configured), "the embedder given to the app")
        # The builds are timed on one thread each: the kernels' speed, not how many cores are idle just now.
        timing = dataclasses.replace(self._embedder_options(), threads=1)
        return pick_variant(configured, self.settings.embedding.variant, stored_model_id(self.state_dir),
                            variant_cache_file(self.env), machine_key(read_cpuinfo()),
                            lambda: vault_sample(self.scanner), lambda path: LlamaEmbedder(path, timing))

    def _embedder_options(self) -> EmbedderOptions:
        return EmbedderOptions(threads=self.settings.embedding.threads, max_threads=self.settings.embedding.max_threads,
                               batch_tokens=self.settings.embedding.batch_tokens,
                               flash_attn=self.settings.embedding.flash_attn)

    @property
    def text_model_path(self) -> Path:
        return resolve_model(self.settings.models.text, self.models_dir)

    @property
    def embedder(self) -> Embedder:
        with self._building:
            if self._embedder is None:
                path = require_model(self.embedding_model_path, hash_it=self.settings.models.verify)
                self._embedder = LlamaEmbedder(path, self._embedder_options())
            return self._embedder

    @property
    def loaded_embedder(self) -> Embedder | None:
        """The embedder if it is loaded, without loading it (for status)."""
        return self._embedder

    @property
    def keychain(self) -> Keychain:
        """Where the key of this vault's secure notes is kept (see sealing)."""
        return self._once("keychain", lambda: Keychain(key_place(self.state_dir, self.settings, self.env), self.env))

    @property
    def store(self) -> Store:
        with self._building:
            if self._store is None:
                self._store = Store.open(self.state_dir, self.embedder.dim, self.embedder.model_id, self.keychain,
                                         seal_all=self.settings.index.encrypt == "all")
            if self._store.text_source is None:
                self._store.text_source = self.chunk_texts
            return self._store

    def chunk_texts(self, path: str) -> dict[str, str]:
        """{chunk hash: text} of the note as it is now: what the store shows of a secure note's chunks,
        whose text it does not keep."""
        from .chunking import chunk_note
        from .vault import Skipped

        try:
            stat = (self.root / path).stat()
        except OSError:
            return {}
        cache = self._once("chunk_texts", dict)  # ranking asks for one note's passages many times
        seen = cache.get(path)
        if seen is not None and seen[0] == (stat.st_size, stat.st_mtime_ns):
            return seen[1]
        note = self.scanner.read(path)
        if isinstance(note, Skipped):
            return {}
        texts = {c.hash: c.text for c in chunk_note(note, self.settings.embedding.max_tokens, self.embedder.count_tokens)}
        if len(cache) >= 256:
            cache.clear()
        cache[path] = ((stat.st_size, stat.st_mtime_ns), texts)
        return texts

    @property
    def indexer(self) -> Indexer:
        # Each note stored hands its parse to the summaries: a summary that needs no model is made then,
        # and the sync after the indexing finds it cached without parsing the note again.
        return self._once("indexer", lambda: Indexer(
            self.scanner, self.store, self.embedder, self.settings.embedding.max_tokens,
            related_key=self.settings.writer.related_key, faults=self.faults,
            on_stored=lambda note: self.summaries.remember(note)))

    def relater(self, corpus: Corpus | None = None) -> Relater:
        """A Relater over `corpus` (else the current index), with this vault's weights: the configured ones,
        or calibrated from them once ("auto"), then cached."""
        relater = Relater(corpus or Corpus(self.store))
        relater.weights = weights_for(relater, self.store, self.settings.relate.weights,
                                      self.settings.relate.weights_dict(), self.read_body)
        return relater

    def related_notes(self, corpus: Corpus | None = None) -> RelatedNotes:
        """The one answer to "what are this note's related notes", for the CLI, the API and the daemon."""
        return RelatedNotes(self.relater(corpus), self.store, self.indexer.resolver, self.keys, self.read_bytes)

    @property
    def summaries(self) -> Summaries:
        """The summaries the settings ask for, one for the app's life: in llm mode the text model loads once."""
        from .summaries import summaries_for

        return self._once("summaries", lambda: summaries_for(self))

    def publish_topics(self, corpus: Corpus, topics, hubs: bool, handoff=None, busy=None):
        """Hub notes (when `hubs`) and each note's topic key for `topics`, as the settings ask: what the CLI's
        `topics --write` and the daemon both do. `handoff` and `busy`: the Obsidian bridge, as the daemon's
        other writes meet it (writer.NoteWriter)."""
        from .hubs import publish_topics
        from .writer import NoteWriter

        settings = self.settings.topics
        notes = [p for p, template in zip(corpus.paths, corpus.template) if not template]
        private = {p for p, secret in zip(corpus.paths, corpus.private) if secret}
        writer = NoteWriter(self.root, self.store, self.settings.writer.defer_seconds, handoff, busy)
        return publish_topics(writer, topics, notes, private, settings.folder, hubs, settings.key_name, settings.key)

    def hub_paths(self) -> frozenset[str]:
        """The hub notes ideaweave wrote into the vault."""
        from .hubs import owned_hub_paths

        return owned_hub_paths(self.store)

    def _once(self, name: str, build):
        with self._building:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None

    def read_body(self, path: str) -> str | None:
        from .vault import Skipped

        note = self.scanner.read(path)
        return None if isinstance(note, Skipped) else note.text[note.body_start:]

    def close(self) -> None:
        if self._owns_store and self._store is not None:
            self._store.close()
        if self._owns_embedder and self._embedder is not None:
            self._embedder.close()
