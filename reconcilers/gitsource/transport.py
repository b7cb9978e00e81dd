"""Talking to a git server: a dulwich client per URL with its credentials, errors made typed.

Where it sits: under the fetch layer (``reconcilers.gitsource.fetch``), which asks for a
client with :func:`open_client` and wraps every exchange in :func:`typed_errors`. Nothing here
knows refs or caches; it knows transports:

- ``file://``, ``git://``: no credentials;
- ``http(s)://``: basic auth (``username``/``password``), a timeout on every request;
- ``ssh://``: dulwich's ssh vendor (the ``ssh`` client program — no git binary anywhere),
  configured with the identity and the known_hosts of the Secret, written for the duration of
  the call into a private directory (0700, files 0600), host keys checked strictly, never a
  prompt. known_hosts is required: a GitOps controller that trusts any host key on first use
  would apply whatever a man in the middle serves.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dulwich.client import GitClient, HTTPUnauthorized, get_transport_and_path
from dulwich.config import ConfigDict
from dulwich.errors import GitProtocolError, NotGitRepository

from reconcilers.gitsource.errors import (
    AuthenticationFailed,
    GitFetchError,
    RepositoryNotFound,
    RepositoryUnreachable,
)

__all__ = [
    "NETWORK_TIMEOUT_SECONDS",
    "Credentials",
    "display_url",
    "open_client",
    "ssh_options",
    "typed_errors",
]

#: Seconds an http(s) request or an ssh connection attempt may take.
NETWORK_TIMEOUT_SECONDS = 60
_SCRUBBED = "***"


@dataclass(frozen=True)
class Credentials:
    """What a GitSource's ``credentialsRef`` Secret holds; secrets never appear in ``repr``.

    http(s): ``username`` + ``password`` (basic auth; a token goes in ``password``).
    ssh: ``identity`` (a private key, PEM/OpenSSH) + ``known_hosts`` (OpenSSH format);
    ``username`` overrides the user of the URL.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: bytes | None = field(default=None, repr=False)
    known_hosts: bytes | None = None

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> Credentials:
        """From a Secret's decoded data: keys ``username``, ``password``, ``identity``,
        ``known_hosts`` (Flux's names); others are ignored."""
        username, password = data.get("username"), data.get("password")
        return cls(
            username=None if username is None else username.decode(),
            password=None if password is None else password.decode(),
            identity=data.get("identity"),
            known_hosts=data.get("known_hosts"),
        )

    def scrub(self, text: str) -> str:
        """``text`` with the password and the identity replaced by ``***``."""
        identity = self.identity.decode(errors="replace") if self.identity else None
        for secret in (self.password, identity):
            if secret:
                text = text.replace(secret, _SCRUBBED)
        return text


def display_url(url: str) -> str:
    """``url`` without a password, for messages (the API refuses one in spec.url, but a caller
    of the fetch layer might still pass one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:{_SCRUBBED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def ssh_options(directory: Path, credentials: Credentials) -> tuple[str | None, str]:
    """Write the identity and known_hosts into ``directory``; (key file or None, the ssh
    command line dulwich's vendor runs)."""
    if not credentials.known_hosts:
        raise ValueError("an ssh URL needs known_hosts in the credentials Secret")
    known_hosts = directory / "known_hosts"
    _write_private(known_hosts, credentials.known_hosts)
    key_file = None
    if credentials.identity:
        key_file = directory / "identity"
        _write_private(key_file, credentials.identity)
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "ConnectTimeout": str(NETWORK_TIMEOUT_SECONDS),
    }
    command = ["ssh", "-F", "/dev/null"]
    for name, value in options.items():
        command += ["-o", f"{name}={value}"]
    return (None if key_file is None else str(key_file)), shlex.join(command)


def _write_private(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content if content.endswith(b"\n") else content + b"\n")


@contextmanager
def open_client(
    url: str, ref: str, credentials: Credentials | None
) -> Iterator[tuple[GitClient, bytes]]:
    """A dulwich client for ``url`` and the repository path to pass it; the ssh key files
    exist until the block ends."""
    credentials = credentials or Credentials()
    scheme = urlsplit(url).scheme
    if scheme != "ssh":
        if scheme in ("http", "https"):
            client, path = get_transport_and_path(
                url,
                config=_http_config(),
                username=credentials.username,
                password=credentials.password,
            )
        else:
            client, path = get_transport_and_path(url)
        with closing(client):
            yield client, path.encode()
        return
    with tempfile.TemporaryDirectory(prefix="skybroker-ssh-") as directory:
        try:
            key_file, command = ssh_options(Path(directory), credentials)
        except ValueError as exc:
            raise AuthenticationFailed(display_url(url), ref, str(exc)) from None
        client, path = get_transport_and_path(
            url, username=credentials.username, key_filename=key_file, ssh_command=command
        )
        with closing(client):
            yield client, path.encode()


def _http_config() -> ConfigDict:
    config = ConfigDict()
    config.set((b"http",), b"timeout", str(NETWORK_TIMEOUT_SECONDS).encode())
    return config


@contextmanager
def typed_errors(url: str, ref: str, credentials: Credentials | None) -> Iterator[None]:
    """Turn what dulwich and the network raise into :mod:`reconcilers.gitsource.errors`."""
    shown = display_url(url)
    scrub = (credentials or Credentials()).scrub
    try:
        yield
    except GitFetchError:
        raise
    except HTTPUnauthorized:
        raise AuthenticationFailed(
            shown, ref, "authentication failed (HTTP 401): check the credentials Secret"
        ) from None
    except NotGitRepository:
        raise RepositoryNotFound(shown, ref, "no git repository there") from None
    except (GitProtocolError, OSError) as exc:  # HangupException is a GitProtocolError
        detail = scrub(str(exc).strip() or type(exc).__name__)
        raise RepositoryUnreachable(shown, ref, detail) from None
