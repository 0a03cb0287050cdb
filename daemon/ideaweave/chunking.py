"""Where a note becomes chunks: heading sections, split near a token budget.

A chunk's embedded text is its heading path ("Corrigibility > Shutdown problem") and its section text,
cleaned for the embedder: frontmatter and query code blocks (dataview and the like) removed, links shown
as the words a reader sees. The note's title is left out on purpose: chunks are keyed by the hash of
that text, so renaming or moving a note re-embeds nothing.

Small sections: a section under ``MIN_TOKENS`` merges into the following one while the result fits the
budget, and the merged chunk keeps the first section's heading (the chunk starts there). A heading with
no text of its own directly followed by its sub-section is dropped: its name already leads the
sub-section's heading path. A section still holding nothing but its heading after merging says nothing
its neighbours do not, so it is dropped too, unless it is all the note has.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .vault import MARKDOWN_LINK, WIKILINK, Note

# Code blocks holding queries of Obsidian plugins: their source is not the note's prose.
QUERY_LANGUAGES = frozenset({"dataview", "dataviewjs", "tasks", "query"})
# Below this many tokens a section is too small to stand alone as a chunk.
MIN_TOKENS = 20

# Cut points, coarsest first: blank lines (paragraphs), line breaks, sentence ends, whitespace.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?])[\"')\]]*\s+"),
    re.compile(r"\s+"),
)
_TRAILING_BLANKS = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_BARE_URL = re.compile(r"<?https?://[^\s>]+>?")


@dataclass(frozen=True)
class Chunk:
    note: str
    ordinal: int
    heading_path: tuple[str, ...]  # e.g. ("Corrigibility", "Shutdown problem")
    heading: str | None  # innermost heading, the one to link to as [[Note#Heading]]; None before the first
    start: int  # offsets in Note.text of the chunk's own text
    end: int
    text: str  # what gets embedded: heading path line, then the cleaned section text
    hash: str  # sha256 hex of text


@dataclass(frozen=True)
class _Section:
    path: tuple[str, ...]
    heading: str | None
    level: int  # 0 for the text before the first heading
    start: int  # the heading line
    body: int  # just after the heading line
    end: int


def chunk_note(note: Note, max_tokens: int, count_tokens: Callable[[str], int]) -> list[Chunk]:
    """The chunks to embed for a note, each at most max_tokens (as counted on its embedded text)."""
    if note.is_template or not note.text[note.body_start:].strip():
        return []
    render = _Renderer(note.text, [(b.start, b.end) for b in note.code_blocks if _is_query(b.info)])
    measure = _Measure(render, max_tokens, count_tokens)
    sections = _merge_small(_drop_empty_parents(_sections(note), render), measure)
    pieces = []
    for section in sections:
        context = measure.context_line(section.path)
        fits = functools.partial(measure.fits, context)
        spans = [s for s in _split(note.text, section.body, section.end, fits) if render(*s)]
        if not spans and len(sections) == 1 and context:
            pieces.append((section, section.start, section.body, context))
        for i, (start, end) in enumerate(spans):
            pieces.append((section, section.start if i == 0 else start, end, _embedded(context, render(start, end))))
    return [
        Chunk(note.path, ordinal, section.path, section.heading, start, end, text,
              hashlib.sha256(text.encode("utf-8")).hexdigest())
        for ordinal, (section, start, end, text) in enumerate(pieces)
    ]


def _is_query(info: str) -> bool:
    return (info.split() or [""])[0].lower() in QUERY_LANGUAGES


def _embedded(context: str, body: str) -> str:
    return f"{context}\n\n{body}" if context and body else context or body


def passage(chunk_text: str, heading_path: Sequence[str], limit: int = 300) -> str:
    """What a chunk shows a reader: its text without the heading-path line that `_embedded` put before it
    (a chunk before the first heading has none), on one line, cut at a word boundary."""
    parts = chunk_text.split("\n\n", 1)
    body = " ".join((parts[1] if heading_path and len(parts) == 2 else chunk_text).split())
    return body if len(body) <= limit else body[:limit].rsplit(" ", 1)[0] + "…"


class _Renderer:
    """The embedded form of a span of the note's text (query blocks cut out, links made readable)."""

    def __init__(self, text: str, removed: list[tuple[int, int]]):
        self.text, self.removed = text, sorted(removed)
        self._rendered: dict[tuple[int, int], str] = {}  # sections are measured several times

    def __call__(self, start: int, end: int) -> str:
        if (start, end) not in self._rendered:
            self._rendered[start, end] = self._render(start, end)
        return self._rendered[start, end]

    def _render(self, start: int, end: int) -> str:
        parts, pos = [], start
        for cut_start, cut_end in self.removed:
            if cut_end <= pos or cut_start >= end:
                continue
            parts.append(self.text[pos:max(cut_start, pos)])
            pos = max(pos, cut_end)
        if pos < end:
            parts.append(self.text[pos:end])
        return readable("".join(parts))


def readable(markdown: str) -> str:
    """Markdown as a reader sees it, for the embedder: [[a/Note|alias]] -> alias, [[a/Note#H]] -> Note > H,
    [text](url) -> text, embeds and bare URLs dropped, runs of blank lines collapsed."""
    text = markdown
    if "[" in text:  # the checks skip regex passes that cannot match: most spans hold no link
        text = MARKDOWN_LINK.sub(lambda m: m.group(2), WIKILINK.sub(wikilink_words, text))
    if "://" in text:
        text = _BARE_URL.sub("", text)
    text = _TRAILING_BLANKS.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def wikilink_words(match: re.Match) -> str:
    """What Obsidian shows for a wikilink match: the alias, else the note's name (and '> heading')."""
    # Plain string work rather than parse_wikilink: this runs on every probe of the budget search.
    if match.group(1):  # an embed shows another file's content, not words of this note
        return ""
    target, bar, alias = match.group(2).replace("\\|", "|").partition("|")
    if bar and alias.strip():
        return alias.strip()
    name, _, heading = target.rstrip("\\").partition("#")
    name = name.rsplit("/", 1)[-1].strip()
    heading = "" if heading.startswith("^") else heading.strip()
    return f"{name} > {heading}" if name and heading else name or heading


class _Measure:
    """Token counting against the budget."""

    def __init__(self, render: _Renderer, max_tokens: int, count_tokens: Callable[[str], int]):
        self.render, self.max_tokens, self.count = render, max_tokens, count_tokens
        self.small = min(MIN_TOKENS, max_tokens // 4)

    def tokens(self, context: str, start: int, end: int) -> int:
        return self.count(_embedded(context, self.render(start, end)))

    def fits(self, context: str, start: int, end: int) -> bool:
        return self.tokens(context, start, end) <= self.max_tokens

    def context_line(self, path: tuple[str, ...]) -> str:
        """The heading path line, kept to half the budget (outer headings go first, then words)."""
        parts = [readable(h) for h in path if readable(h)]
        limit = self.max_tokens // 2
        while len(parts) > 1 and self.count(" > ".join(parts)) > limit:
            parts.pop(0)
        line = " > ".join(parts)
        if line and self.count(line) > limit:
            words = line.split()
            line = " ".join(words[:_longest_fitting(len(words), lambda k: self.count(" ".join(words[:k])) <= limit)])
        return line


def _sections(note: Note) -> list[_Section]:
    """The text before the first heading, then one section per heading, with its heading path."""
    headings = sorted(note.headings, key=lambda h: h.start)
    first = headings[0].start if headings else len(note.text)
    sections = [_Section((), None, 0, note.body_start, note.body_start, first)] if note.body_start < first else []
    stack = []
    for i, heading in enumerate(headings):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        end = headings[i + 1].start if i + 1 < len(headings) else len(note.text)
        sections.append(_Section(tuple(h.text for h in stack), heading.text, heading.level, heading.start, heading.end, end))
    return sections


def _drop_empty_parents(sections: list[_Section], render: _Renderer) -> list[_Section]:
    """Drop a heading with no text of its own that its sub-section directly follows, and empty preambles."""
    kept = []
    for i, section in enumerate(sections):
        empty = not render(section.body, section.end)
        followed_by_child = i + 1 < len(sections) and sections[i + 1].level > section.level
        if empty and (section.heading is None or followed_by_child):
            continue
        kept.append(section)
    return kept


def _merge_small(sections: list[_Section], measure: _Measure) -> list[_Section]:
    """Merge each section under the small-section size into the following ones while the result fits."""
    merged, i = [], 0
    while i < len(sections):
        current = sections[i]
        context = measure.context_line(current.path)
        while (i + 1 < len(sections) and measure.tokens(context, current.body, current.end) < measure.small
               and measure.fits(context, current.body, sections[i + 1].end)):
            i += 1
            current = _Section(current.path, current.heading, current.level, current.start, current.body, sections[i].end)
        if measure.render(current.body, current.end) or len(sections) == 1:
            merged.append(current)
        i += 1
    return merged


def _split(text: str, start: int, end: int, fits: Callable[[int, int], bool], level: int = 0) -> list[tuple[int, int]]:
    """Spans covering text[start:end], each fitting, cut at the coarsest boundaries that allow it."""
    start, end = _trim(text, start, end)
    if start >= end:
        return []
    if fits(start, end):
        return [(start, end)]
    if level == len(_BOUNDARIES):
        return _cut_characters(start, end, fits)
    cuts = [m.end() for m in _BOUNDARIES[level].finditer(text, start, end) if start < m.end() < end]
    if not cuts:
        return _split(text, start, end, fits, level + 1)
    units = list(zip([start, *cuts], [*cuts, end]))
    spans, i, n = [], 0, 1
    while i < len(units):
        n = _longest_fitting(len(units) - i, lambda k: fits(units[i][0], units[i + k - 1][1]), guess=n)
        if n == 0:  # this unit alone is over budget: cut it finer
            spans += _split(text, *units[i], fits, level + 1)
            i, n = i + 1, 1
        else:
            spans.append(_trim(text, units[i][0], units[i + n - 1][1]))
            i += n
    return [span for span in spans if span[0] < span[1]]


def _cut_characters(start: int, end: int, fits: Callable[[int, int], bool]) -> list[tuple[int, int]]:
    """A single word longer than the budget: cut it where the budget ends."""
    spans, n = [], 1
    while start < end:
        n = max(1, _longest_fitting(end - start, lambda k: fits(start, start + k), guess=n))
        spans.append((start, start + n))
        start += n
    return spans


def _longest_fitting(limit: int, fits: Callable[[int], bool], guess: int = 1) -> int:
    """The largest k <= limit with fits(k), for fits true up to some k and false after.

    The search gallops outwards from ``guess`` (steps 1, 2, 4, ...) then bisects: with the previous
    piece's size as the guess, a piece costs a few probes, each about the size of the piece itself,
    so splitting a huge section costs a small multiple of counting it once.
    """
    if limit < 1:
        return 0
    guess = min(max(guess, 1), limit)
    step = 1
    if fits(guess):
        good = guess
        while good + step <= limit and fits(good + step):
            good, step = good + step, step * 2
        bad = min(good + step, limit + 1)
    else:
        bad = guess
        while bad - step >= 1 and not fits(bad - step):
            bad, step = bad - step, step * 2
        good = max(bad - step, 0)  # 0 stands for "nothing fits", true by definition
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
