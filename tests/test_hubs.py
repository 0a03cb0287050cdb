"""Hub notes: deciding their names, texts and ownership on plain topics, then writing them into a real vault
indexed with the real model (three clear groups of notes and a private note), through the CLI, and the
optional `topic` key in each note, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hostile_markdown import markdown_notes
import jsonschema_rs
from ideaweave import cli, frontmatter, schemas
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.corpus import Corpus
from ideaweave.frontmatter import Unwritable
from ideaweave.hubs import (
    HubPlan, HubRecord, HubWrite, hub_stem, note_hubs, plan_hubs, read_ledger, render_hub, write_hubs,
)
from ideaweave.store import Store
from ideaweave.topics import Topic, vault_topics
from ideaweave.writer import NoteState, plan_topic
from test_topics import PRIVATE_NOTE, PRIVATE_TEXT, PRIVATE_WORDS
from test_watch import NOTES, write_vault

FOLDER = "Topics"


def topic(tid: str, name: str, notes: tuple[str, ...], level: int = 0, parent: str | None = None,
          neighbours: tuple[str, ...] = ()) -> Topic:
    return Topic(id=tid, level=level, parent=parent, name=name, phrases=tuple(name.split(", ")), central=notes[0],
                 description=f"What {name} is about, said at some length.", notes=notes, neighbours=neighbours)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def applied(plan, on_disk: dict[str, str]) -> dict[str, str]:
    """The folder's checksums once a plan is carried out."""
    after = {p: c for p, c in on_disk.items() if p not in {r for r, _ in plan.removals}}
    after.update({w.path: sha(w.text) for w in plan.writes})
    return after


GARDEN = topic("t0-a", "garden, compost", ("Garden/Compost.md", "Garden/Tomatoes.md"), neighbours=("t0-b",))
KITCHEN = topic("t0-b", "kitchen, bread", ("Kitchen/Sourdough.md", "Kitchen/Stock.md"), neighbours=("t0-a",))


# ------------------------------------------------------------------ deciding (plain topics)


def test_a_hub_is_named_after_its_topic_without_characters_obsidian_refuses():
    assert hub_stem("garden, compost") == "Garden, compost"
    assert hub_stem('a/b: c*d?"e<f>|g#h^[i]') == "A b c d e f g h i"
    assert hub_stem("  ...  ") == "Topic"
    assert len(hub_stem("word " * 100)) <= 80
    assert len(hub_stem("🌱" * 80).encode("utf-8")) <= 200  # file systems count bytes, not characters


def test_each_topic_gets_a_hub_linking_its_notes_and_its_neighbours():
    plan = plan_hubs([GARDEN, KITCHEN], {}, {}, FOLDER, set())
    assert plan.hub_of == {"t0-a": "Topics/Garden, compost.md", "t0-b": "Topics/Kitchen, bread.md"}
    text = {w.path: w.text for w in plan.writes}["Topics/Garden, compost.md"]
    assert "# Garden, compost" in text and GARDEN.description in text
    assert text.index("[[Garden/Compost]]") < text.index("[[Garden/Tomatoes]]")  # most central first
    assert "[[Topics/Kitchen, bread]]" in text
    assert all(w.path.startswith("Topics/") and w.expected is None for w in plan.writes)


def test_nothing_is_written_when_nothing_changed():
    first = plan_hubs([GARDEN, KITCHEN], {}, {}, FOLDER, set())
    again = plan_hubs([GARDEN, KITCHEN], first.ledger, applied(first, {}), FOLDER, set())
    assert again.writes == [] and again.removals == [] and again.unchanged == 2 and again.hub_of == first.hub_of


def test_a_users_own_note_in_the_folder_keeps_its_name_and_a_hub_takes_the_next():
    mine = {"Topics/Garden, compost.md": sha("my own note")}
    plan = plan_hubs([GARDEN], {}, mine, FOLDER, set())
    assert plan.hub_of["t0-a"] == "Topics/Garden, compost (2).md"
    assert "Topics/Garden, compost.md" not in plan.ledger and not plan.removals


def test_a_hub_the_user_edited_is_theirs_for_good_and_still_its_topics_hub():
    first = plan_hubs([GARDEN, KITCHEN], {}, {}, FOLDER, set())
    on_disk = applied(first, {})
    on_disk["Topics/Garden, compost.md"] = sha("edited by the user")
    moved = topic("t0-a", "garden, compost", ("Garden/Compost.md", "Garden/Tomatoes.md", "Garden/Watering.md"))
    plan = plan_hubs([moved, KITCHEN], first.ledger, on_disk, FOLDER, set())
    assert "Topics/Garden, compost.md" not in {w.path for w in plan.writes}
    assert plan.hub_of["t0-a"] == "Topics/Garden, compost.md"
    assert plan.ledger["Topics/Garden, compost.md"].user and plan.user_hubs == ["Topics/Garden, compost.md"]
    # Its topic gone, it stays: the user's note now.
    gone = plan_hubs([KITCHEN], plan.ledger, on_disk, FOLDER, set())
    assert gone.removals == [] and gone.ledger["Topics/Garden, compost.md"].user


def test_a_renamed_topic_moves_its_hub_and_a_vanished_one_removes_it():
    first = plan_hubs([GARDEN, KITCHEN], {}, {}, FOLDER, set())
    on_disk = applied(first, {})
    renamed = topic("t0-a", "soil, watering", GARDEN.notes)
    plan = plan_hubs([renamed], first.ledger, on_disk, FOLDER, set())
    assert plan.hub_of == {"t0-a": "Topics/Soil, watering.md"}
    assert {p for p, _ in plan.removals} == {"Topics/Garden, compost.md", "Topics/Kitchen, bread.md"}
    assert all(expected == on_disk[p] for p, expected in plan.removals)  # removed only while as written


def test_two_topics_of_one_name_get_two_hubs_that_keep_their_names():
    twin = topic("t0-c", "garden, compost", ("Garden/Watering.md", "Garden/Seed saving.md"))
    first = plan_hubs([GARDEN, twin], {}, {}, FOLDER, set())
    assert sorted(first.hub_of.values()) == ["Topics/Garden, compost (2).md", "Topics/Garden, compost.md"]
    again = plan_hubs([twin, GARDEN], first.ledger, applied(first, {}), FOLDER, set())
    assert again.hub_of == first.hub_of and again.writes == []


def test_hubs_name_no_private_note():
    secret = "Private/Diary.md"
    mixed = topic("t0-a", "garden, compost", ("Garden/Compost.md", secret))
    alone = Topic(id="t0-p", level=0, parent=None, name="diary words", phrases=("diary",), central=secret,
                  description="A sentence of the diary.", notes=(secret,), neighbours=("t0-a",))
    plan = plan_hubs([mixed, alone], {}, {}, FOLDER, {secret})
    assert set(plan.hub_of) == {"t0-a"}  # only the private note could name its own topic: no hub
    text = plan.writes[0].text
    assert "Diary" not in text and "diary" not in text


def test_a_finer_topic_holding_its_parents_notes_has_no_hub_of_its_own():
    only_child = topic("t1-a", "garden, compost", GARDEN.notes, level=1, parent="t0-a")
    plan = plan_hubs([GARDEN, only_child], {}, {}, FOLDER, set())
    assert set(plan.hub_of) == {"t0-a"}
    assert note_hubs([GARDEN, only_child], plan.hub_of)["Garden/Tomatoes.md"] == "Topics/Garden, compost.md"


def test_a_note_links_to_the_hub_of_its_finest_topic():
    fine = topic("t1-a", "tomatoes", ("Garden/Tomatoes.md",), level=1, parent="t0-a")
    hub_of = {"t0-a": "Topics/Garden.md", "t1-a": "Topics/Tomatoes.md"}
    assert note_hubs([fine, GARDEN], hub_of) == {"Garden/Tomatoes.md": "Topics/Tomatoes.md",
                                                 "Garden/Compost.md": "Topics/Garden.md"}
    assert "[[Topics/Tomatoes]]" in render_hub(GARDEN, hub_of, {"t0-a": ["t1-a"]}, set())


# ------------------------------------------------------------------ the topic key, byte for byte


KEY = "topic"
LINK = "[[Topics/Garden, compost]]"


def test_the_topic_key_is_ideaweaves_until_the_user_edits_or_removes_it():
    fresh = NoteState("a.md", {}, None)
    write, problem = plan_topic(fresh, KEY, LINK)
    assert write.values == {KEY: LINK} and write.remembered == {KEY: LINK} and problem is None
    ours = NoteState("a.md", {KEY: LINK}, {KEY: LINK})
    assert plan_topic(ours, KEY, LINK) == (None, None)
    assert plan_topic(ours, KEY, "[[Topics/Other]]")[0].values == {KEY: "[[Topics/Other]]"}
    removed = plan_topic(ours, KEY, None)[0]
    assert removed.values == {KEY: None} and KEY not in removed.remembered
    assert plan_topic(NoteState("a.md", {KEY: "[[Mine]]"}, {KEY: LINK}), KEY, "[[Topics/Other]]") == (None, None)
    assert plan_topic(NoteState("a.md", {}, {KEY: LINK}), KEY, "[[Topics/Other]]") == (None, None)
    assert "not written by ideaweave" in plan_topic(NoteState("a.md", {KEY: "[[Mine]]"}, None), KEY, LINK)[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=markdown_notes())
def test_the_topic_key_changes_no_byte_but_its_own_on_any_markdown(tmp_path, text):
    raw = text.encode("utf-8")
    with_key = frontmatter.set_managed(raw, {KEY: LINK})
    if isinstance(with_key, Unwritable):
        return
    assert frontmatter.read_managed(with_key, [KEY]) == {KEY: LINK}
    others = frontmatter.read_managed(raw, ["related", "summary", "tags"])
    assert frontmatter.read_managed(with_key, ["related", "summary", "tags"]) == others
    body = frontmatter.split_frontmatter(text).body
    assert frontmatter.split_frontmatter(with_key.decode("utf-8")).body == body
    without = frontmatter.set_managed(with_key, {KEY: None})
    assert frontmatter.read_managed(without, [KEY]) == {}
    assert frontmatter.split_frontmatter(without.decode("utf-8")).body == body
    if frontmatter.split_frontmatter(text).has_frontmatter:
        assert without == raw  # the key ideaweave added, removed again: the note as it was


# ------------------------------------------------------------------ a real vault, the real model


def vault_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".obsidian" not in p.parts}


@pytest.fixture
def vault(tmp_path, embedder):
    root = write_vault(tmp_path / "vault", {**NOTES, PRIVATE_NOTE: PRIVATE_TEXT})
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[models]\nverify = false\n[topics]\nwrite = true\n')
    return root, config


def run_cli(capsys, config: Path, *args: str) -> dict:
    code = cli.main([*args, "--config", str(config), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def open_app(root: Path, tmp_path: Path, embedder, **changes) -> App:
    settings = replace(Settings(), state_dir=str(tmp_path / "state"),
                       **{"models.verify": False, "topics.write": True, "writer.defer_seconds": 0.0, **changes})
    return App(settings, root.resolve(), embedder=embedder)


def publish(app: App):
    corpus = Corpus(app.store)
    return app.publish_topics(corpus, vault_topics(corpus, app.scanner), hubs=True)


def test_hubs_appear_in_their_folder_only_and_are_not_rewritten_when_nothing_changed(vault, tmp_path, embedder):
    root, _ = vault
    app = open_app(root, tmp_path, embedder)
    app.indexer.run()
    before = vault_files(root)
    published = publish(app)
    hubs = sorted(published.hubs.written)
    assert hubs and all(h.startswith("Topics/") for h in hubs)
    after = vault_files(root)
    assert {p: b for p, b in after.items() if not p.startswith("Topics/")} == before  # not a byte elsewhere
    texts = {h: (root / h).read_text(encoding="utf-8") for h in hubs}
    # The three groups each have a hub that links to all of its notes.
    for group in ("Garden/", "Alignment/", "Kitchen/"):
        members = [p[:-3] for p in NOTES if p.startswith(group)]
        assert any(all(f"[[{m}]]" in text for m in members) for text in texts.values()), group
    stamps = {h: (root / h).stat().st_mtime_ns for h in hubs}
    again = publish(app)
    assert again.hubs.written == [] and again.hubs.removed == [] and again.hubs.unchanged == len(hubs)
    assert {h: (root / h).stat().st_mtime_ns for h in hubs} == stamps
    app.close()


def test_hubs_name_no_private_note_and_are_not_indexed_but_a_users_note_beside_them_is(vault, tmp_path, embedder):
    root, _ = vault
    app = open_app(root, tmp_path, embedder)
    app.indexer.run()
    hubs = publish(app).hubs.written
    for hub in hubs:
        text = (root / hub).read_text(encoding="utf-8").lower()
        assert "kohlrabi" not in text and not any(w in text for w in PRIVATE_WORDS)
    (root / "Topics" / "My reading list.md").write_text("# My reading list\n\nBooks about gardens and bread.\n")
    report = app.indexer.run()
    assert report.notes == len(NOTES) + 2  # the notes, the private one and the user's own note in Topics/
    indexed = set(app.store.note_paths())
    assert "Topics/My reading list.md" in indexed and not indexed & set(hubs)
    app.close()
    # With topics.write off, hubs are notes like any other.
    plain = open_app(root, tmp_path, embedder, **{"topics.write": False})
    plain.indexer.run()
    assert set(hubs) <= set(plain.store.note_paths())
    plain.close()


def test_a_hub_the_user_edited_is_left_alone_and_status_says_so(vault, tmp_path, embedder, capsys):
    root, config = vault
    first = run_cli(capsys, config, "topics", "--vault", str(root))
    jsonschema_rs.validate(schemas.CLI_OUTPUT["topics"], first)
    hubs = first["published"]["hubs"]["written"]
    edited = root / hubs[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nMy own thoughts on this topic.\n", encoding="utf-8")
    mine = edited.read_bytes()
    # A note moves: its old hub and its new one would change.
    (root / "Garden/Seed saving.md").write_text("# Seed saving\n\nSourdough bread, knife skills and stock in the kitchen.\n")
    second = run_cli(capsys, config, "topics", "--vault", str(root))
    assert edited.read_bytes() == mine
    assert second["published"]["hubs"]["user_hubs"] == [hubs[0]]
    status = run_cli(capsys, config, "status", "--vault", str(root))
    jsonschema_rs.validate(schemas.STATUS_REPORT, status)
    assert status["user_hubs"] == [hubs[0]]
    cli.main(["status", "--vault", str(root), "--config", str(config)])
    assert "edited by you" in capsys.readouterr().out


def test_the_topic_key_links_each_note_to_its_hub_and_goes_when_turned_off(vault, tmp_path, embedder):
    root, _ = vault
    app = open_app(root, tmp_path, embedder, **{"topics.key": True})
    app.indexer.run()
    before = vault_files(root)
    published = publish(app)
    assert sorted(published.keys.written) == sorted(app.store.note_paths())
    for path in NOTES:
        link = frontmatter.read_managed((root / path).read_bytes(), ["topic"])["topic"]
        hub = link[2:-2] + ".md"
        assert hub.startswith("Topics/") and f"[[{path[:-3]}]]" in (root / hub).read_text(encoding="utf-8")
        # Nothing but the key changed: the body and every other key are as they were.
        old, new = before[path].decode("utf-8"), (root / path).read_text(encoding="utf-8")
        assert frontmatter.split_frontmatter(new).body == frontmatter.split_frontmatter(old).body
    assert app.store.last_written("Garden/Compost.md").checksum == hashlib.sha256(
        (root / "Garden/Compost.md").read_bytes()).hexdigest()  # the watcher knows it as its own write
    # The user takes one note's key: theirs from then on.
    mine = (root / "Kitchen/Stock.md").read_bytes().replace(b'topic: "[[Topics/', b'topic: "[[Topics/Mine ')
    (root / "Kitchen/Stock.md").write_bytes(mine)
    app.close()
    off = open_app(root, tmp_path, embedder, **{"topics.key": False})
    again = publish(off)
    assert "Kitchen/Stock.md" not in again.keys.written and (root / "Kitchen/Stock.md").read_bytes() == mine
    for path in NOTES:
        if path != "Kitchen/Stock.md":
            now = frontmatter.read_managed((root / path).read_bytes(), ["topic"])
            assert now == {}, path
            if NOTES[path].startswith("---"):
                assert (root / path).read_bytes() == before[path]  # exactly as it was
    off.close()


def test_the_ledger_survives_a_damaged_record(tmp_path, embedder):
    store = Store.open(tmp_path / "state", embedder.dim, embedder.model_id)
    store.put_setting("hubs.written", "not json")
    assert read_ledger(store) == {}
    store.put_setting("hubs.written", json.dumps({"Topics/A.md": HubRecord("t0-a", "00").as_json()}))
    assert read_ledger(store) == {"Topics/A.md": HubRecord("t0-a", "00")}
    store.close()


def test_a_hub_the_file_system_refuses_costs_that_hub_only(tmp_path, embedder):
    root = tmp_path / "vault"
    (root / "Topics" / "Blocked.md").mkdir(parents=True)  # not a file: opening it to compare fails
    app = open_app(root, tmp_path, embedder)
    plan = HubPlan(hub_of={"a": "Topics/Blocked.md", "b": "Topics/Fine.md"},
                   writes=[HubWrite("Topics/Blocked.md", "# Blocked\n", "0" * 64), HubWrite("Topics/Fine.md", "# Fine\n", None)],
                   removals=[], ledger={"Topics/Blocked.md": HubRecord("a", "1" * 64), "Topics/Fine.md": HubRecord("b", "2" * 64)})
    report = write_hubs(root, app.store, plan, {}, "Topics")
    assert report.written == ["Topics/Fine.md"] and report.conflicts == ["Topics/Blocked.md"]
    assert (root / "Topics" / "Fine.md").read_text() == "# Fine\n"
    app.close()


def test_the_topic_key_is_written_the_way_related_is(vault, tmp_path, embedder, capsys):
    """The topic key goes the way of every managed key (writer.NoteWriter): to the Obsidian bridge while it
    takes writes, never over a note another write waits on, planned again from the user's bytes when they
    save between plan and write, and a write that fails is that note's failure, which `status` shows."""
    root, config = vault
    app = open_app(root, tmp_path, embedder, **{"topics.key": True})
    app.indexer.run()
    corpus = Corpus(app.store)
    topics = vault_topics(corpus, app.scanner)
    handed, waiting, saved = "Garden/Compost.md", "Garden/Watering.md", "Kitchen/Stock.md"
    gone, refused = "Garden/Tomatoes.md", "Alignment/Reward hacking.md"
    typed = "\nTyped while ideaweave was writing.\n"
    before = vault_files(root)
    offered = []

    def bridge(write, base):
        """Takes one note's write; for others, things happen to the file just before ideaweave writes it."""
        if write.path == handed:
            offered.append((write, base))
            return True
        if write.path == saved and not (root / saved).read_text(encoding="utf-8").endswith(typed):
            (root / saved).write_text((root / saved).read_text(encoding="utf-8") + typed, encoding="utf-8")
        if write.path == gone:
            (root / gone).unlink()
        if write.path == refused:  # the file system refuses the write: a folder now has the note's name
            (root / refused).unlink()
            (root / refused).mkdir()
        return False

    keys = app.publish_topics(corpus, topics, hubs=True, handoff=bridge, busy=lambda path: path == waiting).keys
    assert keys.handed_off == [handed] and [w.path for w, _ in offered] == [handed]
    assert offered[0][0].values["topic"].startswith("[[Topics/") and offered[0][1] == before[handed]
    assert (root / handed).read_bytes() == before[handed]  # the bridge writes it, inside Obsidian
    assert keys.deferred == [waiting] and (root / waiting).read_bytes() == before[waiting]
    # The user's save stays, and the key is written over it, planned again from their bytes.
    text = (root / saved).read_text(encoding="utf-8")
    assert text.endswith(typed) and frontmatter.read_managed(text.encode(), ["topic"])["topic"].startswith("[[Topics/")
    assert app.store.last_written(saved).checksum == hashlib.sha256(text.encode()).hexdigest()
    # Each failing note costs that note only.
    assert sorted(p for p, _ in keys.skipped) == sorted([gone, refused])
    others = set(app.store.note_paths()) - {handed, waiting, gone, refused}
    assert saved in others and set(keys.written) == others
    assert [p for p, _ in app.store.write_issues()] == [gone]
    assert [(p, stage) for p, stage, _ in app.store.problems(("write",))] == [(refused, "write")]
    assert not [p for p in (root / "Alignment").iterdir() if p.name.startswith(".")]  # no temporary file left
    app.close()
    status = run_cli(capsys, config, "status", "--vault", str(root))
    assert [s["path"] for s in status["not_written"]] == [gone]
    assert [f["path"] for f in status["failed"]] == [refused]
