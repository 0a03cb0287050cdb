from __future__ import annotations

import json
import posixpath
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave.frontmatter import find_block, split_frontmatter
from ideaweave.vault import (
    Link,
    LinkResolver,
    Note,
    ScanRules,
    Skipped,
    VaultScanner,
    body_start,
    find_vault_root,
    glob_matcher,
    note_body,
    parse_note,
)
from hostile_markdown import markdown_notes


def make_vault(root: Path, files: dict[str, str | bytes], obsidian: dict[str, object] | None = None) -> Path:
    """A vault on disk: files by relative path, plus .obsidian/<name> JSON settings."""
    (root / ".obsidian").mkdir(parents=True, exist_ok=True)
    for name, data in (obsidian or {}).items():
        target = root / ".obsidian" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def parse(text: str, path: str = "Note.md", rules: ScanRules = ScanRules(), template_folder: str = "") -> Note:
    note = parse_note(path, text.encode("utf-8"), 0, rules, template_folder)
    assert isinstance(note, Note), note
    return note


def scanned(root: Path, rules: ScanRules = ScanRules()) -> list[str]:
    return [f.path for f in VaultScanner(root, rules).scan()]


# ------------------------------------------------------------------ which files are notes


def test_scan_lists_notes_sorted_and_skips_hidden_and_non_markdown(tmp_path):
    vault = make_vault(tmp_path, {
        "b.md": "b", "a/c.md": "c", "a/deep/d.md": "d",
        ".trash/old.md": "x", ".git/x.md": "x", "a/.hidden/e.md": "x", "a/.dotnote.md": "x",
        "image.png": b"\x89PNG", "notes.txt": "x", "Upper.MD": "upper",
    })
    (vault / ".obsidian" / "workspace.md").write_text("x")
    assert scanned(vault) == ["Upper.MD", "a/c.md", "a/deep/d.md", "b.md"]
    note_file = VaultScanner(vault, ScanRules()).scan()[-1]
    assert note_file.size == 1 and note_file.mtime_ns == (vault / "b.md").stat().st_mtime_ns


def test_accepts_agrees_with_the_skip_rules(tmp_path):
    scanner = VaultScanner(make_vault(tmp_path, {}), ScanRules(exclude=("Archive",)))
    assert scanner.accepts("a/b.md")
    for path in (".obsidian/x.md", ".trash/x.md", "a/.hidden/x.md", ".x.md", "a/b.txt", "Archive/x.md",
                 "a/Archive/x.md", "", "a//b.md"):
        assert not scanner.accepts(path), path


def test_obsidian_excluded_files_prefixes_and_regexes(tmp_path):
    vault = make_vault(
        tmp_path,
        {"Archive/old.md": "x", "Archived.md": "x", "keep/a.md": "x", "keep/draft-1.md": "x", "Inbox/x.md": "x"},
        obsidian={"app.json": {"userIgnoreFilters": ["Archive", "/draft-\\d+/", "/([unclosed/"]}},
    )
    scanner = VaultScanner(vault, ScanRules())
    assert scanned(vault) == ["Inbox/x.md", "keep/a.md"]  # a broken regex is ignored, not fatal
    assert not scanner.accepts("Archive/new.md") and scanner.accepts("keep/b.md")


def test_broken_app_json_is_ignored(tmp_path):
    vault = make_vault(tmp_path, {"a.md": "x"}, obsidian={"app.json": "{not json"})
    assert scanned(vault) == ["a.md"]


def test_include_and_exclude_globs(tmp_path):
    files = {"Projects/a.md": "x", "Projects/deep/b.md": "x", "Projects/deep/b.excalidraw.md": "x",
             "Daily/2024-01-01.md": "x", "Other.md": "x", "Archive/2020/old.md": "x", "Archive/new.md": "x"}
    vault = make_vault(tmp_path, files)
    assert scanned(vault, ScanRules(include=("Projects/**",))) == [
        "Projects/a.md", "Projects/deep/b.excalidraw.md", "Projects/deep/b.md"]
    assert scanned(vault, ScanRules(include=("Projects/*.md", "Daily"))) == ["Daily/2024-01-01.md", "Projects/a.md"]
    assert scanned(vault, ScanRules(exclude=("*.excalidraw.md", "Archive/2020/**", "Daily/202?-*.md"))) == [
        "Archive/new.md", "Other.md", "Projects/a.md", "Projects/deep/b.md"]
    assert scanned(vault, ScanRules(exclude=("**/deep",))) == [
        "Archive/2020/old.md", "Archive/new.md", "Daily/2024-01-01.md", "Other.md", "Projects/a.md"]


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("Archive", "Archive/x.md", True),
    ("Archive", "a/Archive/x.md", True),
    ("Archive", "Archived/x.md", False),
    ("Archive/", "Archive/x.md", True),
    ("/Archive/**", "Archive/a/b.md", True),
    ("a/*.md", "a/b/c.md", False),
    ("a/**/c.md", "a/c.md", True),
    ("a/**/c.md", "a/x/y/c.md", True),
    ("[!a]*.md", "b.md", True),
    ("[!a]*.md", "a.md", False),
    ("x+y(1).md", "x+y(1).md", True),
])
def test_glob_matcher(pattern, path, expected):
    assert glob_matcher(pattern)(path) is expected


def test_template_folder_from_obsidian_settings_and_from_rules(tmp_path):
    vault = make_vault(tmp_path, {"Templates/Daily.md": "# {{date}}", "Meta/T/x.md": "t", "Note.md": "n"},
                       obsidian={"templates.json": {"folder": "Templates"}})
    scanner = VaultScanner(vault, ScanRules())
    assert "Templates/Daily.md" in scanned(vault)  # read, so links into templates still resolve
    assert scanner.read("Templates/Daily.md").is_template
    assert not scanner.read("Note.md").is_template
    configured = VaultScanner(vault, ScanRules(template_folder="Meta/T/"))
    assert configured.read("Meta/T/x.md").is_template and not configured.read("Templates/Daily.md").is_template


def test_templater_plugin_folder_is_the_fallback(tmp_path):
    vault = make_vault(tmp_path, {"tpl/x.md": "t"},
                       obsidian={"plugins/templater-obsidian/data.json": {"templates_folder": "tpl"}})
    assert VaultScanner(vault, ScanRules()).read("tpl/x.md").is_template


def test_private_by_folder_glob_and_by_frontmatter_flag(tmp_path):
    rules = ScanRules(private_folders=("Journal", "Work/HR/**"))
    assert parse("x", "Journal/2024.md", rules).private
    assert parse("x", "Personal/Journal/a.md", rules).private
    assert parse("x", "Work/HR/raise.md", rules).private
    assert not parse("x", "Work/plan.md", rules).private
    assert parse("---\nprivate: true\n---\nx", "Work/plan.md", rules).private
    assert parse("---\nprivate: yes\n---\nx").private
    assert not parse("---\nprivate: false\n---\nx").private


def test_find_vault_root(tmp_path):
    vault = make_vault(tmp_path / "vault", {"a/b/c.md": "x"})
    assert find_vault_root(vault / "a" / "b") == vault.resolve()
    assert find_vault_root(vault / "a" / "b" / "c.md") == vault.resolve()
    assert find_vault_root(tmp_path) is None


# ------------------------------------------------------------------ skipped files


def test_binary_non_utf8_and_huge_notes_are_skipped_with_a_reason(tmp_path):
    vault = make_vault(tmp_path, {
        "binary.md": b"# title\x00\x01\x02",
        "latin1.md": "caf\u00e9 cr\u00e8me".encode("latin-1"),
        "huge.md": ("word " * 1_000_000).encode(),  # 5 MB
        "fine.md": "fine",
    })
    scanner = VaultScanner(vault, ScanRules())
    assert scanned(vault) == ["binary.md", "fine.md", "huge.md", "latin1.md"]  # listed; read() reports them
    assert scanner.read("binary.md") == Skipped("binary.md", "binary file")
    assert scanner.read("latin1.md") == Skipped("latin1.md", "not UTF-8 text")
    assert scanner.read("huge.md") == Skipped("huge.md", "larger than 2000000 bytes (index.max_note_bytes)")
    assert scanner.read("gone.md") == Skipped("gone.md", "no longer exists")
    assert isinstance(scanner.read("fine.md"), Note)
    small = parse_note("x.md", b"0123456789", 0, ScanRules(max_note_bytes=5), "")
    assert small == Skipped("x.md", "larger than 5 bytes (index.max_note_bytes)")


def test_reading_a_folder_named_like_a_note_is_skipped(tmp_path):
    vault = make_vault(tmp_path, {})
    (vault / "weird.md").mkdir()
    assert isinstance(VaultScanner(vault, ScanRules()).read("weird.md"), Skipped)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet=st.sampled_from("-#[]|\\!`()<>:*\n ab^%_/"), max_size=300)
       .map(lambda s: s.encode()))
def test_parse_never_raises(raw):
    result = parse_note("a/b.md", raw, 0, ScanRules(), "")
    assert isinstance(result, (Note, Skipped))
    if isinstance(result, Note):
        for heading in result.headings:
            assert 0 <= heading.start <= heading.end <= len(result.text)


# ------------------------------------------------------------------ parsing


def test_note_basics_bom_hash_and_title():
    raw = "\ufeff---\ntitle: T\n---\nBody".encode("utf-8")
    note = parse_note("Folder/My Note.md", raw, 42, ScanRules(), "")
    assert note.title == "My Note" and note.text == "---\ntitle: T\n---\nBody"
    assert note.text[note.body_start:] == "Body" and note.frontmatter == {"title": "T"}
    assert note.size == len(raw) and note.mtime_ns == 42 and len(note.content_hash) == 64


def test_broken_yaml_is_reported_and_the_body_still_indexed():
    note = parse("---\ntitle: [unclosed\nkey: : x\n---\n# Heading\nSee [[Other]] #topic\n")
    assert note.frontmatter == {}
    assert note.frontmatter_error.startswith("frontmatter is not valid YAML")
    assert note.text[note.body_start:].startswith("# Heading")
    assert [h.text for h in note.headings] == ["Heading"]
    assert [link.target for link in note.links] == ["Other"] and note.tags == ("topic",)


def test_frontmatter_edge_cases():
    impossible_date = parse("---\ndate: 2022-13-45\n---\nx")
    assert impossible_date.frontmatter_error and impossible_date.text[impossible_date.body_start:] == "x"
    not_a_mapping = parse("---\n- a\n- b\n---\nx")
    assert not_a_mapping.frontmatter == {} and "not a set of properties" in not_a_mapping.frontmatter_error
    unclosed = parse("---\ntitle: x\nno closing line")
    assert unclosed.body_start == 0 and unclosed.frontmatter == {} and unclosed.frontmatter_error is None
    empty = parse("---\n---\nbody")
    assert empty.frontmatter == {} and empty.frontmatter_error is None and empty.text[empty.body_start:] == "body"
    indented = parse(" ---\ntitle: x\n---\nbody")  # Obsidian needs --- on the very first line
    assert indented.body_start == 0 and indented.frontmatter == {}
    only = parse("---\na: 1\n---")
    assert only.frontmatter == {"a": 1} and only.body_start == len(only.text)


def test_dots_do_not_close_frontmatter_as_in_obsidian():
    closed_below = parse("---\na: 1\n...\n---\nbody")
    assert closed_below.frontmatter == {"a": 1} and closed_below.text[closed_below.body_start:] == "body"
    never_closed = parse("---\na: 1\n...\nbody")
    assert never_closed.body_start == 0 and never_closed.frontmatter == {}
    spaced = parse("---  \na: 1\n--- \t\nbody")
    assert spaced.frontmatter == {"a": 1} and spaced.text[spaced.body_start:] == "body"


# Lines that may open, close or only look like frontmatter delimiters, joined by every line break
# markdown-it counts (and a few it does not).
DELIMITER_LIKE = ["---", "--- ", "---\t", "...", "... ", " ---", "----", "--", "a: 1", "b: [x]", "# c", "", "body"]
LINE_BREAKS = ["\n", "\r\n", "\r", "\u2028", "\x85"]


@st.composite
def delimiter_texts(draw) -> str:
    pieces = draw(st.lists(st.tuples(st.sampled_from(DELIMITER_LIKE), st.sampled_from(LINE_BREAKS)), max_size=7))
    text = "".join(line + brk for line, brk in pieces)
    return draw(st.sampled_from(["", "\ufeff"])) + text + draw(st.sampled_from(["", "---", "x"]))


def _block_by_lines(text: str) -> tuple[int, int, int] | None:
    """A line-by-line reading of Obsidian's rule, independent of the shared finder: (YAML start, YAML end,
    body start) of a closed block, else None."""
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)
    if not lines or lines[0].rstrip("\r\n").rstrip(" \t") != "---" or lines[0] == lines[0].rstrip("\r\n"):
        return None
    offset = len(lines[0])
    for line in lines[1:]:
        if line.rstrip("\r\n").rstrip(" \t") == "---":
            return len(lines[0]), offset, offset + len(line)
        offset += len(line)
    return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(delimiter_texts().map(str.encode), markdown_notes().map(str.encode), st.binary(max_size=200)),
       st.sampled_from([ScanRules(), ScanRules(max_note_bytes=40)]))
def test_the_body_read_without_parsing_is_the_parsed_notes_body(raw, rules):
    """A cached summary is found from `note_body` (no parse); it is keyed by the parsed note's body."""
    note, body = parse_note("a.md", raw, 0, rules, ""), note_body("a.md", raw, rules)
    if isinstance(note, Skipped):
        assert body == note
    else:
        assert body == note.text[note.body_start:]


@settings(max_examples=2000, deadline=None)
@given(text=delimiter_texts())
def test_property_index_and_writer_find_the_same_frontmatter_block(text):
    """The index's properties and the lines the writer edits are one block, for any text: were they not,
    a write could turn the user's properties into body text, or edit lines the index reads as body."""
    rest = text.removeprefix("\ufeff")
    expected = _block_by_lines(rest)
    block = find_block(rest)
    assert (expected is None) == (block is None or not block.closed)
    if expected is not None:
        assert (block.start, block.end, block.body_start) == expected
    # The indexer's quick record of ideaweave's own writes finds the body by the same rule.
    assert body_start(rest) == (expected[2] if expected is not None else 0)
    note = parse_note("n.md", text.encode(), 0, ScanRules(), "")
    parts = split_frontmatter(text)
    if expected is None:
        assert note.body_start == 0
        assert not parts.has_frontmatter or parts.unclosed
    else:
        assert note.text[:note.body_start] == parts.opening + parts.block + parts.closing
        assert note.text[note.body_start:] == parts.body
        assert parts.block == rest[expected[0]:expected[1]]


def test_yaml_alias_bomb_does_not_hang():
    bomb = "---\na: &a ['[[x]]', '[[x]]']\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n" \
           "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d]\n---\n"
    note = parse(bomb)
    assert len(note.links) == 2  # each shared list is walked once


def test_headings_atx_and_setext_with_offsets():
    text = "Intro\n\nTitle\n=====\n\n## Sub ##\ntext\n\nSecond\n---\n\n```\n# not a heading\n```\n    # nor this\n"
    note = parse(text)
    assert [(h.level, h.text) for h in note.headings] == [(1, "Title"), (2, "Sub"), (2, "Second")]
    assert [note.text[h.start:h.end] for h in note.headings] == ["Title\n=====", "## Sub ##", "Second\n---"]


def test_offsets_are_offsets_in_text_with_frontmatter_and_crlf():
    text = "---\r\na: 1\r\n---\r\n# One\r\nbody\r\n```dataview\r\nLIST\r\n```\r\n## Two\r\n"
    note = parse(text)
    assert note.frontmatter == {"a": 1}
    assert [note.text[h.start:h.end] for h in note.headings] == ["# One", "## Two"]
    block = note.code_blocks[0]
    assert block.info == "dataview" and note.text[block.start:block.end] == "```dataview\r\nLIST\r\n```"


def test_wikilink_forms():
    note = parse(
        "[[Plain]] [[Folder/Note]] [[Note#Some heading]] [[Note#^block-id]] [[Note|shown]] "
        "[[Note#H|shown too]] ![[diagram.png]] ![[Note#H]] [[#Local heading]] [[Note.md]]\n\n"
        "| a | b |\n|---|---|\n| [[Table note\\|alias]] | [[T#H\\|x]] |\n"
    )
    assert note.links == (
        Link("Plain", None, None, None, False, "wiki"),
        Link("Folder/Note", None, None, None, False, "wiki"),
        Link("Note", "Some heading", None, None, False, "wiki"),
        Link("Note", None, "block-id", None, False, "wiki"),
        Link("Note", None, None, "shown", False, "wiki"),
        Link("Note", "H", None, "shown too", False, "wiki"),
        Link("diagram.png", None, None, None, True, "wiki"),
        Link("Note", "H", None, None, True, "wiki"),
        Link("", "Local heading", None, None, False, "wiki"),
        Link("Note.md", None, None, None, False, "wiki"),
        Link("Table note", None, None, "alias", False, "wiki"),
        Link("T", "H", None, "x", False, "wiki"),
    )


def test_markdown_links_to_notes():
    note = parse(
        "[a](Folder/Note.md) [b](My%20Note.md) [c](<With Spaces.md>) [d](Note.md#Heading%20Two) "
        "[e](../up.md \"title\") ![f](img/pic.png) [g](https://example.com/x.md) [h](mailto:a@b.c) "
        "[i](#in-page) [j](obsidian://open?vault=x) [k](Note.md#^blk)"
    )
    assert note.links == (
        Link("Folder/Note.md", None, None, "a", False, "markdown"),
        Link("My Note.md", None, None, "b", False, "markdown"),
        Link("With Spaces.md", None, None, "c", False, "markdown"),
        Link("Note.md", "Heading Two", None, "d", False, "markdown"),
        Link("../up.md", None, None, "e", False, "markdown"),
        Link("img/pic.png", None, None, "f", True, "markdown"),
        Link("Note.md", None, "blk", "k", False, "markdown"),
    )


def test_links_inside_code_do_not_count():
    note = parse(
        "Real [[A]].\n\n```\n[[InFence]] [x](InFence.md)\n```\n\n~~~python\n[[Tilde]]\n~~~\n\n"
        "Inline `[[InCode]]` and ``[[Double `tick` code]]`` then [[B]].\n\n    [[Indented]]\n\n"
        "- list\n  ```\n  [[InListFence]]\n  ```\n"
    )
    assert [link.target for link in note.links] == ["A", "B"]


def test_inline_code_pairs_backtick_runs_of_equal_length():
    note = parse("`unclosed [[A]]\n\n``[[B]] ` [[C]]`` [[D]] `x` [[E]] ``` [[F]]\n\n`[[G]]`")
    assert [link.target for link in note.links] == ["A", "D", "E", "F"]


def test_many_unclosed_backtick_runs_parse_in_linear_time():
    text = " ".join("`" * k + " word" for k in range(1, 1200)) + " [[Target]]" + " tail" * 100_000
    started = time.perf_counter()
    note = parse(text)
    assert time.perf_counter() - started < 5  # a backtracking regex took over a minute here
    assert [link.target for link in note.links] == ["Target"]


def test_unclosed_fence_hides_links_to_the_end():
    note = parse("[[Before]]\n```\n[[After]]\n")
    assert [link.target for link in note.links] == ["Before"]


def test_frontmatter_links_count_except_the_managed_keys():
    note = parse(
        "---\nup: \"[[Parent]]\"\ntopics:\n  - \"[[T1]]\"\n  - nested: \"[[T2|alias]]\"\n"
        "related:\n  - \"[[Suggested]]\"\nsummary: \"see [[Mentioned]]\"\nsource: \"[[Src]] and text\"\n---\n[[Body]]\n"
    )
    assert [(link.target, link.kind) for link in note.links] == [
        ("Parent", "frontmatter"), ("T1", "frontmatter"), ("T2", "frontmatter"), ("Src", "frontmatter"),
        ("Body", "wiki")]
    custom = parse("---\nmine: \"[[X]]\"\nrelated: \"[[Y]]\"\n---\n", rules=ScanRules(managed_keys=("mine",)))
    assert [link.target for link in custom.links] == ["Y"]


def test_tags_from_frontmatter_and_text():
    note = parse(
        "---\ntags: [Alpha, \"#beta\"]\ntag: gamma delta\n---\n"
        "# Heading #not-a-tag\n"
        "Text #topic/sub and #alpha again, (#paren) word#inside #123 #y2024 #Übersicht\n"
        "`#in-code` [[Note#heading]] [x](http://a.b/#anchor) [#linked](x.md)\n"
        "```\n#in-fence\n```\n#line-start\n"
    )
    assert note.tags == ("Alpha", "beta", "gamma", "delta", "topic/sub", "y2024", "Übersicht", "line-start")


def test_aliases():
    assert parse("---\naliases: [One, Two]\n---\n").aliases == ("One", "Two")
    assert parse("---\nalias: Single\n---\n").aliases == ("Single",)
    assert parse("no frontmatter").aliases == ()


# ------------------------------------------------------------------ link resolution


VAULT_PATHS = [
    "Index.md",
    "projects/Index.md",
    "projects/alpha/Plan.md",
    "projects/beta/Plan.md",
    "archive/old/Plan.md",
    "people/Ada Lovelace.md",
    "a/sub/Deep.md",
    "b/other/sub/Deep.md",
    "c/Deep.md",
    "notes/Top.md",
]


@pytest.fixture
def resolver():
    return LinkResolver(VAULT_PATHS)


def test_resolve_exact_paths(resolver):
    assert resolver.resolve("people/Ada Lovelace", "Index.md") == "people/Ada Lovelace.md"
    assert resolver.resolve("people/Ada Lovelace.md", "Index.md") == "people/Ada Lovelace.md"
    assert resolver.resolve("alpha/Plan", "projects/Index.md") == "projects/alpha/Plan.md"  # relative to the source
    assert resolver.resolve("../Index", "projects/alpha/Plan.md") == "projects/Index.md"
    assert resolver.resolve("/people/Ada Lovelace", "projects/Index.md") == "people/Ada Lovelace.md"


def test_resolve_is_case_insensitive(resolver):
    assert resolver.resolve("ada lovelace", "Index.md") == "people/Ada Lovelace.md"
    assert resolver.resolve("PEOPLE/ADA LOVELACE.MD", "Index.md") == "people/Ada Lovelace.md"


def test_resolve_ambiguous_names_prefers_nearest_then_shallowest_then_alphabetical(resolver):
    assert resolver.resolve("Plan", "projects/alpha/Notes.md") == "projects/alpha/Plan.md"
    assert resolver.resolve("Plan", "projects/beta/x/Deeper.md") == "projects/beta/Plan.md"
    assert resolver.resolve("Plan", "archive/Readme.md") == "archive/old/Plan.md"
    assert resolver.resolve("Plan", "Home.md") == "archive/old/Plan.md"  # all depth 2: alphabetical
    assert resolver.resolve("Deep", "Home.md") == "c/Deep.md"  # shallowest
    assert resolver.resolve("Index", "projects/Other.md") == "projects/Index.md"  # the source's folder first
    assert resolver.resolve("Index", "projects/alpha/Plan.md") == "Index.md"  # then the vault root, before names


def test_resolve_folder_qualified_links_by_path_suffix(resolver):
    assert resolver.resolve("sub/Deep", "Home.md") == "a/sub/Deep.md"  # c/Deep.md is shallower but not in sub/
    assert resolver.resolve("other/sub/Deep", "c/x.md") == "b/other/sub/Deep.md"
    assert resolver.resolve("nowhere/Top", "Home.md") == "notes/Top.md"  # no suffix matches: the name decides


def test_resolve_heading_and_alias_parts_and_unknown_targets(resolver):
    assert resolver.resolve("Top#Some heading", "Index.md") == "notes/Top.md"
    assert resolver.resolve("Top#^block|alias", "Index.md") == "notes/Top.md"
    assert resolver.resolve("Missing", "Index.md") is None
    assert resolver.resolve("diagram.png", "Index.md") is None
    assert resolver.resolve("", "notes/Top.md") == "notes/Top.md"  # [[#Heading]] is the note itself
    link = parse("[[Top#Heading|t]]", "x.md").links[0]
    assert resolver.resolve_link(link, "x.md") == "notes/Top.md"


def test_resolve_markdown_links(resolver):
    assert resolver.resolve("Top.md", "Index.md", markdown=True) == "notes/Top.md"  # name match needs .md
    assert resolver.resolve("Top", "Index.md", markdown=True) is None
    assert resolver.resolve("notes/Top", "Index.md", markdown=True) == "notes/Top.md"  # exact path does not
    link = parse("[t](../people/Ada%20Lovelace.md#Life)", "projects/x.md").links[0]
    assert resolver.resolve_link(link, "projects/x.md") == "people/Ada Lovelace.md"


def test_aliases_are_not_link_targets(tmp_path):
    vault = make_vault(tmp_path, {"Real Name.md": "---\naliases: [Nick]\n---\n", "b.md": "[[Nick]]"})
    scanner = VaultScanner(vault, ScanRules())
    resolver = LinkResolver(f.path for f in scanner.scan())
    assert resolver.resolve(scanner.read("b.md").links[0].target, "b.md") is None


def test_add_and_remove_keep_the_resolver_current(resolver):
    assert resolver.resolve("Top", "Index.md") == "notes/Top.md"
    resolver.add("Top.md")
    resolver.add("Top.md")  # twice is once
    assert resolver.resolve("Top", "Index.md") == "Top.md"
    resolver.remove("Top.md")
    assert resolver.resolve("Top", "Index.md") == "notes/Top.md"
    resolver.remove("notes/Top.md")
    resolver.remove("notes/Top.md")  # removing an unknown path is harmless
    assert resolver.resolve("Top", "Index.md") is None and "notes/Top.md" not in resolver


def test_link_text_is_the_shortest_unambiguous_text(resolver):
    assert resolver.link_text("people/Ada Lovelace.md") == "Ada Lovelace"
    assert resolver.link_text("notes/Top.md") == "Top"
    assert resolver.link_text("projects/alpha/Plan.md") == "alpha/Plan"
    assert resolver.link_text("a/sub/Deep.md") == "a/sub/Deep"  # "sub/Deep" also ends b/other/sub/Deep
    assert resolver.link_text("b/other/sub/Deep.md") == "other/sub/Deep"
    assert resolver.link_text("c/Deep.md") == "c/Deep"
    assert resolver.link_text("Index.md") == "Index"  # the full path: projects/Index.md shares every suffix
    assert resolver.link_text("projects/Index.md") == "projects/Index"


_segment = st.sampled_from(["a", "b", "A", "sub", "Note", "note", "x y"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/".join(parts) + ".md"),
                min_size=1, max_size=12, unique_by=str.lower))
def test_link_text_resolves_back_from_every_note(paths):
    resolver = LinkResolver(paths)
    for path in paths:
        text = resolver.link_text(path)
        for source in paths:
            # The one case no text can name: another note sits at <source folder>/<full path>.
            shadow = posixpath.join(posixpath.dirname(source), path).lower()
            if shadow != path.lower() and any(p.lower() == shadow for p in paths):
                continue
            assert resolver.resolve(text, source) == path, (text, source)


def test_symlinked_notes_outside_the_vault_are_never_read(tmp_path):
    root = tmp_path / "vault"
    root.mkdir()
    outside = tmp_path / "secret.md"
    outside.write_text("a file outside the vault", encoding="utf-8")
    (root / "inside.md").write_text("inside", encoding="utf-8")
    (root / "leak.md").symlink_to(outside)
    (root / "alias.md").symlink_to(root / "inside.md")
    scanner = VaultScanner(root, ScanRules())
    assert [f.path for f in scanner.scan()] == ["alias.md", "inside.md"]
    assert isinstance(scanner.read("leak.md"), Skipped)
