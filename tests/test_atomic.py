"""Tests for ideaweave.atomic: whole files or none, private by default, nothing left behind, on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ideaweave.atomic import TEMP_SUFFIX, create_file, replace_file, temporary_beside
from ideaweave.watch import SyncLedger, remove_stale_temp_files


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_replace_file_writes_the_whole_content_0600_and_leaves_no_temporary(tmp_path: Path, permissive_umask):
    path = tmp_path / "state.json"
    replace_file(path, b"first")
    assert path.read_bytes() == b"first" and mode_of(path) == 0o600
    path.chmod(0o644)
    replace_file(path, b"second, longer than the first")
    assert path.read_bytes() == b"second, longer than the first"
    assert mode_of(path) == 0o600  # the file is replaced, not edited: an old mode does not survive
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_replace_file_takes_a_mode_and_a_function_that_writes_the_file(tmp_path: Path, permissive_umask):
    path = tmp_path / "note.md"
    replace_file(path, lambda temporary: temporary.write_text("written by a callback", encoding="utf-8"), mode=0o644)
    assert path.read_text(encoding="utf-8") == "written by a callback" and mode_of(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["note.md"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    path = tmp_path / "vectors.faiss"
    replace_file(path, b"old")

    def half_written(temporary: Path) -> None:
        temporary.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_file(path, half_written)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]


def test_a_failed_replace_leaves_no_temporary(tmp_path: Path):
    occupied = tmp_path / "folder"
    (occupied / "inside").mkdir(parents=True)  # os.replace cannot put a file over a non-empty folder
    with pytest.raises(OSError):
        replace_file(occupied, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_create_file_creates_only_when_nothing_is_there(tmp_path: Path, permissive_umask):
    path = tmp_path / "api-token"
    assert create_file(path, b"mine\n")
    assert path.read_bytes() == b"mine\n" and mode_of(path) == 0o600
    assert not create_file(path, b"another\n")  # someone was first: theirs stands
    assert path.read_bytes() == b"mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["api-token"]


def test_temporary_files_are_hidden_and_recognised_as_leftovers_after_a_crash(tmp_path: Path):
    with temporary_beside(tmp_path / "Note.md") as temporary:
        assert temporary.parent == tmp_path
        assert temporary.name.startswith(".Note.md.") and temporary.name.endswith(TEMP_SUFFIX)
        assert mode_of(temporary) == 0o600
        # What a crash in the middle of a write leaves: the daemon removes it at its next start.
        assert remove_stale_temp_files(tmp_path) == 1
        assert not temporary.exists()


def test_the_sync_ledger_is_0600_after_a_clean_stop(tmp_path: Path, permissive_umask):
    ledger = SyncLedger(tmp_path / "ledger.json", "fingerprint")
    ledger.close({"b.md", "a.md"})
    assert mode_of(tmp_path / "ledger.json") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]
    assert ledger.take() == ["a.md", "b.md"]
