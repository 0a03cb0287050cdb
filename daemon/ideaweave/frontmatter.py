"""Surgical edits of ideaweave's managed keys in a note's YAML frontmatter.

Tools that load the whole frontmatter and dump it again reorder keys, drop
comments, requote strings and strip whitespace. Users notice, and rightly stop
trusting the tool. So this module never re-dumps YAML: it parses the block with
ruamel.yaml only to *find* the lines that hold a managed key (`related`,
`summary`, ...), replaces exactly those lines with freshly emitted text, and
leaves every other byte alone. Each edit is then checked by parsing the result;
anything that does not verify is refused (an `Unwritable` value, never an
exception), and the note stays as it was.

The frontmatter must be a block-style mapping whose managed keys start at
column 0; that covers what Obsidian and people write, and everything else is
refused rather than guessed at.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

BOM = "\ufeff"
# Where a frontmatter block lies is Obsidian's rule, and the index (vault.py) and this writer share it
# (`find_block`): a `---` line on the very first line opens it, the next `---` line closes it (trailing
# spaces and tabs allowed on both), and lines break at CRLF, LF or a lone CR, as markdown-it counts them.
# `...` closes nothing: Obsidian reads on to the next `---`, so in the block it is YAML's document end.
_OPENING_LINE = re.compile(r"---[ \t]*(\r\n|\r|\n)")
_CLOSING_LINE = re.compile(r"(?:\r\n|\r|\n)(---[ \t]*(?:\r\n|\r|\n|\Z))")
# YAML's document end marker, which may end the block's YAML before its closing `---` line.
_DOCUMENT_END = re.compile(r"\.\.\.(?:[ \t].*)?\r?\n?\Z")

# ruamel counts a lone CR, NEL, LS and PS as line breaks too; splitting lines on
# LF alone would then disagree with its line numbers, so such blocks are refused.
_ODD_LINE_BREAK = re.compile(r"\r(?!\n)|[\x85\u2028\u2029]")
# A run of whitespace holding at least one line break becomes one space.
_LINE_BREAK_RUN = re.compile(r"\s*[\r\n\x85\u2028\u2029]\s*")
# Characters a double-quoted YAML scalar may hold as they are: printable ones
# (YAML 1.2, 5.1) other than `"`, `\`, the byte order mark and the line breaks
# NEL, LS and PS (see above).
_NEEDS_ESCAPE = re.compile(
    r"[^\x20\x21\x23-\x5b\x5d-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_NAMED_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
# Managed keys are emitted bare, so they must be plain words YAML reads as strings.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_RESERVED_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}
# Far beyond any real frontmatter; only an alias bomb gets there.
_MAX_EXPANDED_NODES = 100_000


@dataclass(frozen=True)
class Unwritable:
    """Why a note's frontmatter cannot be read or edited safely (a sentence for the user)."""

    reason: str


@dataclass(frozen=True)
class Block:
    """Where the frontmatter block lies in a note's text (BOM removed): its YAML is text[start:end], its
    closing line text[end:body_start]. A block never closed has end == body_start == len(text) and
    `closed` false; Obsidian, and so the index, then reads the whole text as body."""

    start: int
    end: int
    body_start: int
    closed: bool


def find_block(text: str) -> Block | None:
    """The frontmatter block of a note's text (BOM removed), or None when its first line is no `---` line.

    The one rule for both the index (`vault`) and the writer: the two must never disagree on which lines
    are properties, or a write could turn the user's properties into body text.
    """
    opening = _OPENING_LINE.match(text)
    if opening is None:
        return None
    # The search starts at the opening line's break, so that the very next line may close the block.
    closing = _CLOSING_LINE.search(text, opening.start(1))
    if closing is None:
        return Block(opening.end(), len(text), len(text), closed=False)
    return Block(opening.end(), closing.start(1), closing.end(1), closed=True)


@dataclass(frozen=True)
class NoteParts:
    """A note's text cut into pieces whose concatenation is the text again.

    `opening` and `closing` are the delimiter lines with their line endings
    (`closing` may lack one at the end of the file); both are empty when the
    note has no frontmatter. When the opening line has no closing line,
    `block` holds the rest of the text and `unclosed` is true.
    """

    bom: str
    opening: str
    block: str
    closing: str
    body: str

    @property
    def has_frontmatter(self) -> bool:
        return bool(self.opening)

    @property
    def unclosed(self) -> bool:
        return bool(self.opening) and not self.closing

    @property
    def text(self) -> str:
        return self.bom + self.opening + self.block + self.closing + self.body

    @property
    def line_ending(self) -> str:
        """The line ending new lines should use: the opening line's, else the first one in the text."""
        if self.opening:
            return self.opening[len(self.opening.rstrip("\r\n")):]  # the line break alone
        first_break = self.body.find("\n")
        return "\r\n" if first_break > 0 and self.body[first_break - 1] == "\r" else "\n"


def split_frontmatter(text: str) -> NoteParts:
    """Cut a note into BOM, opening `---` line, YAML block, closing line and body.

    The block is where `find_block` puts it (the index reads the same lines as properties). The body is
    everything after the closing line, untouched.
    """
    bom = BOM if text.startswith(BOM) else ""
    rest = text[len(bom):]
    block = find_block(rest)
    if block is None:
        return NoteParts(bom, "", "", "", rest)
    return NoteParts(bom, rest[:block.start], rest[block.start:block.end], rest[block.end:block.body_start],
                     rest[block.body_start:])


def one_line(text: str) -> str:
    """A summary as it is stored: each line break, with the whitespace around it, becomes one space."""
    return " ".join(piece for piece in _LINE_BREAK_RUN.split(text) if piece)


def read_managed(raw: bytes, keys: Sequence[str]) -> dict[str, object] | Unwritable:
    """The current values of those `keys` the frontmatter has, as plain Python values."""
    read = _read(raw)
    if isinstance(read, Unwritable):
        return read
    _parts, parsed = read
    return {key: _plain(parsed.data[key]) for key in keys if key in parsed.data}


def set_managed(raw: bytes, values: Mapping[str, list[str] | str | None]) -> bytes | Unwritable:
    """The note with each key of `values` set (None removes it); all other bytes stay as they were.

    Returns `raw` itself when every key already holds its value, however it is
    formatted. Strings are stored on one line (see `one_line`).
    """
    wanted = {key: _normalized(key, value) for key, value in values.items()}
    read = _read(raw)
    if isinstance(read, Unwritable):
        return read
    parts, parsed = read
    changes = {k: v for k, v in wanted.items() if not _holds(parsed.data, k, v)}
    if not changes:
        return raw
    if not parts.has_frontmatter:
        # Work as if an empty block were there: the edit and its check are then the same.
        eol = parts.line_ending
        parts = NoteParts(parts.bom, "---" + eol, "", "---" + eol, parts.body)
    plan = _plan_edit(parsed, wanted, changes, parts.line_ending)
    if isinstance(plan, Unwritable):
        return plan
    edited = NoteParts(parts.bom, parts.opening, plan.apply(parsed.lines), parts.closing, parts.body)
    problem = _verify_edit(parts, parsed, plan, edited, wanted)
    if problem is not None:
        return problem
    return edited.text.encode("utf-8")


# --- reading ---------------------------------------------------------------


@dataclass(frozen=True)
class _ParsedBlock:
    """A frontmatter block with its parsed values and the node tree that locates them."""

    lines: tuple[str, ...]
    data: Mapping[str, Any]
    root: MappingNode | None

    @property
    def yaml_end(self) -> int:
        """The line where the YAML ends: a `...` document end line, which only comments may follow before
        the closing `---`, else the end of the block. Keys are written above it, never past it."""
        return next((i for i, line in enumerate(self.lines) if _DOCUMENT_END.match(line)), len(self.lines))


@dataclass(frozen=True)
class _Span:
    """Lines [start, stop) of the block that hold one top-level key and its value."""

    start: int
    stop: int


def _read(raw: bytes) -> tuple[NoteParts, _ParsedBlock] | Unwritable:
    """The note cut into its parts and its frontmatter block parsed, or why that cannot be done."""
    parts = _decode_and_split(raw)
    if isinstance(parts, Unwritable):
        return parts
    parsed = _parse_block(parts.block)
    return parsed if isinstance(parsed, Unwritable) else (parts, parsed)


def _decode_and_split(raw: bytes) -> NoteParts | Unwritable:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Unwritable(f"note is not valid UTF-8 (byte {error.start})")
    parts = split_frontmatter(text)
    if parts.opening.endswith("\r"):
        # New lines take the opening line's ending, and a lone CR is one this parser does not split on.
        return Unwritable("frontmatter uses line breaks other than LF or CRLF")
    if parts.unclosed:
        return Unwritable("frontmatter has no closing --- line")
    return parts


# A sync plans a slice of notes (reading each one's managed keys), then writes them (reading each block
# again, and the edited block to check it): the slice's blocks are parsed once. Nothing changes a parsed
# block: `_plain` copies its values and an edit plans new lines.
PARSED_BLOCKS_KEPT = 64


@functools.lru_cache(maxsize=PARSED_BLOCKS_KEPT)
def _parse_block(block: str) -> _ParsedBlock | Unwritable:
    """Parse a block once, keeping both the node tree (for positions) and the values."""
    if _ODD_LINE_BREAK.search(block):
        return Unwritable("frontmatter uses line breaks other than LF or CRLF")
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(block)
        if root is not None and _expanded_size(root, {}, set()) > _MAX_EXPANDED_NODES:
            return Unwritable("frontmatter aliases refer to themselves or expand to too much data")
        # Constructing from the composed tree saves a second parse (load() would redo it).
        data = yaml.constructor.construct_document(root) if root is not None else {}
    except Exception as error:  # ruamel raises more than YAMLError on hostile input
        return Unwritable(_yaml_problem(error))
    if not isinstance(root, (MappingNode, type(None))) or not isinstance(data, Mapping):
        return Unwritable("frontmatter is not a mapping of keys to values")
    if root is not None and root.flow_style:
        return Unwritable("frontmatter is a {...} flow mapping; only block style is edited")
    return _ParsedBlock(tuple(_lines(block)), data, root)


def _expanded_size(node: Node, sizes: dict[int, int], path: set[int]) -> float:
    """How many nodes the tree holds once aliases are expanded; infinite for a cycle.

    Values are compared by walking them, so a self-referencing alias or an
    alias bomb must be turned away before that.
    """
    if id(node) in path:
        return math.inf
    if id(node) not in sizes:
        path.add(id(node))
        children = node.value if isinstance(node, (MappingNode, SequenceNode)) else []
        flat = [n for pair in children for n in pair] if isinstance(node, MappingNode) else children
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, path) for child in flat)
        path.discard(id(node))
    return sizes[id(node)]


def _yaml_problem(error: Exception) -> str:
    """A one-line reason naming the line of the note (the block starts on its second line)."""
    if isinstance(error, MarkedYAMLError) and error.problem:
        where = f" (line {error.problem_mark.line + 2})" if error.problem_mark else ""
        detail = error.problem + where
    else:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, DuplicateKeyError):
        return f"frontmatter has a duplicate key: {detail}"
    return f"frontmatter is not valid YAML: {detail}"


def _plain(value: Any) -> Any:
    """ruamel's round-trip types as the plain Python values they stand for."""
    if isinstance(value, Mapping):
        return {_plain_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Set):
        return {_plain_key(v) for v in value}
    if isinstance(value, TaggedScalar):
        return value.value
    if isinstance(value, ScalarBoolean):  # an int subclass, used for anchored booleans
        return bool(value)
    for kind in (str, bool, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _plain_key(key: Any) -> Any:
    return str(key) if isinstance(key, str) else key


def _holds(data: Mapping[str, Any], key: str, value: list[str] | str | None) -> bool:
    if value is None:
        return key not in data
    return key in data and _same(_plain(data[key]), value)


def _same(a: Any, b: Any) -> bool:
    """Equality of plain values in which NaN equals NaN and a list never equals a string."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


# --- locating a key's lines --------------------------------------------------


def _find_span(parsed: _ParsedBlock, key: str) -> _Span | None | Unwritable:
    """The lines holding top-level `key` and its value; None when the block does not write it."""
    pairs = parsed.root.value if parsed.root is not None else []
    index = next((i for i, (k, _) in enumerate(pairs) if _is_key(k, key)), None)
    if index is None:
        if key in parsed.data:  # present only through a `<<` merge: no line of its own
            return Unwritable(f"{key} comes from a merge key (<<) and cannot be edited")
        return None
    key_node, value_node = pairs[index]
    start = key_node.start_mark.line
    if key_node.start_mark.column != 0:
        return Unwritable(f"{key} does not start at the beginning of a line")
    stop = pairs[index + 1][0].start_mark.line if index + 1 < len(pairs) else parsed.yaml_end
    content_end = max(start, _last_content_line(value_node))
    if content_end >= stop:
        return Unwritable(f"cannot tell where the value of {key} ends")
    span = _Span(start, _trim_trailing(parsed.lines, start, stop, content_end))
    if _defines_anchor(key_node, span) or _defines_anchor(value_node, span):
        return Unwritable(f"{key} carries an anchor (&) that other keys may refer to")
    return span


def _is_key(node: Node, key: str) -> bool:
    return isinstance(node, ScalarNode) and node.value == key


def _last_content_line(node: Node) -> int:
    """The last line that holds part of `node`'s text; -1 when it has none (an empty value).

    Block collections end where the next token starts (after any comments), so
    their extent is taken from their last child instead; scalars and flow
    collections end right after their last character, or at column 0 of the next
    line for block scalars (`|`, `>`).
    """
    start, end = node.start_mark, node.end_mark
    if isinstance(node, (SequenceNode, MappingNode)) and not node.flow_style:
        children = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else node.value
        return max((_last_content_line(child) for child in children), default=start.line)
    if (end.line, end.column) == (start.line, start.column):
        return -1  # an empty scalar, placed by the parser at the next token
    if end.column == 0 and end.line > start.line:
        return end.line - 1
    return end.line


def _trim_trailing(lines: Sequence[str], start: int, stop: int, content_end: int) -> int:
    """Give comment lines after the value back to what follows, and trailing blank lines too.

    A comment between two keys usually introduces the next one, so it stays.
    Blank lines after the last text are never worth replacing, even when a
    block scalar (`|`) counts them as its own.
    """
    while stop - 1 > content_end and _is_blank_or_comment(lines[stop - 1]):
        stop -= 1
    while stop - 1 > start and not lines[stop - 1].strip():
        stop -= 1
    return stop


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _defines_anchor(node: Node, span: _Span) -> bool:
    """Whether an anchor is defined inside the span (an alias *to* elsewhere is fine)."""
    seen: set[int] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.anchor and span.start <= current.start_mark.line < span.stop:
            return True
        if isinstance(current, MappingNode):
            pending.extend(n for pair in current.value for n in pair)
        elif isinstance(current, SequenceNode):
            pending.extend(current.value)
    return False


# --- editing -------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Block lines to replace (by no lines: remove) and lines to add where the YAML ends (`append_at`).

    `kept` are the spans of managed keys left as they are; the check after the
    edit sets their lines aside too.
    """

    replacements: tuple[tuple[_Span, tuple[str, ...]], ...]
    appended: tuple[str, ...]
    append_at: int
    kept: tuple[_Span, ...]

    def apply(self, lines: Sequence[str]) -> str:
        edited = list(lines)
        # Bottom-up, so earlier spans keep their line numbers (every span ends at or before append_at).
        edited[self.append_at:self.append_at] = self.appended
        for span, new_lines in sorted(self.replacements, key=lambda r: r[0].start, reverse=True):
            edited[span.start:span.stop] = new_lines
        return "".join(edited)

    @property
    def managed_spans(self) -> list[_Span]:
        return [span for span, _ in self.replacements] + list(self.kept)


def _plan_edit(
    parsed: _ParsedBlock, wanted: Mapping[str, Any], changes: Mapping[str, Any], eol: str
) -> _Plan | Unwritable:
    """Each changed key's lines replaced or removed; absent keys appended at the end of the block."""
    spans = _managed_spans(parsed, wanted)
    if isinstance(spans, Unwritable):
        return spans
    replacements: list[tuple[_Span, tuple[str, ...]]] = []
    appended: list[str] = []
    for key, value in changes.items():
        span = spans[key]
        if span is None:
            appended.extend(_emit(key, value, eol))
            continue
        if value is None and _follows_block_scalar(parsed, span, changes):
            span = _Span(span.start, _past_absorbable_lines(parsed.lines, span.stop))
        replacements.append((span, tuple(_emit(key, value, eol))))
    kept = tuple(span for key, span in spans.items() if key not in changes and span is not None)
    return _Plan(tuple(replacements), tuple(appended), parsed.yaml_end, kept)


def _managed_spans(parsed: _ParsedBlock, keys: Iterable[str]) -> dict[str, _Span | None] | Unwritable:
    """Each key's span (None when absent), or why one of them cannot be delimited."""
    spans: dict[str, _Span | None] = {}
    for key in keys:
        span = _find_span(parsed, key)
        if isinstance(span, Unwritable):
            return span
        spans[key] = span
    return spans


def _follows_block_scalar(parsed: _ParsedBlock, span: _Span, changes: Mapping[str, Any]) -> bool:
    """Whether the entry left right before `span` ends in a block scalar (`|`, `>`).

    Once the key in between is gone, such a scalar would take the blank and
    indented lines that followed that key as its own text (with `|+`, or when
    they are indented deeper), so a removed key takes those lines along.
    """
    assert parsed.root is not None  # a span exists, so the block has keys
    removed = {k for k, v in changes.items() if v is None}
    earlier = [
        (k, v) for k, v in parsed.root.value
        if k.start_mark.line < span.start and not (isinstance(k, ScalarNode) and k.value in removed)
    ]
    if not earlier:
        return False
    key_node, value_node = earlier[-1]
    if isinstance(key_node, ScalarNode) and key_node.value in changes:
        return False  # it is being rewritten as a one-line value
    leaf = _last_leaf(value_node)
    return isinstance(leaf, ScalarNode) and leaf.style in ("|", ">")


def _last_leaf(node: Node) -> Node:
    """The node whose text ends a block collection (the node itself for anything else)."""
    if isinstance(node, (SequenceNode, MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _last_leaf(last[1] if isinstance(node, MappingNode) else last)
    return node


def _past_absorbable_lines(lines: Sequence[str], stop: int) -> int:
    """Past the blank and indented lines from `stop` on (the next key starts at column 0)."""
    while stop < len(lines) and (not lines[stop].strip() or lines[stop][0] in " \t"):
        stop += 1
    return stop


def _emit(key: str, value: list[str] | str | None, eol: str) -> list[str]:
    """The lines that write `key: value`: lists as a block of quoted items, strings on one line."""
    if value is None:
        return []
    if isinstance(value, str):
        return [f"{key}: {_quoted(value)}{eol}"]
    if not value:
        return [f"{key}: []{eol}"]
    return [f"{key}:{eol}"] + [f"  - {_quoted(item)}{eol}" for item in value]


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar that reads back as exactly `text`."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _normalized(key: str, value: object) -> list[str] | str | None:
    """Check a requested value (a caller's mistake raises) and put strings on one line."""
    if not _PLAIN_KEY.match(key) or key.lower() in _RESERVED_WORDS:
        raise ValueError(f"managed key {key!r} must be a plain word such as 'related'")
    if value is None:
        return None
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    raise TypeError(f"value of {key!r} must be a list of strings, a string or None")


# --- checking ------------------------------------------------------------------


def _verify_edit(
    before: NoteParts, parsed_before: _ParsedBlock, plan: _Plan, after: NoteParts, wanted: Mapping[str, Any]
) -> Unwritable | None:
    """Parse the edited note and prove the edit did only what was asked; None when it did."""
    parsed_after = _parse_block(after.block)
    if isinstance(parsed_after, Unwritable):
        return Unwritable(f"edit refused, the result would not parse ({parsed_after.reason})")
    for key, value in wanted.items():
        if not _holds(parsed_after.data, key, value):
            return Unwritable(f"edit refused, {key} would not read back as written")
    others_before = {k: v for k, v in _plain(parsed_before.data).items() if k not in wanted}
    others_after = {k: v for k, v in _plain(parsed_after.data).items() if k not in wanted}
    if not _same(others_before, others_after):
        return Unwritable("edit refused, it would change other frontmatter keys")
    # The old text loses the lines the plan cut; the new text is searched afresh.
    spans_after = _managed_spans(parsed_after, wanted)
    if isinstance(spans_after, Unwritable) or _without(before, parsed_before, plan.managed_spans) != _without(
        after, parsed_after, [span for span in spans_after.values() if span is not None]
    ):
        return Unwritable("edit refused, it would change text outside the managed keys")
    return None


def _without(parts: NoteParts, parsed: _ParsedBlock, spans: Sequence[_Span]) -> str:
    """The note's text with the lines of `spans` cut out."""
    lines = list(parsed.lines)
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        del lines[span.start:span.stop]
    return NoteParts(parts.bom, parts.opening, "".join(lines), parts.closing, parts.body).text


def _lines(text: str) -> list[str]:
    """Lines split on LF only, each keeping its ending (CRLF lines keep their CR)."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    return lines + [pieces[-1]] if pieces[-1] else lines
