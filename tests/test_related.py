"""One answer to "what are this note's related notes": the CLI, the API (over the real HTTP server, as the
bridge's panel asks it) and the `related` list written into the note name the same notes in the same order,
with the user's pin first and rejection absent, before and after the user edits the list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from ideaweave import cli, frontmatter
from ideaweave.api import StandaloneState, start_api
from ideaweave.app import App
from ideaweave.config import load_settings, replace
from ideaweave.related import link_target
from ideaweave.token import load_or_create_token

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"
NOTE = "Concepts/Reward hacking.md"
COUNT = 5


@pytest.fixture
def vault(tmp_path, monkeypatch):
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    for name, value in {"STATE_DIR": str(tmp_path / "state"), "MODELS_VERIFY": "false", "WRITER_DEFER_SECONDS": "0",
                        "WRITER_RELATED_COUNT": str(COUNT)}.items():
        monkeypatch.setenv(f"IDEAWEAVE_{name}", value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return root.resolve()


def run(capsys, *argv: str):
    assert cli.main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def written(app: App) -> list[str]:
    links = frontmatter.read_managed((app.root / NOTE).read_bytes(), ("related",))["related"]
    return [link_target(app.indexer.resolver, link, NOTE) for link in links]


def from_cli(capsys, vault: Path) -> list[str]:
    return [r["path"] for r in run(capsys, "related", "--vault", str(vault), "-k", str(COUNT), NOTE)[0]["related"]]


def from_api(app: App) -> list[str]:
    running = start_api(app, StandaloneState())
    try:
        token = load_or_create_token(app.state_dir)
        response = httpx.get(f"{running.url}/related", params={"note": NOTE, "k": COUNT},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200, response.text
        ideas = response.json()["related"]
        assert [i["pinned"] for i in ideas].count(True) >= 1
        return [i["path"] for i in ideas]
    finally:
        running.close()


def test_cli_api_and_the_written_list_agree_with_a_pin_and_a_rejection(vault, capsys, embedder):
    run(capsys, "index", "--vault", str(vault))
    app = App(load_settings(), vault, embedder=embedder)
    try:
        first = [r.path for r in app.related_notes().for_note(NOTE, 10)]
        rejected = first[0]
        pinned = next(p for p in app.store.note_paths() if p not in first and p != NOTE
                      and not app.store.note(p).private and not app.store.note(p).is_template)
        app.store.set_feedback(NOTE, rejected, "rejected")
        app.store.set_feedback(NOTE, pinned, "pinned")
    finally:
        app.close()

    run(capsys, "apply", "--vault", str(vault))
    app = App(replace(load_settings(), **{"api.port": 0}), vault, embedder=embedder)
    try:
        in_note = written(app)
        assert in_note[0] == pinned and rejected not in in_note and len(in_note) == COUNT
        assert from_cli(capsys, vault) == in_note
        assert from_api(app) == in_note

        # The user deletes a link from the list: before the next write every surface already shows what
        # that write will hold (the link gone for good), and the write then holds exactly that.
        text = (vault / NOTE).read_text(encoding="utf-8")
        links = frontmatter.read_managed(text.encode(), ("related",))["related"]
        edited = frontmatter.set_managed(text.encode(), {"related": [links[0]] + links[2:]})
        (vault / NOTE).write_bytes(edited)
        removed = in_note[1]
        expected = from_cli(capsys, vault)
        assert removed not in expected and expected[0] == pinned
        assert from_api(app) == expected
    finally:
        app.close()
    run(capsys, "apply", "--vault", str(vault))
    app = App(load_settings(), vault, embedder=embedder)
    try:
        assert written(app) == expected
    finally:
        app.close()
