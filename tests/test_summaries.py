"""The cached summary service: a real vault, a real store, the real models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TEXT_MODEL

from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.errors import ModelError
from ideaweave.summaries import Summaries, summaries_for, summary_cache_key
from ideaweave.summarize import CentroidSummarizer, LlmSummarizer, SummaryOptions
from ideaweave.vault import Note

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "vault"
NOTE = "Concepts/Corrigibility.md"
# A note whose summary SmolLM2 writes itself (the model's answer passes the checks), 165 characters long.
LLM_NOTE = "Concepts/Deceptive alignment.md"


def app_for(base: Path, embedder, **settings) -> App:
    root = base / "vault"
    for path in (NOTE, LLM_NOTE):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLES / path, root / path)
    return App(replace(Settings(state_dir=str(base / "state")), **settings), root, embedder=embedder)


class CountingSummarizer:
    """A real summarizer that counts the summaries it makes, to tell a cache hit from a fresh summary."""

    def __init__(self, summarizer):
        self.summarizer = summarizer
        self.mode = summarizer.mode
        self.needs_model = summarizer.needs_model
        self.calls = 0

    def depends_on(self) -> dict:
        return self.summarizer.depends_on()

    def summarize(self, note: Note) -> str | None:
        self.calls += 1
        return self.summarizer.summarize(note)


@pytest.fixture
def app(tmp_path, embedder):
    app = app_for(tmp_path, embedder)
    yield app
    app.store.close()


def summaries(app: App, embedder, **options) -> tuple[Summaries, CountingSummarizer]:
    counting = CountingSummarizer(CentroidSummarizer(embedder, SummaryOptions(**options)))
    return Summaries(app.store, app.scanner.read, counting), counting


def test_an_unchanged_setup_hits_the_cache(app, embedder):
    first, counting = summaries(app, embedder)
    summary = first.for_note(NOTE)
    assert summary and counting.calls == 1
    assert first.for_note(NOTE) == summary and counting.calls == 1
    again, counting = summaries(app, embedder)  # a later run, the same settings and model
    assert again.for_note(NOTE) == summary and again.cached(NOTE) == summary
    assert counting.calls == 0


def test_changing_a_setting_or_the_model_gives_a_fresh_summary(app, embedder, embedder_q8):
    default, _ = summaries(app, embedder)
    summary = default.for_note(NOTE)
    shorter, counting = summaries(app, embedder, max_chars=80)
    assert shorter.cached(NOTE) is None
    short = shorter.for_note(NOTE)
    assert counting.calls == 1 and short != summary and len(short) <= 80
    for options in ({"sentences": 1}, {"min_words": 25}):
        changed, counting = summaries(app, embedder, **options)
        changed.for_note(NOTE)
        assert counting.calls == 1, options
    other_model = CountingSummarizer(CentroidSummarizer(embedder_q8))
    Summaries(app.store, app.scanner.read, other_model).for_note(NOTE)
    assert other_model.calls == 1
    assert default.for_note(NOTE) == summary  # the first setup's summary is still cached


def test_the_key_covers_the_body_but_not_the_frontmatter(app, embedder):
    summarizer = CentroidSummarizer(embedder)
    before = summary_cache_key(app.scanner.read(NOTE), summarizer)
    path = app.root / NOTE
    text = path.read_text(encoding="utf-8")
    path.write_text("---\nsummary: Written by ideaweave.\n---\n" + text.split("---\n", 2)[2], encoding="utf-8")
    assert summary_cache_key(app.scanner.read(NOTE), summarizer) == before
    path.write_text(text + "\nOne more sentence in the body.\n", encoding="utf-8")
    assert summary_cache_key(app.scanner.read(NOTE), summarizer) != before


def test_the_text_model_is_part_of_the_key(app, embedder, tmp_path):
    note = app.scanner.read(NOTE)
    llm = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder), verify=False)
    extractive = CentroidSummarizer(embedder)
    other_file = tmp_path / "other.gguf"
    other_file.write_bytes(b"GGUF" + b"\1" * 64)
    other = LlmSummarizer(other_file, CentroidSummarizer(embedder), verify=False)
    keys = {summary_cache_key(note, s) for s in (llm, extractive, other)}
    assert len(keys) == 3
    assert not llm.loaded and not other.loaded  # naming a model does not load it


def test_the_sync_builds_its_summarizer_with_the_configured_settings(tmp_path, embedder):
    default = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder), threads=1, verify=False)
    app = app_for(tmp_path / "default", embedder)
    answer, source = default.summarize_with_source(app.scanner.read(LLM_NOTE))
    app.store.close()
    assert source == "llm" and len(answer) > 120  # what the model writes when allowed 300 characters

    short = app_for(tmp_path / "short", embedder, **{"summary.mode": "llm", "summary.max_chars": 120,
                                                    "models.verify": False})
    summary = summaries_for(short).for_note(LLM_NOTE)
    short.store.close()
    assert summary and len(summary) <= 120

    strict = app_for(tmp_path / "strict", embedder, **{"summary.mode": "llm", "summary.min_words": 10_000,
                                                      "models.verify": False})
    service = summaries_for(strict)
    assert service.for_note(LLM_NOTE) is None  # too few words for these settings: no summary at all
    assert not service.summarizer.loaded
    strict.store.close()


def test_a_missing_text_model_stops_the_run(tmp_path, embedder):
    app = app_for(tmp_path, embedder, **{"summary.mode": "llm", "models.text": str(tmp_path / "missing.gguf")})
    with pytest.raises(ModelError, match="not found"):
        summaries_for(app).for_note(NOTE)
    app.store.close()


def test_the_indexer_makes_the_extractive_summary_and_the_sync_finds_it_without_parsing(tmp_path, embedder):
    app = app_for(tmp_path, embedder)
    try:
        app.indexer.run()
        parsed = []

        def read_note(path):
            parsed.append(path)
            return app.scanner.read(path)

        summaries = Summaries(app.store, read_note, app.summaries.summarizer, app.scanner.read_body)
        for path in (NOTE, LLM_NOTE):
            summary = summaries.for_note(path)
            assert summary and summary == app.summaries.summarizer.summarize(app.scanner.read(path))
        assert parsed == []  # both found cached from their bodies
        (app.root / NOTE).write_text("A new body with a first sentence of several words.\n", encoding="utf-8")
        assert summaries.for_note(NOTE) == "A new body with a first sentence of several words."
        assert parsed == [NOTE]  # a body the index has not seen: parsed and summarised then
    finally:
        app.store.close()


def test_a_summary_that_fails_while_indexing_leaves_the_note_indexed(tmp_path, embedder):
    app = app_for(tmp_path, embedder)
    try:
        def failing(note):
            raise RuntimeError("the summarizer broke")

        app.summaries.summarizer.summarize = failing
        report = app.indexer.run()
        assert sorted(report.changed) == sorted([NOTE, LLM_NOTE]) and not app.store.problems()
        assert set(app.store.note_paths()) == {NOTE, LLM_NOTE}
    finally:
        app.store.close()


def test_summaries_made_by_a_model_wait_for_the_sync(tmp_path, embedder):
    app = app_for(tmp_path, embedder, **{"summary.mode": "centroid"})
    try:
        counting = CountingSummarizer(app.summaries.summarizer)
        app.summaries.summarizer = counting
        app.indexer.run()
        assert counting.calls == 0 and app.summaries.cached(NOTE) is None
        assert app.summaries.for_note(NOTE) and counting.calls == 1
    finally:
        app.store.close()
