"""The link graph as integer arrays must answer what a plain graph of sets answers, through any sequence
of incremental updates."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from ideaweave.graph import LinkGraph

NAMES = [f"n{i}.md" for i in range(8)]
edge = st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES))
operation = st.one_of(
    st.tuples(st.just("replace"), st.sampled_from(NAMES), st.sets(st.sampled_from(NAMES), max_size=5)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES), st.just(frozenset())),
)


def reference_adamic_adar(out: dict[str, set[str]], path: str) -> dict[str, tuple[float, int]]:
    def around(p: str) -> set[str]:
        return out.get(p, set()) | {s for s, ts in out.items() if p in ts}

    scores: dict[str, list] = {}
    for middle in around(path):
        others = around(middle)
        weight = 1.0 / math.log(max(len(others), 2))
        for other in others - {path}:
            entry = scores.setdefault(other, [0.0, 0])
            entry[0] += weight
            entry[1] += 1
    return {k: (v[0], v[1]) for k, v in scores.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(edge, max_size=20), st.lists(operation, max_size=12))
def test_the_graph_follows_a_graph_of_sets(edges, operations):
    graph = LinkGraph(edges, nodes=NAMES[:4])
    out: dict[str, set[str]] = {}
    for s, t in edges:
        if s != t:
            out.setdefault(s, set()).add(t)
    copied = graph.copy()
    for kind, path, targets in operations:
        if kind == "replace":
            graph.replace_outlinks(path, targets)
            out[path] = set(targets) - {path}
        else:
            graph.remove_note(path)
            out.pop(path, None)
            for ts in out.values():
                ts.discard(path)
    for path in NAMES:
        assert graph.outlinks(path) == out.get(path, set())
        assert graph.backlinks(path) == {s for s, ts in out.items() if path in ts}
        got = graph.adamic_adar(path)
        want = reference_adamic_adar(out, path)
        assert got.keys() == want.keys()
        for other, (score, count) in want.items():
            assert math.isclose(got[other][0], score) and got[other][1] == count
    assert sorted(graph.edges()) == sorted((s, t) for s, ts in out.items() for t in ts)
    assert graph.number_of_edges() == sum(len(ts) for ts in out.values())
    # The copy taken before the updates still holds the original links.
    assert sorted(copied.edges()) == sorted({(s, t) for s, t in edges if s != t})


def test_a_hub_counts_little():
    """Two notes that share a note linked by everything are less related than two that share a rare one."""
    edges = [(f"x{i}.md", "hub.md") for i in range(50)] + [("a.md", "hub.md"), ("b.md", "hub.md"),
                                                          ("a.md", "rare.md"), ("c.md", "rare.md")]
    scores = LinkGraph(edges).adamic_adar("a.md")
    assert scores["c.md"][0] > scores["b.md"][0]
    assert scores["b.md"][1] == 1 and scores["c.md"][1] == 1
