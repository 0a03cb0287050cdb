"""A note's prose, sentence by sentence: what a reader sees of it, as plain text.

`sentences_of` keeps the paragraphs, list items and block quotes that are prose, and leaves out
frontmatter, headings, code, tables, display math, comments, link lists and lines of nothing but
links or tags; `render_inline` turns the inline markdown of what is left into the words a reader sees
(links as their text, no markers). Sentence offsets point back into the note's markdown. Everything
here is pure; the summaries (`summarize`) are built on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt

from .chunking import wikilink_words
from .vault import MARKDOWN_LINK, WIKILINK, Note

# Block structure only (paragraphs, lists, tables, fences); inline syntax is rendered by hand below.
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable("inline")
# Text that Obsidian does not show: %% comments %%, <!-- comments -->, $$ display math $$. Display math
# ends at a blank line: an unclosed $$ must not swallow the headings and paragraphs after it.
_HIDDEN = re.compile(r"%%.*?%%|<!--.*?-->|\$\$(?:(?!\n[ \t]*\r?\n).)*?\$\$", re.DOTALL)
# A line's block markers (quote, list item, heading), then the rest of the line.
_HIDDEN_LINE = re.compile(r"(^|(?<=[\r\n]))([ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+|#{1,6}(?:[ \t]+|(?=[\r\n]|$)))?)([^\r\n]*)")
_NOT_A_LINE_BREAK = re.compile(r"[^\r\n]")
_HIDDEN_MARK = "\ue000"  # a private-use character: neither a word nor space nor markup to the parsers
_CALLOUT_TITLE = re.compile(r"^\[!\w[\w-]*\][+-]?")
_INLINE_FIELD = re.compile(r"^[\w -]{1,40}::")  # dataview's "key:: value" lines are data, not prose
_TAG_NAME = r"[\w/-]*[^\W\d_][\w/-]*"  # "#123" is not a tag in Obsidian
_TAG = re.compile(rf"(?<!\S)#({_TAG_NAME})")
_TRAILING_TAGS = re.compile(rf"(?:(?:^|\s)#{_TAG_NAME})+\s*$")
_URL = re.compile(r"<?\b(?:https?|ftp)://[^\s>)]+>?")
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_FOOTNOTE = re.compile(r"\[\^[^\]\s]+\]|\^\[[^\]]*\]")
_EMPHASIS = (
    re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"),
    re.compile(r"(~~|==)(?=\S)(.+?)(?<=\S)\1"),
    re.compile(r"(?<![\w*\\])(\*)(?=[^\s*])(.+?)(?<=[^\s*\\])\*(?![\w*])"),
    re.compile(r"(?<![\w\\])(_)(?=[^\s_])(.+?)(?<=[^\s_\\])_(?!\w)"),  # snake_case and U_N stay as they are
)
_STRAY_MARKERS = re.compile(r"(?<!\\)(?:\*\*|~~)")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?)\]])")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")


@dataclass(frozen=True)
class Sentence:
    text: str  # plain text as a reader sees it: links as their words, no markdown markers
    start: int  # offsets in Note.text of the markdown the sentence comes from
    end: int


# ------------------------------------------------------------------ sentences (pure)


def sentences_of(note: Note) -> list[Sentence]:
    """The note's prose, sentence by sentence, in order.

    Left out: frontmatter, headings, code, tables, display math, comments, lists made mostly of links,
    and lines holding nothing but links, embeds or tags. Block quotes and list items count as prose.
    """
    return list(iter_sentences(note))


def iter_sentences(note: Note) -> Iterator[Sentence]:
    """`sentences_of`, one sentence at a time: a reader that needs only the first few renders only those."""
    # A %% or <!-- inside a fenced block is code, not the edge of a comment: an unclosed one before a
    # fence must not pair with one inside it and hide the fence's opening line.
    text = _hide(note.text, [m.span() for m in _HIDDEN.finditer(_without_code(note), note.body_start)])
    for lines in _prose_paragraphs(text, note.body_start):
        joined, offsets = _join_lines(lines)
        for start, end in sentence_spans(joined):
            plain = balance_quotes(render_inline(joined[start:end]))
            if any(c.isalnum() for c in plain):
                yield Sentence(plain, offsets[start], offsets[end - 1] + 1)


def _without_code(note: Note) -> str:
    """The note's text with its fenced blocks blanked (line breaks kept, so offsets stay)."""
    pieces, pos = [], 0
    for block in sorted(note.code_blocks, key=lambda b: b.start):
        if block.start >= pos:
            pieces += [note.text[pos:block.start], _NOT_A_LINE_BREAK.sub(" ", note.text[block.start:block.end])]
            pos = block.end
    return "".join(pieces) + note.text[pos:]


def render_inline(markdown: str) -> str:
    """Inline markdown as plain text: [[Note|alias]] -> alias, [[Note]] -> Note, [text](url) -> text,
    **bold** -> bold, `code` -> code; embeds, images, footnote marks, HTML tags and URLs dropped."""
    pieces, pos = [], 0
    for m in _CODE.finditer(markdown):  # code is kept verbatim: no markup inside it is rendered
        pieces += [_render_markup(markdown[pos:m.start()]), m.group(2).strip()]
        pos = m.end()
    pieces.append(_render_markup(markdown[pos:]))
    plain = " ".join("".join(pieces).replace(_HIDDEN_MARK, " ").split())
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", plain).strip()


def balance_quotes(text: str) -> str:
    """Drop a quotation mark left alone at either end, as when a quote spans two sentences, and quotes
    wrapped around the whole text."""
    wrapped = len(text) > 1 and text[0] + text[-1] in ('""', "“”")
    if wrapped and text.count(text[0]) == text.count(text[-1]) == 1 + (text[0] == '"'):
        return text[1:-1].strip()
    if text.count('"') % 2:
        text = text[:-1] if text.endswith('"') else text[1:] if text.startswith('"') else text
    if text.endswith("”") and text.count("”") > text.count("“"):
        text = text[:-1]
    if text.startswith("“") and text.count("“") > text.count("”"):
        text = text[1:]
    return text.strip()


def _render_markup(text: str) -> str:
    if "[" in text:
        text = WIKILINK.sub(wikilink_words, text)
        text = MARKDOWN_LINK.sub(lambda m: "" if m.group(1) else m.group(2), text)
        text = _FOOTNOTE.sub("", text)
    text = _URL.sub("", _HTML_TAG.sub("", text))
    text = _TAG.sub(r"\1", _TRAILING_TAGS.sub("", text))
    for pattern in _EMPHASIS:
        text = pattern.sub(r"\2", text)
    # Bold or strikethrough over several sentences leaves one marker in each: drop the strays.
    return _ESCAPE.sub(r"\1", _STRAY_MARKERS.sub("", text))


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the (sorted, disjoint) spans filled with _HIDDEN_MARK, line breaks kept, so offsets stay
    valid. Not spaces: text after a comment would become indented code. The block markers that start a
    line inside a span (quotes, list items, headings) stay, so that hiding never changes what kind of block
    the rest of the line is in."""
    pieces, pos = [], 0
    for start, end in spans:
        pieces += [text[pos:start], _HIDDEN_LINE.sub(_hide_line, text[start:end])]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _hide_line(m: re.Match) -> str:
    # The first line of a span starts mid-line: its prefix is outside the span, everything is hidden.
    prefix = m.group(2) if m.start() > 0 else _HIDDEN_MARK * len(m.group(2))
    return prefix + _HIDDEN_MARK * len(m.group(3))


# A paragraph as (offset in Note.text, line content) pairs: container markers (">", "- ") stripped.
_Lines = list[tuple[int, str]]


def _prose_paragraphs(text: str, body_start: int) -> Iterator[_Lines]:
    body = text[body_start:]
    line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", body)]
    tokens = _MARKDOWN.parse(body)
    link_lists = _link_lists(tokens)
    lists: list[int] = []  # token indices of the open lists, innermost last
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append(i)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif token.type == "paragraph_open" and token.map and not (lists and lists[-1] in link_lists):
            lines = _paragraph_lines(body, line_starts, token.map, tokens[i + 1].content)
            kept = [(body_start + offset, line) for offset, line in lines if not _is_metadata_line(line)]
            if kept:
                yield kept


def _paragraph_lines(body: str, line_starts: list[int], span: list[int], content: str) -> _Lines:
    """Each line of a paragraph with the offset where its content starts (after '>' or list markers)."""
    contents = content.split("\n")
    lines = []
    for n, line_no in enumerate(range(span[0], span[1])):
        start = line_starts[line_no]
        end = line_starts[line_no + 1] if line_no + 1 < len(line_starts) else len(body)
        raw = body[start:end].rstrip("\r\n")
        line = contents[n].strip() if n < len(contents) else raw.strip()
        # The parser's line is a suffix of the raw line (markers and indentation stripped), except
        # where it expanded a tab: then the content is found by search.
        at = len(raw.rstrip()) - len(line)
        if at < 0 or raw[at:at + len(line)] != line:
            at = max(raw.find(line), 0)
        lines.append((start + at, line))
    return lines


def _link_lists(tokens) -> set[int]:
    """Token indices of the lists most of whose items are links ("See also", tables of contents).

    An item is judged by the paragraph it opens with; an item that is empty or opens with anything else
    (a fence, a heading, a nested list) is not a link item.
    """
    items: dict[int, list[bool]] = {}
    lists: list[int] = []
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append(i)
            items[i] = []
        elif token.type in ("bullet_list_close", "ordered_list_close") and lists:
            lists.pop()
        elif token.type == "list_item_open" and lists:
            opens_with = tokens[i + 1] if i + 2 < len(tokens) else None
            first = opens_with is not None and opens_with.type == "paragraph_open"
            items[lists[-1]].append(first and _is_link_item(tokens[i + 2].content))
    return {i for i, links in items.items() if links and sum(links) * 2 > len(links)}


def _is_link_item(content: str) -> bool:
    """A list item that is a link, perhaps with a few words beside it."""
    links = list(WIKILINK.finditer(content)) + list(MARKDOWN_LINK.finditer(content)) + list(_URL.finditer(content))
    if not links:
        return False
    link_words = sum(len(words_of(render_inline(m.group()))) for m in links)
    other_words = len(words_of(_without_links(content)))
    return other_words <= max(3, link_words)


def _without_links(text: str) -> str:
    return _TAG.sub("", _URL.sub("", MARKDOWN_LINK.sub("", WIKILINK.sub("", text))))


def _is_metadata_line(line: str) -> bool:
    """Lines that are not prose: only links/embeds/tags, "See also: [[...]]", callout titles, inline fields."""
    if _CALLOUT_TITLE.match(line) or _INLINE_FIELD.match(line):
        return True
    rest = _without_links(line)
    words = words_of(rest)
    if not words:
        return True
    had_links = len(rest) < len(line)
    return had_links and len(words) <= 3 and rest.strip(" \t*_").endswith(":")


def _join_lines(lines: _Lines) -> tuple[str, list[int]]:
    """The paragraph's lines joined by newlines, and the Note.text offset of every character."""
    parts, offsets = [], []
    for offset, line in lines:
        if parts:
            parts.append("\n")
            offsets.append(offsets[-1] + 1)
        parts.append(line)
        offsets.extend(range(offset, offset + len(line)))
    return "".join(parts), offsets


# ------------------------------------------------------------------ sentence splitting (pure)

# After these a full stop does not end a sentence (titles, Latin, "et al.").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs cf viz al approx ca incl esp resp ed eds gen gov rep sen lt col sgt "
    "capt rev hon jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# These end no sentence when a number follows ("Fig. 3", "No. 5", "pp. 10-12").
_NUMBER_ABBREVIATIONS = frozenset("no nos fig figs eq eqs sec ch chap vol vols pp p art".split())
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # e.g, i.e, U.S, Ph.D
_SENTENCE_END = re.compile(r"([.!?…。！？]+)([\"'”’)\]*_]*)(\s+)")
_MASKED = re.compile(r"!?\[\[[^\[\]\n]+?\]\]|!?\[[^\[\]\n]*\]\([^)\n]*\)|(`+).+?\1|<?\b(?:https?|ftp)://[^\s>)]+>?")
_CONTINUES = ",;:-–—("  # a line ending in one of these goes on in the next line


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where the sentences of a paragraph are: spans of text, surrounding whitespace excluded.

    A sentence ends at . ! ? (or …) followed by whitespace and something that can start a sentence,
    except after abbreviations, initials ("J. R. R."), dotted forms ("e.g.", "U.S."); decimals have no
    space after the dot. Links, code and URLs are never cut. A line break also ends a sentence unless the
    paragraph is hard-wrapped prose, since Obsidian shows each line of a paragraph on a line of its own.
    """
    masked = _MASKED.sub(lambda m: m.group()[0] + "\0" * (len(m.group()) - 1), text)
    cuts = [m.end(2) for m in _SENTENCE_END.finditer(masked) if _ends_sentence(masked, m)]
    if "\n" in text and not _hard_wrapped(text):
        cuts += [m.start() for m in re.finditer(r"\n", masked) if _line_ends_sentence(masked, m.start())]
    spans, start = [], 0
    for cut in sorted(set(cuts)) + [len(text)]:
        span = _strip_span(text, start, cut)
        if span[0] < span[1]:
            spans.append(span)
        start = cut
    return spans


def _ends_sentence(masked: str, m: re.Match) -> bool:
    following = masked[m.end():m.end() + 1]
    if not following or following.islower() or following in ",;:)]}":
        return False
    if m.group(1) != ".":
        return True
    # Abbreviations are short: a bounded look back keeps a paragraph of many stops linear.
    word = re.split(r"[\s(\[\"'“‘]", masked[max(0, m.start() - 20):m.start()])[-1]
    lower = word.lower()
    if len(word) == 1 and word.isalpha():  # an initial, as in "J. Smith"
        return False
    if lower in _ABBREVIATIONS or _DOTTED.fullmatch(word):
        return False
    return not (lower in _NUMBER_ABBREVIATIONS and following.isdigit())


def _line_ends_sentence(masked: str, newline: int) -> bool:
    before = masked[max(0, newline - 200):newline].rstrip()  # lines are stripped: no long runs of spaces
    after = masked[newline + 1:newline + 200].lstrip()
    return bool(before and after) and before[-1] not in _CONTINUES and not after[0].islower()


def _hard_wrapped(text: str) -> bool:
    """Prose wrapped at a fixed width: every line but the last is long. Such line breaks are spaces."""
    lines = text.split("\n")
    return all(len(line) >= 50 for line in lines[:-1])


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and (text[start].isspace() or text[start] == _HIDDEN_MARK):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] == _HIDDEN_MARK):
        end -= 1
    return start, end


def words_of(text: str) -> list[str]:
    """The words of a text: runs of letters and digits, joined by an apostrophe, a dot or a hyphen
    ("U.S", "don't", "well-known")."""
    return _WORD.findall(text)


def word_count(text: str) -> int:
    return len(words_of(text))
