"""The hand-off of writes to the bridge plugin: the queue's bookkeeping over a controlled clock.

The hand-off through the API (files, the store, the endpoints) is tested in test_api.py.
"""

from __future__ import annotations

from ideaweave import frontmatter
from ideaweave.handoff import BRIDGE_SECONDS, OFFER_SECONDS, TAKEN_BACK_MEMORY, WriteQueue
from ideaweave.writer import Write, checksum


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_write(path: str = "n.md", related=("[[b]]",)) -> Write:
    return Write(path, {"related": list(related), "summary": None}, {"related": list(related), "pinned": []})


def test_queue_offers_until_acked_and_settles_each_id_once():
    clock = Clock()
    queue = WriteQueue(clock)
    assert not queue.connected
    first = queue.offer(a_write(), "base")
    queue.polled()  # what GET /writes does before it reads the queue
    assert [e.id for e in queue.pending()] == [first]
    assert queue.connected
    clock.now += 5
    assert [e.id for e in queue.pending()] == [first]  # unacked: offered again, same id
    settled = queue.ack(first, applied=True)
    assert settled.entry.id == first and settled.applied and settled.newest
    assert queue.ack(first, applied=True) is None
    assert queue.ack(first, applied=False) is None
    assert queue.ack("w-unknown", applied=True) is None
    assert queue.pending() == []
    clock.now += BRIDGE_SECONDS
    assert not queue.connected


def test_reading_the_queue_does_not_connect_the_bridge():
    clock = Clock()
    queue = WriteQueue(clock)
    queue.offer(a_write(), "base")
    for _ in range(3):
        assert len(queue.pending()) == 1
        assert not queue.connected  # only the plugin's poll connects it, not whoever reads the queue
    queue.polled()
    assert queue.connected
    clock.now += BRIDGE_SECONDS - 1
    queue.pending()  # a read does not renew the connection either
    clock.now += 1
    assert not queue.connected
    queue.polled()
    assert queue.connected


def test_queue_takes_back_writes_not_acked_in_time_and_honours_a_late_ack():
    clock = Clock()
    queue = WriteQueue(clock)
    early = queue.offer(a_write("a.md"), "base-a")
    clock.now += 30
    late = queue.offer(a_write("b.md"), "base-b")
    clock.now += OFFER_SECONDS - 30
    assert [e.id for e in queue.expired()] == [early]
    assert queue.expired() == []
    assert [e.id for e in queue.pending()] == [late]
    # The plugin applied it just before the deadline; its ack arrives after: still recorded, once.
    settled = queue.ack(early, applied=True)
    assert settled is not None and settled.newest
    assert queue.ack(early, applied=True) is None


def test_a_newer_write_to_the_same_note_supersedes_and_wins():
    queue = WriteQueue(Clock())
    old = queue.offer(a_write("a.md", ["[[b]]"]), "base")
    new = queue.offer(a_write("a.md", ["[[c]]"]), "base")
    assert [e.id for e in queue.pending()] == [new]
    assert queue.awaiting("a.md") and not queue.awaiting("b.md")
    assert queue.ack(new, applied=True).newest
    # The old write's ack straggles in afterwards: its content no longer describes the file.
    assert queue.ack(old, applied=True).newest is False
    assert not queue.awaiting("a.md")


def test_a_withdrawn_write_is_no_longer_offered_but_its_late_ack_counts_once():
    queue = WriteQueue(Clock())
    first = queue.offer(a_write("a.md"), "base")
    assert queue.withdraw(first).id == first
    assert queue.withdraw(first) is None
    assert queue.pending() == [] and len(queue) == 0
    assert queue.ack(first, applied=True).newest
    assert queue.ack(first, applied=True) is None


def test_taken_back_writes_are_remembered_only_so_many_at_a_time():
    queue = WriteQueue(Clock())
    ids = [queue.offer(a_write(f"n{i}.md"), "base") for i in range(TAKEN_BACK_MEMORY + 1)]
    for write_id in ids:
        queue.withdraw(write_id)
    assert queue.ack(ids[0], applied=True) is None  # the oldest was forgotten
    assert queue.ack(ids[1], applied=True) is not None


def test_a_pending_write_knows_the_file_it_was_planned_from_and_the_file_that_holds_it():
    base = b"---\ntitle: N\nsummary: old\n---\n# N\n\nBody.\n"
    queue = WriteQueue(Clock())
    queue.offer(a_write("n.md", ["[[b]]"]), checksum(base))
    entry = queue.pending()[0]
    assert entry.as_json() == {"id": entry.id, "path": "n.md", "set": {"related": ["[[b]]"]}, "remove": ["summary"]}
    assert entry.planned_from(base) and not entry.planned_from(base + b"typed\n")
    applied = frontmatter.set_managed(base, entry.write.values)
    assert entry.held_by(applied)
    assert not entry.held_by(base)  # the old summary is still there
    assert not entry.held_by(frontmatter.set_managed(base, {"related": ["[[c]]"], "summary": None}))
    assert not entry.held_by(b"---\n[unclosed\n---\nBody\n")  # unreadable frontmatter holds nothing
