"""`ideaweave doctor`: checks a user can read, each with what to do when it fails."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import __version__
from .app import key_place, scan_rules, state_dir_for, resolve_vault
from .config import Settings
from .errors import IdeaweaveError
from .modelfiles import check_model, models_dir, resolve_model
from .sealing import keyring_usable, read_record
from .vault import Skipped, VaultScanner

# Words this long or longer are distinctive enough that finding one of a private note's own in the
# state folder means its text leaked (shorter ones turn up in binary data by chance).
SECRET_WORD_CHARS = 8
_WORD = re.compile(r"[^\W\d_]{%d,}" % SECRET_WORD_CHARS)


def _model_check(name: str, path: Path, needed: bool) -> dict:
    check = check_model(path, hash_it=True)
    return {
        "name": name, "path": str(path), "ok": check.problem is None or not needed, "needed": needed,
        "size": check.size, "sha256": check.sha256, "expected_sha256": check.expected.sha256 if check.expected else None,
        "problem": check.problem,
    }


def _llama_check() -> dict:
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        return {"name": "llama.cpp", "ok": False, "problem": f"llama-cpp-python cannot be imported: {exc}"}
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    features = [part.split("=")[0].strip() for part in info.replace("CPU :", "").split("|") if part.strip().endswith("= 1")]
    return {"name": "llama.cpp", "ok": True, "version": llama_cpp.__version__, "cpu_features": features,
            "note": "repacked/AMX kernels are not used (they can die with SIGILL on virtual machines)", "problem": None}


def _variant_check(settings: Settings, directory: Path, state_dir: Path, env: dict[str, str]) -> dict:
    """Which build of the embedding model runs here and why (doctor never times them: the daemon does,
    once, at its first start)."""
    from .store import stored_model_id
    from .variants import cpu_name, known_choice, machine_key, read_cpuinfo, variant_cache_file

    cpuinfo = read_cpuinfo()
    known = known_choice(resolve_model(settings.models.embedding, directory), settings.embedding.variant,
                         stored_model_id(state_dir), variant_cache_file(env), machine_key(cpuinfo))
    note = known[1].describe() if known else "f16 and q8_0 are timed at the next start, and the fastest kept"
    return {"name": "embedding variant", "ok": True, "path": str(known[0]) if known else "",
            "variant": known[1].as_json() if known else None, "cpu": cpu_name(cpuinfo), "note": f"{note}; CPU: {cpu_name(cpuinfo)}",
            "problem": None}


def _state_check(state_dir: Path) -> dict:
    entry = {"name": "state directory", "path": str(state_dir), "ok": True, "problem": None}
    if not state_dir.exists():
        entry["note"] = "not created yet: the first `ideaweave index` creates it"
        return entry
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    entry["mode"] = oct(mode)
    loose = [str(p) for p in [state_dir, *state_dir.rglob("*")] if stat.S_IMODE(p.lstat().st_mode) & 0o077]
    if loose:
        entry.update(ok=False, problem=f"readable by other users: {', '.join(loose[:3])}; run chmod -R go= {state_dir}")
    elif not os.access(state_dir, os.W_OK):
        entry.update(ok=False, problem=f"{state_dir}: not writable")
    return entry


def secrets_of(notes: Iterable[tuple[str, str, bool]]) -> dict[str, set[str]]:
    """For each private note (of (path, text, private) triples): its title and the long words only
    private notes use, lower case: what must not be found in the state folder."""
    notes = list(notes)
    public_words = {w for _, text, private in notes if not private for w in _WORD.findall(text.lower())}
    return {path: {Path(path).stem.lower()} | (set(_WORD.findall(text.lower())) - public_words)
            for path, text, private in notes if private}


def plaintext_found(files: Mapping[str, bytes], secrets: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    """(private note, state file) for every state file that holds one of that note's secrets."""
    found = []
    lowered = {name: data.lower() for name, data in files.items()}
    for path, words in sorted(secrets.items()):
        needles = [w.encode("utf-8") for w in words if w]
        for name, data in sorted(lowered.items()):
            if any(needle in data for needle in needles):
                found.append((path, name))
    return found


def _at_rest_check(root: Path, settings: Settings, state_dir: Path, env: dict[str, str]) -> dict:
    """Where the index is, how its secure notes are kept, and whether any private note's words are in it."""
    record = read_record(key_place(state_dir, settings, env)) or {}
    entry = {"name": "private notes at rest", "path": str(state_dir), "ok": True, "problem": None,
             "encrypt": settings.index.encrypt, "key_store": record.get("store") or settings.index.key_store,
             "keyring_usable": keyring_usable(), "private_notes": 0, "plaintext": []}
    scanner = VaultScanner(root, scan_rules(settings))
    notes = []
    for f in scanner.scan():
        note = scanner.read(f.path)
        if not isinstance(note, Skipped):
            notes.append((f.path, note.text, note.private or settings.index.encrypt == "all"))
    secrets = secrets_of(notes)
    entry["private_notes"] = len(secrets)
    how = f"index.encrypt = {settings.index.encrypt!r}, key kept by {entry['key_store']}"
    if not state_dir.exists():
        entry["note"] = f"{how}; {len(secrets)} secure notes; no index yet"
        return entry
    files = {str(p.relative_to(state_dir)): p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file()}
    found = plaintext_found(files, secrets)
    entry["plaintext"] = [{"note": note, "file": name} for note, name in found]
    if found:
        note, name = found[0]
        entry.update(ok=False, problem=f"{len(found)} plaintext traces of private notes in the index (first: {note} "
                                       f"in {name}); run `ideaweave forget`, then index again")
    else:
        entry["note"] = (f"{how}; {len(secrets)} secure notes; none of their titles or words is in the state folder "
                         f"({len(files)} files scanned)")
    return entry


def diagnose(settings: Settings, cli_vault: str | None, cwd: Path, env: dict[str, str]) -> dict:
    """What is wrong, if anything; `env` is the environment the composition root read (XDG folders)."""
    directory = models_dir(settings.models.dir, env)
    checks = [
        _model_check("embedding model", resolve_model(settings.models.embedding, directory), needed=True),
        _model_check("text model", resolve_model(settings.models.text, directory), needed=settings.summary.mode == "llm"),
        _llama_check(),
    ]
    try:
        root = resolve_vault(cli_vault, settings, cwd)
        notes = sum(1 for _ in root.rglob("*.md"))
        checks.append({"name": "vault", "path": str(root), "ok": True, "markdown_files": notes, "problem": None,
                       "obsidian": (root / ".obsidian").is_dir()})
        state_dir = state_dir_for(root, settings, env)
        checks.append(_state_check(state_dir))
        checks.append(_variant_check(settings, directory, state_dir, env))
        checks.append(_at_rest_check(root, settings, state_dir, env))
    except IdeaweaveError as exc:
        checks.append({"name": "vault", "ok": False, "problem": str(exc)})
    return {"ok": all(c["ok"] for c in checks), "version": __version__, "private_mode": settings.private_mode,
            "checks": checks}


def render(report: dict) -> str:
    lines = [f"ideaweave {report['version']}" + ("  (private mode on)" if report["private_mode"] else "")]
    for check in report["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        detail = check.get("path") or check.get("version", "")
        lines.append(f"[{mark}] {check['name']}: {detail}")
        if check.get("size") is not None:
            lines.append(f"       {check['size'] / 1e6:.1f} MB, sha256 {str(check.get('sha256'))[:16]}…")
        if check.get("cpu_features"):
            lines.append(f"       CPU features: {' '.join(check['cpu_features'])}")
        if check.get("markdown_files") is not None:
            lines.append(f"       {check['markdown_files']} markdown files")
        if check.get("problem"):
            lines.append(f"       {check['problem']}")
        elif check.get("note"):
            lines.append(f"       {check['note']}")
    return "\n".join(lines)
