"""The webhook's signature check: GitHub's ``X-Hub-Signature-256`` on the request body.

Where it sits: the REST endpoint ``POST /hooks/gitsources/{namespace}/{name}`` (DESIGN §9)
reads the ``webhookSecret`` entry of the Secret named by ``spec.webhookSecretRef`` and asks
:func:`verify_github_signature` before it triggers a sync (202) or answers 401. A pure
function: no I/O, nothing about HTTP frameworks.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "github_signature", "verify_github_signature"]

#: The header GitHub signs deliveries with (HMAC-SHA256 of the raw body).
SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def github_signature(secret: bytes, body: bytes) -> str:
    """The header value GitHub sends for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is GitHub's signature of ``body`` with ``secret``.

    A missing header, another scheme (``sha1=``) or an empty secret is False; the comparison
    takes the same time wherever the strings differ.
    """
    if not secret or header is None:
        return False
    given = header.strip()
    if not given.startswith(_PREFIX):
        return False
    expected = github_signature(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))
