"""The ranking snapshot: what ranking needs of the index, held in memory and read from the store in a
few vectorised reads (one centred vector per note, the link graph, titles and aliases, section rows).

`Corpus` is read by the ranker (`relate`), novelty and the daemon, which carries one snapshot from batch
to batch through `updated()`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .graph import LinkGraph
from .noteindex import NOTE_INDEX_MIN, NoteIndex
from .store import Store
from .terms import STOPWORDS, WORD, TermIndex  # noqa: F401 (STOPWORDS and WORD: read from here by search, topics)
from .vectors import CompactVectors, row_norms

SAMPLE_NOTES = 1000  # notes whose sections estimate the spread of the best-section evidence there
TITLE_WORDS = 5  # titles and aliases of up to this many words are looked for in a note's text


def normalise_title(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


class Corpus:
    """An in-memory snapshot of what ranking needs, loaded from the store in a few vectorised reads.

    Memory holds one vector per note (centred, held compact: int16 codes with a scale per row, see
    `vectors.CompactVectors`; 76 MB at 100,000 notes instead of float32's 152). Section vectors stay in the store's vector
    index; only a small vault's (an exact index) are also copied here, centred, for an exact scan.
    A snapshot is never changed: `updated()` makes the next one, reading only the notes that changed.
    """

    def __init__(self, store: Store, note_mean: np.ndarray | None = None, chunk_mean: np.ndarray | None = None):
        """Load everything; `note_mean`/`chunk_mean` centre the vectors on given means instead of the
        vault's own (what `updated()` does, so that a note keeps its vector between snapshots)."""
        version = store.sections_version  # before reading: a change during the reads makes it stale at once
        # Signatures first, while little else is in memory: their encoded rows are the largest passing
        # allocation of a load (about 90 MB at 100,000 notes); they are put in path order further down.
        signatures = store.term_signatures()
        signed, term_index = list(signatures), TermIndex(list(signatures.values()))
        del signatures
        paths, note_vectors, own_chunk_mean = store.note_means()
        flags = store.note_flags()
        # A note deleted between the two reads keeps a placeholder until the next load.
        notes = [_flags_of(flags, p) for p in paths]
        del flags
        # Centred on the vault's mean: MiniLM vectors share a large common direction, and removing it
        # makes cosine measure what sets a note apart (+0.01 to +0.02 recall@10 on the benchmark).
        if note_mean is None:
            note_mean = note_vectors.mean(axis=0) if len(paths) > 1 else np.zeros(store.dim, np.float32)
        if chunk_mean is None:
            chunk_mean = own_chunk_mean if len(paths) > 1 else np.zeros_like(own_chunk_mean)
        note_vectors = CompactVectors.consuming(centre_on(note_vectors, note_mean, in_place=True))
        # A large vault's whole-note evidence is read from moments and an 8-bit scan (noteindex.py).
        self.note_index = NoteIndex.build(note_vectors) if len(paths) >= NOTE_INDEX_MIN else None
        ordinals, note_ids, vector_ids = store.chunk_table()
        chunk_paths = _lookup_paths(store.note_path_by_id(), note_ids)
        # The graph keys its edges by the corpus's own path strings, not a fresh copy per link.
        same = {p: p for p in paths}
        graph = LinkGraph(((same.get(a, a), same.get(b, b)) for a, b in store.each_link()), nodes=paths)
        del same
        term_index = _in_order(term_index, signed, paths)
        del signed
        self._assemble(store, paths, notes, note_vectors, note_mean, chunk_mean,
                       (ordinals, chunk_paths, vector_ids), None, graph, store.vectors_exact, term_index)
        self.changes_since_load = 0
        self.sections_version = version

    def _assemble(self, store: Store, paths: list[str], notes: list, note_vectors: CompactVectors,
                  note_mean: np.ndarray, chunk_mean: np.ndarray, chunks: tuple, chunk_vectors: np.ndarray | None,
                  graph: LinkGraph, exact: bool, term_index: TermIndex, sample: tuple | None = None) -> None:
        """Everything derived from the per-note data: indexes, sections grouped by note, title index.

        `chunks` is (ordinals, note path of each, vector_ids); sections of notes not in `paths` are
        dropped. `chunk_vectors` (exact index only) are the centred vectors of those rows, or None to
        gather them from the store."""
        self.store = store
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}
        self.notes = notes  # (title, is_template, private, aliases) per note
        self.titles = [title for title, _, _, _ in notes]
        self.template = np.array([is_template for _, is_template, _, _ in notes], dtype=bool)
        self.private = np.array([private for _, _, private, _ in notes], dtype=bool)
        self.note_vectors, self.note_mean, self.chunk_mean = note_vectors, note_mean, chunk_mean
        ordinals, chunk_paths, vector_ids = chunks
        chunk_note = np.fromiter((self.index.get(p, -1) for p in chunk_paths), dtype=np.int64, count=len(chunk_paths))
        # Sections grouped by note (a note's sections are rows start[q]:start[q + 1]), in their order;
        # a note indexed between two reads is left out rather than misattributed.
        keep = np.flatnonzero(chunk_note >= 0)
        keep = keep[np.argsort(chunk_note[keep], kind="stable")]
        self.chunk_ordinal, self.chunk_note, self.chunk_vid = ordinals[keep], chunk_note[keep], vector_ids[keep]
        self.chunk_start = np.searchsorted(self.chunk_note, np.arange(len(paths) + 1))
        self.exact = exact
        # An exact index is small: scanning a centred copy is fastest. A large one is searched.
        if not exact:
            self.chunk_vectors = None
        elif chunk_vectors is not None:
            self.chunk_vectors = chunk_vectors[keep]
        else:
            self.chunk_vectors = centre_on(store.gather_vectors(self.chunk_vid), chunk_mean)
        by_vid = np.argsort(self.chunk_vid, kind="stable")
        self._vid_sorted, self._vid_rows = self.chunk_vid[by_vid], by_vid
        self.graph = graph
        self._sample_sections(sample)
        self.node_rows = _rows_of_nodes(graph, self.index)
        self.title_matcher = TitleMatcher(notes)
        self.terms = term_index

    def _sample_sections(self, carried: tuple | None) -> None:
        """A fixed random sample of notes whose section vectors stay in memory (large vaults only):
        the best-section evidence is found for the top notes only, and standardised with the
        spread it has over this sample."""
        if self.exact:
            self.sample_vectors, self.sample_starts = None, None
        elif carried is not None:
            self.sample_vectors, self.sample_starts = carried
        else:
            chosen = np.sort(np.random.default_rng(0).choice(len(self.paths), size=min(SAMPLE_NOTES, len(self.paths)),
                                                             replace=False))
            rows = [self.rows_of(int(q)) for q in chosen]
            self.sample_starts = np.cumsum([0] + [len(r) for r in rows])[:-1]
            self.sample_vectors = self.section_vectors(np.concatenate(rows)) if rows else None

    def sample_stats(self, own: np.ndarray) -> tuple[float, float]:
        """(mean, std) of the best-section cosine to `own` over the sample's notes."""
        if self.sample_vectors is None or not len(self.sample_vectors) or not len(own):
            return 0.0, 0.0
        best = np.maximum.reduceat((own @ self.sample_vectors.T).max(axis=0), self.sample_starts)
        return float(best.mean()), float(best.std())

    def updated(self, touched: Iterable[str]) -> Corpus:
        """The next snapshot, after the notes `touched` were indexed again, added or deleted (for a
        rename, both names; and notes whose links the indexer re-resolved). Only those notes are
        read; the rest is carried over. Vectors stay centred on this snapshot's means, so a full
        load happens instead once a tenth of the vault has changed since the last one, or when the
        store switched between exact and approximate search.

        The link graph (and, when no note came or went, the note vectors) are shared and brought up to
        date in place: an older snapshot still in use sees the new links and vectors, which is harmless
        (it only looks up the notes it knows)."""
        touched = set(touched)
        if not touched:
            return self
        if self.reload_due(touched):
            return Corpus(self.store)
        changes = self.changes_since_load + len(touched)
        store = self.store
        version = store.sections_version
        fresh_paths, fresh_vectors, _ = store.note_means(only=touched)
        flags = store.note_flags(only=touched)  # every touched note that still exists
        kept = [i for i, p in enumerate(self.paths) if p not in touched]
        paths = sorted([self.paths[i] for i in kept] + fresh_paths)
        index = {p: i for i, p in enumerate(paths)}
        at_kept = np.fromiter((index[self.paths[i]] for i in kept), dtype=np.int64, count=len(kept))
        at_fresh = np.fromiter((index[p] for p in fresh_paths), dtype=np.int64, count=len(fresh_paths))
        kept = np.asarray(kept, dtype=np.int64)
        if paths == self.paths:
            # The same notes (edits only, the usual batch): the vectors are updated in place rather than
            # copied (a copy is 150 MB at 100,000 notes); an older snapshot still in use sees the edited
            # notes' new vectors, as it sees their new links.
            note_vectors = self.note_vectors
            gone = at_fresh
        else:
            note_vectors = self.note_vectors.moved(kept, at_kept, len(paths))
            gone = np.setdiff1d(np.arange(len(self.paths)), kept)
        removed = self.note_vectors[gone] if self.note_index is not None else None  # before they are overwritten
        note_vectors[at_fresh] = centre_on(fresh_vectors, self.note_mean, in_place=True)
        note_index = None
        if self.note_index is not None:
            fresh_before = np.fromiter((self.index.get(p, -1) for p in fresh_paths), np.int64, count=len(fresh_paths))
            note_index = self.note_index.updated(note_vectors, removed, kept, at_kept, at_fresh, fresh_before)
        notes: list = [None] * len(paths)
        for old, new in zip(kept.tolist(), at_kept.tolist()):
            notes[new] = self.notes[old]
        for path, new in zip(fresh_paths, at_fresh.tolist()):
            notes[new] = _flags_of(flags, path)
        # Sections: the kept notes' rows as they were, the fresh notes' rows from the store.
        carried = np.isin(self.chunk_note, kept)
        ordinals, note_ids, vids = store.chunk_table(only=fresh_paths)
        fresh_chunk_paths = _lookup_paths(store.note_path_by_id(only=fresh_paths), note_ids)
        old_paths = np.asarray(self.paths, dtype=object)
        chunks = (np.concatenate([self.chunk_ordinal[carried], ordinals]),
                  np.concatenate([old_paths[self.chunk_note[carried]], np.asarray(fresh_chunk_paths, dtype=object)]),
                  np.concatenate([self.chunk_vid[carried], vids]))
        chunk_vectors = None
        if self.exact:
            fresh_chunks = centre_on(store.gather_vectors(vids), self.chunk_mean) if len(vids) else (
                np.zeros((0, self.note_vectors.shape[1]), np.float32))
            chunk_vectors = np.concatenate([self.chunk_vectors[carried], fresh_chunks])
        graph = self.graph
        same = {p: p for p in fresh_paths}
        outgoing: dict[str, set[str]] = {}
        for source, target in store.links(only=touched):
            outgoing.setdefault(source, set()).add(target)
        for path in touched:
            if path in flags:
                graph.replace_outlinks(same.get(path, path), outgoing.get(path, ()))
            else:
                graph.remove_note(path)
        following = Corpus.__new__(Corpus)
        fresh_signatures = store.term_signatures(only=fresh_paths)
        term_index = self.terms.updated(kept, at_kept, [fresh_signatures.get(p) for p in fresh_paths], at_fresh,
                                        len(paths))
        following._assemble(store, paths, notes, note_vectors, self.note_mean, self.chunk_mean, chunks,
                            chunk_vectors, graph, self.exact, term_index, sample=(self.sample_vectors, self.sample_starts))
        following.note_index = note_index
        following.changes_since_load = changes
        following.sections_version = version
        return following

    def reload_due(self, touched: Iterable[str]) -> bool:
        """Would `updated(touched)` read a whole new snapshot rather than carry this one over? A caller
        that can let go of this snapshot first should then load the next itself: two whole snapshots
        at once are some 250 MB more at 100,000 notes."""
        changes = self.changes_since_load + len(set(touched))
        return changes > max(len(self) // 10, 50) or self.store.vectors_exact != self.exact or len(self) < 2

    def with_graph(self, graph: LinkGraph) -> Corpus:
        """This snapshot with another link graph (the vectors and sections are shared, not copied)."""
        other = copy.copy(self)
        other.graph = graph
        return other

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def current(self) -> bool:
        """Does the store still hold what this snapshot holds of every note (no section, vector, title or
        flag changed since)? Search reads a current snapshot instead of the store."""
        return self.sections_version == self.store.sections_version

    def rows_of_nodes(self, node_ids: np.ndarray) -> np.ndarray:
        """The corpus row of each link-graph node id; -1 for a note this snapshot does not hold (the graph
        is shared with later snapshots and may know notes added since)."""
        node_ids = np.asarray(node_ids, np.int64)
        rows = np.full(len(node_ids), -1, np.int64)
        inside = node_ids < len(self.node_rows)
        rows[inside] = self.node_rows[node_ids[inside]]
        return rows

    def rows_of(self, q: int) -> np.ndarray:
        """The section rows of note q."""
        return np.arange(self.chunk_start[q], self.chunk_start[q + 1])

    def section(self, row: int):
        """The stored chunk of a section row (its text, heading), or None if it is gone since."""
        return self.store.chunk_at(self.paths[self.chunk_note[row]], int(self.chunk_ordinal[row]))

    def section_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Centred unit vectors of these section rows."""
        if self.chunk_vectors is not None:
            return self.chunk_vectors[rows]
        return centre_on(self.store.gather_vectors(self.chunk_vid[rows]), self.chunk_mean)

    def rows_using(self, vector_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions into vector_ids, section rows) of every section embedded as one of these vectors
        (the same text in two notes is one vector)."""
        lo = np.searchsorted(self._vid_sorted, vector_ids, side="left")
        hi = np.searchsorted(self._vid_sorted, vector_ids, side="right")
        counts = hi - lo
        which = np.repeat(np.arange(len(vector_ids)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return which, self._vid_rows[np.repeat(lo, counts) + offsets]


def _in_order(term_index: TermIndex, signed: list[str], paths: list[str]) -> TermIndex:
    """The signatures (of the notes `signed`, in that order) rearranged to the order of `paths`; a note
    indexed between the two reads has none until the next snapshot."""
    if signed == paths:  # the usual case (both in path order): no second copy of every signature
        return term_index
    at = {p: i for i, p in enumerate(paths)}
    kept = np.fromiter((i for i, p in enumerate(signed) if p in at), np.int64)
    at_kept = np.fromiter((at[signed[i]] for i in kept.tolist()), np.int64, count=len(kept))
    return term_index.updated(kept, at_kept, [], np.zeros(0, np.int64), len(paths))


def _rows_of_nodes(graph: LinkGraph, index: dict[str, int]) -> np.ndarray:
    """The corpus row of each graph node id (-1: not a note of this snapshot)."""
    return np.fromiter((index.get(p, -1) for p in graph.paths), np.int64, count=len(graph.paths))


class TitleMatcher:
    """Finds which notes' titles and aliases a text mentions, as runs of whole words.

    Every run of up to TITLE_WORDS words of the text is hashed (one rolling hash per run length, in
    numpy) and looked up among the sorted hashes of the titles: a long note's 5,000 words cost a few
    vectorised passes instead of 25,000 dictionary lookups of joined strings.
    """

    def __init__(self, notes: list):
        hashes, rows = [], []
        for i, (title, _, _, aliases) in enumerate(notes):
            for name in [title] + list(aliases):
                key = normalise_title(name)
                # Longer titles are never looked for: a run of more words is rarely a title, and each
                # extra length is one more pass over every note's words.
                if len(key) >= 3 and key not in STOPWORDS and key.count(" ") < TITLE_WORDS:
                    hashes.append(_run_hash(_word_hashes(key.split())))
                    rows.append(i)
        keys = np.asarray(hashes, np.uint64)
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows = keys[order], np.asarray(rows, np.int64)[order]

    def mentioned(self, text: str) -> np.ndarray:
        """Rows of the notes whose title or alias appears in the text, without duplicates."""
        words = _word_hashes(normalise_title(text).split())
        if not len(words) or not len(self.keys):
            return np.zeros(0, np.int64)
        starts, ends, run = [], [], words.copy()
        for size in range(1, min(TITLE_WORDS, len(words)) + 1):
            if size > 1:
                run = run[:-1] * _MIX + words[size - 1:]
            # Each distinct run once, in order: sorted needles make the binary searches walk the keys
            # forwards (a long note's runs repeat, and it may name a thousand titles).
            distinct = np.unique(run)
            lo = np.searchsorted(self.keys, distinct, side="left")
            hi = np.searchsorted(self.keys, distinct, side="right")
            hit = hi > lo
            starts.append(lo[hit])
            ends.append(hi[hit])
        return np.unique(self.rows[_ranges(np.concatenate(starts), np.concatenate(ends))])


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, end) for each pair, without a loop."""
    lengths = ends - starts
    if not lengths.sum():
        return np.zeros(0, np.int64)
    offsets = np.repeat(ends - lengths.cumsum(), lengths)
    return offsets + np.arange(lengths.sum())


_MIX = np.uint64(1_000_003)


def _word_hashes(words: list[str]) -> np.ndarray:
    # Python's string hash is stable within a process, which is all a snapshot needs (it is never stored).
    return np.fromiter((hash(w) for w in words), np.int64, count=len(words)).view(np.uint64)


def _run_hash(hashes: np.ndarray) -> int:
    """The hash `mentioned` computes for this run of words (uint64 arithmetic, wrapping)."""
    h = 0
    for w in hashes.tolist():
        h = (h * int(_MIX) + w) & 0xFFFF_FFFF_FFFF_FFFF
    return h


def _flags_of(flags: dict, path: str) -> tuple:
    """A note's (title, is_template, private, aliases); a placeholder for a note deleted since it was listed."""
    return flags.get(path) or (Path(path).stem, False, False, [])


def _lookup_paths(path_by_id: dict[int, str], note_ids: np.ndarray) -> list[str | None]:
    return [path_by_id.get(int(i)) for i in note_ids]


def centre_on(vectors: np.ndarray, mean: np.ndarray, in_place: bool = False) -> np.ndarray:
    out = np.asarray(vectors, dtype=np.float32) if in_place else np.array(vectors, dtype=np.float32)
    out -= np.asarray(mean, dtype=np.float32)
    out /= np.maximum(row_norms(out), 1e-9)[:, None]
    return out
