"""The vault's link graph as integer arrays, and the link evidence relatedness draws from it.

Edges are resolved links written by the user (body and frontmatter links; never ideaweave's own
`related` key, or suggestions would feed on themselves).

Each note has a small integer id; its outgoing and incoming links are sorted int32 arrays. At 100,000
notes a graph of dictionaries (networkx) cost about 150 MB and a walk through a hub thousands of
dictionary lookups; arrays cost a tenth of that and Adamic-Adar becomes one gather and one bincount.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

_NONE = np.zeros(0, dtype=np.int32)
# Adamic-Adar counts shared neighbours by sorting them, or, once there are more than one per this many
# notes, in an array of one slot per note.
DENSE_COUNTING = 50
# A note with at least this many links in and out keeps its neighbourhood (a hub's is merged again for
# every note that links to it otherwise: most of Adamic-Adar's time on a vault with hubs).
KEPT_NEIGHBOURHOOD = 256


class LinkGraph:
    """Directed graph of note -> linked note, with undirected neighbourhoods for link evidence."""

    def __init__(self, edges: Iterable[tuple[str, str]] = (), nodes: Iterable[str] = ()):
        self.ids: dict[str, int] = {}
        self.paths: list[str] = []
        for path in nodes:
            self._id(path)
        sources, targets = [], []
        for s, t in edges:
            if s != t:
                sources.append(self._id(s))
                targets.append(self._id(t))
        n = len(self.paths)
        self._arounds: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._out = _grouped(np.asarray(sources, np.int32), np.asarray(targets, np.int32), n)
        self._in = _grouped(np.asarray(targets, np.int32), np.asarray(sources, np.int32), n)

    def _id(self, path: str) -> int:
        i = self.ids.get(path)
        if i is None:
            i = self.ids[path] = len(self.paths)
            self.paths.append(path)
            if hasattr(self, "_out"):
                self._out.append(_NONE)
                self._in.append(_NONE)
        return i

    def replace_outlinks(self, source: str, targets: Iterable[str]) -> None:
        """Incremental update when one note changed."""
        s = self._id(source)
        new = np.unique(np.fromiter((self._id(t) for t in set(targets) if t != source), np.int32))
        old = self._out[s]
        for t in np.setdiff1d(old, new).tolist():
            self._in[t] = self._in[t][self._in[t] != s]
        for t in np.setdiff1d(new, old).tolist():
            self._in[t] = np.insert(self._in[t], np.searchsorted(self._in[t], s), s).astype(np.int32)
        self._out[s] = new.astype(np.int32)

    def copy(self) -> LinkGraph:
        """An independent copy (calibration removes notes' links from it one at a time). The arrays are
        never changed in place, only replaced, so the copy shares them."""
        copied = LinkGraph.__new__(LinkGraph)
        copied.ids, copied.paths = dict(self.ids), list(self.paths)
        copied._out, copied._in = list(self._out), list(self._in)
        copied._arounds = dict(self._arounds)
        return copied

    def remove_note(self, path: str) -> None:
        """Drop the note's links both ways; its id stays (unused) so that other ids do not move."""
        i = self.ids.get(path)
        if i is None:
            return
        self.replace_outlinks(path, ())
        for s in self._in[i].tolist():
            self._out[s] = self._out[s][self._out[s] != i]
        self._in[i] = _NONE

    def outlinks(self, path: str) -> set[str]:
        return self._named(self._out, path)

    def backlinks(self, path: str) -> set[str]:
        return self._named(self._in, path)

    def neighbours(self, path: str) -> set[str]:
        return self.outlinks(path) | self.backlinks(path)

    def _named(self, lists: list[np.ndarray], path: str) -> set[str]:
        i = self.ids.get(path)
        return set() if i is None else {self.paths[j] for j in lists[i].tolist()}

    def _around(self, i: int) -> np.ndarray:
        outgoing, incoming = self._out[i], self._in[i]
        if len(outgoing) + len(incoming) < KEPT_NEIGHBOURHOOD:
            return np.union1d(outgoing, incoming)
        # The arrays are replaced, never changed in place: the same two arrays mean the same union.
        kept = self._arounds.get(i)
        if kept is None or kept[0] is not outgoing or kept[1] is not incoming:
            kept = self._arounds[i] = (outgoing, incoming, np.union1d(outgoing, incoming))
        return kept[2]

    def edges(self) -> Iterator[tuple[str, str]]:
        for s, targets in enumerate(self._out):
            for t in targets.tolist():
                yield self.paths[s], self.paths[t]

    def number_of_edges(self) -> int:
        return sum(len(t) for t in self._out)

    def node_ids(self, paths: Iterable[str]) -> np.ndarray:
        """The graph id of each path (-1 for a path the graph does not know)."""
        return np.fromiter((self.ids.get(p, -1) for p in paths), np.int64)

    def outlink_ids(self, path: str) -> np.ndarray:
        i = self.ids.get(path)
        return _NONE if i is None else self._out[i]

    def backlink_ids(self, path: str) -> np.ndarray:
        i = self.ids.get(path)
        return _NONE if i is None else self._in[i]

    def adamic_adar_arrays(self, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(graph ids, Adamic-Adar scores, shared neighbours) of every note sharing a neighbour with `path`.

        Shared neighbours are notes both link to, notes linking to both (co-citation) or any mix;
        a hub shared by everything counts little (1 / log degree).
        """
        i = self.ids.get(path)
        if i is None:
            return _NONE, np.zeros(0), _NONE
        middles = self._around(i).tolist()
        if not middles:
            return _NONE, np.zeros(0), _NONE
        arounds = [self._around(m) for m in middles]
        sizes = np.fromiter((len(a) for a in arounds), np.int64, count=len(arounds))
        others = np.concatenate(arounds)
        weights = np.repeat(1.0 / np.log(np.maximum(sizes, 2)), sizes)
        keep = others != i
        others, weights = others[keep], weights[keep]
        if len(others) * DENSE_COUNTING > len(self.paths):
            # Through a hub: counting into one slot per note beats sorting the many pairs. Both add each
            # note's weights in the order of `others`, so the sums are the same.
            scores, counts = np.bincount(others, weights, len(self.paths)), np.bincount(others, minlength=len(self.paths))
            ids = np.flatnonzero(counts).astype(np.int32)
            return ids, scores[ids], counts[ids]
        ids, at = np.unique(others, return_inverse=True)
        return ids, np.bincount(at, weights, minlength=len(ids)), np.bincount(at, minlength=len(ids))

    def adamic_adar(self, path: str) -> dict[str, tuple[float, int]]:
        """adamic_adar_arrays by path: {note: (score, shared neighbours)}."""
        ids, scores, counts = self.adamic_adar_arrays(path)
        return {self.paths[j]: (float(s), int(c)) for j, s, c in zip(ids.tolist(), scores.tolist(), counts.tolist())}


def _grouped(keys: np.ndarray, values: np.ndarray, n: int) -> list[np.ndarray]:
    """values grouped by key into n sorted, duplicate-free int32 arrays."""
    if not len(keys):
        return [_NONE] * n
    pairs = np.unique(np.stack([keys, values], axis=1), axis=0)
    starts = np.searchsorted(pairs[:, 0], np.arange(n + 1))
    column = np.ascontiguousarray(pairs[:, 1], dtype=np.int32)
    return [column[starts[k]:starts[k + 1]] if starts[k + 1] > starts[k] else _NONE for k in range(n)]
