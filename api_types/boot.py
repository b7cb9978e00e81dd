"""The boot string: what an Instance with ``spec.bootConfigRef`` gets as its user data (§11).

Where it sits: pure functions beside the kinds, shared by the instance reconciler (which
writes the string, with a secret from :func:`new_boot_secret`, into the Instance's user data),
the rendezvous endpoints (which check the secret) and ``skybroker agent`` (which parses it).
The format is part of the contract, exactly::

    skybroker-boot:v1:{uuid}:{secret}:{endpoint}

- ``uuid``: the Instance's ``metadata.uid``, canonical (lower-case hex, 8-4-4-4-12);
- ``secret``: 32 random bytes in URL-safe base64 without padding (43 characters,
  ``secrets.token_urlsafe(32)``), the agent's bearer token — one spelling only, so that the
  server can compare it byte for byte;
- ``endpoint``: the rendezvous base URL, ``http(s)://host[:port][/path]`` (no credentials,
  query or fragment). It contains ``:``, so a boot string is split on its first four ``:``.

Errors are ``ValueError`` saying which part is wrong and why, and never quote any part of the
input: a mangled string may carry the secret in any position.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "BOOT_PREFIX",
    "BOOT_VERSION",
    "MAX_ENDPOINT_LENGTH",
    "SECRET_BYTES",
    "BootString",
    "format_boot_string",
    "new_boot_secret",
    "parse_boot_string",
]

BOOT_PREFIX = "skybroker-boot"
BOOT_VERSION = "v1"
#: Random bytes in a boot secret.
SECRET_BYTES = 32
#: A rendezvous URL longer than this is a mistake (and would crowd the user data).
MAX_ENDPOINT_LENGTH = 2048

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Unpadded URL-safe base64 of 32 bytes: 43 characters.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")


class BootString(NamedTuple):
    """The parts of a boot string. ``repr`` hides the secret (it ends up in logs otherwise)."""

    uuid: str
    secret: str
    endpoint: str

    def __repr__(self) -> str:
        return f"BootString(uuid={self.uuid!r}, secret='***', endpoint={self.endpoint!r})"

    def __str__(self) -> str:
        return format_boot_string(self.uuid, self.secret, self.endpoint)


def new_boot_secret() -> str:
    """A fresh boot secret: :data:`SECRET_BYTES` random bytes, URL-safe base64, unpadded."""
    return secrets.token_urlsafe(SECRET_BYTES)


def _check_uuid(value: str) -> None:
    if not _UUID.fullmatch(value):
        raise ValueError(
            "boot string: the uuid is not a canonical UUID (lower-case hex, 8-4-4-4-12)"
        )


def _check_secret(value: str) -> None:
    problem = None
    if not _SECRET.fullmatch(value):
        problem = (
            f"must be {SECRET_BYTES} bytes in URL-safe base64 without padding "
            "(43 characters of A-Z, a-z, 0-9, '-' and '_')"
        )
    else:
        try:
            raw = base64.urlsafe_b64decode(value + "=")
        except (binascii.Error, ValueError):
            raw = b""
        # 43 characters carry 258 bits: the last 2 must be zero, or two spellings would
        # decode to the same bytes and a byte-for-byte compare would refuse one of them.
        if len(raw) != SECRET_BYTES or base64.urlsafe_b64encode(raw).decode() != value + "=":
            problem = "is not the canonical URL-safe base64 of 32 bytes"
    if problem:
        raise ValueError(f"boot string: the secret {problem}")


def _check_endpoint(value: str) -> None:
    def bad(why: str) -> ValueError:
        return ValueError(f"boot string: the endpoint {why}")

    if not value:
        raise bad("is missing")
    if len(value) > MAX_ENDPOINT_LENGTH:
        raise bad(f"is longer than {MAX_ENDPOINT_LENGTH} characters")
    if not value.isascii() or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise bad("contains spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise bad("is not a valid URL (bad host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise bad("must start with http:// or https://")
    if not parts.hostname:
        raise bad("has no host")
    if parts.username is not None or parts.password is not None:
        raise bad("must not carry credentials (user@): the secret is the credential")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise bad("must not have a query or fragment: it is a base URL")


def format_boot_string(uuid: str, secret: str, endpoint: str) -> str:
    """``skybroker-boot:v1:{uuid}:{secret}:{endpoint}``; ValueError if a part is malformed (so
    every string made here parses back with :func:`parse_boot_string`)."""
    _check_uuid(uuid)
    _check_secret(secret)
    _check_endpoint(endpoint)
    return f"{BOOT_PREFIX}:{BOOT_VERSION}:{uuid}:{secret}:{endpoint}"


def parse_boot_string(text: str) -> BootString:
    """The parts of a boot string (surrounding whitespace, as a file's final newline, is
    ignored); ValueError naming the part that is wrong."""
    fields = text.strip().split(":", 4)
    if len(fields) != 5:
        raise ValueError(
            f"boot string: expected {BOOT_PREFIX}:{BOOT_VERSION}:UUID:SECRET:ENDPOINT "
            f"(5 ':'-separated parts, got {len(fields)})"
        )
    prefix, version, uuid, secret, endpoint = fields
    if prefix != BOOT_PREFIX:
        raise ValueError(f"boot string: must start with {BOOT_PREFIX}:")
    if version != BOOT_VERSION:
        shown = version if re.fullmatch(r"v[0-9]{1,4}", version) else "an unknown version"
        raise ValueError(
            f"boot string: version {shown} is not supported (this agent reads {BOOT_VERSION})"
        )
    _check_uuid(uuid)
    _check_secret(secret)
    _check_endpoint(endpoint)
    return BootString(uuid, secret, endpoint)
