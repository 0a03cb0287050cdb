"""Sentences of a note's prose: what is left out, how inline markdown renders, where sentences end."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave.prose import render_inline, sentences_of
from ideaweave.vault import Note, ScanRules, parse_note

STRUCTURED = """\
---
tags: [demo]
summary: old
---
# Gardens

A garden needs [[Water|watering]] and **patience**. Weeds grow back, e.g. after rain.

## Tools

```python
print("Code is not prose.")
```

| Tool | Use |
| --- | --- |
| Hoe | Weeds are cut here. |

- [[Spade]]
- [[Rake]] and [[Hoe]]
- [Shears](https://example.com/shears)

[[Compost]] [[Soil]]
#gardening #tools
![[diagram.png]]
See also: [[Pruning]]

> Quoted wisdom lives here.
> It spans two lines.

> [!tip] Callout title
> The callout body is prose.

- Seeds sprout in spring when the ground warms.
- Fruit comes later in [summer](Summer.md).

%% A private comment that Obsidian hides. %%
The `rake` command gathers leaves.
"""


def note_of(text: str, path: str = "Note.md", template_folder: str = "") -> Note:
    note = parse_note(path, text.encode("utf-8"), 0, ScanRules(), template_folder)
    assert isinstance(note, Note)
    return note


def texts(text: str) -> list[str]:
    return [s.text for s in sentences_of(note_of(text))]


# ------------------------------------------------------------------ sentences


def test_sentences_skip_everything_but_prose():
    assert texts(STRUCTURED) == [
        "A garden needs watering and patience.",
        "Weeds grow back, e.g. after rain.",
        "Quoted wisdom lives here.",
        "It spans two lines.",
        "The callout body is prose.",
        "Seeds sprout in spring when the ground warms.",
        "Fruit comes later in summer.",
        "The rake command gathers leaves.",
    ]


def test_sentence_offsets_point_at_their_markdown():
    note = note_of(STRUCTURED)
    for sentence in sentences_of(note):
        source = note.text[sentence.start:sentence.end]
        unquoted = re.sub(r"(?m)^\s*>\s?", "", source)
        assert render_inline(unquoted) == sentence.text
    found = sentences_of(note)
    assert note.text[found[0].start:found[0].end] == "A garden needs [[Water|watering]] and **patience**."
    assert note.text[found[2].start:found[3].end] == "Quoted wisdom lives here.\n> It spans two lines."


def test_inline_markdown_is_rendered_as_a_reader_sees_it():
    assert render_inline("See [[Folder/Note|the alias]] and [[Folder/Other]].") == "See the alias and Other."
    assert render_inline("Read [[Note#Shutdown problem]] first.") == "Read Note > Shutdown problem first."
    assert render_inline("A [link](https://x.org), ![img](a.png) and ![[embed.png]] here.") == "A link, and here."
    assert render_inline("**Bold**, *italic*, __strong__, ~~gone~~, ==marked==.") == "Bold, italic, strong, gone, marked."
    assert render_inline("Run `a **b** [[c]]` now.") == "Run a **b** [[c]] now."
    assert render_inline("Keep U_N, U_S and snake_case_names.") == "Keep U_N, U_S and snake_case_names."
    assert render_inline("Cited[^1] at https://example.com/page today.") == "Cited at today."
    assert render_inline("An escaped \\*star\\* stays.") == "An escaped *star* stays."
    assert texts("**Bold over two sentences. Still bold.** Plain.\n") == [
        "Bold over two sentences.", "Still bold.", "Plain.",
    ]


@pytest.mark.parametrize(
    "paragraph, expected",
    [
        ("Tools help, e.g. rakes. They last.", ["Tools help, e.g. rakes.", "They last."]),
        ("Use a hoe, i.e. A blade on a stick. It cuts.", ["Use a hoe, i.e. A blade on a stick.", "It cuts."]),
        ("Smith et al. Showed it. Then more.", ["Smith et al. Showed it.", "Then more."]),
        ("Pi is 3.14 here. Then more.", ["Pi is 3.14 here.", "Then more."]),
        ("J. R. R. Tolkien wrote it. Dr. Who did not.", ["J. R. R. Tolkien wrote it.", "Dr. Who did not."]),
        ("The U.S. Army marched. See Fig. 3 for it.", ["The U.S. Army marched.", "See Fig. 3 for it."]),
        ("Really? Yes! Done... Next one.", ["Really?", "Yes!", "Done...", "Next one."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Link [[Dr. Who. Again]] stays whole. Next.", ["Link Dr. Who. Again stays whole.", "Next."]),
        ("Ends with etc. Then a new one.", ["Ends with etc.", "Then a new one."]),
        ("Lowercase after a dot. is not a new sentence.", ["Lowercase after a dot. is not a new sentence."]),
    ],
)
def test_sentence_splitting(paragraph, expected):
    assert texts(paragraph + "\n") == expected


def test_comments_are_hidden_wherever_they_are():
    text = "%% hidden %% Shown here. Also %%inline%% shown.\n\n%%\n# Not a heading\n\nnor this\n%%\nLast one.\n"
    assert texts(text) == ["Shown here.", "Also shown.", "Last one."]


@pytest.mark.parametrize("fence", ["```dataview\n%% a comment Obsidian hides %%", "```\n%% code %%\n```\n\nAfter."])
def test_a_comment_mark_inside_a_code_block_does_not_close_one_outside(fence):
    """An unclosed %% before a fence paired with the %% inside it hid the fence's opening line, and the
    code inside became a sentence (found by the property test of tests/test_hostile_markdown.py)."""
    text = f"Before the comment.\n\n%% unclosed comment\n\n- # heading in an item\n\n{fence}"
    assert texts(text) == ["Before the comment.", "%% unclosed comment"] + (["After."] if "After" in fence else [])


def test_line_breaks_end_sentences_unless_the_paragraph_is_hard_wrapped():
    assert texts("First thought without a stop\nSecond thought here\nand its tail\n") == [
        "First thought without a stop",
        "Second thought here and its tail",
    ]
    wrapped = (
        "This paragraph was wrapped by an editor at a fixed width so that\n"
        "Every line is long and the breaks are only spaces to the reader.\n"
    )
    assert texts(wrapped) == [" ".join(wrapped.split())]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([
    "Plain words here.", "A [[Link|alias]] in it.", "Question?", "e.g. this.", "- item one", "> quoted line.",
    "# Heading", "```", "| a | b |", "#tag", "**bold** text!", "", "\n", "`code` end.", "Dr. No. 5 went.",
]), max_size=25))
def test_sentences_are_ordered_non_empty_spans_of_the_body(parts):
    note = note_of("---\ntitle: x\n---\n" + "\n".join(parts))
    found = sentences_of(note)
    previous_end = note.body_start
    for sentence in found:
        assert previous_end <= sentence.start < sentence.end <= len(note.text)
        assert sentence.text and sentence.text == sentence.text.strip()
        previous_end = sentence.end
