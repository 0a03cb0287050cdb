"""Tests for ideaweave.frontmatter: managed keys change, every other byte stays."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from ideaweave import frontmatter
from ideaweave.frontmatter import (
    Unwritable,
    one_line,
    read_managed,
    set_managed,
    split_frontmatter,
)

# The main property runs thousands of notes; registered here (not globally) so that
# other test files keep their own settings.
settings.register_profile(
    "frontmatter-property",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("frontmatter-fuzz", max_examples=500, deadline=None)

MANAGED = ("related", "summary")


def _set(raw: bytes, values: dict) -> bytes:
    result = set_managed(raw, values)
    assert not isinstance(result, Unwritable), result
    return result


# --- examples ----------------------------------------------------------------


RICH_NOTE = (
    "---\n"
    "# Notes on corrigibility\n"
    "title: 'Shutdown: the problem'   # quoted with a colon\n"
    'aliases: ["off switch", shutdown]\n'
    "tags:\n"
    "  - alignment\n"
    "  - 'agents'\n"
    "related: [\"[[Old]]\", '[[Older]]']  # written by hand\n"
    "\n"
    "# when it was written\n"
    "created: 2023-04-01\n"
    "rating: 4.50\n"
    "---\n"
    "# Shutdown\n"
    "Text with a rule below.\n"
    "---\n"
    "key: value that is body text\n"
)


def test_a_planned_write_parses_the_block_once_and_the_edit_once() -> None:
    """A sync reads a note's managed keys when it plans, then edits the same bytes: the block is parsed once
    for both, and the edited block once for its check. The edit is the same as from a cold start."""
    raw = RICH_NOTE.encode()
    values = {"related": ["[[A]]", "[[B]]"], "summary": "Shutdown, in one line."}
    frontmatter._parse_block.cache_clear()
    cold = _set(raw, values)
    frontmatter._parse_block.cache_clear()
    assert read_managed(raw, MANAGED) == {"related": ["[[Old]]", "[[Older]]"]}
    assert _set(raw, values) == cold
    info = frontmatter._parse_block.cache_info()
    assert (info.misses, info.hits) == (2, 1)
    assert read_managed(cold, MANAGED) == values  # the edited note, read back: its block was parsed already
    assert frontmatter._parse_block.cache_info().misses == 2


def test_replacing_a_key_keeps_comments_order_quotes_and_flow_lists() -> None:
    result = _set(RICH_NOTE.encode(), {"related": ["[[Corrigibility#Shutdown problem]]", "[[ELK]]"]})
    assert result.decode() == RICH_NOTE.replace(
        "related: [\"[[Old]]\", '[[Older]]']  # written by hand\n",
        'related:\n  - "[[Corrigibility#Shutdown problem]]"\n  - "[[ELK]]"\n',
    )


def test_adding_keys_appends_them_at_the_end_of_the_block() -> None:
    note = "---\ntitle: A  # keep me\ntags: [a, b]\n---\nBody\n"
    result = _set(note.encode(), {"related": ["[[B]]"], "summary": "About A."})
    assert result.decode() == (
        '---\ntitle: A  # keep me\ntags: [a, b]\nrelated:\n  - "[[B]]"\nsummary: "About A."\n---\nBody\n'
    )


def test_crlf_note_stays_crlf_everywhere() -> None:
    note = "---\r\ntitle: A\r\nrelated: [x]\r\n---\r\nBody\r\nmore\r\n"
    result = _set(note.encode(), {"related": ["[[B]]", "[[C]]"], "summary": "Hi\nthere"})
    text = result.decode()
    assert re.search(r"(?<!\r)\n", text) is None
    assert text == (
        '---\r\ntitle: A\r\nrelated:\r\n  - "[[B]]"\r\n  - "[[C]]"\r\n'
        'summary: "Hi there"\r\n---\r\nBody\r\nmore\r\n'
    )


def test_byte_order_mark_is_kept() -> None:
    note = "\ufeff---\ntitle: A\n---\nBody"
    result = _set(note.encode(), {"summary": "S"})
    assert result == '\ufeff---\ntitle: A\nsummary: "S"\n---\nBody'.encode()


def test_body_with_delimiter_lines_is_untouched() -> None:
    body = "Intro\n---\nrelated: not frontmatter\n...\n---\n"
    note = "---\nrelated: []\n---\n" + body
    result = _set(note.encode(), {"related": ["[[A]]"]})
    assert result.decode() == '---\nrelated:\n  - "[[A]]"\n---\n' + body


@pytest.mark.parametrize("ending", ["", "\n", "\n\n", "no newline at the end"])
def test_the_end_of_the_body_is_untouched(ending: str) -> None:
    note = "---\ntitle: A\n---\nBody" + ending
    result = _set(note.encode(), {"summary": "S"})
    assert result.decode().endswith("---\nBody" + ending)


def test_closing_line_without_newline() -> None:
    assert _set(b"---\na: 1\n---", {"summary": "S"}) == b'---\na: 1\nsummary: "S"\n---'


def test_dots_end_the_yaml_but_not_the_block() -> None:
    # Obsidian (and so the index) reads on to the next --- line; YAML's `...` inside is only where its
    # document ends, so new keys go above it and every line of the user's stays as it was.
    note = b"---\na: 1\nrelated: [x]\n...\n# after the end\n---\nBody\n"
    assert _set(note, {"summary": "S"}) == b'---\na: 1\nrelated: [x]\nsummary: "S"\n...\n# after the end\n---\nBody\n'
    assert _set(note, {"related": ["[[B]]"]}) == b'---\na: 1\nrelated:\n  - "[[B]]"\n...\n# after the end\n---\nBody\n'
    assert _set(note, {"related": None}) == b"---\na: 1\n...\n# after the end\n---\nBody\n"
    crlf = b"---\r\na: |\r\n  text\r\n...  \r\n---\r\n"
    assert _set(crlf, {"summary": "S"}) == b'---\r\na: |\r\n  text\r\nsummary: "S"\r\n...  \r\n---\r\n'


def test_dots_without_a_closing_line_leave_no_block_to_edit() -> None:
    # The index reads such a note as body only: no block to edit, and none is put above it.
    result = set_managed(b"---\na: 1\n...\nBody\n", {"summary": "S"})
    assert isinstance(result, Unwritable) and result.reason == "frontmatter has no closing --- line"


def test_an_opening_line_ending_in_spaces_is_edited_in_place() -> None:
    # The index reads it as frontmatter (as Obsidian does), so the writer edits the same block.
    assert _set(b"---  \ntitle: A\n---\nBody\n", {"summary": "S"}) == b'---  \ntitle: A\nsummary: "S"\n---\nBody\n'
    assert _set(b"---\t\r\ntitle: A\r\n--- \r\n", {"related": []}) == b"---\t\r\ntitle: A\r\nrelated: []\r\n--- \r\n"


def test_note_without_frontmatter_gets_a_block_on_top() -> None:
    assert _set(b"# Title\nText\n", {"related": ["[[A]]"]}) == b'---\nrelated:\n  - "[[A]]"\n---\n# Title\nText\n'
    assert _set(b"# Title\r\nText", {"summary": "S"}) == b'---\r\nsummary: "S"\r\n---\r\n# Title\r\nText'
    assert _set("\ufeffText".encode(), {"related": []}) == "\ufeff---\nrelated: []\n---\nText".encode()
    assert _set(b"", {"summary": "S"}) == b'---\nsummary: "S"\n---\n'


def test_a_rule_at_the_top_without_newline_is_not_frontmatter() -> None:
    assert _set(b"---", {"summary": "S"}) == b'---\nsummary: "S"\n---\n---'


def test_empty_frontmatter_gets_the_keys() -> None:
    assert _set(b"---\n---\nBody", {"related": []}) == b"---\nrelated: []\n---\nBody"
    assert _set(b"---\n# only a comment\n---\n", {"summary": "S"}) == b'---\n# only a comment\nsummary: "S"\n---\n'


def test_replacing_a_block_list_with_items_at_column_zero() -> None:
    note = "---\nrelated:\n- \"[[A]]\"\n-   '[[B]]'  # mine\n# about tags\ntags: [x]\n---\n"
    result = _set(note.encode(), {"related": ["[[C]]"]})
    assert result.decode() == '---\nrelated:\n  - "[[C]]"\n# about tags\ntags: [x]\n---\n'


def test_replacing_a_multi_line_flow_list_and_a_block_scalar() -> None:
    note = (
        "---\nrelated: [\"[[A]]\",\n  \"[[B]]\"]\n"
        "summary: |\n  first\n  # content, not a comment\n\n  last\n\n"
        "next: 1\n---\n"
    )
    result = _set(note.encode(), {"related": [], "summary": "New"})
    assert result.decode() == '---\nrelated: []\nsummary: "New"\n\nnext: 1\n---\n'


def test_removing_keys() -> None:
    note = "---\ntitle: A\nrelated:\n  - \"[[B]]\"\n# the next one\nsummary: >\n  folded\n  text\nz: 2\n---\nBody\n"
    result = _set(note.encode(), {"related": None, "summary": None})
    assert result.decode() == "---\ntitle: A\n# the next one\nz: 2\n---\nBody\n"


def test_removing_a_key_after_a_block_scalar_keeps_that_scalar() -> None:
    # `|+` keeps the blank lines after it: those after the removed key go with it.
    note = "---\nkeep: |+\n  kept\n\nrelated: [a]\n\nsummary: S\n\nnext: 1\n---\n"
    result = _set(note.encode(), {"related": None, "summary": None})
    assert result.decode() == "---\nkeep: |+\n  kept\n\nnext: 1\n---\n"
    assert read_managed(result, ["keep"]) == {"keep": "kept\n\n"}
    # An indented comment after the removed key would become text of the `|` scalar.
    note = "---\ntext: |\n  a\nsummary: S\n   # about S\n# about next\nnext: 1\n---\n"
    result = _set(note.encode(), {"summary": None})
    assert result.decode() == "---\ntext: |\n  a\n# about next\nnext: 1\n---\n"


def test_removing_an_absent_key_changes_nothing() -> None:
    raw = b"---\ntitle: A\n---\nBody\n"
    assert set_managed(raw, {"related": None}) is raw
    assert set_managed(b"Body", {"related": None, "summary": None}) == b"Body"


@pytest.mark.parametrize(
    "summary",
    [
        'He said "no": twice # really',
        "back\\slash and 'single' quotes",
        "Unicode: café ☕ 日本語 \U0001f600",
        "  leading and trailing spaces  ",
        "tab\there, bell\x07, escape\x1b, nel\x85, bom\ufeff, del\x7f",
        "- looks like a list item",
        "yes",
        "",
        "{not: a mapping}",
    ],
)
def test_summaries_round_trip_on_one_line(summary: str) -> None:
    result = _set(b"---\ntitle: A\n---\n", {"summary": summary})
    lines = result.decode().split("\n")
    assert lines[2].startswith('summary: "') and lines[3] == "---"
    assert read_managed(result, ["summary"]) == {"summary": one_line(summary)}


def test_summary_line_breaks_become_spaces() -> None:
    assert one_line("First line.\nSecond line.\r\n\r\n  Third.\u2028Fourth") == "First line. Second line. Third. Fourth"
    assert one_line("\nedges\n") == "edges"
    assert one_line("  no break  ") == "  no break  "
    result = _set(b"", {"summary": "One\ntwo"})
    assert result == b'---\nsummary: "One two"\n---\n'


def test_related_links_with_odd_characters_round_trip() -> None:
    links = ['[[A "quoted" note]]', "[[Back\\slash]]", "[[Note#Heading|alias]]", "[[日本#見出し]]", "[[x\ny\tz]]"]
    result = _set(b"---\n---\n", {"related": links})
    assert read_managed(result, ["related"]) == {"related": links}
    assert '  - "[[A \\"quoted\\" note]]"' in result.decode()


def test_same_value_in_other_formatting_is_not_rewritten() -> None:
    raw = b"---\nrelated: ['[[A]]', \"[[B]]\"]   # mine\nsummary: >-\n  Two\n  words\n---\n"
    assert set_managed(raw, {"related": ["[[A]]", "[[B]]"], "summary": "Two words"}) is raw


def test_second_apply_returns_identical_bytes() -> None:
    values = {"related": ["[[A]]", '[[B "b"]]'], "summary": "Multi\nline: yes # no"}
    once = _set(RICH_NOTE.encode(), values)
    assert once != RICH_NOTE.encode()
    assert set_managed(once, values) == once


def test_read_managed_returns_plain_values() -> None:
    raw = b"---\nrelated:\n  - '[[A]]'\nsummary: Plain text\ncount: 3\n---\n"
    assert read_managed(raw, ["related", "summary", "count", "missing"]) == {
        "related": ["[[A]]"],
        "summary": "Plain text",
        "count": 3,
    }
    values = read_managed(raw, ["related", "summary"])
    assert type(values["related"]) is list and type(values["summary"]) is str
    assert read_managed(b"no frontmatter", ["related"]) == {}


@pytest.mark.parametrize(
    ("note", "reason_start"),
    [
        ("---\ntitle: [unclosed\n---\n", "frontmatter is not valid YAML: "),
        ("---\ntitle: A\n  bad: indent\n---\n", "frontmatter is not valid YAML: "),
        ("---\nrelated: 1\nrelated: 2\n---\n", "frontmatter has a duplicate key: "),
        ("---\n- a\n- b\n---\n", "frontmatter is not a mapping"),
        ("---\njust text\n---\n", "frontmatter is not a mapping"),
        ("---\n{related: [a], b: 1}\n---\n", "frontmatter is a {...} flow mapping"),
        ("---\nrelated: &links [a]\nother: *links\n---\n", "related carries an anchor"),
        ("---\nrelated:\n  - &one a\nother: *one\n---\n", "related carries an anchor"),
        ("---\n&key related: [a]\n---\n", "related carries an anchor"),
        ("---\nbase: &b {related: [a]}\n<<: *b\n---\n", "related comes from a merge key"),
        ("---\n? related\n: [a]\n---\n", "related does not start at the beginning of a line"),
        ("---\nloop: &l [*l]\n---\n", "frontmatter aliases refer to themselves"),
        ("---\ntitle: A\n", "frontmatter has no closing --- line"),
        ("---\ntitle: A\rtags: b\n---\n", "frontmatter uses line breaks other than LF or CRLF"),
        ("---\rtitle: A\n---\n", "frontmatter uses line breaks other than LF or CRLF"),
        ("---\ntitle: A\n...\nBody\n", "frontmatter has no closing --- line"),
        ("---\na: 1\n...\nb: 2\n---\nBody\n", "frontmatter is not valid YAML: "),
    ],
)
def test_unsafe_frontmatter_is_refused_with_a_reason(note: str, reason_start: str) -> None:
    result = set_managed(note.encode(), {"related": ["[[X]]"], "summary": None})
    assert isinstance(result, Unwritable)
    assert result.reason.startswith(reason_start), result.reason
    assert "\n" not in result.reason and len(result.reason) < 160


def test_yaml_errors_name_the_line_of_the_note() -> None:
    result = set_managed(b"---\ntitle: A\ntags: [a\nb: 1\n---\n", {"summary": "S"})
    assert isinstance(result, Unwritable) and "(line 4)" in result.reason


def test_alias_to_another_key_in_a_managed_value_is_replaced() -> None:
    note = "---\nx: &a [1]\nrelated: *a\n---\n"
    assert _set(note.encode(), {"related": ["[[B]]"]}) == b'---\nx: &a [1]\nrelated:\n  - "[[B]]"\n---\n'


def test_non_utf8_notes_are_refused() -> None:
    result = set_managed(b"---\ntitle: caf\xe9\n---\n", {"summary": "S"})
    assert isinstance(result, Unwritable) and "UTF-8" in result.reason
    assert isinstance(read_managed(b"\xff", ["summary"]), Unwritable)


def test_caller_mistakes_raise() -> None:
    with pytest.raises(TypeError):
        set_managed(b"", {"related": [1, 2]})  # type: ignore[list-item]
    with pytest.raises(ValueError):
        set_managed(b"", {"true": "x"})
    with pytest.raises(ValueError):
        set_managed(b"", {"a key: with colon": "x"})


def test_split_frontmatter_parts_rebuild_the_text() -> None:
    parts = split_frontmatter("\ufeff---\r\na: 1\r\n...  \r\nb\r\n---  \r\nBody\r\n---\r\n")
    assert (parts.bom, parts.opening, parts.block, parts.closing, parts.body) == (
        "\ufeff", "---\r\n", "a: 1\r\n...  \r\nb\r\n", "---  \r\n", "Body\r\n---\r\n"
    )
    assert parts.line_ending == "\r\n" and parts.has_frontmatter and not parts.unclosed
    plain = split_frontmatter("Body\n")
    assert not plain.has_frontmatter and plain.body == "Body\n" and plain.text == "Body\n"
    assert split_frontmatter("---\nno end").unclosed


# --- property: random notes, random managed values ------------------------------

# Other keys, each a group of lines; names are unique across groups.
OTHER_GROUPS = [
    ["title: A plain title"],
    ["quoted: 'single ''quoted'' value'   # comment after"],
    ['"key with space": "double \\"quoted\\" value"'],
    ['tags: [alpha, beta, "gamma delta"]  # flow list'],
    ["aliases:", "  - First alias", "  - 'Second: alias'"],
    ["items:", "- one", "- two  # comment"],
    ["base: &base", "  x: 1", "  y: [1, 2]", "copy: *base", "merged:", "  <<: *base", "  z: 3"],
    ["literal: |", "  line one", "", "  # not a comment", "  last"],
    ["folded: >-", "  folded text", "  continues"],
    ["count: 42", "ratio: 1.50", "flag: true"],
    ["created: 2024-01-15", "nothing:", "tilde: ~"],
    ["nested:", "  a: 1", "  b:", "    - c", "    - {d: e}"],
    ["flow: [a,", "  b, c]"],
    ["plain: word", "  continued line"],
    ["keep: |+", "  kept", ""],
    ["empty_list: []", "empty_map: {}"],
    ["url: https://example.com/a#b", "colon: 'a: b'"],
    ['unicode: "café ☕ 日本"', "emoji: 🙂"],
    ["anchored_scalar: &s shared", "reused: *s"],
]

LINKS = ["[[A]]", "[[B#Heading]]", "[[C|alias]]", "[[Café]]", '[[Quote " and \\ slash]]']
odd_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
link_strategy = st.one_of(st.sampled_from(LINKS), odd_text.map(lambda t: f"[[{t}]]"), odd_text)


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sq(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _related_lines(style: str, items: list[str]) -> list[str]:
    if style == "block":
        return ["related:"] + [f"  - {_dq(i)}" for i in items]
    if style == "indentless":
        return ["related:  # by hand"] + [f"- {_sq(i)}" for i in items]
    if style == "flow":
        return ["related: [" + ", ".join(_dq(i) for i in items) + "]"]
    if style == "flow_lines":
        return ["related: ["] + [f"    {_dq(i)}," for i in items] + ["  ]"]
    if style == "commented" and items:  # (a comment after the last item stays outside the key)
        return ["related:", "  # picked by hand"] + [f"  -   {_sq(i)}" for i in items]
    if style == "null":
        return ["related:"]
    return ['related: "[[Only]]"']


SUMMARY_FORMS = [
    ["summary: Plain words here"],
    ["summary: 'It''s: fine'"],
    ['summary: "Quoted \\"x\\" # y"'],
    ["summary: |", "  line one", "  # hash line", "  line two"],
    ["summary: >", "  folded", "  text"],
    ["summary: first part", "  second part"],
    ["summary:"],
    ["summary:", "  - a list"],
    ["summary: A"],
]


@dataclass(frozen=True)
class Note:
    raw: bytes
    kind: str  # "none", "empty" or "full"
    bom: str
    eol: str
    opening: str
    closing: str
    body: str


@st.composite
def notes(draw: st.DrawFn) -> Note:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    kind = draw(st.sampled_from(["none", "empty", "full", "full", "full"]))
    groups = [OTHER_GROUPS[i] for i in draw(st.lists(st.integers(0, len(OTHER_GROUPS) - 1), unique=True))]
    other_keys = bool(groups)
    if draw(st.booleans()):
        style = draw(st.sampled_from(["block", "indentless", "flow", "flow_lines", "commented", "null", "scalar"]))
        groups.append(_related_lines(style, draw(st.lists(st.sampled_from(LINKS), max_size=3))))
    if draw(st.booleans()):
        groups.append(draw(st.sampled_from(SUMMARY_FORMS)))
    groups = draw(st.permutations(groups))
    block_lines: list[str] = []
    for group in groups:
        block_lines += draw(st.sampled_from([[], [], [""], ["# about the next key"]])) + group
    block_lines += draw(st.sampled_from([[], [""], ["# the end"]]))
    body = eol.join(draw(st.lists(st.one_of(st.sampled_from(BODY_LINES), body_text), max_size=6)))
    body += draw(st.sampled_from(["", eol]))
    if kind == "none":
        block_lines, opening, closing = [], "", ""
        if body.startswith("---"):
            body = "Text" + eol + body
    else:
        block_lines = block_lines if kind == "full" else []
        opening = draw(st.sampled_from(["---", "---", "---  ", "---\t"])) + eol
        closing = draw(st.sampled_from(["---", "---", "--- "])) + eol
        # YAML's document end may close the YAML before the block's closing line, comments after it
        # (after a key that stays: ruamel, like the index, refuses a document end with no document before it).
        if other_keys and kind == "full":
            block_lines += draw(st.sampled_from([[], [], ["..."], ["...", "# after the end"]]))
    block = "".join(line + eol for line in block_lines)
    raw = (bom + opening + block + closing + body).encode()
    return Note(raw, kind, bom, eol, opening, closing, body)


BODY_LINES = ["---", "...", "# Heading", "Some text.", "related: body text", "", "  indented", "- item", "[[Link]]"]
body_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\ufeff"), max_size=30)

managed_value = st.one_of(
    st.none(),
    st.lists(link_strategy, max_size=4),
    st.lists(st.sampled_from(LINKS), max_size=3),
    odd_text,
    st.sampled_from(["Plain words here", "It's: fine", "A", "folded text"]),
)
managed_values = st.dictionaries(st.sampled_from(MANAGED), managed_value, min_size=1)


def _split_text(text: str) -> tuple[str, list[str] | None, str]:
    """(prefix before the block, block lines with endings or None, everything after the block)."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    match = re.match(r"---[ \t]*\r?\n", text[len(bom):])
    if not match:
        return bom, None, text[len(bom):]
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text[len(bom) + match.end():])
    for index, line in enumerate(lines):
        if line.rstrip("\r\n").rstrip(" \t") == "---":
            return bom + match.group(), lines[:index], "".join(lines[index:])
    raise AssertionError("no closing line")


def _without_managed_lines(lines: list[str], values: dict | None = None) -> list[str]:
    """Block lines minus each managed key's line and the indented or `- ` lines that follow it.

    A key removed right after a block scalar (`|`, `>`) also takes the blank and
    indented lines after it along, since that scalar would otherwise absorb them.
    """
    values = values or {}
    kept: list[str] = []
    inside = absorbing = after_block_scalar = False
    for line in lines:
        name = line.split(":")[0]
        if name in MANAGED and line.startswith(name + ":"):
            inside, absorbing = True, after_block_scalar and name in values and values[name] is None
            if name in values and values[name] is not None:
                after_block_scalar = False  # rewritten as a one-line value
            elif name not in values:
                after_block_scalar = bool(re.match(r"\w+: [|>]", line))
        elif inside and line.strip() and (line[0] in " \t" or line.startswith("- ")):
            pass
        elif inside and absorbing and (not line.strip() or line[0] in " \t"):
            pass
        else:
            inside = absorbing = False
            if line[:1] not in ("", " ", "\t", "#", "\r", "\n", "-"):
                after_block_scalar = bool(re.match(r"[^:]+: [|>]", line))
            kept.append(line)
    return kept


def _load(lines: list[str] | None) -> dict:
    data = YAML(typ="safe", pure=True).load("".join(lines or []))
    return data or {}


def _expected(value):
    return one_line(value) if isinstance(value, str) else value


@settings(settings.get_profile("frontmatter-property"))
@given(note=notes(), values=managed_values)
def test_property_only_managed_keys_change(note: Note, values: dict) -> None:
    result = set_managed(note.raw, values)
    assert not isinstance(result, Unwritable), result
    text = result.decode("utf-8")
    prefix, lines, after = _split_text(text)
    _, old_lines, old_after = _split_text(note.raw.decode("utf-8"))

    event(f"frontmatter: {note.kind}; result: {'unchanged' if result == note.raw else 'written'}")
    if result == note.raw:
        assert all(read_managed(note.raw, [k]).get(k) == _expected(v) for k, v in values.items())
        return
    # (1) other keys parse equal; (2) managed keys read back as requested
    old, new = _load(old_lines), _load(lines)
    assert {k: v for k, v in old.items() if k not in values} == {k: v for k, v in new.items() if k not in values}
    for key, value in values.items():
        assert new.get(key, "<absent>") == ("<absent>" if value is None else _expected(value))
    # A note without frontmatter and without line breaks gets LF lines.
    eol = note.eol if note.kind != "none" or "\n" in note.body else "\n"
    # (3) bytes outside the managed keys' lines are identical
    if note.kind == "none":
        assert prefix == note.bom + "---" + eol and after.startswith("---" + eol)
        assert _without_managed_lines(lines) == []
    else:
        assert prefix == note.bom + note.opening
        assert _without_managed_lines(lines) == _without_managed_lines(old_lines, values)
        assert after == old_after
    # (4) the body is byte-identical; the line ending is the note's own
    assert text.endswith(note.closing + note.body) if note.kind != "none" else text.endswith(note.body)
    if eol == "\r\n":
        assert re.search(r"(?<!\r)\n", text) is None
    # (5) applying the same values again changes nothing
    assert set_managed(result, values) == result


# Junk frontmatter: lines of YAML-ish fragments and punctuation. Whatever comes in,
# the answer is bytes that read back as asked, or a refusal; never an exception.
JUNK_LINES = [
    "related:", "summary:", "related: [a,", "  b]", "summary: |", "summary: |+", "  text", "  # c", "# c", "",
    "- item", "  - '[[x]]'", "? related", ": x", "<<: *x", "x: &x {related: 1}", "y: &y", "  related: 2",
    "a: 1", "a: *x", "b: *y", "related: *x", "summary: &s text", "t: 'q", "  q'", "n: >-", "  folded",
    "related: []", "summary: \"\"", "{related: 1}", "[1, 2]", "related:\ttab", "k: v # c", "   ",
]
YAML_BITS = ["related", "summary", "a", ":", ": ", " ", "  ", "- ", "[", "]", "{", "}", ",", "&x ", "*x",
             "# c", "|", ">", "'", '"', "? ", "<<: ", "!!str ", "~", "1", "\t", "\\", "...", "%"]
junk_line = st.one_of(st.sampled_from(JUNK_LINES), st.lists(st.sampled_from(YAML_BITS), max_size=8).map("".join))


@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")
@settings(settings.get_profile("frontmatter-fuzz"))
@given(block_lines=st.lists(junk_line, max_size=10), values=managed_values)
def test_property_junk_frontmatter_never_raises(block_lines: list[str], values: dict) -> None:
    raw = ("---\n" + "".join(line + "\n" for line in block_lines) + "---\nBody\n").encode()
    result = set_managed(raw, values)
    event(result.reason.split(":")[0] if isinstance(result, Unwritable) else "written or unchanged")
    if isinstance(result, Unwritable):
        return
    assert result.endswith(b"\n---\nBody\n")
    current = read_managed(result, list(values))
    assert not isinstance(current, Unwritable)
    for key, value in values.items():
        assert current.get(key) == _expected(value)
    assert set_managed(result, values) == result
