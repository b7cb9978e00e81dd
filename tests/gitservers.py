"""Real git servers for tests and benchmarks: repositories built with dulwich, served three ways.

- ``file://``: the bare repository on disk;
- ``git://``: dulwich's ``TCPGitServer`` on a free loopback port, in a thread;
- smart HTTP: dulwich's WSGI application under wsgiref's server, in a thread, with or without
  basic auth.

No git binary and no mock: the client under test speaks the real protocols to real servers.
Round trips are counted on the server side (:class:`ServerLog`): every HTTP request or git://
connection, and every exchange in which the client asked for objects (its wants) — so a test
(or ``bench.gitops``) can say "one lookup, nothing fetched" about what really crossed the wire.
The pytest fixtures over these live in ``tests/integration/gitsource/conftest.py``.
"""

from __future__ import annotations

import base64
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.errors import NotGitRepository
from dulwich.index import commit_tree
from dulwich.objects import Blob, Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend, BackendRepo, TCPGitRequestHandler, TCPGitServer
from dulwich.web import make_wsgi_chain

from reconcilers.gitsource import Credentials

REPO_PATH = "/infra.git"
USER, PASSWORD = "gitops-bot", "s3cret-hunter2"
_AUTHOR = b"Test Author <test@example.com>"


class Origin:
    """A bare repository the tests commit to, as a developer pushing would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = Repo.init_bare(str(path), mkdir=True)
        self.repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/main"))
        self._clock = 1_700_000_000

    def commit(
        self,
        files: Mapping[str, bytes],
        *,
        branch: str = "main",
        message: str = "change",
        parents: Sequence[str] | None = None,
        symlinks: Mapping[str, str] | None = None,
    ) -> str:
        """A commit holding exactly ``files`` on ``branch`` (after its head, unless
        ``parents`` says otherwise); the branch moves to it. Returns the sha."""
        entries: list[tuple[bytes, ObjectID, int]] = []
        for name, data in files.items():
            entries.append((name.encode(), self._blob(data), stat.S_IFREG | 0o644))
        for name, target in (symlinks or {}).items():
            entries.append((name.encode(), self._blob(target.encode()), stat.S_IFLNK))
        ref = Ref(f"refs/heads/{branch}".encode())
        if parents is None:
            parents = [self.head(branch)] if ref in self.repo.refs else []
        commit = Commit()
        commit.tree = commit_tree(self.repo.object_store, entries)
        commit.parents = [ObjectID(p.encode()) for p in parents]
        commit.author = commit.committer = _AUTHOR
        self._clock += 60
        commit.author_time = commit.commit_time = self._clock
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode()
        self.repo.object_store.add_object(commit)
        self.repo.refs[ref] = commit.id
        return commit.id.decode()

    def force_push(self, files: Mapping[str, bytes], *, branch: str = "main") -> str:
        """Rewrite ``branch``'s history: a new root commit the old head is not part of."""
        return self.commit(files, branch=branch, message="rewritten", parents=[])

    def head(self, branch: str = "main") -> str:
        return self.repo.refs[Ref(f"refs/heads/{branch}".encode())].decode()

    def tag(self, name: str, commit: str, *, annotated: bool = True) -> None:
        target = ObjectID(commit.encode())
        if annotated:
            tag = Tag()
            tag.name = name.encode()
            tag.object = (Commit, target)
            tag.tagger = _AUTHOR
            tag.tag_time = self._clock
            tag.tag_timezone = 0
            tag.message = f"release {name}\n".encode()
            self.repo.object_store.add_object(tag)
            target = tag.id
        self.repo.refs[Ref(f"refs/tags/{name}".encode())] = target

    def _blob(self, data: bytes) -> ObjectID:
        blob = Blob.from_string(data)
        self.repo.object_store.add_object(blob)
        return blob.id


@dataclass
class ServerLog:
    """What crossed the wire, recorded by the server: ``requests`` (an HTTP request or a
    git:// connection each) and ``fetches`` (the wants of each exchange that asked for
    objects)."""

    requests: list[str] = field(default_factory=list)
    fetches: list[list[str]] = field(default_factory=list)

    def clear(self) -> None:
        self.requests.clear()
        self.fetches.clear()


class _LoggingRepo:
    """The served repository, recording the wants of every pack negotiation."""

    def __init__(self, repo: Repo, log: ServerLog) -> None:
        self._repo, self._log = repo, log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def find_missing_objects(
        self, determine_wants: Callable[..., list[ObjectID]], *args: Any, **kwargs: Any
    ) -> Any:
        def logged(refs: Any, depth: int | None = None) -> list[ObjectID]:
            wants = determine_wants(refs, depth)
            if wants:
                self._log.fetches.append(sorted(w.decode() for w in wants))
            return wants

        return self._repo.find_missing_objects(logged, *args, **kwargs)


class _LoggingBackend(Backend):
    def __init__(self, origin: Origin, log: ServerLog) -> None:
        self._origin, self._log = origin, log

    def open_repository(self, path: str | bytes) -> BackendRepo:  # type: ignore[override]
        if isinstance(path, bytes):  # git:// passes bytes, HTTP a str
            path = path.decode()
        if path.rstrip("/") != REPO_PATH:
            raise NotGitRepository(f"no repository at {path}")
        return _LoggingRepo(self._origin.repo, self._log)  # type: ignore[return-value]


@dataclass
class Served:
    """A repository as one transport serves it."""

    transport: str
    url: str
    origin: Origin
    log: ServerLog | None
    credentials: Credentials | None = None


def _serve_in_thread(server: Any) -> Callable[[], None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


@contextmanager
def git_daemon(origin: Origin) -> Iterator[Served]:
    """``git://127.0.0.1:PORT/infra.git`` served by dulwich's TCP git server."""
    log = ServerLog()
    server = TCPGitServer(_LoggingBackend(origin, log), "127.0.0.1", 0)
    handle = server.RequestHandlerClass

    def counting(request: Any, address: Any, owner: Any) -> TCPGitRequestHandler:
        log.requests.append("connect")
        return handle(request, address, owner)  # type: ignore[no-any-return]

    server.RequestHandlerClass = counting  # type: ignore[assignment]
    stop = _serve_in_thread(server)
    try:
        yield Served("git", f"git://127.0.0.1:{server.server_address[1]}{REPO_PATH}", origin, log)
    finally:
        stop()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_server(origin: Origin, *, basic_auth: bool = False) -> Iterator[Served]:
    """``http://127.0.0.1:PORT/infra.git``: dulwich's smart-HTTP WSGI app under wsgiref; with
    ``basic_auth``, every request must carry :data:`USER`/:data:`PASSWORD`."""
    log = ServerLog()
    git_app = make_wsgi_chain(_LoggingBackend(origin, log))
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        log.requests.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        if basic_auth and environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized\n"]
        return git_app(environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=_QuietHandler)
    stop = _serve_in_thread(server)
    credentials = Credentials(username=USER, password=PASSWORD) if basic_auth else None
    try:
        yield Served(
            "http",
            f"http://127.0.0.1:{server.server_address[1]}{REPO_PATH}",
            origin,
            log,
            credentials,
        )
    finally:
        stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
