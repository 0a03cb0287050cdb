#!/usr/bin/env python3
"""Generate a synthetic Obsidian vault for benchmarks.

    python bench/make_vault.py OUT_DIR --notes N [--seed 0] [--source REAL_VAULT]

Text, title words and note lengths are resampled from a real source vault, so
that chunking, embedding and summarising cost about what they cost on real
notes. The structure follows the shapes seen in real vaults: Zipf-sized folders,
a link graph with hubs (preferential attachment), notes clustered by topic, and
a mix of frontmatter styles. The same arguments always give byte-identical
files with identical modification times.

Only the standard library and numpy are used, so the script runs anywhere.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote

import numpy as np

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/bench/vaults/garden/vault"

# Fixed clocks: modification times and `created` dates must not depend on when the
# script runs, or two runs would not produce the same vault.
BASE_MTIME = 1717200000  # 2024-06-01T00:00:00Z; note i gets BASE_MTIME + i * MTIME_STEP
MTIME_STEP = 60
CREATED_FIRST_DAY = date(2020, 1, 1)
CREATED_SPAN_DAYS = 4 * 365

FRONTMATTER_SHARE = 0.70
PRIVATE_SHARE = 0.01
DUPLICATE_NAME_SHARE = 0.02
CODE_BLOCK_SHARE = 0.03
DATAVIEW_SHARE = 0.01
RELATED_SECTION_SHARE = 0.08
LINKLESS_NOTE_SHARE = 0.15
BROKEN_LINK_SHARE = 0.015
# Rank exponent of note popularity: 0.75 gives a few hubs with thousands of
# backlinks at 100k notes without one note swallowing every link.
POPULARITY_EXPONENT = 0.75
FOLDER_SIZE_EXPONENT = 1.1
SAME_TOPIC_LINK_SHARE = 0.35
NEIGHBOUR_TOPIC_LINK_SHARE = 0.15
TITLE_WORD_COUNTS = (1, 2, 3, 4, 5)
TITLE_WORD_WEIGHTS = (0.15, 0.35, 0.28, 0.14, 0.08)

# Function words make poor titles; YAML 1.1 booleans and Windows device names
# make poor aliases, tags and file names.
EXCLUDED_WORDS = frozenset(
    """
    the and for are but not you all any can had her was one our out day get has him his how man new now old
    see two way who boy did its let put say she too use that with have this will your from they know want been
    good much some time very when come here just like long make many more only over such take than them well
    were what into also then there their these those which would could should about after again because before
    being below between both down during each even every further most other same since through under until upon
    where while whom why yet own off yes true false null none nan inf con prn aux nul itself himself herself
    themselves ourselves myself yourself thing things really often might must shall does doing done made
    """.split()
)

FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+#.-]*)")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[.\]\s+)?")
QUOTE_RE = re.compile(r"^\s*(?:>\s?)+")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(*_A-Z0-9])")
EMBED_RE = re.compile(r"!\[\[[^\]]*\]\]|!\[[^\]]*\]\([^)]*\)")
WIKILINK_ALIAS_RE = re.compile(r"\[\[[^\]|]*\|([^\]]*)\]\]")
WIKILINK_RE = re.compile(r"\[\[([^\]]*)\]\]")
MD_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
FOOTNOTE_RE = re.compile(r"\[\^[^\]]*\]")
LINK_TARGET_RE = re.compile(r"\[\[([^\]|#]+)|\]\(([^)#\s]+)")
WORD_RE = re.compile(r"\b[A-Za-z][a-z]{2,13}\b")
SAFE_HEADING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,'()&?-]{1,60}$")
SAFE_TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_/-]{1,30}$")
UNSAFE_SENTENCE_CHARS = frozenset("[]{}|<>#\\")
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "fig.", "al.")


# --------------------------------------------------------------------------- source corpus


@dataclass(frozen=True)
class SourceCorpus:
    """What the generator borrows from a real vault, indexed by source note."""

    sentences: list[str]
    sentence_words: list[int]
    linkable: list[bool]  # False where a link could land inside inline code or math
    note_sentences: list[tuple[int, int]]  # [start, end) into `sentences`
    note_words: np.ndarray  # body length of every source note, in words
    note_headings: list[list[str]]
    neighbours: list[list[int]]  # source notes linked to or from each source note
    neighbour_sentences: list[list[int]]
    headings: list[str]
    vocabulary: list[str]
    vocabulary_weights: list[float]
    code_blocks: list[str]
    tags: list[str]
    links_per_word: float


@dataclass(frozen=True)
class ParsedNote:
    paragraphs: list[str]
    headings: list[str]
    code_blocks: list[str]


def split_frontmatter(text: str) -> tuple[str, str]:
    if not text.startswith("---\n"):
        return "", text
    end = text.find("\n---", 4)
    if end < 0:
        return "", text
    return text[4:end], text[end + 4 :].lstrip("-").lstrip("\n")


def parse_body(body: str) -> ParsedNote:
    """Split a markdown body into prose paragraphs, headings and fenced code."""
    paragraphs: list[str] = []
    headings: list[str] = []
    code_blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    code: list[str] = []
    in_math = False

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for line in body.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                code_blocks.append("\n".join(code) + "\n" + fence)
                fence = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("$$"):
            one_line = len(stripped) > 4 and stripped.endswith("$$")
            in_math = in_math != (not one_line)
            flush()
            continue
        if in_math:
            continue
        fence_match = FENCE_RE.match(line)
        if fence_match:
            flush()
            fence = fence_match.group(1)
            code = [fence + fence_match.group(2)]
            continue
        heading = HEADING_RE.match(stripped)
        if heading:
            flush()
            headings.append(clean_inline(heading.group(2)))
        elif not stripped or stripped[0] in "|<" or stripped.startswith(("[^", "---", "***")):
            flush()
        elif LIST_ITEM_RE.match(line):
            flush()
            current.append(LIST_ITEM_RE.sub("", line, count=1).strip())
        else:
            current.append(QUOTE_RE.sub("", stripped))
    flush()
    return ParsedNote(paragraphs, headings, code_blocks)


def clean_inline(text: str) -> str:
    """Reduce links to their visible text so borrowed sentences carry no old links."""
    text = EMBED_RE.sub("", text)
    text = WIKILINK_ALIAS_RE.sub(r"\1", text)
    text = WIKILINK_RE.sub(lambda m: m.group(1).split("#")[0].rsplit("/", 1)[-1], text)
    text = MD_LINK_RE.sub(r"\1", text)
    text = FOOTNOTE_RE.sub("", text)
    return " ".join(text.split())


def usable_sentence(sentence: str) -> bool:
    words = sentence.count(" ") + 1
    if words < 3 or words > 80 or sentence.endswith(":"):
        return False
    if "http" in sentence or "www." in sentence or UNSAFE_SENTENCE_CHARS.intersection(sentence):
        return False
    # A sentence cut out of the middle of a span would leave the rest of the note
    # in code, bold or math.
    return sentence.count("`") % 2 == 0 and sentence.count("**") % 2 == 0 and sentence.count("$") % 2 == 0


def split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for piece in SENTENCE_SPLIT_RE.split(text):
        # The splitter cannot look behind far enough to spare "e.g." and friends.
        if pieces and pieces[-1].lower().endswith(ABBREVIATIONS):
            pieces[-1] += " " + piece
        else:
            pieces.append(piece)
    return pieces


def sentences_of(paragraph: str) -> list[str]:
    found = []
    for sentence in split_sentences(clean_inline(paragraph)):
        sentence = sentence.strip()
        if usable_sentence(sentence):
            if sentence[-1] not in ".!?\"')*_`":
                sentence += "."
            found.append(sentence)
    return found


def link_targets(body: str) -> list[str]:
    """Lower-cased file stems that a source note links to."""
    stems = []
    for wiki, markdown in LINK_TARGET_RE.findall(body):
        target = unquote(wiki or markdown).strip()
        if target.startswith(("http:", "https:", "mailto:")):
            continue
        stem = target.rstrip("/").rsplit("/", 1)[-1]
        stems.append(stem.removesuffix(".md").lower())
    return stems


def frontmatter_tags(frontmatter: str) -> list[str]:
    tags = []
    in_tags = False
    for line in frontmatter.split("\n"):
        if line.startswith("tags:"):
            rest = line[5:].strip()
            in_tags = not rest
            tags.extend(t.strip(" '\"") for t in rest.strip("[]").split(",") if rest)
        elif in_tags and line.startswith(("  - ", "- ")):
            tags.append(line.split("- ", 1)[1].strip(" '\""))
        else:
            in_tags = False
    return [t for t in tags if SAFE_TAG_RE.match(t)]


def read_source(root: Path) -> SourceCorpus:
    paths = sorted(p for p in root.rglob("*.md") if not any(part.startswith(".") for part in p.parts))
    if not paths:
        raise SystemExit(f"no markdown notes found in source vault {root}")
    sentences: list[str] = []
    note_sentences, note_words, note_headings, note_links = [], [], [], []
    code_blocks: list[str] = []
    tag_counts: Counter[str] = Counter()
    word_counts: Counter[str] = Counter()
    for path in paths:
        frontmatter, body = split_frontmatter(path.read_text(encoding="utf-8", errors="replace"))
        tag_counts.update(frontmatter_tags(frontmatter))
        note_words.append(len(body.split()))
        note_links.append(link_targets(body))
        parsed = parse_body(body)
        start = len(sentences)
        for paragraph in parsed.paragraphs:
            sentences.extend(sentences_of(paragraph))
        note_sentences.append((start, len(sentences)))
        note_headings.append([h for h in parsed.headings if SAFE_HEADING_RE.match(h) and h.count(" ") < 8])
        code_blocks.extend(c for c in parsed.code_blocks if 2 <= c.count("\n") <= 26)
        word_counts.update(w.lower() for w in WORD_RE.findall(path.stem))
    for sentence in sentences:
        word_counts.update(w.lower() for w in WORD_RE.findall(sentence))
    if not sentences:
        raise SystemExit(f"no usable prose sentences found in source vault {root}")
    neighbours = link_neighbours([p.stem.lower() for p in paths], note_links)
    vocabulary = sorted(w for w in word_counts if w not in EXCLUDED_WORDS)
    total_words = max(1, sum(note_words))
    return SourceCorpus(
        sentences=sentences,
        sentence_words=[s.count(" ") + 1 for s in sentences],
        linkable=["`" not in s and "$" not in s for s in sentences],
        note_sentences=note_sentences,
        note_words=np.array(note_words, dtype=np.int64),
        note_headings=note_headings,
        neighbours=neighbours,
        neighbour_sentences=[
            [s for n in ns for s in range(*note_sentences[n])] for ns in neighbours
        ],
        headings=sorted({h for hs in note_headings for h in hs}),
        vocabulary=vocabulary,
        # Square-root damping: common words dominate less, titles read less alike.
        vocabulary_weights=[math.sqrt(word_counts[w]) for w in vocabulary],
        code_blocks=code_blocks,
        tags=sorted(tag_counts, key=lambda t: (-tag_counts[t], t)),
        links_per_word=min(1 / 30, max(1 / 300, sum(map(len, note_links)) / total_words)),
    )


def link_neighbours(stems: list[str], links: list[list[str]]) -> list[list[int]]:
    index = {}
    for i, stem in enumerate(stems):
        index.setdefault(stem, i)
    neighbours: list[set[int]] = [set() for _ in stems]
    for i, targets in enumerate(links):
        for target in targets:
            j = index.get(target)
            if j is not None and j != i:
                neighbours[i].add(j)
                neighbours[j].add(i)
    return [sorted(n) for n in neighbours]


# --------------------------------------------------------------------------- vault plan


@dataclass(frozen=True)
class VaultPlan:
    """Everything decided about each note before any text is written."""

    folders: list[str]  # relative folder paths; index 0 is the vault root ("")
    note_folder: np.ndarray
    names: list[str]
    link_paths: list[str]  # "folder/Name" form used by path links
    ambiguous: np.ndarray  # name shared with a note in another folder
    topics: np.ndarray  # index of the source note each note is about
    lengths: np.ndarray  # target body length in words
    headings: list[tuple[str, ...]]
    popularity: np.ndarray
    link_rates: np.ndarray  # links per word
    has_frontmatter: np.ndarray
    private: np.ndarray
    tag_pool: list[str]
    broken_names: list[str]


class TitleMaker:
    """Draws titles of 1-5 source-vocabulary words, case styled like real notes."""

    def __init__(self, corpus: SourceCorpus, rng: random.Random) -> None:
        self.words = corpus.vocabulary
        self.cumulative = list(itertools.accumulate(corpus.vocabulary_weights))
        self.count_cumulative = list(itertools.accumulate(TITLE_WORD_WEIGHTS))
        self.rng = rng

    def phrase(self, word_count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=word_count)

    def title(self) -> str:
        count = self.rng.choices(TITLE_WORD_COUNTS, cum_weights=self.count_cumulative)[0]
        words = self.phrase(count)
        style = self.rng.random()
        if style < 0.45:
            words[0] = words[0].capitalize()
        elif style < 0.65:
            words = [w.capitalize() for w in words]
        return " ".join(words)

    def unique_titles(self, count: int, taken: set[str]) -> list[str]:
        titles = []
        while len(titles) < count:
            title = self.title()
            # Obsidian resolves links case-insensitively, and some file systems too.
            if title.lower() not in taken:
                taken.add(title.lower())
                titles.append(title)
        return titles


def plan_folders(note_count: int, titles: TitleMaker, rng: random.Random) -> list[str]:
    """About sqrt(N)/2 folders, at most three deep; the root is folder 0."""
    folder_count = max(1, round(math.sqrt(note_count) / 2))
    folders = [""]
    depth = [0]
    taken = {"templates", ".obsidian"}
    for i in range(folder_count):
        shallow = [f for f in range(1, len(folders)) if depth[f] < 3]
        parent = 0 if i < 3 or not shallow or rng.random() < 0.35 else rng.choice(shallow)
        name = " ".join(w.capitalize() for w in titles.phrase(rng.choice((1, 2, 2))))
        while name.lower() in taken:
            name = " ".join(w.capitalize() for w in titles.phrase(2))
        taken.add(name.lower())
        folders.append(f"{folders[parent]}/{name}" if parent else name)
        depth.append(depth[parent] + 1)
    return folders


def zipf_weights(count: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights over `count` items in a random order, summing to 1."""
    ranks = rng.permutation(count) + 1
    weights = ranks.astype(np.float64) ** -exponent
    return weights / weights.sum()


def duplicate_names(
    names: list[str], note_folder: np.ndarray, folder_count: int, share: float, rng: random.Random
) -> None:
    """Give a few notes the name of a note elsewhere: ambiguous link targets."""
    used = {(int(f), n.lower()) for f, n in zip(note_folder, names)}
    count = round(len(names) * share) if folder_count > 1 else 0
    chosen = rng.sample(range(len(names)), min(count * 2, len(names)))
    copies, originals = chosen[:count], chosen[count:]
    for copy, original in zip(copies, originals):
        name = names[original]
        folder = int(note_folder[copy])
        for _ in range(20):
            if (folder, name.lower()) not in used:
                break
            folder = rng.randrange(folder_count)
        else:
            continue
        used.discard((int(note_folder[copy]), names[copy].lower()))
        used.add((folder, name.lower()))
        names[copy] = name
        note_folder[copy] = folder


def plan_headings(
    corpus: SourceCorpus, topics: np.ndarray, lengths: np.ndarray, rng: random.Random
) -> list[tuple[str, ...]]:
    """Headings every few paragraphs, mostly borrowed from the topic's own note."""
    planned = []
    for topic, length in zip(topics.tolist(), lengths.tolist()):
        count = min(12, int(length / rng.uniform(150, 350)))
        own = corpus.note_headings[topic]
        chosen: list[str] = []
        for _ in range(count * 2):
            if len(chosen) == count:
                break
            pool = own if own and rng.random() < 0.6 else corpus.headings
            heading = rng.choice(pool) if pool else f"Part {len(chosen) + 1}"
            if heading not in chosen:
                chosen.append(heading)
        planned.append(tuple(chosen))
    return planned


def plan_tags(corpus: SourceCorpus, note_count: int, titles: TitleMaker) -> list[str]:
    """Tags of the source vault, then vocabulary words, some nested under a parent tag."""
    tags = list(corpus.tags[:30])
    seen = {t.lower() for t in tags}
    parents = tags[:5] or ["area"]
    for word in titles.phrase(20 + int(math.sqrt(note_count) / 2)):
        tag = word if titles.rng.random() < 0.8 else f"{titles.rng.choice(parents)}/{word}"
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return tags


def plan_vault(corpus: SourceCorpus, note_count: int, seed: int) -> VaultPlan:
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    titles = TitleMaker(corpus, pyrng)
    folders = plan_folders(note_count, titles, pyrng)
    note_folder = rng.choice(len(folders), size=note_count, p=zipf_weights(len(folders), FOLDER_SIZE_EXPONENT, rng))
    names = titles.unique_titles(note_count, {"daily note", "meeting note", "literature note"})
    duplicate_names(names, note_folder, len(folders), DUPLICATE_NAME_SHARE, pyrng)
    name_counts = Counter(n.lower() for n in names)
    # Drawing the topic uniformly and the length from the topic's own length is a
    # draw from the source's empirical length distribution; the jitter keeps lengths
    # from repeating exactly.
    topics = rng.integers(0, len(corpus.note_words), size=note_count)
    lengths = np.rint(corpus.note_words[topics] * rng.lognormal(-0.05, 0.25, size=note_count)).astype(np.int64)
    link_rates = corpus.links_per_word * rng.lognormal(-0.15, 0.6, size=note_count)
    link_rates[rng.random(note_count) < LINKLESS_NOTE_SHARE] = 0.0
    private = rng.random(note_count) < PRIVATE_SHARE
    taken = {n.lower() for n in names}
    return VaultPlan(
        folders=folders,
        note_folder=note_folder,
        names=names,
        link_paths=[f"{folders[f]}/{n}" if f else n for f, n in zip(note_folder.tolist(), names)],
        ambiguous=np.array([name_counts[n.lower()] > 1 for n in names], dtype=bool),
        topics=topics,
        lengths=lengths,
        headings=plan_headings(corpus, topics, lengths, pyrng),
        popularity=zipf_weights(note_count, POPULARITY_EXPONENT, rng),
        link_rates=link_rates,
        has_frontmatter=(rng.random(note_count) < FRONTMATTER_SHARE) | private,
        private=private,
        tag_pool=plan_tags(corpus, note_count, titles),
        broken_names=titles.unique_titles(max(5, note_count // 200), taken),
    )


# --------------------------------------------------------------------------- links


class LinkPicker:
    """Chooses link targets: popular notes and notes of the same topic are favoured."""

    def __init__(self, plan: VaultPlan, corpus: SourceCorpus, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self.topic_neighbours = corpus.neighbours
        self.cumulative = np.cumsum(plan.popularity).tolist()
        self.members: dict[int, list[int]] = {}
        for note, topic in enumerate(plan.topics.tolist()):
            self.members.setdefault(topic, []).append(note)
        self.member_cumulative = {
            topic: list(itertools.accumulate(plan.popularity[notes].tolist())) for topic, notes in self.members.items()
        }

    def _from(self, notes: list[int] | None, cumulative: list[float]) -> int:
        index = bisect.bisect_left(cumulative, self.rng.random() * cumulative[-1])
        index = min(index, len(cumulative) - 1)
        return notes[index] if notes is not None else index

    def target(self, source: int) -> int:
        topic = int(self.plan.topics[source])
        roll = self.rng.random()
        if roll < SAME_TOPIC_LINK_SHARE + NEIGHBOUR_TOPIC_LINK_SHARE:
            if roll >= SAME_TOPIC_LINK_SHARE and self.topic_neighbours[topic]:
                topic = self.rng.choice(self.topic_neighbours[topic])
            notes = self.members.get(topic)
            if notes and len(notes) > 1:
                target = self._from(notes, self.member_cumulative[topic])
                if target != source:
                    return target
        target = self._from(None, self.cumulative)
        return target if target != source else self._from(None, self.cumulative)

    def link(self, source: int, span: str | None) -> tuple[str, bool]:
        """A wikilink, and whether it uses `span` as its alias (replacing it)."""
        rng = self.rng
        if rng.random() < BROKEN_LINK_SHARE:
            return f"[[{rng.choice(self.plan.broken_names)}]]", False
        target = self.target(source)
        name = self.plan.names[target]
        if self.plan.ambiguous[target] and rng.random() < 0.5:
            name = self.plan.link_paths[target]
        roll = rng.random()
        if roll < 0.45:
            return f"[[{name}]]", False
        if roll < 0.72 and span:
            return f"[[{name}|{span}]]", True
        headings = self.plan.headings[target]
        if roll < 0.84 and headings:
            # An ambiguous name may resolve to the other note, which lacks the heading.
            where = self.plan.link_paths[target] if self.plan.ambiguous[target] else name
            return f"[[{where}#{rng.choice(headings)}]]", False
        return f"[[{self.plan.link_paths[target]}]]", False


def word_core(token: str) -> str | None:
    core = token.rstrip(",.;!?")
    return core if core.isalpha() else None


def insert_links(sentence: str, count: int, source: int, links: LinkPicker, rng: random.Random) -> tuple[str, int]:
    """Turn runs of 1-3 words into links, or add links after them.

    Each link stays a single token while the sentence is worked on, so a later
    link can never land inside an earlier one.
    """
    tokens = sentence.split(" ")
    inserted = 0
    for _ in range(count * 4):
        if inserted == count:
            break
        start = rng.randrange(len(tokens))
        if not word_core(tokens[start]):
            continue
        end = start
        wanted = rng.randint(1, 3)
        # Grow the span over plain words only: punctuation ends a phrase.
        while end - start + 1 < wanted and end + 1 < len(tokens) and tokens[end].isalpha():
            if not word_core(tokens[end + 1]):
                break
            end += 1
        core = word_core(tokens[end]) or ""
        trail = tokens[end][len(core) :]
        link, replaces_span = links.link(source, " ".join(tokens[start:end] + [core]))
        if replaces_span or rng.random() < 0.5:
            tokens[start : end + 1] = [link + trail]
        else:
            tokens[end] = f"{core} ({link}){trail}"
        inserted += 1
    return " ".join(tokens), inserted


# --------------------------------------------------------------------------- note text


TEMPLATES = {
    "Daily note": "---\ntags:\n  - daily\ncreated: {{date}}\n---\n\n# {{date}}\n\n## Tasks\n\n- [ ] \n\n## Notes\n\n",
    "Meeting note": (
        "---\ntags:\n  - meeting\ncreated: {{date}}\nattendees: []\n---\n\n# {{title}}\n\n"
        "## Agenda\n\n- \n\n## Decisions\n\n- \n\n## Actions\n\n- [ ] \n"
    ),
    "Literature note": (
        "---\ntags: [literature]\ncreated: {{date}}\nauthor: \nsource: \n---\n\n# {{title}}\n\n"
        "## Summary\n\n## Key ideas\n\n- \n\n## Quotes\n\n> \n"
    ),
}


@dataclass(frozen=True)
class SentencePools:
    """Where one note's sentences come from, and in what shares."""

    own: tuple[int, int]  # the topic note's sentences, as a range
    neighbours: list[int]  # sentences of notes linked to or from the topic note
    share_own: float
    share_neighbours: float  # the rest comes from the whole source vault


class NoteComposer:
    """Writes one note's text from borrowed sentences, following the plan."""

    def __init__(self, plan: VaultPlan, corpus: SourceCorpus, rng: random.Random) -> None:
        self.plan = plan
        self.corpus = corpus
        self.rng = rng
        self.links = LinkPicker(plan, corpus, rng)
        self.tag_cumulative = list(itertools.accumulate(1 / (r + 1) for r in range(len(plan.tag_pool))))
        self.link_count = 0
        words = corpus.sentence_words
        self.own_words = [sum(words[start:end]) for start, end in corpus.note_sentences]
        self.neighbour_words = [sum(words[s] for s in pool) for pool in corpus.neighbour_sentences]
        self.rate = 0.0
        self.budget = 0.0

    # -- sentences

    def _pools(self, note: int, length: int) -> SentencePools:
        topic = int(self.plan.topics[note])
        # A short topic note would otherwise be repeated over and over: lean on its
        # neighbours and the whole vault once its own sentences run out.
        share_own = 0.65 * min(1.0, self.own_words[topic] / max(1, length))
        share_neighbours = (0.9 - share_own) * min(1.0, self.neighbour_words[topic] / max(1, length))
        return SentencePools(
            self.corpus.note_sentences[topic], self.corpus.neighbour_sentences[topic], share_own, share_neighbours
        )

    def _sentence_ids(self, count: int, pools: SentencePools) -> list[int]:
        """Consecutive sentences of the topic note, or scattered ones from elsewhere."""
        rng = self.rng
        roll = rng.random()
        start, end = pools.own
        if roll < pools.share_own and end > start:
            first = rng.randrange(start, end)
            return list(range(first, min(end, first + count)))
        if roll < pools.share_own + pools.share_neighbours and pools.neighbours:
            return [rng.choice(pools.neighbours) for _ in range(count)]
        total = len(self.corpus.sentences)
        return [rng.randrange(total) for _ in range(count)]

    def _sentence(self, note: int, sentence: int) -> str:
        text = self.corpus.sentences[sentence]
        self.budget += self.corpus.sentence_words[sentence] * self.rate
        if self.budget >= 1 and self.corpus.linkable[sentence]:
            text, inserted = insert_links(text, min(3, int(self.budget)), note, self.links, self.rng)
            self.budget -= inserted
            self.link_count += inserted
        return text

    # -- blocks

    def _until_length(self, ids: list[int], remaining: int) -> list[int]:
        """The shortest prefix of `ids` that brings the note to its length."""
        words = self.corpus.sentence_words
        for end, sentence in enumerate(ids, start=1):
            remaining -= words[sentence]
            if remaining <= 0:
                return ids[:end]
        return ids

    def _paragraph(self, note: int, pools: SentencePools, remaining: int) -> tuple[str, int]:
        rng = self.rng
        kind = rng.random()
        words = self.corpus.sentence_words
        if kind < 0.12:
            ids = [self._sentence_ids(1, pools)[0] for _ in range(rng.randint(2, 6))]
            ids = self._until_length(ids, remaining)
            marker = "- [ ] " if rng.random() < 0.08 else "- "
            items = []
            for position, sentence in enumerate(ids):
                indent = "  " if position and rng.random() < 0.15 else ""
                items.append(indent + marker + self._sentence(note, sentence))
            return "\n".join(items), sum(words[s] for s in ids)
        sentence_count = rng.randint(1, 6) if kind >= 0.15 else 1
        ids = self._until_length(self._sentence_ids(sentence_count, pools), remaining)
        text = " ".join(self._sentence(note, s) for s in ids)
        return ("> " + text if kind < 0.15 else text), sum(words[s] for s in ids)

    def _code_block(self) -> str:
        if self.corpus.code_blocks:
            return self.rng.choice(self.corpus.code_blocks)
        return "```python\ndef mean(values):\n    return sum(values) / len(values)\n```"

    def _dataview_block(self) -> str:
        rng = self.rng
        tag = rng.choice(self.plan.tag_pool) if self.plan.tag_pool else "note"
        folder = rng.choice(self.plan.folders[1:] or ["/"])
        return rng.choice(
            [
                f"```dataview\nTABLE created, tags\nFROM #{tag}\nSORT created DESC\nLIMIT 20\n```",
                f'```dataview\nLIST\nFROM "{folder}"\nSORT file.mtime DESC\n```',
                f"```dataview\nTASK\nFROM #{tag}\nWHERE !completed\n```",
            ]
        )

    def _related_section(self, note: int) -> str:
        items = [self.links.link(note, None)[0] for _ in range(self.rng.randint(2, 5))]
        self.link_count += len(items)
        return "## Related\n\n" + "\n".join("- " + item for item in items)

    def body(self, note: int) -> str:
        rng = self.rng
        length = int(self.plan.lengths[note])
        headings = self.plan.headings[note]
        pools = self._pools(note, length)
        self.rate = float(self.plan.link_rates[note])
        self.budget = rng.random()
        offset = rng.choice((0.0, 0.5))
        thresholds = [length * (j + offset) / len(headings) for j in range(len(headings))]
        code_at = rng.randint(0, 4) if rng.random() < CODE_BLOCK_SHARE else -1
        dataview_at = rng.randint(0, 4) if rng.random() < DATAVIEW_SHARE else -1
        blocks = [f"# {self.plan.names[note]}"] if rng.random() < 0.15 else []
        words = paragraphs = next_heading = 0
        # Keep going past the length if a planned heading is still missing: links
        # of the form [[Name#Heading]] must find it.
        while words < length or next_heading < len(headings):
            if next_heading < len(headings) and words >= thresholds[next_heading]:
                level = "###" if next_heading and rng.random() < 0.25 else "##"
                blocks.append(f"{level} {headings[next_heading]}")
                next_heading += 1
            if paragraphs == code_at:
                blocks.append(self._code_block())
            if paragraphs == dataview_at:
                blocks.append(self._dataview_block())
            remaining = length - words
            if next_heading < len(headings):
                remaining = min(remaining, math.ceil(thresholds[next_heading]) - words)
            text, count = self._paragraph(note, pools, remaining)
            blocks.append(text)
            words += count
            paragraphs += 1
        if code_at >= paragraphs:
            blocks.append(self._code_block())
        if dataview_at >= paragraphs:
            blocks.append(self._dataview_block())
        if rng.random() < RELATED_SECTION_SHARE:
            blocks.append(self._related_section(note))
        return "\n\n".join(blocks) + "\n" if blocks else ""

    def frontmatter(self, note: int) -> str:
        rng = self.rng
        lines = ["---"]
        if rng.random() < 0.9 and self.plan.tag_pool:
            tags = sorted(set(rng.choices(self.plan.tag_pool, cum_weights=self.tag_cumulative, k=rng.randint(1, 4))))
            if rng.random() < 0.4:
                lines.append("tags: [" + ", ".join(tags) + "]")
            else:
                lines.append("tags:")
                lines.extend("  - " + tag for tag in tags)
        created = CREATED_FIRST_DAY + timedelta(days=rng.randrange(CREATED_SPAN_DAYS))
        if rng.random() < 0.2:
            lines.append(f"created: {created.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00")
        else:
            lines.append(f"created: {created.isoformat()}")
        if rng.random() < 0.15:
            lines.append("aliases:")
            lines.extend(f'  - "{alias}"' for alias in self._aliases(note))
        if self.plan.private[note]:
            lines.append("private: true")
        lines.append("---")
        return "\n".join(lines) + "\n"

    def _aliases(self, note: int) -> list[str]:
        words = self.plan.names[note].split()
        aliases = []
        if len(words) > 1:
            aliases.append("".join(w[0] for w in words).upper())
        if not aliases or self.rng.random() < 0.4:
            aliases.append(self.plan.names[note].lower() + " notes")
        return aliases

    def note(self, note: int) -> tuple[str, int]:
        """The note's text and its body length in words."""
        head = self.frontmatter(note) if self.plan.has_frontmatter[note] else ""
        body = self.body(note)
        return head + ("\n" + body if head and body else body), len(body.split())


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class VaultSummary:
    notes: int
    folders: int
    words: int
    links: int
    bytes: int
    seconds: float


def write_text(path: Path, text: str, mtime: int) -> int:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.utime(path, (mtime, mtime))
    return len(text.encode("utf-8"))


def write_vault(out: Path, plan: VaultPlan, corpus: SourceCorpus, seed: int) -> tuple[int, int, int]:
    """Write every note in one pass; returns (words, links, bytes)."""
    (out / ".obsidian").mkdir(parents=True, exist_ok=True)
    (out / "templates").mkdir(exist_ok=True)
    for folder in plan.folders[1:]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    size = write_text(out / ".obsidian" / "app.json", "{}", BASE_MTIME)
    for i, (name, text) in enumerate(TEMPLATES.items()):
        size += write_text(out / "templates" / f"{name}.md", text, BASE_MTIME - 3600 + i)
    composer = NoteComposer(plan, corpus, random.Random(seed * 7919 + 1))
    words = 0
    for note, (folder, name) in enumerate(zip(plan.note_folder.tolist(), plan.names)):
        text, body_words = composer.note(note)
        words += body_words
        size += write_text(out / plan.folders[folder] / f"{name}.md", text, BASE_MTIME + note * MTIME_STEP)
    # Directory mtimes change as files are created; pin them last, deepest first.
    for folder in sorted(plan.folders[1:] + [".obsidian", "templates"], key=lambda f: -f.count("/")):
        os.utime(out / folder, (BASE_MTIME, BASE_MTIME))
    os.utime(out, (BASE_MTIME, BASE_MTIME))
    return words, composer.link_count, size


def generate(out: Path, note_count: int, seed: int, source: Path) -> VaultSummary:
    started = time.perf_counter()
    corpus = read_source(source)
    plan = plan_vault(corpus, note_count, seed)
    words, links, size = write_vault(out, plan, corpus, seed)
    return VaultSummary(note_count, len(plan.folders) - 1, words, links, size, time.perf_counter() - started)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate a synthetic Obsidian vault for benchmarks.")
    parser.add_argument("out_dir", type=Path, help="directory to create; must be empty or absent")
    parser.add_argument("--notes", type=int, required=True, help="number of notes to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same arguments give identical files")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="real vault to borrow text from")
    args = parser.parse_args(argv)
    if args.notes < 1:
        parser.error("--notes must be at least 1")
    if not args.source.is_dir():
        parser.error(f"source vault not found: {args.source}")
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        # Leftover files from another run would make the vault differ from its seed.
        parser.error(f"output directory is not empty: {args.out_dir}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = generate(args.out_dir, args.notes, args.seed, args.source)
    print(
        f"notes: {summary.notes}  folders: {summary.folders}  words: {summary.words}  "
        f"links: {summary.links}  size: {summary.bytes / 2**20:.1f} MiB  seconds: {summary.seconds:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
