"""Every stage survives any markdown: the CommonMark specification's examples, Obsidian's syntax nested in
every container, and generated documents, through parsing, chunking, sentences, summaries and writes.

Properties asserted on every document: no exception escapes; chunk spans lie inside the body, in order,
without overlap, and every prose sentence lies inside a chunk; a summary is absent or made of the note's
own sentences in the note's order; a write changes the managed keys and not one byte besides.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_markdown import PROSE, commonmark_examples, markdown_notes
from ideaweave import frontmatter
from ideaweave.chunking import chunk_note
from ideaweave.frontmatter import Unwritable
from ideaweave.prose import sentences_of
from ideaweave.summarize import ELLIPSIS, ExtractiveSummarizer, SummaryOptions, summarize_extractive
from ideaweave.vault import Note, ScanRules, Skipped, parse_note

RULES = ScanRules(managed_keys=("related", "summary"))
VALUES = {"related": ["[[Some note]]", "[[Other#Heading]]"], "summary": "A summary: with \"quotes\" and [[links]]."}


def parse(text: str, path: str = "n.md") -> Note | None:
    """The parsed note; None for text with a NUL byte, which is a binary file, not a note."""
    note = parse_note(path, text.encode("utf-8"), 0, RULES, "Templates")
    if "\x00" in text:
        assert isinstance(note, Skipped) and note.reason == "binary file"
        return None
    assert not isinstance(note, Skipped), note.reason
    return note


def check_chunks(note: Note | None, count_tokens) -> None:
    if note is None:
        return
    chunks = chunk_note(note, 96, count_tokens)
    spans = [(c.start, c.end) for c in chunks]
    for (start, end), chunk in zip(spans, chunks):
        assert note.body_start <= start <= end <= len(note.text)
        assert count_tokens(chunk.text) <= 96 + 2  # [CLS] and [SEP]
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), "chunks overlap"
    for sentence in sentences_of(note):
        assert any(start <= sentence.start < end for start, end in spans), f"sentence outside every chunk: {sentence} in {note.text!r}, chunks {spans}"


def check_summary(note: Note | None, embedder) -> None:
    if note is None:
        return
    sentences = [s.text for s in sentences_of(note)]
    for summary in (summarize_extractive(note, embedder, sentences=2, min_words=5, max_chars=300),
                    ExtractiveSummarizer(SummaryOptions(min_words=5, max_chars=300)).summarize(note)):
        if summary is not None:
            assert len(summary) <= 300
            assert is_made_of_sentences(summary, sentences), summary


def is_made_of_sentences(summary: str, sentences: list[str]) -> bool:
    """The summary is some of the sentences joined in the note's order, the last perhaps cut short."""
    cut = summary.endswith(ELLIPSIS)
    rest = summary[:-len(ELLIPSIS)] if cut else summary

    def matches(rest: str, i: int) -> bool:  # sentences can repeat or contain one another: search them all
        if not rest:
            return True
        for j in range(i, len(sentences)):
            s = sentences[j]
            if rest.startswith(s) and (len(rest) == len(s) or rest[len(s)] == " ") and matches(rest[len(s):].lstrip(" "), j + 1):
                return True
        return cut and any(s.startswith(rest) or s.replace("\n", " ").startswith(rest) for s in sentences[i:])

    return matches(rest, 0)


def check_write(text: str) -> None:
    raw = text.encode("utf-8")
    edited = frontmatter.set_managed(raw, VALUES)
    if isinstance(edited, Unwritable):
        return
    back = frontmatter.read_managed(edited, ("related", "summary"))
    assert not isinstance(back, Unwritable), back.reason
    assert back == VALUES
    before = frontmatter.read_managed(raw, ("related", "summary"))
    if before:  # held managed keys already: test_frontmatter's properties cover replacing them
        return
    # Removing the keys again gives back the original bytes, except a frontmatter block that was added.
    removed = frontmatter.set_managed(edited, {"related": None, "summary": None})
    assert not isinstance(removed, Unwritable)
    assert removed == raw or removed.replace(b"---\n---\n", b"", 1) == raw or removed.replace(b"---\r\n---\r\n", b"", 1) == raw


EXAMPLES = commonmark_examples()


def test_the_corpus_is_the_whole_specification():
    assert len(EXAMPLES) >= 600 and {e["section"] for e in EXAMPLES} >= {"Tabs", "List items", "Fenced code blocks"}


@pytest.mark.parametrize("embedded", [False, True], ids=["alone", "in-prose"])
def test_every_commonmark_example_passes_every_stage(embedder, embedded):
    for example in EXAMPLES:
        markdown = example["markdown"]
        text = f"# A note\n\n{PROSE}\n\n{markdown}\n\n{PROSE}\n" if embedded else markdown
        try:
            note = parse(text)
            check_chunks(note, embedder.count_tokens)
            check_summary(note, embedder)
            check_write(text)
        except Exception as exc:  # name the example that broke
            raise AssertionError(f"CommonMark example {example['example']} ({example['section']}): {exc!r}") from exc


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=markdown_notes())
def test_property_parsing_chunking_and_writing_survive_any_note(embedder, text):
    note = parse(text)
    check_chunks(note, embedder.count_tokens)
    check_write(text)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=markdown_notes(), prose=st.booleans())
def test_property_summaries_are_the_notes_own_sentences(embedder, text, prose):
    check_summary(parse(text + ("\n\n" + PROSE if prose else "")), embedder)


@pytest.mark.parametrize("body", [
    "- \n\nA paragraph after the list.\n",
    "- \n- \n\nA paragraph after two empty items.\n",
    "1. \n\nAfter an empty numbered item.\n",
    "- ```\n  code\n  ```\n\nAfter an item that opens with a fence.\n",
    "- # Heading in an item\n\nAfter an item that opens with a heading.\n",
    "- a\n  - \n    - \n\nAfter nested empty items.\n",
    "> - \n\nAfter an empty item in a quote.\n",
])
def test_empty_list_items_before_a_paragraph(embedder, body):
    """The crash that stopped a real vault: an empty bullet, then a paragraph."""
    note = parse(f"{PROSE}\n\n{body}")
    assert any(s.text.startswith("After") or s.text.startswith("A paragraph") for s in sentences_of(note))
    check_summary(note, embedder)
