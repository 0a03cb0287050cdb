"""The composition root for one vault: settings in, wired parts out.

The CLI and the daemon build one `App` from the settings and the vault path; every other module
receives what it needs as arguments. The model and the store open lazily, so cheap commands stay cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import cached_property
from pathlib import Path

from .config import Settings
from .embedding import EmbedderOptions, LlamaEmbedder
from .errors import VaultError
from .failures import FaultPlan
from .modelfiles import models_dir, require_model, resolve_model
from .store import Store
from .vault import ScanRules, VaultScanner, find_vault_root


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


def scan_rules(settings: Settings) -> ScanRules:
    return ScanRules(
        include=tuple(settings.index.include),
        exclude=tuple(settings.index.exclude),
        template_folder=settings.index.template_folder,
        private_folders=tuple(settings.index.private_folders),
        max_note_bytes=settings.index.max_note_bytes,
        managed_keys=(settings.writer.related_key, settings.writer.summary_key),
    )


class App:
    """Everything ideaweave knows how to do for one vault."""

    def __init__(self, settings: Settings, root: Path, env: dict[str, str] | None = None):
        self.settings = settings
        self.root = root
        self.env = dict(os.environ if env is None else env)
        self.state_dir = state_dir_for(root, settings, self.env)
        self.scanner = VaultScanner(root, scan_rules(settings))

    @property
    def models_dir(self) -> Path:
        return models_dir(self.settings.models.dir, self.env)

    @property
    def embedding_model_path(self) -> Path:
        return resolve_model(self.settings.models.embedding, self.models_dir)

    @property
    def text_model_path(self) -> Path:
        return resolve_model(self.settings.models.text, self.models_dir)

    @cached_property
    def embedder(self) -> LlamaEmbedder:
        path = require_model(self.embedding_model_path, hash_it=self.settings.models.verify)
        options = EmbedderOptions(
            threads=self.settings.embedding.threads,
            batch_tokens=self.settings.embedding.batch_tokens,
            flash_attn=self.settings.embedding.flash_attn,
        )
        return LlamaEmbedder(path, options)

    @cached_property
    def faults(self) -> FaultPlan:
        return FaultPlan(self.settings.debug.fail)

    @cached_property
    def store(self) -> Store:
        return Store.open(self.state_dir, self.embedder.dim, self.embedder.model_id)

    @cached_property
    def indexer(self):
        from .indexer import Indexer

        return Indexer(self.scanner, self.store, self.embedder, self.settings.embedding.max_tokens,
                       related_key=self.settings.writer.related_key, faults=self.faults)

    def relater(self, corpus=None):
        """A Relater over the current index, with this vault's weights (calibrated once, then cached)."""
        from .relate import Corpus, Relater, weights_for

        relater = Relater(corpus or Corpus(self.store))
        r = self.settings.relate
        configured = {"emb": r.emb_weight, "chunk": r.chunk_weight, "bm25": r.bm25_weight, "title": r.title_weight,
                      "aa": r.aa_weight, "back": r.back_weight, "nbr": r.nbr_weight}
        relater.weights = weights_for(relater, self.store, r.weights, configured, self.read_body)
        return relater

    def read_body(self, path: str) -> str | None:
        from .vault import Skipped

        note = self.scanner.read(path)
        return None if isinstance(note, Skipped) else note.text[note.body_start:]

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "embedder" in self.__dict__:
            self.embedder.close()


# ------------------------------------------------------------------ apply: index, relate, summarize, write


def link_string(resolver, path: str, heading: str | None) -> str:
    """The link Obsidian resolves to path, with the section when one matched; shortest unambiguous text."""
    text = resolver.link_text(path)
    # Headings holding link syntax cannot be linked to reliably: link the note instead.
    if heading and not any(ch in heading for ch in "[]|#^"):
        return f"[[{text}#{heading}]]"
    return f"[[{text}]]"


def link_target(resolver, link: str, source: str) -> str | None:
    """The note a link string like "[[Note#Heading|alias]]" points to."""
    inner = link.strip()
    if inner.startswith("[[") and inner.endswith("]]"):
        inner = inner[2:-2]
    target = re.split(r"[|#^]", inner, maxsplit=1)[0]
    return resolver.resolve(target, source) if target else None
