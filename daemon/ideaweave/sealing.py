"""Sealing: what the index keeps of secure notes is encrypted, and where its key lives.

A private note (by folder or flag; every note with `index.encrypt = "all"`) leaves no plaintext in the
state folder. The store keeps its vectors, headings, title, frontmatter, links, tags and what ideaweave
wrote into it *sealed* (AES-256-GCM: authenticated, so a changed byte is refused, not misread), its path
as a keyed pseudonym (HMAC-SHA256: the same path always gives the same pseudonym, so it can still be
looked up), and its text not at all: passages are read again from the note when its owner asks.

The key is 32 random bytes, made once per vault. It is kept either
- in the operating system's keyring (`keyring`: Secret Service, macOS Keychain, Windows Credential
  Locker, or any backend the user configured), or
- wrapped by a key derived from a passphrase (scrypt), when no keyring is usable: `ideaweave unlock`
  asks for it in a terminal (or reads IDEAWEAVE_PASSPHRASE) and leaves the unwrapped key in the user's
  runtime folder (a RAM file system, emptied at logout), so the daemon started later finds it.
`sealing.json` in the state folder says which, and holds a check value that tells a wrong key from
the right one; it never holds the key itself. Without the key the secure notes are simply not indexed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .atomic import replace_file
from .errors import IdeaweaveError

# Text cells of the database that hold sealed values start with this; pseudonymous paths with the other.
# A control character first: no note path or Markdown text a person writes begins with it.
SEALED_PREFIX = "\x1esealed:"
HIDDEN_PREFIX = "\x1ehidden:"
SEALING_FILE = "sealing.json"
KEYRING_SERVICE = "ideaweave"
PASSPHRASE_ENV = "IDEAWEAVE_PASSPHRASE"
KEY_STORES = ("auto", "keyring", "passphrase")
# scrypt at n = 2**15, r = 8: about 32 MB and a tenth of a second, paid once per unlock.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_NONCE = 12
_CHECK = b"ideaweave sealing check"


class SealingError(IdeaweaveError):
    """The key is wrong, missing, or a sealed value was altered."""


class Sealer:
    """Seals and opens values with one vault's key; makes the pseudonyms of secure notes' paths."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealingError("a sealing key is 32 bytes")
        self._aead = AESGCM(_subkey(key, b"seal"))
        self._mac_key = _subkey(key, b"pseudonym")
        self.key = key

    def seal(self, data: bytes, context: bytes = b"") -> bytes:
        """nonce + ciphertext + tag. `context` is bound to the value (a vector to its chunk hash), so a
        sealed value moved to another row does not open."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context)

    def open(self, blob: bytes, context: bytes = b"") -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context)
        except (InvalidTag, ValueError) as error:
            raise SealingError("a sealed value does not open with this key (another key, or altered)") from error

    def seal_text(self, text: str) -> str:
        return SEALED_PREFIX + base64.b64encode(self.seal(text.encode("utf-8"), b"text")).decode("ascii")

    def open_text(self, cell: str) -> str:
        try:
            blob = base64.b64decode(cell[len(SEALED_PREFIX):], validate=True)
        except (binascii.Error, ValueError) as error:
            raise SealingError("a sealed value is damaged") from error
        return self.open(blob, b"text").decode("utf-8")

    def pseudonym(self, path: str) -> str:
        """What the database calls a secure note instead of its path: the same for the same path."""
        return HIDDEN_PREFIX + hmac.new(self._mac_key, path.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def check_value(self) -> str:
        return base64.b64encode(self.seal(_CHECK, b"check")).decode("ascii")

    def matches(self, check: str) -> bool:
        try:
            return self.open(base64.b64decode(check), b"check") == _CHECK
        except (SealingError, binascii.Error, ValueError):
            return False


def is_sealed_text(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def is_hidden_path(value: object) -> bool:
    return isinstance(value, str) and value.startswith(HIDDEN_PREFIX)


def _subkey(key: bytes, purpose: bytes) -> bytes:
    # One key, two uses: each gets its own key derived from it, so neither use can help attack the other.
    return hmac.new(key, b"ideaweave " + purpose, hashlib.sha256).digest()


# ------------------------------------------------------------------ where the key is kept


@dataclass(frozen=True)
class KeyPlace:
    """Where one vault's key is looked for: its state folder (sealing.json), the keyring entry's name,
    and the runtime folder an unlocked passphrase key is left in."""

    state_dir: Path
    entry: str
    runtime_dir: Path | None
    key_store: str = "auto"  # "auto", "keyring" or "passphrase"

    @property
    def record_path(self) -> Path:
        return self.state_dir / SEALING_FILE

    @property
    def runtime_key(self) -> Path | None:
        return self.runtime_dir / f"{self.entry}.key" if self.runtime_dir else None


def runtime_dir_for(env: Mapping[str, str]) -> Path | None:
    """A folder on a RAM file system only this user can read: $XDG_RUNTIME_DIR, else /dev/shm."""
    base = env.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "ideaweave"
    if Path("/dev/shm").is_dir():
        return Path("/dev/shm") / f"ideaweave-{os.getuid()}"
    return None


def read_record(place: KeyPlace) -> dict | None:
    try:
        record = json.loads(place.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _keyring():
    """The keyring module, its backend detected on a thread of its own. The first use of keyring imports
    every backend to choose one and keeps an exception from that, whose traceback holds every frame of the
    caller and all they hold: the first secure note of a pass kept the pass's listings of the whole vault
    (58 MB at 100,000 notes). On a short thread the traceback holds only that thread's frames."""
    import keyring

    detection = threading.Thread(target=keyring.get_keyring, name="keyring-detection", daemon=True)
    detection.start()
    detection.join()
    return keyring


def keyring_usable(explicit: bool = False) -> bool:
    """Is there a keyring backend that keeps secrets (not keyring's "fail" or null stand-ins)? A backend
    that writes secrets into a plain file (keyrings.alt's PlaintextKeyring) counts only when the user
    chose the keyring explicitly (`explicit`): by default a passphrase protects the key better."""
    try:
        keyring = _keyring()
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return False
    if not explicit and type(backend).__name__ == "PlaintextKeyring":
        return False
    chained = getattr(backend, "backends", None)
    return chained is None or bool(chained)


def find_key(place: KeyPlace, env: Mapping[str, str]) -> tuple[Sealer | None, str]:
    """The vault's key if it can be had without asking anyone, and a line saying where it came from or
    why it is locked."""
    record = read_record(place)
    if record is None:
        return None, "no key yet"
    if record.get("store") == "keyring":
        key = _keyring_get(place.entry)
        if key is None:
            return None, "locked: the keyring holds no key for this vault (removed?); `ideaweave forget` starts afresh"
        return _checked(key, record, "the keyring")
    key = _runtime_get(place)
    if key is not None:
        sealer, how = _checked(key, record, "unlocked this session")
        if sealer is not None:
            return sealer, how
    passphrase = env.get(PASSPHRASE_ENV)
    if passphrase:
        try:
            return unlock(place, passphrase), f"unlocked by {PASSPHRASE_ENV}"
        except SealingError as error:
            return None, f"locked: {error}"
    return None, "locked: run `ideaweave unlock` and enter the passphrase"


def make_key(place: KeyPlace, env: Mapping[str, str]) -> tuple[Sealer | None, str]:
    """A new key for a vault that has none: into the keyring when one is usable (and allowed), else
    wrapped by the passphrase in IDEAWEAVE_PASSPHRASE; (None, why) when neither can be had."""
    key = secrets.token_bytes(32)
    sealer = Sealer(key)
    if place.key_store in ("auto", "keyring") and keyring_usable(explicit=place.key_store == "keyring"):
        import keyring

        keyring.set_password(KEYRING_SERVICE, place.entry, base64.b64encode(key).decode("ascii"))
        _write_record(place, {"version": 1, "store": "keyring", "entry": place.entry, "check": sealer.check_value()})
        return sealer, "made a new key, kept in the keyring"
    if place.key_store == "keyring":
        return None, "locked: index.key_store = \"keyring\" but no keyring backend is usable"
    passphrase = env.get(PASSPHRASE_ENV)
    if not passphrase:
        return None, "locked: no keyring is usable; run `ideaweave unlock` to choose a passphrase"
    return set_passphrase(place, passphrase, key), "made a new key, wrapped by the passphrase"


def set_passphrase(place: KeyPlace, passphrase: str, key: bytes | None = None) -> Sealer:
    """Keep `key` (a new one when None) wrapped by a key derived from `passphrase`, and unlocked for this session."""
    key = key if key is not None else secrets.token_bytes(32)
    salt = secrets.token_bytes(16)
    wrapping = Sealer(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    sealer = Sealer(key)
    _write_record(place, {
        "version": 1, "store": "passphrase", "entry": place.entry, "check": sealer.check_value(),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": base64.b64encode(salt).decode("ascii")},
        "wrapped": base64.b64encode(wrapping.seal(key, b"wrapped key")).decode("ascii"),
    })
    _runtime_put(place, key)
    return sealer


def unlock(place: KeyPlace, passphrase: str) -> Sealer:
    """Unwrap the vault's key with the passphrase and leave it for this session; SealingError if wrong."""
    record = read_record(place)
    if record is None or record.get("store") != "passphrase":
        raise SealingError("this vault's key is not kept by a passphrase")
    kdf = record.get("kdf", {})
    try:
        wrapping = Sealer(_derive(passphrase, base64.b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"])))
        key = wrapping.open(base64.b64decode(record["wrapped"]), b"wrapped key")
    except SealingError:
        raise SealingError("wrong passphrase") from None
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise SealingError(f"{place.record_path} is damaged ({error}); `ideaweave forget` starts afresh") from error
    _runtime_put(place, key)
    return Sealer(key)


def lock(place: KeyPlace) -> bool:
    """Forget the unlocked key of this session; True if there was one."""
    path = place.runtime_key
    if path is None or not path.exists():
        return False
    path.unlink()
    return True


def forget_key(place: KeyPlace) -> bool:
    """Remove the vault's key from the keyring and from this session; True if a keyring entry was removed."""
    lock(place)
    record = read_record(place) or {}
    if record.get("store") != "keyring":
        return False
    try:
        keyring = _keyring()
        from keyring.errors import KeyringError, PasswordDeleteError

        keyring.delete_password(KEYRING_SERVICE, record.get("entry") or place.entry)
        return True
    except (ImportError, PasswordDeleteError, KeyringError):
        return False


class Keychain:
    """One vault's key, looked for once (`current`), made when the first secure note needs one
    (`for_writing`). `state` says where it came from or why it is locked."""

    def __init__(self, place: KeyPlace, env: Mapping[str, str]) -> None:
        self.place, self.env = place, dict(env)
        self._sealer: Sealer | None = None
        self._looked = False
        self.state = "no key yet"

    def current(self) -> Sealer | None:
        if not self._looked:
            self._looked = True
            self._sealer, self.state = find_key(self.place, self.env)
        return self._sealer

    def for_writing(self) -> Sealer | None:
        if self.current() is None and read_record(self.place) is None:
            self._sealer, self.state = make_key(self.place, self.env)
        return self._sealer


def _checked(key: bytes, record: dict, source: str) -> tuple[Sealer | None, str]:
    sealer = Sealer(key)
    if not sealer.matches(str(record.get("check", ""))):
        return None, f"locked: the key from {source} is not this vault's"
    return sealer, f"unlocked ({source})"


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _write_record(place: KeyPlace, record: dict) -> None:
    place.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_file(place.record_path, json.dumps(record, indent=1).encode("utf-8"))


def _keyring_get(entry: str) -> bytes | None:
    try:
        keyring = _keyring()
        from keyring.errors import KeyringError

        value = keyring.get_password(KEYRING_SERVICE, entry)
    except (ImportError, KeyringError):
        return None
    try:
        return base64.b64decode(value) if value else None
    except (binascii.Error, ValueError):
        return None


def _runtime_get(place: KeyPlace) -> bytes | None:
    path = place.runtime_key
    try:
        key = path.read_bytes() if path else None
    except OSError:
        return None
    return key if key and len(key) == 32 else None


def _runtime_put(place: KeyPlace, key: bytes) -> None:
    path = place.runtime_key
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        replace_file(path, key)
    except OSError:
        pass  # no runtime folder: the key serves this process only
