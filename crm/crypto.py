"""The keyring that seals every sensitive integration value with AES-256-GCM.

A sealed value reads `enc:v1:<kid>:<base64url(nonce || ciphertext || tag)>`:
- `v1` names the scheme: AES-256-GCM, a fresh 96-bit random nonce, the associated data below;
- `kid` is the first 8 hex characters of SHA-256(key), so decryption picks its key without trying all;
- the associated data binds the value to its owner, its integration and its field, so a value
  copied into another row, field or user's account fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "v1"
PREFIX = f"enc:{SCHEME}:"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ENV = "INTEGRATION_ENCRYPTION_KEY"
OLD_KEYS_ENV = "INTEGRATION_ENCRYPTION_OLD_KEYS"
KEY_FORMAT_HINT = "64 hexadecimal characters (32 random bytes)"
GENERATE_HINT = "Generate one with: flask generate-encryption-key"

_SEALED_RE = re.compile(r"^enc:v1:([0-9a-f]{8}):([A-Za-z0-9_-]+={0,2})$")
_HEX_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class KeyConfigError(RuntimeError):
    """The encryption key settings are missing or malformed; the app must not start."""


class CredentialUnreadable(Exception):
    """A sealed value could not be opened: tampered, moved, or sealed under an unknown key.

    One type for every cause, and a message that reveals nothing about which.
    """

    def __init__(self, message: str = "This credential can't be read: enter it again."):
        super().__init__(message)


@dataclass(frozen=True)
class Binding:
    """What a sealed value belongs to; becomes the AES-GCM associated data."""

    user_id: int | str
    integration_id: str
    field: str

    def associated_data(self, kid: str) -> bytes:
        parts = (PREFIX, kid, str(self.user_id), str(self.integration_id), self.field)
        # Length-prefixed, so no choice of ids can make two bindings serialise alike.
        return b"".join(f"{len(p)}:{p}|".encode() for p in parts)


def generate_key() -> str:
    return secrets.token_hex(32)


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_key(value: str | None, name: str = KEY_ENV) -> bytes:
    if value is None or not value.strip():
        raise KeyConfigError(f"{name} environment variable is required. {GENERATE_HINT}")
    value = value.strip()
    # AESGCM itself accepts 16- and 24-byte keys; we insist on exactly 32 (AES-256).
    if not _HEX_KEY_RE.match(value):
        problem = (
            "it contains characters that are not hexadecimal"
            if re.search(r"[^0-9a-fA-F]", value)
            else f"it is {len(value)} characters long"
        )
        raise KeyConfigError(f"{name} must be {KEY_FORMAT_HINT}, but {problem}. {GENERATE_HINT}")
    return bytes.fromhex(value)


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and bool(_SEALED_RE.match(value))


def sealed_kid(value: str) -> str | None:
    match = _SEALED_RE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


class Keyring:
    """One primary key that seals, plus decrypt-only old keys kept for rotation."""

    def __init__(self, primary: bytes, old: list[bytes] | tuple[bytes, ...] = ()):
        keys = [primary, *old]
        if any(len(k) != 32 for k in keys):
            raise KeyConfigError(f"Every encryption key must be {KEY_FORMAT_HINT}.")
        kids = [key_id(k) for k in keys]
        if len(set(kids)) != len(kids):
            raise KeyConfigError(f"{OLD_KEYS_ENV} repeats a key (or repeats {KEY_ENV}).")
        self.primary_kid = kids[0]
        self._ciphers = {kid: AESGCM(k) for kid, k in zip(kids, keys, strict=True)}

    @classmethod
    def from_settings(cls, primary: str | None, old: str | None = "") -> Keyring:
        old_keys = [parse_key(part, OLD_KEYS_ENV) for part in (old or "").split(",") if part.strip()]
        return cls(parse_key(primary), old_keys)

    @property
    def kids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plaintext: str, binding: Binding) -> str:
        """Encrypt `plaintext` for `binding`. A value that is already sealed is never sealed twice:
        it is returned as it is once it proves to open under this binding."""
        if is_sealed(plaintext):
            self.open(plaintext, binding)
            return plaintext
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self.primary_kid]
        body = cipher.encrypt(nonce, plaintext.encode(), binding.associated_data(self.primary_kid))
        token = base64.urlsafe_b64encode(nonce + body).decode()
        return f"{PREFIX}{self.primary_kid}:{token}"

    def open(self, sealed: str, binding: Binding) -> str:
        match = _SEALED_RE.match(sealed) if isinstance(sealed, str) else None
        if not match:
            raise CredentialUnreadable()
        kid, token = match.groups()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CredentialUnreadable()
        try:
            raw = base64.urlsafe_b64decode(token)
        except (binascii.Error, ValueError):
            raise CredentialUnreadable() from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise CredentialUnreadable()
        nonce, body = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            plaintext = cipher.decrypt(nonce, body, binding.associated_data(kid))
            return plaintext.decode()
        except (InvalidTag, UnicodeDecodeError):
            raise CredentialUnreadable() from None

    def needs_rewrap(self, sealed: str) -> bool:
        return sealed_kid(sealed) != self.primary_kid
