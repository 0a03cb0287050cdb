"""Shared fixtures: the real models built by `make models`, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ideaweave.embedding import EmbedderOptions, LlamaEmbedder
from ideaweave.modelfiles import checkout_models_dir, require_model

MODELS = checkout_models_dir()
EMBEDDING_F16 = MODELS / "all-MiniLM-L6-v2.f16.gguf"
EMBEDDING_Q8 = MODELS / "all-MiniLM-L6-v2.q8_0.gguf"
TEXT_MODEL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _built(path: Path) -> Path:
    # A missing model is a failure, not a skip: the tests exist to exercise the real model.
    return require_model(path, hash_it=False)


@pytest.fixture(scope="session")
def embedder() -> LlamaEmbedder:
    model = LlamaEmbedder(_built(EMBEDDING_F16), EmbedderOptions(threads=1, batch_tokens=512))
    yield model
    model.close()


@pytest.fixture(scope="session")
def embedder_q8() -> LlamaEmbedder:
    model = LlamaEmbedder(_built(EMBEDDING_Q8), EmbedderOptions(threads=1, batch_tokens=512))
    yield model
    model.close()


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """The whole suite runs under private mode's socket guard: any connection to a non-loopback
    address fails the test that made it."""
    from ideaweave.privacy import install_socket_guard

    install_socket_guard()


@pytest.fixture(scope="session", autouse=True)
def sealing_passphrase(tmp_path_factory):
    """Private notes are stored sealed, with a key this machine can only get from a passphrase (it has no
    keyring): every test's app, and every CLI it runs, finds one, and leaves the unlocked key in a
    runtime folder of the session's own. Tests of the locked state take these away."""
    import os

    from ideaweave.sealing import PASSPHRASE_ENV

    saved = {name: os.environ.get(name) for name in (PASSPHRASE_ENV, "XDG_RUNTIME_DIR")}
    os.environ[PASSPHRASE_ENV] = "correct horse battery staple"
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def file_keyring(tmp_path):
    """keyrings.alt's file keyring, a real backend that keeps its entries in a file, here one of the test's."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(scope="session", autouse=True)
def embedding_variant_chosen(tmp_path_factory):
    """Every app of the suite embeds with f16, the build the expected vectors were made with, without
    timing the builds at its first start: the session's cache folder already holds the choice. The tests
    of the choice itself (test_variants) use caches of their own."""
    import os

    from ideaweave.variants import Choice, cache_key, machine_key, read_cpuinfo, save_choice, variant_cache_file

    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    save_choice(variant_cache_file(dict(os.environ)), cache_key(machine_key(read_cpuinfo()), EMBEDDING_F16),
                Choice("f16", "chosen by the test suite"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved
