"""Hub notes: one note per topic in a folder ideaweave owns, so that Obsidian's own graph view shows the
vault's topics with a hub at the centre of each cluster.

A hub holds its topic's name, its one-sentence description, links to its notes (most central first), to
its broader and finer topics and to its neighbouring topics. Ownership follows the rules of the managed
keys, per file:
- ideaweave remembers the checksum of every hub it wrote (`hubs.written` in the store's settings);
- a hub whose bytes differ from what ideaweave last wrote was edited by the user: it is theirs from then
  on, left alone forever (still the hub its topic links to), and `status` says so;
- a file in the folder that ideaweave never wrote is the user's own note: never written over, and its
  name is not taken;
- a hub is written only when its text changes, and removed only when its topic is gone and the user never
  edited it; a topic that is renamed moves its hub to the new name.
Nothing is ever written outside the folder.

Hubs name no private note: a topic that only a private note can speak for gets no hub, and a hub lists
only the public notes of its topic.

`plan_hubs` decides, over plain data; `write_hubs` carries a plan out; `update_hubs` is the shell the CLI
and the daemon call.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from . import frontmatter
from .atomic import create_file, fsync_folder
from .failures import NoteGuard
from .frontmatter import Unwritable
from .topics import Topic
from .writer import NoteState, NoteWriter, Write, atomic_replace, checksum, plan_topic

log = logging.getLogger(__name__)

KEYS_WRITTEN = "hubs.keys_written"  # store setting: "yes" once a note's topic key was written
HUB_LEDGER = "hubs.written"  # store setting: {path: {"topic": id, "sha256": ..., "user": bool}}
HUB_NOTES = 200  # notes a hub links to, most central first; the rest are counted
NAME_BYTES = 200  # and at most this many bytes in UTF-8 (file names stop at 255; room for " (2).md")
NAME_CHARS = 80  # longest file name a hub gets (before a collision's " (2)")
HUB_MODE = 0o644  # a hub is a note of the vault, readable like the user's own
# Characters Obsidian refuses in file names or reads as link syntax, and line breaks.
_UNSAFE = re.compile(r'[\\/:*?"<>|#^\[\]\x00-\x1f\x7f]+')
_NUMBERED = re.compile(r"^(.*) \((\d+)\)$")


@dataclass(frozen=True)
class HubRecord:
    """What ideaweave remembers of one hub file."""

    topic: str  # the id of the topic it was written for
    sha256: str  # the checksum of the bytes ideaweave last wrote
    user: bool = False  # the user edited it: theirs, never touched again

    def as_json(self) -> dict:
        return {"topic": self.topic, "sha256": self.sha256, "user": self.user}


@dataclass(frozen=True)
class HubWrite:
    path: str
    text: str
    expected: str | None  # the checksum the file must still have (None: it must not exist yet)


@dataclass(frozen=True)
class HubPlan:
    hub_of: dict[str, str]  # topic id -> its hub's path (ideaweave's or the user's)
    writes: list[HubWrite]
    removals: list[tuple[str, str]]  # (path, the checksum it must still have)
    ledger: dict[str, HubRecord]  # what to remember once the plan is carried out
    unchanged: int = 0

    @property
    def user_hubs(self) -> list[str]:
        return sorted(p for p, r in self.ledger.items() if r.user)


@dataclass
class HubReport:
    folder: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    user_hubs: list[str] = field(default_factory=list)  # hubs the user edited: left alone
    conflicts: list[str] = field(default_factory=list)  # changed under the write: left for the next round
    hub_of: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"folder": self.folder, "written": self.written, "removed": self.removed, "unchanged": self.unchanged,
                "user_hubs": self.user_hubs, "conflicts": self.conflicts}

    def describe(self) -> str:
        line = (f"hub notes in {self.folder}/: {len(self.written)} written, {self.unchanged} unchanged, "
                f"{len(self.removed)} removed")
        if self.user_hubs:
            line += f"; {len(self.user_hubs)} edited by you, left alone"
        return line


# ------------------------------------------------------------------ deciding (pure)


def hub_stem(name: str) -> str:
    """A topic's name as a file name: characters Obsidian refuses dropped, at most NAME_CHARS, never empty."""
    stem = " ".join(_UNSAFE.sub(" ", name).split()).strip(". ")[:NAME_CHARS]
    while len(stem.encode("utf-8")) > NAME_BYTES:  # file systems count bytes: 80 emoji are 320 of them
        stem = stem[:-1]
    stem = stem.rstrip(". ")
    stem = stem[:1].upper() + stem[1:]
    return stem or "Topic"


def link_to(path: str) -> str:
    """A wikilink to a vault file by its full path (unambiguous whatever else is named alike)."""
    return f"[[{path[:-3] if path.endswith('.md') else path}]]"


def hub_topics(topics: Sequence[Topic], private: Set[str]) -> list[Topic]:
    """The topics that get a hub: not one that only a private note speaks for (its name and description
    are that note's words), and not a finer topic holding exactly its broader topic's notes (the broader
    hub stands for it)."""
    by_id = {t.id: t for t in topics}
    chosen = []
    for topic in topics:
        if topic.central is None or topic.central in private:
            continue
        parent = by_id.get(topic.parent) if topic.parent else None
        if parent is not None and set(parent.notes) == set(topic.notes):
            continue
        chosen.append(topic)
    return chosen


def note_hubs(topics: Sequence[Topic], hub_of: Mapping[str, str]) -> dict[str, str]:
    """Each note's hub: that of its finest topic that has one."""
    found: dict[str, str] = {}
    for topic in sorted(topics, key=lambda t: t.level):  # finer levels overwrite broader ones
        path = hub_of.get(topic.id)
        if path is not None:
            for note in topic.notes:
                found[note] = path
    return found


def _free_path(folder: str, stem: str, taken: set[str]) -> str:
    """`folder/stem.md`, or `folder/stem (2).md` and so on when that name is taken (case folded, as
    macOS and Windows compare names)."""
    number = 1
    while True:
        path = f"{folder}/{stem}.md" if number == 1 else f"{folder}/{stem} ({number}).md"
        if path.casefold() not in taken:
            return path
        number += 1


def _stem_of(path: str) -> str:
    """The name a hub's path was made from, without a collision's " (2)"."""
    stem = path.rsplit("/", 1)[-1][:-3]
    numbered = _NUMBERED.match(stem)
    return numbered.group(1) if numbered else stem


def settle_ownership(ledger: Mapping[str, HubRecord], on_disk: Mapping[str, str]) -> dict[str, HubRecord]:
    """The ledger as the folder now shows it: a hub whose bytes changed became the user's (for good); a
    hub of ours that is gone was deleted, and is forgotten (its topic gets a hub again)."""
    settled = {}
    for path, record in ledger.items():
        now = on_disk.get(path)
        if record.user:
            if now is not None:
                settled[path] = record
        elif now is None:
            continue
        elif now != record.sha256:
            settled[path] = dataclasses.replace(record, user=True)
        else:
            settled[path] = record
    return settled


def assign_paths(chosen: Sequence[Topic], ledger: Mapping[str, HubRecord], on_disk: Mapping[str, str],
                 folder: str) -> dict[str, str]:
    """topic id -> hub path. A topic keeps the hub it had while its name makes the same file name (or while
    the user owns that hub); a new or renamed topic takes its name's file, numbered past taken names."""
    ours = {p: r for p, r in ledger.items() if not r.user}
    users = {r.topic: p for p, r in ledger.items() if r.user}
    # The user's files (their own notes and the hubs they edited) keep their names.
    taken = {p.casefold() for p in on_disk if p not in ours}
    had = {r.topic: p for p, r in ours.items()}
    paths: dict[str, str] = {}
    for topic in chosen:
        if topic.id in users:
            paths[topic.id] = users[topic.id]
        elif topic.id in had and _stem_of(had[topic.id]) == hub_stem(topic.name):
            paths[topic.id] = had[topic.id]
            taken.add(had[topic.id].casefold())
    for topic in chosen:
        if topic.id not in paths:
            paths[topic.id] = _free_path(folder, hub_stem(topic.name), taken)
            taken.add(paths[topic.id].casefold())
    return paths


def render_hub(topic: Topic, hub_of: Mapping[str, str], children: Mapping[str, Sequence[str]], private: Set[str]) -> str:
    """A hub's text: plain markdown whose links Obsidian's graph view draws. `children`: topic id -> the ids
    of its finer topics."""
    title = topic.name[:1].upper() + topic.name[1:]
    lines = ["---", "ideaweave: topic hub", f"level: {topic.level}", "---", f"# {title}", ""]
    if topic.description:
        lines += [" ".join(topic.description.split()), ""]

    def linked(ids: Sequence[str]) -> list[str]:
        return [f"- {link_to(hub_of[i])}" for i in ids if i in hub_of and i != topic.id]

    broader = linked([topic.parent] if topic.parent else [])
    finer = linked(children.get(topic.id, ()))
    around = linked(topic.neighbours)
    for heading, links in (("Broader topic", broader), ("Finer topics", finer), ("Neighbouring topics", around)):
        if links:
            lines += [f"## {heading}", *links, ""]
    public = [n for n in topic.notes if n not in private]
    lines += ["## Notes", *(f"- {link_to(n)}" for n in public[:HUB_NOTES])]
    if len(public) > HUB_NOTES:
        lines.append(f"- … and {len(public) - HUB_NOTES} more")
    lines += ["", "*Written by ideaweave from the vault's topics. Edit this note and it becomes yours: "
              "ideaweave then leaves it alone.*", ""]
    return "\n".join(lines)


def plan_hubs(topics: Sequence[Topic], ledger: Mapping[str, HubRecord], on_disk: Mapping[str, str], folder: str,
              private: Set[str]) -> HubPlan:
    """What to write, remove and remember so that the folder holds one hub per topic. `on_disk` is the
    checksum of every note now in the folder; `private` the paths of private notes."""
    folder = folder.strip("/")
    ledger = settle_ownership(ledger, on_disk)
    chosen = hub_topics(topics, private)
    hub_of = assign_paths(chosen, ledger, on_disk, folder)
    children: dict[str, list[str]] = {}
    for t in topics:
        if t.parent is not None:
            children.setdefault(t.parent, []).append(t.id)
    users = {p for p, r in ledger.items() if r.user}
    remembered = {p: r for p, r in ledger.items() if r.user}
    writes, unchanged = [], 0
    for topic in chosen:
        path = hub_of[topic.id]
        if path in users:
            continue  # the user's now: left as they made it
        text = render_hub(topic, hub_of, children, private)
        digest = checksum(text.encode("utf-8"))
        remembered[path] = HubRecord(topic.id, digest)
        if on_disk.get(path) == digest:
            unchanged += 1
        else:
            writes.append(HubWrite(path, text, on_disk.get(path)))
    removals = [(p, r.sha256) for p, r in ledger.items() if not r.user and p not in remembered]
    return HubPlan(hub_of, writes, sorted(removals), remembered, unchanged)


# ------------------------------------------------------------------ carrying it out (thin)


def read_ledger(store) -> dict[str, HubRecord]:
    """What ideaweave remembers of the hubs it wrote (nothing when the record cannot be read)."""
    raw = store.get_setting(HUB_LEDGER)
    try:
        return {p: HubRecord(r["topic"], r["sha256"], bool(r.get("user"))) for p, r in json.loads(raw).items()} if raw else {}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_ledger(store, ledger: Mapping[str, HubRecord]) -> None:
    store.put_setting(HUB_LEDGER, json.dumps({p: r.as_json() for p, r in sorted(ledger.items())}))


_owned_cache: dict[int, tuple[str | None, frozenset[str]]] = {}


def owned_hub_paths(store) -> frozenset[str]:
    """The files ideaweave wrote as hubs (the user's edited ones too): the scanner leaves them out of the
    index, or hubs would be related to everything they link to. Asked once per file event: the record is
    parsed again only when it changed (by this process or another)."""
    raw = store.get_setting(HUB_LEDGER)
    seen = _owned_cache.get(id(store))
    if seen is None or seen[0] != raw:
        seen = (raw, frozenset(read_ledger(store)))
        _owned_cache[id(store)] = seen
    return seen[1]


def folder_checksums(root: Path, folder: str) -> dict[str, str]:
    """The checksum of every note directly inside the folder (hubs are never written deeper)."""
    folder = folder.strip("/")
    found = {}
    try:
        entries = list(os.scandir(root / folder))
    except OSError:
        return {}
    for entry in entries:
        if entry.name.endswith(".md") and not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
            try:
                found[f"{folder}/{entry.name}"] = checksum(Path(entry.path).read_bytes())
            except OSError:  # unreadable: treated as the user's, so never written over
                found[f"{folder}/{entry.name}"] = ""
    return found


def write_hubs(root: Path, store, plan: HubPlan, previous: Mapping[str, HubRecord], folder: str) -> HubReport:
    """Carry out a plan. The ledger is saved before the files change, so that the watcher never takes a
    hub being written for a note of the user's, and again after, without what could not be done."""
    report = HubReport(folder.strip("/"), unchanged=plan.unchanged, user_hubs=plan.user_hubs, hub_of=dict(plan.hub_of))
    changes_files = bool(plan.writes or plan.removals)
    saved = {**previous, **plan.ledger} if changes_files else dict(previous)
    if changes_files:
        save_ledger(store, saved)
    final = dict(plan.ledger)
    if plan.writes:
        (root / report.folder).mkdir(parents=True, exist_ok=True)
    for write in plan.writes:
        if _carried_out(write.path, lambda: _write_hub(root / write.path, write)):
            report.written.append(write.path)
        else:  # the user got there first: their bytes stay, and the next round sees whose file it is
            report.conflicts.append(write.path)
            if write.expected is None:
                final.pop(write.path, None)
            else:
                final[write.path] = previous.get(write.path, final[write.path])
    for path, expected in plan.removals:
        if _carried_out(path, lambda: _remove_hub(root / path, expected)):
            report.removed.append(path)
        else:
            report.conflicts.append(path)
            final[path] = previous[path]
    if final != saved:
        save_ledger(store, final)
    return report


def _carried_out(path: str, action: Callable[[], bool]) -> bool:
    """One hub's write or removal; a file system that refuses it (permissions, a name too long) costs that
    hub only: one line, and the hub counts as not done, to be tried again on the next round."""
    try:
        return action()
    except OSError as error:
        log.warning("%s: hub left as it is: %s", path, error)
        return False


def _write_hub(path: Path, write: HubWrite) -> bool:
    data = write.text.encode("utf-8")
    if write.expected is None:
        return create_file(path, data, HUB_MODE)
    return atomic_replace(path, data, write.expected) is None


def _remove_hub(path: Path, expected: str) -> bool:
    """Delete a hub only while it holds what ideaweave wrote."""
    try:
        if checksum(path.read_bytes()) != expected:
            return False
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    fsync_folder(path.parent)
    return True


def update_hubs(root: Path, store, topics: Sequence[Topic], folder: str, private: Set[str]) -> HubReport:
    """Bring the hub folder in step with `topics`: the one shell the CLI and the daemon call."""
    previous = read_ledger(store)
    plan = plan_hubs(topics, previous, folder_checksums(root, folder), folder, private)
    report = write_hubs(root, store, plan, previous, folder)
    if report.written or report.removed:
        log.info("%s", report.describe())
    return report


def user_hubs(root: Path, store, folder: str) -> list[str]:
    """The hubs the user edited, which ideaweave leaves alone (for `status`), as the folder shows them now."""
    settled = settle_ownership(read_ledger(store), folder_checksums(root, folder))
    return sorted(p for p, r in settled.items() if r.user)


# ------------------------------------------------------------------ the `topic` key in each note (thin)


@dataclass
class KeyReport:
    written: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)  # only the daemon meets the Obsidian bridge

    def as_json(self) -> dict:
        return {"written": self.written, "deferred": self.deferred,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def write_topic_keys(writer: NoteWriter, notes: Sequence[str], note_hub: Mapping[str, str], key: str,
                     enabled: bool) -> KeyReport:
    """Write `key: "[[<hub>]]"` into each of `notes` (or, not `enabled`, remove the key ideaweave wrote), by
    the rules of the other managed keys and through the same `writer`: only the key's lines change,
    atomically, never over a change ideaweave has not seen, handed to the Obsidian bridge while it is
    connected, and a note that cannot be written gets its write issue in `status`. A value the user
    edited or removed is theirs. A note whose remembered value is already the one wanted is not even read."""
    report = KeyReport()
    store = writer.store
    if not enabled and store.get_setting(KEYS_WRITTEN) != "yes":
        return report  # no key to take back: the notes' records need not be read
    guard = NoteGuard(lambda failure: _failed(store, failure, report))
    remembered = {path: record.values.get(key) for path, record in store.all_written().items()}
    for path in notes:
        link = link_to(note_hub[path]) if enabled and path in note_hub else None
        if remembered.get(path) == link:
            continue
        with guard.note(path) as at:
            at.stage = "write"
            _write_topic_key(writer, path, key, link, report)
    if enabled and report.written:
        store.put_setting(KEYS_WRITTEN, "yes")
    elif not enabled and not report.deferred and not any(v for p, v in remembered.items() if p not in report.written):
        store.put_setting(KEYS_WRITTEN, "")
    return report


def _failed(store, failure, report: KeyReport) -> None:
    """A topic key's write that raised: that note's failure, recorded as a sync's would be (`status`)."""
    report.skipped.append((failure.path, failure.reason))
    store.record_problem(failure.path, failure.stage, failure.reason)


def _write_topic_key(writer: NoteWriter, path: str, key: str, link: str | None, report: KeyReport) -> None:
    planned = _plan_topic_key(writer, path, key, link, report)
    if planned is None:
        return
    outcome = writer.write(*planned, replan=lambda: _plan_topic_key(writer, path, key, link, KeyReport()))
    if outcome.status == "written":
        report.written.append(path)
    elif outcome.status == "deferred":
        report.deferred.append(path)
    elif outcome.status == "handed_off":
        report.handed_off.append(path)
    elif outcome.status == "skipped":
        report.skipped.append((path, outcome.reason or "not written"))


def _plan_topic_key(writer: NoteWriter, path: str, key: str, link: str | None,
                    report: KeyReport) -> tuple[Write, bytes] | None:
    """(the write, the bytes it was planned from) for one note's topic key as the note is on disk now;
    None when nothing is to be written (why, when it is a problem, goes to `report` and the note's record)."""
    store = writer.store
    try:
        base = (writer.root / path).read_bytes()
    except OSError as exc:
        report.skipped.append((path, f"cannot be read: {exc.strerror or exc}"))
        return None
    current = frontmatter.read_managed(base, (key,))
    if isinstance(current, Unwritable):
        report.skipped.append((path, current.reason))
        store.set_write_issue(path, current.reason)
        return None
    last = store.last_written(path)
    write, problem = plan_topic(NoteState(path, current, last.values if last else None), key, link)
    if problem:
        report.skipped.append((path, problem))
        store.set_write_issue(path, problem)
    return None if write is None else (write, base)


# ------------------------------------------------------------------ the one shell the CLI and the daemon call


@dataclass
class Published:
    hubs: HubReport | None
    keys: KeyReport

    def as_json(self) -> dict:
        return {"hubs": self.hubs.as_json() if self.hubs else None, "keys": self.keys.as_json()}

    def describe(self) -> str:
        lines = [self.hubs.describe()] if self.hubs else []
        if self.keys.written or self.keys.deferred or self.keys.handed_off:
            handed = f", {len(self.keys.handed_off)} handed to Obsidian" if self.keys.handed_off else ""
            lines.append(f"topic keys: {len(self.keys.written)} notes written, {len(self.keys.deferred)} deferred{handed}")
        return "\n".join(lines)


def publish_topics(writer: NoteWriter, topics: Sequence[Topic], notes: Sequence[str], private: Set[str], folder: str,
                   hubs: bool, key: str, keys: bool) -> Published:
    """Hubs (when `hubs`) and each note's topic key (when `keys`; else the keys ideaweave wrote are removed),
    the keys written through `writer`, the way every managed key is written."""
    report = update_hubs(writer.root, writer.store, topics, folder, private) if hubs else None
    note_hub = note_hubs(topics, report.hub_of) if report else {}
    return Published(report, write_topic_keys(writer, notes, note_hub, key, keys and hubs))
