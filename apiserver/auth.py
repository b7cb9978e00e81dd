"""Authentication: Bearer tokens from a static token file in Kubernetes' format (DESIGN §7).

Where it sits: first step of every API request (before RBAC, admission and the store). The
file has one user per line, CSV::

    token,user,uid,"group1,group2"

The groups column is optional; blank lines and lines starting with ``#`` are ignored. Every
authenticated user is also in ``system:authenticated``. Members of ``system:masters`` may do
everything (see ``rbac``). Tokens are looked up by their SHA-256 digest, so the table in memory
holds no usable token and the lookup time does not depend on how much of a token matches.

The file is re-read when it changes (its mtime, size or inode; looked at no more than once a
second, by the request that comes along): tokens can be added and revoked without a restart.
A file that no longer parses (or has gone) is reported in the log, naming the line, and the
previous table stays in force until the file is fixed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from apiserver.status import ApiError
from controller.errors import SkybrokerError

__all__ = [
    "AUTHENTICATED_GROUP",
    "MASTERS_GROUP",
    "TokenAuthenticator",
    "TokenFileError",
    "User",
    "format_token_line",
]

log = structlog.get_logger(__name__)

MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
#: Seconds between two looks at the token file.
RELOAD_INTERVAL = 1.0


class TokenFileError(SkybrokerError, ValueError):
    """The token file does not parse; the message names the line."""


@dataclass(frozen=True)
class User:
    """An authenticated caller: name, uid and groups (``system:authenticated`` included).

    ``actor``, when set, is what the durable history records of its writes name instead of
    ``name`` — for an in-process writer acting for something else: the GitSource reconciler
    writes as its ``serviceAccount`` (RBAC and admission see that user) and records
    ``gitsource/{ns}/{name}@{sha}`` (DESIGN §9). A token never sets it."""

    name: str
    uid: str
    groups: frozenset[str]
    actor: str | None = None

    @property
    def history_actor(self) -> str:
        """Who the history records of this user's writes name: ``actor``, else ``name``."""
        return self.actor or self.name


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def format_token_line(token: str, user: str, uid: str, groups: list[str]) -> str:
    """One line of a token file (what ``skybroker up`` writes for its admin)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([token, user, uid, ",".join(groups)])
    return out.getvalue()


def _parse_users(text: str, source: str) -> dict[str, User]:
    """Token → user for every line of a token file (TokenFileError naming the bad line)."""
    users: dict[str, User] = {}
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for number, line in lines:
        try:
            row = next(csv.reader([line], skipinitialspace=True))
        except csv.Error as exc:
            raise TokenFileError(f"{source}:{number}: {exc}") from None
        if len(row) < 3 or not row[0].strip() or not row[1].strip():
            raise TokenFileError(f'{source}:{number}: expected token,user,uid[,"groups"]')
        token, name, uid = (cell.strip() for cell in row[:3])
        groups = {g.strip() for g in row[3].split(",") if g.strip()} if len(row) > 3 else set()
        if token in users:
            raise TokenFileError(f"{source}:{number}: duplicate token")
        users[token] = User(name, uid, frozenset(groups | {AUTHENTICATED_GROUP}))
    return users


def _read_users(path: Path) -> dict[str, User]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the token file: {exc.strerror}") from None
    return _parse_users(text, str(path))


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file from the one loaded: (mtime, size, inode); None if unreadable."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class TokenAuthenticator:
    """Bearer tokens → users, from a token file that is followed as it changes (see the module
    docstring); :meth:`authenticate` is the first step of every request."""

    def __init__(
        self,
        users: Mapping[str, User],
        *,
        path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``users`` maps each token to its user; with ``path`` the table follows that file."""
        self._by_digest = {_digest(token): user for token, user in users.items()}
        self._path = path
        self._clock = clock
        self._state = _file_state(path) if path is not None else None
        self._checked_at = clock()
        self._reloading = threading.Lock()

    @classmethod
    def parse(cls, text: str, source: str = "token file") -> TokenAuthenticator:
        return cls(_parse_users(text, source))

    @classmethod
    def from_file(
        cls, path: Path, *, clock: Callable[[], float] = time.monotonic
    ) -> TokenAuthenticator:
        """The file's table, re-read whenever the file changes (TokenFileError if it does not
        parse now: a server must not start without its tokens)."""
        # The state is taken before the read, so a write during the read is seen next time.
        authenticator = cls({}, path=path, clock=clock)
        authenticator._by_digest = {
            _digest(token): user for token, user in _read_users(path).items()
        }
        return authenticator

    def _refresh(self) -> None:
        """Re-read the file if it changed since the last look (at most once a second)."""
        now = self._clock()
        if self._path is None or now - self._checked_at < RELOAD_INTERVAL:
            return
        if not self._reloading.acquire(blocking=False):
            return  # another request is looking right now
        try:
            self._checked_at = now
            state = _file_state(self._path)
            if state == self._state:
                return
            self._state = state
            users = _read_users(self._path)
        except (TokenFileError, OSError) as exc:
            log.error("token file not reloaded; keeping the previous tokens", error=str(exc))
        else:
            self._by_digest = {_digest(token): user for token, user in users.items()}
            log.info("token file reloaded", path=str(self._path), users=len(users))
        finally:
            self._reloading.release()

    def authenticate(self, authorization: str | None) -> User:
        """The user of an ``Authorization`` header value; 401 ``ApiError`` if there is none."""
        self._refresh()
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Unauthorized", "a valid Bearer token is required")
        user = self._by_digest.get(_digest(token))
        if user is None:
            raise ApiError(401, "Unauthorized", "invalid Bearer token")
        return user
