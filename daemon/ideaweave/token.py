"""The bearer token of the local API: a random secret in the state folder, readable by its owner only.

Anything on this machine can reach a loopback port, so the port alone proves nothing; the token
proves the caller could read a file only the vault's owner can read. The bridge plugin gets it
from `ideaweave token`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from .atomic import create_file, replace_file
from .errors import StoreError

log = logging.getLogger(__name__)

TOKEN_FILE = "api-token"
TOKEN_BYTES = 32
# A token someone put in the file by hand is kept if it is at least this strong-looking.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")


def token_path(state_dir: Path) -> Path:
    return Path(state_dir) / TOKEN_FILE


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def load_or_create_token(state_dir: Path) -> str:
    """The vault's API token, created on first use (file mode 0600 in a 0700 folder)."""
    path = token_path(state_dir)
    _private_folder(path.parent)
    existing = _read(path)
    if existing is not None:
        return existing
    if path.exists():
        log.warning("%s does not hold a usable token; a new one replaces it", path)
        return rotate_token(state_dir)
    _install(path, new_token(), replace=False)
    # Another process may have created it first: whichever file landed is the token.
    token = _read(path)
    if token is None:
        raise StoreError(f"{path}: the API token could not be created")
    return token


def rotate_token(state_dir: Path) -> str:
    """Replace the token; clients holding the old one get 401 from then on."""
    path = token_path(state_dir)
    _private_folder(path.parent)
    token = new_token()
    _install(path, token, replace=True)
    return token


def _private_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode passes through the umask, and the folder may predate us
    except OSError as exc:
        raise StoreError(f"{folder}: cannot create the state folder: {exc.strerror or exc}") from exc


def _read(path: Path) -> str | None:
    """The token in the file, or None when there is no file or it holds no usable token."""
    try:
        # O_NOFOLLOW: a symlink planted in place of the token must not make us read (or chmod) another file.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the API token: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("%s was readable by other users; it is now 0600 (consider `ideaweave token --rotate`)", path)
        text = handle.read(4096).decode("ascii", "replace").strip()
    return text if _ACCEPTABLE.fullmatch(text) else None


def _install(path: Path, token: str, replace: bool) -> None:
    """Put the token in a 0600 file at `path`, atomically: replacing the file, or only creating it if
    there is none yet (another process starting at the same moment may have won: its token stands)."""
    content = token.encode("ascii") + b"\n"
    try:
        if replace:
            replace_file(path, content)
        else:
            create_file(path, content)
    except OSError as exc:
        raise StoreError(f"{path}: cannot write the API token: {exc.strerror or exc}") from exc
