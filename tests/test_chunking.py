from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave.chunking import MIN_TOKENS, Chunk, chunk_note, readable
from ideaweave.vault import Note, ScanRules, parse_note


def words(text: str) -> int:
    return len(text.split())


def note_of(text: str, path: str = "Note.md", template_folder: str = "") -> Note:
    note = parse_note(path, text.encode("utf-8"), 0, ScanRules(), template_folder)
    assert isinstance(note, Note)
    return note


def chunks_of(text: str, max_tokens: int = 200, path: str = "Note.md") -> list[Chunk]:
    return chunk_note(note_of(text, path), max_tokens, words)


def paragraph(label: str, n: int) -> str:
    return " ".join(f"{label}{i}" for i in range(n)) + "."


def test_heading_paths_and_headings():
    text = (
        "Intro before any heading, long enough to stand on its own as a chunk of text here. " * 2 + "\n\n"
        "# Corrigibility\n\n" + paragraph("c", 30) + "\n\n"
        "## Shutdown problem\n\n" + paragraph("s", 30) + "\n\n"
        "### Utility indifference\n\n" + paragraph("u", 30) + "\n\n"
        "## Other\n\n" + paragraph("o", 30) + "\n\n"
        "# Second top\n\n" + paragraph("t", 30) + "\n"
    )
    chunks = chunks_of(text)
    assert [(c.heading_path, c.heading) for c in chunks] == [
        ((), None),
        (("Corrigibility",), "Corrigibility"),
        (("Corrigibility", "Shutdown problem"), "Shutdown problem"),
        (("Corrigibility", "Shutdown problem", "Utility indifference"), "Utility indifference"),
        (("Corrigibility", "Other"), "Other"),
        (("Second top",), "Second top"),
    ]
    assert chunks[3].text.startswith("Corrigibility > Shutdown problem > Utility indifference\n\nu0 u1")
    assert chunks[0].text.startswith("Intro before")
    assert [c.ordinal for c in chunks] == list(range(6))
    note = note_of(text)
    assert note.text[chunks[2].start:chunks[2].end].startswith("## Shutdown problem")
    assert note.text[chunks[2].start:chunks[2].end].endswith("s29.")


def test_long_section_splits_at_paragraphs_within_budget():
    paragraphs = [paragraph(f"p{i}w", 45) for i in range(10)]  # 45 words each
    text = "# Topic\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = chunks_of(text, max_tokens=100)
    assert all(words(c.text) <= 100 for c in chunks)
    assert all(c.heading == "Topic" and c.text.startswith("Topic\n\n") for c in chunks)
    # 1 context word + 45 + 45 = 91 fits, a third paragraph does not: two paragraphs per chunk.
    assert len(chunks) == 5
    note = note_of(text)
    for chunk in chunks:
        own = note.text[chunk.start:chunk.end]
        assert own.endswith(".") and chunk.text.endswith(own.split("\n\n")[-1])
    assert chunks[0].start == 0 and chunks[1].start == note.text.index("p2w0")


def test_splits_at_lines_then_sentences_then_words_then_characters():
    lines = "\n".join(paragraph(f"l{i}w", 30) for i in range(4))
    assert [words(c.text) for c in chunks_of(lines, max_tokens=70)] == [60, 60]
    sentences = " ".join(f"Sentence {i} has exactly six words." for i in range(20))
    chunks = chunks_of(sentences, max_tokens=40)
    assert all(c.text.endswith(".") and words(c.text) <= 40 for c in chunks)
    assert [words(c.text) for c in chunks] == [36, 36, 36, 12]
    run_on = " ".join(f"w{i}" for i in range(250))
    assert [words(c.text) for c in chunks_of(run_on, max_tokens=100)] == [100, 100, 50]


def test_a_word_longer_than_the_budget_is_cut():
    blob = "x" * 5000
    chunks = chunk_note(note_of(blob), 30, lambda s: len(s) // 100 + 1)
    assert [len(c.text) for c in chunks] == [2999, 2001]
    assert "".join(c.text for c in chunks) == blob


def test_query_blocks_are_removed_and_other_code_kept():
    text = (
        "# Reading list\n\nBooks I want to read this year, with notes on each of them as I go along.\n\n"
        "```dataview\nTABLE author FROM #book\n```\n\n```dataviewjs\ndv.list([1])\n```\n\n"
        "```tasks\nnot done\n```\n\n```query\ntag:#book\n```\n\n"
        "```python\nprint('kept')\n```\n"
    )
    chunks = chunks_of(text)
    joined = "\n".join(c.text for c in chunks)
    for gone in ("TABLE author", "dv.list", "not done", "tag:#book"):
        assert gone not in joined
    assert "print('kept')" in joined


def test_a_note_holding_only_a_query_gives_no_chunk():
    assert chunks_of("```dataview\nLIST FROM #x\n```\n") == []


def test_frontmatter_is_never_embedded():
    chunks = chunks_of("---\nsecret_key: hidden-value\nrelated: ['[[X]]']\n---\n" + paragraph("body", 30))
    assert len(chunks) == 1 and "hidden-value" not in chunks[0].text and chunks[0].text.startswith("body0")


def test_links_are_embedded_as_the_words_a_reader_sees():
    assert readable("See [[folder/Some Note|this note]], [[Other#Part]], [[Plain]] and ![[pic.png]].") == \
        "See this note, Other > Part, Plain and ."
    assert readable("Read [the paper](https://x.org/p.pdf) at https://x.org/p.pdf now") == "Read the paper at  now"


def test_templates_and_empty_notes_give_no_chunks():
    assert chunk_note(note_of("# {{title}}\n\n" + paragraph("t", 40), "T/x.md", "T"), 200, words) == []
    assert chunks_of("") == [] and chunks_of("   \n\n") == [] and chunks_of("---\na: 1\n---\n\n") == []


def test_small_sections_merge_into_the_following_section():
    text = "# Title\nShort intro.\n## Details\n" + paragraph("d", 50) + "\n## Tail\nShort end.\n"
    chunks = chunks_of(text)
    assert [(c.heading, words(c.text)) for c in chunks] == [("Title", 1 + 2 + 2 + 50), ("Tail", 3 + 2)]
    assert "## Details" in chunks[0].text and chunks[0].start == 0
    # A small section does not merge when the result would not fit: it stays a chunk of its own.
    assert [c.heading for c in chunks_of(text, max_tokens=40)] == ["Title", "Details", "Details", "Tail"]


def test_empty_parent_headings_are_dropped_and_a_lone_heading_kept():
    text = "# Corrigibility\n\n## Shutdown problem\n" + paragraph("s", 40) + "\n## Empty\n\n## Last\n" + paragraph("l", 40)
    chunks = chunks_of(text)
    assert [c.heading_path for c in chunks] == [("Corrigibility", "Shutdown problem"), ("Corrigibility", "Empty")]
    assert "## Last" in chunks[1].text  # the empty sibling took the next section with it
    lone = chunks_of("# Only a heading\n")
    assert [(c.heading, c.text) for c in lone] == [("Only a heading", "Only a heading")]


def test_hashes_are_stable_and_do_not_depend_on_the_path():
    text = "# Idea\n\n" + paragraph("a", 30) + "\n\n## More\n\n" + paragraph("b", 30)
    before = chunks_of(text, path="Inbox/Draft.md")
    after = chunks_of(text, path="Ideas/Final name.md")
    assert [c.hash for c in before] == [c.hash for c in after]
    assert all(c.hash == hashlib.sha256(c.text.encode()).hexdigest() for c in before)
    assert not any("Draft" in c.text or "Final" in c.text for c in before + after)
    edited = chunks_of(text.replace("b29", "changed"), path="Inbox/Draft.md")
    assert edited[0].hash == before[0].hash and edited[1].hash != before[1].hash


def test_context_line_longer_than_half_the_budget_is_shortened():
    text = "# " + " ".join(f"h{i}" for i in range(80)) + "\n\n" + paragraph("b", 30)
    chunks = chunks_of(text, max_tokens=64)
    assert all(words(c.text) <= 64 for c in chunks)


_word = st.text(alphabet="abcdefg", min_size=1, max_size=12)
_para = st.lists(_word, min_size=1, max_size=60).map(" ".join)
_body = st.lists(st.tuples(_para, st.sampled_from(["\n", "\n\n", ". ", " "])), min_size=1, max_size=15)


@settings(max_examples=150, deadline=None)
@given(_body, st.integers(min_value=MIN_TOKENS, max_value=120))
def test_chunks_fit_and_keep_every_word_in_order(parts, max_tokens):
    text = "".join(p + sep for p, sep in parts)
    note = note_of(text)
    chunks = chunk_note(note, max_tokens, words)
    assert all(words(c.text) <= max_tokens for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))
    assert all(note.text[c.start:c.end].split() == c.text.split() for c in chunks)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), _word, _para), min_size=1, max_size=10),
       st.integers(min_value=32, max_value=100))
def test_sectioned_notes_fit_the_budget(sections, max_tokens):
    text = "\n\n".join(f"{'#' * level} {title}\n\n{body}" for level, title, body in sections)
    chunks = chunk_note(note_of(text), max_tokens, words)
    assert chunks and all(words(c.text) <= max_tokens for c in chunks)
    assert all(c.heading_path and c.heading == c.heading_path[-1] for c in chunks)


def test_a_passage_drops_the_heading_line_only_when_the_chunk_has_one():
    from ideaweave.chunking import passage

    assert passage("Note > Section\n\nThe body.", ("Note", "Section")) == "The body."
    assert passage("First paragraph.\n\nSecond paragraph.", ()) == "First paragraph. Second paragraph."
    assert passage("word " * 100, (), limit=20) == "word word word word…"
