"""The keyring: format, associated-data binding, tamper detection, key parsing."""

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.crypto import (
    Binding,
    CredentialUnreadable,
    KeyConfigError,
    Keyring,
    generate_key,
    is_sealed,
    key_id,
    parse_key,
)

SEALED = re.compile(r"^enc:v1:[0-9a-f]{8}:[A-Za-z0-9_-]+={0,2}$")
BINDING = Binding(user_id=1, integration_id="0b9f3a52-1c5e-4bd4-9b1f-2f7a4d9e0c11", field="api_key")


@pytest.fixture(scope="module")
def ring():
    return Keyring.from_settings(generate_key())


def _raw(sealed: str) -> bytes:
    return base64.urlsafe_b64decode(sealed.rsplit(":", 1)[1])


def _with_raw(sealed: str, raw: bytes) -> str:
    return sealed.rsplit(":", 1)[0] + ":" + base64.urlsafe_b64encode(raw).decode()


def test_format_and_key_id(ring):
    key = generate_key()
    ring = Keyring.from_settings(key)
    sealed = ring.seal("secret-value", BINDING)
    assert SEALED.match(sealed)
    assert sealed.split(":")[2] == key_id(bytes.fromhex(key))
    assert len(_raw(sealed)) == 12 + len("secret-value") + 16


@settings(max_examples=1000, deadline=None)
@given(
    plaintext=st.text(max_size=4096),
    user_id=st.integers(min_value=1, max_value=2**31),
    field=st.text(min_size=1, max_size=40),
)
def test_round_trip(ring, plaintext, user_id, field):
    binding = Binding(user_id, "c0a8b0a2-3a4e-4d3b-8f0e-0d9c2b1a7e66", field)
    if is_sealed(plaintext):
        return  # sealed-looking input is covered by test_already_sealed_value_is_not_sealed_twice
    assert ring.open(ring.seal(plaintext, binding), binding) == plaintext


@pytest.mark.parametrize("region", ["nonce", "ciphertext", "tag"])
def test_every_bit_flip_is_detected(ring, region):
    sealed = ring.seal("a-secret-token", BINDING)
    raw = _raw(sealed)
    spans = {"nonce": range(0, 12), "ciphertext": range(12, len(raw) - 16), "tag": range(len(raw) - 16, len(raw))}
    for index in spans[region]:
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[index] ^= 1 << bit
            with pytest.raises(CredentialUnreadable):
                ring.open(_with_raw(sealed, bytes(flipped)), BINDING)


@pytest.mark.parametrize("cut", [1, 15, 16, 27, 40])
def test_truncation_is_detected(ring, cut):
    sealed = ring.seal("a-secret-token", BINDING)
    raw = _raw(sealed)
    with pytest.raises(CredentialUnreadable):
        ring.open(_with_raw(sealed, raw[: max(len(raw) - cut, 0)]), BINDING)


@pytest.mark.parametrize(
    "other",
    [
        Binding(2, BINDING.integration_id, BINDING.field),  # another user
        Binding(1, "9d2f0b1e-7c4a-4e8b-a1d3-5f6e7a8b9c0d", BINDING.field),  # another row
        Binding(1, BINDING.integration_id, "credentials.password"),  # another field
    ],
    ids=["another-user", "another-row", "another-field"],
)
def test_binding_is_enforced(ring, other):
    sealed = ring.seal("a-secret-token", BINDING)
    with pytest.raises(CredentialUnreadable):
        ring.open(sealed, other)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.replace("enc:v1:", "enc:v2:"),  # unknown scheme
        lambda s: "enc:v1:deadbeef:" + s.rsplit(":", 1)[1],  # unknown key id
        lambda s: s + "!",  # not base64url
        lambda s: s.split(":", 3)[3],  # not a sealed value at all
        lambda s: "",
    ],
    ids=["scheme", "kid", "alphabet", "bare", "empty"],
)
def test_malformed_values_raise_the_typed_error(ring, mangle):
    sealed = ring.seal("a-secret-token", BINDING)
    with pytest.raises(CredentialUnreadable):
        ring.open(mangle(sealed), BINDING)


def test_error_message_reveals_nothing(ring):
    with pytest.raises(CredentialUnreadable) as caught:
        ring.open(ring.seal("tok", BINDING), Binding(9, "x", "y"))
    assert str(caught.value) == "This credential can't be read: enter it again."


def test_ten_thousand_encryptions_are_distinct(ring):
    sealed = {ring.seal("same-value", BINDING) for _ in range(10_000)}
    nonces = {_raw(value)[:12] for value in sealed}
    assert len(sealed) == 10_000
    assert len(nonces) == 10_000


def test_already_sealed_value_is_not_sealed_twice(ring):
    sealed = ring.seal("a-secret-token", BINDING)
    assert ring.seal(sealed, BINDING) == sealed
    # ...but a sealed value from another binding is not accepted as this one's.
    with pytest.raises(CredentialUnreadable):
        ring.seal(sealed, Binding(2, BINDING.integration_id, BINDING.field))


def test_old_keys_decrypt_and_new_values_use_the_primary():
    old, new = generate_key(), generate_key()
    sealed_old = Keyring.from_settings(old).seal("legacy", BINDING)
    ring = Keyring.from_settings(new, old)
    assert ring.open(sealed_old, BINDING) == "legacy"
    assert ring.needs_rewrap(sealed_old)
    fresh = ring.seal("fresh", BINDING)
    assert fresh.split(":")[2] == key_id(bytes.fromhex(new))
    assert not ring.needs_rewrap(fresh)
    # Once the old key is gone, its values no longer open.
    with pytest.raises(CredentialUnreadable):
        Keyring.from_settings(new).open(sealed_old, BINDING)


def test_missing_key_is_refused_with_a_hint():
    for value in (None, "", "   "):
        with pytest.raises(KeyConfigError) as caught:
            parse_key(value)
        message = str(caught.value)
        assert "INTEGRATION_ENCRYPTION_KEY environment variable is required" in message
        assert "flask generate-encryption-key" in message


@pytest.mark.parametrize(
    "value",
    [
        "00" * 16,  # 16 bytes: AESGCM would silently run AES-128
        "00" * 24,  # 24 bytes: AES-192
        "00" * 31,
        "00" * 33,
        "zz" * 32,  # right length, not hex
        base64.b64encode(bytes(32)).decode(),  # base64, not hex
    ],
    ids=["16-bytes", "24-bytes", "31-bytes", "33-bytes", "not-hex", "base64"],
)
def test_malformed_key_is_refused_naming_variable_and_format(value):
    with pytest.raises(KeyConfigError) as caught:
        parse_key(value)
    message = str(caught.value)
    assert "INTEGRATION_ENCRYPTION_KEY" in message
    assert "64 hexadecimal characters" in message
    assert value not in message


def test_old_keys_are_checked_too():
    with pytest.raises(KeyConfigError, match="INTEGRATION_ENCRYPTION_OLD_KEYS"):
        Keyring.from_settings(generate_key(), "abc")
    key = generate_key()
    with pytest.raises(KeyConfigError, match="repeats"):
        Keyring.from_settings(key, key)


def test_generated_keys_are_usable_and_fresh():
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        Keyring.from_settings(key)
