"""Summaries of notes: extractive (the note's own sentences, ranked) and abstractive (a small text model).

The extractive summary is the default because it is faithful by construction: it picks the sentences
closest to the note's centre of meaning and shows them in the note's order, links rendered as the
words a reader sees. The abstractive summary asks a GGUF instruct model for one or two sentences and
keeps its answer only when :func:`acceptable_llm_summary` finds nothing wrong with it; otherwise the
caller's fallback (the extractive summary) is used. Caching by content hash is the store's business:
apart from the model calls everything here is pure.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt

from .chunking import wikilink_words
from .embedding import Embedder, file_model_id, route_llama_logs
from .errors import ModelError
from .vault import MARKDOWN_LINK, WIKILINK, Note

log = logging.getLogger(__name__)

ELLIPSIS = "…"
# A sentence needs this many words to be a candidate for the summary (when enough others qualify).
MIN_CANDIDATE_WORDS = 5
# Similarity to the note's centroid decides; similarity to the title counts for this share of it
# (titles name the topic, but a sentence that only repeats the title says little)...
TITLE_WEIGHT = 0.2
# ...and an early sentence gets up to this much more, because notes tend to say what they are about
# first. Small next to typical centroid gaps (0.1 to 0.3).
POSITION_BONUS = 0.05
# Sentences considered for a summary, from the start of the note (about 15 pages of prose).
MAX_SENTENCES = 400
# A candidate this similar to one already chosen repeats it: the next one is taken instead.
REDUNDANT_SIMILARITY = 0.85

# Block structure only (paragraphs, lists, tables, fences); inline syntax is rendered by hand below.
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable("inline")
# Text that Obsidian does not show: %% comments %%, <!-- comments -->, $$ display math $$. Display math
# ends at a blank line: an unclosed $$ must not swallow the headings and paragraphs after it.
_HIDDEN = re.compile(r"%%.*?%%|<!--.*?-->|\$\$(?:(?!\n[ \t]*\r?\n).)*?\$\$", re.DOTALL)
# A line's block markers (quote, list item, heading), then the rest of the line.
_HIDDEN_LINE = re.compile(r"(^|(?<=[\r\n]))([ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+|#{1,6}(?:[ \t]+|(?=[\r\n]|$)))?)([^\r\n]*)")
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
_CLOSERS = "\"'”’)]*_ "
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
    text = _hide(note.text, [m.span() for m in _HIDDEN.finditer(note.text, note.body_start)])
    found = []
    for lines in _prose_paragraphs(text, note.body_start):
        joined, offsets = _join_lines(lines)
        for start, end in _sentence_spans(joined):
            plain = balance_quotes(render_inline(joined[start:end]))
            if any(c.isalnum() for c in plain):
                found.append(Sentence(plain, offsets[start], offsets[end - 1] + 1))
    return found


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
    link_words = sum(len(_WORD.findall(render_inline(m.group()))) for m in links)
    other_words = len(_WORD.findall(_without_links(content)))
    return other_words <= max(3, link_words)


def _without_links(text: str) -> str:
    return _TAG.sub("", _URL.sub("", MARKDOWN_LINK.sub("", WIKILINK.sub("", text))))


def _is_metadata_line(line: str) -> bool:
    """Lines that are not prose: only links/embeds/tags, "See also: [[...]]", callout titles, inline fields."""
    if _CALLOUT_TITLE.match(line) or _INLINE_FIELD.match(line):
        return True
    rest = _without_links(line)
    words = _WORD.findall(rest)
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


def _sentence_spans(text: str) -> list[tuple[int, int]]:
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


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


# ------------------------------------------------------------------ extractive summary


def summarize_extractive(
    note: Note, embedder: Embedder, sentences: int = 2, min_words: int = 30, max_chars: int = 300
) -> str | None:
    """The note's most central sentences, in the note's order, at most max_chars long.

    None for templates and for notes with fewer than min_words words of prose: there is nothing there
    that a summary would shorten.
    """
    if note.is_template:
        return None
    # A book-length note is summarised from its opening: ranking every sentence of a megabyte of text
    # would hold up every other note for minutes.
    found = sentences_of(note)[:MAX_SENTENCES]
    if not found or sum(word_count(s.text) for s in found) < min_words:
        return None
    # One call for everything: the embedder batches the texts.
    vectors = embedder.embed([s.text for s in found] + [note_title(note)])
    ranked = rank_sentences(vectors[:-1], _sections(note, found), _candidates(found, sentences), vectors[-1])
    chosen = sorted(_pick(ranked, vectors, sentences))  # back to the note's order
    if not chosen:
        return None
    rank = {i: r for r, i in enumerate(ranked)}
    return fit_length([found[i].text for i in chosen], [rank[i] for i in chosen], max_chars)


def note_title(note: Note) -> str:
    """The title a reader knows the note by: a frontmatter title, else the file name."""
    title = note.frontmatter.get("title")
    return title.strip() if isinstance(title, str) and title.strip() else note.title


def _sections(note: Note, found: Sequence[Sentence]) -> list[int]:
    """For each sentence, the number of headings before it: its section."""
    starts = sorted(h.start for h in note.headings)
    return [bisect.bisect_right(starts, s.start) for s in found]


def _candidates(found: Sequence[Sentence], wanted: int) -> list[int]:
    """The sentences fit to stand in a summary, from the strictest test that enough of them pass:
    complete statements of some length, then statements of some length, then statements, then all.
    List fragments ("generally smaller messages") and questions make poor summaries."""
    long_statements = [
        i for i, s in enumerate(found) if word_count(s.text) >= MIN_CANDIDATE_WORDS and not _is_question(s.text)
    ]
    tiers = (
        [i for i in long_statements if _is_complete(found[i].text)],
        long_statements,
        [i for i, s in enumerate(found) if not _is_question(s.text)],
    )
    return next((tier for tier in tiers if len(tier) >= wanted), list(range(len(found))))


def _is_question(text: str) -> bool:
    return text.rstrip(_CLOSERS).endswith("?")


def _is_complete(text: str) -> bool:
    """Starts like a sentence and ends with a full stop."""
    return not text[0].islower() and text.rstrip(_CLOSERS)[-1:] in (".", "!", "…")


def rank_sentences(
    vectors: np.ndarray, sections: Sequence[int], candidates: Sequence[int], title: np.ndarray | None = None
) -> list[int]:
    """Candidate indices, most central first.

    Centrality is a sentence's cosine similarity to the note's centroid, which is also its mean
    similarity to the other sentences (its weighted degree in the sentence-similarity graph). The
    centroid averages the sections' own centroids, so one long section does not outvote the others and
    a summary of a note with a short introduction and a long digression still speaks of the whole. To
    that come a share of the sentence's similarity to the title and a small bonus for coming early.
    """
    n = len(vectors)
    by_section: dict[int, list[int]] = {}
    for i, section in enumerate(sections):
        by_section.setdefault(section, []).append(i)
    centroid = np.mean([_unit(vectors[rows].mean(axis=0)) for rows in by_section.values()], axis=0)
    score = vectors @ _unit(centroid)
    if title is not None:
        score = score + TITLE_WEIGHT * (vectors @ title)
    score = score + POSITION_BONUS * (1 - np.arange(n) / max(n - 1, 1))
    return sorted(candidates, key=lambda i: (-float(score[i]), i))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _pick(ranked: list[int], vectors: np.ndarray, wanted: int) -> list[int]:
    """The best-ranked sentences that do not repeat a chosen one, in rank order."""
    chosen: list[int] = []
    for i in ranked:
        if len(chosen) == wanted:
            break
        if all(float(vectors[i] @ vectors[j]) < REDUNDANT_SIMILARITY for j in chosen):
            chosen.append(i)
    return chosen


def fit_length(texts: Sequence[str], ranks: Sequence[int], max_chars: int) -> str:
    """The texts joined in their order, lowest rank (largest number) dropped first until they fit in
    max_chars; if even the best alone does not fit, it is cut at a word boundary, ending in an ellipsis."""
    kept = sorted(range(len(texts)), key=lambda i: ranks[i])
    while len(kept) > 1 and len(" ".join(texts[i] for i in sorted(kept))) > max_chars:
        kept.pop()
    joined = " ".join(texts[i] for i in sorted(kept))
    return joined if len(joined) <= max_chars else cut_at_word(joined, max_chars)


def cut_at_word(text: str, max_chars: int) -> str:
    """text cut to at most max_chars at a word boundary (inside a single overlong word if need be), plus "…"."""
    if len(text) <= max_chars:
        return text
    room = max_chars - len(ELLIPSIS)
    cut = text[:room + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > 0 else cut[:room]
    return cut.rstrip(" ,;:-–—") + ELLIPSIS


# ------------------------------------------------------------------ abstractive summary

SYSTEM_PROMPT = (
    "You summarise a person's note. Use only what the note says; add nothing. "
    "Answer with one or two short sentences and no preamble."
)
USER_PROMPT = "Note title: {title}\n\n{text}\n\nSummarise this note in one or two sentences."
# What the model is told, without the note: an answer repeating it has not summarised anything.
INSTRUCTIONS = SYSTEM_PROMPT + "\n" + USER_PROMPT.format(title="", text="")

# An answer that copies this share of a sentence or line of the note verbatim is an extract, and a
# worse one than the extractive summary's (small models copy the first line they see).
MAX_COPIED_SHARE = 0.8
# Word runs this long that also appear in the instructions mean the model is echoing them.
ECHO_WORDS = 5
# Below this share of words found in the note, an answer is more the model's than the note's: on
# sample notes, fluent summaries made up around a note's topic scored 0.4 to 0.64, faithful
# paraphrases 0.67 and more.
MIN_SUPPORTED_SHARE = 0.65
_COMMON_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those which who whom what when where how why not no so than then there their they them he she his "
    "her we our you your i my me do does did done has have had can could will would should may might must also "
    "into about over under such very more most other some any each both all own same just only up out while "
    "note notes text author idea ideas concept concepts discusses discuss describes describe explains explain "
    "explores explore highlights highlight argues argue suggests suggest summary overall".split()
)
_PARAGRAPH_END = re.compile(r"\w[^\n]*\n\s*\n")
_LINE_MARKER = re.compile(r"^\s*(?:[-*+•]\s+|\d+[.)]\s+|#+\s+|>\s*)*")
_PREAMBLES = (
    re.compile(r"^(?:sure|certainly|of course|okay|ok)\b[^.:!\n]*[.:!]\s*", re.IGNORECASE),
    re.compile(r"^(?:here(?:'s| is) )?(?:a |the |my )?(?:short |brief |one-sentence )?summary\b[^:\n]*:\s*",
               re.IGNORECASE),
    re.compile(r"^(?:in summary|to summari[sz]e|in short|tl;?dr)\b[,:]?\s*", re.IGNORECASE),
    re.compile(r"^(?:this|the) (?:note|text|passage|article|document)(?: (?:is about|is on|is))?\s+", re.IGNORECASE),
)


def clean_llm_output(output: str, max_chars: int = 300) -> str:
    """The model's answer as a summary: its first paragraph without preambles ("Summary:", "This note
    ...") or markdown, at most two sentences, the second dropped if both do not fit in max_chars."""
    lines = [_LINE_MARKER.sub("", line).strip() for line in output.strip().splitlines()]
    lines = [line for line in lines if line]
    while lines and lines[0].endswith(":") and len(lines) > 1:  # "Here is a summary of the note:"
        lines.pop(0)
    text = render_inline(lines[0]) if lines else ""
    for preamble in _PREAMBLES:
        text = preamble.sub("", text)
    text = balance_quotes(text)
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    spans = _sentence_spans(text)[:2]
    if len(spans) == 2 and spans[1][1] > max_chars:
        spans.pop()
    return text[:spans[-1][1]] if spans else text


def acceptable_llm_summary(output: str, note_text: str, prompt: str, max_chars: int = 300) -> bool:
    """Is a (cleaned) model answer fit to stand as the note's summary?

    Not when it is empty or has no letters, is longer than max_chars, echoes the prompt's instructions,
    copies most of one of the note's lines or sentences verbatim, says the same thing twice, names a
    number or a proper noun the note does not contain, or uses mostly words the note does not (small
    models make up dates and names, and fluent generalities around the note's topic).
    """
    if not any(c.isalpha() for c in output) or len(output) > max_chars:
        return False
    words = _plain_words(output)
    if _longest_common_run(words, _plain_words(prompt)) >= min(ECHO_WORDS, len(words)):
        return False
    for unit in _units(note_text):
        unit_words = _plain_words(unit)
        if len(unit_words) < ECHO_WORDS:
            continue
        copied = _longest_common_run(words, unit_words)
        if copied >= MAX_COPIED_SHARE * len(unit_words) or copied >= MAX_COPIED_SHARE * len(words):
            return False
    return (not _repeats_itself(output) and not _unsupported_names(output, note_text)
            and supported_share(output, note_text) >= MIN_SUPPORTED_SHARE)


def _repeats_itself(output: str) -> bool:
    """The same run of words twice, or two sentences sharing most of their words: a model in a loop."""
    words = _plain_words(output)
    runs = [tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)]
    if len(set(runs)) < len(runs):
        return True
    sentences = [_plain_words(output[a:b]) for a, b in _sentence_spans(output)]
    return any(
        _longest_common_run(first, second) >= 0.5 * min(len(first), len(second))
        for n, first in enumerate(sentences) for second in sentences[n + 1:]
        if first and second
    )


def _unsupported_names(output: str, note_text: str) -> list[str]:
    """Numbers and names (capitalised words not opening a sentence) of the output that the note lacks."""
    known = {_base_word(w) for w in _WORD.findall(render_inline(note_text))}
    return [word for word, named in _words_and_names(output) if named and _base_word(word) not in known]


def supported_share(output: str, note_text: str) -> float:
    """The share of the output's ordinary words that the note also uses (compared by their first five
    letters, a crude stem: "corrigible" matches "corrigibility"). Left out: names and numbers, checked
    on their own and easy to copy around a made-up claim, function words, and the words any summary
    uses ("idea", "discusses")."""
    known = {w.lower()[:5] for w in _WORD.findall(render_inline(note_text))}
    content = [w.lower() for w, named in _words_and_names(output) if not named and w.lower() not in _COMMON_WORDS]
    if not content:
        return 0.0
    return sum(w[:5] in known for w in content) / len(content)


def _words_and_names(text: str) -> Iterator[tuple[str, bool]]:
    """Each word, and whether it is a number or a name (capitalised, not opening a sentence)."""
    for a, b in _sentence_spans(text):
        for n, word in enumerate(_WORD.findall(text[a:b])):
            yield word, any(c.isdigit() for c in word) or (n > 0 and word[0].isupper() and word != "I")


def _base_word(word: str) -> str:
    word = word.lower()
    return word[:-2] if word.endswith(("'s", "’s")) else word


def _units(note_text: str) -> Iterator[str]:
    """The lines of a text and the sentences of each line."""
    for line in note_text.splitlines():
        if line.strip():
            yield line
            spans = _sentence_spans(line)
            if len(spans) > 1:
                yield from (line[a:b] for a, b in spans)


def _plain_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(render_inline(text))]


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of words that a and b share (dynamic programming, O(len(a)·len(b)))."""
    best, previous = 0, [0] * (len(b) + 1)
    for word in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def prompt_text(note: Note) -> str:
    """What the model reads of a note: its prose, one paragraph per line, links as words."""
    paragraphs: list[list[str]] = []
    last_end = -1
    for sentence in sentences_of(note):
        gap = note.text[last_end:sentence.start] if last_end >= 0 else "\n\n"
        if "\n" in gap or not paragraphs:
            paragraphs.append([])
        paragraphs[-1].append(sentence.text)
        last_end = sentence.end
    return "\n".join(" ".join(p) for p in paragraphs)


class LlmSummarizer:
    """Summaries written by a GGUF instruct model (SmolLM2-135M-Instruct by default), checked, with the
    extractive summary as the fallback.

    llama.cpp is driven through llama-cpp-python's low-level API, as in the embedder: ``Llama`` builds
    its model parameters inside its constructor and loads the model at once, so there is no way to turn
    off the repacked/AMX CPU kernels ("extra buffer types") that die with SIGILL on some virtual
    machines, and no ``kv_overrides`` key does it either. The generation loop it would run for us is
    a dozen lines: decode the prompt, then take the most likely token until an end token or the limit.
    """

    def __init__(self, model_path: Path, threads: int = 1, max_chars: int = 300, min_words: int = 30,
                 max_new_tokens: int = 80, n_ctx: int = 2048):
        import llama_cpp
        from llama_cpp import _internals

        route_llama_logs()
        self.path = Path(model_path)
        self.max_chars, self.min_words, self.max_new_tokens = max_chars, min_words, max_new_tokens
        self._lock = threading.Lock()  # one llama context is not safe to use from two threads
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = False  # see the class docstring
        try:
            self._model = _internals.LlamaModel(path_model=str(self.path), params=params, verbose=False)
        except (ValueError, OSError) as exc:
            raise ModelError(f"{self.path}: llama.cpp cannot load this model: {exc}") from None
        self._template = llama_cpp.llama_model_chat_template(self._model.model, None)
        if not self._template:
            self._model.close()
            raise ModelError(f"{self.path}: the model has no chat template; summaries need an instruct model")
        self.n_ctx = min(n_ctx, self._model.n_ctx_train())
        self._ctx = self._new_context(threads)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_ctx, embd=0, n_seq_max=1, verbose=False)
        self._sampler = _internals.LlamaSampler()
        self._sampler.add_greedy()  # temperature 0: the same note always gets the same summary
        self.model_id = file_model_id(self.path)

    def _new_context(self, threads: int):
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = self.n_ctx  # the whole prompt goes in one decode call
        params.n_ubatch = min(512, self.n_ctx)
        params.n_threads = params.n_threads_batch = threads
        try:
            return _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except (ValueError, OSError) as exc:
            raise ModelError(f"{self.path}: llama.cpp cannot create a context: {exc}") from None

    def summarize(self, note: Note, fallback: Callable[[], str | None]) -> tuple[str | None, str]:
        """(summary, source): the model's summary and "llm", or fallback() and "extractive" when the note
        is a template or too short to summarise, or the model's answer is not acceptable."""
        text = prompt_text(note)
        if note.is_template or word_count(text) < self.min_words:
            return fallback(), "extractive"
        title = note_title(note)
        answer = clean_llm_output(self.generate(self.chat_prompt(title, text)), self.max_chars)
        if acceptable_llm_summary(answer, f"{title}\n{text}", INSTRUCTIONS, self.max_chars):
            return answer, "llm"
        log.debug("%s: the model's summary was not used (%d characters)", note.path, len(answer or ""))
        return fallback(), "extractive"

    def chat_prompt(self, title: str, text: str) -> str:
        """The request for a summary in the model's chat format, the note's text cut at a token so that
        the prompt and the answer fit in the context."""
        frame = self.count_tokens(self._chat(SYSTEM_PROMPT, USER_PROMPT.format(title=title, text="")))
        budget = self.n_ctx - self.max_new_tokens - frame - 8  # 8: tokens may merge differently at the cut
        tokens = self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) > budget:
            text = self._model.detokenize(tokens[:max(budget, 0)]).decode("utf-8", "ignore")
        return self._chat(SYSTEM_PROMPT, USER_PROMPT.format(title=title, text=text))

    def count_tokens(self, prompt: str) -> int:
        return len(self._tokens(prompt))

    def generate(self, prompt: str) -> str:
        """The model's greedy answer to a chat-formatted prompt: up to an end token, a blank line after
        some text (only the first paragraph is used), or max_new_tokens."""
        import llama_cpp

        tokens = self._tokens(prompt)
        room = min(self.max_new_tokens, self.n_ctx - len(tokens))
        if room <= 0:
            raise ModelError(f"{self.path}: a prompt of {len(tokens)} tokens does not fit a context of {self.n_ctx}")
        with self._lock:
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx.ctx), True)
            self._sampler.reset()
            answer: list[int] = []
            self._decode(tokens, 0)
            for position in range(len(tokens), len(tokens) + room):
                token = self._sampler.sample(self._ctx, -1)  # also records the token in the sampler
                if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                    break
                answer.append(token)
                if b"\n" in self._model.token_to_piece(token) and _PARAGRAPH_END.search(self._text(answer)):
                    break
                self._decode([token], position)
        return self._text(answer)

    def _text(self, tokens: list[int]) -> str:
        return self._model.detokenize(tokens).decode("utf-8", "replace")

    def _decode(self, tokens: list[int], position: int) -> None:
        import llama_cpp

        self._batch.set_batch(tokens, n_past=position, logits_all=False)  # logits of the last token only
        code = llama_cpp.llama_decode(self._ctx.ctx, self._batch.batch)
        if code != 0:
            raise ModelError(f"{self.path}: llama.cpp failed to generate (code {code})")

    def _chat(self, system: str, user: str) -> str:
        """The prompt in the model's own chat format, ending where the assistant's answer begins."""
        import llama_cpp

        contents = [("system", system), ("user", user)]
        messages = (llama_cpp.llama_chat_message * len(contents))()
        encoded = [(role.encode("utf-8"), content.encode("utf-8")) for role, content in contents]
        for message, (role, content) in zip(messages, encoded):
            message.role, message.content = role, content
        size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
        buffer = ctypes.create_string_buffer(size)
        length = llama_cpp.llama_chat_apply_template(self._template, messages, len(contents), True, buffer, size)
        if length > size:  # the template needed more room than guessed
            size = length
            buffer = ctypes.create_string_buffer(size)
            length = llama_cpp.llama_chat_apply_template(self._template, messages, len(contents), True, buffer, size)
        if length < 0:
            raise ModelError(f"{self.path}: llama.cpp does not know this model's chat template")
        return buffer.raw[:length].decode("utf-8", "replace")

    def _tokens(self, prompt: str) -> list[int]:
        # special=True: the chat template's markers (<|im_start|>) are special tokens, not text.
        return self._model.tokenize(prompt.encode("utf-8"), add_bos=self._model.add_bos_token(), special=True)

    def close(self) -> None:
        for part in (self._sampler, self._batch, self._ctx, self._model):
            part.close()
