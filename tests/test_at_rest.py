"""Secure notes stay secure at rest: after indexing and running the daemon through an edit, no byte of
any file in the state folder holds a private note's sentences, its unique words or its title; without
the key their vectors cannot be read and the rest of the vault still works. The same with
index.encrypt = "all" for every note. Real model, real SQLite, the real daemon on real files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import keyring
import numpy as np
import pytest
from ideaweave import config, schemas
from ideaweave.app import App
from ideaweave.cli import main as cli_main
from ideaweave.corpus import Corpus
from ideaweave.errors import StoreError
from ideaweave.sealing import HIDDEN_PREFIX, PASSPHRASE_ENV, SEALED_PREFIX, Keychain, KeyPlace, Sealer, SealingError
from ideaweave.search import search
from ideaweave.store import ChunkRecord, NoteRecord, Store

from test_cli_contract import valid
from test_watch import NOTES, eventually, meta, running_daemon, settle, write_vault

PASSPHRASE = "a passphrase for the secure notes"

BY_FOLDER = "Private/Unpublished quasar lattice draft.md"
BY_FLAG = "Kitchen/Marmalade gryphon ledger.md"
PRIVATE_NOTES = {
    BY_FOLDER: """# Quasar lattice

Our zyxomorphic quasar lattice result shows that interpretability probes recover the hidden vermiculite
objective from seven attention heads. The draft stays unpublished until the replication by Okonkwo finishes.
""",
    BY_FLAG: """---
private: true
tags: [brambleworth]
---
# Marmalade gryphon ledger

Grandmother's marmalade gryphon recipe uses bitter oranges, demerara sugar and a splash of whisky from the
Thistlewick distillery. The ledger of who owes jars is kept here.
""",
}
EDIT = "\nA later finding: the quasar lattice also predicts the pomegranate heliotrope anomaly in layer nine.\n"
# Words only the private notes use (including the edit), their titles, and whole sentences.
UNIQUE_WORDS = ["zyxomorphic", "quasar", "vermiculite", "okonkwo", "marmalade", "gryphon", "thistlewick",
                "demerara", "brambleworth", "pomegranate", "heliotrope"]
TITLES = ["Unpublished quasar lattice draft", "Marmalade gryphon ledger"]
SENTENCES = ["The draft stays unpublished until the replication", "The ledger of who owes jars is kept here",
             "the quasar lattice also predicts"]


def secrets_of(encrypt_all: bool) -> list[str]:
    """Every string no file of the state folder may contain (lower case; matched against lower-cased bytes).
    Word stems too: the keyword index would keep "marmalad", not "marmalade"."""
    found = [w[:7] for w in UNIQUE_WORDS] + TITLES + SENTENCES
    if encrypt_all:  # every note's title and words are secret then
        found += ["compost heap", "sourdough", "corrigib", "wormery", "Reward hacking", "kitchen scraps"]
    return [s.lower() for s in found]


def every_byte(state: Path) -> dict[str, bytes]:
    """Every file under the state folder, read whole (databases, their WAL and SHM, faiss, JSON, temporaries)."""
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}


def assert_no_plaintext(state: Path, encrypt_all: bool = False) -> None:
    files = every_byte(state)
    assert "index.sqlite3" in files and "vectors.faiss" in files
    for name, data in files.items():
        lowered = data.lower()
        for secret in secrets_of(encrypt_all):
            for encoding in ("utf-8", "utf-16-le"):
                assert secret.encode(encoding) not in lowered, f"{secret!r} is in {name}"


def assert_private_modes(state: Path) -> None:
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path} is {oct(stat.S_IMODE(path.stat().st_mode))}"


def make_vault(root: Path) -> Path:
    notes = dict(NOTES)
    notes.update(PRIVATE_NOTES)
    return write_vault(root, notes)


def settings_for(tmp_path: Path, **overrides) -> config.Settings:
    values = {"state_dir": str(tmp_path / "state"), "watch.quiet_ms": 200, "watch.max_batch_ms": 2000,
              "writer.defer_seconds": 0.0, "api.enabled": False, "models.verify": False,
              "index.private_folders": ["Private/**"], "index.key_store": "passphrase"}
    values.update(overrides)
    return config.replace(config.Settings(), **values)


def env_for(tmp_path: Path, passphrase: str | None = PASSPHRASE) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "runtime")
    if passphrase is not None:
        env[PASSPHRASE_ENV] = passphrase
    return env


def app_for(vault: Path, tmp_path: Path, embedder, passphrase: str | None = PASSPHRASE, **overrides) -> App:
    return App(settings_for(tmp_path, **overrides), vault.resolve(), env=env_for(tmp_path, passphrase), embedder=embedder)


def run_the_daemon_through_an_edit(app: App, vault: Path) -> None:
    with running_daemon(app) as stats:
        assert meta(vault, BY_FOLDER).get("summary"), "the private note got its summary"
        assert meta(vault, BY_FLAG).get("related"), "the private note got its related notes"
        with (vault / BY_FOLDER).open("a", encoding="utf-8") as file:
            file.write(EDIT)
        eventually(lambda: "pomegranate" in str(app.store.chunks_of(BY_FOLDER)), what="the edit indexed")
        settle(stats)
        # While it runs: the write-ahead log and its index are there too.
        assert {"index.sqlite3-wal", "index.sqlite3-shm"} <= set(every_byte(app.state_dir))
        assert_no_plaintext(app.state_dir, encrypt_all=app.settings.index.encrypt == "all")
        assert_private_modes(app.state_dir)
    app.close()


def lock_out(tmp_path: Path) -> None:
    """Remove the unlocked key of the session: without the passphrase the key is gone."""
    for key in (tmp_path / "runtime").rglob("*.key"):
        key.unlink()


def sealed_vector_rows(state: Path) -> list[tuple[int, str, bytes]]:
    connection = sqlite3.connect(state / "index.sqlite3")
    try:
        return connection.execute("SELECT id, hash, vector FROM vectors WHERE sealed = 1").fetchall()
    finally:
        connection.close()


# ------------------------------------------------------------------ the done-when test


@pytest.mark.parametrize("encrypt", ["private", "all"])
def test_no_private_plaintext_at_rest_and_without_the_key_the_rest_works(tmp_path, embedder, encrypt):
    vault = make_vault(tmp_path / "vault")
    state = tmp_path / "state"
    app = app_for(vault, tmp_path, embedder, **{"index.encrypt": encrypt})
    run_the_daemon_through_an_edit(app, vault)

    assert_no_plaintext(state, encrypt_all=encrypt == "all")
    assert_private_modes(state)
    rows = sealed_vector_rows(state)
    assert rows, "the private notes' vectors are stored sealed"

    # The owner still sees everything: passages of the private note are read again from it.
    owner = app_for(vault, tmp_path, embedder, **{"index.encrypt": encrypt})
    passages = " ".join(c.text for c in owner.store.chunks_of(BY_FOLDER))
    assert "zyxomorphic" in passages and "pomegranate" in passages
    related = owner.related_notes().for_note("Garden/Compost.md", 10, include_private=True)
    assert owner.store.locked_notes == 0 and related
    owner.close()

    # Without the key: the vectors do not open, the secure notes are as if unindexed, the rest works.
    lock_out(tmp_path)
    locked = app_for(vault, tmp_path, embedder, passphrase=None, **{"index.encrypt": encrypt})
    wrong = Sealer(os.urandom(32))
    with pytest.raises(SealingError):
        wrong.open(rows[0][2], rows[0][1].encode("ascii"))
    assert not any(vector.startswith(np.float16(0).tobytes()) and len(vector) == 2 * embedder.dim
                   for _, _, vector in rows)  # not a float16 vector as stored for public notes
    report = locked.indexer.run()
    assert locked.store.locked_notes > 0
    if encrypt == "private":
        assert sorted(report.locked) == sorted(PRIVATE_NOTES)
        paths = locked.store.note_paths()
        assert BY_FOLDER not in paths and "Garden/Compost.md" in paths
        related = [r.path for r in locked.related_notes().for_note("Garden/Compost.md", 5, include_private=True)]
        assert related and not set(related) & set(PRIVATE_NOTES)
        hits = [h.path for h in search(locked.store, locked.embedder, "compost heap kitchen scraps", k=5)]
        assert "Garden/Compost.md" in hits
    else:
        assert len(report.locked) == len(NOTES) + len(PRIVATE_NOTES)  # every note is secure
        assert locked.store.note_paths() == []
    locked.close()
    assert_no_plaintext(state, encrypt_all=encrypt == "all")
    assert_private_modes(state)


def test_the_keyring_path_with_a_real_file_keyring_and_forget_removes_the_entry(tmp_path, embedder, file_keyring):
    vault = make_vault(tmp_path / "vault")
    state = tmp_path / "state"
    app = app_for(vault, tmp_path, embedder, passphrase=None, **{"index.key_store": "keyring"})
    app.indexer.run()
    entry = app.keychain.place.entry
    assert keyring.get_password("ideaweave", entry), "the key went into the keyring"
    assert app.keychain.place.record_path.exists()
    assert BY_FOLDER in app.store.note_paths()
    app.close()
    assert_no_plaintext(state)
    assert str(tmp_path / "vault") not in every_byte(state).get("sealing.json", b"").decode()

    keyring.delete_password("ideaweave", entry)  # the keyring entry removed
    locked = app_for(vault, tmp_path, embedder, passphrase=None, **{"index.key_store": "keyring"})
    assert locked.indexer.run().locked and BY_FOLDER not in locked.store.note_paths()
    assert "Garden/Compost.md" in locked.store.note_paths()
    assert "locked" in locked.keychain.state
    locked.close()

    # forget: the state folder and the keyring entry both go.
    again = app_for(vault, tmp_path / "again", embedder, passphrase=None, **{"index.key_store": "keyring",
                                                                           "state_dir": str(tmp_path / "state2")})
    again.indexer.run()
    again_entry = again.keychain.place.entry
    again.close()
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'state_dir = "{tmp_path / "state2"}"\n[index]\nkey_store = "keyring"\n'
                           f'private_folders = ["Private/**"]\n')
    assert cli_main(["forget", "--vault", str(vault), "--config", str(config_file)]) == 0
    assert keyring.get_password("ideaweave", again_entry) is None
    assert not (tmp_path / "state2").exists()


# ------------------------------------------------------------------ the passphrase at the command line


def test_unlock_lock_and_a_wrong_passphrase_at_the_command_line(tmp_path, monkeypatch, capsys):
    vault = write_vault(tmp_path / "vault", {"a.md": "# A\n\nText.\n"})
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'state_dir = "{tmp_path / "state"}"\n[index]\nkey_store = "passphrase"\n')
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    args = ["--vault", str(vault), "--config", str(config_file)]
    monkeypatch.setenv(PASSPHRASE_ENV, "first")
    assert cli_main(["unlock", *args]) == 0  # a new key, wrapped by "first"
    keys = list((tmp_path / "runtime").rglob("*.key"))
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(keys[0].parent.stat().st_mode) == 0o700
    assert cli_main(["lock", *args]) == 0 and not keys[0].exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "second")
    capsys.readouterr()
    assert cli_main(["unlock", *args]) != 0
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv(PASSPHRASE_ENV, "first")
    capsys.readouterr()
    assert cli_main(["unlock", *args, "--json"]) == 0 and keys[0].exists()
    valid(schemas.UNLOCK_REPORT, json.loads(capsys.readouterr().out))
    assert cli_main(["status", *args, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    valid(schemas.STATUS_REPORT, status)
    assert status["sealing"]["unlocked"] and status["sealing"]["locked_notes"] == 0
    assert cli_main(["lock", *args, "--json"]) == 0
    valid(schemas.LOCK_REPORT, json.loads(capsys.readouterr().out))


# ------------------------------------------------------------------ the store's part


def sealed_store(state: Path, tmp_path: Path, seal_all: bool = False) -> Store:
    place = KeyPlace(state, "test-entry", tmp_path / "runtime", "passphrase")
    return Store.open(state, 4, "m", Keychain(place, {PASSPHRASE_ENV: PASSPHRASE}), seal_all=seal_all)


def record(path: str, private: bool, **extra) -> NoteRecord:
    return NoteRecord(path, Path(path).stem, 10, 1, hashlib.sha256(path.encode()).hexdigest(), private=private, **extra)


def test_a_private_note_round_trips_through_the_store_with_nothing_plain_in_the_file(tmp_path):
    state = tmp_path / "state"
    store = sealed_store(state, tmp_path)
    chunk = ChunkRecord(0, "Zyxomorphic heading", ("Zyxomorphic heading",), 0, 40, "c" * 64, "zyxomorphic text")
    store.replace_note(record("Secret quasar.md", True, frontmatter={"aliases": ["gryphon alias"], "private": True}),
                       [chunk], [], ["brambleworth"])
    store.add_vectors(["c" * 64], np.eye(4, dtype=np.float32)[:1], sealed={"c" * 64})
    store.record_written("Secret quasar.md", "sum", {"summary": "zyxomorphic summary"})
    store.set_feedback("Secret quasar.md", "other.md", "rejected")
    stored = store.note("Secret quasar.md")
    assert stored.title == "Secret quasar" and stored.private
    assert store.note_flags()["Secret quasar.md"][3] == ["gryphon alias"]
    assert store.last_written("Secret quasar.md").values == {"summary": "zyxomorphic summary"}
    assert store.feedback_for("Secret quasar.md") == {"other.md": "rejected"}
    [back] = store.chunks_of("Secret quasar.md")
    assert back.heading == "Zyxomorphic heading" and back.text == ""  # no text kept, none to read without a vault
    scores, ids = store.search_vectors(np.eye(4, dtype=np.float32)[0], 1)
    assert ids.tolist() == [back.vector_id] and scores[0] == pytest.approx(1.0, abs=1e-3)
    assert store.fts_search("zyxomorphic", 5) == []
    store.close()
    data = b"".join(every_byte(state).values()).lower()
    for secret in (b"quasar", b"zyxomorphic", b"gryphon", b"brambleworth"):
        assert secret not in data
    raw = sqlite3.connect(state / "index.sqlite3")
    assert raw.execute("SELECT path FROM notes").fetchone()[0].startswith(HIDDEN_PREFIX)
    assert raw.execute("SELECT title FROM notes").fetchone()[0].startswith(SEALED_PREFIX)
    raw.close()


def test_a_note_that_becomes_private_leaves_no_trace_of_its_plain_rows(tmp_path):
    state = tmp_path / "state"
    store = sealed_store(state, tmp_path)
    chunk = ChunkRecord(0, "", (), 0, 40, "d" * 64, "the zyxomorphic quasar words")
    store.replace_note(record("Quasar draft.md", False), [chunk], [], ["brambleworth"])
    store.add_vectors(["d" * 64], np.eye(4, dtype=np.float32)[1:2])
    store.record_written("Quasar draft.md", "sum", {"summary": "zyxomorphic summary"})
    store.flush()
    assert store.fts_search("zyxomorphic", 5)
    store.replace_note(record("Quasar draft.md", True), [chunk], [], ["brambleworth"])  # now private
    assert store.fts_search("zyxomorphic", 5) == []
    assert store.last_written("Quasar draft.md").values == {"summary": "zyxomorphic summary"}
    assert store.gather_vectors([store.chunks_of("Quasar draft.md")[0].vector_id]).shape == (1, 4)
    store.close()
    data = b"".join(every_byte(state).values()).lower()
    for secret in (b"quasar", b"zyxomorphic", b"brambleworth"):
        assert secret not in data, secret
    # and back: public again, its vector opened, its words searchable
    store = sealed_store(state, tmp_path)
    store.replace_note(record("Quasar draft.md", False), [chunk], [], [])
    assert store.fts_search("zyxomorphic", 5) and not sealed_vector_rows(state)
    store.close()


def test_a_store_without_its_key_shows_no_secure_note_and_refuses_to_store_one(tmp_path):
    state = tmp_path / "state"
    store = sealed_store(state, tmp_path)
    store.replace_note(record("secret.md", True), [ChunkRecord(0, "", (), 0, 5, "e" * 64, "x")], [], [])
    store.add_vectors(["e" * 64], np.eye(4, dtype=np.float32)[2:3], sealed={"e" * 64})
    store.replace_note(record("public.md", False), [ChunkRecord(0, "", (), 0, 5, "f" * 64, "y")], [], [])
    store.add_vectors(["f" * 64], np.eye(4, dtype=np.float32)[3:4])
    store.close()
    lock_out(tmp_path)
    place = KeyPlace(state, "test-entry", tmp_path / "runtime", "passphrase")
    locked = Store.open(state, 4, "m", Keychain(place, {}))
    assert not locked.unlocked and locked.locked_notes == 1
    assert locked.note_paths() == ["public.md"]
    assert not locked.accepts(True) and locked.accepts(False)
    with pytest.raises(StoreError):
        locked.replace_note(record("other secret.md", True), [], [], [])
    _, _, vector_ids = locked.chunk_table()
    assert len(vector_ids) == 1 and locked.gather_vectors(vector_ids).shape == (1, 4)
    assert [p for p in Corpus(locked).paths] == ["public.md"]
    locked.close()


# ------------------------------------------------------------------ doctor


def test_doctor_says_where_the_state_is_and_finds_a_private_notes_words_in_it(tmp_path, embedder):
    from ideaweave.doctor import _at_rest_check, secrets_of

    vault = make_vault(tmp_path / "vault")
    app = app_for(vault, tmp_path, embedder)
    app.indexer.run()
    app.close()
    state, env = tmp_path / "state", env_for(tmp_path)
    check = _at_rest_check(vault.resolve(), app.settings, state, env)
    assert check["ok"] and check["private_notes"] == 2 and check["path"] == str(state)
    assert check["key_store"] == "passphrase" and check["plaintext"] == []
    (state / "copied-by-an-older-version.txt").write_text("the Zyxomorphic draft", encoding="utf-8")
    check = _at_rest_check(vault.resolve(), app.settings, state, env)
    assert not check["ok"] and check["plaintext"] == [{"note": BY_FOLDER, "file": "copied-by-an-older-version.txt"}]
    assert "forget" in check["problem"]
    # The secrets are the private notes' titles and the long words no public note uses.
    secrets = secrets_of([("a.md", "shared vocabulary everywhere", False),
                          ("Secret plan.md", "shared vocabulary hushhushword", True)])
    assert secrets == {"Secret plan.md": {"secret plan", "hushhushword"}}


def test_a_private_note_that_is_skipped_or_fails_is_remembered_by_its_pseudonym(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {
        "Public.md": "# Public\n\nCompost and watering.\n",
        "Private/Oversized quasar memo.md": "# Memo\n\n" + "quasar words " * 400,
        "Private/Broken gryphon note.md": "# Broken\n\nA note made to fail while it is chunked.\n",
    })
    app = app_for(vault, tmp_path, embedder, **{"index.max_note_bytes": 2000,
                                               "debug.fail": ["chunk:Private/Broken gryphon note.md"]})
    report = app.indexer.run()
    assert [p for p, _ in report.skipped] == ["Private/Oversized quasar memo.md"]
    assert [f.path for f in report.failed] == ["Private/Broken gryphon note.md"]
    assert [p for p, _, _ in app.store.problems()] == ["Private/Broken gryphon note.md"]
    assert app.indexer.run().read == 0  # neither is read again until it changes
    app.close()
    data = b"".join(every_byte(tmp_path / "state").values()).lower()
    for secret in (b"oversized", b"quasar", b"gryphon"):
        assert secret not in data, secret


def test_changing_index_encrypt_reseals_the_notes_indexed_before(tmp_path, embedder):
    vault = write_vault(tmp_path / "vault", {k: v for k, v in list(NOTES.items())[:4]})
    state = tmp_path / "state"
    first = app_for(vault, tmp_path, embedder)
    first.indexer.run()
    assert search(first.store, first.embedder, "compost heap", k=3)
    first.close()
    assert b"compost heap" in b"".join(every_byte(state).values()).lower()

    sealed = app_for(vault, tmp_path, embedder, **{"index.encrypt": "all"})
    report = sealed.indexer.run()
    assert report.embedded_chunks == 0 and len(report.changed) == 4  # read again, nothing embedded again
    assert sealed.store.fts_search("compost", 5) == [] and "Garden/Compost.md" in sealed.store.note_paths()
    assert "compost heap" in " ".join(c.text for c in sealed.store.chunks_of("Garden/Compost.md")).lower()
    sealed.close()
    data = b"".join(every_byte(state).values()).lower()
    assert b"compost heap" not in data and b"garden/compost" not in data

    plain = app_for(vault, tmp_path, embedder)
    plain.indexer.run()
    assert plain.store.fts_search("compost", 5) and not sealed_vector_rows(state)
    plain.close()


@pytest.mark.parametrize("mode", ["extractive", "centroid"])
def test_a_summary_cached_before_its_note_became_secure_is_sealed_when_the_note_is_indexed_again(
        tmp_path, embedder, mode):
    body = "# Lantern\n\nThe zyxomorphic lantern drafts are kept in the attic until the vermiculite audit ends.\n"
    vault = write_vault(tmp_path / "vault", {"Lantern.md": body, "Compost.md": NOTES["Garden/Compost.md"]})
    state = tmp_path / "state"
    plain = app_for(vault, tmp_path, embedder, **{"summary.mode": mode})
    plain.indexer.run()
    summary = plain.summaries.for_note("Lantern.md")  # what a sync caches while the note is public
    plain.close()
    assert "zyxomorphic" in summary and b"zyxomorphic lantern" in b"".join(every_byte(state).values()).lower()

    (vault / "Lantern.md").write_text("---\nprivate: true\n---\n" + body, encoding="utf-8")  # the same body
    secure = app_for(vault, tmp_path, embedder, **{"summary.mode": mode})
    secure.indexer.run()
    assert secure.summaries.cached("Lantern.md") == summary  # still there for the owner, with the key
    secure.close()
    assert b"zyxomorphic lantern" not in b"".join(every_byte(state).values()).lower()


def test_the_watch_ledger_names_secure_notes_by_their_pseudonyms(tmp_path):
    from ideaweave.watch import SyncLedger

    state = tmp_path / "state"
    store = sealed_store(state, tmp_path)
    store.replace_note(record("Private/Quasar plan.md", True), [], [], [])
    ledger = SyncLedger(state / "watch-ledger.json", "f", hide=store.pseudonym, show=store.real_path)
    ledger.close({"Private/Quasar plan.md", "public.md"})
    text = (state / "watch-ledger.json").read_text()
    assert "quasar" not in text.lower() and "public.md" in text
    assert stat.S_IMODE((state / "watch-ledger.json").stat().st_mode) == 0o600
    assert sorted(ledger.take()) == ["Private/Quasar plan.md", "public.md"]
    store.close()
    # A process without the key cannot name the secure note: it syncs every note instead.
    ledger.close({"Private/Quasar plan.md"})
    lock_out(tmp_path)
    place = KeyPlace(state, "test-entry", tmp_path / "runtime", "passphrase")
    locked = Store.open(state, 4, "m", Keychain(place, {}))
    assert SyncLedger(state / "watch-ledger.json", "f", hide=locked.pseudonym, show=locked.real_path).take() is None
    locked.close()


def test_an_altered_sealed_vector_costs_its_chunk_only(tmp_path):
    """A sealed vector that no longer opens (altered on disk) is left out as a chunk not embedded: the
    notes' means still load, the note keeps its other chunk, the other notes are untouched."""
    state = tmp_path / "state"
    store = sealed_store(state, tmp_path)
    first, second, public = "a" * 64, "b" * 64, "d" * 64
    store.replace_note(record("Secret.md", True, frontmatter={"private": True}),
                       [ChunkRecord(0, None, (), 0, 10, first, "one"), ChunkRecord(1, None, (), 10, 20, second, "two")], [], [])
    store.replace_note(record("Open.md", False), [ChunkRecord(0, None, (), 0, 10, public, "three")], [], [])
    vectors = np.eye(4, dtype=np.float32)[:3]
    store.add_vectors([first, second], vectors[:2], sealed={first, second})
    store.add_vectors([public], vectors[2:])
    store.close()
    raw = sqlite3.connect(state / "index.sqlite3")
    blob = raw.execute("SELECT vector FROM vectors WHERE hash = ?", (first,)).fetchone()[0]
    raw.execute("UPDATE vectors SET vector = ? WHERE hash = ?", (blob[:-1] + bytes([blob[-1] ^ 1]), first))
    raw.commit()
    raw.close()
    store = sealed_store(state, tmp_path)
    paths, means, _ = store.note_means()
    assert paths == ["Open.md", "Secret.md"]
    assert means[1] == pytest.approx(vectors[1])  # the chunk that still opens, alone
    assert means[0] == pytest.approx(vectors[2])
    store.close()
