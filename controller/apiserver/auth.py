"""Authentication: Bearer tokens from a static token file in Kubernetes' format (DESIGN §7).

Where it sits: first step of every API request (before RBAC, admission and the store). The
file has one user per line, CSV::

    token,user,uid,"group1,group2"

The groups column is optional; blank lines and lines starting with ``#`` are ignored. Every
authenticated user is also in ``system:authenticated``. Members of ``system:masters`` may do
everything (see ``rbac``). Tokens are looked up by their SHA-256 digest, so the table in memory
holds no usable token and the lookup time does not depend on how much of a token matches.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.apiserver.status import ApiError

__all__ = [
    "AUTHENTICATED_GROUP",
    "MASTERS_GROUP",
    "TokenAuthenticator",
    "TokenFileError",
    "User",
    "format_token_line",
]

MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"


class TokenFileError(ValueError):
    """The token file does not parse; the message names the line."""


@dataclass(frozen=True)
class User:
    name: str
    uid: str
    groups: frozenset[str]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def format_token_line(token: str, user: str, uid: str, groups: list[str]) -> str:
    """One line of a token file (what ``skybroker up`` writes for its admin)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([token, user, uid, ",".join(groups)])
    return out.getvalue()


class TokenAuthenticator:
    def __init__(self, users: Mapping[str, User]) -> None:
        """``users`` maps each token to its user."""
        self._by_digest = {_digest(token): user for token, user in users.items()}

    @classmethod
    def parse(cls, text: str, source: str = "token file") -> TokenAuthenticator:
        users: dict[str, User] = {}
        lines = [
            (number, line)
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        for number, line in lines:
            row = next(csv.reader([line], skipinitialspace=True))
            if len(row) < 3 or not row[0].strip() or not row[1].strip():
                raise TokenFileError(f'{source}:{number}: expected token,user,uid[,"groups"]')
            token, name, uid = (cell.strip() for cell in row[:3])
            groups = {g.strip() for g in row[3].split(",") if g.strip()} if len(row) > 3 else set()
            if token in users:
                raise TokenFileError(f"{source}:{number}: duplicate token")
            users[token] = User(name, uid, frozenset(groups | {AUTHENTICATED_GROUP}))
        return cls(users)

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthenticator:
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    def authenticate(self, authorization: str | None) -> User:
        """The user of an ``Authorization`` header value; 401 ``ApiError`` if there is none."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Unauthorized", "a valid Bearer token is required")
        user = self._by_digest.get(_digest(token))
        if user is None:
            raise ApiError(401, "Unauthorized", "invalid Bearer token")
        return user
