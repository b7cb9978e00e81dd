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
from dataclasses import dataclass
from pathlib import Path

import yaml

from apiserver import ApiOptions, ApiServer, TokenAuthenticator
from apiserver.accesskeys import CredentialResolver
from apiserver.auth import MASTERS_GROUP, format_token_line
from controller.asgi import AsgiServer
from controller.store.encryption import SecretCipher, write_key_file
from controller.store.objects import Store

__all__ = ["AdminFiles", "HttpServer", "load_cipher", "prepare_data_dir"]

_SHUTDOWN_GRACE = 3  # seconds open watches get before a stop cancels them


@dataclass(frozen=True)
class AdminFiles:
    """Where :func:`prepare_data_dir` put the admin's files (the module docstring's list)."""

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


class HttpServer:
    """The API on a bound socket: ``run()`` in the foreground or ``start()`` on a thread.

    Binding happens in the constructor, so ``address`` is known (port 0 = any free port) and a
    taken port fails at once (:class:`~controller.asgi.ListenError`). A stop ends the open watch
    streams first (their clients re-watch wherever the API is still served).
    """

    def __init__(
        self,
        store: Store,
        token_file: Path,
        listen: str,
        options: ApiOptions | None = None,
        credentials: CredentialResolver | None = None,
    ) -> None:
        self.api = ApiServer(
            store, TokenAuthenticator.from_file(token_file), options, credentials=credentials
        )
        self._http = AsgiServer(
            self.api.app,
            listen,
            name="apiserver",
            grace=_SHUTDOWN_GRACE,
            on_shutdown=self.api.end_watches,
        )
        self.address = self._http.address

    @property
    def url(self) -> str:
        return self._http.url

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, shut down gracefully and return (main thread only)."""
        try:
            self._http.run(starting=self.api.start)
        finally:
            self.api.stop()

    def start(self) -> None:
        self.api.start()
        self._http.start()

    def stop(self) -> None:
        self._http.stop()
        self.api.stop()
