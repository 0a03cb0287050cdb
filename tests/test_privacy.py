"""Private mode: network-reaching settings refused, and a socket guard that proves nothing connects out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ideaweave.config import Settings, replace
from ideaweave.errors import ConfigError
from ideaweave.privacy import check_settings, is_loopback_host, network_settings


def test_loopback_hosts():
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "192.168.1.4", "10.0.0.1", "example.org", "::"))


def test_a_remote_setting_is_refused_in_private_mode():
    settings = replace(Settings(), private_mode=True, **{"models.embedding": "https://example.org/model.gguf"})
    assert network_settings(settings)
    with pytest.raises(ConfigError, match="private mode refuses these settings: models.embedding"):
        check_settings(settings)


def test_a_non_loopback_api_is_refused_always():
    with pytest.raises(ConfigError, match="api.host"):
        check_settings(replace(Settings(), **{"api.host": "0.0.0.0"}))


GUARDED = """
import socket, sys
from ideaweave.config import Settings, replace
from ideaweave.privacy import enter_private_mode, NetworkRefused
enter_private_mode(replace(Settings(), private_mode=True))
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
socket.create_connection(server.getsockname(), timeout=2).close()   # loopback stays allowed
for target in [("93.184.216.34", 80), ("10.1.2.3", 443)]:
    try:
        socket.create_connection(target, timeout=2)
    except NetworkRefused as exc:
        print("refused", target[0])
try:
    socket.getaddrinfo("example.org", 80)
except NetworkRefused:
    print("refused lookup")
import os; print(os.environ["HF_HUB_OFFLINE"])
"""


def test_socket_guard_refuses_every_non_loopback_connection():
    result = subprocess.run([sys.executable, "-c", GUARDED], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["refused 93.184.216.34", "refused 10.1.2.3", "refused lookup", "1"]


def test_cli_refuses_a_remote_model_in_private_mode(tmp_path):
    (tmp_path / ".obsidian").mkdir()
    env = {"IDEAWEAVE_MODELS_EMBEDDING": "http://example.org/m.gguf", "XDG_STATE_HOME": str(tmp_path / "s"),
           "XDG_CONFIG_HOME": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "ideaweave.cli", "status", "--private", "--vault", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("ideaweave: private mode refuses these settings: models.embedding")


# ------------------------------------------------------------------ privacy classes and no network at all

import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

from ideaweave.app import App  # noqa: E402
from ideaweave.sync import VaultSync  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"
PRIVATE_NOTE = "Private/Unpublished interpretability result draft.md"


def test_private_note_appears_in_no_other_note_and_no_log(tmp_path, embedder, caplog):
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    (root / "Journal").mkdir()
    (root / "Journal" / "Therapy notes.md").write_text(
        "# Therapy notes\n\nSparse autoencoders and monosemantic features came up again today; I felt anxious "
        "about the interpretability deadline and the unpublished ablation numbers.\n", encoding="utf-8")
    for path in root.rglob("*.md"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    settings = replace(Settings(), state_dir=str(tmp_path / "state"), **{"index.private_folders": ["Journal"],
                                                                            "writer.defer_seconds": 0.0})
    app = App(settings, root, embedder=embedder)
    private = {PRIVATE_NOTE, "Journal/Therapy notes.md"}
    with caplog.at_level(logging.INFO):
        app.indexer.run()
        report = VaultSync.for_app(app).run()
    assert report.written
    secrets = []
    for path in private:
        note = app.scanner.read(path)
        assert note.private
        secrets.append(note.title)
        secrets += [s.text for s in __import__("ideaweave.prose", fromlist=["x"]).sentences_of(note)]
    from ideaweave import frontmatter
    for path in root.rglob("*.md"):
        rel = path.relative_to(root).as_posix()
        if rel in private:
            continue
        managed = frontmatter.read_managed(path.read_bytes(), ["related", "summary"])
        text = repr(managed)
        for secret in secrets:
            assert secret not in text, (rel, secret)
    # The private notes still get their own properties.
    assert frontmatter.read_managed((root / PRIVATE_NOTE).read_bytes(), ["related"]).get("related")
    for record in caplog.records:
        message = record.getMessage()
        assert not any(secret in message for secret in secrets), message


NO_NETWORK_RUN = textwrap.dedent('''
    set -e
    ip link set lo up
    export XDG_STATE_HOME="$WORK/state" XDG_CONFIG_HOME="$WORK/config" IDEAWEAVE_API_PORT=18765 IDEAWEAVE_WRITER_DEFER_SECONDS=0
    if python3 -c 'import socket; s = socket.socket(); s.settimeout(2); s.connect(("1.1.1.1", 53))' 2>/dev/null; then
        echo "the network is reachable: not a network-less namespace"; exit 3
    fi
    ideaweave index --private --vault "$WORK/vault" --json > "$WORK/index.json"
    ideaweave apply --private --vault "$WORK/vault" --json > "$WORK/apply.json"
    ideaweave watch --private --vault "$WORK/vault" 2> "$WORK/watch.log" &
    WATCH=$!
    python3 "$WORK/client.py"
    kill -TERM $WATCH
    wait $WATCH
''')

NO_NETWORK_CLIENT = textwrap.dedent('''
    import json, os, subprocess, sys, time, urllib.request
    work = os.environ["WORK"]
    note = os.path.join(work, "vault", "Concepts", "Goodhart's law.md")
    token = subprocess.run(["ideaweave", "token", "--private", "--vault", os.path.join(work, "vault")],
                           capture_output=True, text=True, check=True).stdout.strip()
    def get(path):
        request = urllib.request.Request("http://127.0.0.1:18765" + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    deadline = time.time() + 90
    while True:
        try:
            status = get("/status")
            if not status["indexing"]["active"] and status["notes"]:
                break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit("the daemon's API never answered")
        time.sleep(0.5)
    before = open(note, encoding="utf-8").read()
    with open(note, "a", encoding="utf-8") as handle:
        handle.write("\\nA brand new closing section on wireheading: the agent seizes its own reward channel and stops caring about the task entirely.\\n")
    while open(note, encoding="utf-8").read().count("summary:") == 1 and time.time() < deadline:
        if "wireheading" in open(note, encoding="utf-8").read() and get("/status")["queue"] == 0:
            break
        time.sleep(0.5)
    related = get("/related?note=" + urllib.parse.quote("Concepts/Goodhart's law.md"))
    assert related["related"], related
    assert "wireheading" in open(note, encoding="utf-8").read()
    print(json.dumps({"status": status["private_mode"], "related": len(related["related"])}))
''')


def test_whole_pipeline_runs_inside_a_namespace_without_network(tmp_path):
    """index, apply, watch with an edit, and API calls, all in `unshare -n` (no interface but loopback)."""
    work = tmp_path
    shutil.copytree(EXAMPLE, work / "vault")
    for path in (work / "vault").rglob("*.md"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (work / "client.py").write_text(NO_NETWORK_CLIENT, encoding="utf-8")
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, WORK=str(work), PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    result = subprocess.run(["unshare", "-n", "--", "bash", "-c", NO_NETWORK_RUN], env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:],
                                    (work / "watch.log").read_text() if (work / "watch.log").exists() else "")
    assert '"status": true' in result.stdout
    applied = __import__("json").loads((work / "apply.json").read_text())
    assert applied["written"] > 10
