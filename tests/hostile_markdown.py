"""Hostile markdown for the robustness tests: the CommonMark specification's examples, Obsidian's own
syntax in every container, and a hypothesis strategy that nests them the way real vaults do.

The examples come from the CommonMark specification (fixtures/commonmark_examples.json, CC-BY-SA 4.0,
see fixtures/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def commonmark_examples() -> list[dict]:
    """[{"example": n, "section": ..., "markdown": ...}] for every example of the specification."""
    return json.loads((FIXTURES / "commonmark_examples.json").read_text(encoding="utf-8"))


PROSE = ("Reward models are trained on human comparisons of model outputs. An agent that maximises such a "
         "model finds the places where it is wrong. This is why the training signal needs scrutiny.")

# Obsidian's syntax beyond CommonMark, each piece a block or a line of one.
OBSIDIAN_PIECES = (
    "> [!note] A callout title\n> The callout's body says something in a sentence of its own.",
    "> [!warning]- Folded\n> - item in a folded callout\n> - [[Linked note]]",
    "![[Embedded note]]", "![[Embedded note#Heading]]", "![[image.png|300]]",
    "A sentence with a block reference. ^block-id",
    "%% a comment Obsidian hides %%", "%%\nmulti-line\ncomment\n%%", "%% unclosed comment",
    "A footnote reference[^1] in a sentence.", "[^1]: The footnote's text.", "An inline footnote.^[inline]",
    "$$\n\\int_0^1 x^2 \\, dx\n$$", "Inline math $e^{i\\pi} + 1 = 0$ in a sentence.", "$$ unclosed display math",
    "```dataview\nTABLE file.mtime FROM #project\n```", "```dataviewjs\ndv.list([1, 2])\n```",
    "```tasks\nnot done\n```", "```query\ntag:#idea\n```",
    "#tag #nested/tag #123 #émoji-tag", "key:: inline field value",
    "[[Note|alias]] and [[Note#Heading|alias]] and [[Note#^block]]", "[[", "]]", "[[]]", "[[|]]", "[[#]]",
    "[[a\\|b]]", "[md link](Note%20name.md)", "[md link](<Note name.md>)", "![alt](image.png)",
    "==highlighted text==", "~~struck text~~", "**bold *and italic***", "***", "---", "___",
    "- [ ] an open task", "- [x] a done task", "- [?] a custom task",
    "| a | b |\n|---|---|\n| [[x\\|y]] | `c` |", "| only | header |\n|---|",
    "<div>raw html</div>", "<!-- html comment -->", "<details><summary>s</summary>\n\nhidden\n</details>",
    "created: {{date}}", "{{title}}", "<% tp.date.now() %>",
)

EMPTY_CONTAINERS = (
    "- ", "-", "* ", "+ ", "1. ", "1.", "- \n- \n", "- \n  - \n    - ", ">", "> ", ">>", "- >", "> - ",
    "- ```\n  code\n  ```", "- # heading in an item", "1. ## heading", "- ---", "> ```",
)

AWKWARD_TEXT = (
    "日本語の文章です。二つ目の文です。", "中文句子。第二句。", "한국어 문장입니다.", "Emoji 🎉🧠 in a sentence 👩‍🔬.",
    "Right-to-left: שלום עולם. مرحبا بالعالم.", "zero\u200bwidth\u200cjoin\u200d and \ufeff BOM inside",
    "control \x01\x02\x07\x1b[31m characters", "a\u2028line separator\u2029paragraph separator",
    "combining e\u0301 and \u0300 alone", "\ud7ff\ue000\uf8ff private use", "surrogate-free 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "A sentence that ends without a full stop", "?!?!", "...", "…", "\t\ttabbed text", "trailing spaces   ",
    "e.g. i.e. Dr. Smith et al. Fig. 3 shows U.S. data.", "x" * 3000, ("word " * 800).strip(),
)

PIECES = OBSIDIAN_PIECES + EMPTY_CONTAINERS + AWKWARD_TEXT + (PROSE,)


def _indent(block: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in block.split("\n"))


@st.composite
def _block(draw, depth: int = 0) -> str:
    choice = draw(st.integers(0, 9))
    if choice <= 3 or depth >= 4:
        return draw(st.sampled_from(PIECES))
    if choice == 4:
        return draw(st.text(min_size=0, max_size=80))  # anything at all, control characters included
    inner = draw(_block(depth + 1))
    if choice == 5:
        return _indent(inner, "> ")
    if choice == 6:
        marker = draw(st.sampled_from(("- ", "* ", "1. ", "- [ ] ")))
        return marker + inner.replace("\n", "\n" + " " * len(marker))
    if choice == 7:
        return "#" * draw(st.integers(1, 7)) + " " + inner.split("\n")[0]
    if choice == 8:
        fence = draw(st.sampled_from(("```", "~~~", "````")))
        closed = draw(st.booleans())
        return f"{fence}{draw(st.sampled_from(('', 'python', 'dataview')))}\n{inner}" + (f"\n{fence}" if closed else "")
    return inner + "\n" + draw(_block(depth + 1))


FRONTMATTERS = (
    "", "---\n---\n", "---\ntags: [a, b]\n---\n", "---\nyes: 1\nno: 2\non: x\noff: y\ntitle: t\n---\n",
    "---\n2024: review\nname: x\n---\n", "---\ncreated: {{date}}\n---\n", "---\nprivate: yes\n---\n",
    "---\na: &x [*x]\n---\n", "---\n: no key\n---\n", "---\n- a list\n---\n", "---\nunclosed: [\n---\n",
    "---\nrelated: not a list\nsummary: [1, 2]\n---\n", "---\n\tbad: tab\n---\n", "---\nkey: 0012\n---\n",
    "---\nnull: ~\ntrue: false\n1.5: x\n---\n", "---\n",
)


@st.composite
def markdown_notes(draw) -> str:
    """A whole note: perhaps a frontmatter block, then blocks nested the way real vaults nest them."""
    blocks = draw(st.lists(_block(), min_size=0, max_size=8))
    separator = draw(st.sampled_from(("\n\n", "\n", "\r\n\r\n", "\r\n")))
    body = separator.join(blocks)
    if draw(st.booleans()):
        body = body.replace("\n", "\r\n").replace("\r\r\n", "\r\n")
    return draw(st.sampled_from(FRONTMATTERS)) + body
