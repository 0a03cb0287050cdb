"""The idea map: its layout on plain data, then the page of a real vault (indexed with the real model) written by
the command and served by the API, driven in headless Chromium with every request but the page's own refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaweave import schemas
from ideaweave.api import AppBackend, build_api
from ideaweave.app import App
from ideaweave.cli import main
from ideaweave.config import Settings, replace
from ideaweave.corpus import Corpus
from ideaweave.ideamap import (
    GAP, build_map, disc_radius, note_layout, render_page, spread_discs, vault_map,
)
from ideaweave.topics import Topic, vault_topics
from test_cli_contract import valid
from test_topics import PRIVATE_NOTE, PRIVATE_TEXT, PRIVATE_WORDS
from test_watch import NOTES, write_vault

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
TOKEN = "m" * 40


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------ layout (plain data)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(0, 1000))
def test_spread_discs_never_overlap(count, seed):
    rng = np.random.default_rng(seed)
    radii = rng.uniform(1, 8, count)
    centres = spread_discs(rng.normal(size=(count, 2)), radii, passes=2000)
    distance = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(axis=2))
    wanted = radii[:, None] + radii[None, :] + GAP
    np.fill_diagonal(distance, np.inf)
    assert (distance >= wanted - 1e-3).all()


def test_notes_sit_inside_their_disc_the_most_central_in_the_middle():
    vectors = unit(np.random.default_rng(5).normal(size=(50, 16)))
    centre, radius = np.array([10.0, -4.0]), disc_radius(50)
    points = note_layout(vectors, centre, radius)
    distance = np.linalg.norm(points - centre, axis=1)
    assert (distance <= radius).all()
    assert distance[0] == pytest.approx(0) and (np.diff(distance) >= -1e-9).all()


def synthetic_topics(groups: int = 4, size: int = 12) -> tuple[list[Topic], dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(groups, 16))
    topics, vectors = [], {}
    broad = []
    for g in range(groups):
        paths = tuple(f"g{g}/n{i}.md" for i in range(size))
        for p in paths:
            vectors[p] = unit((centres[g] + 0.3 * rng.normal(size=16))[None])[0]
        neighbours = tuple(f"t1-{o}" for o in range(groups) if o != g)
        topics.append(Topic(f"t1-{g}", 1, f"t0-{g % 2}", f"fine {g}", (), paths[0], "", paths, neighbours))
    for b in range(min(groups, 2)):
        notes = tuple(p for t in topics if t.parent == f"t0-{b}" for p in t.notes)
        broad.append(Topic(f"t0-{b}", 0, None, f"broad {b}", (), notes[0], "", notes, ()))
    return broad + topics, vectors


def test_the_map_holds_every_note_once_in_its_topics_disc_coloured_by_its_broad_topic():
    topics, vectors = synthetic_topics()
    idea_map = build_map(topics, "Vault", vectors.get, lambda p: p.upper(), lambda p: f"about {p}", lambda p: False)
    assert sorted(n.path for n in idea_map.notes) == sorted(vectors)
    fine = [t for t in idea_map.topics if t.level == 1]
    broad = {t.id: t for t in idea_map.topics if t.level == 0}
    assert set(broad) == {"t0-0", "t0-1"}
    for note in idea_map.notes:
        disc = fine[note.topic]
        assert note.path in next(t.notes for t in topics if t.id == disc.id)
        assert np.hypot(note.x - disc.x, note.y - disc.y) <= disc.radius
        assert note.colour == broad[disc.parent].colour
    assert build_map(topics, "Vault", vectors.get, str, str, lambda p: False) == \
        build_map(topics, "Vault", vectors.get, str, str, lambda p: False)  # one picture per vault


def test_discs_never_overlap_and_a_broad_topics_parts_sit_together():
    topics, vectors = synthetic_topics(groups=12, size=9)
    idea_map = build_map(topics, "Vault", vectors.get, str, str, lambda p: False)
    fine = [t for t in idea_map.topics if t.level == 1]
    broad = {t.id: t for t in idea_map.topics if t.level == 0}
    for i, a in enumerate(fine):
        for b in fine[i + 1:]:
            assert np.hypot(a.x - b.x, a.y - b.y) >= a.radius + b.radius + GAP - 1e-3
        nearest = min(broad.values(), key=lambda t: np.hypot(a.x - t.x, a.y - t.y))
        assert nearest.id == a.parent


def test_a_private_note_is_a_point_without_title_summary_or_path_unless_asked():
    topics, vectors = synthetic_topics()
    secret = "g1/n3.md"
    hidden = build_map(topics, "Vault", vectors.get, lambda p: "Secret title", lambda p: "secret summary",
                       lambda p: p == secret)
    shown = [n for n in hidden.notes if n.path is not None]
    assert len(shown) == len(vectors) - 1
    blank = next(n for n in hidden.notes if n.path is None)
    assert (blank.title, blank.summary) == ("", "")
    asked = build_map(topics, "Vault", vectors.get, lambda p: "Secret title", lambda p: "secret summary",
                      lambda p: p == secret, include_private=True)
    assert secret in {n.path for n in asked.notes}


def test_a_title_cannot_end_the_pages_data_or_script():
    topics, vectors = synthetic_topics(groups=1, size=3)
    idea_map = build_map(topics, "A <b>vault</b>", vectors.get, lambda p: "</script><script>alert(1)</script>",
                         lambda p: None, lambda p: False)
    page = render_page(idea_map)
    assert "alert(1)</script>" not in page
    assert page.count("</script>") == 2  # the data block's and the script's own
    data = page.split('<script id="map-data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)["notes"]["title"][0] == "</script><script>alert(1)</script>"


# ------------------------------------------------------------------ a real vault, the real model


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("ideamap")
    root = write_vault(base / "Field Notes", {**NOTES, PRIVATE_NOTE: PRIVATE_TEXT})
    app = App(replace(Settings(), state_dir=str(base / "state"), **{"models.verify": False}), root.resolve(),
              embedder=embedder)
    app.indexer.run()
    yield app
    app.close()


@pytest.fixture(scope="module")
def page_file(app, tmp_path_factory):
    import os

    target = tmp_path_factory.mktemp("page") / "map.html"
    os.environ["IDEAWEAVE_STATE_DIR"] = str(app.state_dir)
    os.environ["IDEAWEAVE_MODELS_VERIFY"] = "false"
    try:
        assert main(["map", "--vault", str(app.root), "--no-index", "--html", str(target)]) == 0
    finally:
        del os.environ["IDEAWEAVE_STATE_DIR"], os.environ["IDEAWEAVE_MODELS_VERIFY"]
    return target


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Loaded:
    """A page loaded in Chromium with every request other than the page itself refused and recorded."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def gate(route):
            self.requests.append(route.request.url)
            if route.request.url == url:
                route.continue_()
            else:
                route.abort()

        self.page.route("**/*", gate)
        self.page.goto(url)
        self.page.wait_for_function("document.documentElement.dataset.drawn === 'true'", timeout=20_000)

    def close(self):
        self.context.close()


@pytest.fixture
def loaded(browser, page_file):
    shown = Loaded(browser, page_file.as_uri())
    yield shown
    shown.close()


def test_the_page_draws_with_no_error_and_asks_for_nothing_but_itself(loaded, page_file):
    assert loaded.errors == []
    assert loaded.requests == [page_file.as_uri()]
    assert loaded.page.evaluate("window.ideaweaveMap.draws") >= 1


def test_the_page_shows_the_vaults_topics(app, loaded):
    topics = vault_topics(Corpus(app.store), app.scanner)
    shown = loaded.page.evaluate("JSON.parse(document.getElementById('map-data').textContent).topics")
    assert {(t["id"], t["name"]) for t in shown} == {(t.id, t.name) for t in topics}
    drawn = loaded.page.evaluate("""() => {
        const c = document.getElementById('map'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let inked = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked++; return inked; }""")
    assert drawn > 5000  # points, discs and names, not a blank canvas


def test_the_search_box_finds_a_note(loaded):
    loaded.page.fill("#search", "compost")
    assert loaded.page.text_content("#found") == "1 note"
    loaded.page.fill("#search", "no such words anywhere")
    assert loaded.page.text_content("#found") == "no note matches"


def test_hover_shows_a_notes_title_and_summary_and_a_click_copies_its_obsidian_link(loaded):
    at = loaded.page.evaluate("window.ideaweaveMap.screenOf('Garden/Compost.md')")
    loaded.page.mouse.move(at["x"], at["y"])
    assert loaded.page.is_visible("#tip")
    assert loaded.page.text_content("#tip .title") == "Compost"
    loaded.page.mouse.click(at["x"], at["y"])
    loaded.page.wait_for_function("window.ideaweaveMap.lastLink !== null")
    assert loaded.page.evaluate("window.ideaweaveMap.lastLink") == \
        "obsidian://open?vault=Field%20Notes&file=Garden%2FCompost"


def test_a_private_note_is_an_unlabelled_point_unless_asked(app, page_file, tmp_path, monkeypatch):
    page = page_file.read_text(encoding="utf-8").lower()
    assert PRIVATE_NOTE.lower() not in page and not any(word in page for word in PRIVATE_WORDS)
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert None in data["notes"]["path"]  # still a point
    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(app.state_dir))
    monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
    asked = tmp_path / "all.html"
    assert main(["map", "--vault", str(app.root), "--no-index", "--include-private", "--html", str(asked)]) == 0
    assert PRIVATE_NOTE in asked.read_text(encoding="utf-8")


def test_the_api_serves_the_commands_page_with_the_token_only(app, page_file):
    from starlette.testclient import TestClient

    with TestClient(build_api(AppBackend(app), TOKEN), base_url="http://127.0.0.1:8765") as client:
        assert client.get("/map").status_code == 401
        served = client.get("/map", headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        assert served.text == page_file.read_text(encoding="utf-8")
        assert client.get("/map?include_private=maybe", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400


def test_the_command_says_what_it_wrote_and_fails_in_one_line(app, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(app.state_dir))
    monkeypatch.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
    target = tmp_path / "m.html"
    assert main(["map", "--vault", str(app.root), "--no-index", "--json", "--html", str(target)]) == 0
    report = json.loads(capsys.readouterr().out)
    valid(schemas.CLI_OUTPUT["map"], report)
    corpus = Corpus(app.store)
    topics = vault_topics(corpus, app.scanner)
    assert report == {"file": str(target.resolve()), "notes": len(vault_map(corpus, topics, app.root.name, lambda p: None).notes),
                      "topics": sum(1 for t in topics if t.level == 0)}
    assert report["topics"] >= 2
    assert main(["map", "--vault", str(app.root), "--no-index", "--html", str(tmp_path / "nowhere" / "m.html")]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("ideaweave: cannot write the map to") and "\n" not in error


def test_a_note_whose_summary_cannot_be_read_is_drawn_without_one(tmp_path, embedder):
    root = write_vault(tmp_path / "vault", NOTES)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state"), **{"models.verify": False}), root.resolve(),
              embedder=embedder)
    app.indexer.run()
    (root / "Garden/Compost.md").unlink()
    (root / "Garden/Compost.md").mkdir()  # still in the index, but reading it fails
    corpus = Corpus(app.store)
    drawn = vault_map(corpus, vault_topics(corpus, app.scanner), root.name, AppBackend(app).summary)
    assert {n.path for n in drawn.notes} == set(NOTES)
    assert next(n for n in drawn.notes if n.path == "Garden/Compost.md").summary == ""
    app.close()
