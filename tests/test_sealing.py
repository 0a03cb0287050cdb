"""The cipher and the key's keeping: sealed values open only with their key and context, pseudonyms are
stable and keyed, the passphrase and keyring paths for real (a file keyring, a RAM runtime folder)."""

from __future__ import annotations

import json
import os
import stat

import keyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ideaweave.sealing import (
    HIDDEN_PREFIX, KEYRING_SERVICE, PASSPHRASE_ENV, SEALED_PREFIX, Keychain, KeyPlace, Sealer, SealingError, find_key,
    forget_key, keyring_usable, lock, make_key, read_record, set_passphrase, unlock,
)

KEY = bytes(range(32))


@given(st.text(), st.binary(max_size=64))
@settings(max_examples=50, deadline=None)
def test_sealed_text_opens_to_itself_and_never_shows_it(text, context):
    sealer = Sealer(KEY)
    sealed = sealer.seal_text(text)
    assert sealed.startswith(SEALED_PREFIX) and sealer.open_text(sealed) == text
    if len(text) >= 4:
        assert text not in sealed
    blob = sealer.seal(text.encode(), context)
    assert sealer.open(blob, context) == text.encode()


def test_a_changed_byte_another_key_or_another_context_is_refused():
    sealer = Sealer(KEY)
    blob = sealer.seal(b"vector bytes", b"hash-a")
    with pytest.raises(SealingError):
        sealer.open(blob, b"hash-b")  # moved to another row
    with pytest.raises(SealingError):
        Sealer(bytes(32)).open(blob, b"hash-a")
    tampered = bytearray(blob)
    tampered[20] ^= 1
    with pytest.raises(SealingError):
        sealer.open(bytes(tampered), b"hash-a")
    assert sealer.seal(b"x") != sealer.seal(b"x")  # a fresh nonce each time


def test_pseudonyms_are_stable_per_key_and_say_nothing_of_the_path():
    a, b = Sealer(KEY), Sealer(bytes(32))
    name = a.pseudonym("Private/Secret plan.md")
    assert name == a.pseudonym("Private/Secret plan.md") and name.startswith(HIDDEN_PREFIX)
    assert name != a.pseudonym("Private/Secret plan 2.md") and name != b.pseudonym("Private/Secret plan.md")
    assert "secret" not in name.lower()


def place_in(tmp_path, key_store="auto") -> KeyPlace:
    return KeyPlace(tmp_path / "state", "index-test", tmp_path / "runtime", key_store)


def test_the_passphrase_path_wraps_the_key_and_unlocks_it_for_the_session(tmp_path):
    place = place_in(tmp_path, "passphrase")
    assert find_key(place, {}) == (None, "no key yet")
    sealer, how = make_key(place, {PASSPHRASE_ENV: "pass one"})
    assert sealer is not None and "passphrase" in how
    record = read_record(place)
    assert record["store"] == "passphrase" and record["kdf"]["name"] == "scrypt"
    assert base64_free_of(place.record_path.read_bytes(), sealer.key)
    assert stat.S_IMODE(place.record_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(place.runtime_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(place.runtime_dir.stat().st_mode) == 0o700
    found, _ = find_key(place, {})  # the session's unlocked key
    assert found.key == sealer.key
    assert lock(place) and find_key(place, {})[0] is None
    with pytest.raises(SealingError, match="wrong passphrase"):
        unlock(place, "pass two")
    assert unlock(place, "pass one").key == sealer.key
    lock(place)
    assert find_key(place, {PASSPHRASE_ENV: "pass one"})[0].key == sealer.key
    assert "locked" in find_key(place, {PASSPHRASE_ENV: "nope"})[1]


def base64_free_of(data: bytes, key: bytes) -> bool:
    import base64

    return key not in data and base64.b64encode(key) not in data


def test_without_a_keyring_or_passphrase_there_is_no_key_and_nothing_is_made(tmp_path):
    place = place_in(tmp_path, "passphrase")
    chain = Keychain(place, {})
    assert chain.for_writing() is None and "unlock" in chain.state
    assert not place.record_path.exists()
    keyring_only = Keychain(place_in(tmp_path, "keyring"), {PASSPHRASE_ENV: "x"})
    if not keyring_usable(explicit=True):
        assert keyring_only.for_writing() is None and "no keyring" in keyring_only.state


def test_the_keyring_path_with_a_file_keyring(tmp_path, file_keyring):
    place = place_in(tmp_path, "keyring")
    assert keyring_usable(explicit=True) and not keyring_usable()  # a plaintext file: only when chosen
    sealer, how = make_key(place, {})
    assert "keyring" in how and read_record(place)["store"] == "keyring"
    assert "wrapped" not in read_record(place)
    assert find_key(place, {})[0].key == sealer.key
    # another vault's key is not this one's
    json_record = json.loads(place.record_path.read_text())
    json_record["check"] = Sealer(os.urandom(32)).check_value()
    place.record_path.write_text(json.dumps(json_record))
    assert "not this vault's" in find_key(place, {})[1]
    assert forget_key(place)
    assert keyring.get_password(KEYRING_SERVICE, place.entry) is None
    assert "locked" in find_key(place, {})[1]


def test_set_passphrase_keeps_a_given_key(tmp_path):
    place = place_in(tmp_path, "passphrase")
    assert set_passphrase(place, "p", KEY).key == KEY
    lock(place)
    assert unlock(place, "p").key == KEY


def test_detecting_the_keyring_keeps_nothing_of_its_caller(monkeypatch):
    """keyring keeps an exception of its first backend detection, whose traceback held every frame of the
    caller: the first secure note of a pass kept the pass's listings of the whole vault alive."""
    import gc
    import weakref

    import keyring.core

    class Listing:
        pass

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # detect again, as in a fresh process

    def a_pass() -> weakref.ref:
        listing = Listing()  # noqa: F841 (what the caller's frame holds)
        keyring_usable()
        return weakref.ref(listing)

    held = a_pass()
    gc.collect()
    assert held() is None, "the keyring's detection holds the caller's frames"

