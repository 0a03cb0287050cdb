"""Topics: the neighbour graph and its evidence on plain vectors, then the topics of a real vault indexed with
the real model (three clear groups of notes, a private note among them, a template)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave import topics as topics_module
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.corpus import Corpus
from ideaweave.prose import sentences_of
from ideaweave.topics import (
    TopicInput, build_topics, key_phrases, speakers, nearest_neighbours, standardised_similarity, terms, topic_graph, topic_id,
    topic_input, vault_topics,
)
from ideaweave.vault import Skipped
from test_watch import NOTES, write_vault

PRIVATE_NOTE = "Garden/Kohlrabi.md"
PRIVATE_WORDS = ("kohlrabi", "moonshadow")
PRIVATE_TEXT = """---
private: true
---
# Kohlrabi

Kohlrabi Moonshadow is my own cross of kohlrabi, grown in the vegetable garden from saved seed. Sow the seed in
spring in rich soil, water the beds deeply in dry weather, and mulch with compost so the swollen stems stay tender.
"""
TEMPLATE = "Templates/Daily.md"
GROUPS = ("Garden/", "Alignment/", "Kitchen/")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------ the graph (plain vectors)


def test_nearest_neighbours_are_the_exact_k_nearest():
    vectors = unit(np.random.default_rng(1).normal(size=(300, 16)))
    rows, cols = nearest_neighbours(vectors, 5)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    for i in range(300):
        assert set(cols[rows == i]) == set(np.argsort(-sims[i])[:5])


def test_the_inverted_file_finds_nearly_the_same_neighbours(monkeypatch):
    centres = np.random.default_rng(2).normal(size=(20, 16))
    vectors = unit(np.repeat(centres, 100, axis=0) + 0.3 * np.random.default_rng(3).normal(size=(2000, 16)))
    exact = set(zip(*map(np.ndarray.tolist, nearest_neighbours(vectors, 10))))
    monkeypatch.setattr(topics_module, "EXACT_NOTES", 100)
    approximate = set(zip(*map(np.ndarray.tolist, nearest_neighbours(vectors, 10))))
    assert len(exact & approximate) / len(exact) > 0.9


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenMP's default is one thread anyway")
@pytest.mark.parametrize("exact_notes", [topics_module.EXACT_NOTES, 100])
def test_neighbours_found_from_a_new_thread_run_faiss_on_one_thread(monkeypatch, exact_notes):
    # Topics are found in a worker thread, whose OpenMP default is every core; OpenMP's waiting threads
    # spin, and on a busy 2-core laptop that costs the user's own work (as it did search's).
    monkeypatch.setattr(topics_module, "EXACT_NOTES", exact_notes)  # 100: the inverted file
    vectors = unit(np.random.default_rng(4).normal(size=(2000, 16)))
    seen = {}

    def find_in_thread():
        seen["before"] = faiss.omp_get_max_threads()
        seen["found"] = nearest_neighbours(vectors, 5)
        seen["after"] = faiss.omp_get_max_threads()

    worker = threading.Thread(target=find_in_thread)
    worker.start()
    worker.join()
    assert seen["before"] > 1  # the default the search must not run with
    assert seen["after"] == 1 and len(seen["found"][0]) > 0


def test_similarity_is_standardised_per_note_as_related_does():
    vectors = unit(np.random.default_rng(4).normal(size=(50, 8)))
    sims = vectors @ vectors.T
    rows, cols = np.array([0, 3, 7]), np.array([1, 9, 2])
    z = (sims - sims.mean(axis=1, keepdims=True)) / sims.std(axis=1, keepdims=True)
    expected = (z[rows, cols] + z[cols, rows]) / 2
    assert np.allclose(standardised_similarity(vectors, rows, cols), expected, atol=1e-4)


def test_a_link_joins_notes_that_are_not_neighbours():
    vectors = unit(np.eye(6, 4, dtype=np.float32) + 0.01)
    plain = TopicInput([f"{i}.md" for i in range(6)], [str(i) for i in range(6)], vectors, [], np.zeros(6, bool))
    linked = dataclasses.replace(plain, links=[(0, 5)])
    assert not topic_graph(plain, k=1).has_edge(0, 5)
    assert topic_graph(linked, k=1)[0][5]["weight"] >= topics_module.LINK_WEIGHT


def test_key_phrases_are_what_sets_a_topic_apart():
    garden = [terms("Tomatoes want sun and deep watering in the garden"), terms("Water the garden soil with compost")]
    kitchen = [terms("Sourdough bread and the kitchen oven"), terms("Knife skills in the kitchen, bread knife")]
    named = key_phrases([garden, kitchen], count=2)
    assert "garden" in named[0] and "kitchen" in named[1]
    assert not set(named[0]) & set(named[1])


def test_only_a_private_note_alone_in_its_topic_speaks_for_it():
    private = np.array([True, True, False])
    assert speakers([0, 1, 2], private) == [2]
    assert speakers([0], private) == [0]
    assert speakers([0, 1], private) == []


def test_a_topic_id_depends_on_its_notes_and_level_only():
    assert topic_id(0, ["b.md", "a.md"]) == topic_id(0, ["a.md", "b.md"])
    assert topic_id(0, ["a.md"]) != topic_id(1, ["a.md"]) != topic_id(1, ["a.md", "b.md"])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 40), seed=st.integers(0, 10_000), private_share=st.floats(0, 1))
def test_any_vault_gets_one_topic_per_note_and_level_and_private_notes_never_speak_for_others(size, seed, private_share):
    rng = np.random.default_rng(seed)
    vectors = unit(rng.normal(size=(size, 8)) + 0.01)
    links = [tuple(pair) for pair in rng.integers(size, size=(size // 2, 2)).tolist()]
    private = rng.random(size) < private_share
    paths = [f"n{i}.md" for i in range(size)]
    words = {p: f"word{i} shared{i % 3} common" for i, p in enumerate(paths)}
    found = build_topics(TopicInput(paths, [f"Note {i}" for i in range(size)], vectors, links, private),
                         words.get, lambda p: [f"This note says {words[p]} at some length."])
    for level in (0, 1):
        assert sorted(p for t in found if t.level == level for p in t.notes) == sorted(paths)
    for topic in found:
        if len(topic.notes) > 1 and topic.central is not None:
            assert not private[paths.index(topic.central)]
        secret = {f"word{i}" for i in range(size) if private[i]} if len(topic.notes) > 1 else set()
        assert not secret & set(re.findall(r"word\d+", topic.name + " " + topic.description))
    assert found == build_topics(TopicInput(paths, [f"Note {i}" for i in range(size)], vectors, links, private),
                                 words.get, lambda p: [f"This note says {words[p]} at some length."])


# ------------------------------------------------------------------ a real vault, the real model


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("topics")
    root = write_vault(base / "vault", {**NOTES, PRIVATE_NOTE: PRIVATE_TEXT,
                                        TEMPLATE: "# {{date}}\n\nWhat I did in the garden and the kitchen today.\n"})
    (root / ".obsidian" / "templates.json").write_text(json.dumps({"folder": "Templates"}))
    app = App(replace(Settings(), state_dir=str(base / "state"), **{"models.verify": False}), root.resolve(),
              embedder=embedder)
    app.indexer.run()
    yield app
    app.close()


def sentences(app: App):
    def read(path: str) -> list[str]:
        note = app.scanner.read(path)
        return [] if isinstance(note, Skipped) else [s.text for s in sentences_of(note)]
    return read


@pytest.fixture(scope="module")
def found(app):
    return vault_topics(Corpus(app.store), app.scanner)


def test_every_note_is_in_one_topic_per_level_and_templates_in_none(found):
    notes = set(NOTES) | {PRIVATE_NOTE}
    for level in (0, 1):
        listed = [p for t in found if t.level == level for p in t.notes]
        assert sorted(listed) == sorted(notes)
    by_id = {t.id: t for t in found}
    for broad in (t for t in found if t.level == 0):
        assert broad.parent is None
        children = [t for t in found if t.parent == broad.id]
        assert children and sorted(p for c in children for p in c.notes) == sorted(broad.notes)
    assert all(t.level == 1 and t.parent in by_id for t in found if t.parent is not None)


def test_the_garden_the_kitchen_and_alignment_are_separate_topics(found):
    broad = [t for t in found if t.level == 1]
    topic_of = {p: t.id for t in broad for p in t.notes}
    group_topics = []
    for group in GROUPS:
        ids = {topic_of[p] for p in NOTES if p.startswith(group)}
        assert len(ids) == 1, (group, [t.notes for t in broad])
        group_topics.append(ids.pop())
    assert len(set(group_topics)) == 3, [(t.level, t.name, t.notes) for t in found]
    shared = next(t for t in broad if PRIVATE_NOTE in t.notes)
    assert len(shared.notes) > 1  # the private note is not alone: it must not speak for its topic


def test_names_and_descriptions_come_from_the_topics_own_notes(app, found):
    for topic in found:
        own = " ".join(NOTES.get(p, PRIVATE_TEXT) for p in topic.notes).lower()
        assert topic.phrases and topic.name
        for phrase in topic.phrases:
            assert all(word in own for word in phrase.split()), (phrase, topic.notes)
        assert topic.central in topic.notes
        said = [s for p in topic.notes for s in sentences(app)(p)]
        assert any(s.startswith(topic.description.rstrip("…")) for s in said), topic.description
        assert set(topic.neighbours) <= {t.id for t in found if t.level == topic.level} - {topic.id}
    alignment = next(t for t in found if t.level == 0 and "Alignment/Corrigibility.md" in t.notes)
    assert re.search(r"reward|goal|agent|proxy|oversight|optimis", alignment.name), alignment.name


def test_a_private_note_never_names_or_describes_a_topic_it_shares(found):
    for topic in found:
        if topic.notes == (PRIVATE_NOTE,):
            continue
        said = " ".join([topic.name, topic.description, *topic.phrases]).lower()
        assert not any(word in said for word in PRIVATE_WORDS), (topic.name, topic.description)
        assert topic.central != PRIVATE_NOTE


def test_topics_are_the_same_on_every_run(app, found):
    again = vault_topics(Corpus(app.store), app.scanner)
    assert [t.as_json() for t in again] == [t.as_json() for t in found]


def test_a_topic_keeps_its_id_when_other_topics_change(app, found):
    """Removing a kitchen note changes the kitchen topic's id and leaves the garden's and alignment's alone."""
    notes = topic_input(Corpus(app.store))
    gone = notes.paths.index("Kitchen/Stock.md")
    keep = [i for i in range(len(notes.paths)) if i != gone]
    at = {old: new for new, old in enumerate(keep)}
    fewer = TopicInput([notes.paths[i] for i in keep], [notes.titles[i] for i in keep], notes.vectors[keep],
                       [(at[a], at[b]) for a, b in notes.links if a in at and b in at], notes.private[keep])
    after = build_topics(fewer, lambda p: NOTES.get(p, ""), sentences(app))
    before_ids = {t.id for t in found if t.level == 0}
    after_ids = {t.id for t in after if t.level == 0}
    kitchen = next(t.id for t in found if t.level == 0 and "Kitchen/Stock.md" in t.notes)
    assert before_ids - after_ids == {kitchen}


def test_with_the_last_answer_every_topic_keeps_its_id_and_a_barely_changed_one_its_name(app, found):
    """Removing a kitchen note: with the last answer given, the topics stay themselves."""
    notes = topic_input(Corpus(app.store))
    keep = [i for i, p in enumerate(notes.paths) if p != "Kitchen/Stock.md"]
    at = {old: new for new, old in enumerate(keep)}
    fewer = TopicInput([notes.paths[i] for i in keep], [notes.titles[i] for i in keep], notes.vectors[keep],
                       [(at[a], at[b]) for a, b in notes.links if a in at and b in at], notes.private[keep])
    after = build_topics(fewer, lambda p: NOTES.get(p, ""), sentences(app), previous=found)
    assert {t.id for t in after if t.level == 0} == {t.id for t in found if t.level == 0}
    before = {t.id: t for t in found}
    was = {(t.level, p): t.id for t in found for p in t.notes if p != "Kitchen/Stock.md"}
    now = {(t.level, p): t.id for t in after for p in t.notes}
    assert sum(now[key] != was[key] for key in was) <= 2  # a small vault: one note may follow the one gone
    for topic in after:
        if topic.id in before and topics_module.barely_changed(before[topic.id].notes, topic.notes):
            assert (topic.name, topic.description) == (before[topic.id].name, before[topic.id].description)


def clusters(seed: int, groups: int = 6, size: int = 30, spread: float = 0.6) -> TopicInput:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 24))
    vectors = unit(np.repeat(centres, size, axis=0) + spread * rng.normal(size=(groups * size, 24)))
    n = groups * size
    paths = [f"g{i // size}/n{i}.md" for i in range(n)]
    links = [(int(a), int(a // size * size + b)) for a, b in zip(rng.integers(n, size=n), rng.integers(size, size=n))]
    return TopicInput(paths, [p for p in paths], vectors, links, np.zeros(n, bool))


def words_of(path: str) -> str:
    return f"group{path[1]} topic{path[1]} words common"


def test_after_an_edit_seeded_topics_keep_nearly_every_note_and_their_ids():
    """Six fuzzy groups of notes; three notes' vectors change a little (an edit). Seeded with the last answer,
    notes keep their topics (by id) at both levels."""
    notes = clusters(5)
    before = build_topics(notes, words_of, lambda p: [f"This note is about {words_of(p)} at length."])
    rng = np.random.default_rng(6)
    vectors = notes.vectors.copy()
    edited = rng.choice(len(vectors), size=3, replace=False)
    vectors[edited] = unit(vectors[edited] + 0.3 * rng.normal(size=(3, 24)))
    after = build_topics(dataclasses.replace(notes, vectors=vectors), words_of,
                         lambda p: [f"This note is about {words_of(p)} at length."], previous=before)
    for level in (0, 1):
        was = {p: t.id for t in before if t.level == level for p in t.notes}
        now = {p: t.id for t in after if t.level == level for p in t.notes}
        assert sorted(now) == sorted(was)
        assert sum(now[p] == was[p] for p in was) >= 0.95 * len(was), level


def test_a_new_topic_inherits_the_old_one_it_shares_most_notes_with_one_to_one():
    old = [topics_module.Topic(f"t{i}", 0, None, "", (), None, "", tuple(notes), ())
           for i, notes in enumerate([("a", "b", "c"), ("d", "e"), ("f",)])]
    heirs = topics_module.inherited(old, [["a", "b", "d"], ["c", "e", "d2"], ["x"], ["f", "a2"]])
    assert [h.id if h else None for h in heirs] == ["t0", "t1", None, "t2"]


def test_the_answer_is_kept_without_a_private_notes_words_and_seeds_the_next(app, found):
    kept = app.store.get_setting(topics_module.LAST_TOPICS)
    assert kept and PRIVATE_NOTE in kept  # its path, as the index holds it
    assert not any(word in kept.replace(PRIVATE_NOTE, "").lower() for word in PRIVATE_WORDS)
    assert [t.id for t in topics_module.stored_topics(app.store)] == [t.id for t in found]
    app.store.put_setting(topics_module.LAST_TOPICS, "not json")
    try:
        assert topics_module.stored_topics(app.store) == []
    finally:
        vault_topics(Corpus(app.store), app.scanner)


def test_the_api_gives_the_commands_topics_one_topic_and_a_notes_topics(app, found, capsys, monkeypatch):
    from starlette.testclient import TestClient

    from ideaweave import schemas
    from ideaweave.api import AppBackend, build_api
    from ideaweave.cli import main
    from test_cli_contract import valid

    token = "t" * 40
    with TestClient(build_api(AppBackend(app), token), base_url="http://127.0.0.1:8765",
                    headers={"Authorization": f"Bearer {token}"}) as client:
        every = client.get("/topics").json()
        valid(schemas.TOPICS, every)
        monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(app.state_dir))
        monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
        assert main(["topics", "--vault", str(app.root), "--no-index", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == every == {"topics": [t.as_json() for t in found]}
        one = every["topics"][-1]
        assert client.get(f"/topics/{one['id']}").json() == one
        assert client.get("/topics/t0-nothing").status_code == 404
        mine = client.get("/topics", params={"note": "Garden/Compost.md"}).json()
        valid(schemas.NOTE_TOPICS, mine)
        assert [t["level"] for t in mine["topics"]] == [0, 1]
        assert all("Garden/Compost.md" in t["notes"] for t in mine["topics"])
        assert {t["id"] for t in mine["neighbours"]} == {n for t in mine["topics"] for n in t["neighbours"]}
        assert client.get("/topics", params={"note": "Nowhere.md"}).status_code == 404


# ------------------------------------------------------------------ updates that keep the graph


def clustered(n: int = 600, centres: int = 6, seed: int = 7) -> tuple[TopicInput, np.ndarray, np.ndarray]:
    """Notes around a few centres (cosine about 0.5 to their centre), a few links inside clusters."""
    rng = np.random.default_rng(seed)
    centre = np.arange(n) % centres
    middles = rng.normal(size=(centres, 32))
    vectors = unit(middles[centre] + 0.7 * rng.normal(size=(n, 32)))
    links = [(i, int(rng.choice(np.flatnonzero(centre == centre[i])))) for i in range(0, n, 7)]
    paths = [f"c{centre[i]}/n{i:04d}.md" for i in range(n)]
    return TopicInput(paths, paths, vectors, links, np.zeros(n, bool)), centre, unit(middles)


def topic_of(found, path: str, level: int = 0):
    return next(t for t in found if t.level == level and path in t.notes)


def words(path: str) -> str:
    return f"cluster{path.split('/')[0]} note words"


def one_topic_per_note_and_level(found, paths) -> None:
    for level in (0, 1):
        assert sorted(p for t in found if t.level == level for p in t.notes) == sorted(paths)
    ids = {t.id for t in found}
    assert all(t.parent in ids for t in found if t.level == 1)
    assert all(n in ids for t in found for n in t.neighbours)


def test_an_update_moves_an_edited_note_to_the_topic_it_now_belongs_to_and_nothing_else():
    notes, centre, middles = clustered()
    state = topics_module.TopicState()
    before = state.build(notes, words, lambda p: [])
    mover = 0  # in cluster 0; its new text is about cluster 3
    vectors = notes.vectors.copy()
    vectors[mover] = middles[3]
    edited = dataclasses.replace(notes, vectors=vectors, links=[(a, b) for a, b in notes.links if mover not in (a, b)])
    after = state.update(edited, words, lambda p: [])
    one_topic_per_note_and_level(after, notes.paths)
    path = notes.paths[mover]
    assert topic_of(after, path).id == topic_of(before, notes.paths[3]).id
    others = [p for p in notes.paths if p != path]
    assert all(topic_of(after, p).id == topic_of(before, p).id for p in others)
    assert sum(topic_of(after, p, 1).id == topic_of(before, p, 1).id for p in others) >= 0.95 * len(others)
    # The graph holds the edges a build makes for the edited note: its exact nearest neighbours.
    rows, cols = nearest_neighbours(vectors, topics_module.NEIGHBOURS)
    assert set(cols[rows == mover].tolist()) <= set(state.graph[mover])
    assert all(mover in state.graph[r] for r in rows[cols == mover].tolist())


def test_an_update_takes_in_new_notes_and_lets_deleted_ones_go():
    notes, centre, middles = clustered()
    state = topics_module.TopicState()
    before = state.build(notes, words, lambda p: [])
    gone = {notes.paths[1], notes.paths[8]}
    keep = [i for i, p in enumerate(notes.paths) if p not in gone]
    at = {old: new for new, old in enumerate(keep)}
    paths = [notes.paths[i] for i in keep] + ["new/near-cluster-4.md"]
    vectors = np.vstack([notes.vectors[keep], middles[4][None, :]])
    links = [(at[a], at[b]) for a, b in notes.links if a in at and b in at]
    changed = TopicInput(paths, paths, vectors, links, np.zeros(len(paths), bool))
    after = state.update(changed, words, lambda p: [])
    one_topic_per_note_and_level(after, paths)
    assert topic_of(after, "new/near-cluster-4.md").id == topic_of(before, notes.paths[4]).id
    assert not gone & {p for t in after for p in t.notes}
    assert not gone & set(state.node)
    assert all(state.graph.degree(m) == 0 for m, p in enumerate(state.paths) if p is None)  # no edge left to a deleted note


def test_the_daemons_state_answers_as_the_cli_does_until_an_edit(app):
    corpus = Corpus(app.store)
    state = topics_module.TopicState()
    kept = vault_topics(corpus, app.scanner, state)
    assert kept == vault_topics(corpus, app.scanner)
    assert vault_topics(corpus, app.scanner, state) == kept  # an update without edits changes nothing
