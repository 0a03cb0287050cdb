"""Nearest-neighbour search over the vault's vectors (faiss), behind the `VectorIndex` Protocol.

The store keeps every vector in SQLite; an index here is a cache of them, rebuilt from the database
whenever it disagrees with it. Vectors are unit length, so inner product is cosine. Small vaults are
searched exactly (`FlatIndex`, a scan of every vector); large ones through an inverted file
(`IvfIndex`), which scans only the clusters nearest to a query.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from .atomic import replace_file
from .errors import StoreError

log = logging.getLogger(__name__)

# Vector search is exact (a scan of every vector) up to this many vectors, about 12,000 notes, where a
# scan still takes a few milliseconds; above it, an inverted file (IvfIndex) scans the IVF_PROBES
# clusters nearest to a query. bench/RESULTS.md has the recall against exact search.
EXACT_LIMIT = 50_000
IVF_PROBES = 16
IVF_TRAINING_ITERATIONS = 10
IVF_SAMPLE_PER_LIST = 40

# One OpenMP thread for faiss, as for llama.cpp (embedding.threads): a query scans too little to share,
# and OpenMP's waiting threads spin, so a second thread on a busy 2-core laptop made one search of 39,000
# vectors take 96 ms instead of 12 ms (bench/search_latency.py, 10,000 notes). OpenMP keeps the count per
# thread, and a thread that never set it uses every core: `search` sets it again in the thread that asks
# (the API's searches run in a pool of worker threads).
faiss.omp_set_num_threads(1)


class VectorIndex(Protocol):
    """Nearest-neighbour search over unit vectors, keyed by `vectors.id`."""

    exact: bool  # search() returns the true nearest vectors (a scan), or close to them (IvfIndex)

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def gather(self, ids: np.ndarray) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


class _FaissIndex:
    """What both kinds of index do alike: faiss over float32 unit vectors keyed by `vectors.id`."""

    exact: bool

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @property
    def dim(self) -> int:
        return self._index.d

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                 np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        one_faiss_thread()
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, path: Path) -> None:
        save_index(self._index, path)


class FlatIndex(_FaissIndex):
    """Exact inner-product search (faiss IndexIDMap2 over IndexFlatIP): every query scans every vector."""

    exact = True

    @classmethod
    def empty(cls, dim: int) -> FlatIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Vectors of `ids`, row for row; StoreError if one is not in the index."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        stored_ids = self.ids()
        if not len(stored_ids):
            raise _out_of_step()
        order = np.argsort(stored_ids)
        positions = order[np.searchsorted(stored_ids, ids, sorter=order).clip(0, len(order) - 1)]
        if not np.array_equal(stored_ids[positions], ids):
            raise _out_of_step()
        flat = faiss.downcast_index(self._index.index)
        # A view of faiss's own storage: only the gathered rows are copied.
        stored = faiss.rev_swig_ptr(flat.get_xb(), len(stored_ids) * self.dim).reshape(-1, self.dim)
        return stored[positions]


class IvfIndex(_FaissIndex):
    """Approximate inner-product search for large vaults: an inverted file (faiss
    IndexIVFScalarQuantizer). Vectors are clustered once (k-means on a sample); a query scans only
    the `IVF_PROBES` clusters nearest to it. A hashtable from id to place lets vectors be removed.

    The clusters hold each vector in 8 bits a dimension (faiss QT_8bit_direct_signed), half of float16's
    memory (400,000 sections: 147 MiB instead of 294), and faiss scans those codes fastest of its kinds
    (an int8 dot product). Codes are the vector times the index's `scale`, rounded: the largest component
    of the training sample becomes 127 (bench/RESULTS.md has the kinds measured). A query is scaled by its
    own largest component, so each query uses the full range, and scores are divided back into cosines
    (within 3e-3; 1e-3 on average). The codes serve the search alone: `gather` reads the exact vectors from
    `read_vectors` (the database), so ranking's cosines are those of the stored vectors."""

    exact = False

    def __init__(self, index: faiss.IndexIVFScalarQuantizer, read_vectors: VectorReader) -> None:
        super().__init__(index)
        self.probes = IVF_PROBES
        self._read_vectors = read_vectors

    @classmethod
    def trained(cls, dim: int, sample: np.ndarray, expected: int, read_vectors: VectorReader) -> IvfIndex:
        """An empty index whose clusters are learnt from `sample`, sized for `expected` vectors; `gather`
        reads vectors with `read_vectors`."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        largest = float(np.abs(sample).max()) if sample.size else 0.0
        lists = ivf_lists(expected)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists, INT8_CODES,
                                              faiss.METRIC_INNER_PRODUCT, False)
        # The direct kinds are not trained and read no range parameter: the file keeps the scale there.
        index.sq.rangestat_arg = int8_scale(largest)
        index.cp.niter = IVF_TRAINING_ITERATIONS
        index.cp.seed = 1234  # the clustering, and so every result, is reproducible
        index.train(int8_values(sample, index.sq.rangestat_arg))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(index, read_vectors)

    @property
    def scale(self) -> float:
        """What a vector is multiplied by before it is rounded to its codes."""
        return self._index.sq.rangestat_arg

    @property
    def lists(self) -> int:
        return self._index.nlist

    @property
    def probes(self) -> int:
        return self._index.nprobe

    @probes.setter
    def probes(self, value: int) -> None:
        self._index.nprobe = min(value, self.lists)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(int8_values(vectors, self.scale), np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        one_faiss_thread()
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        largest = np.abs(queries).max(axis=1) if queries.size else np.zeros(len(queries), np.float32)
        query_scales = int8_scale(largest)
        scores, ids = self._index.search(int8_values(queries * query_scales[:, None], 1.0), k)
        return scores / (query_scales[:, None] * np.float32(self.scale)), ids

    def ids(self) -> np.ndarray:
        lists = self._index.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(self.lists) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """The exact vectors of `ids`, row for row, as `read_vectors` reads them (StoreError if one is not
        there). Not the codes: they move a cosine by up to 3e-3, enough to reorder close suggestions."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return self._read_vectors(ids)

    def decoded(self, ids: np.ndarray) -> np.ndarray:
        """The codes of `ids` decoded, row for row: each component within half a code step of the stored
        vector's, so a cosine within about 3e-3 (bench/RESULTS.md). Four times faster than `gather` at
        100,000 notes, for evidence that the inverted file makes approximate anyway."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        try:
            codes = self._index.reconstruct_batch(np.ascontiguousarray(ids))
        except RuntimeError as error:  # an id the index does not hold
            raise _out_of_step() from error
        return codes / np.float32(self.scale)


# Exact vectors of ids, row for row (the store reads them from the database); StoreError when one is missing.
VectorReader = Callable[[np.ndarray], np.ndarray]
# The 8-bit codes of the inverted file and of the note scan (noteindex): faiss decodes a code as its value
# less 128 and, for inner products, codes the query alike, so a scan is an int8 dot product.
INT8_CODES = faiss.ScalarQuantizer.QT_8bit_direct_signed
_CODE_LIMIT = 127.0


def int8_scale(largest):
    """The scale that makes `largest` (the largest component to be coded; a number or an array of them)
    the largest code."""
    largest = np.asarray(largest, dtype=np.float32)
    scale = np.where(largest > 0, np.float32(_CODE_LIMIT) / np.maximum(largest, np.float32(1e-30)), np.float32(_CODE_LIMIT))
    return float(scale) if scale.ndim == 0 else scale.astype(np.float32)


def int8_values(vectors: np.ndarray, scale: float) -> np.ndarray:
    """`vectors` times `scale`, rounded to integers in [-127, 127] (faiss would truncate, not round);
    float32, as faiss takes them. A component beyond the largest the scale was made for is clipped."""
    scaled = np.asarray(vectors, dtype=np.float32) * np.float32(scale)
    return np.ascontiguousarray(np.clip(np.rint(scaled), -_CODE_LIMIT, _CODE_LIMIT), dtype=np.float32)


def int8_codes(vectors: np.ndarray, scale: float) -> np.ndarray:
    """The codes faiss stores for `int8_values(vectors, scale)`: each value plus 128, a byte."""
    return (int8_values(vectors, scale) + 128).astype(np.uint8)


def ivf_lists(count: int) -> int:
    """Clusters for `count` vectors: about the square root, so a query scans few of them and each is
    short (the usual rule for inverted files)."""
    return int(min(max(math.sqrt(count), 1), 4096))


def wanted_kind(count: int, current: VectorIndex | None) -> str:
    """"flat" or "ivf" for an index of `count` vectors: exact up to EXACT_LIMIT; once approximate, it
    stays so until the vault has shrunk to half the limit (no back and forth at the border)."""
    if isinstance(current, IvfIndex):
        return "ivf" if count >= EXACT_LIMIT // 2 else "flat"
    return "ivf" if count > EXACT_LIMIT else "flat"


def needs_reclustering(index: VectorIndex, count: int) -> bool:
    """An inverted file clustered for a much smaller or larger vault scans too much or misses too much."""
    return isinstance(index, IvfIndex) and not (index.lists / 2 <= ivf_lists(count) <= index.lists * 2)


def load_index(path: Path, dim: int, read_vectors: VectorReader) -> VectorIndex | None:
    """The saved index, or None when it is missing, unreadable, of another shape, or an inverted file of
    an earlier kind (float16 codes), which the caller rebuilds from the database. An inverted file's
    `gather` reads vectors with `read_vectors`."""
    if not path.is_file():
        return None
    try:
        index = faiss.read_index(str(path))  # straight from the file: no second copy in memory
    except Exception:  # faiss reports truncation as RuntimeError, a bad size as MemoryError
        return None
    if index.d != dim:
        return None
    if isinstance(index, faiss.IndexIDMap2):
        return FlatIndex(index)
    if isinstance(index, faiss.IndexIVFScalarQuantizer) and index.direct_map.type == faiss.DirectMap.Hashtable:
        if index.sq.qtype == INT8_CODES and index.sq.rangestat_arg > 0:
            return IvfIndex(index, read_vectors)
        log.info("the saved vector index is an inverted file of an earlier kind; it is rebuilt from the database")
    return None


def _out_of_step() -> StoreError:
    return StoreError("The vector index is out of step with the database; restart ideaweave to rebuild it.")


def save_index(index: faiss.Index, path: Path) -> None:
    """Replace `path` with the index so that a crash leaves the old file or the new, never half.
    faiss writes the file itself: the index is never copied into memory to be saved."""
    replace_file(path, lambda temporary: faiss.write_index(index, str(temporary)))


# Rows converted to float32 per step of a product with CompactVectors: a block of 1,024 x 384 floats
# (1.5 MB) stays in the CPU's cache, and stays below the size where OpenBLAS splits a product among
# threads (which collapses on a busy 2-core machine).
COMPACT_BLOCK_ROWS = 1024
MOVE_BLOCK_ROWS = 8192  # rows copied at once when a matrix is rearranged (6 MB of codes)
_CODE_MAX = 32767


class CompactVectors:
    """A matrix of row vectors held as int16 codes with one float32 scale per row: half the memory of
    float32 (76 MB instead of 152 MB for 100,000 notes of 384 dimensions). Each row's largest component
    becomes 32,767, so a component is off by at most half a step of its row's scale: a cosine of two
    unit vectors moves by about 1e-5 at most (float16 storage: 7e-5).

    It answers what ranking asks of a float32 matrix: `rows @ vector` (computed a block of rows at a
    time, which is faster than float32 on a machine whose memory bandwidth is the limit: half the
    bytes are read), `rows[i]` and `rows[indices]` (float32 copies), and assignment of rows."""

    def __init__(self, codes: np.ndarray, scales: np.ndarray):
        self.codes, self.scales = codes, scales

    @classmethod
    def empty(cls, rows: int, dim: int) -> CompactVectors:
        return cls(np.zeros((rows, dim), np.int16), np.zeros(rows, np.float32))

    @classmethod
    def of(cls, matrix: np.ndarray) -> CompactVectors:
        """The compact form of a float matrix, encoded a block at a time (no full-size temporaries)."""
        matrix = np.asarray(matrix)
        out = cls.empty(*matrix.shape)
        for start in range(0, len(matrix), COMPACT_BLOCK_ROWS):
            end = start + COMPACT_BLOCK_ROWS
            out.codes[start:end], out.scales[start:end] = _encode(matrix[start:end])
        return out

    @classmethod
    def consuming(cls, matrix: np.ndarray) -> CompactVectors:
        """The compact form of a float32 matrix the caller gives up: the codes are written into the first
        half of the matrix's own buffer, which is then shrunk to that half, so the float32 rows and their
        codes are never both held whole (76 MB less at the peak of a snapshot load at 100,000 notes). A
        block's codes land on rows already encoded (a row's codes take half its bytes). A matrix that does
        not own its buffer is left as it is and encoded into a new one."""
        if matrix.dtype != np.float32 or matrix.ndim != 2 or not matrix.flags.owndata or not matrix.flags.c_contiguous:
            return cls.of(matrix)
        rows, dim = matrix.shape
        scales = np.empty(rows, np.float32)
        codes = matrix.reshape(-1).view(np.int16)
        for start in range(0, rows, COMPACT_BLOCK_ROWS):
            end = min(start + COMPACT_BLOCK_ROWS, rows)
            block, scales[start:end] = _encode(matrix[start:end])
            codes[start * dim:end * dim] = block.reshape(-1)
        del codes
        matrix.resize(((rows * dim + 1) // 2,), refcheck=False)  # realloc: the second half goes back
        return cls(matrix.view(np.int16)[:rows * dim].reshape(rows, dim), scales)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes

    def __len__(self) -> int:
        return len(self.codes)

    def moved(self, rows: np.ndarray, to: np.ndarray, count: int) -> CompactVectors:
        """A new matrix of `count` rows (zero where nothing is moved) holding these `rows` at `to`, copied a
        block at a time: a deletion at 100,000 notes does not hold a third copy of the kept rows."""
        out = CompactVectors.empty(count, self.shape[1])
        for start in range(0, len(rows), MOVE_BLOCK_ROWS):
            part = slice(start, start + MOVE_BLOCK_ROWS)
            out.codes[to[part]], out.scales[to[part]] = self.codes[rows[part]], self.scales[rows[part]]
        return out

    def take(self, rows) -> CompactVectors:
        """These rows, still compact (no decoding and encoding again)."""
        return CompactVectors(self.codes[rows], self.scales[rows])

    def __getitem__(self, rows) -> np.ndarray:
        codes, scales = self.codes[rows], self.scales[rows]
        if codes.ndim == 1:
            return codes.astype(np.float32) * scales
        return codes.astype(np.float32) * scales[:, None]

    def __setitem__(self, rows, value) -> None:
        if isinstance(value, CompactVectors):
            self.codes[rows], self.scales[rows] = value.codes, value.scales
            return
        value = np.asarray(value, dtype=np.float32)
        codes, scales = _encode(value.reshape(-1, self.shape[1]))
        self.codes[rows], self.scales[rows] = codes.reshape(value.shape), scales.reshape(value.shape[:-1])

    def __matmul__(self, other) -> np.ndarray:
        """float32 `self @ other` for a vector or a matrix of `dim` rows."""
        other = np.asarray(other, dtype=np.float32)
        out = np.empty((len(self),) + other.shape[1:], np.float32)
        block = np.empty((min(COMPACT_BLOCK_ROWS, len(self)), self.shape[1]), np.float32)
        for start in range(0, len(self), COMPACT_BLOCK_ROWS):
            end = min(start + COMPACT_BLOCK_ROWS, len(self))
            rows = block[:end - start]
            np.copyto(rows, self.codes[start:end], casting="unsafe")
            np.dot(rows, other, out=out[start:end])
        out *= self.scales if out.ndim == 1 else self.scales[:, None]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self[:]
        return full if dtype is None else full.astype(dtype)


def _encode(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int16 codes, float32 scale per row) of float rows; a zero row stays zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    scales = (np.abs(matrix).max(axis=1) / _CODE_MAX).astype(np.float32) if matrix.size else (
        np.zeros(len(matrix), np.float32))
    divisor = np.where(scales > 0, scales, np.float32(1))
    codes = np.rint(matrix / divisor[:, None]).clip(-_CODE_MAX, _CODE_MAX).astype(np.int16)
    return codes, scales


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row without a squared copy of the matrix (np.linalg.norm makes one)."""
    return np.sqrt(np.einsum("ij,ij->i", matrix, matrix))


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (what every index holds and every query is)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    # A zero vector stays zero rather than becoming NaN.
    return (matrix / np.maximum(row_norms(matrix), np.float32(1e-12))[:, None]).astype(np.float32)


def one_faiss_thread() -> None:
    """One OpenMP thread for faiss in the calling thread (see the top of this module): a thread that never
    set it uses every core, and OpenMP's waiting threads spin. Every caller of faiss calls this first."""
    faiss.omp_set_num_threads(1)
