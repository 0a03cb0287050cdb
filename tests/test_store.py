"""Tests for ideaweave.store against real SQLite and real faiss in tmp_path."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ideaweave
from ideaweave import vectors
from ideaweave.errors import StoreError
from ideaweave.store import ChunkRecord, LinkRecord, NoteRecord, Store, fts_query

DIM = 8
MODEL = "test-model"


# ---------------------------------------------------------------- fixtures


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk(ordinal: int, text: str, heading: str = "", chunk_hash: str | None = None) -> ChunkRecord:
    return ChunkRecord(ordinal, heading, (heading,) if heading else (), ordinal * 100, ordinal * 100 + len(text),
                       chunk_hash or f"h:{text}", text)


def note(path: str, title: str | None = None, content_hash: str = "c0", **extra: object) -> NoteRecord:
    return NoteRecord(path, title or Path(path).stem, 100, 1_000, content_hash, **extra)


def add_note(store: Store, path: str, texts: list[str], title: str | None = None,
             links: list[LinkRecord] | None = None, tags: list[str] | None = None) -> list[ChunkRecord]:
    chunks = [chunk(i, text) for i, text in enumerate(texts)]
    store.replace_note(note(path, title), chunks, links or [], tags or [])
    return chunks


def embed(store: Store, chunks: list[ChunkRecord], seed: int) -> dict[str, np.ndarray]:
    """Give each missing chunk hash a random vector; returns hash -> vector as stored."""
    missing = sorted(store.missing_vectors(c.hash for c in chunks))
    vectors = unit_vectors(len(missing), seed)
    store.add_vectors(missing, vectors)
    return {h: v.astype(np.float16).astype(np.float32) for h, v in zip(missing, vectors)}


def fts_is_consistent(store: Store) -> bool:
    """FTS5's own check that the keyword index matches the chunks it indexes."""
    connection = sqlite3.connect(store.database_path)
    try:
        connection.execute("INSERT INTO chunk_search(chunk_search, rank) VALUES ('integrity-check', 1)")
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        connection.close()


def faiss_ids(store: Store) -> set[int]:
    return {int(i) for i in store._vectors.ids()}


def table_ids(store: Store) -> set[int]:
    connection = sqlite3.connect(store.database_path)
    try:
        return {row[0] for row in connection.execute("SELECT id FROM vectors")}
    finally:
        connection.close()


def stored_tags(store: Store) -> list[tuple[str, str]]:
    """(path, tag) of every tagged note, read from the database itself."""
    connection = sqlite3.connect(store.database_path)
    try:
        return connection.execute(
            "SELECT notes.path, tag FROM tags JOIN notes ON notes.id = tags.note_id ORDER BY 1, 2").fetchall()
    finally:
        connection.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "vault-1"


@pytest.fixture
def store(state_dir: Path):
    opened = Store.open(state_dir, DIM, MODEL)
    yield opened
    opened.close()


# ---------------------------------------------------------------- files


def test_state_folder_is_0700_and_files_are_0600_even_with_a_permissive_umask(state_dir: Path):
    previous = os.umask(0)
    try:
        with Store.open(state_dir, DIM, MODEL) as opened:
            embed(opened, add_note(opened, "a.md", ["some words"]), seed=1)
            opened.flush()
            names = {p.name for p in state_dir.iterdir()}
            assert {"index.sqlite3", "vectors.faiss"} <= names
            for name in names:  # includes the -wal and -shm files while open
                assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    finally:
        os.umask(previous)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_an_existing_open_state_folder_and_database_are_made_private(state_dir: Path):
    Store.open(state_dir, DIM, MODEL).close()
    os.chmod(state_dir, 0o755)
    os.chmod(state_dir / "index.sqlite3", 0o644)
    Store.open(state_dir, DIM, MODEL).close()
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "index.sqlite3").stat().st_mode) == 0o600


# ---------------------------------------------------------------- model changes


def test_a_different_model_is_reported_and_vectors_wait_for_a_reset(state_dir: Path):
    with Store.open(state_dir, DIM, MODEL) as first:
        chunks = add_note(first, "a.md", ["alpha text", "beta text"])
        embed(first, chunks, seed=1)
    with Store.open(state_dir, DIM * 2, "other-model") as changed:
        assert changed.model_changed
        assert (changed.stored_model_id, changed.stored_dim) == (MODEL, DIM)
        with pytest.raises(StoreError, match="ideaweave index --rebuild"):
            changed.search_vectors(np.ones(DIM * 2, np.float32), 3)
        with pytest.raises(StoreError):
            changed.missing_vectors(["h:alpha text"])
        assert changed.note_paths() == ["a.md"]  # everything but vectors still works
        assert changed.counts()["vectors"] == 2  # opening did not destroy anything
        changed.reset_vectors()
        assert not changed.model_changed
        assert changed.missing_vectors(c.hash for c in chunks) == {c.hash for c in chunks}
        changed.add_vectors([c.hash for c in chunks], np.ones((2, DIM * 2), np.float32))
    with Store.open(state_dir, DIM * 2, "other-model") as reopened:
        assert not reopened.model_changed and not reopened.vectors_rebuilt
        assert reopened.search_vectors(np.ones(DIM * 2, np.float32), 5)[1].shape == (2,)


# ---------------------------------------------------------------- notes, chunks, vectors


def test_replace_note_swaps_chunks_links_tags_and_keyword_index(store: Store):
    old_chunks = add_note(store, "a.md", ["photosynthesis in leaves", "chlorophyll"],
                          links=[LinkRecord("[[b]]", "b.md")], tags=["biology"])
    embed(store, old_chunks, seed=1)
    new_chunks = add_note(store, "a.md", ["corrigibility and shutdown"],
                          links=[LinkRecord("[[c]]", "c.md"), LinkRecord("[[nowhere]]", None)], tags=["safety", "ai"])
    assert [c.text for c in store.chunks_of("a.md")] == ["corrigibility and shutdown"]
    assert store.links() == [("a.md", "c.md")]
    assert [(link.raw, link.target_path) for link in store.outgoing_links("a.md")] == [
        ("[[c]]", "c.md"), ("[[nowhere]]", None)]  # the unresolved link is kept too
    assert stored_tags(store) == [("a.md", "ai"), ("a.md", "safety")]
    assert store.fts_search("photosynthesis", 5) == []
    assert [h.note_path for h in store.fts_search("shutdown", 5)] == ["a.md"]
    assert fts_is_consistent(store)
    # Old vectors stay until gc; the new chunk has none yet.
    assert store.counts()["vectors"] == 2
    assert store.missing_vectors(c.hash for c in new_chunks) == {new_chunks[0].hash}
    assert store.gc_vectors() == 2
    assert faiss_ids(store) == table_ids(store) == set()


def test_replace_note_is_one_transaction(store: Store):
    add_note(store, "a.md", ["original words"], tags=["kept"])
    duplicate_ordinals = [chunk(0, "first replacement"), chunk(0, "second replacement")]
    with pytest.raises(StoreError):
        store.replace_note(note("a.md", "New title"), duplicate_ordinals, [], ["lost"])
    assert [c.text for c in store.chunks_of("a.md")] == ["original words"]
    assert stored_tags(store) == [("a.md", "kept")]
    assert store.note("a.md").title == "a"
    assert fts_is_consistent(store)


def test_replace_note_clears_a_skipped_entry(store: Store):
    store.set_skipped("a.md", "not UTF-8", 10, 5)
    assert store.skipped() == [("a.md", "not UTF-8")]
    add_note(store, "a.md", ["now readable"])
    assert store.skipped() == []


def test_rename_keeps_chunks_and_vector_ids_and_moves_what_follows_the_note(store: Store):
    chunks = add_note(store, "old/a.md", ["the shutdown problem", "utility indifference"], title="Old title")
    embed(store, chunks, seed=3)
    add_note(store, "b.md", ["points at a"], links=[LinkRecord("[[a]]", "old/a.md")])
    store.record_written("old/a.md", "sum1", {"related": ["[[b]]"]})
    store.set_feedback("old/a.md", "b.md", "rejected")
    store.set_feedback("b.md", "old/a.md", "pinned")
    before = [(c.text, c.vector_id) for c in store.chunks_of("old/a.md")]

    assert store.rename_note("old/a.md", "new/a.md", title="New title")

    assert store.note_paths() == ["b.md", "new/a.md"]
    assert [(c.text, c.vector_id) for c in store.chunks_of("new/a.md")] == before
    assert store.missing_vectors(c.hash for c in chunks) == set()
    assert [h.note_path for h in store.fts_search("new title", 5)] == ["new/a.md", "new/a.md"]
    assert store.fts_search("old title", 5) == []
    assert fts_is_consistent(store)
    assert store.last_written("new/a.md").checksum == "sum1" and store.last_written("old/a.md") is None
    assert store.feedback_for("new/a.md") == {"b.md": "rejected"}
    assert store.feedback_for("b.md") == {"new/a.md": "pinned"}
    # Incoming links are for the caller to re-resolve.
    assert store.links() == [("b.md", "old/a.md")]
    assert store.gc_vectors() == 0
    assert not store.rename_note("missing.md", "x.md")


def test_rename_onto_an_indexed_note_replaces_it(store: Store):
    add_note(store, "a.md", ["moving note"])
    add_note(store, "b.md", ["overwritten note"])
    assert store.rename_note("a.md", "b.md")
    assert [c.text for c in store.chunks_of("b.md")] == ["moving note"]
    assert store.fts_search("overwritten", 5) == []
    assert fts_is_consistent(store)


def test_a_targeted_gc_collects_only_what_this_store_replaced(store: Store):
    shared = chunk(0, "a sentence both notes contain")
    store.replace_note(note("a.md"), [shared, chunk(1, "first version")], [], [])
    store.replace_note(note("b.md"), [shared, chunk(1, "b alone")], [], [])
    embed(store, [shared, chunk(1, "first version"), chunk(1, "b alone")], seed=4)
    store.gc_vectors()  # a clean start: nothing pending
    store.replace_note(note("a.md", content_hash="c1"), [shared, chunk(1, "second version")], [], [])
    embed(store, [chunk(1, "second version")], seed=5)
    # Another process (or a crash) orphaned b's own vector behind this store's back.
    with sqlite3.connect(store.database_path) as other:
        other.execute("DELETE FROM chunks WHERE text = 'b alone'")
    assert store.gc_vectors(everything=False) == 1  # "first version": the shared one is still used
    assert store.gc_vectors(everything=False) == 0  # nothing left that this store replaced
    assert store.gc_vectors() == 1  # the full collection finds the rest
    assert faiss_ids(store) == table_ids(store) and len(table_ids(store)) == 2


def test_a_save_can_wait_and_a_crash_before_it_loses_nothing(state_dir: Path):
    opened, stored = big_store(state_dir, 3)
    opened.flush()
    more = add_note(opened, "late.md", ["arrives after the save"])
    stored.update(embed(opened, more, seed=7))
    opened.flush(min_interval=60.0)  # saved a moment ago: not again yet
    opened._db.close()  # the process dies here, before any later save
    with Store.open(state_dir, DIM, MODEL) as healed:
        assert healed.vectors_rebuilt and faiss_ids(healed) == table_ids(healed)
        scores, ids = healed.search_vectors(stored[more[0].hash], 1)
        assert [c.note_path for c in healed.chunks_for_vectors(ids)] == ["late.md"]


def test_delete_then_gc_removes_vectors_from_faiss_but_keeps_shared_ones(store: Store):
    shared = chunk(0, "a sentence both notes contain")
    store.replace_note(note("a.md"), [shared, chunk(1, "only in a")], [], [])
    store.replace_note(note("b.md"), [shared], [], [])
    embed(store, [shared, chunk(1, "only in a")], seed=4)
    store.record_written("a.md", "sum", {})
    assert store.counts()["vectors"] == 2

    assert store.delete_notes(["a.md", "never-indexed.md"]) == 1
    assert store.counts()["vectors"] == 2  # until gc, a re-appearing note re-embeds nothing
    assert store.gc_vectors() == 1
    assert faiss_ids(store) == table_ids(store)
    assert len(faiss_ids(store)) == 1
    scores, ids = store.search_vectors(unit_vectors(1, 99)[0], 10)
    assert [c.note_path for c in store.chunks_for_vectors(ids)] == ["b.md"]
    assert store.last_written("a.md") is None
    assert store.fts_search("only", 5) == []
    assert fts_is_consistent(store)


def test_touch_note_updates_stats_only(store: Store):
    add_note(store, "a.md", ["text"])
    assert store.touch_note("a.md", 555, 777)
    assert store.note_stats()["a.md"] == (555, 777, "c0")
    assert not store.touch_note("missing.md", 1, 1)


def test_search_vectors_finds_the_chunk_of_a_known_vector(store: Store):
    texts = [f"passage number {i}" for i in range(40)]
    chunks = add_note(store, "many.md", texts[:20]) + add_note(store, "more.md", texts[20:])
    stored = embed(store, chunks, seed=5)
    for c in chunks[::7]:
        scores, ids = store.search_vectors(stored[c.hash], 3)
        assert scores.shape == ids.shape == (3,)
        assert scores[0] == pytest.approx(1.0, abs=1e-3) and scores[0] >= scores[1]
        assert [x.text for x in store.chunks_for_vectors(ids[:1])] == [c.text]
    batch = np.stack([stored[c.hash] for c in chunks[:4]])
    scores, ids = store.search_vectors(batch * 5.0, 100)  # length does not matter: cosine
    assert ids.shape == (4, 40)
    assert [store.chunks_for_vectors(row[:1])[0].text for row in ids] == texts[:4]


def test_search_on_an_empty_store_returns_nothing(store: Store):
    scores, ids = store.search_vectors(np.ones(DIM, np.float32), 5)
    assert scores.shape == ids.shape == (0,)


def test_add_vectors_skips_known_hashes_and_checks_shape(store: Store):
    assert store.add_vectors(["x", "y"], unit_vectors(2, 1)) == 2
    assert store.add_vectors(["x", "z"], unit_vectors(2, 2)) == 1
    assert store.counts()["vectors"] == 3
    with pytest.raises(ValueError):
        store.add_vectors(["w"], np.ones((1, DIM + 1), np.float32))


def test_note_means_are_normalised_means_of_chunk_vectors(store: Store):
    a = add_note(store, "a.md", ["one", "two", "three"])
    b = add_note(store, "b.md", ["four"])
    add_note(store, "unembedded.md", ["five"])
    stored = {**embed(store, a, seed=6), **embed(store, b, seed=7)}
    paths, matrix, chunk_mean = store.note_means()
    assert paths == ["a.md", "b.md"]
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    mean = np.mean([stored[c.hash] for c in a], axis=0)
    np.testing.assert_allclose(matrix[0], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunk_mean, np.mean([stored[c.hash] for c in a + b], axis=0), rtol=1e-5, atol=1e-6)

    ordinals, note_ids, vector_ids = store.chunk_table()
    assert ordinals.tolist() == [0, 1, 2, 0] and note_ids.dtype == vector_ids.dtype == np.int64
    id_to_path = store.note_path_by_id()
    assert [id_to_path[int(i)] for i in note_ids] == ["a.md"] * 3 + ["b.md"]
    np.testing.assert_array_equal(store.gather_vectors(vector_ids)[3], stored[b[0].hash])


# ---------------------------------------------------------------- keyword search


def test_fts_finds_words_stems_titles_and_headings(store: Store):
    store.replace_note(note("ai/elk.md", "Eliciting Latent Knowledge"), [
        chunk(0, "The reporter must answer honestly about the predictor.", heading="Setup"),
        chunk(1, "Counterexamples keep running into the human simulator.", heading="Counterexamples"),
    ], [], [])
    add_note(store, "cooking.md", ["Knead the dough and let it rise."])
    assert [h.note_path for h in store.fts_search("dough", 5)] == ["cooking.md"]
    assert {h.note_path for h in store.fts_search("latent", 5)} == {"ai/elk.md"}  # title
    hits = store.fts_search("runs simulator", 5)  # porter: runs ~ running
    assert [store.chunks_of("ai/elk.md")[1].id] == [h.chunk_id for h in hits]
    assert store.fts_search("setup", 1)[0].chunk_id == store.chunks_of("ai/elk.md")[0].id  # heading
    assert store.fts_search("dough predictor", 5) == []
    assert {h.note_path for h in store.fts_search("dough predictor", 5, match_any=True)} == {"cooking.md", "ai/elk.md"}
    scores = [h.score for h in store.fts_search("the", 10)]
    assert scores == sorted(scores, reverse=True)


def test_fts_searches_on_the_search_thread_equal_fts_search_and_see_every_commit(state_dir: Path):
    store = Store.open(state_dir, DIM, MODEL)
    add_note(store, "cooking.md", ["Knead the dough and let it rise.", "Bake the bread hot."])
    add_note(store, "garden.md", ["Sow the seeds; the dough of the soil.", "Water the bread of the earth."])
    queries = ["dough bread", "seeds", "nothing here", "", "the"]
    futures = store.fts_searches(queries, 5, match_any=True)
    assert [f.result() for f in futures] == [store.fts_search(q, 5, match_any=True) for q in queries]
    add_note(store, "seeds.md", ["Seeds of doubt and seeds of hope."])  # committed on the main connection
    assert {h.note_path for h in store.fts_searches(["seeds"], 5)[0].result()} == {"garden.md", "seeds.md"}
    store.close()
    with pytest.raises(StoreError):
        store.fts_searches(["seeds"], 5)


def test_fts_survives_query_syntax_and_unicode(store: Store):
    add_note(store, "intl.md", ["Le café était très bon", "東京 ist groß", "Привет мир"])
    for query in ['"AND OR ( * :', "NOT", "a:b", "*", '"', "(", "NEAR(a b)", "title:x", "^start", "-", "", "   "]:
        store.fts_search(query, 5)  # must not raise
    assert [h.note_path for h in store.fts_search("CAFE", 5)] == ["intl.md"]  # unicode61 folds accents
    assert [h.note_path for h in store.fts_search("привет", 5)] == ["intl.md"]
    assert [h.note_path for h in store.fts_search("東京", 5)] == ["intl.md"]
    assert [h.note_path for h in store.fts_search('"café"', 5)] == ["intl.md"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40))
def test_fts_never_raises_on_any_text(store: Store, query: str):
    assert isinstance(store.fts_search(query, 3), list)


def test_fts_query_quotes_every_word():
    assert fts_query('a "b" OR (c*') == '"a" """b""" "OR" "(c*"'
    assert fts_query("x y", match_any=True) == '"x" OR "y"'
    assert fts_query(" ( * : ") is None


# ---------------------------------------------------------------- persistence and healing


def build_vault_index(state_dir: Path) -> dict[str, np.ndarray]:
    with Store.open(state_dir, DIM, MODEL) as opened:
        chunks = []
        for n in range(6):
            chunks += add_note(opened, f"n{n}.md", [f"note {n} part {p} words{p}" for p in range(3)])
        return embed(opened, chunks, seed=8)


def search_snapshot(opened: Store, stored: dict[str, np.ndarray]) -> list:
    queries = np.stack([stored[h] for h in sorted(stored)][:5])
    scores, ids = opened.search_vectors(queries, 4)
    return [scores.round(6).tolist(), ids.tolist(), opened.fts_search("words1 note", 10)]


def test_reopening_after_close_gives_identical_results(state_dir: Path):
    stored = build_vault_index(state_dir)
    with Store.open(state_dir, DIM, MODEL) as first:
        assert not first.vectors_rebuilt
        snapshot = search_snapshot(first, stored)
    with Store.open(state_dir, DIM, MODEL) as second:
        assert not second.vectors_rebuilt
        assert search_snapshot(second, stored) == snapshot
        assert len(snapshot[2]) == 6


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "empty"])
def test_a_damaged_faiss_file_is_rebuilt_from_sqlite(state_dir: Path, damage: str):
    stored = build_vault_index(state_dir)
    with Store.open(state_dir, DIM, MODEL) as healthy:
        snapshot = search_snapshot(healthy, stored)
    vectors_file = state_dir / "vectors.faiss"
    data = vectors_file.read_bytes()
    if damage == "delete":
        vectors_file.unlink()
    else:
        vectors_file.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50,
                                  "empty": b""}[damage])
    with Store.open(state_dir, DIM, MODEL) as healed:
        assert healed.vectors_rebuilt
        assert search_snapshot(healed, stored) == snapshot
        assert faiss_ids(healed) == table_ids(healed)
    with Store.open(state_dir, DIM, MODEL) as again:
        assert not again.vectors_rebuilt  # the repair was saved


CRASH_SCRIPT = """
import os, sys
from pathlib import Path
import numpy as np
from ideaweave.store import Store, ChunkRecord, NoteRecord
state_dir, dim = Path(sys.argv[1]), int(sys.argv[2])
store = Store.open(state_dir, dim, "test-model")
store.replace_note(NoteRecord("late.md", "late", 1, 1, "c"), [ChunkRecord(0, "", (), 0, 4, "late-hash", "late words")], [], [])
vector = np.zeros((1, dim), np.float32); vector[0, 0] = 1.0
store.add_vectors(["late-hash"], vector)
store.delete_notes(["n0.md"]); store.gc_vectors()
os._exit(0)  # dies without flush() or close()
"""


def test_vectors_added_without_flush_survive_a_crash(state_dir: Path):
    build_vault_index(state_dir)
    faiss_before = (state_dir / "vectors.faiss").read_bytes()
    environment = {**os.environ, "PYTHONPATH": str(Path(ideaweave.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(state_dir), str(DIM)], check=True, env=environment,
                   timeout=60)
    assert (state_dir / "vectors.faiss").read_bytes() == faiss_before  # the crash left it stale
    with Store.open(state_dir, DIM, MODEL) as healed:
        assert healed.vectors_rebuilt
        assert faiss_ids(healed) == table_ids(healed)
        probe = np.zeros(DIM, np.float32)
        probe[0] = 1.0
        scores, ids = healed.search_vectors(probe, 1)
        assert [c.note_path for c in healed.chunks_for_vectors(ids)] == ["late.md"]
        assert "n0.md" not in {c.note_path for c in healed.chunks_for_vectors(healed.search_vectors(probe, 50)[1])}


def test_an_old_faiss_file_with_a_matching_generation_is_still_caught(state_dir: Path):
    # Two processes saving at once could pair an older file with a newer generation;
    # the id comparison catches what the generation alone would miss.
    build_vault_index(state_dir)
    old_file = (state_dir / "vectors.faiss").read_bytes()
    with Store.open(state_dir, DIM, MODEL) as opened:
        opened.add_vectors(["extra"], unit_vectors(1, 11))
    (state_dir / "vectors.faiss").write_bytes(old_file)
    with Store.open(state_dir, DIM, MODEL) as healed:
        assert healed.vectors_rebuilt
        assert faiss_ids(healed) == table_ids(healed)


# ---------------------------------------------------------------- other tables


def test_skipped_written_and_feedback_round_trip(store: Store):
    store.set_skipped("big.md", "larger than 2 MB", 3_000_000, 9)
    store.set_skipped("big.md", "larger than 1 MB", 3_000_001, 10)
    assert store.skipped() == [("big.md", "larger than 1 MB")]
    assert store.skipped_stats() == {"big.md": (3_000_001, 10)}
    assert store.counts()["skipped"] == 1

    store.record_written("a.md", "abc", {"summary": "Über", "related": ["[[b]]"]})
    record = store.last_written("a.md")
    assert (record.checksum, record.values) == ("abc", {"summary": "Über", "related": ["[[b]]"]})
    assert set(store.all_written()) == {"a.md"}
    store.delete_notes(["a.md"])  # a note that is gone takes what was written to it along
    assert store.all_written() == {} and list(store.each_written()) == [] and store.written_checksums() == {}

    store.set_feedback("a.md", "b.md", "rejected")
    store.set_feedback("a.md", "b.md", "pinned")
    assert store.feedback_for("a.md") == {"b.md": "pinned"}
    with pytest.raises(ValueError):
        store.set_feedback("a.md", "c.md", "liked")
    assert store.clear_feedback("a.md", "b.md") and not store.clear_feedback("a.md", "b.md")


def test_notes_keep_their_flags_and_frontmatter(store: Store):
    import datetime

    frontmatter = {"tags": ["x"], "created": datetime.date(2024, 5, 1), "nested": {"k": 1}}
    # (A private note's are kept sealed: tests/test_at_rest.py.)
    store.replace_note(note("t.md", is_template=True, frontmatter=frontmatter), [], [], ["x"])
    stored = store.note("t.md")
    assert not stored.private and stored.is_template
    assert stored.frontmatter == {"tags": ["x"], "created": "2024-05-01", "nested": {"k": 1}}
    assert stored_tags(store) == [("t.md", "x")]
    assert store.note("nope.md") is None


def test_counts_and_size_on_disk(store: Store):
    chunks = add_note(store, "a.md", ["one", "two"])
    embed(store, chunks[:1], seed=1)
    assert store.counts() == {"notes": 1, "chunks": 2, "vectors": 1, "skipped": 0, "chunks_without_vectors": 1}
    store.flush()
    assert store.size_on_disk() >= (store.database_path.stat().st_size + store.vectors_path.stat().st_size)


def test_reads_from_another_thread_while_writing(store: Store):
    errors: list[BaseException] = []
    done = threading.Event()

    def read_repeatedly() -> None:
        try:
            while not done.is_set():
                store.fts_search("words", 5)
                store.search_vectors(np.ones(DIM, np.float32), 3)
                store.note_means()
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    try:
        for n in range(30):
            chunks = add_note(store, f"n{n}.md", [f"words {n}", f"more words {n}"])
            embed(store, chunks, seed=n)
            if n % 10 == 9:
                store.delete_notes([f"n{n - 5}.md"])
                store.gc_vectors()
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert faiss_ids(store) == table_ids(store)


def big_store(state_dir: Path, notes: int, seed: int = 3) -> tuple[Store, dict[str, np.ndarray]]:
    opened = Store.open(state_dir, DIM, MODEL)
    chunks = []
    for n in range(notes):
        chunks += add_note(opened, f"n{n:03}.md", [f"note {n} part {p}" for p in range(2)])
    return opened, embed(opened, chunks, seed=seed)


def test_store_switches_to_an_inverted_file_above_the_exact_limit_and_back(state_dir: Path, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 100)
    monkeypatch.setattr(vectors, "IVF_PROBES", 2)
    opened, stored = big_store(state_dir, 40)  # 80 vectors: still exact
    assert opened.vectors_exact and opened.vector_search() == {"exact": True, "vectors": 80}
    more = []
    for n in range(40, 90):
        more += add_note(opened, f"n{n:03}.md", [f"note {n} part {p}" for p in range(2)])
    stored.update(embed(opened, more, seed=4))  # 180 vectors: approximate from now on
    assert not opened.vectors_exact
    assert opened.vector_search() == {"exact": False, "clusters": 13, "probed": 2, "vectors": 180}
    assert faiss_ids(opened) == table_ids(opened)
    # With 2 of 13 clusters probed, every vector still finds itself first (its own cluster is the nearest).
    hashes = sorted(stored)
    scores, ids = opened.search_vectors(np.stack([stored[h] for h in hashes]), 1)
    found = opened.chunks_for_vectors(ids[:, 0].tolist())
    assert {c.hash for c in found} == set(hashes)
    # The inverted file searches 8-bit codes, but what it gathers is the stored vectors, bit for bit.
    np.testing.assert_array_equal(opened.gather_vectors(ids[:, 0]), np.stack([stored[h] for h in hashes]))
    opened.close()
    with Store.open(state_dir, DIM, MODEL) as reopened:  # loaded as saved, not rebuilt
        assert not reopened.vectors_rebuilt and not reopened.vectors_exact
        assert faiss_ids(reopened) == table_ids(reopened)
        reopened.delete_notes([f"n{n:03}.md" for n in range(70)])  # 40 vectors left: below half the limit
        reopened.gc_vectors()
        assert reopened.vectors_exact and faiss_ids(reopened) == table_ids(reopened)


def test_an_inverted_file_saved_with_float16_codes_is_rebuilt_in_8_bits_once(state_dir: Path, monkeypatch, caplog):
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 100)
    opened, stored = big_store(state_dir, 60)  # 120 vectors: an inverted file
    ids = np.array(sorted(faiss_ids(opened)), np.int64)
    exact = opened.gather_vectors(ids)
    opened.close()
    # The file as the earlier kind saved it: the same clusters' worth of vectors in float16 codes.
    earlier = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DIM), DIM, vectors.ivf_lists(len(ids)),
                                            faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, False)
    earlier.train(exact)
    earlier.set_direct_map_type(faiss.DirectMap.Hashtable)
    earlier.add_with_ids(exact, ids)
    faiss.write_index(earlier, str(state_dir / "vectors.faiss"))
    with caplog.at_level("WARNING", logger="ideaweave.store"), Store.open(state_dir, DIM, MODEL) as rebuilt:
        assert rebuilt.vectors_rebuilt and not rebuilt.vectors_exact
        assert rebuilt._vectors._index.sq.qtype == faiss.ScalarQuantizer.QT_8bit_direct_signed
        assert faiss_ids(rebuilt) == table_ids(rebuilt)
        np.testing.assert_array_equal(rebuilt.gather_vectors(ids), exact)
        assert rebuilt.search_vectors(exact[:5], 1)[1][:, 0].tolist() == ids[:5].tolist()
    assert "rebuilt the vector index: 120 vectors" in caplog.text
    with Store.open(state_dir, DIM, MODEL) as again:  # saved in the new kind: not rebuilt again
        assert not again.vectors_rebuilt and not again.vectors_exact


def test_an_inverted_file_is_reclustered_when_the_vault_has_grown_fourfold(state_dir: Path, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_LIMIT", 20)
    opened, _ = big_store(state_dir, 20)  # 40 vectors: 6 clusters
    assert opened._vectors.lists == 6
    opened.close()
    with Store.open(state_dir, DIM, MODEL) as grown:
        chunks = []
        for n in range(20, 100):
            chunks += add_note(grown, f"n{n:03}.md", [f"note {n} part {p}" for p in range(2)])
        embed(grown, chunks, seed=9)  # 200 vectors: 14 clusters would be right, 6 is too coarse
        assert grown._vectors.lists == 14 and faiss_ids(grown) == table_ids(grown)


def test_note_means_read_in_small_batches_equal_the_whole_matrix(state_dir: Path):
    opened, _ = big_store(state_dir, 30)
    with opened:
        paths, means, chunk_mean = opened.note_means(batch=7)  # notes split across batches
        _, note_ids, vector_ids = opened.chunk_table()
        vectors = opened.gather_vectors(vector_ids)
        path_by_id = opened.note_path_by_id()
        assert paths == sorted(path_by_id.values())
        for i, path in enumerate(paths):
            rows = [r for r, nid in enumerate(note_ids) if path_by_id[int(nid)] == path]
            expected = vectors[rows].mean(axis=0)
            np.testing.assert_allclose(means[i], expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(chunk_mean, vectors.mean(axis=0), rtol=1e-5, atol=1e-6)
        assert set(opened.notes_at(["n001.md", "missing.md"])) == {"n001.md"}
        first = opened.chunks_of("n001.md")[0]
        assert opened.chunks_by_id([first.id, 10**9]) == {first.id: first}

def test_each_written_pages_through_every_write_as_all_written_holds_it(store: Store):
    for i in range(11):
        store.record_written(f"n{i}.md", f"sum{i}", {"related": [f"[[n{i + 1}]]"], "summary": f"S{i}"})
    store.delete_notes(["n0.md", "n3.md", "n4.md", "n10.md"])  # gaps in the rowids, one at the end
    store.record_written("n5.md", "again", {"related": []})  # rewritten: its row stays where it was
    expected = sorted(store.all_written().values(), key=lambda r: r.path)
    assert len(expected) == 7
    for page in (1, 2, 3, 100):
        assert sorted(store.each_written(page=page), key=lambda r: r.path) == expected
    assert store.written_checksums() == {r.path: r.checksum for r in expected}
