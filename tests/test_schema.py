"""Tests for ideaweave.schema: migrations and opening the database, on real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ideaweave import schema
from ideaweave.errors import StoreError
from ideaweave.schema import MIGRATIONS, migrate, open_database
from ideaweave.store import ChunkRecord, NoteRecord, Store

DIM = 8
MODEL = "test-model"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "vault-1"


def user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()


def test_a_new_store_is_at_the_latest_schema_version(state_dir: Path):
    with Store.open(state_dir, DIM, MODEL) as store:
        assert user_version(store.database_path) == len(MIGRATIONS)


def test_the_database_is_opened_in_write_ahead_mode_with_foreign_keys(tmp_path: Path):
    connection = open_database(tmp_path / "db.sqlite3")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        connection.close()


def test_a_file_that_is_not_a_database_is_reported(state_dir: Path):
    state_dir.mkdir(parents=True)
    (state_dir / "index.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable ideaweave index"):
        Store.open(state_dir, DIM, MODEL)


def test_migrate_runs_only_the_migrations_after_the_current_version(tmp_path: Path):
    connection = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    assert migrate(connection, MIGRATIONS[:1]) == [1]
    connection.execute("INSERT INTO skipped (path, reason) VALUES ('x.md', 'too large')")
    later = MIGRATIONS[:1] + ["ALTER TABLE skipped ADD COLUMN seen_at REAL; UPDATE skipped SET seen_at = 7;"]
    # Re-running migration 1 would fail (its tables exist), so success shows it was not run.
    assert migrate(connection, later) == [2]
    assert connection.execute("SELECT path, seen_at FROM skipped").fetchall() == [("x.md", 7.0)]
    assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
    assert migrate(connection, later) == []


def test_a_migration_may_hold_semicolons_in_strings_comments_and_triggers(tmp_path: Path):
    connection = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    script = """
    CREATE TABLE log (line TEXT NOT NULL DEFAULT 'a; b');  -- a comment; with a semicolon
    CREATE TABLE seen (n INTEGER);
    CREATE TRIGGER count_lines AFTER INSERT ON log BEGIN
        INSERT INTO seen (n) VALUES (1);
        INSERT INTO seen (n) VALUES (2);
    END;
    INSERT INTO log DEFAULT VALUES;
    """
    assert migrate(connection, [script]) == [1]
    assert connection.execute("SELECT line FROM log").fetchall() == [("a; b",)]
    assert connection.execute("SELECT n FROM seen ORDER BY n").fetchall() == [(1,), (2,)]


def test_open_upgrades_an_older_store_and_keeps_its_data(state_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with Store.open(state_dir, DIM, MODEL) as old:
        old.replace_note(NoteRecord("kept.md", "kept", 100, 1_000, "c0"),
                         [ChunkRecord(0, "", (), 0, 30, "h0", "text that survives the upgrade")], [], [])
    extra = "CREATE TABLE future_table (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS + [extra])
    with Store.open(state_dir, DIM, MODEL) as upgraded:
        assert upgraded.note_paths() == ["kept.md"]
        assert [hit.note_path for hit in upgraded.fts_search("survives", 5)] == ["kept.md"]
    assert user_version(state_dir / "index.sqlite3") == len(MIGRATIONS) + 1


def test_a_failing_migration_changes_nothing(tmp_path: Path):
    connection = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    migrate(connection, MIGRATIONS)
    broken = MIGRATIONS + ["CREATE TABLE half_done (a); SELECT * FROM no_such_table;"]
    with pytest.raises(StoreError, match="nothing was changed"):
        migrate(connection, broken)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []


def test_a_store_from_a_newer_version_is_refused(state_dir: Path):
    Store.open(state_dir, DIM, MODEL).close()
    connection = sqlite3.connect(state_dir / "index.sqlite3")
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    connection.close()
    with pytest.raises(StoreError, match="newer ideaweave"):
        Store.open(state_dir, DIM, MODEL)


def test_upgrading_an_index_of_version_3_drops_the_plaintext_of_its_private_notes(tmp_path: Path):
    """Before migration 4, a private note's text, title and words were in the index in plain."""
    database = tmp_path / "index.sqlite3"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA foreign_keys = ON")
    migrate(connection, MIGRATIONS[:3])
    for note_id, path, private in ((1, "Public note.md", 0), (2, "Private/Zyxomorphic secret.md", 1)):
        connection.execute("INSERT INTO notes (id, path, title, size, mtime_ns, content_hash, private, indexed_at)"
                           " VALUES (?, ?, ?, 1, 1, ?, ?, 0)", (note_id, path, Path(path).stem, f"c{note_id}", private))
        words = "ordinary public compost words" if not private else "the quixotic vermiculite draft"
        connection.execute("INSERT INTO chunks (id, note_id, ordinal, start_offset, end_offset, hash, text)"
                           " VALUES (?, ?, 0, 0, 10, ?, ?)", (note_id, note_id, f"h{note_id}", words))
        connection.execute("INSERT INTO chunk_search (rowid, title, heading, text) VALUES (?, ?, '', ?)",
                           (note_id, Path(path).stem, words))
    connection.execute("INSERT INTO summaries (content_hash, mode, summary) VALUES ('k', 'extractive', 'vermiculite')")
    connection.close()
    assert b"vermiculite" in database.read_bytes()  # (closing checkpointed the log into the file)

    connection = open_database(database)
    assert [row[0] for row in connection.execute("SELECT path FROM notes")] == ["Public note.md"]
    assert connection.execute("SELECT rowid FROM chunk_search WHERE chunk_search MATCH 'compost'").fetchall() == [(1,)]
    assert connection.execute("SELECT count(*) FROM summaries").fetchone()[0] == 0
    connection.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file()).lower()
    for secret in (b"vermiculite", b"quixotic", b"zyxomorphic"):
        assert secret not in data, secret
