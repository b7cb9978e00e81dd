"""Build and run the REST API server (uvicorn) from a Store and options.

Where it sits: in the composition root. ``skybroker apiserver`` runs it in the foreground beside
an etcd cluster; ``skybroker up`` runs it on a thread next to the controllers, after
:func:`prepare_data_dir` has created (once) the admin token, the encryption key and the admin
skyctl config under the data directory.

Files written by ``prepare_data_dir(DIR, server)`` (each readable by its owner only):

- ``DIR/tokens.csv`` — the token file, Kubernetes' format ``token,user,uid,"groups"``, with
  one user ``admin`` in group ``system:masters``;
- ``DIR/encryption.key`` — one base64 AES-256 key (see ``controller.store.encryption``);
- ``DIR/skyctl.yaml`` — ``{current-context, contexts: [{name, server, token}]}`` for skyctl.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
import yaml

from apiserver import ApiOptions, ApiServer, TokenAuthenticator
from apiserver.auth import MASTERS_GROUP, format_token_line
from controller.manager import ListenError
from controller.store.encryption import SecretCipher, write_key_file
from controller.store.objects import Store

__all__ = ["AdminFiles", "HttpServer", "load_cipher", "prepare_data_dir"]

_SHUTDOWN_GRACE = 3  # seconds open watches get before a stop cancels them
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class AdminFiles:
    token_file: Path
    encryption_key_file: Path
    skyctl_config: Path


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def prepare_data_dir(data_dir: Path, server: str) -> AdminFiles:
    """Create the admin token and encryption key on first start; (re)write the skyctl config."""
    files = AdminFiles(
        data_dir / "tokens.csv", data_dir / "encryption.key", data_dir / "skyctl.yaml"
    )
    if not files.token_file.exists():
        token = secrets.token_urlsafe(32)
        line = format_token_line(token, "admin", "admin", [MASTERS_GROUP])
        _write_private(files.token_file, line)
    if not files.encryption_key_file.exists():
        write_key_file(files.encryption_key_file)
    token = next(
        line.split(",", 1)[0]
        for line in files.token_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    config = {
        "current-context": "skybroker",
        "contexts": [{"name": "skybroker", "server": server, "token": token}],
    }
    _write_private(files.skyctl_config, yaml.safe_dump(config, sort_keys=False))
    return files


def load_cipher(path: str | Path | None) -> SecretCipher | None:
    return SecretCipher.from_file(Path(path)) if path else None


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. uvicorn sets it only on sockets it binds itself; without
    # it a response written as headers + body waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]") or "127.0.0.1", int(port)))
    except OSError as exc:
        sock.close()
        raise ListenError(listen, exc.strerror or str(exc)) from None
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn, ending the API's watch streams as its graceful shutdown begins (they would hold
    it for the whole grace period and then be cancelled)."""

    def __init__(self, config: uvicorn.Config, api: ApiServer) -> None:
        super().__init__(config)
        self._api = api

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._api.end_watches()
        await super().shutdown(sockets)


class HttpServer:
    """The API on a bound socket: ``run()`` in the foreground or ``start()`` on a thread.

    Binding happens in the constructor, so ``address`` is known (port 0 = any free port) and a
    taken port fails at once (:class:`~controller.manager.ListenError`).
    """

    def __init__(
        self,
        store: Store,
        token_file: Path,
        listen: str,
        options: ApiOptions | None = None,
    ) -> None:
        self.api = ApiServer(store, TokenAuthenticator.from_file(token_file), options)
        self._socket = _bind(listen)
        host, port = self._socket.getsockname()[:2]
        self.address = (str(host), int(port))
        config = uvicorn.Config(
            self.api.app,
            interface="asgi3",
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_SHUTDOWN_GRACE,
        )
        self._server = _Uvicorn(config, self.api)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, shut down gracefully and return (main thread only).

        While serving, uvicorn's own handlers catch the signals; after its graceful shutdown it
        restores the handlers it found and raises the signal again for them. Those are
        :meth:`_stop_requested`, so the signal ends in a normal return (exit code 0) instead of
        killing the process; a signal that arrives before uvicorn is up stops it as it starts.
        """
        previous = {sig: signal.signal(sig, self._stop_requested) for sig in _STOP_SIGNALS}
        try:
            self.api.start()
            self._server.run(sockets=[self._socket])
        finally:
            self.api.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        self._server.should_exit = True

    def start(self) -> None:
        self.api.start()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="apiserver"
        )
        self._thread.daemon = True
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_SHUTDOWN_GRACE + 5)
        self.api.stop()
        self._socket.close()
