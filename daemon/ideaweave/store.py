"""The index of a vault: notes, chunks, vectors, links, and what ideaweave wrote.

It lives in a state directory outside the vault (indexes inside a vault break sync
tools). SQLite is the source of truth; the faiss file is a cache of the `vectors`
table that is rebuilt whenever it disagrees with it, so a crash between the two
heals itself at the next open. Everything is keyed by the vault-relative path.

Choices a caller should know:
- A chunk points at its vector by the hash of what was embedded; a vector is stored
  once per distinct hash. So chunks can be written before or after their vectors,
  a rename keeps every vector, and `gc_vectors()` drops vectors no chunk uses.
- Vectors are stored unit length (inner product is cosine) and rounded to float16 in
  SQLite; the exact index holds them as they are, so one rebuilt from SQLite is
  bit-identical. The inverted file (large vaults) searches 8-bit codes of them and
  reads the vectors it is asked for back from SQLite, so callers always get the stored ones.
- A different embedding model or dimension does not fail `open()`: the store opens
  with `model_changed=True`, and every vector operation raises StoreError until the
  caller decides to re-embed and calls `reset_vectors()`. Opening with a mistyped
  model name therefore never destroys an index.
- Threads: one connection (`check_same_thread=False`) and the in-memory faiss index
  are shared and guarded by one re-entrant lock; every public method holds it for
  its duration, so an API thread may read while the indexer writes. Calls are short,
  so serialising them costs little; other processes may read through WAL.

- Secure notes (private ones; every note when `seal_all`) keep no plaintext here: the database holds
  a keyed pseudonym for the path, sealed values for the title, headings, frontmatter, links, tags and
  what was written, no chunk text (passages are read again from the note through `text_source`), and
  sealed vectors; their vectors live in memory only (`_sealed_vectors`), never in the faiss file.
  Callers see none of this: the connection translates paths and opens sealed values on the way
  (`_Veil`). Without the key such notes are invisible, as if never indexed (`locked_notes` counts them).

The tables and their migrations are in `schema`; the faiss indexes in `vectors`; the cipher in `sealing`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import terms
from .errors import StoreError
from .schema import open_database
from .sealing import HIDDEN_PREFIX, SEALED_PREFIX, Keychain, Sealer, SealingError
from .vectors import (
    IVF_SAMPLE_PER_LIST,
    FlatIndex,
    IvfIndex,
    VectorIndex,
    ivf_lists,
    load_index,
    needs_reclustering,
    normalise_rows,
    row_norms,
    wanted_kind,
)

log = logging.getLogger(__name__)

DATABASE_NAME = "index.sqlite3"
VECTORS_NAME = "vectors.faiss"
# What the user said about a suggested link, as stored: the one list of them (the feedback table's
# CHECK constraint holds the same two).
FEEDBACK_ACTIONS = ("rejected", "pinned")

# bm25 weights for (title, heading, text): a word in a title or heading says more
# about what a passage is about than the same word in passing.
FTS_WEIGHTS = (2.0, 1.5, 1.0)

# SQLite limits bound parameters per statement; stay well under it.
_BATCH = 900


# ---------------------------------------------------------------- plain values


@dataclass(frozen=True)
class NoteRecord:
    """What the indexer knows about one note file."""

    path: str
    title: str
    size: int
    mtime_ns: int
    content_hash: str
    is_template: bool = False
    private: bool = False
    frontmatter: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkRecord:
    """One passage of a note; `hash` names the vector of what was embedded."""

    ordinal: int
    heading: str
    heading_path: tuple[str, ...]
    start: int
    end: int
    hash: str
    text: str


@dataclass(frozen=True)
class LinkRecord:
    """A link written in a note; `target_path` is None when it resolves to no note."""

    raw: str
    target_path: str | None
    heading: str | None = None
    kind: str = "wikilink"


class NoteStat(NamedTuple):
    size: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class StoredNote:
    id: int
    path: str
    title: str
    size: int
    mtime_ns: int
    content_hash: str
    is_template: bool
    private: bool
    indexed_at: float
    frontmatter: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class StoredChunk(ChunkRecord):
    """A chunk as the index holds it: the record, where it lives, and its vector (None until embedded)."""

    id: int
    note_path: str
    vector_id: int | None
    sealed: bool = False  # a secure note's: its text was read again from the note (empty if it changed)


class FtsHit(NamedTuple):
    chunk_id: int
    note_path: str
    score: float  # -bm25: higher is better


@dataclass(frozen=True)
class Rewrite:
    """ideaweave's own write of a note's frontmatter, as the index records it (`Store.record_rewrites`)."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    values: Mapping[str, object]  # the managed keys set (None: removed)
    shift: int  # how far the body moved, in characters


@dataclass(frozen=True)
class WrittenRecord:
    path: str
    checksum: str
    values: dict[str, object]
    written_at: float


# ---------------------------------------------------------------- the store


class Store:
    """The SQLite + faiss + FTS5 index of one vault. Open with `Store.open`."""

    def __init__(self, connection: sqlite3.Connection, state_dir: Path, dim: int, model_id: str,
                 keychain: Keychain | None = None, seal_all: bool = False) -> None:
        self._raw = connection  # untranslated: for moving rows between a path and its pseudonym
        self._veil = _Veil()
        self._db = _VeiledConnection(connection, self._veil)
        self._lock = threading.RLock()
        self.keychain = keychain
        self.seal_all = seal_all
        # path -> {chunk hash: chunk text}, read from the note: the text of secure notes' chunks.
        self.text_source: Callable[[str], Mapping[str, str]] | None = None
        self.locked_notes = 0  # secure notes indexed but unreadable without the key
        self._sealed_vectors: VectorIndex = FlatIndex.empty(dim)  # memory only: never saved
        self._sealed_ids: set[int] = set()
        self._scrub = False  # plaintext was replaced by sealed rows: checkpoint the WAL at the next flush
        self.state_dir = state_dir
        self.dim = dim
        self.model_id = model_id
        self.stored_dim = dim
        self.stored_model_id = model_id
        self.model_changed = False
        self.vectors_rebuilt = False  # True when open() had to rebuild the faiss file
        self._maybe_orphaned: set[str] = set()  # chunk hashes replaced or deleted since the last gc_vectors()
        self._saved_at = float("-inf")  # when the vector index was last saved (monotonic clock)
        self._vectors: VectorIndex = FlatIndex.empty(dim)
        self._closed = False
        # Counts the changes, in this process, to what a ranking snapshot holds of a note: its embedded
        # sections, its vectors, its title and flags. A snapshot taken at the current count is current.
        self.sections_version = 0
        self._searcher: ThreadPoolExecutor | None = None  # `fts_searches`' thread, started on first use
        self._side = threading.local()  # its read connection
        self._side_connections: list[_VeiledConnection] = []

    @classmethod
    def open(cls, state_dir: Path, dim: int, model_id: str, keychain: Keychain | None = None,
             seal_all: bool = False) -> Store:
        """Open (creating or upgrading) the index in `state_dir`. `keychain`: where the key of secure notes
        is found (None: this store cannot keep secure notes); `seal_all`: every note is secure."""
        state_dir = Path(state_dir)
        database = state_dir / DATABASE_NAME
        try:
            _make_private_dir(state_dir)
            _make_private_file(database)
        except OSError as error:
            raise StoreError(f"Cannot create the index in {state_dir}: {error.strerror}.") from error
        connection = open_database(database)
        try:
            store = cls(connection, state_dir, dim, model_id, keychain, seal_all)
            store._adopt_model()
            store._adopt_key(keychain.current() if keychain else None)
            store._mark_for_resealing()
            store._load_vectors()
        except BaseException:
            connection.close()
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def vectors_path(self) -> Path:
        return self.state_dir / VECTORS_NAME

    @property
    def database_path(self) -> Path:
        return self.state_dir / DATABASE_NAME

    # ---- plumbing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreError(f"The index at {self.database_path} cannot be written: {error}.") from error
            try:
                yield self._db
            except sqlite3.Error as error:
                self._db.execute("ROLLBACK")
                raise StoreError(f"The index at {self.database_path} could not be updated: {error}.") from error
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _scrub_log(self) -> None:
        """Plaintext was replaced by sealed rows: old page images in the write-ahead log may still hold it.
        Done at flush() (once per indexing run), not per note: a checkpoint writes and syncs the database."""
        with self._lock:
            if self._scrub:
                self._scrub = False
                self._raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _rows_where_in(self, select: str, only: Iterable[object] | None, column: str = "path", order: str = "") -> list[tuple]:
        """Rows of `select`: all of them, or (a batch of values at a time) those whose `column` is in `only`."""
        if only is None:
            return self._rows(select + order)
        joiner = " AND " if " WHERE " in select else " WHERE "
        rows: list[tuple] = []
        for batch in _batches(sorted(set(only))):
            rows += self._rows(f"{select}{joiner}{column} IN ({','.join('?' * len(batch))}){order}", batch)
        return rows

    def _meta(self) -> dict[str, str]:
        return dict(self._rows("SELECT key, value FROM meta"))

    @staticmethod
    def _set_meta(db: sqlite3.Connection, **values: object) -> None:
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, str(value)) for key, value in values.items()],
        )

    @staticmethod
    def _bump_generation(db: sqlite3.Connection) -> None:
        # Every change to the vectors table bumps this; flush() records the value
        # the faiss file matches, so an unflushed change is noticed at next open.
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vectors_generation'")

    def _adopt_model(self) -> None:
        meta = self._meta()
        if "model_id" not in meta:
            with self._transaction() as db:
                self._set_meta(db, model_id=self.model_id, dim=self.dim, vectors_generation=0, faiss_generation=-1)
            return
        self.stored_model_id, self.stored_dim = meta["model_id"], int(meta["dim"])
        self.model_changed = (self.stored_model_id, self.stored_dim) != (self.model_id, self.dim)

    # ---- secure notes

    def _adopt_key(self, sealer: Sealer | None) -> None:
        """Use `sealer` for secure notes: learn their paths (or, without a key, how many are hidden)."""
        self._veil.sealer = sealer
        self.sections_version += 1  # secure notes' sections come into view (or go out of it)
        with self._lock:
            hidden = self._raw.execute("SELECT pseudonym, sealed_path FROM hidden_paths").fetchall()
            sealed_notes = self._raw.execute("SELECT count(*) FROM notes WHERE sealed = 1").fetchone()[0]
        if sealer is None:
            self._veil.locked_rows = bool(hidden or sealed_notes)
            self.locked_notes = sealed_notes
            return
        opened = {}
        for pseudonym, sealed_path in hidden:
            try:
                opened[sealer.open_text(sealed_path)] = pseudonym
            except SealingError:
                log.warning("a secure note's path does not open with this key; it stays hidden")
                self._veil.locked_rows = True
        stored = self.note_paths_as_stored() if opened else []
        if len(stored) > sealed_notes:
            # Indexed again in plain while the key was away (it stopped being secure): that row wins.
            plain = set(stored) & set(opened)
            if plain:
                with self._transaction():
                    for path in plain:
                        self._raw.execute("DELETE FROM notes WHERE path = ?", (opened[path],))
        for path, pseudonym in opened.items():
            self._veil.add(path, pseudonym)

    def note_paths_as_stored(self) -> list[str]:
        """Every note's path column as it is, pseudonyms included."""
        with self._lock:
            return [row[0] for row in self._raw.execute("SELECT path FROM notes")]

    def _mark_for_resealing(self) -> None:
        """Notes sealed otherwise than the settings now ask (index.encrypt changed, a flag was set while
        locked) get no size and no content hash: the next scan reads them again and stores them as asked."""
        mismatch = "sealed != (private OR ?) AND content_hash != ''"
        with self._lock:
            if not self._raw.execute(f"SELECT 1 FROM notes WHERE {mismatch} LIMIT 1", (int(self.seal_all),)).fetchone():
                return
        with self._transaction():
            self._raw.execute(f"UPDATE notes SET content_hash = '', size = -1 WHERE {mismatch}", (int(self.seal_all),))

    @property
    def unlocked(self) -> bool:
        return self._veil.sealer is not None

    def seals(self, private: bool) -> bool:
        """Is a note of this privacy kept sealed here?"""
        return private or self.seal_all

    def accepts(self, private: bool) -> bool:
        """Can a note of this privacy be indexed now? A secure one needs the key (made now if there is
        none yet and one can be made); without it the note stays unindexed."""
        if not self.seals(private):
            return True
        return self._writing_sealer() is not None

    def _writing_sealer(self) -> Sealer | None:
        with self._lock:
            if self._veil.sealer is None and self.keychain is not None:
                sealer = self.keychain.for_writing()
                if sealer is not None:
                    self._adopt_key(sealer)
                    self._load_sealed_vectors()
            return self._veil.sealer

    def hide_path(self, path: str) -> bool:
        """Name `path` by its pseudonym from now on (a secure note the store has no row of yet, such as one
        that failed or was skipped); False when there is no key to make one with."""
        if path in self._veil.hidden:
            return True
        if self._writing_sealer() is None:
            return False
        with self._transaction() as db:
            self._hide(db, path)
        return True

    def is_hidden(self, path: str) -> bool:
        """Is the note at `path` kept sealed (its path a pseudonym in the database)?"""
        return path in self._veil.hidden

    def pseudonym(self, path: str) -> str:
        """How the state folder may name `path`: its pseudonym when it is a secure note's."""
        return self._veil.hidden.get(path, path)

    def real_path(self, name: str) -> str | None:
        """The path a name from `pseudonym` stands for (None: a secure note this store cannot see)."""
        if name.startswith(HIDDEN_PREFIX):
            return self._veil.shown.get(name)
        return name

    def _seal_text(self, text: str) -> str:
        sealer = self._veil.sealer
        if sealer is None:
            raise StoreError("a secure note cannot be stored without its key; run `ideaweave unlock`")
        return sealer.seal_text(text)

    def _hide(self, db, path: str) -> str:
        """Keep `path` as a pseudonym from now on (inside a transaction): rows already stored under the
        plain path (a note that just became private) move to the pseudonym, their values sealed."""
        sealer = self._veil.sealer
        assert sealer is not None
        pseudonym = sealer.pseudonym(path)
        if self._veil.hidden.get(path) == pseudonym:
            return pseudonym
        raw = self._raw
        raw.execute("INSERT OR REPLACE INTO hidden_paths (pseudonym, sealed_path) VALUES (?, ?)",
                    (pseudonym, sealer.seal_text(path)))
        moved = 0
        for table, column in _PATH_COLUMNS:
            moved += raw.execute(f"UPDATE OR REPLACE {table} SET {column} = ? WHERE {column} = ?",
                                 (pseudonym, path)).rowcount
        for table, column in (("written", "values_json"), ("write_issues", "reason"), ("note_problems", "reason"),
                              ("skipped", "reason")):
            for rowid, value in raw.execute(f"SELECT rowid, {column} FROM {table} WHERE path = ?", (pseudonym,)).fetchall():
                if not value.startswith(SEALED_PREFIX):
                    raw.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (sealer.seal_text(value), rowid))
        if moved:
            self._scrub = True
        self._veil.add(path, pseudonym)
        return pseudonym

    def _unhide(self, path: str) -> None:
        """`path` is no longer a secure note's (inside a transaction): its rows take the plain path again."""
        pseudonym = self._veil.hidden.get(path)
        if pseudonym is None:
            return
        for table, column in _PATH_COLUMNS:
            self._raw.execute(f"UPDATE OR REPLACE {table} SET {column} = ? WHERE {column} = ?", (path, pseudonym))
        self._raw.execute("DELETE FROM hidden_paths WHERE pseudonym = ?", (pseudonym,))
        self._veil.remove(path)

    def _require_current_model(self) -> None:
        if self.model_changed:
            raise StoreError(
                f"The index was built with the model {self.stored_model_id!r} ({self.stored_dim} dimensions) "
                f"but the configuration names {self.model_id!r} ({self.dim} dimensions). "
                "Run `ideaweave index --rebuild` to embed every note again with the new model."
            )

    # ---- keeping faiss in step with SQLite

    def _load_vectors(self) -> None:
        self._load_sealed_vectors()
        index = load_index(self.vectors_path, self.stored_dim, self._plain_vectors)
        if index is not None and self._index_matches(index):
            self._vectors = index
            self._fit_index_to_size()
            return
        # A brand-new index has never been saved (-1); anything else is a real repair.
        self.vectors_rebuilt = self._meta().get("faiss_generation") != "-1"
        started = time.monotonic()
        if self.vectors_rebuilt:
            log.warning("the vector index file is missing, damaged, out of step or of an earlier kind; "
                        "rebuilding it from the database")
        self._vectors = self._rebuild_vectors()
        self._save_vectors()
        if self.vectors_rebuilt:
            log.warning("rebuilt the vector index: %d vectors in %.1f s", len(self._vectors), time.monotonic() - started)

    def _load_sealed_vectors(self) -> None:
        """Open the sealed vectors into memory (with the key; without it they stay unread)."""
        with self._lock:
            self._sealed_vectors, self._sealed_ids = FlatIndex.empty(self.stored_dim), set()
            sealer = self._veil.sealer
            if sealer is None:
                return
            cursor = self._raw.execute("SELECT id, hash, vector FROM vectors WHERE sealed = 1 ORDER BY id")
            while batch := cursor.fetchmany(20_000):
                ids, blobs = [], []
                for vector_id, vector_hash, blob in batch:
                    try:
                        blobs.append(sealer.open(blob, vector_hash.encode("ascii")))
                    except SealingError:
                        continue  # another key's, or altered: that chunk counts as not embedded
                    ids.append(vector_id)
                if ids:
                    self._sealed_vectors.add(np.array(ids, dtype=np.int64), _decode_vectors(blobs, self.stored_dim))
                    self._sealed_ids.update(ids)

    def _index_matches(self, index: VectorIndex) -> bool:
        meta = self._meta()
        if meta.get("faiss_generation") != meta.get("vectors_generation"):
            return False
        with self._lock:
            cursor = self._raw.execute("SELECT id FROM vectors WHERE sealed = 0 ORDER BY id")
            table_ids = np.fromiter((row[0] for row in cursor), dtype=np.int64)
        return np.array_equal(np.sort(index.ids()), table_ids)

    def _fit_index_to_size(self) -> None:
        """Switch between exact and approximate search, or re-cluster, when the vault has grown or
        shrunk past the point where the current index serves it well. Rebuilt from the database."""
        count = len(self._vectors)
        kind = wanted_kind(count, self._vectors)
        if kind != ("ivf" if isinstance(self._vectors, IvfIndex) else "flat") or needs_reclustering(self._vectors, count):
            self._vectors = self._rebuild_vectors()
            with self._transaction() as db:
                self._bump_generation(db)  # saved by the next flush()

    def _rebuild_vectors(self) -> VectorIndex:
        with self._lock:
            count = self._raw.execute("SELECT count(*) FROM vectors WHERE sealed = 0").fetchone()[0]
            if wanted_kind(count, self._vectors) == "ivf":
                index: VectorIndex = IvfIndex.trained(self.stored_dim, self._vector_sample(count), count,
                                                      self._plain_vectors)
            else:
                index = FlatIndex.empty(self.stored_dim)
            cursor = self._raw.execute("SELECT id, vector FROM vectors WHERE sealed = 0 ORDER BY id")
            while batch := cursor.fetchmany(50_000):
                ids = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
                index.add(ids, _decode_vectors([row[1] for row in batch], self.stored_dim))
        return index

    def _plain_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these (unsealed) ids, row for row: what the inverted file's `gather` returns,
        since its 8-bit codes are not the stored vectors. 3 to 6 us a vector at 400,000 vectors, two to three times
        what decoding float16 codes took (bench/RESULTS.md)."""
        wanted = np.unique(ids)
        rows = self._rows_where_in("SELECT id, vector FROM vectors WHERE sealed = 0", wanted.tolist(), column="id",
                                   order=" ORDER BY id")
        if len(rows) != len(wanted):
            raise StoreError("The vector index is out of step with the database; restart ideaweave to rebuild it.")
        return _decode_vectors([blob for _, blob in rows], self.stored_dim)[np.searchsorted(wanted, ids)]

    def _vector_sample(self, count: int) -> np.ndarray:
        """A reproducible random sample of stored vectors to learn the clusters from."""
        ids = np.array([row[0] for row in self._raw.execute("SELECT id FROM vectors WHERE sealed = 0 ORDER BY id")],
                       dtype=np.int64)
        size = min(len(ids), IVF_SAMPLE_PER_LIST * ivf_lists(count))
        chosen = np.sort(np.random.default_rng(0).choice(ids, size=size, replace=False))
        rows = self._rows_where_in("SELECT vector FROM vectors", chosen.tolist(), column="id")
        return _decode_vectors([row[0] for row in rows], self.stored_dim)

    def _save_vectors(self) -> None:
        with self._lock:
            generation = self._meta()["vectors_generation"]
            self._vectors.save(self.vectors_path)
            self._saved_at = time.monotonic()
            with self._transaction() as db:
                self._set_meta(db, faiss_generation=generation)

    def flush(self, min_interval: float = 0.0) -> None:
        """Persist the faiss index if the vectors changed since it was last saved (and, with
        `min_interval`, if it was last saved at least that many seconds ago)."""
        with self._lock:
            self._scrub_log()
            if time.monotonic() - self._saved_at < min_interval:
                return
            meta = self._meta()
            if meta["faiss_generation"] != meta["vectors_generation"] or not self.vectors_path.exists():
                self._save_vectors()

    def close(self) -> None:
        """Flush and close; further calls fail."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                if self._searcher is not None:
                    self._searcher.shutdown(wait=True, cancel_futures=True)
                for side in self._side_connections:
                    side.close()
                self._db.close()

    # ---- notes

    def note_stats(self, only: Iterable[str] | None = None) -> dict[str, NoteStat]:
        """What each indexed note (of `only`, when given) looked like when indexed, to spot changes cheaply."""
        rows = self._rows_where_in("SELECT path, size, mtime_ns, content_hash FROM notes", only)
        return {path: NoteStat(size, mtime_ns, content_hash) for path, size, mtime_ns, content_hash in rows}

    def replace_note(
        self, note: NoteRecord, chunks: Sequence[ChunkRecord], links: Sequence[LinkRecord], tags: Iterable[str]
    ) -> None:
        """Insert or replace a note with its chunks, links and tags, in one transaction.

        Also clears any `skipped` entry for the path: the note is indexed now. A secure note (see
        `seals`) is stored sealed and without its text; StoreError when its key is not at hand.
        """
        sealed = self.seals(note.private)
        if sealed and self._writing_sealer() is None:
            raise StoreError("a secure note cannot be indexed without its key; run `ideaweave unlock`")
        seal = self._seal_text if sealed else (lambda text: text)
        with self._transaction() as db:
            old_id = _note_id(db, note.path)
            old_hashes = _chunk_hashes(db, old_id) if old_id is not None else []
            if self._changes_sections(db, old_id, old_hashes, note, chunks, sealed):
                self.sections_version += 1
            if old_id is not None:
                self._maybe_orphaned.update(old_hashes)
                _unindex_chunks(db, old_id)
                db.execute("DELETE FROM chunks WHERE note_id = ?", (old_id,))
                db.execute("DELETE FROM links WHERE source_id = ?", (old_id,))
                db.execute("DELETE FROM tags WHERE note_id = ?", (old_id,))
            if sealed:
                self._hide(db, note.path)
                if self.seal_all:  # every link target is a secure note too: never written under its path
                    for target in {link.target_path for link in links if link.target_path}:
                        self._hide(db, target)
            else:
                self._unhide(note.path)
            note_id = _upsert_note(db, note, seal, sealed)
            db.executemany(
                "INSERT INTO chunks (note_id, ordinal, heading, heading_path_json, start_offset, end_offset, hash, text)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (note_id, c.ordinal, seal(c.heading) if c.heading else "",
                     seal(json.dumps(list(c.heading_path), ensure_ascii=False)),
                     c.start, c.end, c.hash, "" if sealed else c.text)  # a secure note's text is read again from it
                    for c in chunks
                ],
            )
            _index_chunks(db, note_id)
            _save_signature(db, note_id, (0, b"") if sealed else terms.signature("\n".join(c.text for c in chunks)))
            _insert_links(db, note_id, links, seal)
            db.executemany("INSERT OR IGNORE INTO tags (note_id, tag) VALUES (?, ?)", [(note_id, seal(t)) for t in tags])
            db.execute("DELETE FROM skipped WHERE path = ?", (note.path,))
            # New content: what failed for the old content is tried again.
            db.execute("DELETE FROM note_problems WHERE path = ?", (note.path,))
            moved = self._settle_vectors(db, [c.hash for c in chunks])
            if self._scrub and old_id is not None:
                # The note was public until now: merge the keyword index so its words leave it entirely.
                db.execute("INSERT INTO chunk_search (chunk_search) VALUES ('optimize')")
        self._move_vectors(moved)

    @staticmethod
    def _changes_sections(db, old_id: int | None, old_hashes: list[str], note: NoteRecord, chunks: Sequence[ChunkRecord],
                          sealed: bool) -> bool:
        """Does storing `note` change what a ranking snapshot holds of it? Not when only its frontmatter
        changed (ideaweave's own writes), which is the usual case between two snapshots."""
        if old_id is None or sealed:  # a secure note's stored title is sealed anew each time: never equal
            return True
        old = db.execute("SELECT title, is_template, private FROM notes WHERE id = ?", (old_id,)).fetchone()
        return (tuple(old) != (note.title, int(note.is_template), int(note.private))
                or old_hashes != [c.hash for c in sorted(chunks, key=lambda c: c.ordinal)])

    def _settle_vectors(self, db, hashes: Sequence[str]) -> list[tuple[int, bool, np.ndarray]]:
        """Seal the vectors of `hashes` that only secure notes use, and open those a public note uses too
        (its text is public anyway). Returns (id, sealed now, vector) of those that changed, for faiss."""
        moved = []
        for batch in _batches(sorted(set(hashes))):
            rows = self._raw.execute(
                "SELECT vectors.id, vectors.hash, vectors.sealed, vectors.vector,"
                " NOT EXISTS (SELECT 1 FROM chunks JOIN notes ON notes.id = chunks.note_id"
                "             WHERE chunks.hash = vectors.hash AND notes.sealed = 0)"
                f" FROM vectors WHERE hash IN ({','.join('?' * len(batch))})", batch).fetchall()
            for vector_id, vector_hash, sealed, blob, wanted in rows:
                if bool(sealed) == bool(wanted):
                    continue
                sealer = self._veil.sealer
                if sealer is None:
                    continue  # a vector sealed by a key this process lacks stays as it is
                context = vector_hash.encode("ascii")
                try:
                    plain = sealer.open(blob, context) if sealed else blob
                except SealingError:
                    continue  # altered, or another key's: it stays as it is, never read (see _chunk_vectors)
                stored = sealer.seal(plain, context) if wanted else plain
                self._raw.execute("UPDATE vectors SET vector = ?, sealed = ? WHERE id = ?", (stored, int(wanted), vector_id))
                moved.append((vector_id, bool(wanted), _decode_vectors([plain], self.stored_dim)[0]))
                self._scrub = self._scrub or bool(wanted)
        if moved:
            self._bump_generation(db)
        return moved

    def _move_vectors(self, moved: list[tuple[int, bool, np.ndarray]]) -> None:
        """Carry the changes of `_settle_vectors` into the two vector indexes, after the commit."""
        if not moved:
            return
        with self._lock:
            self.sections_version += 1
            for vector_id, sealed, vector in moved:
                ids, row = np.array([vector_id], dtype=np.int64), vector[None, :]
                source, target = (self._vectors, self._sealed_vectors) if sealed else (self._sealed_vectors, self._vectors)
                source.remove(ids)
                target.add(ids, row)
                (self._sealed_ids.add if sealed else self._sealed_ids.discard)(vector_id)
            self._fit_index_to_size()

    def record_rewrites(self, rewrites: Sequence[Rewrite]) -> list[str]:
        """Record ideaweave's own frontmatter writes in one transaction: the note's new size, time and hash,
        its properties with the managed values, its sections' offsets moved with the body. What indexing
        the notes again would store, without the re-reading, chunking and keyword re-indexing. Secure notes
        (their properties are sealed) are left out. Returns the paths recorded."""
        done = []
        with self._transaction() as db:
            for r in rewrites:
                row = db.execute("SELECT id, frontmatter_json, sealed FROM notes WHERE path = ?", (r.path,)).fetchone()
                if row is None or row[2]:
                    continue
                properties = json.loads(row[1])
                for key, value in r.values.items():
                    if value is None:
                        properties.pop(key, None)
                    else:
                        properties[key] = value
                db.execute("UPDATE notes SET size = ?, mtime_ns = ?, content_hash = ?, indexed_at = ?, frontmatter_json = ?"
                           " WHERE id = ?", (r.size, r.mtime_ns, r.content_hash, time.time(), _to_json(properties), row[0]))
                db.execute("UPDATE chunks SET start_offset = start_offset + ?, end_offset = end_offset + ? WHERE note_id = ?",
                           (r.shift, r.shift, row[0]))
                done.append(r.path)
        return done

    def touch_note(self, path: str, size: int, mtime_ns: int) -> bool:
        """Record a new size/mtime for a note whose content did not change."""
        with self._transaction() as db:
            cursor = db.execute("UPDATE notes SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))
            return cursor.rowcount > 0

    def delete_notes(self, paths: Iterable[str]) -> int:
        """Forget notes (and what was written to them); their vectors stay until gc_vectors()."""
        deleted = 0
        with self._transaction() as db:
            for path in paths:
                note_id = _note_id(db, path)
                if note_id is not None:
                    self._maybe_orphaned.update(_chunk_hashes(db, note_id))
                    _delete_note(db, note_id)
                    deleted += 1
                    self.sections_version += 1
                db.execute("DELETE FROM written WHERE path = ?", (path,))
                db.execute("DELETE FROM write_issues WHERE path = ?", (path,))
                db.execute("DELETE FROM note_problems WHERE path = ?", (path,))
        return deleted

    def rename_note(self, old: str, new: str, title: str | None = None) -> bool:
        """Move a note to a new path, keeping its chunks and vectors.

        A note already indexed at `new` is replaced (the file there was overwritten).
        `written` and `feedback` rows follow the note. Links other notes wrote to
        `old` are left as they are: whether `[[old]]` still resolves depends on the
        vault's link resolution, so the caller re-resolves the links that name it
        (`link_targets()`) and calls `replace_links`.
        """
        with self._transaction() as db:
            note_id = _note_id(db, old)
            if note_id is None:
                return False
            overwritten = _note_id(db, new)
            if overwritten is not None:
                _delete_note(db, overwritten)
            self.sections_version += 1
            if old in self._veil.hidden:  # a secure note keeps its secrecy under its new name
                self._hide(db, new)
                if title is not None:
                    title = self._seal_text(title)
            if title is None:
                db.execute("UPDATE notes SET path = ? WHERE id = ?", (new, note_id))
            else:
                _unindex_chunks(db, note_id)
                db.execute("UPDATE notes SET path = ?, title = ? WHERE id = ?", (new, title, note_id))
                _index_chunks(db, note_id)
            db.execute("DELETE FROM written WHERE path = ?", (new,))
            db.execute("UPDATE written SET path = ? WHERE path = ?", (new, old))
            db.execute("UPDATE OR REPLACE feedback SET note_path = ? WHERE note_path = ?", (new, old))
            db.execute("UPDATE OR REPLACE feedback SET target_path = ? WHERE target_path = ?", (new, old))
            db.execute("DELETE FROM skipped WHERE path IN (?, ?)", (old, new))
            db.execute("DELETE FROM note_problems WHERE path IN (?, ?)", (old, new))  # a rename is a fresh start
            return True

    def replace_links(self, path: str, links: Sequence[LinkRecord]) -> bool:
        """Replace only the links of an indexed note (after re-resolving them)."""
        with self._transaction() as db:
            note_id = _note_id(db, path)
            if note_id is None:
                return False
            db.execute("DELETE FROM links WHERE source_id = ?", (note_id,))
            _insert_links(db, note_id, links, self._seal_text if path in self._veil.hidden else _same)
            return True

    # ---- vectors

    def missing_vectors(self, hashes: Iterable[str]) -> set[str]:
        """The hashes that have no stored vector yet (what still needs embedding)."""
        self._require_current_model()
        wanted = set(hashes)
        present: set[str] = set()
        for batch in _batches(sorted(wanted)):
            marks = ",".join("?" * len(batch))
            present.update(row[0] for row in self._rows(f"SELECT hash FROM vectors WHERE hash IN ({marks})", batch))
        return wanted - present

    def add_vectors(self, hashes: Sequence[str], matrix: np.ndarray, sealed: Iterable[str] = ()) -> int:
        """Store one vector per hash (rows of `matrix`, shape (n, dim)); known hashes are skipped.
        The vectors of the hashes in `sealed` (chunks of secure notes) are stored sealed.

        Returns how many were new.
        """
        self._require_current_model()
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape != (len(hashes), self.dim):
            raise ValueError(f"expected a ({len(hashes)}, {self.dim}) matrix, got {matrix.shape}")
        stored = normalise_rows(matrix).astype("<f2")
        sealed = set(sealed)
        sealer = self._writing_sealer() if sealed else None
        if sealed and sealer is None:
            raise StoreError("vectors of a secure note cannot be stored without its key; run `ideaweave unlock`")
        with self._lock:
            new_ids, new_rows, new_sealed = [], [], []
            with self._transaction() as db:
                for row, vector_hash in enumerate(hashes):
                    secret = vector_hash in sealed
                    blob = stored[row].tobytes()
                    if secret:
                        blob = sealer.seal(blob, vector_hash.encode("ascii"))
                    inserted = self._raw.execute(
                        "INSERT INTO vectors (hash, vector, sealed) VALUES (?, ?, ?) ON CONFLICT(hash) DO NOTHING RETURNING id",
                        (vector_hash, blob, int(secret)),
                    ).fetchall()
                    if inserted:
                        new_ids.append(inserted[0][0])
                        new_rows.append(row)
                        new_sealed.append(secret)
                if new_ids:
                    self._bump_generation(db)
            # After the commit: SQLite may run ahead of faiss (healed at open), never behind.
            if new_ids:
                self.sections_version += 1
                ids, secret = np.array(new_ids, dtype=np.int64), np.array(new_sealed, dtype=bool)
                vectors = stored[new_rows].astype(np.float32)
                if secret.any():
                    self._sealed_vectors.add(ids[secret], vectors[secret])
                    self._sealed_ids.update(ids[secret].tolist())
                if (~secret).any():
                    self._vectors.add(ids[~secret], vectors[~secret])
                    self._fit_index_to_size()
        return len(new_ids)

    def gc_vectors(self, everything: bool = True) -> int:
        """Delete vectors that no chunk refers to, from SQLite and faiss; returns how many.

        `everything=False` looks only at the vectors of chunks this store replaced or deleted since
        the last collection (what one note's update leaves behind), not at every vector: leftovers of
        an earlier process (a crash) wait for the next full collection."""
        with self._lock:
            candidates, self._maybe_orphaned = self._maybe_orphaned, set()
            if not everything and not candidates:
                return 0
            with self._transaction() as db:
                if everything:
                    removed = [row[0] for row in db.execute(
                        "DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM chunks) RETURNING id").fetchall()]
                else:
                    removed = []
                    for batch in _batches(sorted(candidates)):
                        removed += [row[0] for row in db.execute(
                            f"DELETE FROM vectors WHERE hash IN ({','.join('?' * len(batch))})"
                            " AND NOT EXISTS (SELECT 1 FROM chunks WHERE chunks.hash = vectors.hash) RETURNING id",
                            batch).fetchall()]
                if removed:
                    self._bump_generation(db)
            if removed:
                self.sections_version += 1  # a vector id may be given out again
                self._remove_from_indexes(removed)
        return len(removed)

    def _remove_from_indexes(self, removed: Sequence[int]) -> None:
        secret = [i for i in removed if i in self._sealed_ids]
        if secret:
            self._sealed_vectors.remove(np.array(secret, dtype=np.int64))
            self._sealed_ids.difference_update(secret)
        public = [i for i in removed if i not in set(secret)]
        if public:
            self._vectors.remove(np.array(public, dtype=np.int64))
            self._fit_index_to_size()

    def reset_vectors(self) -> None:
        """Drop every vector and adopt the configured model; chunks stay and await embedding."""
        with self._lock:
            with self._transaction() as db:
                db.execute("DELETE FROM vectors")
                self._set_meta(db, model_id=self.model_id, dim=self.dim)
                self._bump_generation(db)
            self.sections_version += 1
            self.stored_model_id, self.stored_dim = self.model_id, self.dim
            self.model_changed = False
            self._vectors = FlatIndex.empty(self.dim)
            self._sealed_vectors, self._sealed_ids = FlatIndex.empty(self.dim), set()
            self._save_vectors()

    def search_vectors(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest vectors by cosine: (scores, vector_ids), each (k,) for a (dim,)
        query or (m, k) for an (m, dim) one. k is capped at the number of vectors."""
        self._require_current_model()
        queries = np.asarray(query, dtype=np.float32)
        single = queries.ndim == 1
        queries = np.atleast_2d(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of {self.dim} dimensions, got {queries.shape}")
        with self._lock:
            queries = normalise_rows(queries)
            parts = [index.search(queries, min(k, len(index))) for index in (self._vectors, self._sealed_vectors)
                     if min(k, len(index)) > 0]
        if not parts:
            scores, ids = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        elif len(parts) == 1:
            scores, ids = parts[0]
        else:  # the best k of both, best first
            scores, ids = np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        return (scores[0], ids[0]) if single else (scores, ids)

    # ---- reads for ranking

    def note_paths(self) -> list[str]:
        return sorted(row[0] for row in self._rows("SELECT path FROM notes"))  # by the real paths, not pseudonyms

    def oldest_note_paths(self, limit: int) -> list[str]:
        """The paths of the `limit` notes indexed first: a sample of the vault that stays put while notes
        come and go (only the ones removed leave it)."""
        return [row[0] for row in self._rows("SELECT path FROM notes ORDER BY id LIMIT ?", (int(limit),))]

    def notes(self) -> list[StoredNote]:
        return sorted((_stored_note(row) for row in self._rows(f"SELECT {_NOTE_COLUMNS} FROM notes")),
                      key=lambda note: note.path)

    def last_indexed(self) -> float | None:
        return self._rows("SELECT max(indexed_at) FROM notes")[0][0]

    def vector_search(self) -> dict:
        """How vectors are searched: exactly, or in the nearest clusters of an inverted file."""
        with self._lock:
            index = self._vectors
            total = len(index) + len(self._sealed_vectors)
            if isinstance(index, IvfIndex):
                return {"exact": False, "clusters": index.lists, "probed": index.probes, "vectors": total}
            return {"exact": True, "vectors": total}

    def template_paths(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT path FROM notes WHERE is_template")}

    def note(self, path: str) -> StoredNote | None:
        rows = self._rows(f"SELECT {_NOTE_COLUMNS} FROM notes WHERE path = ?", (path,))
        return _stored_note(rows[0]) if rows else None

    def note_path_by_id(self, only: Iterable[str] | None = None) -> dict[int, str]:
        """To turn the note ids of `chunk_table()` into paths (of the notes `only`, when given)."""
        return dict(self._rows_where_in("SELECT id, path FROM notes", only))

    def chunk_hashes(self, path: str) -> tuple[str, ...]:
        """The hashes of a note's chunks in order: what its embedded text is, without the text."""
        return tuple(row[0] for row in self._rows(
            "SELECT chunks.hash FROM chunks JOIN notes ON notes.id = chunks.note_id WHERE notes.path = ?"
            " ORDER BY chunks.ordinal", (path,)))

    def chunks_of(self, path: str) -> list[StoredChunk]:
        return self._with_texts([_stored_chunk(row) for row in self._rows(
            f"{_CHUNK_SELECT} WHERE notes.path = ? ORDER BY chunks.ordinal", (path,))])

    def _with_texts(self, chunks: list[StoredChunk]) -> list[StoredChunk]:
        """Secure notes' chunks with their text read again from the note (the store keeps none): the
        chunk of the same hash in the note as it is now, or "" once the note has changed."""
        if not any(c.sealed for c in chunks):
            return chunks
        texts: dict[str, Mapping[str, str]] = {}
        filled = []
        for chunk in chunks:
            if chunk.sealed:
                if chunk.note_path not in texts:
                    texts[chunk.note_path] = self.text_source(chunk.note_path) if self.text_source else {}
                chunk = dataclasses.replace(chunk, text=texts[chunk.note_path].get(chunk.hash, ""))
            filled.append(chunk)
        return filled

    def chunks_for_vectors(self, vector_ids: Iterable[int]) -> list[StoredChunk]:
        """Every chunk that uses one of the vectors, in the order of `vector_ids`."""
        order = {int(v): i for i, v in reversed(list(enumerate(vector_ids)))}
        found: list[StoredChunk] = []
        # Driven from the vectors' primary key (the LEFT JOIN of _CHUNK_SELECT would scan every chunk).
        found = [_stored_chunk(r) for r in self._rows_where_in(
            f"SELECT {_CHUNK_COLUMNS} FROM vectors JOIN chunks ON chunks.hash = vectors.hash"
            " JOIN notes ON notes.id = chunks.note_id", order, column="vectors.id")]
        return self._with_texts(sorted(found, key=lambda c: (order[c.vector_id], c.note_path, c.ordinal)))

    @property
    def vectors_exact(self) -> bool:
        """Does search_vectors() scan every vector (small vaults) or the nearest clusters (large ones)?"""
        return self._vectors.exact

    def gather_vectors(self, vector_ids: Sequence[int] | np.ndarray, approximate: bool = False) -> np.ndarray:
        """The stored vectors of these ids (float32, row for row). `approximate`: an inverted file's own
        8-bit codes decoded instead (`IvfIndex.decoded`: a cosine within about 3e-3, a quarter of the
        time), for evidence the inverted file's search makes approximate anyway; exact everywhere else."""
        self._require_current_model()
        ids = np.asarray(vector_ids, dtype=np.int64)
        with self._lock:
            try:
                return self._gather(ids, approximate)
            except StoreError:
                # The database is the truth: a vector index that lost step with it is rebuilt from it
                # here, once, instead of stopping the daemon until a restart would do the same.
                log.warning("the vector index was out of step with the database; rebuilt it")
                self._vectors = self._rebuild_vectors()
                self._load_sealed_vectors()
                with self._transaction() as db:
                    self._bump_generation(db)  # saved by the next flush()
                return self._gather(ids, approximate)

    def _gather(self, ids: np.ndarray, approximate: bool = False) -> np.ndarray:
        plain = self._vectors.decoded if approximate and isinstance(self._vectors, IvfIndex) else self._vectors.gather
        if not self._sealed_ids:
            return plain(ids)
        secret = np.fromiter((int(i) in self._sealed_ids for i in ids), dtype=bool, count=len(ids))
        out = np.empty((len(ids), self.stored_dim), np.float32)
        out[secret] = self._sealed_vectors.gather(ids[secret])
        out[~secret] = plain(ids[~secret])
        return out

    def chunk_table(self, only: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ordinals, note_ids, vector_ids), int64, of every embedded chunk (of the notes `only`, when
        given), ordered by note path then position in the note. A chunk is named by (note, ordinal),
        which survives the note being indexed again unchanged (its chunk ids do not)."""
        self._require_current_model()
        select = ("SELECT chunks.ordinal, chunks.note_id, vectors.id FROM chunks"
                  " JOIN notes ON notes.id = chunks.note_id JOIN vectors ON vectors.hash = chunks.hash")
        if not self.unlocked:  # without the key, secure notes and sealed vectors are not there
            select += " WHERE notes.sealed = 0 AND vectors.sealed = 0"
        if only is None:
            with self._lock:  # read in slices: no list of a Python tuple per chunk
                cursor = self._db.execute(f"{select} ORDER BY notes.path, chunks.ordinal")
                parts = [np.array(rows, dtype=np.int64).reshape(-1, 3) for rows in iter(lambda: cursor.fetchmany(20_000), [])]
        else:
            parts = [np.array(self._rows_where_in(select, only, column="notes.path",
                                                  order=" ORDER BY notes.path, chunks.ordinal"), dtype=np.int64).reshape(-1, 3)]
        table = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    def note_means(self, batch: int = 5_000, only: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(paths, float32 (n, dim): each note's normalised mean chunk vector, the mean of every embedded
        chunk's vector), by path; notes without any embedded chunk are left out. Read from the database a
        batch of chunks at a time into one preallocated matrix: one row per note, nothing copied.
        `only`: just these notes (the chunk mean is then theirs)."""
        self._require_current_model()
        has_vectors = ("EXISTS (SELECT 1 FROM chunks JOIN vectors ON vectors.hash = chunks.hash"
                       " WHERE chunks.note_id = notes.id)")
        with self._lock:
            embedded = sorted(self._rows_where_in(f"SELECT id, path FROM notes WHERE {has_vectors}", only),
                              key=lambda row: row[1])
            chunks_sql = ("SELECT chunks.note_id, vectors.vector, vectors.sealed, vectors.id FROM chunks"
                          " JOIN vectors ON vectors.hash = chunks.hash")
            if not self.unlocked:
                chunks_sql += " WHERE vectors.sealed = 0"
            if only is not None:
                chunks_sql += (" AND" if not self.unlocked else " WHERE") + \
                    f" chunks.note_id IN ({','.join(str(int(note_id)) for note_id, _ in embedded)})"
            chunks_sql += " ORDER BY chunks.note_id, chunks.ordinal"
            if not embedded:
                return [], np.zeros((0, self.dim), np.float32), np.zeros(self.dim, np.float32)
            row_of = np.full(max(note_id for note_id, _ in embedded) + 1, -1, dtype=np.int64)
            row_of[[note_id for note_id, _ in embedded]] = np.arange(len(embedded))
            sums = np.zeros((len(embedded), self.dim), np.float32)
            counts = np.zeros(len(embedded), np.int64)
            # The (note_id, ordinal) index gives the chunks grouped by note without sorting blobs.
            cursor = self._db.execute(chunks_sql)
            while fetched := cursor.fetchmany(batch):
                note_ids, vectors = self._chunk_vectors(fetched)
                del fetched
                inside = note_ids < len(row_of)
                rows = np.where(inside, row_of[np.where(inside, note_ids, 0)], -1)
                keep = rows >= 0  # a note committed after the list above was read waits for the next load
                rows, vectors = rows[keep], vectors[keep]
                if not len(rows):
                    continue
                starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
                groups = rows[starts]
                sums[groups] += np.add.reduceat(vectors, starts, axis=0)
                counts[groups] += np.diff(np.r_[starts, len(rows)])
        present = counts > 0
        chunk_mean = (sums.sum(axis=0) / max(int(counts.sum()), 1)).astype(np.float32)  # sums before dividing
        sums /= np.maximum(counts, 1)[:, None]
        sums /= np.maximum(row_norms(sums), 1e-12)[:, None]
        paths = [path for _, path in embedded]
        if not present.all():  # chunks deleted in between: leave those notes out
            paths = [p for p, ok in zip(paths, present) if ok]
            sums = sums[present]
        return paths, sums, chunk_mean

    def _chunk_vectors(self, rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """(note ids, vectors) of (note_id, blob, sealed, vector_id) rows. A sealed vector is taken from the
        ones opened into memory when the store opened, not decrypted again; one that did not open (another
        key's, or altered) is left out, as a chunk not embedded: one damaged row costs its note that chunk."""
        kept = [row for row in rows if not row[2] or row[3] in self._sealed_ids]
        plain = [i for i, row in enumerate(kept) if not row[2]]
        sealed = [i for i, row in enumerate(kept) if row[2]]
        vectors = np.empty((len(kept), self.dim), np.float32)
        if plain:
            vectors[plain] = _decode_vectors([kept[i][1] for i in plain], self.dim)
        if sealed:
            vectors[sealed] = self._sealed_vectors.gather(np.array([kept[i][3] for i in sealed], dtype=np.int64))
        return np.fromiter((row[0] for row in kept), dtype=np.int64, count=len(kept)), vectors

    def term_signatures(self, only: Iterable[str] | None = None) -> dict[str, tuple[int, bytes]]:
        """path -> (content words, encoded term signature) of every note (or of `only`). Notes indexed
        before signatures were kept get theirs now, from their stored text (once: they are saved)."""
        # In path order, the ranking snapshot's order: it then needs no rearranged copy of them.
        rows = self._rows_where_in("SELECT notes.path, notes.id, notes.sealed, note_terms.words, note_terms.terms"
                                   " FROM notes LEFT JOIN note_terms ON note_terms.note_id = notes.id", only,
                                   column="notes.path", order=" ORDER BY notes.path")
        signatures, missing = {}, []
        for path, note_id, sealed, words, blob in rows:
            if blob is None:
                missing.append((path, note_id, sealed))
            else:
                signatures[path] = (words, blob)
        for batch in _batches(missing):
            made = []
            for path, note_id, sealed in batch:
                text = "" if sealed else "\n".join(t for (t,) in self._rows(
                    "SELECT text FROM chunks WHERE note_id = ? ORDER BY ordinal", (note_id,)))
                signatures[path] = terms.signature(text) if text else (0, b"")
                made.append((note_id, signatures[path]))
            with self._transaction() as db:
                for note_id, made_signature in made:
                    if _note_exists(db, note_id):
                        _save_signature(db, note_id, made_signature)
        return signatures

    def note_flags(self, only: Iterable[str] | None = None) -> dict[str, tuple[str, bool, bool, list[str]]]:
        """path -> (title, is_template, private, aliases) of every note (or of `only`): what ranking
        needs of notes."""
        rows = self._rows_where_in(
            "SELECT path, title, is_template, private,"
            " CASE WHEN instr(frontmatter_json, '\"alias') > 0 OR sealed THEN frontmatter_json ELSE '' END FROM notes", only)
        flags = {}
        for path, title, is_template, private, frontmatter_json in rows:
            aliases: list[str] = []
            if '"alias' in frontmatter_json:  # parse only the few notes that have aliases
                value = json.loads(frontmatter_json)
                value = value.get("aliases", value.get("alias", [])) if isinstance(value, dict) else []
                aliases = [value] if isinstance(value, str) else [str(v) for v in value] if isinstance(value, list) else []
            flags[path] = (title, bool(is_template), bool(private), aliases)
        return flags

    def chunk_at(self, path: str, ordinal: int) -> StoredChunk | None:
        rows = self._rows(f"{_CHUNK_SELECT} WHERE notes.path = ? AND chunks.ordinal = ?", (path, int(ordinal)))
        return self._with_texts([_stored_chunk(rows[0])])[0] if rows else None

    def chunks_by_id(self, chunk_ids: Iterable[int]) -> dict[int, StoredChunk]:
        rows = self._rows_where_in(_CHUNK_SELECT, {int(i) for i in chunk_ids}, column="chunks.id")
        return {chunk.id: chunk for chunk in self._with_texts([_stored_chunk(row) for row in rows])}

    def notes_at(self, paths: Iterable[str]) -> dict[str, StoredNote]:
        """The stored notes among `paths`, by path."""
        notes = (_stored_note(row) for row in self._rows_where_in(f"SELECT {_NOTE_COLUMNS} FROM notes", paths))
        return {note.path: note for note in notes}

    def fts_search(self, query: str, k: int, match_any: bool = False) -> list[FtsHit]:
        """Keyword search over chunk text, heading and note title, best first.

        Every word of `query` must match (any word when `match_any`); the query is
        taken as plain words, never as FTS5 syntax.
        """
        with self._lock:
            return _fts_search(self._db, query, k, match_any)

    def fts_searches(self, queries: Sequence[str], k: int, match_any: bool = False) -> list[Future]:
        """`fts_search` of each query, as futures run in order on the store's search thread, which reads
        through a connection of its own (WAL: it sees what was committed) and so runs while this one
        serves other calls. A keyword search is the costliest part of ranking a note on a small vault, and
        the daemon's start-up pass ranks notes one after another: the next ones' searches run meanwhile."""
        with self._lock:
            if self._closed:
                raise StoreError("the index is closed")
            if self._searcher is None:
                self._searcher = ThreadPoolExecutor(1, thread_name_prefix="ideaweave-search")
            return [self._searcher.submit(self._side_fts_search, q, k, match_any) for q in queries]

    def _side_fts_search(self, query: str, k: int, match_any: bool) -> list[FtsHit]:
        side = getattr(self._side, "connection", None)
        if side is None:
            raw = sqlite3.connect(self.database_path, check_same_thread=False)  # closed by `close()`
            raw.execute("PRAGMA query_only = 1")
            side = self._side.connection = _VeiledConnection(raw, self._veil)
            self._side_connections.append(side)
        return _fts_search(side, query, k, match_any)

    def each_link(self) -> Iterator[tuple[str, str]]:
        """links(), one at a time (a vault's links are many small strings: not all in a list at once).
        Holds the store's lock until the iteration ends."""
        with self._lock:
            cursor = self._db.execute(_RESOLVED_LINKS)
            while rows := cursor.fetchmany(5_000):
                yield from rows

    def links(self, only: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """(source_path, target_path) of every resolved link (from the notes `only`, when given),
        without duplicates."""
        return self._rows_where_in(_RESOLVED_LINKS, only, column="notes.path", order=" ORDER BY 1, 2")

    def link_targets(self) -> list[tuple[str, str]]:
        """(source_path, raw) of every link, as written (resolved or not)."""
        return self._rows("SELECT notes.path, links.raw FROM links JOIN notes ON notes.id = links.source_id")

    def outgoing_links(self, path: str) -> list[LinkRecord]:
        rows = self._rows(
            "SELECT raw, target_path, heading, kind FROM links JOIN notes ON notes.id = links.source_id"
            " WHERE notes.path = ? ORDER BY links.rowid", (path,))
        return [LinkRecord(*row) for row in rows]

    def totals(self) -> tuple[int, int]:
        """(notes, chunks): cheap, unlike counts()."""
        with self._lock:
            return (self._db.execute("SELECT count(*) FROM notes").fetchone()[0],
                    self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            count = {table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("notes", "chunks", "vectors", "skipped")}
            count["chunks_without_vectors"] = self._db.execute(
                "SELECT count(*) FROM chunks WHERE hash NOT IN (SELECT hash FROM vectors)").fetchone()[0]
        return count

    def size_on_disk(self) -> int:
        """Bytes used by the database (with its WAL) and the faiss file."""
        names = (DATABASE_NAME, DATABASE_NAME + "-wal", DATABASE_NAME + "-shm", VECTORS_NAME)
        return sum((self.state_dir / n).stat().st_size for n in names if (self.state_dir / n).exists())

    # ---- read by the benchmarks

    def distinct_chunk_texts(self) -> list[str]:
        """One text per distinct chunk (by content hash): what indexing the vault embeds, once each."""
        rows = self._rows("SELECT text FROM chunks WHERE id IN (SELECT min(id) FROM chunks GROUP BY hash)")
        return [text for (text,) in rows]

    # ---- skipped files

    def set_skipped(self, path: str, reason: str, size: int | None, mtime_ns: int | None) -> None:
        """Remember why a file was not indexed (a note indexed before stays until deleted)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO skipped (path, reason, size, mtime_ns) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, size = excluded.size,"
                " mtime_ns = excluded.mtime_ns",
                (path, self._sealed_if_hidden(path, reason), size, mtime_ns),
            )

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every skipped file, by path."""
        return self._rows("SELECT path, reason FROM skipped ORDER BY path")

    def skipped_stats(self) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of skipped files, so an unchanged one is not retried."""
        return {path: (size, mtime) for path, size, mtime in self._rows("SELECT path, size, mtime_ns FROM skipped")}

    # ---- what ideaweave wrote, and what the user said about it

    def record_written(self, path: str, checksum: str, values: Mapping[str, object]) -> None:
        """Remember the checksum of a file just written and the managed values in it."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO written (path, checksum, values_json, written_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET checksum = excluded.checksum,"
                " values_json = excluded.values_json, written_at = excluded.written_at",
                (path, checksum, self._sealed_if_hidden(path, _to_json(values)), time.time()),
            )

    def update_written_values(self, path: str, values: Mapping[str, object]) -> None:
        """Change what is remembered as written into a note, without a new write (same checksum)."""
        with self._transaction() as db:
            db.execute("UPDATE written SET values_json = ? WHERE path = ?",
                       (self._sealed_if_hidden(path, _to_json(values)), path))

    def last_written(self, path: str) -> WrittenRecord | None:
        rows = self._rows("SELECT path, checksum, values_json, written_at FROM written WHERE path = ?", (path,))
        return _written(rows[0]) if rows else None

    def all_written(self) -> dict[str, WrittenRecord]:
        rows = self._rows("SELECT path, checksum, values_json, written_at FROM written")
        return {row[0]: _written(row) for row in rows}

    def each_written(self, page: int = 2_000) -> Iterator[WrittenRecord]:
        """Every remembered write, read a page of rows at a time: what a pass over them all needs without
        `all_written`'s dictionary, which holds some 200 MB of parsed values at 100,000 written notes.
        Pages are ranges of rowid (a row the veil hides cannot end a page); a write recorded meanwhile
        may be seen or not."""
        last = self._rows("SELECT max(rowid) FROM written")[0][0] or 0
        for low in range(0, last, page):
            for row in self._rows("SELECT path, checksum, values_json, written_at FROM written"
                                  " WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (low, low + page)):
                yield _written(row)

    def written_checksums(self) -> dict[str, str]:
        """path -> checksum of every remembered write (the values are not read)."""
        return dict(self._rows("SELECT path, checksum FROM written"))

    def set_feedback(self, note_path: str, target_path: str, action: str) -> None:
        """Record that the user rejected or pinned `target_path` as related to `note_path`."""
        if action not in FEEDBACK_ACTIONS:
            raise ValueError(f"feedback action must be one of {FEEDBACK_ACTIONS}, not {action!r}")
        with self._transaction() as db:
            db.execute(
                "INSERT INTO feedback (note_path, target_path, action, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(note_path, target_path) DO UPDATE SET action = excluded.action, at = excluded.at",
                (note_path, target_path, action, time.time()),
            )

    def clear_feedback(self, note_path: str, target_path: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM feedback WHERE note_path = ? AND target_path = ?", (note_path, target_path))
            return cursor.rowcount > 0

    def feedback_for(self, note_path: str) -> dict[str, str]:
        """{target_path: action} for one note."""
        return dict(self._rows("SELECT target_path, action FROM feedback WHERE note_path = ?", (note_path,)))

    # ------------------------------------------------------------ settings derived from the vault

    def get_setting(self, key: str) -> str | None:
        """A value other parts derive from the vault and keep here (e.g. calibrated weights)."""
        # One row, not the whole table: the scanner asks for the hub notes' record once per file event.
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (f"derived.{key}",))
        return rows[0][0] if rows else None

    def put_setting(self, key: str, value: str) -> None:
        with self._transaction() as db:
            self._set_meta(db, **{f"derived.{key}": value})

    # ------------------------------------------------------------ summaries and write issues

    def cached_summary(self, content_hash: str, mode: str) -> tuple[bool, str | None]:
        """(found, summary): a cached None means "too short to summarise", not "unknown"."""
        rows = self._rows("SELECT summary FROM summaries WHERE content_hash = ? AND mode = ?", (content_hash, mode))
        return (True, rows[0][0]) if rows else (False, None)

    def cache_summary(self, content_hash: str, mode: str, summary: str | None, sealed: bool = False) -> None:
        """Cache a summary; `sealed` (a secure note's): only sealed, or not at all without the key."""
        if sealed and summary is not None:
            if self._veil.sealer is None:
                return
            summary = self._seal_text(summary)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO summaries (content_hash, mode, summary) VALUES (?, ?, ?)",
                       (content_hash, mode, summary))

    def seal_cached_summary(self, content_hash: str, mode: str) -> None:
        """A summary cached in the clear before its note was kept sealed (the note became secure, or
        index.encrypt changed) is sealed now; the pages that held it are scrubbed at the next flush."""
        with self._lock:
            row = self._raw.execute("SELECT summary FROM summaries WHERE content_hash = ? AND mode = ?",
                                    (content_hash, mode)).fetchone()
        if row is None or row[0] is None or row[0].startswith(SEALED_PREFIX) or self._veil.sealer is None:
            return
        with self._transaction() as db:
            db.execute("UPDATE summaries SET summary = ? WHERE content_hash = ? AND mode = ?",
                       (self._seal_text(row[0]), content_hash, mode))
        self._scrub = True

    def _sealed_if_hidden(self, path: str, text: str) -> str:
        return self._seal_text(text) if path in self._veil.hidden else text

    def set_write_issue(self, path: str, reason: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO write_issues (path, reason, at) VALUES (?, ?, ?)",
                       (path, self._sealed_if_hidden(path, reason), time.time()))

    def clear_write_issue(self, path: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM write_issues WHERE path = ?", (path,))

    def write_issues(self) -> list[tuple[str, str]]:
        return self._rows("SELECT path, reason FROM write_issues ORDER BY path")

    # ------------------------------------------------------------ what went wrong with one note

    def record_problem(self, path: str, stage: str, reason: str, size: int | None = None,
                       mtime_ns: int | None = None) -> None:
        """Remember that `stage` failed (or warned) for the note at `path` as it is now."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO note_problems (path, stage, reason, size, mtime_ns, at)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (path, stage, self._sealed_if_hidden(path, reason), size, mtime_ns, time.time()))

    def problems(self, stages: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
        """(path, stage, reason) of the notes' recorded problems (of `stages`, when given), by path."""
        rows = self._rows_where_in("SELECT path, stage, reason FROM note_problems", stages, column="stage",
                                   order=" ORDER BY path, stage")
        return sorted(rows)

    def problem_stats(self, stages: Iterable[str]) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of the files that failed at one of `stages`: an unchanged one is not retried."""
        rows = self._rows_where_in("SELECT path, size, mtime_ns FROM note_problems", list(stages), column="stage")
        return {path: (size, mtime) for path, size, mtime in rows}

    # ------------------------------------------------------------ one keyword search beside other work

    def fts_search_async(self, query: str, k: int, else_any: bool = False) -> Future:
        """`fts_search` of `query` as a future, run on the store's search thread (`fts_searches`) while the
        caller does other work (search embeds its query meanwhile). `else_any`: when no section matches
        every word, the sections that match any."""
        def every_word_else_any() -> list[FtsHit]:
            hits = self._side_fts_search(query, k, False)
            return hits if hits or not else_any else self._side_fts_search(query, k, True)

        with self._lock:
            if self._closed:
                raise StoreError("the index is closed")
            if self._searcher is None:
                self._searcher = ThreadPoolExecutor(1, thread_name_prefix="ideaweave-search")
            return self._searcher.submit(every_word_else_any)


# ---------------------------------------------------------------- pure helpers


def stored_model_id(state_dir: Path) -> str | None:
    """The model an existing index was built with, read without opening the store (which needs the
    embedder, whose model file depends on it); None when there is no index yet."""
    database = Path(state_dir) / DATABASE_NAME
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'model_id'").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _fts_search(db, query: str, k: int, match_any: bool) -> list[FtsHit]:
    expression = fts_query(query, match_any)
    if expression is None or k <= 0:
        return []
    weights = ", ".join(str(w) for w in FTS_WEIGHTS)
    # The best k first, then their notes: joined before the limit, every matching section was looked
    # up in chunks and notes, which doubled the time of a query whose words are common.
    rows = db.execute(
        f"SELECT hit.id, notes.path, hit.rank FROM (SELECT rowid AS id, bm25(chunk_search, {weights}) AS rank"
        " FROM chunk_search WHERE chunk_search MATCH ? ORDER BY rank LIMIT ?) AS hit"
        " JOIN chunks ON chunks.id = hit.id JOIN notes ON notes.id = chunks.note_id ORDER BY hit.rank, hit.id",
        (expression, k),
    ).fetchall()
    return [FtsHit(chunk_id, path, -rank) for chunk_id, path, rank in rows]


def fts_query(text: str, match_any: bool = False) -> str | None:
    """An FTS5 expression matching the words of `text`, or None if it has none.

    Each word is quoted, so `AND`, `(`, `*`, `:` and stray quotes are searched as
    text instead of being parsed as FTS5 syntax.
    """
    # SQLite ends a string at NUL, which would leave a quote open.
    words = [w for w in text.replace("\x00", " ").split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    return (" OR " if match_any else " ").join(quoted)


def _decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(blobs), dim).astype(np.float32)


def _batches(items: Sequence, size: int = _BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _to_json(value: object) -> str:
    # Frontmatter may hold YAML dates; str() keeps them readable. Keys are strings already (the vault
    # reads properties as Obsidian does), but stored values must never depend on that: keys of mixed
    # types are written as strings, in a stable order.
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return json.dumps(_string_keys(value), ensure_ascii=False, sort_keys=True, default=str)


def _string_keys(value: object, seen: frozenset[int] = frozenset()) -> object:
    """`value` with every mapping key a string; a container inside itself becomes null."""
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return None
        seen = seen | {id(value)}
        if isinstance(value, dict):
            return {str(k): _string_keys(v, seen) for k, v in value.items()}
        return [_string_keys(v, seen) for v in value]
    return value


# ---------------------------------------------------------------- SQL helpers

_NOTE_COLUMNS = "id, path, title, size, mtime_ns, content_hash, is_template, private, indexed_at, frontmatter_json"

_CHUNK_COLUMNS = ("chunks.id, notes.path, chunks.ordinal, chunks.heading, chunks.heading_path_json,"
                  " chunks.start_offset, chunks.end_offset, chunks.hash, chunks.text, vectors.id, notes.sealed")
_CHUNK_SELECT = (f"SELECT {_CHUNK_COLUMNS} FROM chunks JOIN notes ON notes.id = chunks.note_id"
                 " LEFT JOIN vectors ON vectors.hash = chunks.hash")
_RESOLVED_LINKS = ("SELECT DISTINCT notes.path, links.target_path FROM links JOIN notes ON notes.id = links.source_id"
                   " WHERE links.target_path IS NOT NULL")


def _stored_note(row: tuple) -> StoredNote:
    *head, is_template, private, indexed_at, frontmatter_json = row
    return StoredNote(*head, bool(is_template), bool(private), indexed_at, json.loads(frontmatter_json))


def _stored_chunk(row: tuple) -> StoredChunk:
    chunk_id, path, ordinal, heading, heading_path_json, start, end, chunk_hash, text, vector_id, sealed = row
    return StoredChunk(id=chunk_id, note_path=path, ordinal=ordinal, heading=heading,
                       heading_path=tuple(json.loads(heading_path_json)), start=start, end=end, hash=chunk_hash,
                       text=text, vector_id=vector_id, sealed=bool(sealed))


def _written(row: tuple) -> WrittenRecord:
    path, checksum, values_json, written_at = row
    return WrittenRecord(path, checksum, json.loads(values_json), written_at)


def _note_id(db: sqlite3.Connection, path: str) -> int | None:
    row = db.execute("SELECT id FROM notes WHERE path = ?", (path,)).fetchone()
    return row[0] if row else None


def _same(text: str) -> str:
    return text


def _upsert_note(db: sqlite3.Connection, note: NoteRecord, seal: Callable[[str], str] = _same,
                 sealed: bool = False) -> int:
    return db.execute(
        "INSERT INTO notes (path, title, size, mtime_ns, content_hash, is_template, private, indexed_at,"
        " frontmatter_json, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(path) DO UPDATE SET title = excluded.title, size = excluded.size,"
        " mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, is_template = excluded.is_template,"
        " private = excluded.private, indexed_at = excluded.indexed_at, frontmatter_json = excluded.frontmatter_json,"
        " sealed = excluded.sealed RETURNING id",
        (note.path, seal(note.title), note.size, note.mtime_ns, note.content_hash, int(note.is_template),
         int(note.private), time.time(), seal(_to_json(dict(note.frontmatter))), int(sealed)),
    ).fetchone()[0]


def _save_signature(db: sqlite3.Connection, note_id: int, made: tuple[int, bytes]) -> None:
    db.execute("INSERT OR REPLACE INTO note_terms (note_id, words, terms) VALUES (?, ?, ?)", (note_id, made[0], made[1]))


def _note_exists(db: sqlite3.Connection, note_id: int) -> bool:
    return db.execute("SELECT 1 FROM notes WHERE id = ?", (note_id,)).fetchone() is not None


def _insert_links(db: sqlite3.Connection, note_id: int, links: Sequence[LinkRecord],
                  seal: Callable[[str], str] = _same) -> None:
    # A secure note's link texts are its words: sealed. Where they point (another note's path) is not.
    db.executemany(
        "INSERT INTO links (source_id, target_path, raw, heading, kind) VALUES (?, ?, ?, ?, ?)",
        [(note_id, link.target_path, seal(link.raw), seal(link.heading) if link.heading else link.heading, link.kind)
         for link in links],
    )


def _index_chunks(db: sqlite3.Connection, note_id: int) -> None:
    # Secure notes are never in the keyword index (its words would be their plaintext).
    db.execute(
        "INSERT INTO chunk_search (rowid, title, heading, text)"
        " SELECT chunks.id, notes.title, chunks.heading, chunks.text"
        " FROM chunks JOIN notes ON notes.id = chunks.note_id WHERE chunks.note_id = ? AND notes.sealed = 0",
        (note_id,),
    )


def _unindex_chunks(db: sqlite3.Connection, note_id: int) -> None:
    # External-content FTS5 forgets a row only when given the exact values it indexed,
    # so this must run while the chunks and the note's old title still exist.
    db.execute(
        "INSERT INTO chunk_search (chunk_search, rowid, title, heading, text)"
        " SELECT 'delete', chunks.id, notes.title, chunks.heading, chunks.text"
        " FROM chunks JOIN notes ON notes.id = chunks.note_id WHERE chunks.note_id = ? AND notes.sealed = 0",
        (note_id,),
    )


def _chunk_hashes(db: sqlite3.Connection, note_id: int) -> list[str]:
    """The note's chunk hashes, in the order of its sections."""
    return [row[0] for row in db.execute("SELECT hash FROM chunks WHERE note_id = ? ORDER BY ordinal", (note_id,))]


def _delete_note(db: sqlite3.Connection, note_id: int) -> None:
    _unindex_chunks(db, note_id)
    db.execute("DELETE FROM notes WHERE id = ?", (note_id,))  # cascades to chunks, links, tags


# ---------------------------------------------------------------- secure notes' paths and sealed cells

# Every column that holds a note's path: a secure note's path is its pseudonym in each.
_PATH_COLUMNS = (("notes", "path"), ("links", "target_path"), ("written", "path"), ("write_issues", "path"),
                 ("note_problems", "path"), ("skipped", "path"), ("feedback", "note_path"), ("feedback", "target_path"))
_MARK = "\x1e"  # what both HIDDEN_PREFIX and SEALED_PREFIX start with


class _Veil:
    """Between callers and the database: paths of secure notes go in as their pseudonyms and come out
    as paths again; sealed cells come out opened. Without the key, a row holding a pseudonym or a
    sealed cell is not there at all (a secure note is then as if never indexed)."""

    def __init__(self) -> None:
        self.hidden: dict[str, str] = {}  # path -> pseudonym
        self.shown: dict[str, str] = {}  # pseudonym -> path
        self.sealer: Sealer | None = None
        self.locked_rows = False  # the database holds secure notes this process cannot open

    @property
    def active(self) -> bool:
        return bool(self.hidden) or self.locked_rows

    def add(self, path: str, pseudonym: str) -> None:
        self.hidden[path], self.shown[pseudonym] = pseudonym, path

    def remove(self, path: str) -> None:
        self.shown.pop(self.hidden.pop(path, ""), None)

    def params(self, params: Sequence[object] | Mapping) -> Sequence[object] | Mapping:
        if isinstance(params, Mapping):
            return params
        hidden = self.hidden
        return tuple(hidden.get(p, p) if type(p) is str else p for p in params)

    def row(self, row: tuple) -> tuple | None:
        if not any(type(v) is str and v[:1] == _MARK for v in row):
            return row
        out = []
        for value in row:
            if type(value) is str and value[:1] == _MARK:
                if value.startswith(HIDDEN_PREFIX):
                    value = self.shown.get(value)
                    if value is None:
                        return None
                elif value.startswith(SEALED_PREFIX):
                    if self.sealer is None:
                        return None
                    try:
                        value = self.sealer.open_text(value)
                    except SealingError:
                        return None
            out.append(value)
        return tuple(out)


class _VeiledCursor:
    def __init__(self, cursor: sqlite3.Cursor, veil: _Veil) -> None:
        self._cursor, self._veil = cursor, veil

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> tuple | None:
        while (row := self._cursor.fetchone()) is not None:
            if (row := self._veil.row(row)) is not None:
                return row
        return None

    def fetchall(self) -> list[tuple]:
        return [r for r in map(self._veil.row, self._cursor.fetchall()) if r is not None]

    def fetchmany(self, size: int) -> list[tuple]:
        while rows := self._cursor.fetchmany(size):
            shown = [r for r in map(self._veil.row, rows) if r is not None]
            if shown:
                return shown
        return []

    def __iter__(self) -> Iterator[tuple]:
        return (r for r in map(self._veil.row, self._cursor) if r is not None)


class _VeiledConnection:
    """The store's connection, seen through its veil (a plain connection while there is nothing to hide)."""

    def __init__(self, connection: sqlite3.Connection, veil: _Veil) -> None:
        self._connection, self._veil = connection, veil

    def execute(self, sql: str, params: Sequence[object] = ()):
        if not self._veil.active:
            return self._connection.execute(sql, params)
        return _VeiledCursor(self._connection.execute(sql, self._veil.params(params)), self._veil)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]):
        if self._veil.active:
            rows = [self._veil.params(r) for r in rows]
        return self._connection.executemany(sql, rows)

    def close(self) -> None:
        self._connection.close()


# ---------------------------------------------------------------- files


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask, and the folder may predate us


def _make_private_file(path: Path) -> None:
    # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
