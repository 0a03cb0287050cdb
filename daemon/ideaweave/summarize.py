"""Summaries of notes: extractive (the note's own sentences, ranked) and abstractive (a small text model).

The extractive summary is the default because it is faithful by construction: it picks the sentences
closest to the note's centre of meaning and shows them in the note's order, links rendered as the
words a reader sees (the sentences come from `prose`). The abstractive summary asks a GGUF instruct
model for one or two sentences and keeps its answer only when :func:`acceptable_llm_summary` finds
nothing wrong with it; otherwise the extractive summary is used. Both are `Summarizer`s, built with the
settings they need. Caching is `summaries`' business: apart from the model calls everything here is pure.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .embedding import Embedder
from .errors import ModelError
from .llama import file_model_id, load_model, new_context
from .modelfiles import require_model
from .prose import (Sentence, balance_quotes, iter_sentences, render_inline, sentence_spans, sentences_of, word_count,
                    words_of)
from .vault import Note

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
# The structured summary reads this many first, and four times more each time that was not enough.
FIRST_READ_SENTENCES = 12
# A candidate this similar to one already chosen repeats it: the next one is taken instead.
REDUNDANT_SIMILARITY = 0.85

# What may follow a sentence's last punctuation mark: closing quotes and brackets, emphasis markers.
_CLOSERS = "\"'”’)]*_ "


@dataclass(frozen=True)
class SummaryOptions:
    """The summary settings: how many sentences, from how many words of prose on, how long at most."""

    sentences: int = 2
    min_words: int = 10
    max_chars: int = 300


class Summarizer(Protocol):
    """What the sync and the API need from a way of summarising notes."""

    mode: str  # "extractive" or "llm": the store caches summaries per mode
    needs_model: bool  # a model call per summary: not made while notes are indexed

    def depends_on(self) -> dict:
        """What its summaries depend on besides the note's body (models, settings), as JSON-able data:
        the summary cache is keyed by it, so a change to any of it makes fresh summaries."""
        ...

    def summarize(self, note: Note) -> str | None:
        """The note's summary; None when there is nothing to summarise (a template, too few words)."""
        ...


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


_ABSTRACT_HEADING = re.compile(r"^(?:abstract|summary|tl;? ?dr|overview|in short|in brief|the gist|key idea)s?\b", re.I)
_ABSTRACT_CALLOUT = re.compile(r"^[ \t]*>[ \t]*\[!(?:abstract|summary|tldr)\]", re.I)
_ABSTRACT_CALLOUT_LINE = re.compile(_ABSTRACT_CALLOUT.pattern, re.I | re.M)
_QUOTE_LINE = re.compile(r"^[ \t]*>")
_OPEN_QUOTES = "\"“‘«"
_ATTRIBUTION = re.compile(r"[\"”»]\s*[—–-]{1,2}\s*\S|^\s*[—–]\s*\S")  # "... ." — Bertrand Russell
# The share of the budget left for a last sentence that does not fit whole: shorter, it says nothing.
MIN_CUT_CHARS = 40


def summarize_structured(note: Note, options: SummaryOptions = SummaryOptions(),
                         without: frozenset[str] | set[str] = frozenset()) -> str | None:
    """The note read from its start, as a person skimming it would: its prose sentences in order until
    max_chars is filled, the last one cut at a word boundary when only part of it fits. Passed over: a
    quotation or epigraph (a quoted line, a quote with its attribution); read first: a section or
    callout the user called Abstract, Summary or TL;DR. No model call: the note's structure is the
    evidence. Measured (bench/summary_ablation.py): other signals that pass over sentences (questions,
    list fragments, formulas, definitions of the title, lines about the page) each cost more than they
    saved, so they are not used. `without` switches signals off for ablations: quote, abstract, length.

    Only as many sentences are rendered as the reading needs (a few, usually): a longer start of the
    note is read only when the reading ran out of sentences before it was settled. The summary is the
    one `structured_reading` gives from every sentence."""
    if note.is_template:
        return None
    sentences = iter_sentences(note)
    found: list[Sentence] = []
    wanted = FIRST_READ_SENTENCES
    while True:
        found += itertools.islice(sentences, min(wanted, MAX_SENTENCES) - len(found))
        every = len(found) < min(wanted, MAX_SENTENCES) or len(found) == MAX_SENTENCES
        reading = _read_from_start(note, found, options, without, every)
        if reading is not None:
            return reading[0]
        wanted *= 4


def structured_reading(note: Note, options: SummaryOptions = SummaryOptions(),
                       without: frozenset[str] | set[str] = frozenset()) -> tuple[str, list[tuple[str, str]]] | None:
    """(the summary, each sentence with what the reading did with it: "used", "cut to fit", "passed over:
    ...", "not needed"); None when the note gets no summary. What `ideaweave summarize` shows as why."""
    if note.is_template:
        return None
    found = sentences_of(note)[:MAX_SENTENCES]
    reading = _read_from_start(note, found, options, without, every=True)
    assert reading is not None  # every sentence was given: the reading is settled
    return None if reading[0] is None else (reading[0], reading[1])


def _read_from_start(note: Note, found: list[Sentence], options: SummaryOptions, without,
                     every: bool) -> tuple[str | None, list[tuple[str, str]]] | None:
    """The structured reading of `found`, the note's first sentences: (the summary or None, each sentence's
    verdict). When `found` is not `every` sentence, None unless no later sentence could change the summary:
    enough words, a usable sentence, no abstract that could start later, and the summary full before the
    last sentence was reached."""
    words = sum(word_count(s.text) for s in found)
    if every and (not found or words < options.min_words):
        return None, []
    verdicts = {i: reason for i, s in enumerate(found) if (reason := _passed_over(note, s, i, without))}
    usable = [i for i in range(len(found)) if i not in verdicts]
    if not every and (words < options.min_words or not usable):
        return None
    usable = usable or list(range(len(found)))
    marked = [i for i in usable if "abstract" not in without and _in_abstract(note, found[i].start)]
    if not every and not marked and "abstract" not in without and _may_hold_abstract(note):
        return None
    first = marked[0] if marked else usable[0]
    text, full = "", False
    for i in [i for i in usable if i >= first] + [i for i in usable if i < first]:
        sentence = found[i].text
        if not text and len(sentence) > options.max_chars:
            text, verdicts[i], full = cut_at_word(sentence, options.max_chars), "cut to fit", i >= first
            break
        if len(text) + 1 + len(sentence) <= options.max_chars:
            text, verdicts[i] = f"{text} {sentence}".strip(), "used"
            continue
        room = options.max_chars - len(text) - 1
        if "length" not in without and room >= MIN_CUT_CHARS:
            text, verdicts[i] = f"{text} {cut_at_word(sentence, room)}", "cut to fit"  # the budget is there to be used
        full = i >= first  # past the sentences from `first` on, a later one would have come before it
        break
    if not every and not full:
        return None
    return text, [(s.text, verdicts.get(i, "not needed")) for i, s in enumerate(found)]


def _passed_over(note: Note, sentence: Sentence, n: int, without) -> str | None:
    """Why a sentence does not speak for the note, if it does not: a quotation that opens the note (an
    epigraph), a quoted line, a quote with its attribution; a label of fewer than four words."""
    line = note.text[note.text.rfind("\n", 0, sentence.start) + 1:sentence.start + 1]
    raw = note.text[sentence.start:sentence.end]
    if "quote" not in without and ((_QUOTE_LINE.match(line) and not _in_abstract(note, sentence.start))
                                   or raw[:1] in _OPEN_QUOTES and n < 3 or _ATTRIBUTION.search(raw)):
        return "passed over: a quotation"
    return "passed over: under four words" if word_count(sentence.text) < 4 else None


def _may_hold_abstract(note: Note) -> bool:
    """Whether any sentence of the note could be in an abstract (`_in_abstract`): a heading or a callout
    that names one."""
    return (any(_ABSTRACT_HEADING.match(h.text.strip()) for h in note.headings)
            or _ABSTRACT_CALLOUT_LINE.search(note.text, note.body_start) is not None)


def _in_abstract(note: Note, offset: int) -> bool:
    """Under a heading called Abstract, Summary, TL;DR..., or inside an abstract/summary callout."""
    before = [h for h in note.headings if h.start <= offset]
    if before and _ABSTRACT_HEADING.match(before[-1].text.strip()):
        return True
    start = note.text.rfind("\n", 0, offset) + 1
    while start > note.body_start and _QUOTE_LINE.match(note.text[start:offset]):  # walk up the quote
        if _ABSTRACT_CALLOUT.match(note.text[start:]):
            return True
        start = note.text.rfind("\n", 0, start - 1) + 1
    return bool(_ABSTRACT_CALLOUT.match(note.text[start:]))


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


class ExtractiveSummarizer:
    """The default: the note's own sentences as its structure ranks them (`summarize_structured`); no model."""

    mode = "extractive"
    needs_model = False  # cheap enough to make while the note is indexed (`Summaries.remember`)
    method = "structured-1"  # part of the cache key: a new method refreshes every cached summary

    def __init__(self, options: SummaryOptions = SummaryOptions()):
        self.options = options

    def depends_on(self) -> dict:
        return {"models": [], "method": self.method, "options": asdict(self.options)}

    def summarize(self, note: Note) -> str | None:
        return summarize_structured(note, self.options)

    def reading(self, note: Note) -> list[tuple[str, str]]:
        """Each sentence of the note with what the summary did with it (`ideaweave summarize` shows it)."""
        found = structured_reading(note, self.options)
        return found[1] if found else []


class CentroidSummarizer:
    """The note's most central sentences (`summarize_extractive`), ranked with the embedding model: an
    option (summary.mode = "centroid"); it embeds every sentence and scored below the default."""

    mode = "centroid"
    needs_model = True

    def __init__(self, embedder: Embedder, options: SummaryOptions = SummaryOptions()):
        self.embedder = embedder
        self.options = options

    def depends_on(self) -> dict:
        return {"models": [self.embedder.model_id], "options": asdict(self.options)}

    def summarize(self, note: Note) -> str | None:
        o = self.options
        return summarize_extractive(note, self.embedder, sentences=o.sentences, min_words=o.min_words,
                                    max_chars=o.max_chars)


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
    spans = sentence_spans(text)[:2]
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
    sentences = [_plain_words(output[a:b]) for a, b in sentence_spans(output)]
    return any(
        _longest_common_run(first, second) >= 0.5 * min(len(first), len(second))
        for n, first in enumerate(sentences) for second in sentences[n + 1:]
        if first and second
    )


def _unsupported_names(output: str, note_text: str) -> list[str]:
    """Numbers and names (capitalised words not opening a sentence) of the output that the note lacks."""
    known = {_base_word(w) for w in words_of(render_inline(note_text))}
    return [word for word, named in _words_and_names(output) if named and _base_word(word) not in known]


def supported_share(output: str, note_text: str) -> float:
    """The share of the output's ordinary words that the note also uses (compared by their first five
    letters, a crude stem: "corrigible" matches "corrigibility"). Left out: names and numbers, checked
    on their own and easy to copy around a made-up claim, function words, and the words any summary
    uses ("idea", "discusses")."""
    known = {w.lower()[:5] for w in words_of(render_inline(note_text))}
    content = [w.lower() for w, named in _words_and_names(output) if not named and w.lower() not in _COMMON_WORDS]
    if not content:
        return 0.0
    return sum(w[:5] in known for w in content) / len(content)


def _words_and_names(text: str) -> Iterator[tuple[str, bool]]:
    """Each word, and whether it is a number or a name (capitalised, not opening a sentence)."""
    for a, b in sentence_spans(text):
        for n, word in enumerate(words_of(text[a:b])):
            yield word, any(c.isdigit() for c in word) or (n > 0 and word[0].isupper() and word != "I")


def _base_word(word: str) -> str:
    word = word.lower()
    return word[:-2] if word.endswith(("'s", "’s")) else word


def _units(note_text: str) -> Iterator[str]:
    """The lines of a text and the sentences of each line."""
    for line in note_text.splitlines():
        if line.strip():
            yield line
            spans = sentence_spans(line)
            if len(spans) > 1:
                yield from (line[a:b] for a, b in spans)


def _plain_words(text: str) -> list[str]:
    return [w.lower() for w in words_of(render_inline(text))]


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
    """Summaries written by a GGUF instruct model, checked, with the extractive summary (built with the
    same options) as the fallback.

    The model loads on the first note that needs it: a run whose notes are all cached, short or
    templates never loads it.
    """

    mode = "llm"
    needs_model = True

    def __init__(self, model_path: Path, fallback: Summarizer, options: SummaryOptions = SummaryOptions(),
                 threads: int = 1, verify: bool = True, max_new_tokens: int = 80, n_ctx: int = 2048):
        """`fallback` summarises what the model's answer cannot (built with the same options)."""
        self.path = Path(model_path)
        self.options = options
        self.fallback = fallback
        self.threads, self.verify = threads, verify
        self.max_new_tokens, self.n_ctx = max_new_tokens, n_ctx
        self._model_id: str | None = None
        self._model: LlamaTextModel | None = None
        self._lock = threading.Lock()  # two threads must not load the model twice

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            # require_model first: a missing file is a ModelError that stops the run, not a failure
            # of every note in turn. Without hashing: this only names the file.
            self._model_id = file_model_id(require_model(self.path, hash_it=False))
        return self._model_id

    def depends_on(self) -> dict:
        fallback = self.fallback.depends_on()  # a fallback summary depends on what the fallback uses
        return {"models": [self.model_id, *fallback["models"]], "options": fallback["options"],
                "generation": {"max_new_tokens": self.max_new_tokens, "n_ctx": self.n_ctx}}

    def summarize(self, note: Note) -> str | None:
        return self.summarize_with_source(note)[0]

    def summarize_with_source(self, note: Note) -> tuple[str | None, str]:
        """(summary, source): the model's summary and "llm", or the extractive summary and "extractive"
        when the note is a template or too short to summarise, or the model's answer is not acceptable."""
        text = prompt_text(note)
        if note.is_template or word_count(text) < self.options.min_words:
            return self.fallback.summarize(note), "extractive"
        model = self.model()
        title = note_title(note)
        max_chars = self.options.max_chars
        answer = clean_llm_output(model.generate(model.chat_prompt(title, text)), max_chars)
        if acceptable_llm_summary(answer, f"{title}\n{text}", INSTRUCTIONS, max_chars):
            return answer, "llm"
        log.debug("%s: the model's summary was not used (%d characters)", note.path, len(answer or ""))
        return self.fallback.summarize(note), "extractive"

    def model(self) -> LlamaTextModel:
        """The text model, loaded on first use."""
        with self._lock:
            if self._model is None:
                path = require_model(self.path, hash_it=self.verify)
                self._model = LlamaTextModel(path, self.threads, self.max_new_tokens, self.n_ctx)
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def close(self) -> None:
        with self._lock:
            if self._model is not None:
                self._model.close()
                self._model = None


class LlamaTextModel:
    """A GGUF instruct model (SmolLM2-135M-Instruct by default) answering chat prompts, greedily.

    Driven through llama-cpp-python's low-level API, as the embedder is (see `llama` for why). The
    generation loop that ``Llama`` would run for us is a dozen lines: decode the prompt, then take the
    most likely token until an end token or the limit.
    """

    def __init__(self, path: Path, threads: int = 1, max_new_tokens: int = 80, n_ctx: int = 2048):
        import llama_cpp
        from llama_cpp import _internals

        self.path = Path(path)
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one llama context is not safe to use from two threads
        self._model = load_model(self.path)
        self._template = llama_cpp.llama_model_chat_template(self._model.model, None)
        if not self._template:
            self._model.close()
            raise ModelError(f"{self.path}: the model has no chat template; summaries need an instruct model")
        self.n_ctx = min(n_ctx, self._model.n_ctx_train())
        # n_batch = n_ctx: the whole prompt goes in one decode call.
        self._ctx = new_context(self._model, self.path, n_ctx=self.n_ctx, n_batch=self.n_ctx,
                                n_ubatch=min(512, self.n_ctx), threads=threads)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_ctx, embd=0, n_seq_max=1, verbose=False)
        self._sampler = _internals.LlamaSampler()
        self._sampler.add_greedy()  # temperature 0: the same note always gets the same summary
        self.model_id = file_model_id(self.path)

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
