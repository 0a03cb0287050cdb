"""`ideaweave doctor`: checks a user can read, each with what to do when it fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import __version__
from .app import state_dir_for, resolve_vault
from .config import Settings
from .errors import IdeaweaveError
from .modelfiles import check_model, models_dir, resolve_model


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


def _state_check(state_dir: Path) -> dict:
    entry = {"name": "state directory", "path": str(state_dir), "ok": True, "problem": None}
    if not state_dir.exists():
        entry["note"] = "not created yet: the first `ideaweave index` creates it"
        return entry
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    entry["mode"] = oct(mode)
    if mode & 0o077:
        entry.update(ok=False, problem=f"{state_dir}: readable by other users (mode {oct(mode)}); run chmod 700 on it")
    elif not os.access(state_dir, os.W_OK):
        entry.update(ok=False, problem=f"{state_dir}: not writable")
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
        checks.append(_state_check(state_dir_for(root, settings, env)))
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
