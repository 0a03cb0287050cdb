"""The JSON ideaweave promises to other tools: what each command prints with `--json`, and what the
local API answers.

Written once, as JSON Schema (draft 2020-12, the dialect OpenAPI 3.1 uses as it is). The CLI's
contract tests validate its output against these; the API's OpenAPI document takes its component
schemas from here. An object both surfaces show (a related suggestion, a search hit, a failed note)
has one schema, so the two cannot drift apart unnoticed.

Objects list the keys they always carry as required and stay open to more: a tool that reads
`related --json` must keep working when a field is added, and a field removed fails the tests.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from .config import Settings

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

TEXT = {"type": "string"}
NULLABLE_TEXT = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
FLAG = {"type": "boolean"}
SECONDS = {"type": "number", "minimum": 0}
NOTE_PATH = {"type": "string", "minLength": 1, "description": "a vault-relative note path, '/'-separated"}


def record(properties: dict, optional: dict | None = None) -> dict:
    """An object that always has `properties` and may have `optional`."""
    return {"type": "object", "required": list(properties), "properties": {**properties, **(optional or {})}}


def list_of(items: dict) -> dict:
    return {"type": "array", "items": items}


# ------------------------------------------------------------------ shared by the CLI and the API

# A note some stage could not handle (failures.NoteFailure).
NOTE_FAILURE = record({"path": NOTE_PATH, "stage": TEXT, "reason": TEXT})
# A note left out, and why (a skipped read, a write not done).
NOTE_REASON = record({"path": NOTE_PATH, "reason": TEXT})

# One related note (relate.Suggestion): what `related --json` lists and the API's RelatedIdea extends.
SUGGESTION_FIELDS = {"path": NOTE_PATH, "title": TEXT, "score": NUMBER, "heading": NULLABLE_TEXT,
                     "passage": TEXT, "why": TEXT}
SUGGESTION = record(SUGGESTION_FIELDS)
# A related note as every surface shows it (related.RelatedNote): the CLI, the API and the bridge.
RELATED_IDEA = record({**SUGGESTION_FIELDS, "link": TEXT, "pinned": FLAG})

# One search result (search.SearchHit), the same from `search --json` and GET /search.
SEARCH_HIT = record({"path": NOTE_PATH, "title": TEXT, "score": NUMBER, "heading": NULLABLE_TEXT, "passage": TEXT, "why": TEXT})
SEARCH_RESULTS = record({"query": TEXT, "results": list_of(SEARCH_HIT)})

# ------------------------------------------------------------------ the CLI's --json output

INDEX_TOTALS = {"notes": COUNT, "chunks": COUNT, "embedded_chunks": COUNT, "seconds": SECONDS}

INDEX_REPORT = record({
    **INDEX_TOTALS, "read": COUNT, "changed": list_of(NOTE_PATH), "deleted": list_of(NOTE_PATH),
    "renamed": list_of({"type": "array", "prefixItems": [NOTE_PATH, NOTE_PATH], "minItems": 2, "maxItems": 2}),
    "skipped": list_of(NOTE_REASON), "failed": list_of(NOTE_FAILURE), "index_bytes": COUNT})

_APPLY_FIELDS = {
    "written": COUNT, "unchanged": COUNT, "skipped": list_of(NOTE_REASON), "failed": list_of(NOTE_FAILURE),
    "deferred": list_of(NOTE_PATH), "handed_off": list_of(NOTE_PATH), "written_notes": list_of(NOTE_PATH),
    "seconds": SECONDS, "index": record(INDEX_TOTALS)}
APPLY_REPORT = record(_APPLY_FIELDS)
APPLY_DRY_RUN_REPORT = record({**_APPLY_FIELDS, "diffs": list_of(TEXT)})

RELATED_RESULTS = list_of(record({"note": NOTE_PATH, "related": list_of(RELATED_IDEA)}))

NOVELTY_REPORT = record({"note": NOTE_PATH, "sections": list_of(record({
    "heading": NULLABLE_TEXT, "passage": TEXT, "novelty": NUMBER,
    "nearest": record({"path": {"type": ["string", "null"]}, "heading": NULLABLE_TEXT, "passage": TEXT})}))})

VECTOR_SEARCH = record({"exact": FLAG, "vectors": COUNT}, {"clusters": COUNT, "probed": COUNT})

# The start-up pass (or a rescan) while it runs, else null: notes done of total in its phase, the rate
# so far and the seconds left at that rate (null until there is a rate).
LONG_PASS = {"oneOf": [{"type": "null"}, record({
    "phase": {"enum": ["indexing", "writing"]}, "done": COUNT, "total": COUNT, "rate": NUMBER,
    "eta_seconds": {"type": ["integer", "null"], "minimum": 0}})]}

# The embedding threads: "auto" (the count chosen now, null when no daemon embeds) or "fixed".
THREADS = record({"mode": {"enum": ["auto", "fixed"]}, "threads": {"type": ["integer", "null"], "minimum": 1}},
                 {"max_threads": COUNT, "trials": COUNT, "switches": COUNT})

STATUS_REPORT = record({
    "vault": TEXT, "state_dir": TEXT, "model": TEXT, "notes": COUNT, "chunks": COUNT, "vectors": COUNT,
    "vector_search": VECTOR_SEARCH, "skipped": list_of(NOTE_REASON), "not_written": list_of(NOTE_REASON),
    "failed": list_of(NOTE_FAILURE), "warnings": list_of(NOTE_FAILURE),
    "last_indexed": {"type": ["number", "null"]}, "index_bytes": COUNT, "private_mode": FLAG,
    "ranking": TEXT, "pass": LONG_PASS, "threads": THREADS,
    "model_variant": record({"variant": {"enum": ["f16", "q8_0", None]}, "reason": TEXT, "trials": list_of(
        record({"variant": TEXT, "tokens_per_s": NUMBER, "cosine": NUMBER}))}),
    "sealing": record({"encrypt": {"enum": ["private", "all"]}, "unlocked": FLAG, "key": TEXT, "locked_notes": COUNT})})

DOCTOR_REPORT = record({"ok": FLAG, "version": TEXT, "private_mode": FLAG,
                        "checks": list_of(record({"name": TEXT, "ok": FLAG, "problem": NULLABLE_TEXT}))})

TOKEN_REPORT = record({"token": {"type": "string", "minLength": 32}, "path": TEXT, "rotated": FLAG})

FORGET_REPORT = record({"vault": TEXT, "state_dir": TEXT, "removed": FLAG, "keyring_entry_removed": FLAG})
UNLOCK_REPORT = record({"state_dir": TEXT, "store": {"enum": ["keyring", "passphrase"]}, "unlocked": FLAG})
LOCK_REPORT = record({"state_dir": TEXT, "locked": FLAG})

MODEL_LISTING = record({
    "file": TEXT, "path": TEXT, "exists": FLAG, "size": {"type": ["integer", "null"]}, "sha256": NULLABLE_TEXT,
    "verified": {"type": ["boolean", "null"], "description": "null: no manifest describes the file"},
    "role": NULLABLE_TEXT, "license": NULLABLE_TEXT, "source_package": NULLABLE_TEXT, "source_version": NULLABLE_TEXT,
    "uses": list_of(TEXT), "problem": NULLABLE_TEXT})
MODELS_REPORT = record({"dir": TEXT, "models": list_of(MODEL_LISTING)})
MODELS_BUILD_REPORT = record({"dir": TEXT, "models": list_of(
    record({"file": TEXT, "path": TEXT, "status": {"enum": ["built", "up to date"]}}))})
MODELS_ADD_REPORT = record({"dir": TEXT, "file": TEXT, "path": TEXT, "size": COUNT, "sha256": TEXT,
                            "role": TEXT, "license": TEXT})

SERVICE_MANAGER = {"enum": ["systemd", "launchd"]}
SERVICE_INSTALL_REPORT = record({"path": TEXT, "manager": SERVICE_MANAGER, "command": list_of(TEXT), "started": FLAG})
SERVICE_UNINSTALL_REPORT = record({"path": TEXT, "manager": SERVICE_MANAGER, "removed": FLAG})
SERVICE_STATUS_REPORT = record({"manager": SERVICE_MANAGER, "path": TEXT, "installed": FLAG,
                                "running": {"type": ["boolean", "null"]}, "since": NULLABLE_TEXT,
                                "pid": {"type": ["integer", "null"]}, "problem": NULLABLE_TEXT})

_PLAIN_TYPES = {bool: FLAG, int: {"type": "integer"}, float: NUMBER, str: TEXT}


def settings_schema(cls: type = Settings) -> dict:
    """`config --json`: every setting, from the one declaration of the settings.

    Closed, unlike the other objects: a key printed here that the settings do not declare is a bug.
    """
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            fields[f.name] = settings_schema(kind)
        elif typing.get_origin(kind) is list:
            fields[f.name] = list_of(_PLAIN_TYPES[typing.get_args(kind)[0]])
        elif typing.get_origin(kind) is types.UnionType:  # such as embedding.threads: a number or "auto"
            fields[f.name] = {"anyOf": [_PLAIN_TYPES[member] for member in typing.get_args(kind)]}
        else:
            fields[f.name] = _PLAIN_TYPES[kind]
    return {**record(fields), "additionalProperties": False}


CONFIG_REPORT = settings_schema()

# Each command's `--json` output.
CLI_OUTPUT = {
    "index": INDEX_REPORT, "apply": APPLY_REPORT, "apply --dry-run": APPLY_DRY_RUN_REPORT,
    "related": RELATED_RESULTS, "search": SEARCH_RESULTS, "novelty": NOVELTY_REPORT, "status": STATUS_REPORT,
    "doctor": DOCTOR_REPORT, "config": CONFIG_REPORT, "token": TOKEN_REPORT, "forget": FORGET_REPORT,
    "unlock": UNLOCK_REPORT, "lock": LOCK_REPORT,
    "models": MODELS_REPORT, "models build": MODELS_BUILD_REPORT, "models add": MODELS_ADD_REPORT,
    "service install": SERVICE_INSTALL_REPORT, "service uninstall": SERVICE_UNINSTALL_REPORT,
    "service status": SERVICE_STATUS_REPORT,
}

# ------------------------------------------------------------------ the API's answers

ERROR = record({"error": TEXT})
OK = record({"ok": FLAG})
PAUSED = record({"paused": FLAG})

API_STATUS = record({
    "vault": TEXT, "notes": COUNT, "chunks": COUNT,
    "indexing": record({"done": COUNT, "total": COUNT, "active": FLAG}),
    "queue": COUNT, "paused": FLAG, "private_mode": FLAG, "last_error": NULLABLE_TEXT,
    "bridge_connected": FLAG, "failed": list_of(NOTE_FAILURE), "version": TEXT, "pass": LONG_PASS,
    "threads": THREADS})

# A suggestion as the API shows it: with the link text Obsidian resolves and whether the user pinned it.
RELATED = record({"note": NOTE_PATH, "related": list_of(RELATED_IDEA)})

SUMMARY = record({"note": NOTE_PATH, "summary": NULLABLE_TEXT})

PENDING_WRITE = record({"id": TEXT, "path": NOTE_PATH, "set": {"type": "object"}, "remove": list_of(TEXT)})
WRITES = record({"pending": list_of(PENDING_WRITE)})

# The component schemas of the OpenAPI document, by name.
API_RESPONSES = {
    "Error": ERROR, "Ok": OK, "Paused": PAUSED, "Status": API_STATUS, "NoteFailure": NOTE_FAILURE,
    "RelatedIdea": RELATED_IDEA, "Related": RELATED, "SearchHit": SEARCH_HIT, "SearchResults": SEARCH_RESULTS,
    "Summary": SUMMARY, "PendingWrite": PENDING_WRITE, "Writes": WRITES,
}

# ------------------------------------------------------------------ topics

# One topic (topics.Topic). The contract other tools depend on is id, name, level, parent and notes:
# level 0 the broadest, every note of the vault but the templates in exactly one topic per level.
TOPIC_ID = {"type": "string", "minLength": 1}
TOPIC = record({
    "id": TOPIC_ID, "name": TEXT, "level": COUNT, "parent": {"type": ["string", "null"]},
    "notes": {**list_of(NOTE_PATH), "minItems": 1}},
    {"phrases": list_of(TEXT), "central": {"type": ["string", "null"]}, "description": TEXT,
     "neighbours": list_of(TOPIC_ID)})
TOPICS = record({"topics": list_of(TOPIC)})
# With --write (or topics.write): what was done to the hub notes and the notes' topic keys.
PUBLISHED = record({
    "hubs": {"oneOf": [{"type": "null"}, record({
        "folder": TEXT, "written": list_of(NOTE_PATH), "removed": list_of(NOTE_PATH), "unchanged": COUNT,
        "user_hubs": list_of(NOTE_PATH), "conflicts": list_of(NOTE_PATH)})]},
    "keys": record({"written": list_of(NOTE_PATH), "deferred": list_of(NOTE_PATH), "skipped": list_of(NOTE_REASON)})})
CLI_TOPICS = record({"topics": list_of(TOPIC)}, {"published": PUBLISHED})
# Hub notes the user edited: theirs, left alone (see hubs).
STATUS_REPORT["properties"]["user_hubs"] = list_of(NOTE_PATH)

CLI_OUTPUT["topics"] = CLI_TOPICS

# `summarize --json`: the summary each note would get, and what the reading did with each sentence.
SUMMARIZE = list_of(record({"note": NOTE_PATH, "summary": NULLABLE_TEXT, "mode": TEXT,
                            "sentences": list_of(record({"text": TEXT, "why": TEXT}))}))
CLI_OUTPUT["summarize"] = SUMMARIZE

# The topics of one note (GET /topics?note=): its topic at each level, then those topics' neighbours.
NOTE_TOPICS = record({"note": NOTE_PATH, "topics": list_of(TOPIC), "neighbours": list_of(TOPIC)})

# ------------------------------------------------------------------ duplicates

# One side of a duplicate pair (duplicates.Passage), and a pair (duplicates.Duplicate): `similarity` is the
# cosine of the two passages, `closeness` how far it stands above the vault's ordinary close neighbours
# (robust z), `percentile` the share of the vault's sections whose second nearest note is less similar.
DUPLICATE_PASSAGE = record({"path": NOTE_PATH, "heading": NULLABLE_TEXT, "passage": TEXT})
DUPLICATE = record({
    "a": DUPLICATE_PASSAGE, "b": DUPLICATE_PASSAGE, "similarity": NUMBER, "closeness": NUMBER,
    "percentile": NUMBER, "sections": COUNT,
    "more": list_of(record({"a": DUPLICATE_PASSAGE, "b": DUPLICATE_PASSAGE, "similarity": NUMBER}))})
DUPLICATE_CALIBRATION = record({"median": NUMBER, "spread": NUMBER, "sections": COUNT})
DUPLICATES = record({"duplicates": list_of(DUPLICATE), "calibration": DUPLICATE_CALIBRATION})
# `duplicates --not A B` / `--undo-not A B`, and POST /duplicates/not.
NOT_DUPLICATES = record({"a": NOTE_PATH, "b": NOTE_PATH, "not_duplicates": FLAG, "changed": FLAG})

CLI_OUTPUT["duplicates"] = DUPLICATES
CLI_OUTPUT["duplicates --not"] = NOT_DUPLICATES

API_RESPONSES.update({"Topic": TOPIC, "Topics": TOPICS, "NoteTopics": NOTE_TOPICS, "Duplicate": DUPLICATE,
                      "Duplicates": DUPLICATES, "NotDuplicates": NOT_DUPLICATES})

# `map --json`: the page written, with how many notes and (broad) topics it shows.
MAP_REPORT = record({"file": TEXT, "notes": COUNT, "topics": COUNT})
CLI_OUTPUT["map"] = MAP_REPORT
