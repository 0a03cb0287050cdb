"""The composition root on its own: which vault, where its state lives, which parts it builds and which it
was given, and the weights it ranks with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ideaweave.app import App, resolve_vault, state_dir_for, vault_id
from ideaweave.config import Settings, replace
from ideaweave.errors import VaultError
from ideaweave.relate import COMPONENTS, DEFAULT_WEIGHTS
from ideaweave.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vault"


def test_the_vault_is_the_flag_else_the_setting_else_the_enclosing_obsidian_folder(tmp_path):
    vault = tmp_path / "notes"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "deep" / "er").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_vault(str(other), Settings(vault=str(vault)), tmp_path) == other.resolve()
    assert resolve_vault(None, Settings(vault=str(vault)), tmp_path) == vault.resolve()
    assert resolve_vault(None, Settings(), vault / "deep" / "er") == vault.resolve()
    with pytest.raises(VaultError, match="not inside a vault"):
        resolve_vault(None, Settings(), tmp_path)
    with pytest.raises(VaultError, match="not found"):
        resolve_vault(str(tmp_path / "missing"), Settings(), tmp_path)


def test_state_lives_outside_the_vault_under_a_readable_stable_id(tmp_path):
    root = (tmp_path / "My Notes!").resolve()
    assert vault_id(root) == vault_id(root) and vault_id(root).startswith("My-Notes-")
    assert vault_id(root) != vault_id(tmp_path / "Other")
    assert state_dir_for(root, Settings(), {"XDG_STATE_HOME": str(tmp_path / "xdg")}) == \
        tmp_path / "xdg" / "ideaweave" / vault_id(root)
    assert state_dir_for(root, Settings(state_dir=str(tmp_path / "s")), {}) == tmp_path / "s"


def test_parts_given_to_the_app_are_used_and_left_open(tmp_path, embedder):
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    store = Store.open(tmp_path / "state", embedder.dim, embedder.model_id)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder, store=store)
    assert app.embedder is embedder and app.store is store
    app.indexer.run()
    app.close()
    assert store.counts()["notes"] > 0  # still open: its owner closes it
    assert embedder.embed(["still loaded"]).shape == (1, embedder.dim)
    store.close()


def test_the_app_ranks_with_the_configured_weights_when_they_are_fixed(tmp_path, embedder):
    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    settings = replace(Settings(), state_dir=str(tmp_path / "state"),
                       **{"relate.weights": "fixed", "relate.emb_weight": 2.5, "relate.aa_weight": 0.0})
    app = App(settings, root, embedder=embedder)
    try:
        app.indexer.run()
        weights = app.related_notes().relater.weights
        assert weights == {**DEFAULT_WEIGHTS, "emb": 2.5, "aa": 0.0}
        assert set(weights) == set(COMPONENTS)
    finally:
        app.close()


def test_the_settings_declare_every_ranking_weight_with_the_measured_default():
    assert Settings().relate.weights_dict() == DEFAULT_WEIGHTS


def test_the_parts_are_built_once_when_threads_race(tmp_path, embedder):
    """The daemon's loop and the API's threads reach for the store at once at start-up: two stores would
    each hold their own copy of the vector index, and one would miss the other's vectors."""
    import threading

    root = tmp_path / "vault"
    shutil.copytree(EXAMPLE, root)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state")), root, embedder=embedder)
    barrier, seen = threading.Barrier(8), []

    def reach() -> None:
        barrier.wait()
        seen.append((app.store, app.indexer, app.summaries))

    threads = [threading.Thread(target=reach) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(parts[i] is seen[0][i] for parts in seen for i in range(3))
    app.close()
