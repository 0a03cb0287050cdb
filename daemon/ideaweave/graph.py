"""The vault's link graph (networkx), and the link evidence relatedness draws from it.

Edges are resolved links written by the user (body and frontmatter links; never ideaweave's own
`related` key, or suggestions would feed on themselves).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import networkx as nx


class LinkGraph:
    """Directed graph of note -> linked note, with undirected views for neighbourhood measures."""

    def __init__(self, edges: Iterable[tuple[str, str]] = (), nodes: Iterable[str] = ()):
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(nodes)
        self.graph.add_edges_from((s, t) for s, t in edges if s != t)

    def replace_outlinks(self, source: str, targets: Iterable[str]) -> None:
        """Incremental update when one note changed."""
        self.graph.remove_edges_from(list(self.graph.out_edges(source)))
        self.graph.add_node(source)
        self.graph.add_edges_from((source, t) for t in targets if t != source)

    def copy(self) -> LinkGraph:
        """An independent copy (calibration removes notes' links from it one at a time)."""
        copied = LinkGraph.__new__(LinkGraph)
        copied.graph = self.graph.copy()
        return copied

    def remove_note(self, path: str) -> None:
        if path in self.graph:
            self.graph.remove_node(path)

    def outlinks(self, path: str) -> set[str]:
        return set(self.graph.successors(path)) if path in self.graph else set()

    def backlinks(self, path: str) -> set[str]:
        return set(self.graph.predecessors(path)) if path in self.graph else set()

    def neighbours(self, path: str) -> set[str]:
        return self.outlinks(path) | self.backlinks(path)

    def adamic_adar(self, path: str) -> dict[str, tuple[float, int]]:
        """For every note sharing a neighbour with `path`: (Adamic-Adar score, shared neighbours).

        Shared neighbours are notes both link to, notes linking to both (co-citation) or any mix;
        a hub shared by everything counts little (1 / log degree). Neighbours in `exclude` are
        ignored: when the note's own links are being predicted, they must not be used as evidence.
        """
        scores: dict[str, list] = {}
        for middle in self.neighbours(path):
            around = self.neighbours(middle)
            weight = 1.0 / math.log(max(len(around), 2))
            for other in around:
                if other != path:
                    entry = scores.setdefault(other, [0.0, 0])
                    entry[0] += weight
                    entry[1] += 1
        return {k: (v[0], v[1]) for k, v in scores.items()}
