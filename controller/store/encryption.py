"""Encryption at rest of Secret values: AES-256-GCM with keys from a key file (DESIGN §3).

Where it sits: inside the object store. ``Store(cipher=...)`` seals every value it writes under
the ``secrets`` plural and opens every such value it reads, so the API server, the informers
and the reconcilers only ever see plain objects, and etcd (and its backups) only ciphertext.
The API server and the controllers must share the key file (``--encryption-key-file``).

Stored form: ``skybroker:enc:aesgcm:v1:`` + 12-byte random nonce + ciphertext-and-tag. The
associated data is the object's key (``secrets/{namespace}/{name}``), so a ciphertext copied to
another key does not open. A value without the prefix is plain text (a Secret written straight
into etcd, or stored before encryption was enabled): it is read as is and sealed on its next
write.

Key file: one base64-encoded 32-byte key per line (``#`` comments allowed). The first key seals;
every key opens, so a key is rotated by putting the new one first and keeping the old one until
every Secret has been rewritten.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controller.errors import SkybrokerError

__all__ = ["ENCRYPTED_PLURALS", "CipherError", "SecretCipher", "write_key_file"]

#: The plurals whose stored values are encrypted.
ENCRYPTED_PLURALS = frozenset({"secrets"})

_PREFIX = b"skybroker:enc:aesgcm:v1:"
_NONCE_BYTES = 12
_KEY_BYTES = 32


class CipherError(SkybrokerError, ValueError):
    """A key file is unusable, or a sealed value does not open with any key."""


def write_key_file(path: Path) -> None:
    """Create a key file with one fresh random key, readable by its owner only."""
    key = base64.b64encode(AESGCM.generate_key(bit_length=_KEY_BYTES * 8)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


class SecretCipher:
    """AES-GCM over Secret values; encrypts with the first key, decrypts with any (rotation)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise CipherError("at least one encryption key is required")
        for key in keys:
            if len(key) != _KEY_BYTES:
                raise CipherError(f"an encryption key must be {_KEY_BYTES} bytes, not {len(key)}")
        self._aeads = [AESGCM(key) for key in keys]

    @classmethod
    def from_file(cls, path: Path) -> SecretCipher:
        """The keys of a key file; CipherError naming the file, the line and the format."""
        expected = f"expected one base64-encoded {_KEY_BYTES}-byte key per line"
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CipherError(f"{path}: not a key file (not text): {expected}") from None
        except OSError as exc:
            raise CipherError(f"{path}: cannot read the key file: {exc.strerror}") from None
        keys = []
        for number, line in enumerate(content.splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                key = base64.b64decode(text, validate=True)
            except binascii.Error:
                raise CipherError(f"{path}:{number}: not base64: {expected}") from None
            if len(key) != _KEY_BYTES:
                raise CipherError(f"{path}:{number}: a {len(key)}-byte key: {expected}")
            keys.append(key)
        if not keys:
            raise CipherError(f"{path}: no key: {expected}")
        return cls(keys)

    @staticmethod
    def is_sealed(value: bytes) -> bool:
        return value.startswith(_PREFIX)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _PREFIX + nonce + self._aeads[0].encrypt(nonce, plaintext, context)

    def open(self, value: bytes, context: bytes) -> bytes:
        """The plain value; a value that is not sealed is returned unchanged."""
        if not self.is_sealed(value):
            return value
        body = value[len(_PREFIX) :]
        nonce, ciphertext = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
        for aead in self._aeads:
            try:
                return aead.decrypt(nonce, ciphertext, context)
            except InvalidTag:
                continue
        raise CipherError("the value does not decrypt with any configured key")
