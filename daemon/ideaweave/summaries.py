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
    recipe = json.dumps({"mode": summarizer.mode, **summarizer.depends_on()}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode("utf-8"))
    digest.update(b"\n")  # JSON has no raw line breaks: the recipe ends here
    digest.update(note.text[note.body_start:].encode("utf-8"))
    return digest.hexdigest()


class Summaries:
    """Summaries by cache key: computed once, cached in the store."""

    def __init__(self, store: Store, read_note: Callable[[str], Note | Skipped], summarizer: Summarizer):
        self.store = store
        self.read_note = read_note
        self.summarizer = summarizer

    def for_note(self, path: str) -> str | None:
        """The note's summary, computed if it is not cached yet; None when it has none."""
        note = self.read_note(path)
        if isinstance(note, Skipped):
            return None
        key = summary_cache_key(note, self.summarizer)
        found, cached = self.store.cached_summary(key, self.summarizer.mode)
        if found:
            return cached
        summary = self.summarizer.summarize(note)
        # A secure note's summary is its words: cached sealed, or (without the key) not at all.
        self.store.cache_summary(key, self.summarizer.mode, summary, sealed=self.store.seals(note.private))
        return summary

    def cached(self, path: str) -> str | None:
        """The note's cached summary, never computed (that may take a model call); None when there is none."""
        note = self.read_note(path)
        if isinstance(note, Skipped):
            return None
        _found, cached = self.store.cached_summary(summary_cache_key(note, self.summarizer), self.summarizer.mode)
        return cached


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
    return Summaries(app.store, app.scanner.read, summarizer)
