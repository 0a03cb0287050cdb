"""A note's summary, as every surface shows it: made once by the configured `Summarizer`, cached in the store.

The cache key is one sha256 over the note's body and everything else the summary depends on: the
mode, the model files and the summary settings. Changing any of them makes fresh summaries; writing
the summary into the note's frontmatter does not. The sync fills the cache, the API only reads it,
and both find the same entry because both go through `summaries_for`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from .store import Store
from .summarize import CentroidSummarizer, ExtractiveSummarizer, LlmSummarizer, Summarizer, SummaryOptions
from .threads import initial_threads
from .vault import Note, Skipped

if TYPE_CHECKING:
    from .app import App


def summary_cache_key(note: Note, summarizer: Summarizer) -> str:
    """The key of a note's summary: its body (not the frontmatter, where the summary is written) and
    what the summarizer's output depends on besides it."""
    return body_cache_key(note.text[note.body_start:], summarizer)


def body_cache_key(body: str, summarizer: Summarizer) -> str:
    """`summary_cache_key` from the note's body alone (`VaultScanner.read_body`: no parse needed)."""
    recipe = json.dumps({"mode": summarizer.mode, **summarizer.depends_on()}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode("utf-8"))
    digest.update(b"\n")  # JSON has no raw line breaks: the recipe ends here
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()


class Summaries:
    """Summaries by cache key: computed once, cached in the store.

    A cached summary is found from the note's body alone, without parsing the note. The indexer, which
    has each note it stores parsed, hands it to `remember`: a summary that needs no model is made there,
    so the sync that follows finds every one cached."""

    def __init__(self, store: Store, read_note: Callable[[str], Note | Skipped], summarizer: Summarizer,
                 read_body: Callable[[str], str | Skipped] | None = None):
        self.store = store
        self.read_note = read_note
        self.read_body = read_body
        self.summarizer = summarizer

    def for_note(self, path: str) -> str | None:
        """The note's summary, computed if it is not cached yet; None when it has none."""
        found, cached = self._find(path)
        if found:
            return cached
        note = self.read_note(path)
        if isinstance(note, Skipped):
            return None
        return self._summarize(note, summary_cache_key(note, self.summarizer))

    def remember(self, note: Note) -> None:
        """A note just indexed: its summary made now and cached when that needs no model (the extractive
        summary). One cached in the clear before the note was kept sealed is sealed. A template's summary
        is never made (templates are not written into)."""
        if note.is_template:
            return
        key = summary_cache_key(note, self.summarizer)
        if self.store.cached_summary(key, self.summarizer.mode)[0]:
            if self.store.seals(note.private):
                self.store.seal_cached_summary(key, self.summarizer.mode)
        elif not self.summarizer.needs_model:
            self._summarize(note, key)

    def cached(self, path: str) -> str | None:
        """The note's cached summary, never computed (that may take a model call); None when there is none."""
        return self._find(path)[1]

    def _find(self, path: str) -> tuple[bool, str | None]:
        """(found, the cached summary), looked up by the note's body (no parse) when the body can be read so;
        a note that cannot be read or parsed has none: (True, None)."""
        if self.read_body is not None:
            body = self.read_body(path)
            key = None if isinstance(body, Skipped) else body_cache_key(body, self.summarizer)
        else:
            note = self.read_note(path)
            key = None if isinstance(note, Skipped) else summary_cache_key(note, self.summarizer)
        return (True, None) if key is None else self.store.cached_summary(key, self.summarizer.mode)

    def _summarize(self, note: Note, key: str) -> str | None:
        summary = self.summarizer.summarize(note)
        # A secure note's summary is its words: cached sealed, or (without the key) not at all.
        self.store.cache_summary(key, self.summarizer.mode, summary, sealed=self.store.seals(note.private))
        return summary


def summaries_for(app: App) -> Summaries:
    """The summaries an app's settings ask for. The text model loads only when a summary needs it."""
    s = app.settings.summary
    options = SummaryOptions(sentences=s.sentences, min_words=s.min_words, max_chars=s.max_chars)
    summarizer: Summarizer
    if s.mode == "llm":
        summarizer = LlmSummarizer(app.text_model_path, ExtractiveSummarizer(options), options,
                                   threads=initial_threads(app.settings.embedding.threads, app.settings.embedding.max_threads),
                                   verify=app.settings.models.verify)
    elif s.mode == "centroid":
        summarizer = CentroidSummarizer(app.embedder, options)
    else:
        summarizer = ExtractiveSummarizer(options)
    return Summaries(app.store, app.scanner.read, summarizer, app.scanner.read_body)
