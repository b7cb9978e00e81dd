"""Bearer secrets of the rendezvous endpoints: parsed, checked in constant time, never shown.

Where it sits: between ``routes`` (which hands over the ``Authorization`` header) and
``service`` (which finds the digest a secret must match). A uuid's record holds only the
SHA-256 of its secret (``api_types.rendezvous.secret_digest``), and the check is
``hmac.compare_digest`` of digests. Every refusal is :func:`refused` — one 401 ``Status`` with
one message whether the header is missing or malformed, the uuid unknown or the secret wrong —
and an unknown uuid is compared against :data:`DUMMY_DIGEST`, so the answer and the work done
tell nobody whether a uuid exists. The secret is never logged, echoed or put in an exception.
"""

from __future__ import annotations

import hmac

from api_types.rendezvous import secret_digest
from apiserver.status import ApiError

__all__ = ["DUMMY_DIGEST", "MAX_SECRET_LENGTH", "bearer_secret", "matches", "refused"]

#: What an unknown uuid's secret is compared with: a digest no secret is known to have.
DUMMY_DIGEST = secret_digest("skybroker rendezvous: no such record")
#: Longer bearer values are refused unread (a boot secret is 43 characters; hashing a huge
#: header would only cost time).
MAX_SECRET_LENGTH = 512
_SCHEME = "bearer"


def refused() -> ApiError:
    """The one answer to a request whose secret is not accepted, whatever the reason."""
    return ApiError(401, "Unauthorized", "the rendezvous secret is not valid for this request")


def bearer_secret(authorization: str | None) -> str:
    """The secret of ``Authorization: Bearer <secret>`` ("" when there is none: it matches
    nothing, and is refused after the same work as a wrong one)."""
    if not authorization:
        return ""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != _SCHEME or not value or len(value) > MAX_SECRET_LENGTH:
        return ""
    return value


def matches(secret: str, digest: str | None) -> bool:
    """Whether ``secret`` has ``digest`` (None: an unknown record), in constant time; an
    unknown record costs the same hash and compare, against :data:`DUMMY_DIGEST`."""
    expected = DUMMY_DIGEST if digest is None else digest
    same = hmac.compare_digest(secret_digest(secret).encode(), expected.encode())
    return same and digest is not None and bool(secret)
