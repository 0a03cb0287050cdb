"""Duplicates: the calibration and the decision on plain data, then a real vault indexed with the real model
where duplicates were planted (a section copied and reworded into another note, a note split in two) and
must come first, while linked pairs, pairs the user marked, templates and private notes stay out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ideaweave.app import App
from ideaweave.cli import main
from ideaweave.config import Settings, replace
from ideaweave.corpus import Corpus
from ideaweave.duplicates import (
    MIN_CLOSENESS, SectionPair, calibration, find_duplicates, mark_not_duplicates, not_duplicates, vault_duplicates,
)
from test_watch import NOTES, write_vault

# A section of Watering, reworded, inside a note about something else as well.
REWORDED = "Garden/Dry summers.md"
REWORDED_TEXT = """# Dry summers

## Keeping the beds moist

Give the vegetable beds a deep soak first thing in the morning, so the ground keeps its moisture through the hot
part of the day. Watering deeply but rarely makes roots grow further down than a little sprinkle every day would.
A mulch of straw or compost holds the water in the soil, and water butts catch rain for the dry weeks.

## Shade

Shade cloth over lettuce and spinach stops them bolting when the afternoons are hot.
"""
# A note and the two notes it was split into.
WHOLE = "Kitchen/Pasta.md"
DOUGH = "Kitchen/Pasta dough.md"
SAUCE = "Kitchen/Tomato sauce.md"
DOUGH_TEXT = """Fresh egg pasta needs only flour and eggs: a hundred grams of fine durum flour to each egg. Make a well,
beat the eggs inside it, draw the flour in with a fork, then knead for ten minutes until the dough is smooth and
springs back. Rest it wrapped for half an hour before rolling it thin."""
SAUCE_TEXT = """A quick tomato sauce starts with garlic softened in olive oil, then tinned plum tomatoes crushed by hand
and a pinch of salt. Simmer it gently for twenty minutes until it thickens, tear in basil at the end, and loosen
it with a spoon of the pasta water."""
SPLIT = {
    WHOLE: f"# Pasta\n\n## Dough\n\n{DOUGH_TEXT}\n\n## Sauce\n\n{SAUCE_TEXT}\n",
    DOUGH: f"# Pasta dough\n\n{DOUGH_TEXT}\n",
    SAUCE: f"# Tomato sauce\n\n{SAUCE_TEXT}\n",
}
# A reworded copy of Compost that links to it: the user knows, it is not news.
LINKED = "Garden/Making compost.md"
LINKED_TEXT = """# Making compost

Kitchen peelings, lawn clippings and fallen autumn leaves rot down in a compost heap into dark crumbly food for the
soil. Mix nitrogen-rich greens with carbon-rich browns, keep the heap as moist as a wrung-out sponge and turn it
every few weeks to let air into the centre. A heap that runs hot kills weed seeds. See [[Compost]].
"""
# A private reworded copy of Knife skills.
PRIVATE = "Kitchen/My knife notes.md"
PRIVATE_TEXT = """---
private: true
---
# My knife notes

Grip the knife by pinching the blade and tuck the fingertips of the other hand into a claw. Rock the blade to chop
herbs, slice onions in long strokes, and sharpen the edge on a whetstone, since a blunt knife slips and cuts.
"""
TEMPLATE = "Templates/Watering log.md"
TEMPLATE_TEXT = """# {{date}} watering

Water the garden early in the morning so the soil holds moisture through the heat of the day. Deep, infrequent
watering grows deeper roots than a daily sprinkle.
"""
# Notes on other subjects, so that the vault has a distribution of ordinary nearest neighbours.
FILLER = {
    "Reading/Stoicism.md": "# Stoicism\n\nThe Stoics held that we suffer from our judgements about events rather than from the events themselves, and that virtue is the only true good.\n",
    "Reading/Spaced repetition.md": "# Spaced repetition\n\nReviewing a fact just before it would be forgotten, at growing intervals, moves it into long-term memory with the least total study time.\n",
    "Reading/Zettelkasten.md": "# Zettelkasten\n\nA slip box of small atomic notes, each linked to others by hand, grows into a web of ideas that suggests new connections when browsed.\n",
    "Travel/Night trains.md": "# Night trains\n\nA sleeper train leaves in the evening and arrives in another country by breakfast, saving a night in a hotel and the airport queues.\n",
    "Travel/Packing light.md": "# Packing light\n\nOne carry-on bag with clothes that layer and mix is enough for weeks; wash small items in the sink and wear the bulkiest shoes on the journey.\n",
    "Music/Practice.md": "# Practice\n\nSlow deliberate practice with a metronome, raising the tempo only once a passage is clean, beats hours of playing pieces through from the top.\n",
    "Music/Chord progressions.md": "# Chord progressions\n\nThe progression from the tonic through the subdominant and dominant back home underlies most folk and pop songs, and its tension resolves on the tonic.\n",
    "Health/Sleep.md": "# Sleep\n\nA regular wake-up time, daylight in the morning and a cool dark bedroom do more for sleep than any supplement.\n",
}
# The same text in four notes: boilerplate (a licence line, a standard footer), not a copied idea.
FOOTER = "This note is shared under the Creative Commons attribution licence; copy it, change it and pass it on freely.\n"
BOILERPLATE = {f"Boilerplate/Footer {i}.md": FOOTER for i in range(4)}  # no heading: the same text, embedded once
PLANTED = {frozenset(("Garden/Watering.md", REWORDED)), frozenset((WHOLE, DOUGH)), frozenset((WHOLE, SAUCE))}


# ------------------------------------------------------------------ plain data


def test_closeness_is_measured_against_the_vaults_own_nearest_neighbours():
    tight = calibration(np.random.default_rng(0).normal(0.8, 0.02, 1000))  # one narrow subject
    loose = calibration(np.random.default_rng(0).normal(0.5, 0.10, 1000))  # scattered notes
    assert tight.closeness(0.9) == pytest.approx(5, abs=0.5)
    assert loose.closeness(0.9) == pytest.approx(4, abs=0.5)
    # The same cosine is an ordinary neighbour in one vault and a duplicate in the other.
    assert tight.closeness(0.85) < MIN_CLOSENESS < loose.closeness(0.85)
    assert tight.percentile(0.8) == pytest.approx(0.5, abs=0.05) and loose.percentile(1.0) == 1.0
    assert not np.isnan(calibration(np.array([np.nan, 0.5, 0.5])).spread)


def test_the_decision_keeps_one_entry_per_note_pair_most_similar_first():
    cal = calibration(np.linspace(0.4, 0.6, 101))  # median 0.5, spread about 0.074
    note = {0: "a.md", 1: "a.md", 2: "b.md", 3: "c.md", 4: "d.md", 5: "e.md"}.__getitem__
    pairs = [SectionPair(0, 2, 0.99), SectionPair(1, 2, 0.98), SectionPair(2, 0, 0.99), SectionPair(3, 4, 0.995),
             SectionPair(0, 5, 0.6), SectionPair(3, 5, 0.999), SectionPair(4, 5, 0.997)]
    found = find_duplicates(pairs, note, cal, excluded=lambda a, b: (a, b) == ("c.md", "e.md"),
                            says_enough=lambda row: row != 4)
    assert [key for key, _ in found] == [("a.md", "b.md")]  # c-e excluded, d says too little, a-e not close
    assert [(p.row_a, p.row_b) for p in found[0][1]] == [(0, 2), (1, 2)]  # the same rows once


# ------------------------------------------------------------------ a real vault, the real model


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("duplicates")
    notes = {**NOTES, **FILLER, **SPLIT, **BOILERPLATE, REWORDED: REWORDED_TEXT, LINKED: LINKED_TEXT, PRIVATE: PRIVATE_TEXT,
             TEMPLATE: TEMPLATE_TEXT}
    root = write_vault(base / "vault", notes)
    (root / ".obsidian" / "templates.json").write_text(json.dumps({"folder": "Templates"}))
    app = App(replace(Settings(), state_dir=str(base / "state"), **{"models.verify": False}), root.resolve(),
              embedder=embedder)
    app.indexer.run()
    yield app
    app.close()


def pairs_of(found) -> list[frozenset]:
    return [frozenset((d.a.path, d.b.path)) for d in found]


def test_the_planted_duplicates_come_first(app):
    found, cal = vault_duplicates(Corpus(app.store), k=10)
    assert set(pairs_of(found)[:3]) == PLANTED, [(d.a.path, d.b.path, round(d.closeness, 1)) for d in found]
    assert all(d.closeness >= MIN_CLOSENESS for d in found) and cal.spread > 0
    similarities = [d.similarity for d in found]
    assert similarities == sorted(similarities, reverse=True)
    reworded = next(d for d in found if {d.a.path, d.b.path} == {"Garden/Watering.md", REWORDED})
    side = {d.a.path: d.a for d in [reworded]} | {reworded.b.path: reworded.b}
    assert side[REWORDED].heading == "Keeping the beds moist" and "deep soak" in side[REWORDED].text
    assert "early in the morning" in side["Garden/Watering.md"].text
    whole = next(d for d in found if {d.a.path, d.b.path} == {WHOLE, DOUGH})
    assert whole.similarity > 0.99  # the same words under another heading
    assert whole.a.path < whole.b.path


def test_linked_templates_boilerplate_and_private_notes_stay_out_unless_asked(app):
    found, _ = vault_duplicates(Corpus(app.store), k=50, min_closeness=0.0)
    assert len(found) > 10
    for pair in pairs_of(found):
        assert TEMPLATE not in pair and PRIVATE not in pair and not pair & set(BOILERPLATE)
        assert pair != frozenset((LINKED, "Garden/Compost.md"))
    with_private, _ = vault_duplicates(Corpus(app.store), k=10, include_private=True)
    assert frozenset((PRIVATE, "Kitchen/Knife skills.md")) in pairs_of(with_private)


def test_a_pair_marked_as_not_duplicates_stays_out_until_unmarked(app):
    pair = (DOUGH, WHOLE)
    try:
        assert mark_not_duplicates(app.store, *pair) and not mark_not_duplicates(app.store, *reversed(pair))
        assert not_duplicates(app.store) == {(WHOLE, DOUGH)} or not_duplicates(app.store) == {(DOUGH, WHOLE)}
        assert frozenset(pair) not in pairs_of(vault_duplicates(Corpus(app.store), k=10)[0])
    finally:
        assert mark_not_duplicates(app.store, *pair, marked=False)
    assert frozenset(pair) in pairs_of(vault_duplicates(Corpus(app.store), k=10)[0])


def test_the_command_lists_and_marks(app, capsys, monkeypatch):
    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(app.state_dir))
    monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
    base = ["--vault", str(app.root), "--no-index"]
    assert main(["duplicates", *base, "--json", "-k", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {frozenset((d["a"]["path"], d["b"]["path"])) for d in report["duplicates"]} == PLANTED
    assert report["calibration"]["sections"] > 20
    assert main(["duplicates", *base]) == 0
    human = capsys.readouterr().out
    assert WHOLE in human and "deep soak" in human
    try:
        assert main(["duplicates", *base, "--not", WHOLE, str(app.root / DOUGH)]) == 0
        assert "not duplicates" in capsys.readouterr().out
        assert main(["duplicates", *base, "--json"]) == 0
        listed = {frozenset((d["a"]["path"], d["b"]["path"])) for d in json.loads(capsys.readouterr().out)["duplicates"]}
        assert frozenset((WHOLE, DOUGH)) not in listed and frozenset((WHOLE, SAUCE)) in listed
    finally:
        assert main(["duplicates", *base, "--undo-not", WHOLE, DOUGH]) == 0
    assert main(["duplicates", *base, "--not", WHOLE, "Nowhere.md"]) != 0
    assert "Nowhere.md" in capsys.readouterr().err


def test_the_api_gives_the_commands_answer_and_takes_marks(app, capsys, monkeypatch):
    from starlette.testclient import TestClient

    from ideaweave import schemas
    from ideaweave.api import AppBackend, build_api
    from test_cli_contract import valid

    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(app.state_dir))
    monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
    token = "t" * 40
    with TestClient(build_api(AppBackend(app), token), base_url="http://127.0.0.1:8765",
                    headers={"Authorization": f"Bearer {token}"}) as client:
        answer = client.get("/duplicates?k=5").json()
        valid(schemas.DUPLICATES, answer)
        assert main(["duplicates", "--vault", str(app.root), "--no-index", "--json", "-k", "5"]) == 0
        assert json.loads(capsys.readouterr().out) == answer
        try:
            marked = client.post("/duplicates/not", json={"a": WHOLE, "b": SAUCE})
            assert marked.status_code == 200 and marked.json()["changed"] is True
            valid(schemas.NOT_DUPLICATES, marked.json())
            listed = {frozenset((d["a"]["path"], d["b"]["path"])) for d in client.get("/duplicates").json()["duplicates"]}
            assert frozenset((WHOLE, SAUCE)) not in listed and frozenset((WHOLE, DOUGH)) in listed
        finally:
            client.post("/duplicates/not", json={"a": WHOLE, "b": SAUCE, "not_duplicates": False})
        assert client.post("/duplicates/not", json={"a": WHOLE, "b": WHOLE}).status_code == 400
        assert client.post("/duplicates/not", json={"a": WHOLE, "b": "Nowhere.md"}).status_code == 404
        assert client.post("/duplicates/not", json={"a": WHOLE, "b": DOUGH, "not_duplicates": "yes"}).status_code == 400
