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


def test_hubs_and_dense_counting_give_what_sorting_gives(monkeypatch):
    """A hub's neighbourhood is kept between notes and followed through updates, and shared neighbours
    counted in one slot per note add up as sorting them does: to the last bit."""
    from ideaweave import graph as graph_module

    edges = [(f"x{i}.md", "hub.md") for i in range(300)] + [("hub.md", f"y{i}.md") for i in range(40)]
    edges += [("a.md", "hub.md"), ("b.md", "hub.md"), ("a.md", "x3.md"), ("x3.md", "c.md")]
    graph = LinkGraph(edges)
    assert "b.md" in graph.adamic_adar("a.md") and graph.ids["hub.md"] in graph._arounds
    graph.replace_outlinks("z.md", ["hub.md", "c.md"])  # the hub gains a backlink: its kept union is stale
    copied = graph.copy()
    graph.remove_note("b.md")
    out: dict[str, set[str]] = {}
    for s, t in graph.edges():
        out.setdefault(s, set()).add(t)
    for path in ("a.md", "z.md", "x7.md", "c.md", "y1.md"):
        want = reference_adamic_adar(out, path)
        for dense in (10**9, 0):  # always sort, always count in one slot per note
            monkeypatch.setattr(graph_module, "DENSE_COUNTING", dense)
            got = graph.adamic_adar(path)
            assert got.keys() == want.keys() and "b.md" not in got, (path, dense)
            assert all(math.isclose(got[o][0], score) and got[o][1] == count for o, (score, count) in want.items())
        monkeypatch.setattr(graph_module, "DENSE_COUNTING", 10**9)
        sorted_ = graph.adamic_adar(path)
        monkeypatch.setattr(graph_module, "DENSE_COUNTING", 0)
        assert graph.adamic_adar(path) == sorted_  # the very same floats
    assert "z.md" in copied.adamic_adar("a.md") and "b.md" in copied.adamic_adar("a.md")
