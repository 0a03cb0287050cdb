"""The local HTTP API: a real App over a small vault (real model, real SQLite), in process and on a real socket."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from starlette.exceptions import HTTPException

from ideaweave import __version__, frontmatter, schemas, store
from ideaweave.api import (
    FEEDBACK_VERBS, MAX_BODY_BYTES, OPENAPI_SCHEMA, STORED_ACTION_OF_VERB, AppBackend, StandaloneState, build_api,
    http_status, loopback_address, serve, start_api,
)
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.corpus import Corpus
from ideaweave.errors import ConfigError, IdeaweaveError, LockError, ModelError, StoreError, VaultError
from ideaweave.summaries import summaries_for
from ideaweave.token import load_or_create_token, rotate_token, token_path
from ideaweave.handoff import OFFER_SECONDS, WriteQueue
from test_handoff import Clock, a_write

TOKEN = "k7Qe1w0Zr4mXyqg5bL2nT8vC3sJ6dH9fA0pU1oI2eR4"
BASE = "http://127.0.0.1:8765"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OBSIDIAN = "app://obsidian.md"

NOTES = {
    "Corrigibility.md": """---
tags: [alignment]
---
# Corrigibility

An agent is corrigible when it lets its overseers correct it, retrain it or switch it off,
instead of resisting. See [[Shutdown button]].

## Shutdown problem

An agent maximising a utility function has a reason to stop anyone from pressing its off switch,
because being switched off prevents it from reaching its goal. Making it indifferent is hard.
""",
    "Shutdown button.md": """# Shutdown button

The off switch problem: a rational agent resists being switched off unless it is uncertain about
its objective. Utility indifference proposals try to make the agent neither seek nor avoid shutdown.
""",
    "Interpretability.md": """# Interpretability

Reading the internals of a neural network: circuits, features, probes. Mechanistic interpretability
could tell us whether an agent plans to resist correction before it acts on it.
""",
    "Gardening.md": """# Gardening

Tomatoes need full sun, deep watering twice a week, and a stake once they reach knee height.
Basil planted beside them keeps some pests away. Harvest before the first frost.
""",
    "folder/Compost.md": """# Compost

Kitchen scraps, dry leaves and a little garden soil make compost in three months if turned weekly.
Keep it moist like a wrung-out sponge; the heap should smell of earth, not of rot.
""",
    "Written summary.md": """---
summary: A note whose summary was written by hand.
---
# Written summary

Some text about nothing in particular, only here to carry a summary in its frontmatter.
""",
}


def make_vault(root: Path) -> None:
    (root / ".obsidian").mkdir(parents=True)
    for path, text in NOTES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")


def indexed_app(base: Path, embedder) -> App:
    root = base / "vault"
    make_vault(root)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nA private diary outside the vault: bank codes.\n", encoding="utf-8")
    os.symlink(outside / "secret.md", root / "leak.md")
    settings = replace(Settings(state_dir=str(base / "state")), **{"summary.min_words": 5})
    app = App(settings, root.resolve(), embedder=embedder)
    app.indexer.run()
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    app = indexed_app(tmp_path_factory.mktemp("api"), embedder)
    yield app
    app.store.close()


@pytest.fixture
def backend(app):
    return AppBackend(app)


@pytest.fixture
def client(backend):
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers=AUTH) as client:
        yield client


# ------------------------------------------------------------------ the gate: token, origin, host, size


ENDPOINTS = [
    ("GET", "/status"), ("GET", "/related?note=Corrigibility.md"), ("GET", "/search?q=switch"), ("POST", "/search"),
    ("GET", "/summary?note=Corrigibility.md"), ("POST", "/feedback"), ("POST", "/pause"), ("POST", "/resume"),
    ("GET", "/writes"), ("POST", "/writes/w-1/ack"), ("GET", "/openapi.json"),
    ("GET", "/topics"), ("GET", "/topics/t0-x"), ("GET", "/duplicates"), ("POST", "/duplicates/not"), ("GET", "/map"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", TOKEN])
def test_every_endpoint_needs_the_token(backend, method, url, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers=headers) as anonymous:
        response = anonymous.request(method, url, json={"note": "Corrigibility.md"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert "token" in response.json()["error"]
    assert backend.paused is False  # nothing ran


def test_a_refused_token_is_not_half_accepted(backend):
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}x"}) as c:
        assert c.get("/status").status_code == 401
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers={"Authorization": f"Bearer {TOKEN[:-1]}"}) as c:
        assert c.get("/status").status_code == 401


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "app://obsidian.md.evil", "http://127.0.0.1:8765"])
def test_other_origins_are_refused_even_with_the_token(client, backend, origin):
    response = client.post("/pause", headers={"Origin": origin})
    assert response.status_code == 403
    assert "origin" in response.json()["error"]
    assert "access-control-allow-origin" not in response.headers
    assert backend.paused is False
    preflight = client.options("/pause", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


def test_the_obsidian_origin_gets_cors_headers_and_preflights(backend):
    with TestClient(build_api(backend, TOKEN), base_url=BASE) as anonymous:
        preflight = anonymous.options("/related", headers={
            "Origin": OBSIDIAN, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == OBSIDIAN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        # The browser can read a refusal too, so the plugin can say "wrong token".
        refused = anonymous.get("/status", headers={"Origin": OBSIDIAN})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == OBSIDIAN
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers=AUTH) as authorised:
        response = authorised.get("/status", headers={"Origin": OBSIDIAN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == OBSIDIAN
    assert "*" not in response.headers.get("access-control-allow-origin", "")


def test_requests_naming_another_host_are_refused(backend):
    # A web page that rebinds its own DNS name to 127.0.0.1 sends its name as the Host.
    with TestClient(build_api(backend, TOKEN), base_url="http://attacker.example:8765", headers=AUTH) as rebound:
        response = rebound.get("/status")
    assert response.status_code == 403
    for base in ("http://localhost:8765", "http://[::1]:8765", "http://127.0.0.2"):
        with TestClient(build_api(backend, TOKEN), base_url=base, headers=AUTH) as local:
            assert local.get("/status").status_code == 200, base


def test_a_wildcard_origin_or_an_empty_token_cannot_be_configured(backend):
    with pytest.raises(ConfigError):
        build_api(backend, TOKEN, allowed_origin="*")
    with pytest.raises(ConfigError):
        build_api(backend, "")


def test_bodies_over_the_limit_get_413(client, app):
    note = "x" * (MAX_BODY_BYTES + 10)
    response = client.post("/feedback", content=json.dumps({"note": note, "target": "b.md", "action": "pin"}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = client.post("/writes/w-1/ack", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"].startswith("the request body is larger")
    # A body to an endpoint that reads none is refused all the same.
    assert client.post("/pause", content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 413


# ------------------------------------------------------------------ endpoints


def test_status(client, app, backend):
    backend.state.pending = 3
    backend.state.indexing_done, backend.state.indexing_total, backend.state.indexing_active = 12, 40, True
    backend.state.last_error = "a note could not be read"
    body = client.get("/status").json()
    counts = app.store.counts()
    # The embedder the daemon loaded says how many threads it embeds with now.
    assert body.pop("threads") == app.loaded_embedder.thread_mode
    assert app.loaded_embedder.thread_mode["threads"] >= 1
    assert body == {
        "vault": str(app.root), "notes": counts["notes"], "chunks": counts["chunks"],
        "indexing": {"done": 12, "total": 40, "active": True}, "queue": 3, "paused": False,
        "private_mode": False, "last_error": "a note could not be read", "bridge_connected": False, "failed": [],
        "version": __version__, "pass": None}
    assert body["notes"] >= len(NOTES)
    client.get("/writes")
    backend.state.indexing_done, backend.state.indexing_active = 40, False
    body = client.get("/status").json()
    assert body["bridge_connected"] is True
    assert body["indexing"] == {"done": 40, "total": 40, "active": False}


def test_status_shows_the_start_up_pass_of_the_daemon_serving_it(app):
    import jsonschema_rs
    from ideaweave.watch import WatchStats

    stats = WatchStats()
    stats.start_phase("writing", 200)
    stats.pass_done, stats.pass_started = 50, stats.pass_started - 10.0  # 50 notes in 10 s
    with TestClient(build_api(AppBackend(app, state=stats), TOKEN), base_url=BASE, headers=AUTH) as client:
        body = client.get("/status").json()
        assert body["pass"]["phase"] == "writing" and body["pass"]["done"] == 50 and body["pass"]["total"] == 200
        assert 4.0 < body["pass"]["rate"] <= 5.0 and 29 <= body["pass"]["eta_seconds"] <= 38
        jsonschema_rs.validate(schemas.API_STATUS, body)
        stats.end_pass()
        body = client.get("/status").json()
        assert body["pass"] is None
        jsonschema_rs.validate(schemas.API_STATUS, body)


def test_related(client, app):
    response = client.get("/related", params={"note": "Corrigibility.md", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["note"] == "Corrigibility.md"
    ideas = body["related"]
    assert 1 <= len(ideas) <= 3
    for idea in ideas:
        assert set(idea) == {"path", "title", "score", "heading", "link", "passage", "why", "pinned"}
        assert idea["link"].startswith("[[") and idea["link"].endswith("]]")
        assert idea["pinned"] is False
        assert idea["path"] in app.store.note_paths()
    paths = [idea["path"] for idea in ideas]
    # Already linked from the body, so never suggested; the closest unlinked idea ranks first.
    assert "Shutdown button.md" not in paths
    assert paths[0] == "Interpretability.md"
    assert client.get("/related", params={"note": "Corrigibility.md"}).status_code == 200


def test_related_sees_notes_indexed_after_its_snapshot(tmp_path, embedder):
    app = indexed_app(tmp_path, embedder)
    backend = AppBackend(app)
    try:
        with TestClient(build_api(backend, TOKEN), base_url=BASE, headers=AUTH) as client:
            assert client.get("/related", params={"note": "Gardening.md"}).status_code == 200
            (app.root / "Tomato blight.md").write_text(
                "# Tomato blight\n\nBrown spots on tomato leaves after wet weeks; remove them and water the soil, "
                "not the leaves.\n", encoding="utf-8")
            app.indexer.update(["Tomato blight.md"])
            # Without a refresh from the daemon: an indexed note missing from the snapshot rebuilds it.
            ideas = client.get("/related", params={"note": "Tomato blight.md", "k": 2}).json()["related"]
            assert ideas[0]["path"] == "Gardening.md"
            backend.refresh(Corpus(app.store))  # the daemon's own fresh snapshot, shared
            assert client.get("/related", params={"note": "Gardening.md", "k": 2}).json()["related"][0]["path"] \
                == "Tomato blight.md"
    finally:
        app.store.close()


def test_search(client):
    body = client.get("/search", params={"q": "tomatoes need sun", "k": 2}).json()
    assert body["query"] == "tomatoes need sun"
    assert [hit["path"] for hit in body["results"]][0] == "Gardening.md"
    assert len(body["results"]) <= 2
    assert set(body["results"][0]) == {"path", "title", "score", "heading", "passage", "why"}
    assert client.get("/search", params={"q": "   "}).json()["results"] == []


SELECTION = "a rational agent resists being switched off unless it is uncertain about its objective"


def test_search_by_a_selected_passage_leaves_its_own_note_out(client):
    body = client.post("/search", json={"passage": SELECTION, "note": "Shutdown button.md", "k": 3}).json()
    assert body["query"] == SELECTION
    paths = [hit["path"] for hit in body["results"]]
    assert paths[0] == "Corrigibility.md" and "Shutdown button.md" not in paths and len(paths) <= 3
    assert all(set(hit) == {"path", "title", "score", "heading", "passage", "why"} for hit in body["results"])
    # Without the note, the passage's own note is simply the best match.
    alone = client.post("/search", json={"passage": SELECTION}).json()["results"]
    assert alone[0]["path"] == "Shutdown button.md"


def test_search_by_a_notes_section(client):
    body = client.post("/search", json={"note": "Corrigibility.md", "heading": "shutdown problem"}).json()
    assert "off switch" in body["query"] and "corrigible when" not in body["query"]
    paths = [hit["path"] for hit in body["results"]]
    assert paths[0] == "Shutdown button.md" and "Corrigibility.md" not in paths
    whole = client.post("/search", json={"note": "Corrigibility.md"}).json()
    assert "corrigible when" in whole["query"] and "Corrigibility.md" not in [h["path"] for h in whole["results"]]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({}, 400, "passage"),
    ({"heading": "Shutdown problem"}, 400, "give the note too"),
    ({"passage": SELECTION, "note": "Corrigibility.md", "heading": "Shutdown problem"}, 400, "not both"),
    ({"passage": 7}, 400, "passage"),
    ({"passage": "x" * 20_001}, 400, "longer"),
    ({"passage": SELECTION, "k": 0}, 400, "k:"),
    ({"passage": SELECTION, "k": True}, 400, "k:"),
    ({"note": "../outside/secret.md"}, 400, "note"),
    ({"note": "Nowhere.md"}, 404, "no indexed note"),
    ({"note": "Corrigibility.md", "heading": "No such heading"}, 404, "no heading"),
])
def test_passage_search_bodies_are_checked(client, body, status, says):
    response = client.post("/search", json=body)
    assert response.status_code == status and says in response.json()["error"]


def test_summary_from_frontmatter_then_from_the_cache(client, app):
    body = client.get("/summary", params={"note": "Written summary.md"}).json()
    assert body == {"note": "Written summary.md", "summary": "A note whose summary was written by hand."}
    # Not written yet: the extractive summary the indexer made and cached, the one the sync will write.
    cached = client.get("/summary", params={"note": "folder/Compost.md"}).json()["summary"]
    assert cached and cached == summaries_for(app).for_note("folder/Compost.md")


def test_feedback_pin_reject_and_clear_land_in_the_store(client, app):
    note = "Interpretability.md"
    try:
        assert client.post("/feedback", json={"note": note, "target": "Gardening.md", "action": "pin"}).json() == {"ok": True}
        assert client.post("/feedback", json={"note": note, "target": "Corrigibility.md", "action": "reject"}).status_code == 200
        assert app.store.feedback_for(note) == {"Gardening.md": "pinned", "Corrigibility.md": "rejected"}
        ideas = client.get("/related", params={"note": note, "k": 3}).json()["related"]
        assert ideas[0]["path"] == "Gardening.md" and ideas[0]["pinned"] is True
        assert "Corrigibility.md" not in [idea["path"] for idea in ideas]
        assert client.post("/feedback", json={"note": note, "target": "Corrigibility.md", "action": "clear"}).status_code == 200
        assert app.store.feedback_for(note) == {"Gardening.md": "pinned"}
        # Clearing feedback about a note that no longer exists is allowed.
        assert client.post("/feedback", json={"note": note, "target": "gone.md", "action": "clear"}).status_code == 200
    finally:
        for target in ("Gardening.md", "Corrigibility.md"):
            app.store.clear_feedback(note, target)


@pytest.mark.parametrize(("body", "status"), [
    ({"note": "Gardening.md", "target": "Compost.md", "action": "like"}, 400),
    ({"note": "Gardening.md", "action": "pin"}, 400),
    ({"note": 3, "target": "folder/Compost.md", "action": "pin"}, 400),
    ({"note": "Gardening.md", "target": "Gardening.md", "action": "pin"}, 400),
    ({"note": "Nowhere.md", "target": "folder/Compost.md", "action": "pin"}, 404),
    ({"note": "Gardening.md", "target": "Nowhere.md", "action": "reject"}, 404),
    ({"note": "Gardening.md", "target": "folder/Compost.md", "action": {}}, 400),
    ({"note": ["Gardening.md"], "target": "folder/Compost.md", "action": "pin"}, 400),
    (["Gardening.md"], 400),
])
def test_feedback_bodies_are_checked(client, app, body, status):
    response = client.post("/feedback", json=body)
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)
    assert app.store.feedback_for("Gardening.md") == {}


def test_feedback_body_that_is_not_json(client):
    response = client.post("/feedback", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    deep = b"[" * 20000 + b"]" * 20000
    assert client.post("/feedback", content=deep).status_code == 400


def test_pause_and_resume(client, backend):
    assert client.post("/pause").json() == {"paused": True}
    assert backend.state.writes_paused.is_set()  # what the watcher obeys
    assert client.get("/status").json()["paused"] is True
    assert client.post("/resume").json() == {"paused": False}
    assert not backend.state.writes_paused.is_set() and backend.paused is False


@pytest.mark.parametrize("note", [
    "../x.md", "/etc/passwd", "/etc/hosts.md", "folder/../../x.md", "folder/./Compost.md", "a\x00.md",
    "C:/Windows/x.md", "folder\\Compost.md", "leak.md", "", "Gardening",
])
def test_paths_that_leave_the_vault_or_are_malformed_get_400(client, note):
    for response in (client.get("/related", params={"note": note}), client.get("/summary", params={"note": note}),
                     client.post("/feedback", json={"note": note, "target": "Gardening.md", "action": "pin"}),
                     client.post("/feedback", json={"note": "Gardening.md", "target": note, "action": "clear"})):
        assert response.status_code == 400, (note, response.text)
        assert "secret" not in response.text.lower()


def test_a_symlink_out_of_the_vault_is_neither_indexed_nor_served(client, app):
    assert (app.root / "leak.md").is_symlink()
    assert app.store.note("leak.md") is None
    response = client.get("/related", params={"note": "leak.md"})
    assert response.status_code == 400 and "outside the vault" in response.json()["error"]


def test_unknown_notes_get_404_and_503_while_indexing(client, backend):
    response = client.get("/related", params={"note": "Nowhere.md"})
    assert response.status_code == 404 and "Nowhere.md" in response.json()["error"]
    backend.state.indexing_done, backend.state.indexing_total, backend.state.indexing_active = 1, 40, True
    response = client.get("/summary", params={"note": "Nowhere.md"})
    assert response.status_code == 503 and "indexing (1/40" in response.json()["error"]


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=two", "k=-1", "k=1.5", "k=%EF%BC%95"])
def test_bad_counts_get_400(client, query):
    assert client.get(f"/related?note=Gardening.md&{query}").status_code == 400
    assert client.get(f"/search?q=x&{query}").status_code == 400


def test_missing_parameters_and_unknown_routes_answer_json(client):
    assert client.get("/related").status_code == 400
    assert client.get("/search").json() == {"error": "q: missing"}
    response = client.get("/nowhere")
    assert response.status_code == 404 and "error" in response.json()
    response = client.get("/pause")
    assert response.status_code == 405 and "error" in response.json()


def test_openapi_document_lists_every_endpoint(client):
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/status", "/related", "/search", "/summary", "/feedback", "/pause", "/resume",
                                    "/writes", "/writes/{id}/ack", "/openapi.json",
                                    "/topics", "/topics/{id}", "/duplicates", "/duplicates/not", "/map"}


def test_openapi_answers_are_described_by_the_shared_schemas(client):
    components = client.get("/openapi.json").json()["components"]["schemas"]
    for name, schema in schemas.API_RESPONSES.items():
        assert components[name] == schema, name
    assert components["Feedback"]["properties"]["action"]["enum"] == list(FEEDBACK_VERBS)


def test_feedback_verbs_map_one_to_one_onto_the_actions_the_store_keeps():
    stored = [action for action in STORED_ACTION_OF_VERB.values() if action is not None]
    assert sorted(stored) == sorted(store.FEEDBACK_ACTIONS)
    assert len(set(stored)) == len(stored)
    assert [verb for verb, action in STORED_ACTION_OF_VERB.items() if action is None] == ["clear"]
    assert OPENAPI_SCHEMA["components"]["schemas"]["Feedback"]["properties"]["action"]["enum"] == ["pin", "reject", "clear"]


# ------------------------------------------------------------------ errors into statuses


@pytest.mark.parametrize(("error", "ready", "status"), [
    (HTTPException(400, "k: a whole number"), True, 400),
    (HTTPException(404, "no indexed note"), True, 404),
    (HTTPException(503, "not indexed yet"), False, 503),
    (LockError("another ideaweave process works on this vault"), True, 409),
    (LockError("another ideaweave process works on this vault"), False, 409),
    (StoreError("the index was built with another model"), False, 503),
    (StoreError("the index cannot be written: disk I/O error"), True, 500),
    (ConfigError("api.port must be a TCP port"), True, 500),
    (ConfigError("api.port must be a TCP port"), False, 500),
    (VaultError("vault folder not found"), False, 500),
    (ModelError("model file missing"), False, 500),
    (IdeaweaveError("something else"), True, 500),
    (ValueError("a bug"), False, 500),
])
def test_one_table_gives_every_error_its_status(error, ready, status):
    assert http_status(error, index_ready=ready) == status


class FailingBackend(AppBackend):
    """The real backend whose search fails with `error`: what the edge answers for each kind of failure."""

    def __init__(self, app: App, error: Exception):
        super().__init__(app)
        self.error = error

    def search(self, query, k):
        raise self.error


@pytest.mark.parametrize(("error", "indexing", "status"), [
    (ConfigError("models.embedding: the file named here does not exist"), False, 500),
    (VaultError("the vault folder was removed"), False, 500),
    (ModelError("the model cannot be loaded"), True, 500),
    (LockError("another ideaweave process already works on this vault"), False, 409),
    (StoreError("the index cannot be written: disk I/O error"), False, 500),
    (StoreError("the index was built with another model"), True, 503),
])
def test_domain_errors_get_their_own_status_not_always_503(app, error, indexing, status):
    backend = FailingBackend(app, error)
    backend.state.indexing_active = indexing
    with TestClient(build_api(backend, TOKEN), base_url=BASE, headers=AUTH) as client:
        response = client.get("/search", params={"q": "tomatoes"})
    assert response.status_code == status
    assert response.json() == {"error": str(error)}  # written for the user: passed on as it is


def test_a_missing_model_is_a_fault_to_fix_not_an_index_to_wait_for(app, tmp_path):
    # The index is there and ready; the model file is not.
    broken = App(replace(app.settings, **{"models.embedding": str(tmp_path / "gone.gguf")}), app.root, store=app.store)
    with TestClient(build_api(AppBackend(broken), TOKEN), base_url=BASE, headers=AUTH) as client:
        response = client.get("/search", params={"q": "tomatoes"})
    assert response.status_code == 500
    assert "gone.gguf" in response.json()["error"]


def test_an_index_being_rebuilt_for_a_new_model_is_not_ready(tmp_path, embedder):
    indexed = indexed_app(tmp_path, embedder)
    indexed.store.close()
    app = App(indexed.settings, indexed.root, embedder=embedder,
              store=store.Store.open(indexed.state_dir, embedder.dim, "another-model"))
    try:
        with TestClient(build_api(AppBackend(app), TOKEN), base_url=BASE, headers=AUTH) as client:
            response = client.get("/search", params={"q": "tomatoes"})
            assert response.status_code == 503 and "model" in response.json()["error"]
            response = client.get("/related", params={"note": "Nowhere.md"})
            assert response.status_code == 503 and "rebuilt for a new embedding model" in response.json()["error"]
    finally:
        app.store.close()


def test_parameters_that_are_not_utf8_are_bad_requests(client):
    for response in (client.get("/related?note=%FF.md"), client.get("/summary?note=Garden%E9ning.md"),
                     client.get("/search?q=tomato%FF"), client.get("/search?q=x&k=%FF")):
        assert response.status_code == 400, response.text
        assert "UTF-8" in response.json()["error"] or "whole number" in response.json()["error"]
    # A replacement character typed as such is text like any other.
    assert client.get("/search", params={"q": "tomato \ufffd"}).status_code == 200


# ------------------------------------------------------------------ the write hand-off


def new_note(app: App, name: str) -> tuple[str, bytes]:
    data = f"---\ntitle: {name}\nsummary: old\n---\n# {name}\n\nBody.\n".encode()
    (app.root / f"{name}.md").write_bytes(data)
    return f"{name}.md", data


def test_handoff_through_the_api_applies_exactly_once(client, backend, app):
    path, base = new_note(app, "Handoff one")
    write = a_write(path, ["[[Gardening]]", "[[Compost]]"])
    assert backend.hand_off(write, base) is False  # the bridge has not polled: the daemon writes itself
    assert client.get("/writes").json() == {"pending": []}
    assert backend.hand_off(write, base) is True
    pending = client.get("/writes").json()["pending"]
    assert len(pending) == 1
    offered = pending[0]
    assert offered["path"] == path and offered["id"].startswith("w-")
    assert offered["set"] == {"related": ["[[Gardening]]", "[[Compost]]"]} and offered["remove"] == ["summary"]
    assert client.get("/writes").json()["pending"] == pending  # offered again until acked

    # The plugin applies it the way processFrontMatter would, records the id, then acks.
    edited = frontmatter.set_managed(base, {"related": offered["set"]["related"], "summary": None})
    (app.root / path).write_bytes(edited)
    assert client.post(f"/writes/{offered['id']}/ack", json={"applied": True, "error": None}).json() == {"ok": True}
    record = app.store.last_written(path)
    assert record.checksum == hashlib.sha256(edited).hexdigest()
    assert record.values == write.remembered
    assert client.get("/writes").json()["pending"] == []

    # A second ack (the connection dropped before the first answer arrived) changes nothing.
    (app.root / path).write_bytes(edited + b"\nTyped later.\n")
    assert client.post(f"/writes/{offered['id']}/ack", json={"applied": True}).json() == {"ok": True}
    assert app.store.last_written(path) == record
    assert client.post("/writes/w-never-offered/ack", json={"applied": True}).json() == {"ok": True}


def test_only_the_plugins_poll_connects_the_bridge(client, backend, app):
    path, base = new_note(app, "Handoff poll")
    for _ in range(2):
        assert backend.pending_writes() == []  # the daemon or a test reading the queue
    assert not backend.writes.connected and client.get("/status").json()["bridge_connected"] is False
    assert backend.hand_off(a_write(path), base) is False
    client.get("/writes")  # the plugin's poll
    assert client.get("/status").json()["bridge_connected"] is True
    assert backend.hand_off(a_write(path), base) is True


def test_an_ack_whose_error_is_not_text_is_a_bad_request(client, backend, app):
    path, base = new_note(app, "Handoff surrogate")
    client.get("/writes")
    assert backend.hand_off(a_write(path), base)
    write_id = client.get("/writes").json()["pending"][0]["id"]
    # JSON can carry a lone surrogate; SQLite cannot store it.
    response = client.post(f"/writes/{write_id}/ack", content=b'{"applied": false, "error": "bad \\ud800 text"}')
    assert response.status_code == 400 and "error" in response.json()["error"]
    assert client.post(f"/writes/{write_id}/ack", json={"applied": False, "error": "unreadable"}).status_code == 200
    assert dict(app.store.write_issues())[path].endswith("unreadable")


def test_a_refused_write_is_dropped_and_reported(client, backend, app):
    path, base = new_note(app, "Handoff refused")
    client.get("/writes")
    assert backend.hand_off(a_write(path), base)
    write_id = client.get("/writes").json()["pending"][0]["id"]
    response = client.post(f"/writes/{write_id}/ack", json={"applied": False, "error": "frontmatter\nis broken"})
    assert response.json() == {"ok": True}
    assert app.store.last_written(path) is None
    assert dict(app.store.write_issues())[path].endswith("frontmatter is broken")
    assert client.get("/writes").json()["pending"] == []
    assert client.post(f"/writes/{write_id}/ack", json={"applied": "yes"}).status_code == 400


def test_a_write_whose_note_changed_since_planning_is_withdrawn(client, backend, app):
    path, base = new_note(app, "Handoff stale")
    client.get("/writes")
    assert backend.hand_off(a_write(path), base)
    (app.root / path).write_bytes(base + b"The user typed this.\n")
    assert client.get("/writes").json()["pending"] == []
    assert not backend.writes.awaiting(path)


def test_paused_holds_writes_back(client, backend, app):
    path, base = new_note(app, "Handoff paused")
    client.get("/writes")
    assert backend.hand_off(a_write(path), base)
    client.post("/pause")
    assert client.get("/writes").json()["pending"] == []
    client.post("/resume")
    assert [w["path"] for w in client.get("/writes").json()["pending"]] == [path]


def test_expired_writes_go_back_to_the_daemon_unless_the_file_already_holds_them(app):
    clock = Clock()
    backend = AppBackend(app, writes=WriteQueue(clock))
    applied_path, applied_base = new_note(app, "Handoff lost ack")
    ignored_path, ignored_base = new_note(app, "Handoff ignored")
    backend.writes.polled()
    applied, ignored = a_write(applied_path), a_write(ignored_path)
    assert backend.hand_off(applied, applied_base) and backend.hand_off(ignored, ignored_base)
    assert len(backend.pending_writes()) == 2
    # The plugin applied one and stopped before acking it; the other it never touched.
    edited = frontmatter.set_managed(applied_base, applied.values)
    (app.root / applied_path).write_bytes(edited)
    clock.now += OFFER_SECONDS - 1
    assert backend.expired_writes() == []
    clock.now += 1
    assert [entry.path for entry in backend.expired_writes()] == [ignored_path]
    assert app.store.last_written(applied_path).checksum == hashlib.sha256(edited).hexdigest()
    assert app.store.last_written(ignored_path) is None
    assert backend.pending_writes() == [] and backend.expired_writes() == []


# ------------------------------------------------------------------ the token file


def test_token_is_created_private_reused_and_rotated(tmp_path):
    state = tmp_path / "state"
    token = load_or_create_token(state)
    assert len(token) >= 43
    assert load_or_create_token(state) == token
    assert stat.S_IMODE(token_path(state).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    rotated = rotate_token(state)
    assert rotated != token and load_or_create_token(state) == rotated
    assert stat.S_IMODE(token_path(state).stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir()] == ["api-token"]  # no temporary file left behind


def test_token_file_readable_by_others_is_tightened_and_garbage_replaced(tmp_path):
    state = tmp_path / "state"
    token = load_or_create_token(state)
    os.chmod(token_path(state), 0o644)
    assert load_or_create_token(state) == token
    assert stat.S_IMODE(token_path(state).stat().st_mode) == 0o600
    token_path(state).write_text("short\n")
    replaced = load_or_create_token(state)
    assert replaced != "short" and len(replaced) >= 43


# ------------------------------------------------------------------ a real server


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", "", "::ffff:8.8.8.8"])
def test_non_loopback_hosts_are_refused(backend, host):
    with pytest.raises(ConfigError, match="loopback"):
        serve(build_api(backend, TOKEN), host, 0)


def test_loopback_hosts_are_accepted():
    assert loopback_address("localhost") == "127.0.0.1"
    assert loopback_address("127.0.0.1") == "127.0.0.1"
    assert loopback_address("[::1]") == "::1"


def test_real_server_on_loopback_answers_and_shuts_down(backend):
    running = serve(build_api(backend, TOKEN), "127.0.0.1", 0)
    try:
        assert running.thread.is_alive()
        response = httpx.get(f"{running.url}/status", headers=AUTH, timeout=10)
        assert response.status_code == 200 and response.json()["vault"] == str(backend.root)
        assert httpx.get(f"{running.url}/status", timeout=10).status_code == 401
        with pytest.raises(ConfigError, match="cannot serve"):
            serve(build_api(backend, TOKEN), "127.0.0.1", running.port)  # port taken
    finally:
        running.shutdown()
    assert not running.thread.is_alive()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", running.port)) != 0


def test_the_real_server_answers_search_as_typed_and_by_passage(backend):
    running = serve(build_api(backend, TOKEN), "127.0.0.1", 0)
    try:
        with httpx.Client(base_url=running.url, headers=AUTH, timeout=20) as kept_alive:  # as the plugin asks
            typed = [kept_alive.get("/search", params={"q": prefix, "k": 3}).json()
                     for prefix in ("tom", "tomatoes n", "tomatoes need sun")]
            assert typed[-1]["results"][0]["path"] == "Gardening.md"
            answer = kept_alive.post("/search", json={"passage": SELECTION, "note": "Shutdown button.md", "k": 3})
            assert answer.status_code == 200
            assert answer.json()["results"][0]["path"] == "Corrigibility.md"
            assert httpx.post(f"{running.url}/search", json={"passage": SELECTION}, timeout=10).status_code == 401
    finally:
        running.shutdown()


PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "obsidian-bridge"


def test_the_plugins_search_modal_and_selection_command_work_against_the_real_api(backend):
    """The plugin's own test (test/real-daemon.test.ts), run by node against this server."""
    tsx = PLUGIN / "node_modules" / ".bin" / "tsx"
    if not tsx.exists() or shutil.which("node") is None:
        # CI (`make test`) installs them before the Python tests run: there a skip would hide a failure.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "the plugin's dependencies are not installed (cd plugins/obsidian-bridge && npm ci)")
    running = serve(build_api(backend, TOKEN), "127.0.0.1", 0)
    try:
        result = subprocess.run(
            [str(tsx), "--tsconfig", "test/tsconfig.json", "--test", "test/real-daemon.test.ts"],
            cwd=PLUGIN, capture_output=True, text=True, timeout=180,
            env={**os.environ, "IDEAWEAVE_TEST_API_URL": running.url, "IDEAWEAVE_TEST_API_TOKEN": TOKEN})
    finally:
        running.shutdown()
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    assert "# pass 4" in report and "# skipped 0" in report, report[-4000:]


def test_start_api_serves_the_vault_with_its_token(app):
    state = StandaloneState(pending=2)
    running = start_api(replace_app_port(app), state)
    try:
        token = load_or_create_token(app.state_dir)
        response = httpx.get(f"{running.url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.json()["queue"] == 2
        assert running.backend.state is state
    finally:
        running.close()
    assert not running.thread.is_alive()


def replace_app_port(app: App) -> App:
    """The same vault and store on port 0 (any free port)."""
    return App(replace(app.settings, **{"api.port": 0}), app.root, embedder=app.embedder, store=app.store)


def test_schemathesis_finds_no_server_error(tmp_path, embedder):
    app = indexed_app(tmp_path, embedder)
    backend = AppBackend(app)
    running = serve(build_api(backend, TOKEN), "127.0.0.1", 0)
    try:
        schema = httpx.get(f"{running.url}/openapi.json", headers=AUTH, timeout=10).json()
        schema_file = tmp_path / "openapi.json"
        schema_file.write_text(json.dumps(schema))
        cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
        result = subprocess.run(
            [cli, "run", str(schema_file), "--url", running.url, "-H", f"Authorization: Bearer {TOKEN}",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
             "response_schema_conformance,ignored_auth",
             "--max-examples", "20", "--seed", "1", "--phases", "examples,coverage,fuzzing",
             "--request-timeout", "20", "--no-color"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    finally:
        running.shutdown()
        app.store.close()
