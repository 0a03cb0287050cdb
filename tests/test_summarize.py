from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import EMBEDDING_F16, TEXT_MODEL

from ideaweave.errors import ModelError
from ideaweave.llama import file_model_id
from ideaweave.modelfiles import require_model
from ideaweave.prose import sentences_of
from ideaweave.summarize import (
    ELLIPSIS,
    INSTRUCTIONS,
    CentroidSummarizer,
    ExtractiveSummarizer,
    LlamaTextModel,
    LlmSummarizer,
    SummaryOptions,
    acceptable_llm_summary,
    clean_llm_output,
    cut_at_word,
    fit_length,
    prompt_text,
    rank_sentences,
    structured_reading,
    summarize_extractive,
    summarize_structured,
    supported_share,
)
from hostile_markdown import markdown_notes
from test_prose import STRUCTURED, note_of

CORRIGIBILITY = Path(__file__).resolve().parents[1] / "examples" / "vault" / "Concepts" / "Corrigibility.md"


def words(count: int, label: str = "word") -> str:
    return " ".join(f"{label}{i}" for i in range(count))


# ------------------------------------------------------------------ extractive summary


def test_extractive_summary_is_made_of_the_notes_own_sentences(embedder):
    note = note_of(CORRIGIBILITY.read_text(encoding="utf-8"), "Concepts/Corrigibility.md")
    summary = summarize_extractive(note, embedder)
    own = [s.text for s in sentences_of(note)]
    assert summary and len(summary) <= 300
    used = [text for text in own if text in summary]
    assert " ".join(used) == summary  # whole sentences of the note, nothing else, in the note's order
    assert 1 <= len(used) <= 2
    assert summarize_extractive(note, embedder) == summary  # the same note, the same summary


def test_extractive_summary_picks_the_central_sentences(embedder):
    text = (
        "# Sourdough\n\n"
        "Sourdough bread rises because wild yeast in the starter ferments the flour. "
        "My neighbour has a red bicycle with a basket. "
        "A sourdough starter is flour and water in which wild yeast and bacteria ferment. "
        "Feeding the starter daily keeps the yeast active so the bread dough rises well. "
        "What time is it? "
        "The weather was nice on Tuesday afternoon at the beach.\n"
    )
    summary = summarize_extractive(note_of(text, "Sourdough.md"), embedder)
    assert summary is not None
    assert "bicycle" not in summary and "weather" not in summary and "?" not in summary
    assert summary.count(".") == 2


def test_extractive_summary_respects_the_length_limits(embedder):
    note = note_of(CORRIGIBILITY.read_text(encoding="utf-8"), "Concepts/Corrigibility.md")
    one = summarize_extractive(note, embedder, sentences=1)
    assert one in [s.text for s in sentences_of(note)]
    for max_chars in (60, 120, 200):
        summary = summarize_extractive(note, embedder, max_chars=max_chars)
        assert summary and len(summary) <= max_chars
    cut = summarize_extractive(note, embedder, max_chars=60)
    assert cut.endswith(ELLIPSIS) and any(s.text.startswith(cut[:-1]) for s in sentences_of(note))


def test_short_notes_and_templates_get_no_summary(embedder):
    assert summarize_extractive(note_of("# Title\n\nJust a few words here.\n"), embedder) is None
    # Thirty words, but in a code block, a heading and a link list: no prose.
    no_prose = f"# {words(10)}\n\n```\n{words(30)}\n```\n\n- [[A]]\n- [[B]]\n"
    assert summarize_extractive(note_of(no_prose), embedder) is None
    prose = "This sentence has enough words to count for something in a summary. " * 5
    assert summarize_extractive(note_of(prose, "Templates/Daily.md", template_folder="Templates"), embedder) is None
    assert summarize_extractive(note_of(prose), embedder, min_words=100) is None
    assert summarize_extractive(note_of(prose), embedder) is not None


def test_the_extractive_summarizer_uses_its_options(embedder):
    note = note_of(CORRIGIBILITY.read_text(encoding="utf-8"), "Concepts/Corrigibility.md")
    options = SummaryOptions(sentences=1, min_words=10, max_chars=120)
    summary = CentroidSummarizer(embedder, options).summarize(note)
    assert summary == summarize_extractive(note, embedder, sentences=1, min_words=10, max_chars=120)
    assert summary and len(summary) <= 120
    assert CentroidSummarizer(embedder, SummaryOptions(min_words=10_000)).summarize(note) is None


def test_ranking_balances_sections_and_favours_the_title():
    a, b, c = np.eye(3, dtype=np.float32)
    # One sentence on topic a, four on topic b: a plain centroid would rank b first; with each
    # section's centroid counting once, a and b tie and the earlier sentence wins.
    vectors = np.array([a, b, b, b, b])
    assert rank_sentences(vectors, [0, 1, 1, 1, 1], range(5))[0] == 0
    assert rank_sentences(vectors, [0, 0, 0, 0, 0], range(5))[0] == 1
    # Only candidates are ranked; the title tips the balance between equally central sentences.
    assert rank_sentences(vectors, [0, 1, 1, 1, 1], [2, 4]) == [2, 4]
    both = np.array([a, b], dtype=np.float32)
    assert rank_sentences(both, [0, 1], range(2), title=b) == [1, 0]
    assert rank_sentences(both, [0, 1], range(2), title=None) == [0, 1]


def test_fit_length_and_cut_at_word():
    texts_ = ["First sentence is here.", "Second one is a lot longer than the first one."]
    assert fit_length(texts_, [0, 1], 100) == "First sentence is here. Second one is a lot longer than the first one."
    assert fit_length(texts_, [0, 1], 40) == "First sentence is here."  # the lower-ranked goes
    assert fit_length(texts_, [1, 0], 50) == "Second one is a lot longer than the first one."
    assert fit_length(texts_, [1, 0], 20) == "Second one is a lot…"
    assert cut_at_word("Alpha beta, gamma delta", 13) == "Alpha beta…"
    assert cut_at_word("Supercalifragilistic", 6) == "Super…"
    assert cut_at_word("Short.", 10) == "Short."


# ------------------------------------------------------------------ abstractive summary: checks


NOTE_TEXT = (
    "A corrigible agent lets its overseers change its goals, pause it or turn it off.\n"
    "Almost any goal gives an agent a reason to resist correction, so corrigibility runs against the grain.\n"
    "Utility indifference makes the agent indifferent to whether the shutdown button is pressed."
)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "  ",
        "... 42 !!",
        "Summarise this note in one or two sentences.",  # echoes the prompt
        "Use only what the note says; add nothing.",  # echoes the instructions
        "Almost any goal gives an agent a reason to resist correction, so corrigibility runs against it.",  # copied
        "A corrigible agent lets its overseers change its goals, pause it or turn it off.",  # copied
        "Corrigible agents accept correction. " * 9,  # too long
        "Corrigible agents accept correction from overseers. Corrigible agents accept correction from overseers.",
        "Corrigibility was defined by Stuart Russell in 1999 for shutdown buttons.",  # name and year made up
        "Agents lets its overseers change goals, and corrigible agents lets its overseers change goals too.",
        "It is a classic example of how a simple and elegant concept can create a complex and difficult problem.",
    ],
)
def test_unacceptable_llm_outputs_are_rejected(output):
    assert not acceptable_llm_summary(output, NOTE_TEXT, INSTRUCTIONS)


def test_acceptable_llm_output_passes():
    good = ("Corrigibility asks an agent to let overseers change its goals or turn it off, though almost any goal "
            "resists correction; utility indifference is one answer.")
    assert acceptable_llm_summary(good, NOTE_TEXT, INSTRUCTIONS)
    assert not acceptable_llm_summary(good, NOTE_TEXT, INSTRUCTIONS, max_chars=50)


def test_supported_share_counts_the_notes_words():
    assert supported_share("Corrigible agents resist correction.", NOTE_TEXT) == 1.0
    assert supported_share("Bananas ripen slowly in warm kitchens.", NOTE_TEXT) == 0.0
    assert supported_share("The note discusses the idea of it.", NOTE_TEXT) == 0.0  # nothing but common words


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("Summary: this note explains corrigibility. It has parts. And more.", "Explains corrigibility. It has parts."),
        ("Sure! Here is a summary of the note:\n\n**Agents** resist correction.", "Agents resist correction."),
        ("This note is about the shutdown problem.", "The shutdown problem."),
        ('"Agents resist correction."', "Agents resist correction."),
        ("- In summary, agents resist [[Correction|correction]].\n\nMore text.", "Agents resist correction."),
        ("First sentence is long enough here. " + "Second " * 60 + "end.", "First sentence is long enough here."),
    ],
)
def test_llm_output_is_cleaned(raw, cleaned):
    assert clean_llm_output(raw) == cleaned


def test_prompt_text_keeps_paragraphs_and_drops_markup():
    text = prompt_text(note_of(STRUCTURED))
    assert text.splitlines()[0] == "A garden needs watering and patience. Weeds grow back, e.g. after rain."
    assert "print" not in text and "Spade" not in text and "[[" not in text


# ------------------------------------------------------------------ abstractive summary: the real model


@pytest.fixture(scope="module")
def llm(embedder) -> LlmSummarizer:
    summarizer = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder), threads=1, verify=False)
    yield summarizer
    summarizer.close()


@pytest.fixture(scope="module")
def text_model(llm) -> LlamaTextModel:
    return llm.model()


def test_llm_summary_of_a_normal_note_is_never_empty(llm, embedder):
    text = "\n\n".join(CORRIGIBILITY.read_text(encoding="utf-8").split("\n\n")[:4])  # frontmatter and intro
    note = note_of(text, "Concepts/Corrigibility.md")
    summary, source = llm.summarize_with_source(note)
    assert source in ("llm", "extractive")
    assert summary and len(summary) <= 300
    if source == "llm":
        assert acceptable_llm_summary(summary, prompt_text(note), INSTRUCTIONS)
    else:
        assert summary == summarize_extractive(note, embedder)


def test_llm_is_not_asked_about_short_notes_or_templates(embedder):
    llm = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder), verify=False)
    short = note_of("# Tiny\n\nToo short to summarise.\n")
    assert llm.summarize_with_source(short) == (None, "extractive")
    template = note_of("This template sentence repeats to reach enough words for a summary. " * 5,
                       "Templates/T.md", template_folder="Templates")
    assert llm.summarize_with_source(template) == (None, "extractive")
    # Enough words by default, too few for these options: the extractive fallback has the same options.
    prose = note_of("Gardens need water and patience, and the weeds always come back after rain. " * 4)
    strict = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder, SummaryOptions(min_words=100)), SummaryOptions(min_words=100), verify=False)
    assert strict.summarize_with_source(prose) == (None, "extractive")
    assert not llm.loaded and not strict.loaded  # the model was never loaded, let alone asked


def test_the_llm_summarizer_depends_on_both_models_and_its_options(embedder):
    llm = LlmSummarizer(TEXT_MODEL, CentroidSummarizer(embedder, SummaryOptions(max_chars=120)), SummaryOptions(max_chars=120), verify=False)
    recipe = llm.depends_on()
    assert recipe["models"] == [file_model_id(TEXT_MODEL), embedder.model_id]
    assert recipe["options"] == {"sentences": 2, "min_words": 10, "max_chars": 120}
    assert CentroidSummarizer(embedder).depends_on() == {
        "models": [embedder.model_id], "options": {"sentences": 2, "min_words": 10, "max_chars": 300}}
    assert not llm.loaded  # naming the model does not load it


def test_a_missing_text_model_is_a_model_error_not_a_notes_failure(tmp_path, embedder):
    llm = LlmSummarizer(tmp_path / "missing.gguf", CentroidSummarizer(embedder))
    with pytest.raises(ModelError, match="not found"):
        llm.depends_on()


def test_long_notes_are_cut_to_fit_the_context(text_model):
    text = "Gardens need water and patience to grow. " * 600  # about 4,800 tokens
    prompt = text_model.chat_prompt("Gardens", text)
    assert text_model.count_tokens(prompt) + text_model.max_new_tokens <= text_model.n_ctx
    assert "Gardens need water" in prompt and prompt.count("Gardens need water") < 600
    with pytest.raises(ModelError):
        text_model.generate(prompt + text)


def test_a_file_that_is_not_a_model_is_a_model_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="cannot load"):
        LlamaTextModel(bad)


def test_a_model_without_a_chat_template_is_a_model_error():
    with pytest.raises(ModelError, match="chat template"):
        LlamaTextModel(require_model(EMBEDDING_F16, hash_it=False))


def test_the_text_model_survives_in_a_fresh_process():
    # The SIGILL of the repacked/AMX kernels kills the whole process, so it can only be seen from outside.
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ideaweave.summarize import LlamaTextModel\n"
        "llm = LlamaTextModel(Path(sys.argv[1]), threads=1, max_new_tokens=8)\n"
        "print(repr(llm.generate(llm.chat_prompt('Q4_1', 'A quantized model runs on every CPU kernel.'))))\n"
    )
    model = require_model(TEXT_MODEL, hash_it=False)
    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() not in ("", "''")


# ------------------------------------------------------------------ the default: the note's structure

OPENING_NOTE = (
    "Reward hacking is when an agent finds a way to collect reward its designer never meant to pay for. "
    "It follows from optimising a proxy. The designers wrote the reward by hand.\n\n"
    "## Examples\n\nA boat racing agent circled forever to collect points. A cleaning robot hid the mess.\n"
)


def test_the_default_summary_reads_the_note_from_its_start_and_fills_the_budget():
    note = note_of(OPENING_NOTE, "Reward hacking.md")
    summary = ExtractiveSummarizer(SummaryOptions(max_chars=215)).summarize(note)
    assert summary.startswith("Reward hacking is when an agent finds a way to collect reward")
    assert len(summary) <= 215 and summary.endswith(ELLIPSIS)  # the last sentence cut to use the budget
    sentences = [s.text for s in sentences_of(note)]
    assert all(part in " ".join(sentences) for part in summary.rstrip(ELLIPSIS).split(". ")[:-1])


def test_an_opening_quotation_is_not_the_summary():
    text = ('"The Axiom of Choice is necessary to select a set from an infinite number of pairs of socks." '
            "— Bertrand Russell\n\n> A quoted line that someone else wrote about something.\n\n"
            "The axiom of choice says that any collection of non-empty sets has a function choosing one element "
            "from each set. Most of mathematics assumes it without saying so.\n")
    summary = ExtractiveSummarizer().summarize(note_of(text, "Axiom of choice.md"))
    assert summary.startswith("The axiom of choice says") and "socks" not in summary and "quoted" not in summary


@pytest.mark.parametrize("marked", [
    "## TL;DR\n\nThe short version: reward is a proxy and proxies break under pressure.\n",
    "> [!summary] In one line\n> The short version: reward is a proxy and proxies break under pressure.\n",
    "# Abstract\n\nThe short version: reward is a proxy and proxies break under pressure.\n",
])
def test_an_abstract_the_user_wrote_comes_first(marked):
    text = OPENING_NOTE + "\n" + marked + "\n## More\n\nAnother paragraph with several more words in it here.\n"
    summary = ExtractiveSummarizer().summarize(note_of(text, "Reward hacking.md"))
    assert summary.startswith("The short version: reward is a proxy and proxies break under pressure.")


def test_a_sentence_added_at_the_end_leaves_the_summary_alone():
    long_note = OPENING_NOTE + "\n" + " ".join(f"Observation number {i} about the agent and its reward." for i in range(20))
    before = ExtractiveSummarizer().summarize(note_of(long_note, "Reward hacking.md"))
    after = ExtractiveSummarizer().summarize(note_of(long_note + "\n\nOne more sentence at the very end.\n",
                                                     "Reward hacking.md"))
    assert before == after


# The summary reads only the note's first sentences; `structured_reading` reads all of them (up to
# MAX_SENTENCES). Both must give the same summary on any note: these pieces put abstracts, quotes,
# labels and overlong sentences anywhere, and the budgets make the reading run past its first sentences.
READING_PIECES = (
    "Reward is a proxy for what the designer wanted, and proxies break under pressure.", "A label.",
    "> A quoted line that someone else wrote about something else entirely.", "## TL;DR", "# Summary",
    "> [!abstract] In short\n> The short version of the whole note, said once and plainly here.",
    '"An opening quotation about socks and sets." — Bertrand Russell', "## Examples",
    " ".join(["A very long sentence that goes on"] * 12) + ".", "Short one. Another one here. And a third.",
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(markdown_notes(), st.lists(st.sampled_from(READING_PIECES), max_size=60).map("\n\n".join)),
       st.sampled_from([40, 120, 300, 2000]), st.sampled_from([0, 10, 200]),
       st.sampled_from([frozenset(), frozenset({"abstract"}), frozenset({"quote", "length"})]))
def test_the_summary_from_the_first_sentences_is_the_one_from_all_of_them(text, max_chars, min_words, without):
    note = note_of(text, "Reward hacking.md")
    options = SummaryOptions(max_chars=max_chars, min_words=min_words)
    reading = structured_reading(note, options, without)
    assert summarize_structured(note, options, without) == (None if reading is None else reading[0])


def test_an_abstract_among_the_first_sentences_is_followed_by_what_comes_after_it():
    # The reading starts at the abstract and goes on after it; the sentences before it come only when the
    # rest of the note is used up. Read from its first dozen sentences alone, it would wrap around too early.
    before = " ".join(f"Opening remark number {i} about reward and its proxies." for i in range(10))
    after = " ".join(f"Later remark number {i} about what the agent did next." for i in range(20))
    text = f"{before}\n\n## TL;DR\n\nThe short version: proxies break.\n\n## More\n\n{after}\n"
    note = note_of(text, "Reward hacking.md")
    summary = summarize_structured(note, SummaryOptions(max_chars=200))
    assert summary.startswith("The short version: proxies break. Later remark number 0")
    assert summary == structured_reading(note, SummaryOptions(max_chars=200))[0]


def test_the_example_vault_summaries_read_from_the_first_sentences_are_the_same():
    vault = Path(__file__).resolve().parents[1] / "examples" / "vault"
    notes = [note_of(p.read_text("utf-8"), p.relative_to(vault).as_posix()) for p in sorted(vault.rglob("*.md"))]
    assert len(notes) >= 20
    for options in (SummaryOptions(), SummaryOptions(max_chars=80), SummaryOptions(max_chars=3000)):
        for note in notes:
            reading = structured_reading(note, options)
            assert summarize_structured(note, options) == (None if reading is None else reading[0]), note.path
