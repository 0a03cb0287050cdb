"""Incremental indexing: vault files -> notes -> chunks -> vectors, kept in the store.

A note is re-read only when its size or mtime changed, re-chunked only when its content hash
changed, and a chunk is embedded only when no vector exists for its text's hash: a restart over
an unchanged vault, or a rename, embeds nothing. Vectors are stored before the note's new chunks
are, so a crash at any point leaves a store that the next run completes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .chunking import Chunk, chunk_note
from .embedding import Embedder
from .failures import INDEX_STAGES, NO_FAULTS, WARNING_STAGES, FaultPlan, NoteFailure, NoteGuard, is_about_the_note
from .store import ChunkRecord, LinkRecord, NoteRecord, NoteStat, Rewrite, Store
from .vault import (LinkResolver, Note, NoteFile, Skipped, VaultScanner, body_start, glob_matcher, link_names,
                    split_wikilink)

log = logging.getLogger(__name__)

# Chunks embedded per embedder call: large enough to pack full llama.cpp batches,
# small enough that progress moves and a crash loses little work.
EMBED_GROUP = 128

Progress = Callable[[int, int], None]  # (notes done, notes to do)
# A new phase of a full pass begins, with its notes to do: "embedding" when chunks stored without a vector
# (after a model change, the whole vault) are embedded, after every note was read.
PhaseStart = Callable[[str, int], None]
# Called between embedding groups of a full pass, when every note read so far is stored: the daemon
# handles the user's edits there (through `Indexer.update`, which may run inside the pass).
Pause = Callable[[], None]


@dataclass(frozen=True)
class ScanPlan:
    """What a scan found compared with the store: pure data, decided by plan_scan."""

    to_read: tuple[NoteFile, ...]
    deleted: tuple[str, ...]
    unchanged: int


@dataclass
class IndexReport:
    notes: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    read: int = 0
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)  # notes whose links now point elsewhere
    failed: list[NoteFailure] = field(default_factory=list)  # notes this run could not index
    locked: list[str] = field(default_factory=list)  # secure notes left unindexed: their key is not at hand

    def as_json(self) -> dict:
        return {
            "notes": self.notes, "chunks": self.chunks, "embedded_chunks": self.embedded_chunks,
            "seconds": round(self.seconds, 3), "read": self.read, "changed": self.changed,
            "deleted": self.deleted, "renamed": [list(pair) for pair in self.renamed],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "failed": [f.as_json() for f in self.failed], "locked": len(self.locked),
        }


def plan_scan(files: Sequence[NoteFile], known: dict[str, NoteStat],
              skipped: dict[str, tuple[int | None, int | None]]) -> ScanPlan:
    """Which files must be read: new ones and those whose size or mtime moved."""
    to_read, unchanged = [], 0
    for f in files:
        stat = known.get(f.path)
        if stat is not None and (stat.size, stat.mtime_ns) == (f.size, f.mtime_ns):
            unchanged += 1
        elif stat is None and skipped.get(f.path) == (f.size, f.mtime_ns):
            unchanged += 1  # skipped before and untouched since: the reason still holds
        else:
            to_read.append(f)
    present = {f.path for f in files}
    return ScanPlan(tuple(to_read), tuple(sorted(set(known) - present)), unchanged)


def note_record(note: Note) -> NoteRecord:
    return NoteRecord(note.path, note.title, note.size, note.mtime_ns, note.content_hash,
                      note.is_template, note.private, note.frontmatter)


def chunk_records(chunks: Iterable[Chunk]) -> list[ChunkRecord]:
    return [ChunkRecord(c.ordinal, c.heading or "", c.heading_path, c.start, c.end, c.hash, c.text) for c in chunks]


VECTOR_SAVE_INTERVAL = 60.0  # seconds


def body_shift(old_raw: bytes, new_raw: bytes) -> int | None:
    """How far a note's body moved when only its frontmatter changed (ideaweave's own writes): None unless
    the body, everything after the frontmatter block, is the same text in both."""
    try:
        old, new = old_raw.decode("utf-8-sig"), new_raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    old_start, new_start = body_start(old), body_start(new)
    return new_start - old_start if old[old_start:] == new[new_start:] else None


def link_records(note: Note, resolver: LinkResolver) -> list[LinkRecord]:
    records = []
    for link in note.links:
        target = resolver.resolve(link.target, note.path, markdown=link.kind == "markdown")
        raw = link.target if link.kind != "markdown" else "md:" + link.target
        records.append(LinkRecord(raw, target if target != note.path else None, link.heading, link.kind))
    return records


@dataclass
class Indexer:
    """Brings the store in step with the vault's files.

    `related_key`: the frontmatter key ideaweave writes links into (its written memory follows renames;
    None leaves that memory alone). `faults`: notes made to fail on purpose (tests).
    """

    scanner: VaultScanner
    store: Store
    embedder: Embedder
    max_tokens: int
    related_key: str | None = None
    faults: FaultPlan = NO_FAULTS
    # Told of each note stored, while it is parsed (`Summaries.remember` makes its summary then).
    on_stored: Callable[[Note], None] | None = None

    def __post_init__(self) -> None:
        self.resolver = LinkResolver(self.store.note_paths())
        self._stats: dict[str, tuple[int, int]] = {}  # (size, mtime_ns) of the files read in this run
        self._warned: dict[str, str] = {}  # the frontmatter warnings said before, by note
        self._guard = NoteGuard(lambda failure: None, self.faults)

    def run(self, progress: Progress | None = None, pause: Pause | None = None,
            group_chunks: int = EMBED_GROUP, phases: PhaseStart | None = None) -> IndexReport:
        """A full pass: scan the vault, index what changed, drop what is gone.

        `pause()` runs between groups of `group_chunks` chunks (smaller groups answer it sooner).
        `phases(name, total)` is told when the pass embeds chunks left without a vector; `progress`
        then counts the notes whose chunks are embedded."""
        started = time.perf_counter()
        files = self.scanner.scan()
        known = self.store.note_stats()
        plan = plan_scan(files, known, self._not_retried())
        self.resolver = LinkResolver(f.path for f in files)
        report = self._apply(plan, progress, known, full=True, pause=pause, group_chunks=group_chunks, phases=phases)
        report.seconds = time.perf_counter() - started
        return report

    def update(self, paths: Iterable[str], progress: Progress | None = None) -> IndexReport:
        """Index just these vault-relative paths (the watcher's changes); a missing file is a delete."""
        started = time.perf_counter()
        files, gone = [], []
        for path in sorted(set(paths)):
            try:
                stat = (self.scanner.root / path).stat()
            except OSError:
                gone.append(path)
                continue
            if self.scanner.accepts(path):
                files.append(NoteFile(path, stat.st_size, stat.st_mtime_ns))
            else:
                gone.append(path)
        known = self.store.note_stats(only=[f.path for f in files] + gone)
        listed = {f.path for f in files}
        plan = plan_scan(files, {p: s for p, s in known.items() if p in listed}, self._not_retried())
        plan = ScanPlan(plan.to_read, tuple(p for p in gone if p in known), plan.unchanged)
        for f in files:
            self.resolver.add(f.path)
        for path in plan.deleted:
            self.resolver.remove(path)
        report = self._apply(plan, progress, known, full=False)
        report.seconds = time.perf_counter() - started
        return report

    def record_own_writes(self, rewritten: dict[str, tuple[bytes, dict]]) -> list[str]:
        """Index ideaweave's own writes without reading the notes again, in one transaction: `rewritten` maps
        each note to (the bytes the write replaced, the managed values it set). Only the frontmatter changed,
        and the managed keys are neither links nor text: the sections stay, moved by the frontmatter's change
        in length, and the stored properties take the values. Returns the notes recorded so; any other (the
        index did not hold the replaced bytes, the body is not the same, a secure note) is for `update`."""
        known = self.store.note_stats(only=list(rewritten))
        rewrites = []
        for path, (old_raw, values) in rewritten.items():
            stat = known.get(path)
            if stat is None or stat.content_hash != hashlib.sha256(old_raw).hexdigest():
                continue
            try:
                mtime_ns = (self.scanner.root / path).stat().st_mtime_ns  # before the read, as `VaultScanner.read`
                new_raw = (self.scanner.root / path).read_bytes()
            except OSError:
                continue
            if len(new_raw) > self.scanner.rules.max_note_bytes or b"\x00" in new_raw:
                continue  # the long way says what becomes of it
            shift = body_shift(old_raw, new_raw)
            if shift is not None:
                rewrites.append(Rewrite(path, len(new_raw), mtime_ns, hashlib.sha256(new_raw).hexdigest(), values, shift))
        return self.store.record_rewrites(rewrites) if rewrites else []

    def _not_retried(self) -> dict[str, tuple[int | None, int | None]]:
        """Files skipped or failed before, as they were then: read again only once they change."""
        return {**self.store.skipped_stats(), **self.store.problem_stats(INDEX_STAGES)}

    def _apply(self, plan: ScanPlan, progress: Progress | None, known: dict[str, NoteStat], full: bool,
               pause: Pause | None = None, group_chunks: int = EMBED_GROUP, phases: PhaseStart | None = None
               ) -> IndexReport:
        """Carry out a plan. `known`: the stored stats of (at least) the notes the plan concerns.
        `full` (a whole-vault pass) also embeds chunks left without vectors and collects every unused
        vector; an update only collects the vectors of the chunks it replaced."""
        # An update may run inside a pass's pause: the pass's own per-run state comes back after it.
        outer = (self._stats, self._warned, self._guard)
        try:
            return self._carry_out(plan, progress, known, full, pause, group_chunks, phases)
        finally:
            self._stats, self._warned, self._guard = outer

    def _carry_out(self, plan: ScanPlan, progress: Progress | None, known: dict[str, NoteStat], full: bool,
                   pause: Pause | None, group_chunks: int, phases: PhaseStart | None = None) -> IndexReport:
        report = IndexReport()
        self._stats = {}
        self._warned = {path: reason for path, _, reason in self.store.problems(WARNING_STAGES)}
        self._guard = NoteGuard(lambda failure: self._failed(failure, known, report), self.faults)
        if self.store.model_changed:
            log.warning("the embedding model changed: every chunk is embedded again")
            self.store.reset_vectors()
        deleted_by_hash = {known[p].content_hash: p for p in plan.deleted}
        pending: list[tuple[Note, list[Chunk]]] = []
        for done, f in enumerate(plan.to_read, 1):
            self._read_one(f, known.get(f.path), deleted_by_hash, pending, report)
            if sum(len(c) for _, c in pending) >= group_chunks:
                self._store_pending(pending, report)
                if pause is not None:
                    pause()
            if progress:
                progress(done, len(plan.to_read))
        self._store_pending(pending, report)
        renamed_from = {old for old, _ in report.renamed}
        gone = [p for p in plan.deleted if p not in renamed_from]
        if gone:
            self.store.delete_notes(gone)
            report.deleted = gone
        if full:
            report.embedded_chunks += self._embed_missing(pause, group_chunks, progress, phases)
        appeared = {f.path for f in plan.to_read if f.path not in known}
        if plan.deleted or appeared or report.locked:
            # A locked secure note is no link target: a link to it must not name its path here.
            names = {LinkResolver.name_of_path(p) for p in set(plan.deleted) | appeared | set(report.locked)}
            report.relinked = self._reresolve_links(names, skip=set(report.changed))
        if report.renamed and self.related_key:
            self._follow_renames(report.renamed)
        self.store.gc_vectors(everything=full)
        # Saving the vector index rewrites the whole file (330 MB at 100,000 notes): an update saves at
        # most once a minute. The database is the truth; a crash before a save only means a rebuild.
        self.store.flush(min_interval=0.0 if full else VECTOR_SAVE_INTERVAL)
        report.notes, report.chunks = self.store.totals()
        report.skipped = self.store.skipped()
        return report

    def _read_one(self, f: NoteFile, known: NoteStat | None, deleted_by_hash: dict[str, str],
                  pending: list[tuple[Note, list[Chunk]]], report: IndexReport) -> None:
        report.read += 1
        self._stats[f.path] = (f.size, f.mtime_ns)
        with self._guard.note(f.path) as at:
            at.stage = "parse"
            note = self.scanner.read(f.path)
            if isinstance(note, Skipped):
                log.warning("%s: skipped: %s", f.path, note.reason)
                if known is not None:
                    self.store.delete_notes([f.path])
                if self._may_name(f.path):
                    self.store.set_skipped(f.path, note.reason, f.size, f.mtime_ns)
                return
            self._stats[f.path] = (note.size, note.mtime_ns)
            if not self.store.accepts(note.private):
                # A secure note without its key: not indexed (an old plain copy of it is dropped), and
                # not remembered as skipped either, which would put its path into the state folder.
                if known is not None:
                    self.store.delete_notes([f.path])
                self.resolver.remove(f.path)
                report.locked.append(f.path)
                return
            if known is not None and known.content_hash == note.content_hash:
                self.store.touch_note(f.path, note.size, note.mtime_ns)
                return
            if note.frontmatter_error and not note.is_template and self._warned.get(f.path) != note.frontmatter_error:
                # Said once, not on every run or edit while it holds (status keeps it); template
                # placeholders such as `created: {{date}}` are expected and not embedded anyway.
                log.warning("%s: %s (indexed by its body only)", f.path, note.frontmatter_error)
            at.stage = "chunk"
            chunks = chunk_note(note, self.max_tokens, self.embedder.count_tokens)
            old = deleted_by_hash.pop(note.content_hash, None) if known is None else None
            if old is not None:
                # Same bytes under a new name: keep the note's vectors, memory of writes and feedback.
                self.store.rename_note(old, f.path, note.title)
                report.renamed.append((old, f.path))
            pending.append((note, chunks))

    def _store_pending(self, pending: list[tuple[Note, list[Chunk]]], report: IndexReport) -> None:
        """Embed what the pending notes lack, then store the notes: vectors always land first."""
        if not pending:
            return
        try:
            report.embedded_chunks += self._embed_notes(pending)
        except Exception as exc:
            if not is_about_the_note(exc):
                raise
            # One note's text broke the group: embed note by note, so that it costs that note only.
            log.debug("embedding %d notes at once failed (%s); embedding them one by one", len(pending), exc)
            kept = []
            for item in pending:
                with self._guard.note(item[0].path) as at:
                    at.stage = "embed"
                    report.embedded_chunks += self._embed_notes([item])
                if at.failed is None:
                    kept.append(item)
            pending[:] = kept
        for note, chunks in pending:
            with self._guard.note(note.path) as at:
                at.stage = "store"
                self.store.replace_note(note_record(note), chunk_records(chunks), link_records(note, self.resolver), note.tags)
                report.changed.append(note.path)
                if note.frontmatter_error and not note.is_template:
                    self.store.record_problem(note.path, "frontmatter", note.frontmatter_error, note.size, note.mtime_ns)
            if at.failed is None and self.on_stored is not None:
                self._tell_stored(note)
        pending.clear()

    def _tell_stored(self, note: Note) -> None:
        """`on_stored(note)`: what goes wrong there is not the index's business. The note stays indexed; the
        sync makes its summary again and records the failure, if it recurs, as the note's own."""
        try:
            self.on_stored(note)
        except Exception as exc:  # noqa: BLE001 - one note's summary never stops the indexing
            log.debug("%s: after storing: %s", note.path, exc)

    def _embed_notes(self, items: Sequence[tuple[Note, list[Chunk]]]) -> int:
        """Embed the chunks of these notes that have no vector yet; how many were embedded."""
        for note, _ in items:
            self.faults.check("embed", note.path)
        public = {c.hash for note, chunks in items if not self.store.seals(note.private) for c in chunks}
        sealed = {c.hash for note, chunks in items if self.store.seals(note.private) for c in chunks} - public
        return self._embed_texts({c.hash: c.text for _, chunks in items for c in chunks}, sealed)

    def _embed_texts(self, texts: dict[str, str], sealed: set[str] = frozenset()) -> int:
        """Embed and store the texts (by chunk hash) that have no vector yet; how many there were.
        `sealed`: the hashes only secure notes have, whose vectors are stored sealed."""
        missing = sorted(self.store.missing_vectors(texts))
        for at in range(0, len(missing), EMBED_GROUP):
            group = missing[at:at + EMBED_GROUP]
            self.store.add_vectors(group, self.embedder.embed([texts[h] for h in group]), sealed=sealed & set(group))
        return len(missing)

    def _failed(self, failure: NoteFailure, known: dict[str, NoteStat], report: IndexReport) -> None:
        """A note that could not be indexed: its old version leaves the index (it no longer says what the
        file says), and it is not read again until the file changes."""
        if failure.path in known:
            self.store.delete_notes([failure.path])
        size, mtime_ns = self._stats.get(failure.path, (None, None))
        if self._may_name(failure.path):
            self.store.record_problem(failure.path, failure.stage, failure.reason, size, mtime_ns)
        report.failed.append(failure)

    def _may_name(self, path: str) -> bool:
        """May the store remember something about `path` under that name? A note in a private folder (any
        note, when every note is sealed) is remembered by its pseudonym; without the key, not at all."""
        secure = self.store.seal_all or any(glob_matcher(p)(path) for p in self.scanner.rules.private_folders)
        return not secure or self.store.hide_path(path)

    def _embed_missing(self, pause: Pause | None = None, group_chunks: int = EMBED_GROUP,
                       progress: Progress | None = None, phases: PhaseStart | None = None) -> int:
        """Chunks stored without a vector (a model change, an interrupted run) get one now. After a model
        change that is the whole vault, an hour at 10,000 notes: `pause()` runs between groups of
        `group_chunks` chunks, as while notes are read, so that the user's edits are not kept waiting,
        and the phase ("embedding") and its progress in notes are told as the reading's are."""
        if not self.store.counts().get("chunks_without_vectors"):
            return 0
        by_note = {}
        for path in self.store.note_paths():
            # A secure note's chunks come back with their text read again from the note ("" if it changed
            # since: that one is indexed again when the watcher or the next scan sees the change).
            texts = {c.hash: c.text for c in self.store.chunks_of(path) if c.vector_id is None and c.text}
            if texts:
                by_note[path] = texts
        sealed = {h for path, texts in by_note.items() if self.store.is_hidden(path) for h in texts}
        sealed -= {h for path, texts in by_note.items() if not self.store.is_hidden(path) for h in texts}
        if phases is not None and by_note:
            phases("embedding", len(by_note))
        try:
            return self._embed_by_notes(by_note, sealed, pause, group_chunks, progress)
        except Exception as exc:
            if not is_about_the_note(exc):
                raise
        embedded = 0
        for path, texts in by_note.items():  # one note's text broke the batch: note by note
            with self._guard.note(path) as at:
                at.stage = "embed"
                embedded += self._embed_texts(texts, set(texts) if self.store.is_hidden(path) else set())
        return embedded

    def _embed_by_notes(self, by_note: dict[str, dict[str, str]], sealed: set[str], pause: Pause | None,
                        group_chunks: int, progress: Progress | None) -> int:
        """`_embed_texts` of the notes' texts, a run of whole notes of about `group_chunks` chunks at a
        time, with `pause()` between runs and `progress(notes done, notes)` after each."""
        embedded, run, paths, first = 0, {}, list(by_note), True
        for done, path in enumerate(paths, 1):
            run.update(by_note[path])
            if len(run) < group_chunks and done < len(paths):
                continue
            if not first and pause is not None:
                pause()
            first = False
            # An edit handled in the pause embedded its own chunks, which may be some of these: they are no
            # longer missing.
            embedded += self._embed_texts(run, sealed & set(run))
            run = {}
            if progress:
                progress(done, len(paths))
        return embedded

    def _follow_renames(self, renamed: Sequence[tuple[str, str]]) -> None:
        """The links ideaweave wrote to a renamed note now name the new note, in its memory of what it
        wrote. Obsidian rewrites such links in the files itself (when it updates internal links), and a
        link ideaweave did not write counts as the user's: without this, the renamed link would be
        taken for the user's pin and the old one for a rejection. The old link text is remembered
        beside it ("renamed"), for a file whose links were not rewritten."""
        for note, record in self.store.all_written().items():
            links = record.values.get(self.related_key)
            if not isinstance(links, list):
                continue
            changed = {}
            for link in links:
                new_link = self._renamed_link(link, note, renamed) if isinstance(link, str) else None
                if new_link is not None:
                    changed[link] = new_link
            if not changed:
                continue
            values = dict(record.values)
            values[self.related_key] = [changed.get(link, link) for link in links]
            if isinstance(values.get("pinned"), list):
                values["pinned"] = [changed.get(link, link) for link in values["pinned"]]
            values["renamed"] = {**values.get("renamed", {}), **changed}
            self.store.update_written_values(note, values)

    def _renamed_link(self, link: str, source: str, renamed: Sequence[tuple[str, str]]) -> str | None:
        parts = split_wikilink(link)
        if parts is None:
            return None
        target, rest = parts
        if self.resolver.resolve(target, source) is not None:
            return None  # still names a note (another note of that name, or no rename at all)
        for old, new in renamed:
            if target.strip().lower() in link_names(old):
                return f"[[{self.resolver.link_text(new)}{rest}]]"
        return None

    def _reresolve_links(self, names: set[str], skip: set[str]) -> list[str]:
        """Notes of these names were added, removed or renamed: links to such a name elsewhere may now
        point somewhere else. Only the notes holding such a link are looked at (one query for all)."""
        sources = {source for source, raw in self.store.link_targets()
                   if source not in skip and self._name_of_raw(raw) in names}
        relinked = []
        for path in sorted(sources):
            old = self.store.outgoing_links(path)
            new = [LinkRecord(link.raw, self._resolve_raw(link.raw, path), link.heading, link.kind) for link in old]
            if new != old:
                self.store.replace_links(path, new)
                relinked.append(path)
        return relinked

    @staticmethod
    def _name_of_raw(raw: str) -> str:
        markdown = raw.startswith("md:")
        return LinkResolver.name_of_target(raw[3:] if markdown else raw, markdown=markdown)

    def _resolve_raw(self, raw: str, source: str) -> str | None:
        markdown = raw.startswith("md:")
        target = self.resolver.resolve(raw[3:] if markdown else raw, source, markdown=markdown)
        return target if target != source else None
