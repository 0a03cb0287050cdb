"""Tests for ideaweave.vectors: the faiss indexes on their own, with real faiss in tmp_path."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ideaweave.errors import StoreError
from ideaweave.vectors import (
    COMPACT_BLOCK_ROWS,
    EXACT_LIMIT,
    CompactVectors,
    FlatIndex,
    IvfIndex,
    ivf_lists,
    load_index,
    needs_reclustering,
    normalise_rows,
    row_norms,
    wanted_kind,
)


class StoredRows(dict):
    """Vectors by id, standing in for the database's vectors table that the store's inverted file reads
    exact vectors from (tests/test_store.py has the real one)."""

    def read(self, ids: np.ndarray) -> np.ndarray:
        if any(int(i) not in self for i in ids):
            raise StoreError("The vector index is out of step with the database")
        return np.array([self[int(i)] for i in ids], np.float32).reshape(len(ids), -1)


def trained_ivf(dim: int = 2, stored: StoredRows | None = None) -> IvfIndex:
    sample = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]] * 10, np.float32)
    return IvfIndex.trained(dim, sample, 4, (stored if stored is not None else StoredRows()).read)


def add_stored(index, stored: StoredRows, ids: list[int], vectors: list) -> None:
    """Add to the index and to the rows it reads back from, as the store does."""
    stored.update(zip(ids, np.asarray(vectors, np.float32)))
    index.add(np.array(ids), np.array(vectors, np.float32))


@pytest.mark.parametrize("make", [lambda rows: FlatIndex.empty(2), lambda rows: trained_ivf(2, rows)],
                         ids=["flat", "ivf"])
def test_vector_index_gathers_rows_by_id_and_refuses_unknown_ids(make):
    rows = StoredRows()
    index = make(rows)
    add_stored(index, rows, [7, 3], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(index.gather(np.array([3, 7, 3])), [[0, 1], [1, 0], [0, 1]])
    assert index.gather(np.array([], np.int64)).shape == (0, 2)
    assert sorted(index.ids().tolist()) == [3, 7]
    with pytest.raises(StoreError, match="out of step"):
        index.gather(np.array([5]))
    index.remove(np.array([7]))
    assert index.ids().tolist() == [3]


@pytest.mark.parametrize("make", [lambda rows: FlatIndex.empty(2), lambda rows: trained_ivf(2, rows)],
                         ids=["flat", "ivf"])
def test_a_saved_index_loads_as_the_same_kind_with_the_same_vectors(tmp_path: Path, make):
    rows = StoredRows()
    index = make(rows)
    add_stored(index, rows, [4, 9], [[0.5, -0.75], [-1, 0]])  # exact in float16 too
    path = tmp_path / "vectors.faiss"
    index.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]  # no temporary file left behind
    loaded = load_index(path, 2, rows.read)
    assert type(loaded) is type(index) and loaded.exact == index.exact
    if isinstance(index, IvfIndex):  # the scale its codes were made with comes back with the file
        assert loaded.scale == index.scale and loaded.search(np.array([[0.6, -0.8]]), 2)[1].tolist() == [[4, 9]]
    assert sorted(loaded.ids().tolist()) == [4, 9]
    np.testing.assert_array_equal(loaded.gather(np.array([9, 4])), [[-1, 0], [0.5, -0.75]])


def test_load_index_refuses_a_missing_damaged_or_differently_shaped_file(tmp_path: Path):
    path = tmp_path / "vectors.faiss"
    read = StoredRows().read
    assert load_index(path, 2, read) is None
    FlatIndex.empty(2).save(path)
    assert load_index(path, 3, read) is None  # another model's dimension
    path.write_bytes(path.read_bytes()[:10])
    assert load_index(path, 2, read) is None
    path.write_bytes(b"\x00junk" * 50)
    assert load_index(path, 2, read) is None


def test_an_inverted_file_of_float16_codes_is_not_loaded_so_that_it_is_rebuilt(tmp_path: Path, caplog):
    # The kind saved before 8-bit codes: the store rebuilds it from the database (tests/test_store.py).
    earlier = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(2), 2, 2, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_INNER_PRODUCT, False)
    earlier.train(np.array([[1, 0], [0, 1], [-1, 0], [0, -1]] * 10, np.float32))
    earlier.set_direct_map_type(faiss.DirectMap.Hashtable)
    earlier.add_with_ids(np.array([[1, 0]], np.float32), np.array([5], np.int64))
    path = tmp_path / "vectors.faiss"
    faiss.write_index(earlier, str(path))
    with caplog.at_level("INFO", logger="ideaweave.vectors"):
        assert load_index(path, 2, StoredRows().read) is None
    assert "earlier kind" in caplog.text


def test_the_inverted_file_holds_a_byte_a_dimension_and_scores_within_3e_3_of_the_cosine():
    rng = np.random.default_rng(5)
    data = normalise_rows(rng.standard_normal((3000, 384)))
    rows = StoredRows(zip(range(3000), data))
    index = IvfIndex.trained(384, data[:1000], len(data), rows.read)
    index.add(np.arange(3000), data)
    index.probes = index.lists  # every cluster: what is left to differ from an exact scan is the codes
    assert index._index.code_size == 384
    # Queries like ranking's: stored vectors, and stored vectors centred on another (larger components).
    queries = normalise_rows(np.vstack([rng.standard_normal((40, 384)), data[:20] - data[20:40]]))
    scores, found = index.search(queries, 20)
    cosines = np.einsum("qkd,qd->qk", data[found], queries)
    assert np.abs(scores - cosines).max() < 3e-3 and np.abs(scores - cosines).mean() < 1e-3
    exact = np.sort(queries @ data.T, axis=1)[:, ::-1][:, :20]
    assert (cosines.min(axis=1) >= exact[:, -1] - 4e-3).all()  # only near-ties are missed
    assert (found[:, 0] == np.argmax(queries @ data.T, axis=1)).mean() > 0.95
    # A component far beyond any stored one is not clipped: each query is scaled by its own largest.
    spike = np.zeros((1, 384), np.float32)
    spike[0, 7], spike[0, 8] = 1, 0.02
    _, found = index.search(spike, 1)
    assert found[0, 0] == np.argmax(data @ spike[0])
    np.testing.assert_array_equal(index.gather(np.array([17, 3, 17])), data[[17, 3, 17]])  # exact, from the rows
    # The codes decoded: each component within half a step of the stored one, a cosine within 3e-3.
    decoded = index.decoded(np.array([17, 3, 17, 2999]))
    assert np.abs(decoded - data[[17, 3, 17, 2999]]).max() <= 0.5 / index.scale + 1e-7
    assert np.abs(np.einsum("ij,ij->i", decoded, data[[17, 3, 17, 2999]]) - 1).max() < 3e-3
    assert index.decoded(np.zeros(0, np.int64)).shape == (0, 384)
    with pytest.raises(StoreError):
        index.decoded(np.array([5000]))


def test_search_is_exact_up_to_the_limit_and_stays_approximate_down_to_half_of_it():
    flat, ivf = FlatIndex.empty(2), trained_ivf()
    assert wanted_kind(EXACT_LIMIT, None) == wanted_kind(EXACT_LIMIT, flat) == "flat"
    assert wanted_kind(EXACT_LIMIT + 1, flat) == "ivf"
    assert wanted_kind(EXACT_LIMIT // 2, ivf) == "ivf"  # no back and forth at the border
    assert wanted_kind(EXACT_LIMIT // 2 - 1, ivf) == "flat"


def test_an_inverted_file_is_reclustered_only_when_far_from_its_size():
    ivf = trained_ivf()  # clustered for 4 vectors: 2 lists
    assert ivf.lists == ivf_lists(4) == 2
    assert not needs_reclustering(ivf, 4) and not needs_reclustering(ivf, 16)  # 4 lists: twice as many
    assert needs_reclustering(ivf, 25)  # 5 lists would be right
    assert not needs_reclustering(FlatIndex.empty(2), 10**6)  # a scan has no clusters
    assert ivf_lists(0) == 1 and ivf_lists(10**9) == 4096


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3, width=32)))
def test_rows_are_normalised_to_unit_length_and_zero_rows_stay_zero(matrix):
    np.testing.assert_allclose(row_norms(matrix), np.linalg.norm(matrix, axis=1), rtol=1e-5, atol=1e-5)
    unit = normalise_rows(matrix)
    assert unit.dtype == np.float32 and not np.isnan(unit).any()
    norms = np.linalg.norm(unit, axis=1)
    large = row_norms(matrix) > 1e-3
    np.testing.assert_allclose(norms[large], 1.0, rtol=1e-4)
    assert (unit[(matrix == 0).all(axis=1)] == 0).all()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenMP's default is one thread anyway")
@pytest.mark.parametrize("make", [lambda: FlatIndex.empty(2), trained_ivf], ids=["flat", "ivf"])
def test_a_search_from_a_new_thread_runs_faiss_on_one_thread(make):
    # OpenMP keeps the thread count per thread: the API searches from worker threads, which would
    # otherwise use every core and spin (a search of 10,000 notes' vectors took 10x longer on 2 cores).
    index = make()
    index.add(np.array([1, 2]), np.array([[1, 0], [0, 1]], np.float32))
    seen = {}

    def search_in_thread():
        seen["before"] = faiss.omp_get_max_threads()
        seen["found"] = index.search(np.array([[1, 0]], np.float32), 1)[1].tolist()
        seen["after"] = faiss.omp_get_max_threads()

    worker = threading.Thread(target=search_in_thread)
    worker.start()
    worker.join()
    assert seen["before"] > 1  # the default the search must not run with
    assert seen == {"before": seen["before"], "found": [[1]], "after": 1}


unit_rows = arrays(np.float32, st.tuples(st.integers(1, 2 * COMPACT_BLOCK_ROWS + 3), st.just(16)),
                   elements=st.floats(-1, 1, width=32)).map(normalise_rows)


@settings(max_examples=40, deadline=None)
@given(unit_rows, st.data())
def test_compact_vectors_answer_within_half_a_step_of_float32(matrix, data):
    compact = CompactVectors.of(matrix)
    assert compact.shape == matrix.shape and len(compact) == len(matrix)
    # Each component is off by at most half a step of its row's scale (largest component / 32,767).
    step = np.abs(matrix).max(axis=1, keepdims=True) / 32767
    assert (np.abs(np.asarray(compact) - matrix) <= step / 2 + 1e-7).all()
    q = data.draw(st.integers(0, len(matrix) - 1))
    # A product moves by at most what those half steps can add up to (plus float32 rounding).
    half = step[:, 0] / 2
    bound = np.abs(matrix).sum(axis=1) * half[q] + np.abs(matrix[q]).sum() * half + matrix.shape[1] * half * half[q]
    assert (np.abs(compact @ compact[q] - matrix @ matrix[q]) <= bound + 1e-6).all()
    np.testing.assert_allclose(compact @ matrix[:2].T, np.asarray(compact) @ matrix[:2].T, rtol=1e-5, atol=1e-6)
    rows = data.draw(st.lists(st.integers(0, len(matrix) - 1), max_size=5))
    np.testing.assert_array_equal(compact[rows], np.asarray(compact)[rows])
    np.testing.assert_array_equal(np.asarray(compact.take(rows)), np.asarray(compact)[rows])
    assert (compact @ compact[q]).dtype == np.float32 and compact[rows].dtype == np.float32


def test_compact_vectors_take_rows_and_keep_zero_rows_zero():
    matrix = normalise_rows(np.random.default_rng(0).standard_normal((5, 8)))
    matrix[3] = 0
    compact = CompactVectors.of(matrix)
    assert not np.asarray(compact)[3].any() and not (compact @ matrix[0])[3]
    target = CompactVectors.empty(7, 8)
    target[[6, 0, 2]] = compact.take([0, 1, 2])  # compact rows move as they are: no second rounding
    np.testing.assert_array_equal(target.codes[[6, 0, 2]], compact.codes[:3])
    target[4] = matrix[4]
    target[[1, 5]] = matrix[[1, 2]]
    np.testing.assert_array_equal(np.asarray(target)[[4, 1, 5]], np.asarray(compact)[[4, 1, 2]])
    assert target.nbytes == 7 * 8 * 2 + 7 * 4  # half of float32's, plus a scale per row


def test_compact_vectors_moved_a_block_at_a_time_equal_a_whole_take(monkeypatch):
    from ideaweave import vectors

    monkeypatch.setattr(vectors, "MOVE_BLOCK_ROWS", 3)
    rng = np.random.default_rng(4)
    compact = CompactVectors.of(normalise_rows(rng.standard_normal((20, 8))))
    rows = rng.permutation(20)[:13]
    to = rng.permutation(25)[:13]
    moved = compact.moved(rows, to, 25)
    whole = CompactVectors.empty(25, 8)
    whole[to] = compact.take(rows)
    np.testing.assert_array_equal(moved.codes, whole.codes)
    np.testing.assert_array_equal(moved.scales, whole.scales)
    assert not moved.codes[np.setdiff1d(np.arange(25), to)].any()


def test_compact_cosines_of_note_like_vectors_are_closer_than_float16s():
    # Centred MiniLM note vectors spread over all 384 components: the case the ranking snapshot holds.
    matrix = normalise_rows(np.random.default_rng(1).standard_normal((3000, 384)))
    compact = CompactVectors.of(matrix)
    exact = matrix @ matrix[:20].T
    compact_error = np.abs(compact @ compact[:20].T - exact).max()
    half = matrix.astype(np.float16).astype(np.float32)
    assert compact_error < 1e-5 and compact_error < np.abs(half @ half[:20].T - exact).max() / 3


@pytest.mark.parametrize("rows", [1, 7, COMPACT_BLOCK_ROWS, 3 * COMPACT_BLOCK_ROWS + 5])
def test_compact_vectors_made_in_the_matrixs_own_buffer_equal_a_fresh_encoding(rows):
    matrix = normalise_rows(np.random.default_rng(rows).standard_normal((rows, 9)))  # odd: a half-filled last float
    expected = CompactVectors.of(matrix.copy())
    compact = CompactVectors.consuming(matrix)
    np.testing.assert_array_equal(compact.codes, expected.codes)
    np.testing.assert_array_equal(compact.scales, expected.scales)
    assert matrix.nbytes == 4 * ((rows * 9 + 1) // 2)  # the float32 buffer was given back down to the codes
    assert compact.codes.base is not None and compact.codes.nbytes <= matrix.nbytes
    view = normalise_rows(np.ones((4, 6)))[::2]  # not its own buffer: encoded aside, left as it was
    before = view.copy()
    np.testing.assert_array_equal(CompactVectors.consuming(view).codes, CompactVectors.of(before).codes)
    np.testing.assert_array_equal(view, before)
