"""The local HTTP API that `ideaweave watch` serves to the Obsidian bridge plugin (contract version 1).

Two layers, thinnest last:
- `ApiBackend` and its real implementation `AppBackend`: what the endpoints can ask of an `App`,
  including the hand-off of writes to the plugin (`handoff.WriteQueue` keeps its books);
- `build_api`: the HTTP edge (Starlette). It alone turns requests into calls, and errors into
  `{"error": "..."}` responses in one place (`error_response_for`); it refuses, before any routing,
  requests that do not name a loopback host, come from another web origin, lack the token or
  announce too large a body.
`serve` runs it with uvicorn in a background thread, bound to loopback only; `start_api` wires all
of it for a watched vault.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, schemas
from .app import App
from .corpus import Corpus
from .duplicates import Calibration, Duplicate, mark_not_duplicates, vault_duplicates
from .errors import ConfigError, IdeaweaveError, LockError, StoreError
from .failures import FAILURE_STAGES, NoteFailure
from .handoff import PendingWrite, WriteQueue
from .ideamap import IdeaMap, render_page, vault_map
from .relate import Suggestion
from .search import Passage, SearchHit, more_like, note_passage, search
from .store import FEEDBACK_ACTIONS as STORED_FEEDBACK_ACTIONS
from .topics import Topic, vault_topics
from .writer import Write, checksum

log = logging.getLogger(__name__)

ALLOWED_ORIGIN = "app://obsidian.md"
MAX_BODY_BYTES = 64 * 1024
MAX_K = 100
MAX_QUERY_CHARS = 1000
# A selected passage to search by ("what else have I written about this?"); the body limit allows it.
MAX_PASSAGE_CHARS = 20_000
MAX_HEADING_CHARS = 1000
MAX_PATH_CHARS = 1024
# The verbs POST /feedback takes, and the action each leaves in the store (None: the feedback is forgotten).
STORED_ACTION_OF_VERB: dict[str, str | None] = {"pin": "pinned", "reject": "rejected", "clear": None}
if {action for action in STORED_ACTION_OF_VERB.values() if action} != set(STORED_FEEDBACK_ACTIONS):
    raise ImportError(f"the API's feedback verbs {STORED_ACTION_OF_VERB} do not cover the store's actions "
                      f"{STORED_FEEDBACK_ACTIONS} one to one")
FEEDBACK_VERBS = tuple(STORED_ACTION_OF_VERB)


# ------------------------------------------------------------------ plain values


@dataclass(frozen=True)
class Indexing:
    done: int = 0
    total: int = 0
    active: bool = False

    def as_json(self) -> dict:
        return {"done": self.done, "total": self.total, "active": self.active}


@dataclass(frozen=True)
class Status:
    vault: str
    notes: int
    chunks: int
    indexing: Indexing
    queue: int
    paused: bool
    private_mode: bool
    last_error: str | None
    bridge_connected: bool
    failed: tuple[NoteFailure, ...] = ()  # notes that failed at some stage, until they change
    version: str = __version__
    # The start-up pass (or a rescan) under way: phase, notes done and total, rate, seconds left; else None.
    long_pass: dict | None = None
    # The embedding threads: mode and the count in use now (see threads.describe_threads).
    threads: dict | None = None

    def as_json(self) -> dict:
        return {"vault": self.vault, "notes": self.notes, "chunks": self.chunks, "indexing": self.indexing.as_json(),
                "queue": self.queue, "paused": self.paused, "private_mode": self.private_mode,
                "last_error": self.last_error, "bridge_connected": self.bridge_connected,
                "failed": [f.as_json() for f in self.failed], "version": self.version, "pass": self.long_pass,
                "threads": self.threads}


@dataclass(frozen=True)
class RelatedIdea:
    suggestion: Suggestion
    link: str  # the link text Obsidian resolves, as it would be written into `related`
    pinned: bool

    def as_json(self) -> dict:
        return {**self.suggestion.as_json(), "link": self.link, "pinned": self.pinned}


# ------------------------------------------------------------------ what the endpoints need


class ApiBackend(Protocol):
    """The operations behind the endpoints; every method may block (the API calls them off its event loop)."""

    root: Path  # the vault folder, for checking that requested paths stay inside it

    def status(self) -> Status: ...

    def has_note(self, path: str) -> bool: ...

    def unready_reason(self) -> str | None:
        """Why the index cannot answer yet (a first indexing pass, a model change), or None."""
        ...

    def related(self, note: str, k: int) -> list[RelatedIdea]: ...

    def search(self, query: str, k: int) -> list[SearchHit]: ...

    def note_passage(self, note: str, heading: str | None) -> Passage | None:
        """A note's text, or its section under `heading`, to search by; None without such a section."""
        ...

    def more_like(self, passage: Passage, k: int) -> list[SearchHit]:
        """Other notes about `passage`, never the note it comes from."""
        ...

    def summary(self, note: str) -> str | None: ...

    def feedback(self, note: str, target: str, action: str) -> None:
        """action: one of FEEDBACK_VERBS ("pin", "reject" or "clear")."""
        ...

    def set_paused(self, paused: bool) -> None: ...

    def bridge_polled(self) -> None:
        """The bridge plugin asked for its writes: it is connected."""
        ...

    def pending_writes(self) -> list[PendingWrite]:
        """The writes to offer the plugin now; asking does not make it count as connected."""
        ...

    def ack_write(self, write_id: str, applied: bool, error: str | None) -> None: ...

    def topics(self) -> list[Topic]:
        """The vault's topics, as `ideaweave topics` gives them."""
        ...

    def idea_map(self, include_private: bool = False) -> IdeaMap:
        """The vault as a picture, as `ideaweave map` draws it."""
        ...

    def duplicates(self, k: int) -> tuple[list[Duplicate], Calibration]:
        """The k most similar duplicate pairs, as `ideaweave duplicates` gives them."""
        ...

    def mark_not_duplicates(self, a: str, b: str, marked: bool) -> bool:
        """Record (or forget) that two notes are not duplicates; True when that changed anything."""
        ...


class DaemonState(Protocol):
    """What the running daemon reports and obeys; `watch.WatchStats` has these fields."""

    indexing_done: int
    indexing_total: int
    indexing_active: bool
    pending: int  # changed notes waiting to be processed
    last_error: str | None
    writes_paused: threading.Event  # set: nothing is written into notes
    topics: list[Topic] | None  # the topics the daemon last drew (its hub notes and keys show them), if it draws any


@dataclass
class StandaloneState:
    """A DaemonState for an API served without a watcher."""

    indexing_done: int = 0
    indexing_total: int = 0
    indexing_active: bool = False
    pending: int = 0
    last_error: str | None = None
    writes_paused: threading.Event = field(default_factory=threading.Event)
    topics: list[Topic] | None = None


class AppBackend:
    """ApiBackend over an App and the state of the daemon serving it.

    The daemon keeps `state` current (plain attribute assignments, safe across threads), calls
    `refresh()` after each batch it indexes, offers writes through `hand_off`, and plans again and
    writes itself the notes of the writes `expired_writes()` takes back.
    """

    def __init__(self, app: App, state: DaemonState | None = None, writes: WriteQueue | None = None):
        self.app = app
        self.root = app.root
        self.state = state if state is not None else StandaloneState()
        self.writes = writes if writes is not None else WriteQueue()  # an empty queue is falsy
        self._corpus: Corpus | None = None
        self._corpus_misses: set[str] = set()
        self._corpus_lock = threading.Lock()
        # Topics and duplicates are answered again only for a new snapshot (or new marks): seconds, not ms.
        self._answers: dict[str, tuple[object, object]] = {}
        self._answers_lock = threading.Lock()

    @property
    def paused(self) -> bool:
        return self.state.writes_paused.is_set()

    # ---- what the daemon calls

    def refresh(self, corpus: Corpus | None = None) -> None:
        """The index changed: rank against `corpus` (the daemon's fresh snapshot), else build one when asked."""
        with self._corpus_lock:
            self._corpus = corpus  # read-only once built, so it can be shared with the daemon's thread
            self._corpus_misses.clear()

    def hand_off(self, write: Write, base: bytes) -> bool:
        """Offer a write to the bridge plugin; False when it is not connected (the daemon writes itself)."""
        if not self.writes.connected:
            return False
        self.writes.offer(write, checksum(base))
        return True

    def expired_writes(self) -> list[PendingWrite]:
        """Writes the plugin did not ack in time, for the daemon to plan again and write itself.

        A write the file already holds was applied and only its ack was lost (the plugin stopped in
        between): it is recorded as written instead, or its values would look like the user's edits.
        """
        left = []
        for entry in self.writes.expired():
            try:
                data = (self.root / entry.path).read_bytes()
            except OSError:
                data = None
            if data is not None and entry.held_by(data):
                self.ack_write(entry.id, True, None)
            else:
                left.append(entry)
        return left

    # ---- ApiBackend

    def status(self) -> Status:
        counts = self.app.store.counts()
        state = self.state
        indexing = Indexing(state.indexing_done, state.indexing_total, state.indexing_active)
        progress = getattr(state, "start_up_pass", None)  # only a watching daemon runs long passes
        return Status(str(self.root), counts["notes"], counts["chunks"], indexing, state.pending, self.paused,
                      self.app.settings.private_mode, state.last_error, self.writes.connected,
                      tuple(NoteFailure(*row) for row in self.app.store.problems(FAILURE_STAGES)),
                      long_pass=progress.as_json() if progress is not None else None, threads=self._threads())

    def _threads(self) -> dict:
        """The live embedder's thread count once the daemon has loaded it, else the configured mode."""
        from .threads import configured_threads

        embedding = self.app.settings.embedding
        mode = getattr(self.app.loaded_embedder, "thread_mode", None)
        return mode if mode is not None else configured_threads(embedding.threads, embedding.max_threads)

    def has_note(self, path: str) -> bool:
        return self.app.store.note(path) is not None

    def unready_reason(self) -> str | None:
        if self.app.store.model_changed:
            return "the index is being rebuilt for a new embedding model"
        if self.state.indexing_active:
            return f"indexing ({self.state.indexing_done}/{self.state.indexing_total} notes)"
        return None

    def related(self, note: str, k: int) -> list[RelatedIdea]:
        # The same answer as the CLI's and as the list the daemon writes into the note.
        found = self.app.related_notes(self._corpus_for(note)).for_note(note, k)
        return [RelatedIdea(r.suggestion, r.link, r.pinned) for r in found]

    def search(self, query: str, k: int) -> list[SearchHit]:
        return search(self.app.store, self.app.embedder, query, k=k, corpus=self._search_snapshot())

    def note_passage(self, note: str, heading: str | None) -> Passage | None:
        return note_passage(self.app.store, note, heading)

    def more_like(self, passage: Passage, k: int) -> list[SearchHit]:
        return more_like(self.app.store, self.app.embedder, passage, k=k, corpus=self._search_snapshot())

    def _search_snapshot(self) -> Corpus | None:
        """The snapshot search reads while it is current (the same answer, fewer reads): the daemon's, else
        one made now, though not while indexing runs (it would be out of date at once)."""
        with self._corpus_lock:
            if self._corpus is None and not self.state.indexing_active:
                self._corpus = Corpus(self.app.store)
            return self._corpus

    def summary(self, note: str) -> str | None:
        """The summary in the note's frontmatter, else the cached one; never computed here (it may take a model call)."""
        stored = self.app.store.note(note)
        written = stored.frontmatter.get(self.app.settings.writer.summary_key) if stored else None
        if isinstance(written, str) and written.strip():
            return written
        # The sync's summary cache, under the key the sync uses.
        return self.app.summaries.cached(note)

    def feedback(self, note: str, target: str, action: str) -> None:
        stored_action = STORED_ACTION_OF_VERB[action]
        if stored_action is None:
            self.app.store.clear_feedback(note, target)
        else:
            self.app.store.set_feedback(note, target, stored_action)

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.state.writes_paused.set()
        else:
            self.state.writes_paused.clear()

    def bridge_polled(self) -> None:
        self.writes.polled()

    def pending_writes(self) -> list[PendingWrite]:
        offered = self.writes.pending()
        if self.paused:
            return []  # held back, and taken back after OFFER_SECONDS like any unacked write
        current = []
        for entry in offered:
            try:
                data = (self.root / entry.path).read_bytes()
            except OSError:
                data = None
            if data is not None and entry.planned_from(data):
                current.append(entry)
            else:
                # Edited (or gone) since the write was planned: applying it blindly could undo the user's
                # edit. The watcher sees that change and plans again from the new content.
                self.writes.withdraw(entry.id)
        return current

    def ack_write(self, write_id: str, applied: bool, error: str | None) -> None:
        settled = self.writes.ack(write_id, applied)
        if settled is None:
            return
        path = settled.entry.path
        store = self.app.store
        if not applied:
            log.debug("%s: the bridge did not apply write %s: %s", path, write_id, error)
            store.set_write_issue(path, f"the Obsidian bridge could not apply the change: {error or 'no reason given'}")
            return
        if not settled.newest:
            return
        try:
            data = (self.root / path).read_bytes()
        except OSError as exc:
            store.set_write_issue(path, f"cannot be read after the bridge wrote it: {exc.strerror or exc}")
            return
        # The checksum of what the plugin wrote: the watcher then recognises the change as ideaweave's own.
        store.record_written(path, checksum(data), settled.entry.write.remembered)
        store.clear_write_issue(path)

    def topics(self) -> list[Topic]:
        if self.state.topics is not None:  # the daemon keeps them current: the answer its hubs and keys show
            return self.state.topics
        corpus = self._current_corpus()
        return self._answer("topics", corpus, lambda: vault_topics(corpus, self.app.scanner))

    def idea_map(self, include_private: bool = False) -> IdeaMap:
        corpus = self._current_corpus()
        topics = self.topics()
        return self._answer(f"map {include_private}", (corpus, tuple(topics)), lambda: vault_map(
            corpus, topics, self.root.name, self.summary, include_private=include_private))

    def duplicates(self, k: int) -> tuple[list[Duplicate], Calibration]:
        corpus = self._current_corpus()
        marks = self.app.store.get_setting("duplicates.not")
        return self._answer(f"duplicates {k}", (corpus, marks), lambda: vault_duplicates(corpus, k=k))

    def mark_not_duplicates(self, a: str, b: str, marked: bool) -> bool:
        return mark_not_duplicates(self.app.store, a, b, marked)

    # ---- helpers

    def _current_corpus(self) -> Corpus:
        with self._corpus_lock:
            if self._corpus is None:
                self._corpus = Corpus(self.app.store)
            return self._corpus

    def _answer(self, name: str, key: object, compute):
        """The answer computed for `key` (the snapshot it was read from), else a new one. One at a time: two
        requests arriving together wait for one computation rather than making two."""
        with self._answers_lock:
            kept = self._answers.get(name)
            if kept is not None and _same(kept[0], key):
                return kept[1]
            answer = compute()
            self._answers[name] = (key, answer)
            return answer

    def _corpus_for(self, note: str) -> Corpus:
        with self._corpus_lock:
            stale = self._corpus is not None and note not in self._corpus.index and note not in self._corpus_misses
            if self._corpus is None or stale:
                self._corpus = Corpus(self.app.store)
                self._corpus_misses.clear()
            if note not in self._corpus.index:
                self._corpus_misses.add(note)  # indexed without vectors (an empty note): do not rebuild for it again
            return self._corpus


def _same(one: object, other: object) -> bool:
    """The same snapshot (by identity: a snapshot is never changed) and the same marks."""
    if isinstance(one, tuple) and isinstance(other, tuple):
        return len(one) == len(other) and all(_same(a, b) for a, b in zip(one, other))
    return one is other or (isinstance(one, str) and one == other)


# ------------------------------------------------------------------ the HTTP edge


def http_status(error: Exception, index_ready: bool) -> int:
    """The one table of what an error means to an HTTP client.

    The request checks raise HTTPException with their own status: 400 a malformed request or bad
    parameter, 401/403 refused, 404 no such note (or route), 413 too large, 503 an unknown note while
    the index is still being built. Domain errors: 409 when another ideaweave process holds the vault;
    503 when the index fails while it is not ready (it will answer once built); 500 for the rest: a
    configuration, model, vault or index the user must fix, which waiting will not cure.
    """
    if isinstance(error, HTTPException):
        return error.status_code
    if isinstance(error, LockError):
        return 409
    if isinstance(error, StoreError) and not index_ready:
        return 503
    return 500


def error_response_for(error: Exception, index_ready: bool = True, headers: dict[str, str] | None = None) -> JSONResponse:
    """The response for any error: its status from `http_status`, and `{"error": "<what to do>"}`."""
    status = http_status(error, index_ready)
    if isinstance(error, HTTPException):
        message, headers = str(error.detail), {**(headers or {}), **(error.headers or {})}
    elif isinstance(error, IdeaweaveError):
        message = str(error)  # written for the user to act on
        if status == 500:
            log.error("API: %s", message)
    else:
        message = f"internal error ({type(error).__name__}); see the daemon's log"
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def vault_path(root: Path, raw: str, what: str = "note") -> str:
    """A vault-relative note path from a request, checked to stay inside the vault (400 otherwise)."""
    if not raw:
        raise _bad(f"{what}: the path is empty")
    if len(raw) > MAX_PATH_CHARS:
        raise _bad(f"{what}: the path is longer than {MAX_PATH_CHARS} characters")
    if any(ch < " " or ch in "\\\x7f" for ch in raw):
        raise _bad(f"{what}: the path holds a control character or a backslash")
    if not _is_text(raw):
        raise _bad(f"{what}: the path is not valid text")
    if raw.startswith("/") or re.match(r"[A-Za-z]:", raw):
        raise _bad(f"{what}: paths are relative to the vault, not absolute")
    if any(part in ("", ".", "..") for part in raw.split("/")):
        raise _bad(f"{what}: the path has an empty, '.' or '..' part")
    if not raw.lower().endswith(".md"):
        raise _bad(f"{what}: note paths end with .md")
    try:
        vault = root.resolve()
        full = (vault / raw).resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop
        raise _bad(f"{what}: the path cannot be resolved") from None
    # A symlink inside the vault may point anywhere; only what stays inside is served.
    if not full.is_relative_to(vault):
        raise _bad(f"{what}: the path leads outside the vault")
    return raw


def _is_text(value: str) -> bool:
    """False for strings holding lone surrogates: JSON can carry them (\\ud800), SQLite and files cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RequestGate:
    """What every request must pass before routing, and the CORS headers of every response.

    Refused: a Host that is not loopback (DNS rebinding), an Origin other than the allowed one (a web
    page), a missing or wrong bearer token, a declared body over the limit. A CORS preflight from the
    allowed origin is answered here, without the token (browsers do not send it on preflights).
    """

    def __init__(self, app: ASGIApp, token: str, allowed_origin: str, max_body_bytes: int):
        self.app = app
        self.token = token.encode("utf-8")
        self.allowed_origin = allowed_origin
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        cors = {"Vary": "Origin"}
        if origin == self.allowed_origin:
            cors["Access-Control-Allow-Origin"] = origin
        refusal = self._refuse_host_or_origin(headers, origin)
        if refusal is None and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = {**cors, "Access-Control-Allow-Methods": "GET, POST",
                         "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"}
            await Response(status_code=204, headers=preflight)(scope, receive, send)
            return
        refusal = refusal or self._refuse_token(headers) or self._refuse_size(headers)
        if refusal is not None:
            await error_response_for(refusal, headers=cors)(scope, receive, send)
            return
        await self.app(scope, receive, _adding_headers(send, cors))

    def _refuse_host_or_origin(self, headers: Headers, origin: str | None) -> HTTPException | None:
        host = headers.get("host")
        if host is not None and not is_loopback(_host_name(host)):
            return HTTPException(403, "the API answers requests addressed to a loopback host only")
        if origin is not None and origin != self.allowed_origin:
            return HTTPException(403, f"requests from the origin {origin[:100]!r} are not allowed")
        return None

    def _refuse_token(self, headers: Headers) -> HTTPException | None:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return HTTPException(401, "missing bearer token (see `ideaweave token`)", {"WWW-Authenticate": "Bearer"})
        # Constant time: how long a comparison takes must not tell how much of a guess was right.
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.token):
            return HTTPException(401, "wrong token (see `ideaweave token`)", {"WWW-Authenticate": "Bearer"})
        return None

    def _refuse_size(self, headers: Headers) -> HTTPException | None:
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.isdigit():
            return HTTPException(400, "Content-Length is not a number")
        if int(declared) > self.max_body_bytes:
            return HTTPException(413, f"the request body is larger than {self.max_body_bytes} bytes")
        return None


def _adding_headers(send: Send, extra: dict[str, str]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in extra.items():
                headers[name] = value
        await send(message)

    return sending


class Endpoints:
    """One method per route: parse and check the request, call the backend off the event loop, answer JSON."""

    def __init__(self, backend: ApiBackend, max_body_bytes: int):
        self.backend = backend
        self.max_body_bytes = max_body_bytes

    async def status(self, request: Request) -> JSONResponse:
        status = await run_in_threadpool(self.backend.status)
        return JSONResponse(status.as_json())

    async def related(self, request: Request) -> JSONResponse:
        note = await self._known_note(_required(request, "note"))
        k = _count(request, "k", default=10)
        ideas = await run_in_threadpool(self.backend.related, note, k)
        return JSONResponse({"note": note, "related": [idea.as_json() for idea in ideas]})

    async def search(self, request: Request) -> JSONResponse:
        query = _required(request, "q")
        if len(query) > MAX_QUERY_CHARS:
            raise _bad(f"q: longer than {MAX_QUERY_CHARS} characters")
        k = _count(request, "k", default=20)
        hits = await run_in_threadpool(self.backend.search, query, k)
        return JSONResponse({"query": query, "results": [hit.as_json() for hit in hits]})

    async def search_by_passage(self, request: Request) -> JSONResponse:
        """More like this: a passage (a selection, from `note` if given: left out of the answer), or the
        note itself, or its section under `heading`."""
        body = await self._json_object(request)
        text = _optional_text(body, "passage", MAX_PASSAGE_CHARS)
        heading = _optional_text(body, "heading", MAX_HEADING_CHARS)
        k = _body_count(body, "k", default=20)
        if body.get("note") is None:
            if heading is not None:
                raise _bad("heading: a heading names a section of a note; give the note too")
            if text is None:
                raise _bad("passage: give a passage, or a note (and a heading in it) to search by")
            source = None
        else:
            source = await self._known_note(_text_field(body, "note"))
        if text is not None:
            if heading is not None:
                raise _bad("heading: give a passage or a heading to search by, not both")
            passage = Passage(text, source)
        else:
            passage = await run_in_threadpool(self.backend.note_passage, source, heading)
            if passage is None:
                raise HTTPException(404, f"heading: no heading {heading!r} in {source}" if heading
                                    else f"note: {source} has no indexed text")
        hits = await run_in_threadpool(self.backend.more_like, passage, k)
        return JSONResponse({"query": passage.text, "results": [hit.as_json() for hit in hits]})

    async def summary(self, request: Request) -> JSONResponse:
        note = await self._known_note(_required(request, "note"))
        summary = await run_in_threadpool(self.backend.summary, note)
        return JSONResponse({"note": note, "summary": summary})

    async def feedback(self, request: Request) -> JSONResponse:
        body = await self._json_object(request)
        action = body.get("action")
        if not isinstance(action, str) or action not in STORED_ACTION_OF_VERB:
            raise _bad(f"action: one of {', '.join(FEEDBACK_VERBS)}")
        note = await self._known_note(_text_field(body, "note"))
        target = vault_path(self.backend.root, _text_field(body, "target"), "target")
        if target == note:
            raise _bad("target: a note is not related to itself")
        if action != "clear":  # clearing may concern a note deleted since
            await self._known_note(target, "target")
        await run_in_threadpool(self.backend.feedback, note, target, action)
        return JSONResponse({"ok": True})

    async def pause(self, request: Request) -> JSONResponse:
        await run_in_threadpool(self.backend.set_paused, True)
        return JSONResponse({"paused": True})

    async def resume(self, request: Request) -> JSONResponse:
        await run_in_threadpool(self.backend.set_paused, False)
        return JSONResponse({"paused": False})

    async def writes(self, request: Request) -> JSONResponse:
        # Only the plugin polls this endpoint: its poll is what keeps it counted as connected.
        await run_in_threadpool(self.backend.bridge_polled)
        pending = await run_in_threadpool(self.backend.pending_writes)
        return JSONResponse({"pending": [entry.as_json() for entry in pending]})

    async def ack(self, request: Request) -> JSONResponse:
        body = await self._json_object(request)
        applied = body.get("applied")
        if not isinstance(applied, bool):
            raise _bad("applied: true or false")
        error = body.get("error")
        if error is not None and (not isinstance(error, str) or not _is_text(error)):
            raise _bad("error: a line of text or null")
        error = " ".join(error.split())[:300] if error else None
        await run_in_threadpool(self.backend.ack_write, request.path_params["id"], applied, error)
        return JSONResponse({"ok": True})

    async def topics(self, request: Request) -> JSONResponse:
        raw = _parameter(request, "note")
        note = await self._known_note(raw) if raw is not None else None
        topics = await run_in_threadpool(self.backend.topics)
        if note is None:
            return JSONResponse({"topics": [t.as_json() for t in topics]})
        own = [t for t in topics if note in t.notes]
        by_id = {t.id: t for t in topics}
        around = list(dict.fromkeys(n for t in own for n in t.neighbours if n in by_id))
        return JSONResponse({"note": note, "topics": [t.as_json() for t in own],
                             "neighbours": [by_id[n].as_json() for n in around]})

    async def topic(self, request: Request) -> JSONResponse:
        wanted = request.path_params["id"]
        topics = await run_in_threadpool(self.backend.topics)
        found = next((t for t in topics if t.id == wanted), None)
        if found is None:
            raise HTTPException(404, f"id: no topic {wanted} (ids change only when a topic's notes do)")
        return JSONResponse(found.as_json())

    async def map_page(self, request: Request) -> Response:
        include_private = _flag(request, "include_private")
        idea_map = await run_in_threadpool(self.backend.idea_map, include_private)
        return Response(render_page(idea_map), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})  # it holds note titles: kept in no cache

    async def duplicates(self, request: Request) -> JSONResponse:
        k = _count(request, "k", default=20)
        found, calibration = await run_in_threadpool(self.backend.duplicates, k)
        return JSONResponse({"duplicates": [d.as_json() for d in found], "calibration": calibration.as_json()})

    async def not_duplicates(self, request: Request) -> JSONResponse:
        body = await self._json_object(request)
        marked = body.get("not_duplicates", True)
        if not isinstance(marked, bool):
            raise _bad("not_duplicates: true (mark) or false (forget the mark)")
        a = vault_path(self.backend.root, _text_field(body, "a"), "a")
        b = vault_path(self.backend.root, _text_field(body, "b"), "b")
        if a == b:
            raise _bad("b: a note is not a duplicate of itself")
        if marked:  # forgetting a mark may concern a note deleted since
            await self._known_note(a, "a")
            await self._known_note(b, "b")
        changed = await run_in_threadpool(self.backend.mark_not_duplicates, a, b, marked)
        return JSONResponse({"a": a, "b": b, "not_duplicates": marked, "changed": changed})

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI_SCHEMA)

    # ---- request checks

    async def _known_note(self, raw: str, what: str = "note") -> str:
        path = vault_path(self.backend.root, raw, what)
        if await run_in_threadpool(self.backend.has_note, path):
            return path
        reason = await run_in_threadpool(self.backend.unready_reason)
        if reason is not None:
            raise HTTPException(503, f"{what}: {path} is not indexed yet: {reason}")
        raise HTTPException(404, f"{what}: no indexed note {path}")

    async def _json_object(self, request: Request) -> dict:
        size, parts = 0, []
        async for part in request.stream():  # counted as it arrives: a chunked body declares no length
            size += len(part)
            if size > self.max_body_bytes:
                raise HTTPException(413, f"the request body is larger than {self.max_body_bytes} bytes")
            parts.append(part)
        try:
            body = json.loads(b"".join(parts))
        except (ValueError, RecursionError):
            raise _bad("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        return body


def _parameter(request: Request, name: str) -> str | None:
    """A query parameter (the last, if repeated); a value that is not UTF-8 is a bad request."""
    value = request.query_params.get(name)
    # Starlette decodes bytes that are not UTF-8 into U+FFFD: whether there were any, only the raw query tells.
    if value is not None and "\ufffd" in value:
        try:
            urllib.parse.parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True,
                                   encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise _bad(f"{name}: not UTF-8 text") from None
    return value


def _required(request: Request, name: str) -> str:
    value = _parameter(request, name)
    if value is None:
        raise _bad(f"{name}: missing")
    return value


def _count(request: Request, name: str, default: int) -> int:
    raw = _parameter(request, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= MAX_K:
        raise _bad(f"{name}: a whole number from 1 to {MAX_K}")
    return int(raw)


def _flag(request: Request, name: str) -> bool:
    raw = _parameter(request, name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _bad(f"{name}: true or false")
    return raw == "true"


def _optional_text(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _is_text(value):
        raise _bad(f"{name}: text or null")
    if len(value) > limit:
        raise _bad(f"{name}: longer than {limit} characters")
    return value


def _body_count(body: dict, name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise _bad(f"{name}: a whole number from 1 to {MAX_K}")
    return value


def _text_field(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _bad(f"{name}: a note path is required")
    return value


def _error_handler(backend: ApiBackend):
    """What Starlette calls with any error an endpoint raised."""

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, (HTTPException, IdeaweaveError)):
            log.error("API error on %s %s", request.method, request.url.path, exc_info=exc)
        # Whether the index is ready decides between "wait" (503) and "fix something" (500).
        ready = isinstance(exc, HTTPException) or await run_in_threadpool(backend.unready_reason) is None
        return error_response_for(exc, ready)

    return answer


def build_api(backend: ApiBackend, token: str, allowed_origin: str = ALLOWED_ORIGIN,
              max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The API as an ASGI application; every endpoint needs `Authorization: Bearer <token>`."""
    if not token:
        raise ConfigError("the API needs a token")
    if allowed_origin == "*":
        raise ConfigError("the API allows one origin, never every origin")
    e = Endpoints(backend, max_body_bytes)
    answer_error = _error_handler(backend)
    routes = [
        Route("/status", e.status, methods=["GET"]),
        Route("/related", e.related, methods=["GET"]),
        Route("/search", e.search, methods=["GET"]),
        Route("/search", e.search_by_passage, methods=["POST"]),
        Route("/summary", e.summary, methods=["GET"]),
        Route("/feedback", e.feedback, methods=["POST"]),
        Route("/pause", e.pause, methods=["POST"]),
        Route("/resume", e.resume, methods=["POST"]),
        Route("/writes", e.writes, methods=["GET"]),
        Route("/writes/{id}/ack", e.ack, methods=["POST"]),
        Route("/topics", e.topics, methods=["GET"]),
        Route("/topics/{id}", e.topic, methods=["GET"]),
        Route("/map", e.map_page, methods=["GET"]),
        Route("/duplicates", e.duplicates, methods=["GET"]),
        Route("/duplicates/not", e.not_duplicates, methods=["POST"]),
        Route("/openapi.json", e.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestGate, token=token, allowed_origin=allowed_origin, max_body_bytes=max_body_bytes)],
        exception_handlers={HTTPException: answer_error, IdeaweaveError: answer_error, Exception: answer_error},
    )


# ------------------------------------------------------------------ the OpenAPI document


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(schema_name: str) -> dict:
    return {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


# The statuses `http_status` gives.
_ERRORS = {"400": _error("a bad parameter or body"), "401": _error("no token or a wrong token"),
           "403": _error("another origin, or a host that is not loopback"), "413": _error("the body is too large"),
           "500": _error("the daemon cannot answer until its configuration, model, vault or index is fixed")}
_INDEX_ERRORS = {**_ERRORS, "404": _error("no indexed note with that path"),
                 "409": _error("another ideaweave process holds the vault"), "503": _error("the index is not ready")}


def _operation(summary: str, ok: str, errors: dict, parameters: list | None = None, body: str | None = None) -> dict:
    operation: dict = {"summary": summary, "responses": {"200": _ok(ok), **errors}}
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    return operation


def _query(name: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_NOTE_PATH = {"type": "string", "pattern": r"\.md$", "maxLength": MAX_PATH_CHARS,
              "description": "a vault-relative note path, '/'-separated, with .md"}
_NOTE_PARAM = _query("note", _NOTE_PATH, required=True)
_K = {"type": "integer", "minimum": 1, "maximum": MAX_K}

# Request bodies; the shapes of the answers come from `schemas`, shared with the CLI's --json output.
_REQUESTS = {
    "Feedback": schemas.record({"note": _NOTE_PATH, "target": _NOTE_PATH,
                                "action": {"type": "string", "enum": list(FEEDBACK_VERBS)}}),
    "Ack": schemas.record({"applied": schemas.FLAG}, {"error": schemas.NULLABLE_TEXT}),
    "NotDuplicatesRequest": schemas.record({"a": _NOTE_PATH, "b": _NOTE_PATH}, {"not_duplicates": schemas.FLAG}),
    # A passage, or a note (optionally a heading in it); a passage with a note leaves that note out.
    "PassageSearch": {**schemas.record({}, {
        "passage": {"type": ["string", "null"], "maxLength": MAX_PASSAGE_CHARS},
        "note": {**_NOTE_PATH, "type": ["string", "null"]},
        "heading": {"type": ["string", "null"], "maxLength": MAX_HEADING_CHARS},
        "k": {**_K, "default": 20}}),
        "anyOf": [{"required": ["passage"], "properties": {"passage": {"type": "string"}}},
                  {"required": ["note"], "properties": {"note": {"type": "string"}}}]},
}

OPENAPI_SCHEMA: dict = {
    "openapi": "3.1.0",
    "info": {"title": "ideaweave local API", "version": "1",
             "description": "Served on loopback by `ideaweave watch` for the Obsidian bridge plugin."},
    "security": [{"bearer": []}],
    "paths": {
        "/status": {"get": _operation("What the daemon is doing", "Status", _ERRORS)},
        "/related": {"get": _operation("Notes related to a note", "Related", _INDEX_ERRORS,
                                       [_NOTE_PARAM, _query("k", {**_K, "default": 10})])},
        "/search": {"get": _operation("Hybrid keyword and semantic search", "SearchResults", _INDEX_ERRORS,
                                      [_query("q", {"type": "string", "maxLength": MAX_QUERY_CHARS}, required=True),
                                       _query("k", {**_K, "default": 20})]),
                    "post": _operation("More like this: other notes about a passage, a note or a section of it",
                                       "SearchResults", _INDEX_ERRORS, body="PassageSearch")},
        "/summary": {"get": _operation("A note's summary", "Summary", _INDEX_ERRORS, [_NOTE_PARAM])},
        "/feedback": {"post": _operation("Pin, reject or clear a related note", "Ok", _INDEX_ERRORS, body="Feedback")},
        "/pause": {"post": _operation("Stop writing into notes", "Paused", _ERRORS)},
        "/resume": {"post": _operation("Write into notes again", "Paused", _ERRORS)},
        "/writes": {"get": _operation("Writes waiting for the plugin; marks the bridge as connected", "Writes", _ERRORS)},
        "/writes/{id}/ack": {"post": _operation(
            "The plugin applied (or could not apply) a write", "Ok", {**_ERRORS, "404": _error("no such endpoint")},
            [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}], body="Ack")},
        "/topics": {"get": _operation(
            "The vault's topics (with note: that note's topic at each level and their neighbours)", "Topics",
            _INDEX_ERRORS, [_query("note", _NOTE_PATH)])},
        "/topics/{id}": {"get": _operation(
            "One topic", "Topic", {**_INDEX_ERRORS, "404": _error("no topic with that id")},
            [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/map": {"get": {**_operation("The idea map: the vault's notes by topic, as one self-contained HTML page", "Ok",
                                      _INDEX_ERRORS, [_query("include_private", {"type": "string", "enum": ["true", "false"]})]),
                 "responses": {"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}},
                               **_INDEX_ERRORS}}},
        "/duplicates": {"get": _operation("Pairs of notes that say the same thing, most similar first", "Duplicates",
                                          _INDEX_ERRORS, [_query("k", {**_K, "default": 20})])},
        "/duplicates/not": {"post": _operation("Mark two notes as not duplicates (or forget the mark)",
                                               "NotDuplicates", _INDEX_ERRORS, body="NotDuplicatesRequest")},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}, **_ERRORS}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {**schemas.API_RESPONSES, **_REQUESTS},
    },
}


# ------------------------------------------------------------------ serving


def loopback_address(host: str) -> str:
    """The address to bind for a configured host; ConfigError for anything that is not loopback."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        # Not resolved: a hosts file can map "localhost" anywhere.
        return "127.0.0.1"
    if is_loopback(name):
        return name
    raise ConfigError(f"api.host must be a loopback address (127.0.0.1, ::1 or localhost), not {host!r}: "
                      "the API must not be reachable from other machines")


@dataclass
class ApiServer:
    """A running API: uvicorn in a daemon thread."""

    server: object  # uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    backend: AppBackend | None = None  # set by start_api: the daemon hands writes off through it
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (a few seconds at most), close the socket."""
        if self._stopped:
            return
        self._stopped = True
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)

    close = shutdown


def serve(api: ASGIApp, host: str, port: int, startup_timeout: float = 10.0) -> ApiServer:
    """Serve the API on a loopback address in a background thread (port 0: any free port)."""
    import uvicorn

    address = loopback_address(host)
    # proto named, not left 0: asyncio turns Nagle's algorithm off only on sockets that say they are TCP,
    # and with it on, every answer written in two parts waited for the client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot serve the API on {address}:{port}: {exc.strerror or exc} "
                          "(another ideaweave running? change api.port)") from exc
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(api, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ideaweave-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the API did not start on {address}:{bound_port}")
        time.sleep(0.02)
    log.info("API listening on %s:%d", address, bound_port)
    return ApiServer(server, thread, address, bound_port)


def start_api(app: App, state: DaemonState) -> ApiServer:
    """Serve the API of a watched vault at the configured loopback address, with the vault's token."""
    from .token import load_or_create_token

    backend = AppBackend(app, state)
    api = build_api(backend, load_or_create_token(app.state_dir))
    running = serve(api, app.settings.api.host, app.settings.api.port)
    running.backend = backend
    return running
