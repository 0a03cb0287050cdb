"""Replacing a file so that a crash leaves the old version or the new one, never half of either.

One recipe for every file ideaweave writes, the notes in the vault and the files of the state folder
alike: a temporary file in the same folder (the same file system, so the rename is atomic), written
and fsynced, moved into place with `os.replace`, then the folder fsynced so that the rename itself
survives a power cut. Files are 0600 unless the caller says otherwise: the state folder holds the
user's notes in another form, and its token guards the API.

Temporary files are named `.<name>.<random>.ideaweave-tmp`: a dot-name the vault scanner and the
watcher ignore, and that the daemon recognises and removes after a crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE = 0o600
TEMP_SUFFIX = ".ideaweave-tmp"

# What to put in a file: its bytes, or a function that writes the file at the path it is given
# (for writers such as faiss that open the file themselves).
Content = bytes | Callable[[Path], None]


@contextmanager
def temporary_beside(path: Path, mode: int = PRIVATE) -> Iterator[Path]:
    """A new empty file with `mode` in the folder of `path`. Whatever is still under its name when
    the block ends is removed, so a failure leaves nothing behind; move it into place to keep it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    temporary = Path(name)
    try:
        try:
            os.fchmod(fd, mode)  # mkstemp makes 0600; unlike open's mode, fchmod is not filtered by the umask
        finally:
            os.close(fd)
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def write_synced(path: Path, content: Content) -> None:
    """Write `content` into the file at `path` and fsync it: on disk before it is moved into place."""
    if callable(content):
        content(path)
        with open(path, "rb+") as file:
            os.fsync(file.fileno())
        return
    with open(path, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable. Some file systems (network drives, some FUSE mounts) refuse
    to fsync a folder; the rename has happened by then, so that is no reason to report a failure."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_file(path: Path, content: Content, mode: int = PRIVATE) -> None:
    """Put `content` at `path` (created or replaced) with `mode`, atomically and durably."""
    path = Path(path)
    with temporary_beside(path, mode) as temporary:
        write_synced(temporary, content)
        os.replace(temporary, path)
    fsync_folder(path.parent)


def create_file(path: Path, content: Content, mode: int = PRIVATE) -> bool:
    """Put `content` at `path` only if nothing is there yet, atomically and durably. Returns whether
    this call created it (False: another file, perhaps another process's, was there first)."""
    path = Path(path)
    with temporary_beside(path, mode) as temporary:
        write_synced(temporary, content)
        try:
            os.link(temporary, path)  # creates the name, complete, only if it does not exist yet
        except FileExistsError:
            return False
    fsync_folder(path.parent)
    return True
