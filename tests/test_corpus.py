"""The ranking snapshot's title matcher: which notes a text names by title or alias."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from ideaweave.corpus import STOPWORDS, TITLE_WORDS, TitleMatcher, normalise_title

WORDS = ["goodhart", "law", "reward", "hacking", "the", "agent", "corrigibility", "off-switch", "game", "it's"]
title = st.lists(st.sampled_from(WORDS), min_size=1, max_size=TITLE_WORDS + 1).map(" ".join)
note = st.tuples(title, st.lists(title, max_size=2))


def joined_runs_reference(notes: list[tuple[str, list[str]]], text: str) -> set[int]:
    """Every run of up to TITLE_WORDS words, joined and looked up in a dictionary of the titles."""
    names: dict[str, set[int]] = {}
    for i, (name, aliases) in enumerate(notes):
        for key in (normalise_title(a) for a in [name] + aliases):
            if len(key) >= 3 and key not in STOPWORDS and key.count(" ") < TITLE_WORDS:
                names.setdefault(key, set()).add(i)
    words = normalise_title(text).split()
    found: set[int] = set()
    for start in range(len(words)):
        for size in range(1, TITLE_WORDS + 1):
            found |= names.get(" ".join(words[start:start + size]), set())
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(note, max_size=12), st.lists(st.sampled_from(WORDS + ["Reward", "LAW.", "x", "\n"]), max_size=40))
def test_the_matcher_finds_what_joined_word_runs_find(notes, words):
    text = " ".join(words)
    matcher = TitleMatcher([(name, False, False, aliases) for name, aliases in notes])
    found = matcher.mentioned(text)
    assert sorted(found.tolist()) == sorted(joined_runs_reference(notes, text))
    assert len(set(found.tolist())) == len(found)


def test_a_title_is_found_only_as_whole_words():
    matcher = TitleMatcher([("Reward hacking", False, False, ["reward tampering"]), ("Law", False, False, [])])
    assert matcher.mentioned("On reward hacking, see Goodhart's LAW.").tolist() == [0, 1]
    assert matcher.mentioned("reward tampering").tolist() == [0]
    assert matcher.mentioned("rewards hacking lawful").tolist() == []
    assert matcher.mentioned("").tolist() == []
