"""Reading a vault: which files are notes, what a note holds, and where its links point.

:func:`parse_note` is pure (bytes in, a :class:`Note` or a :class:`Skipped` out); :class:`VaultScanner`
is the thin shell that lists and reads files; :class:`LinkResolver` resolves link targets to note
paths the way Obsidian does.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import logging
import os
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt
from ruamel.yaml import YAML

from .frontmatter import find_block

log = logging.getLogger(__name__)

# [[target#heading|alias]] and ![[embed]]; a table cell escapes the pipe as \|.
WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
# [text](url), [text](<url with spaces>), [text](url "title") and ![alt](image).
# Text and address stop at '[' (no note name holds one) so that a line full of unclosed links is
# scanned once, not once per bracket: each attempt ends at the next '['.
MARKDOWN_LINK = re.compile(r'(!?)\[([^\[\]\n]*)\]\(\s*(<[^<>\[\n]+>|[^)\s\[]++)(?:\s+"[^"\n]*")?\s*\)')
_URL_SCHEME = re.compile(r"[a-zA-Z][\w+.-]*:")
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*(?=\r?\n)")
# Obsidian tags: '#' at the start or after whitespace (so not inside words or URLs).
_INLINE_TAG = re.compile(r"(?<!\S)#([\w/-]+)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NOT_LINE_BREAK = re.compile(r"[^\r\n]+")
# Only the block structure is needed (headings, fences); skipping inline parsing halves the time.
_MARKDOWN = MarkdownIt("commonmark").disable("inline")
# Frontmatter values are walked for links; a YAML alias bomb must not make that walk explode.
_MAX_FRONTMATTER_NODES = 10_000


@dataclass(frozen=True)
class ScanRules:
    include: tuple[str, ...] = ()  # globs relative to the vault; empty = all .md
    exclude: tuple[str, ...] = ()  # globs never read
    template_folder: str = ""  # "" = read from .obsidian/templates.json if present
    private_folders: tuple[str, ...] = ()  # globs of private notes
    max_note_bytes: int = 2_000_000
    managed_keys: tuple[str, ...] = ("related", "summary")  # ideaweave's own keys: their links are not user links


@dataclass(frozen=True)
class NoteFile:
    path: str  # vault-relative, "/"-separated, ends with .md
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Link:
    target: str  # as written, without #heading/^block/|alias; markdown links URL-decoded
    heading: str | None
    block: str | None
    alias: str | None  # the alias of a wikilink, the text of a markdown link
    embed: bool  # ![[...]] or ![](...)
    kind: str  # "wiki" | "markdown" | "frontmatter"


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    start: int  # char offsets of the heading line(s) in Note.text, line break excluded
    end: int


@dataclass(frozen=True)
class CodeBlock:
    info: str
    start: int  # char offsets of the fenced block in Note.text, fences included, final line break excluded
    end: int


@dataclass(frozen=True)
class Note:
    path: str
    title: str  # file name without .md
    text: str  # the whole file decoded as UTF-8, BOM removed
    body_start: int  # offset in text where the body starts (after the frontmatter)
    frontmatter: dict = field(hash=False)  # {} when none or broken
    frontmatter_error: str | None
    content_hash: str  # sha256 hex of the raw bytes
    size: int
    mtime_ns: int
    headings: tuple[Heading, ...]
    links: tuple[Link, ...]  # frontmatter links (except managed keys), then body links outside code
    tags: tuple[str, ...]  # frontmatter tags + inline tags, without '#', deduplicated ignoring case
    aliases: tuple[str, ...]
    code_blocks: tuple[CodeBlock, ...]
    is_template: bool
    private: bool


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str  # one line a user can read


# ------------------------------------------------------------------ parsing (pure)


def parse_note(path: str, raw: bytes, mtime_ns: int, rules: ScanRules, template_folder: str) -> Note | Skipped:
    """Parse one note's bytes. Content problems become a Skipped or a frontmatter_error, never an exception."""
    text = _decode(path, raw, rules)
    if isinstance(text, Skipped):
        return text
    starts = _line_starts(text)
    frontmatter, error, body_start = _read_frontmatter(text)
    body = _BodyStructure.parse(text, starts, body_start)
    frontmatter_links = tuple(_frontmatter_links(frontmatter, rules.managed_keys))
    template = template_folder.strip("/")
    return Note(
        path=path,
        title=posixpath.basename(path)[:-3],
        text=text,
        body_start=body_start,
        frontmatter=frontmatter,
        frontmatter_error=error,
        content_hash=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        mtime_ns=mtime_ns,
        headings=body.headings,
        links=frontmatter_links + body.links,
        tags=_dedupe(_frontmatter_words(frontmatter, ("tags", "tag"), split=True) + body.tags),
        aliases=_dedupe(_frontmatter_words(frontmatter, ("aliases", "alias"), split=False)),
        code_blocks=body.code_blocks,
        is_template=bool(template) and path.startswith(template + "/"),
        private=_is_private(path, frontmatter, rules.private_folders),
    )


def note_body(path: str, raw: bytes, rules: ScanRules) -> str | Skipped:
    """`parse_note(...).text[body_start:]` without parsing: the text after the frontmatter block."""
    text = _decode(path, raw, rules)
    return text if isinstance(text, Skipped) else text[body_start(text):]


def _decode(path: str, raw: bytes, rules: ScanRules) -> str | Skipped:
    if len(raw) > rules.max_note_bytes:
        return Skipped(path, _too_large(rules.max_note_bytes))
    if b"\x00" in raw:
        return Skipped(path, "binary file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Skipped(path, "not UTF-8 text")


def _too_large(limit: int) -> str:
    return f"larger than {limit} bytes (index.max_note_bytes)"


def _line_starts(text: str) -> list[int]:
    """Offset of every line's first character (line breaks as markdown-it counts them)."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _line_text(text: str, starts: list[int], i: int) -> str:
    end = starts[i + 1] if i + 1 < len(starts) else len(text)
    return text[starts[i]:end].rstrip("\r\n")


def _read_frontmatter(text: str) -> tuple[dict, str | None, int]:
    """(properties, error, body start). Like Obsidian, only a '---' block on the very first line counts,
    closed by a '---' line; the writer edits the same lines (`frontmatter.find_block` is the one rule).

    python-frontmatter's own ``parse`` strips the text (losing the body offset) and also accepts TOML and
    JSON blocks that Obsidian ignores, so the block is located here and only its YAML loader is used.
    """
    block = _closed_block(text)
    if block is None:  # never closed: Obsidian reads the whole file as body
        return {}, None, 0
    try:
        data = load_properties(text[block.start:block.end])
    except Exception as exc:  # noqa: BLE001 - ruamel raises more than YAMLError on hostile input
        return {}, _yaml_error(exc), block.body_start
    if data is None:
        return {}, None, block.body_start
    if not isinstance(data, dict):
        return {}, "frontmatter is not a set of properties (key: value lines)", block.body_start
    return data, None, block.body_start


def body_start(text: str) -> int:
    """Where a note's body begins: after a closed frontmatter block (`frontmatter.find_block`, the rule the
    properties are read by), without parsing it."""
    block = _closed_block(text)
    return 0 if block is None else block.body_start


def _closed_block(text: str):
    block = find_block(text)
    return block if block is not None and block.closed else None


def load_properties(block: str) -> object:
    """A frontmatter block read as Obsidian reads it: YAML 1.2 (`yes`, `on` and `no` are text, `0012`
    is twelve), property names as text (`2024:` names the property "2024"), the last of duplicate keys."""
    yaml = YAML(typ="safe", pure=True)  # the C loader is YAML 1.1; one instance per call is thread-safe
    yaml.allow_duplicate_keys = True
    return _text_keys(yaml.load(block), {})


def _text_keys(value: object, done: dict[int, object]) -> object:
    """`value` with every mapping's keys turned into text as JavaScript does (true -> "true", null ->
    "null"). Shared and cyclic nodes (YAML anchors) are converted once, so an alias bomb stays small."""
    if not isinstance(value, (dict, list)):
        return value
    if id(value) in done:
        return done[id(value)]
    if isinstance(value, list):
        done[id(value)] = converted = []
        converted.extend(_text_keys(item, done) for item in value)
        return converted
    done[id(value)] = mapping = {}
    for key, item in value.items():
        mapping[_js_text(key)] = _text_keys(item, done)
    return mapping


def _js_text(key: object) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    if isinstance(key, (tuple, list, dict)):
        return json.dumps(key, ensure_ascii=False, default=str)
    return str(key)


def _yaml_error(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" (line {mark.line + 2})" if mark is not None else ""  # +1 for 0-based, +1 for the '---' line
    return f"frontmatter is not valid YAML{where}: {_one_line(problem)}"


def _one_line(message: str) -> str:
    return " ".join(message.split())[:200]


@dataclass(frozen=True)
class _BodyStructure:
    headings: tuple[Heading, ...]
    code_blocks: tuple[CodeBlock, ...]
    links: tuple[Link, ...]
    tags: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, starts: list[int], body_start: int) -> _BodyStructure:
        first_line = bisect.bisect_right(starts, body_start) - 1 if body_start < len(text) else len(starts)
        headings, fences, code_spans = [], [], []

        def span(lines: list[int]) -> tuple[int, int]:
            first = first_line + lines[0]
            last = min(first_line + lines[1] - 1, len(starts) - 1)
            return starts[first], starts[last] + len(_line_text(text, starts, last))

        tokens = _MARKDOWN.parse(text[body_start:])
        for i, token in enumerate(tokens):
            if token.map is None:
                continue
            if token.type == "heading_open":
                start, end = span(token.map)
                headings.append(Heading(int(token.tag[1]), tokens[i + 1].content.strip(), start, end))
            elif token.type == "fence":
                start, end = span(token.map)
                fences.append(CodeBlock(token.info.strip(), start, end))
                code_spans.append((start, end))
            elif token.type == "code_block":  # indented code: not a CodeBlock, but its links do not count
                code_spans.append(span(token.map))
        # Everything outside the body and inside code is blanked, offsets kept, before links are searched.
        masked = _blank_out(text, [(0, body_start)] + code_spans)
        masked = _blank_out(masked, _code_spans(masked, body_start))
        links, link_spans = _body_links(masked, body_start)
        tag_text = _blank_out(masked, link_spans + [(h.start, h.end) for h in headings])
        tags = tuple(m.group(1).rstrip("/") for m in _INLINE_TAG.finditer(tag_text, body_start))
        tags = tuple(t for t in tags if re.search(r"[^\d/_-]", t))  # "#123" is not a tag in Obsidian
        return cls(tuple(headings), tuple(fences), links, tags)


def _code_spans(text: str, start: int) -> list[tuple[int, int]]:
    """Inline code: a run of backticks up to the next run of the same length in the same paragraph.

    Pairing runs by a precomputed "next run of this length" keeps this linear; a regex that searches
    forward from every unclosed run takes minutes on a note full of them.
    """
    runs = [m.span() for m in _BACKTICKS.finditer(text, start)]
    paragraph_ends = [m.start() for m in _BLANK_LINE.finditer(text, start)]
    next_same: list[int | None] = [None] * len(runs)
    last_seen: dict[tuple[int, int], int] = {}
    for i in reversed(range(len(runs))):
        key = (bisect.bisect_left(paragraph_ends, runs[i][0]), runs[i][1] - runs[i][0])
        next_same[i], last_seen[key] = last_seen.get(key), i
    spans, i = [], 0
    while i < len(runs):
        closing = next_same[i]
        if closing is None:  # never closed: the backticks are literal
            i += 1
        else:
            spans.append((runs[i][0], runs[closing][1]))
            i = closing + 1
    return spans


def _blank_out(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the characters in spans replaced by spaces (line breaks kept, so offsets stay valid)."""
    pieces, pos = [], 0
    for start, end in sorted(spans):
        start = max(start, pos)
        if end <= start:
            continue
        pieces += [text[pos:start], _NOT_LINE_BREAK.sub(lambda m: " " * len(m.group()), text[start:end])]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _body_links(masked: str, body_start: int) -> tuple[tuple[Link, ...], list[tuple[int, int]]]:
    found = [(m.start(), m.end(), parse_wikilink(m.group(2), bool(m.group(1)), "wiki"))
             for m in WIKILINK.finditer(masked, body_start)]
    for m in MARKDOWN_LINK.finditer(masked, body_start):
        link = parse_markdown_link(m.group(3), m.group(2), bool(m.group(1)))
        found.append((m.start(), m.end(), link))
    found.sort(key=lambda item: item[0])
    return tuple(link for _, _, link in found if link), [(start, end) for start, end, _ in found]


def parse_wikilink(inner: str, embed: bool = False, kind: str = "wiki") -> Link:
    """The parts of a wikilink's inside: 'Folder/Note#Heading|alias', 'Note#^block', 'Note\\|alias'."""
    target, _, alias = inner.replace("\\|", "|").partition("|")
    target = target.rstrip("\\")
    cut = min((i for i in (target.find("#"), target.find("^")) if i >= 0), default=len(target))
    name, subpath = target[:cut], target[cut:].lstrip("#")
    block = subpath[1:] if subpath.startswith("^") else None
    heading = subpath if subpath and block is None else None
    return Link(name.strip(), _nonempty(heading), _nonempty(block), _nonempty(alias), embed, kind)


def parse_markdown_link(url: str, text: str = "", embed: bool = False) -> Link | None:
    """A markdown link to a vault file, or None for web URLs (any scheme) and in-page '#anchors'."""
    url = url.strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].strip()
    if not url or url.startswith("#") or _URL_SCHEME.match(url):
        return None
    path, _, fragment = url.partition("#")
    target = unquote(path.partition("?")[0])
    if not target:
        return None
    fragment = unquote(fragment)
    block = fragment[1:] if fragment.startswith("^") else None
    heading = fragment if fragment and block is None else None
    return Link(target.strip(), _nonempty(heading), _nonempty(block), _nonempty(text), embed, "markdown")


def _nonempty(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _frontmatter_links(frontmatter: dict, managed_keys: tuple[str, ...]) -> Iterator[Link]:
    """Wikilinks in property values: Obsidian counts them as links. The managed keys hold our own output."""
    managed = set(managed_keys)
    values = [value for key, value in frontmatter.items() if str(key) not in managed]
    for string in _strings_in(values):
        for m in WIKILINK.finditer(string):
            yield parse_wikilink(m.group(2), bool(m.group(1)), "frontmatter")


def _strings_in(value: object) -> Iterator[str]:
    """Every string inside nested lists and dicts, in order, visiting shared or cyclic nodes once."""
    stack, seen, visited = [value], set(), 0
    while stack and visited < _MAX_FRONTMATTER_NODES:
        item = stack.pop()
        visited += 1
        if isinstance(item, str):
            yield item
        elif isinstance(item, (list, dict)) and id(item) not in seen:
            seen.add(id(item))
            stack.extend(reversed(list(item.values() if isinstance(item, dict) else item)))


def _frontmatter_words(frontmatter: dict, keys: tuple[str, ...], split: bool) -> tuple[str, ...]:
    """Values of list-or-string properties; ``split`` reads 'a, b c' as three words (tags)."""
    words: list[str] = []
    for key, value in frontmatter.items():
        if str(key).lower() not in keys or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None or isinstance(item, (list, dict)):
                continue
            parts = re.split(r"[,\s]+", str(item)) if split else [str(item)]
            words += [p.strip().lstrip("#") if split else p.strip() for p in parts]
    return tuple(w for w in words if w)


def _dedupe(words: Iterable[str]) -> tuple[str, ...]:
    """First spelling of each word, ignoring case (Obsidian treats #Tag and #tag as one tag)."""
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(word.lower(), word)
    return tuple(seen.values())


def _is_private(path: str, frontmatter: dict, private_folders: tuple[str, ...]) -> bool:
    flag = frontmatter.get("private")
    if flag is True or (isinstance(flag, str) and flag.strip().lower() in ("true", "yes")):
        return True
    return any(glob_matcher(pattern)(path) for pattern in private_folders)


# ------------------------------------------------------------------ which files are notes


@functools.lru_cache(maxsize=512)
def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for vault-relative paths. ``*`` stays within a folder, ``**`` crosses folders.

    As in .gitignore, a pattern without '/' matches a file or folder name at any depth ("Private",
    "*.excalidraw.md"); a pattern with '/' is anchored at the vault root ("Archive/2020/**"). A pattern
    that matches a folder matches everything inside it, so "Archive" and "Archive/**" mean the same.
    """
    pattern = pattern.strip().strip("/")
    regex = re.compile(_glob_regex(pattern))
    if "/" not in pattern:
        return lambda path: any(regex.fullmatch(part) for part in path.split("/"))
    return lambda path: any(regex.fullmatch(prefix) for prefix in _path_prefixes(path))


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (close := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1:close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _path_prefixes(path: str) -> Iterator[str]:
    parts = path.split("/")
    for n in range(1, len(parts) + 1):
        yield "/".join(parts[:n])


class VaultScanner:
    """Lists the notes of a vault and reads them; the only part of this module that touches files."""

    def __init__(self, root: Path, rules: ScanRules, owned: Callable[[], Collection[str]] | None = None,
                 owned_folder: str = ""):
        self.root = Path(root)
        self.rules = rules
        # Files ideaweave writes into the vault that are not notes to index (the topics' hub notes): asked
        # once per scan, and for a path asked about only when it lies directly in `owned_folder` (the only
        # place such files are written; an event elsewhere costs no look-up).
        self.owned = owned
        self.owned_folder = owned_folder.strip("/")
        obsidian = self.root / ".obsidian"
        self.template_folder = rules.template_folder.strip("/") or _obsidian_template_folder(obsidian)
        self._ignore_prefixes, self._ignore_regexes = _obsidian_ignore_filters(obsidian)
        self._include = [glob_matcher(p) for p in rules.include]
        self._exclude = [glob_matcher(p) for p in rules.exclude]

    def scan(self) -> list[NoteFile]:
        """Every note passing the rules, sorted by path (stat only; notes too large are read() as Skipped)."""
        found, folders = [], [""]
        owned = {p for p in self.owned() if posixpath.dirname(p) == self.owned_folder} if self.owned is not None else ()
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(self.root / folder))
            except OSError as exc:
                log.warning("cannot list %s: %s", folder or ".", exc.strerror or exc)
                continue
            for entry in entries:
                path = f"{folder}/{entry.name}" if folder else entry.name
                if entry.name.startswith("."):
                    continue
                try:
                    # Folder symlinks are not followed: they can loop, or lead out of the vault.
                    if entry.is_dir(follow_symlinks=False):
                        if not self._folder_excluded(path):
                            folders.append(path)
                    elif path not in owned and self._readable(path) and entry.is_file() and (not entry.is_symlink() or self._inside(path)):
                        stat = entry.stat()
                        found.append(NoteFile(path, stat.st_size, stat.st_mtime_ns))
                except OSError:  # vanished or unreadable between listing and stat
                    continue
        return sorted(found, key=lambda note: note.path)

    def accepts(self, path: str) -> bool:
        """Does a vault-relative path name a note these rules read?"""
        return self._readable(path) and not self._owned(path)

    def _owned(self, path: str) -> bool:
        if self.owned is None or posixpath.dirname(path) != self.owned_folder:
            return False
        return path in self.owned()

    def _readable(self, path: str) -> bool:
        parts = path.split("/")
        if not path.lower().endswith(".md") or any(not p or p.startswith(".") for p in parts):
            return False
        if path.startswith(self._ignore_prefixes) or any(r.search(path) for r in self._ignore_regexes):
            return False
        if self._include and not any(match(path) for match in self._include):
            return False
        return not any(match(path) for match in self._exclude)

    def read(self, path: str) -> Note | Skipped:
        """Read and parse one note; a missing, unreadable or unparsable file becomes a Skipped."""
        read = self._read_bytes(path)
        if isinstance(read, Skipped):
            return read
        raw, stat = read
        return parse_note(path, raw, stat.st_mtime_ns, self.rules, self.template_folder)

    def read_body(self, path: str) -> str | Skipped:
        """The body `read(path)` would give the note (its text after the frontmatter), without parsing it."""
        read = self._read_bytes(path)
        return read if isinstance(read, Skipped) else note_body(path, read[0], self.rules)

    def _read_bytes(self, path: str) -> tuple[bytes, os.stat_result] | Skipped:
        full = self.root / path
        if full.is_symlink() and not self._inside(path):
            return Skipped(path, "a link to a file outside the vault")
        try:
            stat = full.stat()
            if stat.st_size > self.rules.max_note_bytes:  # not even read: it could be huge
                return Skipped(path, _too_large(self.rules.max_note_bytes))
            return full.read_bytes(), stat
        except FileNotFoundError:
            return Skipped(path, "no longer exists")
        except OSError as exc:
            return Skipped(path, f"cannot be read: {exc.strerror or exc}")

    def _inside(self, path: str) -> bool:
        """Does a symlinked note resolve to a file inside the vault? (Outside files are never read.)"""
        try:
            return (self.root / path).resolve().is_relative_to(self.root.resolve())
        except OSError:
            return False

    def _folder_excluded(self, folder: str) -> bool:
        # A folder matched by an exclude glob or an Obsidian prefix filter holds no note: skip the walk.
        return (folder + "/").startswith(self._ignore_prefixes) or any(match(folder) for match in self._exclude)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


def _obsidian_template_folder(obsidian: Path) -> str:
    """The folder of the core Templates plugin, else the Templater plugin's; "" when neither is set."""
    for file, key in (("templates.json", "folder"), ("plugins/templater-obsidian/data.json", "templates_folder")):
        data = _read_json(obsidian / file)
        if isinstance(data, dict) and isinstance(data.get(key), str) and data[key].strip("/ "):
            return data[key].strip().strip("/")
    return ""


def _obsidian_ignore_filters(obsidian: Path) -> tuple[tuple[str, ...], list[re.Pattern]]:
    """Obsidian's "Excluded files" (app.json userIgnoreFilters): path prefixes, or regexes written /like this/."""
    data = _read_json(obsidian / "app.json")
    filters = data.get("userIgnoreFilters") if isinstance(data, dict) else None
    prefixes, regexes = [], []
    for entry in filters if isinstance(filters, list) else []:
        if not isinstance(entry, str) or not entry:
            continue
        if len(entry) > 2 and entry.startswith("/") and entry.endswith("/"):
            try:
                regexes.append(re.compile(entry[1:-1]))
            except re.error as exc:
                log.warning("ignoring the excluded-files filter %s: %s", entry, exc)
        else:
            prefixes.append(entry)
    return tuple(prefixes), regexes


def find_vault_root(start: Path) -> Path | None:
    """The nearest folder, from start upwards, that holds a .obsidian/ folder."""
    here = Path(start).expanduser().resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / ".obsidian").is_dir():
            return folder
    return None


# ------------------------------------------------------------------ link resolution


_WRITTEN_WIKILINK = re.compile(r"\[\[([^\]|#^]*)([^\]]*)\]\]")


def split_wikilink(link: str) -> tuple[str, str] | None:
    """(target, the rest: '#heading', '|alias') of a link string like "[[Note#Heading|alias]]", or None."""
    match = _WRITTEN_WIKILINK.fullmatch(link.strip())
    return (match.group(1), match.group(2)) if match else None


def link_names(path: str) -> set[str]:
    """The texts a wikilink can use for a note: its name, or any trailing part of its path (lower case)."""
    stem = path[:-3] if path.lower().endswith(".md") else path
    parts = stem.lower().split("/")
    return {"/".join(parts[i:]) for i in range(len(parts))}


def _link_key(path: str) -> str:
    """How links see a note: its path without .md, ignoring case."""
    return (path[:-3] if path.lower().endswith(".md") else path).lower()


class LinkResolver:
    """Resolves link targets to note paths as Obsidian does; kept current with add() and remove().

    Order: the exact path (relative to the linking note's folder, then from the vault root, with or
    without .md); then, for a folder-qualified link, notes whose path ends with it; then notes of that
    name. All case-insensitive. Ties go to the note nearest the linking note in the folder tree, then
    the shallowest, then the first alphabetically. Aliases are not link targets in Obsidian.
    """

    def __init__(self, paths: Iterable[str] = ()):
        self._by_key: dict[str, list[str]] = {}  # _link_key -> paths (two if they differ only in case)
        self._by_name: dict[str, list[str]] = {}  # file name without .md, lower case -> paths
        for path in paths:
            self.add(path)

    def add(self, path: str) -> None:
        key = _link_key(path)
        for index, name in ((self._by_key, key), (self._by_name, key.rsplit("/", 1)[-1])):
            paths = index.setdefault(name, [])
            if path not in paths:
                bisect.insort(paths, path)

    def remove(self, path: str) -> None:
        key = _link_key(path)
        for index, name in ((self._by_key, key), (self._by_name, key.rsplit("/", 1)[-1])):
            paths = index.get(name, [])
            if path in paths:
                paths.remove(path)
                if not paths:
                    del index[name]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._by_key.get(_link_key(path), ())

    def resolve(self, target: str, source: str, markdown: bool = False) -> str | None:
        """The note a link from ``source`` points to, or None. ``target`` as in Link.target (a wikilink's
        '#heading|alias' is tolerated). Markdown links match by name only when they spell out '.md'.
        An empty target ([[#Heading]]) is the source itself."""
        key, has_extension = self._key(target, markdown)
        if not key:
            return source if source in self else None
        folder = posixpath.dirname(source).lower()
        for exact in (posixpath.normpath(posixpath.join(folder, key)), posixpath.normpath(key)):
            if exact in self._by_key:
                return self._by_key[exact][0]
        if markdown and not has_extension:
            return None
        candidates = self._by_name.get(key.rsplit("/", 1)[-1], [])
        if "/" in key:
            by_suffix = [c for c in candidates if _link_key(c).endswith("/" + key)]
            candidates = by_suffix or candidates
        return min(candidates, key=lambda c: _distance(c, source), default=None)

    @staticmethod
    def _key(target: str, markdown: bool) -> tuple[str, bool]:
        if not markdown:
            target = re.split(r"[|#^]", target.replace("\\|", "|"), maxsplit=1)[0].rstrip("\\")
        target = target.strip().lstrip("/")
        has_extension = target.lower().endswith(".md")
        return (_link_key(target) if has_extension else target.lower()), has_extension

    @classmethod
    def name_of_target(cls, target: str, markdown: bool = False) -> str:
        """The note name a link target can only ever resolve to a note of (its last path part, lower
        case): a note added or removed under another name cannot change where the link points."""
        return cls._key(target, markdown)[0].rsplit("/", 1)[-1]

    @staticmethod
    def name_of_path(path: str) -> str:
        return _link_key(path).rsplit("/", 1)[-1]

    def resolve_link(self, link: Link, source: str) -> str | None:
        return self.resolve(link.target, source, markdown=link.kind == "markdown")

    def link_text(self, path: str) -> str:
        """The shortest link text (no .md) that resolves to path from any note: the file name if no other
        note has that name, else the shortest path suffix no other note ends with, else the full path."""
        parts = path[:-3].split("/") if path.lower().endswith(".md") else path.split("/")
        others = [_link_key(c) for c in self._by_name.get(parts[-1].lower(), []) if c != path]
        for n in range(1, len(parts) + 1):
            suffix = "/".join(parts[-n:]).lower()
            if not any(other == suffix or other.endswith("/" + suffix) for other in others):
                return "/".join(parts[-n:])
        return "/".join(parts)


def _distance(candidate: str, source: str) -> tuple[int, int, str]:
    """Sort key: most folders shared with the source first, then the shallowest, then alphabetical."""
    mine, theirs = candidate.lower().split("/")[:-1], source.lower().split("/")[:-1]
    shared = 0
    for a, b in zip(mine, theirs):
        if a != b:
            break
        shared += 1
    return -shared, len(mine), candidate
