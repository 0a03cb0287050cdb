"""Where the model files are, and whether they are the files the manifest describes.

The default models are built by ``make models`` into ``models/build/`` next to a copy of
``models/manifest.toml``; a file listed there is checked by size (always) and sha256 (when
``models.verify`` is on) before llama.cpp loads it, so a truncated or corrupt file gives a clear
error instead of a crash deep inside llama.cpp.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

REBUILD_HINT = "run `make models` in the ideaweave checkout to rebuild it"
MANIFEST = "manifest.toml"


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    role: str
    source_package: str
    source_version: str
    license: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelCheck:
    path: Path
    exists: bool
    size: int | None
    sha256: str | None
    expected: ManifestEntry | None
    problem: str | None  # None: the file is usable


def checkout_models_dir() -> Path:
    """models/build of the checkout this package runs from (an editable install)."""
    return Path(__file__).resolve().parents[2] / "models" / "build"


def models_dir(configured: str, env: dict[str, str]) -> Path:
    if configured:
        return Path(configured).expanduser()
    built = checkout_models_dir()
    if built.is_dir():
        return built
    data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "ideaweave" / "models"


def resolve_model(name_or_path: str, directory: Path) -> Path:
    """A bare file name lives in the models folder; anything with a slash is a path of its own."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_absolute() or os.sep in name_or_path or "/" in name_or_path:
        return candidate
    return directory / name_or_path


def read_manifest(path: Path) -> dict[str, ManifestEntry]:
    if not path.is_file():
        return {}
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    fields = ManifestEntry.__dataclass_fields__
    return {m["file"]: ManifestEntry(**{k: v for k, v in m.items() if k in fields}) for m in table.get("model", [])}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(path: Path, hash_it: bool = True) -> ModelCheck:
    """Inspect one model file against the manifest in its folder; never raises."""
    expected = read_manifest(path.parent / MANIFEST).get(path.name)
    if not path.is_file():
        return ModelCheck(path, False, None, None, expected, f"{path}: model file not found; {REBUILD_HINT}")
    size = path.stat().st_size
    if expected and size != expected.size:
        problem = f"{path}: model file is {size} bytes, expected {expected.size} (truncated or corrupt); {REBUILD_HINT}"
        return ModelCheck(path, True, size, None, expected, problem)
    digest = sha256_of(path) if hash_it else None
    if expected and digest and digest != expected.sha256:
        problem = f"{path}: model file has sha256 {digest[:12]}…, expected {expected.sha256[:12]}… (corrupt); {REBUILD_HINT}"
        return ModelCheck(path, True, size, digest, expected, problem)
    if not expected:
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                return ModelCheck(path, True, size, digest, None, f"{path}: not a GGUF file")
    return ModelCheck(path, True, size, digest, expected, None)


def require_model(path: Path, hash_it: bool = True) -> Path:
    """The path, if the file is usable; otherwise a ModelError that says how to fix it."""
    check = check_model(path, hash_it)
    if check.problem:
        raise ModelError(check.problem)
    return path
