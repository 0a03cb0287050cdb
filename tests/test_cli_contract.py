"""The `--json` output of every command, run for real (the CLI in process, a real vault, the real model),
validated against the contracts in `ideaweave.schemas`; and the CLI and the API showing one object in one shape.

The contracts the design documents for other tools are also spelled out here, apart from `schemas`, so
a change to `schemas` that would break those tools fails a test too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from ideaweave import cli, schemas
from ideaweave.api import AppBackend, build_api
from ideaweave.app import App
from ideaweave.config import load_settings
from test_api import AUTH, BASE, NOTES, TOKEN, make_vault

BIG_NOTE = "Big.md"
MAX_NOTE_BYTES = 4000
VICTIM = "Interpretability.md"


def valid(schema: dict, data) -> None:
    """Raises with the path of the first mismatch; the schema itself must be valid JSON Schema too."""
    jsonschema_rs.meta.validate(schema)
    jsonschema_rs.validate(schema, data)


def documented(shape: dict, data: dict) -> None:
    """`data` has at least these keys, with values of these Python types."""
    for key, kind in shape.items():
        assert key in data, f"the documented key {key!r} is missing"
        assert isinstance(data[key], kind) and not (kind is int and isinstance(data[key], bool)), (key, data[key])


def run(capsys, *argv: str, code: int = 0):
    status = cli.main([*argv, "--json"])
    out = capsys.readouterr().out
    assert status == code, out
    return json.loads(out)


def new_vault(root: Path) -> Path:
    make_vault(root)
    (root / BIG_NOTE).write_text("# Big\n\n" + "A line of text that is far too long. " * 200, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    """A vault and its state, indexed once and shared by the commands that only read."""
    base = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IDEAWEAVE_STATE_DIR", str(base / "state"))
        env.setenv("IDEAWEAVE_MODELS_VERIFY", "false")
        env.setenv("IDEAWEAVE_WRITER_DEFER_SECONDS", "0")
        env.setenv("IDEAWEAVE_SUMMARY_MIN_WORDS", "5")
        env.setenv("IDEAWEAVE_INDEX_MAX_NOTE_BYTES", str(MAX_NOTE_BYTES))
        env.setenv("XDG_CONFIG_HOME", str(base / "config"))
        root = new_vault(base / "vault")
        assert cli.main(["index", "--vault", str(root)]) == 0
        yield root


@pytest.fixture
def fresh_vault(vault, tmp_path, monkeypatch):
    """A vault of its own, with its own state, for the commands that change things."""
    monkeypatch.setenv("IDEAWEAVE_STATE_DIR", str(tmp_path / "state"))
    return new_vault(tmp_path / "vault")


# ------------------------------------------------------------------ each command


def test_index(fresh_vault, capsys):
    report = run(capsys, "index", "--vault", str(fresh_vault))
    valid(schemas.INDEX_REPORT, report)
    documented({"notes": int, "chunks": int, "embedded_chunks": int, "seconds": (int, float)}, report)
    assert report["notes"] == len(NOTES) and report["embedded_chunks"] >= len(NOTES)
    assert [s["path"] for s in report["skipped"]] == [BIG_NOTE]

    os.rename(fresh_vault / "Gardening.md", fresh_vault / "Vegetable garden.md")
    (fresh_vault / "folder/Compost.md").unlink()
    again = run(capsys, "index", "--vault", str(fresh_vault))
    valid(schemas.INDEX_REPORT, again)
    assert again["renamed"] == [["Gardening.md", "Vegetable garden.md"]] and again["deleted"] == ["folder/Compost.md"]
    assert again["embedded_chunks"] == 0  # a rename re-embeds nothing


def test_apply_dry_run_then_apply_and_status(fresh_vault, capsys, monkeypatch):
    monkeypatch.setenv("IDEAWEAVE_DEBUG_FAIL", f"relate:{VICTIM}")
    before = {p: p.read_bytes() for p in fresh_vault.rglob("*.md")}
    preview = run(capsys, "apply", "--vault", str(fresh_vault), "--dry-run")
    valid(schemas.APPLY_DRY_RUN_REPORT, preview)
    assert preview["written"] > 0 and preview["diffs"]
    assert {p: p.read_bytes() for p in fresh_vault.rglob("*.md")} == before  # a dry run writes nothing

    report = run(capsys, "apply", "--vault", str(fresh_vault))
    valid(schemas.APPLY_REPORT, report)
    documented({"written": int, "unchanged": int, "skipped": list, "failed": list}, report)
    for skipped in report["skipped"]:
        documented({"path": str, "reason": str}, skipped)
    assert "Written summary.md" in [s["path"] for s in report["skipped"]]  # a summary its user wrote
    assert [(f["path"], f["stage"]) for f in report["failed"]] == [(VICTIM, "relate")]
    for failed in report["failed"]:
        documented({"path": str, "stage": str, "reason": str}, failed)
    assert "diffs" not in report and report["written"] == preview["written"]

    status = run(capsys, "status", "--vault", str(fresh_vault))
    valid(schemas.STATUS_REPORT, status)
    assert [f["path"] for f in status["failed"]] == [VICTIM]
    assert [s["path"] for s in status["skipped"]] == [BIG_NOTE]


def test_related(vault, capsys):
    results = run(capsys, "related", "--vault", str(vault), "-k", "3", "Corrigibility.md", str(vault / "folder/Compost.md"))
    valid(schemas.RELATED_RESULTS, results)
    assert [entry["note"] for entry in results] == ["Corrigibility.md", "folder/Compost.md"]  # relative to the vault
    for entry in results:
        assert 1 <= len(entry["related"]) <= 3
        for suggestion in entry["related"]:
            documented({"path": str, "score": float, "passage": str, "why": str}, suggestion)
            assert (vault / suggestion["path"]).is_file()


def test_search(vault, capsys):
    results = run(capsys, "search", "--vault", str(vault), "-k", "3", "tomatoes need sun")
    valid(schemas.SEARCH_RESULTS, results)
    assert results["query"] == "tomatoes need sun" and results["results"][0]["path"] == "Gardening.md"


def test_search_from_a_notes_section_or_a_passage_on_stdin(vault, capsys, monkeypatch):
    section = run(capsys, "search", "--vault", str(vault), "-k", "3", "--no-index", "--from", "Corrigibility.md#Shutdown problem")
    valid(schemas.SEARCH_RESULTS, section)
    assert section["results"][0]["path"] == "Shutdown button.md"
    assert "Corrigibility.md" not in [hit["path"] for hit in section["results"]]
    monkeypatch.setattr("sys.stdin", io.StringIO("a rational agent resists being switched off\n"))
    piped = run(capsys, "search", "--vault", str(vault), "-k", "3", "--no-index", "-", "--from", "Shutdown button.md")
    assert piped["results"][0]["path"] == "Corrigibility.md"
    assert "Shutdown button.md" not in [hit["path"] for hit in piped["results"]]


@pytest.mark.parametrize(("argv", "says"), [
    (["--from", "Corrigibility.md#No such heading"], "no heading 'No such heading'"),
    (["--from", "Nowhere.md"], "no such note"),
    (["a question", "--from", "Corrigibility.md"], "not both"),
    ([], "give a query"),
])
def test_search_says_what_is_wrong_in_one_line(vault, capsys, argv, says):
    status = cli.main(["search", "--vault", str(vault), "--no-index", *argv])
    err = capsys.readouterr().err
    assert status != 0 and says in err and len(err.strip().splitlines()) == 1


def test_novelty(vault, capsys):
    report = run(capsys, "novelty", "--vault", str(vault), "Corrigibility.md")
    valid(schemas.NOVELTY_REPORT, report)
    assert report["note"] == "Corrigibility.md" and report["sections"]


def test_status(vault, capsys):
    status = run(capsys, "status", "--vault", str(vault))
    valid(schemas.STATUS_REPORT, status)
    assert status["notes"] == len(NOTES) and status["vector_search"]["exact"] is True


def test_status_shows_a_running_daemons_start_up_pass(vault, capsys):
    import subprocess
    import sys

    from ideaweave.watch import PASS_FILE

    state_dir = Path(run(capsys, "status", "--vault", str(vault))["state_dir"])
    progress = {"phase": "writing", "done": 1200, "total": 10003, "rate": 3.1, "eta_seconds": 2840}
    (state_dir / PASS_FILE).write_text(json.dumps({"pid": os.getpid(), "updated": 0.0, **progress}))
    try:
        status = run(capsys, "status", "--vault", str(vault))
        valid(schemas.STATUS_REPORT, status)
        assert {k: status["pass"][k] for k in progress} == progress
        assert cli.main(["status", "--vault", str(vault)]) == 0
        assert "start-up   writing 1200/10003 notes (3.1 notes/s, about 47 min left)" in capsys.readouterr().out
        # A file left by a daemon that is gone (killed) is not shown.
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (state_dir / PASS_FILE).write_text(json.dumps({"pid": int(gone.stdout), "updated": 0.0, **progress}))
        assert run(capsys, "status", "--vault", str(vault))["pass"] is None
    finally:
        (state_dir / PASS_FILE).unlink(missing_ok=True)


def test_status_shows_the_threads_a_running_daemon_embeds_with_else_the_configured_mode(vault, capsys, monkeypatch):
    from ideaweave.watch import THREADS_FILE

    state_dir = Path(run(capsys, "status", "--vault", str(vault))["state_dir"])
    monkeypatch.setenv("IDEAWEAVE_EMBEDDING_THREADS", "auto")
    idle = run(capsys, "status", "--vault", str(vault))
    valid(schemas.STATUS_REPORT, idle)
    assert idle["threads"]["mode"] == "auto" and idle["threads"]["threads"] is None
    live = {"mode": "auto", "threads": 2, "max_threads": 2, "trials": 3, "switches": 1}
    (state_dir / THREADS_FILE).write_text(json.dumps({"pid": os.getpid(), **live}))
    try:
        status = run(capsys, "status", "--vault", str(vault))
        valid(schemas.STATUS_REPORT, status)
        assert status["threads"] == live
        assert cli.main(["status", "--vault", str(vault)]) == 0
        assert "threads    2 now (auto, at most 2; 3 trials so far)" in capsys.readouterr().out
    finally:
        (state_dir / THREADS_FILE).unlink(missing_ok=True)
    monkeypatch.setenv("IDEAWEAVE_EMBEDDING_THREADS", "1")
    assert run(capsys, "status", "--vault", str(vault))["threads"] == {"mode": "fixed", "threads": 1}


def test_doctor(vault, capsys):
    report = cli.main(["doctor", "--vault", str(vault), "--json"])
    data = json.loads(capsys.readouterr().out)
    valid(schemas.DOCTOR_REPORT, data)
    assert report == (0 if data["ok"] else 1)
    assert {"embedding model", "llama.cpp", "vault", "state directory"} <= {c["name"] for c in data["checks"]}


def test_status_and_doctor_name_the_model_build_and_the_cpu(vault, capsys):
    """The suite's cache chose f16 for this machine, and the index was then built with it: both commands
    say so (doctor without loading or timing any model)."""
    from ideaweave.variants import cpu_name, read_cpuinfo

    status = run(capsys, "status", "--vault", str(vault))
    assert status["model"].endswith(".f16.gguf")
    assert status["model_variant"]["variant"] == "f16"
    assert status["model_variant"]["reason"] == "the index was built with it"
    assert cli.main(["status", "--vault", str(vault)]) == 0
    assert "variant    f16 (the index was built with it)" in capsys.readouterr().out
    cli.main(["doctor", "--vault", str(vault), "--json"])
    check = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "embedding variant")
    assert check["variant"]["variant"] == "f16" and check["path"].endswith(".f16.gguf")
    assert check["cpu"] == cpu_name(read_cpuinfo()) and check["cpu"] in check["note"]


def test_doctor_outside_any_vault(vault, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = run(capsys, "doctor", code=1)
    valid(schemas.DOCTOR_REPORT, data)
    assert data["ok"] is False and "not inside a vault" in data["checks"][-1]["problem"]


def test_config(vault, capsys):
    data = run(capsys, "config", "--vault", str(vault))
    valid(schemas.CONFIG_REPORT, data)  # every key, and no key the settings do not declare
    assert data["index"]["max_note_bytes"] == MAX_NOTE_BYTES
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(schemas.CONFIG_REPORT, {**data, "undeclared": 1})


def test_token(fresh_vault, capsys):
    first = run(capsys, "token", "--vault", str(fresh_vault))
    valid(schemas.TOKEN_REPORT, first)
    assert first["rotated"] is False and Path(first["path"]).read_text().strip() == first["token"]
    rotated = run(capsys, "token", "--vault", str(fresh_vault), "--rotate")
    valid(schemas.TOKEN_REPORT, rotated)
    assert rotated["rotated"] is True and rotated["token"] != first["token"]


def test_forget(fresh_vault, capsys):
    run(capsys, "index", "--vault", str(fresh_vault))
    removed = run(capsys, "forget", "--vault", str(fresh_vault))
    valid(schemas.FORGET_REPORT, removed)
    assert removed["removed"] is True and not Path(removed["state_dir"]).exists()
    again = run(capsys, "forget", "--vault", str(fresh_vault))
    valid(schemas.FORGET_REPORT, again)
    assert again["removed"] is False


def test_every_command_has_a_contract():
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices) - {"watch"}  # the daemon prints no JSON
    assert commands <= {name.split()[0] for name in schemas.CLI_OUTPUT}


# ------------------------------------------------------------------ the CLI and the API agree


@pytest.fixture
def api(vault):
    app = App(load_settings(None), vault.resolve())
    with TestClient(build_api(AppBackend(app), TOKEN), base_url=BASE, headers=AUTH) as client:
        yield client
    app.close()


def test_the_cli_and_the_api_show_a_search_hit_alike(vault, api, capsys):
    from_cli = run(capsys, "search", "--vault", str(vault), "-k", "4", "--no-index", "switching an agent off")
    from_api = api.get("/search", params={"q": "switching an agent off", "k": 4}).json()
    valid(schemas.SEARCH_RESULTS, from_cli)
    valid(schemas.SEARCH_RESULTS, from_api)
    assert from_cli == from_api  # one question, one answer


def test_the_cli_and_the_api_search_by_a_section_alike(vault, api, capsys):
    from_cli = run(capsys, "search", "--vault", str(vault), "-k", "4", "--no-index", "--from", "Corrigibility.md#Shutdown problem")
    from_api = api.post("/search", json={"note": "Corrigibility.md", "heading": "Shutdown problem", "k": 4}).json()
    assert from_cli == from_api


def test_the_cli_and_the_api_show_a_related_note_alike(vault, api, capsys):
    from_cli = run(capsys, "related", "--vault", str(vault), "-k", "3", "--no-index", "Interpretability.md")[0]
    from_api = api.get("/related", params={"note": "Interpretability.md", "k": 3}).json()
    valid(schemas.RELATED, from_api)
    valid(schemas.RELATED_RESULTS, [from_cli])
    assert from_cli["note"] == from_api["note"]
    # One answer: the same related notes, in the same order, shown alike.
    assert from_cli["related"] and [i["path"] for i in from_cli["related"]] == [i["path"] for i in from_api["related"]]
    for from_cli_idea, from_api_idea in zip(from_cli["related"], from_api["related"]):
        assert set(from_cli_idea) == set(from_api_idea)
        assert {k: v for k, v in from_cli_idea.items() if k != "score"} == {k: v for k, v in from_api_idea.items() if k != "score"}


def test_the_cli_and_the_api_report_the_same_index(vault, api, capsys):
    from_cli = run(capsys, "status", "--vault", str(vault))
    from_api = api.get("/status").json()
    valid(schemas.STATUS_REPORT, from_cli)
    valid(schemas.API_STATUS, from_api)
    for key in ("vault", "notes", "chunks", "private_mode", "failed"):
        assert from_cli[key] == from_api[key], key
    assert schemas.STATUS_REPORT["properties"]["failed"] == schemas.API_STATUS["properties"]["failed"]


def test_topics(vault, capsys):
    from ideaweave.schemas import TOPICS

    report = run(capsys, "topics", "--vault", str(vault), "--no-index")
    valid(TOPICS, report)
    assert report["topics"]
    for topic in report["topics"]:
        documented({"id": str, "name": str, "level": int, "notes": list}, topic)
        assert topic["parent"] is None if topic["level"] == 0 else isinstance(topic["parent"], str)
    # Every indexed note of the vault, in exactly one topic per level, by its vault-relative path.
    indexed = sorted(set(NOTES) - {BIG_NOTE})
    for level in (0, 1):
        listed = [p for t in report["topics"] if t["level"] == level for p in t["notes"]]
        assert sorted(listed) == indexed, level
    human = cli.main(["topics", "--vault", str(vault), "--no-index"])
    out = capsys.readouterr().out
    assert human == 0 and report["topics"][0]["name"] in out


def test_summarize(vault, capsys):
    from ideaweave.schemas import SUMMARIZE

    note = next(p for p in sorted(NOTES) if p != BIG_NOTE)
    report = run(capsys, "summarize", "--vault", str(vault), note)
    valid(SUMMARIZE, report)
    assert report[0]["note"] == note and report[0]["mode"] == "extractive"
    used = [s["text"] for s in report[0]["sentences"] if s["why"] in ("used", "cut to fit")]
    assert report[0]["summary"] and used and report[0]["summary"].startswith(used[0])
