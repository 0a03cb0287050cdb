"""The index database's schema: numbered, append-only migrations, and opening a connection at the latest.

The schema version lives in the database (`PRAGMA user_version`), so an index made by an older
ideaweave is upgraded in place when opened, and one made by a newer ideaweave is refused rather
than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import StoreError

# Append-only: never edit a released entry, add a new one. Entry i brings the
# database from `PRAGMA user_version` i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        is_template INTEGER NOT NULL DEFAULT 0,
        private INTEGER NOT NULL DEFAULT 0,
        indexed_at REAL NOT NULL,
        frontmatter_json TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        note_id INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        heading TEXT NOT NULL DEFAULT '',
        heading_path_json TEXT NOT NULL DEFAULT '[]',
        start_offset INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,
        hash TEXT NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (note_id, ordinal)
    );
    CREATE INDEX chunks_by_hash ON chunks(hash);

    -- AUTOINCREMENT: ids are never reused and rows never change, so a faiss file
    -- holding exactly the table's ids holds exactly its vectors.
    CREATE TABLE vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash TEXT NOT NULL UNIQUE,
        vector BLOB NOT NULL
    );

    CREATE TABLE links (
        source_id INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
        target_path TEXT,
        raw TEXT NOT NULL,
        heading TEXT,
        kind TEXT NOT NULL
    );
    CREATE INDEX links_by_source ON links(source_id);
    CREATE INDEX links_by_target ON links(target_path);

    CREATE TABLE tags (
        note_id INTEGER NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (note_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_by_tag ON tags(tag);

    CREATE TABLE skipped (
        path TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        size INTEGER,
        mtime_ns INTEGER
    );

    CREATE TABLE written (
        path TEXT PRIMARY KEY,
        checksum TEXT NOT NULL,
        values_json TEXT NOT NULL,
        written_at REAL NOT NULL
    );

    CREATE TABLE feedback (
        note_path TEXT NOT NULL,
        target_path TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('rejected', 'pinned')),
        at REAL NOT NULL,
        PRIMARY KEY (note_path, target_path)
    );

    -- External content: the words are indexed, the text is not stored twice.
    -- Kept in step explicitly by Store (not by triggers: a cascade deletes the
    -- note before its chunks, and FTS5 needs the old title to unindex them).
    CREATE VIEW chunk_search_source AS
        SELECT chunks.id AS id, notes.title AS title, chunks.heading AS heading,
               chunks.text AS text
        FROM chunks JOIN notes ON notes.id = chunks.note_id;
    CREATE VIRTUAL TABLE chunk_search USING fts5(
        title, heading, text,
        content='chunk_search_source', content_rowid='id',
        tokenize='porter unicode61'
    );
    """,
    """
    -- Summaries cost a model call: cached by the note's content hash and the summary mode.
    CREATE TABLE summaries (
        content_hash TEXT NOT NULL,
        mode TEXT NOT NULL,
        summary TEXT,
        PRIMARY KEY (content_hash, mode)
    );
    -- Notes ideaweave did not write to, and why (shown by `status`).
    CREATE TABLE write_issues (
        path TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    """
    -- What went wrong with one note, at which stage (shown by `status`). Kept until the note changes:
    -- size and mtime say what the file was when it failed, so an unchanged one is not retried.
    CREATE TABLE note_problems (
        path TEXT NOT NULL,
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        size INTEGER,
        mtime_ns INTEGER,
        at REAL NOT NULL,
        PRIMARY KEY (path, stage)
    );
    """,
    """
    -- Secure notes (private ones; every note with index.encrypt = "all") keep no plaintext here: their
    -- rows carry a pseudonym for a path, sealed values for text, and no chunk text (see sealing.py).
    ALTER TABLE notes ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE vectors ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE hidden_paths (
        pseudonym TEXT PRIMARY KEY,
        sealed_path TEXT NOT NULL
    );
    -- Keyword search never sees a secure note.
    DROP VIEW chunk_search_source;
    CREATE VIEW chunk_search_source AS
        SELECT chunks.id AS id, notes.title AS title, chunks.heading AS heading,
               chunks.text AS text
        FROM chunks JOIN notes ON notes.id = chunks.note_id WHERE notes.sealed = 0;
    -- Private notes indexed by an older ideaweave are in plain text: forgotten here, so that the next
    -- index reads them again and keeps them sealed; their vectors stay until then, and are sealed when
    -- the notes come back. Cached summaries cannot be told apart by note: all go (they are remade).
    INSERT INTO chunk_search (chunk_search) VALUES ('delete-all');
    DELETE FROM notes WHERE private = 1;
    INSERT INTO chunk_search (chunk_search) VALUES ('rebuild');
    DELETE FROM summaries;
    """,
    """
    -- Each note's term signature (its most frequent content words as 64-bit hashes, with their counts):
    -- the keyword evidence of ranking on vaults too large for FTS5 to score every matching section, held
    -- in memory. A secure note keeps an empty one (its words are its plaintext). Notes indexed before this
    -- table existed get theirs at the next ranking load.
    CREATE TABLE note_terms (
        note_id INTEGER PRIMARY KEY REFERENCES notes(id) ON DELETE CASCADE,
        words INTEGER NOT NULL,
        terms BLOB NOT NULL
    );
    """,
]

# The first version whose databases keep no plaintext of a private note: opening an older one rewrites
# it, and the pages that held the plaintext are scrubbed (secure_delete) and checkpointed away.
SEALING_VERSION = 4


def open_database(database: Path) -> sqlite3.Connection:
    """A connection to the index at `database`, in write-ahead-log mode and at the latest schema
    (the migrations it lacks applied). One connection serves every thread: the store serialises them."""
    connection = _connect(database)
    try:
        applied = migrate(connection, MIGRATIONS)
        if SEALING_VERSION in applied:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        connection.close()
        raise
    return connection


def migrate(connection: sqlite3.Connection, migrations: Sequence[str]) -> list[int]:
    """Bring the database to version len(migrations) by running only the migrations
    after its `user_version`, all in one transaction. Returns the versions applied."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise StoreError(f"The index cannot be opened for upgrade: {error}.") from error
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise StoreError(
                f"The index was made by a newer ideaweave (schema {version}, this one knows {len(migrations)}). "
                "Upgrade ideaweave, or delete the state directory to rebuild the index."
            )
        applied = []
        for number in range(version + 1, len(migrations) + 1):
            for statement in _statements(migrations[number - 1]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
            applied.append(number)
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        connection.execute("ROLLBACK")
        raise StoreError(f"Upgrading the index failed, nothing was changed: {error}.") from error
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return applied


def _statements(script: str) -> Iterator[str]:
    # executescript() would commit the surrounding transaction, so split instead;
    # complete_statement keeps semicolons inside strings, comments and triggers.
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""


def _connect(database: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False, timeout=30)
    except sqlite3.Error as error:
        raise StoreError(f"Cannot open the index {database}: {error}.") from error
    try:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        # Deleted rows are overwritten with zeros, not left in free pages: a note that becomes private
        # leaves no readable trace of its plaintext rows in the file.
        connection.execute("PRAGMA secure_delete = ON")
    except sqlite3.DatabaseError as error:
        connection.close()
        raise StoreError(
            f"{database} is not a usable ideaweave index ({error}). Move it away to rebuild the index from the vault."
        ) from error
    if mode.lower() != "wal":
        connection.close()
        raise StoreError(f"{database} cannot use write-ahead logging (journal mode {mode}); is the folder read-only?")
    return connection
