import dataclasses
from pathlib import Path

import pytest

from ideaweave.config import Settings, example_toml, load_settings
from ideaweave.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def all_keys():
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            yield from (f"{f.name}.{sub.name}" for sub in dataclasses.fields(value))
        else:
            yield f.name


def test_example_file_is_current_and_documents_every_key():
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert text == example_toml(), "regenerate with: ideaweave config --example > config.example.toml"
    keys = list(all_keys())
    assert len(keys) > 30
    for key in keys:
        section, _, name = key.rpartition(".")
        assert f"\n{name} = " in text, key
        if section:
            assert f"[{section}]" in text


def test_example_file_loads_to_the_defaults():
    assert load_settings(REPO / "config.example.toml", env={}) == Settings()


def test_every_field_has_help():
    for f in dataclasses.fields(Settings):
        assert f.metadata.get("help"), f.name
        value = getattr(Settings(), f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                assert sub.metadata.get("help"), f"{f.name}.{sub.name}"


def test_environment_overrides_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[api]\nport = 9000\n[embedding]\nthreads = 2\n")
    settings = load_settings(config, env={"IDEAWEAVE_API_PORT": "9100", "IDEAWEAVE_PRIVATE_MODE": "true",
                                          "IDEAWEAVE_INDEX_EXCLUDE": "Archive/**, Daily/*"})
    assert settings.api.port == 9100 and settings.embedding.threads == 2 and settings.private_mode
    assert settings.index.exclude == ["Archive/**", "Daily/*"]


@pytest.mark.parametrize("text, message", [
    ("[api]\nprot = 1\n", "unknown key 'prot'"),
    ("[api]\nport = \"eighty\"\n", "expected a whole number"),
    ("[summary]\nmode = \"poetry\"\n", "summary.mode"),
    ("[embedding]\nmax_tokens = 4096\n", "batch_tokens"),
    ("vault = [\n", "cannot read the configuration"),
    ("[index]\nexclude = \"Archive\"\n", "list of strings"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={})


def test_bad_environment_value(tmp_path):
    with pytest.raises(ConfigError, match="IDEAWEAVE_API_PORT"):
        load_settings(None, env={"IDEAWEAVE_API_PORT": "x", "XDG_CONFIG_HOME": str(tmp_path)})


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize("text, env, threads", [
    ("", {}, "auto"),
    ("[embedding]\nthreads = 3\n", {}, 3),
    ("[embedding]\nthreads = \"auto\"\nmax_threads = 4\n", {}, "auto"),
    ("[embedding]\nthreads = 3\n", {"IDEAWEAVE_EMBEDDING_THREADS": "auto"}, "auto"),
    ("", {"IDEAWEAVE_EMBEDDING_THREADS": "2"}, 2),
])
def test_embedding_threads_are_auto_or_a_number(tmp_path, text, env, threads):
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert load_settings(config, env=env).embedding.threads == threads


@pytest.mark.parametrize("text", ["[embedding]\nthreads = \"many\"\n", "[embedding]\nthreads = 0\n",
                                  "[embedding]\nthreads = true\n", "[embedding]\nmax_threads = -1\n"])
def test_bad_embedding_threads_are_a_clear_error(tmp_path, text):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="threads"):
        load_settings(config, env={})
