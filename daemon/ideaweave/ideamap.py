"""The idea map: the vault as one picture, written as a self-contained HTML page.

Each fine topic (level 1) is a disc whose area is its number of notes. The discs are placed by a force layout
(networkx's spring layout, seeded) of the topic graph, in two steps: the fine topics of each broad topic around
it, then the broad topics among themselves; in both, each topic is pulled towards the topics `topics` lists as
its neighbours, as strongly as their notes' mean vectors agree, and overlapping discs are then pushed apart. Inside a disc the most
central notes sit in the middle and the angle of each note comes from the two main directions of its topic's
note vectors (PCA), so notes about the same side of a topic sit side by side. Colours are the broad topics.

`build_map` decides, over plain data; `vault_map` reads what it needs; `render_page` writes the page: the
template and its script (package data under `mapview/`) with the map inlined, so it opens from a file with no
network at all (its content security policy forbids any request).

A private note is a point without a title, a summary or a path, unless the user asks for them."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import networkx as nx
import numpy as np

from .corpus import Corpus
from .topics import Topic
from .vectors import normalise_rows

SEED = 0  # the spring layout starts from random places: one seed, one picture
GAP = 1.5  # room between two discs, in the units of a note's share of a disc (about one note's spacing)
SPREAD_PASSES = 200  # at most this many passes of pushing overlapping discs apart
PACK_ROUNDS = 8  # rounds of drawing the discs together (each pulls them PULL of the way in, then spreads)
PULL = 0.75
PACK_PASSES = 20
SUMMARY_CHARS = 300  # a hover shows this much of a summary


@dataclass(frozen=True)
class MapTopic:
    id: str
    name: str
    level: int
    parent: str | None
    x: float  # the centre of its notes
    y: float
    radius: float  # level 1: its disc; level 0: the extent of its discs
    colour: int  # the index of its broad topic, largest first
    notes: int


@dataclass(frozen=True)
class MapNote:
    path: str | None  # None: a private note, not shown
    title: str
    summary: str
    x: float
    y: float
    topic: int  # index of its fine topic in IdeaMap.topics
    colour: int


@dataclass(frozen=True)
class IdeaMap:
    vault: str  # the vault's name, as Obsidian's links name it
    topics: tuple[MapTopic, ...]
    notes: tuple[MapNote, ...]

    def as_json(self) -> dict:
        """Compact: notes as columns, a 10,000-note map is then about a megabyte with summaries."""
        return {
            "vault": self.vault,
            "topics": [{"id": t.id, "name": t.name, "level": t.level, "parent": t.parent, "x": round(t.x, 2),
                        "y": round(t.y, 2), "r": round(t.radius, 2), "colour": t.colour, "notes": t.notes}
                       for t in self.topics],
            "notes": {"path": [n.path for n in self.notes], "title": [n.title for n in self.notes],
                      "summary": [n.summary for n in self.notes], "x": [round(n.x, 2) for n in self.notes],
                      "y": [round(n.y, 2) for n in self.notes], "topic": [n.topic for n in self.notes],
                      "colour": [n.colour for n in self.notes]},
        }


# ------------------------------------------------------------------ layout (pure)


def disc_radius(notes: int) -> float:
    """A disc's area is its number of notes (one unit of area each)."""
    return math.sqrt(max(notes, 1) / math.pi) + 0.5


def topic_layout(fine: Sequence[Topic], centroids: np.ndarray) -> np.ndarray:
    """The centres of the fine topics' discs (one row each), in two steps so that a broad topic's parts sit
    together and no step compares every fine topic with every other: the fine topics of each broad topic are
    laid out around it, then the broad topics, each as wide as its parts, are laid out among themselves."""
    count = len(fine)
    if count == 0:
        return np.zeros((0, 2))
    groups: dict[str | None, list[int]] = {}
    for i, topic in enumerate(fine):
        groups.setdefault(topic.parent if topic.level == 1 else topic.id, []).append(i)
    radii = np.array([disc_radius(len(t.notes)) for t in fine])
    members = list(groups.values())
    offsets = [spring_places([fine[i] for i in m], centroids[m], radii[m]) for m in members]
    reach = np.array([max(float(np.hypot(*o[k])) + radii[i] for k, i in enumerate(m)) for m, o in zip(members, offsets)])
    group_centroids = normalise_rows(np.array([centroids[m].mean(axis=0) for m in members]))
    group_of = {fine[i].id: g for g, m in enumerate(members) for i in m}
    # Two broad topics are neighbours when any of their parts are (sorted: one order, one picture).
    neighbours = [tuple(sorted({f"g{group_of[n]}" for i in m for n in fine[i].neighbours if n in group_of} - {f"g{g}"}))
                  for g, m in enumerate(members)]
    stand_ins = [Topic(f"g{g}", 0, None, "", (), None, "", (), neighbours[g]) for g in range(len(members))]
    centres = np.zeros((count, 2))
    for m, o in zip(members, offsets):
        centres[m] = o
    places = spring_places(stand_ins, group_centroids, reach)
    for g, m in enumerate(members):
        centres[m] += places[g]
    return centres


def spring_places(topics: Sequence[Topic], centroids: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Centres for discs of `radii`, one per topic: a spring layout (networkx, seeded) of the topics, each
    pulled towards the topics it lists as neighbours as strongly as their notes' mean vectors agree, then drawn
    together until no two discs overlap and none is far from the rest."""
    count = len(topics)
    if count == 1:
        return np.zeros((1, 2))
    at = {t.id: i for i, t in enumerate(topics)}
    graph = nx.Graph()
    graph.add_nodes_from(range(count))
    for i, topic in enumerate(topics):
        for other in topic.neighbours:
            j = at.get(other)
            if j is not None and j != i:  # a listed neighbour always pulls a little
                graph.add_edge(i, j, weight=max(float(centroids[i] @ centroids[j]), 0.05))
    # The force method: networkx's default above 500 nodes (an optimiser over every pair) is ten times slower.
    placed = nx.spring_layout(graph, weight="weight", seed=SEED, iterations=100, method="force")
    centres = np.array([placed[i] for i in range(count)], dtype=float)
    centres -= centres.mean(axis=0)
    # Scaled until half the discs are clear of every other (the layout's shape kept); the rest are then pushed
    # apart. Any scale fixed in advance leaves a few far-flung topics, or a crowd, depending on the graph.
    distance = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(distance, np.inf)
    clear_at = ((radii[:, None] + radii[None, :] + GAP) / np.maximum(distance, 1e-9)).max(axis=1)
    return packed(centres * float(np.median(clear_at)), radii)


def packed(centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """The discs drawn together without overlapping: rounds of pulling every disc towards the middle and
    pushing overlapping ones apart, so a topic the layout flung far out comes back next to the others while
    neighbours stay side by side."""
    for _ in range(PACK_ROUNDS):
        centres = spread_discs(centres * PULL, radii, passes=PACK_PASSES)
    return spread_discs(centres, radii)


def spread_discs(centres: np.ndarray, radii: np.ndarray, gap: float = GAP, passes: int = SPREAD_PASSES) -> np.ndarray:
    """The centres moved as little as it takes for no two discs to overlap: each pass pushes every overlapping
    pair apart along the line joining them, the smaller disc the further."""
    centres = centres.copy()
    rng = np.random.default_rng(SEED)
    for _ in range(passes):
        delta = centres[:, None, :] - centres[None, :, :]
        distance = np.sqrt((delta ** 2).sum(axis=2))
        wanted = radii[:, None] + radii[None, :] + gap
        overlap = np.triu(wanted - distance, 1)
        if overlap.max(initial=0) <= 1e-6:
            break
        i, j = np.nonzero(overlap > 1e-6)
        d = distance[i, j]
        direction = np.where(d[:, None] > 1e-9, delta[i, j] / np.maximum(d, 1e-9)[:, None],
                             rng.normal(size=(len(i), 2)))  # two discs on one spot part in any direction
        push = overlap[i, j][:, None] * direction
        share = (radii[j] / (radii[i] + radii[j]))[:, None]  # the smaller disc moves more
        np.add.at(centres, i, push * share)
        np.add.at(centres, j, -push * (1 - share))
    return centres


def note_layout(vectors: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Points for a topic's notes (given most central first) inside its disc: the k-th note at radius
    proportional to sqrt(k), so the disc fills evenly with the central notes in the middle, and at the angle of
    the note on its topic's two main directions."""
    count = len(vectors)
    if count == 0:
        return np.zeros((0, 2))
    centred = vectors - vectors.mean(axis=0)
    if count >= 3:
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        plane = centred @ axes[:2].T
        angles = np.arctan2(plane[:, 1], plane[:, 0])
    else:
        angles = np.arange(count) * math.pi
    reach = (radius - 0.5) * np.sqrt(np.arange(count) / count)
    return centre + np.column_stack([reach * np.cos(angles), reach * np.sin(angles)])


# ------------------------------------------------------------------ the map (pure)


def build_map(topics: Sequence[Topic], vault: str, vector_of: Callable[[str], np.ndarray | None],
              title_of: Callable[[str], str], summary_of: Callable[[str], str | None],
              private: Callable[[str], bool], include_private: bool = False) -> IdeaMap:
    """The map of `topics` (as `vault_topics` gives them). A note without a vector is left out; a private note
    keeps its place but shows no title, summary or path unless `include_private`."""
    broad = [t for t in topics if t.level == 0]
    fine = [t for t in topics if t.level == 1] or broad  # a vault too small to split has one level
    colour_of = {t.id: i for i, t in enumerate(broad)}
    members: list[list[tuple[str, np.ndarray]]] = []
    for topic in fine:
        found = [(path, vector_of(path)) for path in topic.notes]
        members.append([(path, v) for path, v in found if v is not None])
    kept = [(t, m) for t, m in zip(fine, members) if m]
    fine = [t for t, _ in kept]
    stacked = [np.vstack([v for _, v in m]) for _, m in kept]
    centroids = normalise_rows(np.array([s.mean(axis=0) for s in stacked])) if stacked else np.zeros((0, 1))
    centres = topic_layout(fine, centroids)
    notes: list[MapNote] = []
    map_fine: list[MapTopic] = []
    for index, ((topic, group), vectors, centre) in enumerate(zip(kept, stacked, centres)):
        radius = disc_radius(len(group))
        colour = colour_of.get(topic.parent if topic.level == 1 else topic.id, 0)
        for (path, _), (x, y) in zip(group, note_layout(vectors, centre, radius)):
            shown = include_private or not private(path)
            notes.append(MapNote(path=path if shown else None, title=title_of(path) if shown else "",
                                 summary=(summary_of(path) or "")[:SUMMARY_CHARS] if shown else "",
                                 x=float(x), y=float(y), topic=index, colour=colour))
        map_fine.append(MapTopic(topic.id, topic.name, topic.level, topic.parent, float(centre[0]), float(centre[1]),
                                 radius, colour, len(group)))
    map_broad = [] if fine is broad else _broad_places(broad, map_fine, colour_of)
    return IdeaMap(vault, tuple(map_fine + map_broad), tuple(notes))


def _broad_places(broad: Sequence[Topic], fine: Sequence[MapTopic], colour_of: dict[str, int]) -> list[MapTopic]:
    """Each broad topic at the centre of its fine topics' notes, with the reach of their discs."""
    placed = []
    for topic in broad:
        parts = [f for f in fine if f.parent == topic.id]
        if not parts:
            continue
        weights = np.array([p.notes for p in parts], dtype=float)
        x = float(np.average([p.x for p in parts], weights=weights))
        y = float(np.average([p.y for p in parts], weights=weights))
        reach = max(math.hypot(p.x - x, p.y - y) + p.radius for p in parts)
        placed.append(MapTopic(topic.id, topic.name, 0, None, x, y, reach, colour_of[topic.id], int(weights.sum())))
    return placed


# ------------------------------------------------------------------ the page


def render_page(idea_map: IdeaMap) -> str:
    """The map as one HTML page: the template with its style, script and data inlined."""
    folder = resources.files("ideaweave") / "mapview"
    template = (folder / "map.html").read_text(encoding="utf-8")
    script = (folder / "map.js").read_text(encoding="utf-8")
    # "<" escaped: a title holding "</script>" must not end the data block.
    data = json.dumps(idea_map.as_json(), ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = f"{idea_map.vault}: idea map".replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (template.replace("{{TITLE}}", title).replace("/*{{SCRIPT}}*/", script.replace("</", "<\\/"))
            .replace("{{DATA}}", data))


# ------------------------------------------------------------------ the shell


def vault_map(corpus: Corpus, topics: Sequence[Topic], vault: str, summary_of: Callable[[str], str | None],
              include_private: bool = False) -> IdeaMap:
    """The one answer to "what does the vault look like", for the command and the API alike."""
    def vector_of(path: str) -> np.ndarray | None:
        i = corpus.index.get(path)
        return None if i is None else corpus.note_vectors[i]

    def title_of(path: str) -> str:
        return corpus.titles[corpus.index[path]]

    def private(path: str) -> bool:
        i = corpus.index.get(path)
        return True if i is None else bool(corpus.private[i])  # unknown: assume the worst

    return build_map(topics, vault, vector_of, title_of, summary_of, private, include_private)
