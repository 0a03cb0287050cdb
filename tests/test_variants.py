"""Choosing the build of the embedding model (f16 or q8_0) that is fastest on this CPU."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import EMBEDDING_F16, EMBEDDING_Q8
from ideaweave import variants
from ideaweave.app import App
from ideaweave.config import Settings
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder
from ideaweave.variants import (Choice, Trial, cache_key, cached_choice, choose, known_choice, machine_key,
                                pick_variant, save_choice, sibling, variant_of)

CPUINFO = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512f avx512_vnni\n\nprocessor\t: 1\n"


def test_the_fastest_faithful_build_is_chosen():
    assert choose([Trial("f16", 2600, 1.0), Trial("q8_0", 2900, 0.998)]).variant == "q8_0"
    assert choose([Trial("f16", 2600, 1.0), Trial("q8_0", 2500, 0.998)]).variant == "f16"
    # Faster but its vectors drift from the reference: not worth it.
    assert choose([Trial("f16", 2600, 1.0), Trial("q8_0", 4000, 0.97)]).variant == "f16"
    assert "1.12x f16" in choose([Trial("f16", 2600, 1.0), Trial("q8_0", 2912, 0.998)]).reason


def test_builds_are_named_by_their_suffix(tmp_path):
    assert variant_of(EMBEDDING_F16) == "f16" and variant_of(EMBEDDING_Q8) == "q8_0"
    assert sibling(EMBEDDING_F16, "q8_0") == EMBEDDING_Q8
    assert variant_of(tmp_path / "my-model.gguf") is None
    own = tmp_path / "my-model.gguf"
    assert known_choice(own, "auto", None, tmp_path / "c.json", "m")[0] == own


def test_the_machine_is_its_cpu_model_and_flags():
    key = machine_key(CPUINFO, "x86_64")
    assert key.startswith("x86_64 AMD EPYC 9R14 flags:")
    assert machine_key(CPUINFO.replace("avx512_vnni", ""), "x86_64") != key  # other kernels: measured again


@pytest.fixture
def sample_texts():
    return [f"Paragraph {i} about owls hunting at night in the forest, their hearing and their silent flight, "
            f"and how voles hide from them under the snow in winter number {i}." for i in range(12)]


def test_the_builds_are_timed_once_and_the_choice_is_cached(tmp_path, monkeypatch, sample_texts):
    monkeypatch.setattr(variants, "MEASURE_SECONDS", 0.2)
    cache = tmp_path / "cache" / "model-variants.json"
    loaded = []

    def load(path):
        loaded.append(path.name)
        return LlamaEmbedder(path, EmbedderOptions(threads=1))

    path, choice = pick_variant(EMBEDDING_F16, "auto", None, cache, "machine A", lambda: sample_texts, load)
    assert sorted(loaded) == sorted([EMBEDDING_F16.name, EMBEDDING_Q8.name])
    by_variant = {t.variant: t for t in choice.trials}
    assert by_variant["q8_0"].cosine >= 0.99  # the real q8_0 build agrees with f16
    assert all(t.tokens_per_s > 0 for t in choice.trials)
    fastest = max(choice.trials, key=lambda t: t.tokens_per_s).variant
    assert choice.variant == fastest and path == sibling(EMBEDDING_F16, fastest)
    assert cached_choice(cache, cache_key("machine A", EMBEDDING_F16)) == choice

    def no_timing():
        raise AssertionError("timed again")

    assert pick_variant(EMBEDDING_F16, "auto", None, cache, "machine A", no_timing, load) == (path, choice)
    # Another CPU is timed again.
    loaded.clear()
    pick_variant(EMBEDDING_F16, "auto", None, cache, "machine B", lambda: sample_texts, load)
    assert len(loaded) == 2
    assert len(json.loads(cache.read_text())) == 2


def test_an_index_keeps_the_build_it_was_made_with(tmp_path):
    cache = tmp_path / "model-variants.json"
    save_choice(cache, cache_key("m", EMBEDDING_F16), Choice("f16", "fastest on this CPU"))
    stored = f"{EMBEDDING_Q8.name}:36270016:abcdef"
    path, choice = known_choice(EMBEDDING_F16, "auto", stored, cache, "m")
    assert path == EMBEDDING_Q8 and choice.reason == "the index was built with it"
    # Forced by the setting, whatever the index or the cache say.
    assert known_choice(EMBEDDING_F16, "f16", stored, cache, "m")[0] == EMBEDDING_F16
    assert known_choice(EMBEDDING_F16, "auto", None, tmp_path / "none.json", "m") is None


def test_the_app_embeds_with_the_chosen_build(tmp_path):
    """The app loads the build the cache names, and the store records that model."""
    root = tmp_path / "vault"
    root.mkdir()
    (root / "owls.md").write_text("# Owls\n\nOwls hunt at night and hear voles under the snow.\n", encoding="utf-8")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    save_choice(variants.variant_cache_file(env), cache_key(machine_key(variants.read_cpuinfo()), EMBEDDING_F16),
                Choice("q8_0", "fastest on this CPU"))
    settings = replace(Settings(), state_dir=str(tmp_path / "state"))
    settings = replace(settings, models=replace(settings.models, dir=str(EMBEDDING_F16.parent)))
    app = App(settings, root, env=env)
    try:
        assert app.embedding_model_path == EMBEDDING_Q8
        assert app.embedder.model_id.startswith(EMBEDDING_Q8.name)
        app.indexer.run()
        assert app.store.model_id.startswith(EMBEDDING_Q8.name)
    finally:
        app.close()
    # The cache now says f16, but the index was built with q8_0: the next start keeps q8_0.
    save_choice(variants.variant_cache_file(env), cache_key(machine_key(variants.read_cpuinfo()), EMBEDDING_F16),
                Choice("f16", "fastest on this CPU"))
    again = App(settings, root, env=env)
    try:
        assert again.embedding_variant == (EMBEDDING_Q8, Choice("q8_0", "the index was built with it"))
    finally:
        again.close()
