"""SQLite state of the simulated cloud: one file holds any number of accounts and regions.

Where it sits: under ``providers.simulated.engine``. The state outlives the controller process
(restart the process, reopen the file, the cloud is still there), is shared by all worker
threads (one connection per thread, WAL mode, writes serialised by a per-file lock inside the
process and by an ``flock`` on ``FILE.lock`` across processes — SQLite's own lock makes a
waiting writer sleep-and-retry for up to 100 ms at a time, which serialised several controller
processes on one cloud far more than their writes did), and stays fast at tens of thousands of
resources: lists are one indexed range query, token lookups and usage counters are indexed
point reads, and nothing is ever counted by scanning.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Row", "Scoped", "SimStore", "Usage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id         TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    token      TEXT,
    uid        TEXT,
    ref        TEXT,
    state      TEXT NOT NULL,
    next_state TEXT,
    ready_at   REAL,
    data       TEXT NOT NULL,
    tags       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_scope ON resources (account, region, kind, next_state);
CREATE INDEX IF NOT EXISTS resources_token ON resources (account, region, kind, token)
    WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS resources_uid ON resources (account, region, uid)
    WHERE uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS resources_ref ON resources (account, region, ref)
    WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS usage (
    scope     TEXT PRIMARY KEY,
    instances INTEGER NOT NULL DEFAULT 0,
    vcpus     INTEGER NOT NULL DEFAULT 0,
    volumes   INTEGER NOT NULL DEFAULT 0
);
"""

_COLUMNS = "id, kind, token, uid, ref, state, next_state, ready_at, data, tags"


@dataclass
class Row:
    """One resource. ``state`` becomes ``next_state`` once the clock passes ``ready_at``."""

    id: str
    kind: str
    state: str
    data: dict[str, Any]
    tags: dict[str, str]
    token: str | None = None
    uid: str | None = None
    ref: str | None = None
    next_state: str | None = None
    ready_at: float | None = None

    def effective_state(self, now: float) -> str:
        if self.next_state is not None and self.ready_at is not None and now >= self.ready_at:
            return self.next_state
        return self.state

    def transition(
        self, state: str, next_state: str | None = None, ready_at: float | None = None
    ) -> None:
        """Enter ``state``, moving on to ``next_state`` at ``ready_at`` (None = at once)."""
        if next_state is not None and ready_at is None:
            state, next_state = next_state, None
        self.state, self.next_state, self.ready_at = state, next_state, ready_at

    @classmethod
    def _from_db(cls, values: tuple[Any, ...]) -> Row:
        rid, kind, token, uid, ref, state, next_state, ready_at, data, tags = values
        return cls(
            id=rid,
            kind=kind,
            state=state,
            data=json.loads(data),
            tags=json.loads(tags),
            token=token,
            uid=uid,
            ref=ref,
            next_state=next_state,
            ready_at=ready_at,
        )


@dataclass
class Usage:
    """What an account of the simulated cloud uses, checked against its quotas."""
    instances: int = 0
    vcpus: int = 0
    volumes: int = 0


@dataclass
class SimStore:
    """One state file, shared by every account and thread of the process that opens it."""

    path: str
    _local: threading.local = field(default_factory=threading.local)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: ``{path}.lock``, flocked around each write transaction (across processes).
    _lock_fd: int = -1

    _open: ClassVar[dict[str, SimStore]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def open(cls, path: str | None) -> SimStore:
        """The store for ``path`` (one per file per process); None = a private temp file."""
        if path is None:
            fd, path = tempfile.mkstemp(prefix="skybroker-sim-", suffix=".db")
            os.close(fd)
            atexit.register(_remove_quietly, path)
        key = os.path.realpath(path)
        with cls._open_lock:
            store = cls._open.get(key)
            if store is None:
                store = cls(key)
                store._lock_fd = os.open(key + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
                with store._write_lock:
                    store._conn().executescript(_SCHEMA)
                cls._open[key] = store
            return store

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction, committed on success, rolled back on error."""
        with self._write_lock:
            conn = self._conn()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks without polling; GIL released
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for reads (autocommit: each query sees committed state)."""
        return self._conn()


def _remove_quietly(path: str) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        with suppress(OSError):
            os.unlink(path + suffix)


class Scoped:
    """Row access for one account in one region, on a connection the caller holds."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region

    def rows(self, conn: sqlite3.Connection, kind: str) -> list[Row]:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE account=? AND region=? AND kind=?",
            (self.account, self.region, kind),
        )
        return [Row._from_db(values) for values in cur]

    def get(self, conn: sqlite3.Connection, rid: str) -> Row | None:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE id=? AND account=? AND region=?",
            (rid, self.account, self.region),
        )
        values = cur.fetchone()
        return None if values is None else Row._from_db(values)

    def by_token(self, conn: sqlite3.Connection, kind: str, token: str) -> list[Row]:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE account=? AND region=? AND kind=? AND token=?",
            (self.account, self.region, kind, token),
        )
        return [Row._from_db(values) for values in cur]

    def by_ref(self, conn: sqlite3.Connection, ref: str) -> list[Row]:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE account=? AND region=? AND ref=?",
            (self.account, self.region, ref),
        )
        return [Row._from_db(values) for values in cur]

    def mentioning(self, conn: sqlite3.Connection, kind: str, needle: str) -> list[Row]:
        """Rows of ``kind`` whose data holds the string ``needle`` (a scan: for rare checks)."""
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE account=? AND region=? AND kind=? "
            "AND instr(data, ?) > 0",
            (self.account, self.region, kind, f'"{needle}"'),
        )
        return [Row._from_db(values) for values in cur]

    def put(self, conn: sqlite3.Connection, row: Row) -> None:
        """Insert or replace ``row`` (token and uid are kept in step with its tags)."""
        row.token = row.tags.get("skybroker/token")
        row.uid = row.tags.get("skybroker/uid")
        conn.execute(
            "INSERT OR REPLACE INTO resources "
            "(id, account, region, kind, token, uid, ref, state, next_state, ready_at, data, tags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                self.account,
                self.region,
                row.kind,
                row.token,
                row.uid,
                row.ref,
                row.state,
                row.next_state,
                row.ready_at,
                json.dumps(row.data, separators=(",", ":")),
                json.dumps(row.tags, separators=(",", ":")),
            ),
        )

    def delete(self, conn: sqlite3.Connection, rid: str) -> None:
        conn.execute(
            "DELETE FROM resources WHERE id=? AND account=? AND region=?",
            (rid, self.account, self.region),
        )

    def purge_terminated(self, conn: sqlite3.Connection, before: float) -> None:
        """Forget instances terminated before ``before`` (EC2 shows them for a while too)."""
        conn.execute(
            "DELETE FROM resources WHERE account=? AND region=? AND kind='instance' "
            "AND next_state='terminated' AND ready_at < ?",
            (self.account, self.region, before),
        )

    @staticmethod
    def usage(conn: sqlite3.Connection, scope: str) -> Usage:
        values = conn.execute(
            "SELECT instances, vcpus, volumes FROM usage WHERE scope=?", (scope,)
        ).fetchone()
        return Usage() if values is None else Usage(*values)

    @staticmethod
    def add_usage(
        conn: sqlite3.Connection,
        scope: str,
        *,
        instances: int = 0,
        vcpus: int = 0,
        volumes: int = 0,
    ) -> None:
        conn.execute(
            "INSERT INTO usage (scope, instances, vcpus, volumes) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(scope) DO UPDATE SET instances=instances+excluded.instances, "
            "vcpus=vcpus+excluded.vcpus, volumes=volumes+excluded.volumes",
            (scope, instances, vcpus, volumes),
        )
