"""ssh:// through dulwich's ssh vendor: identity and known_hosts from the Secret, strict host
key checking, the key files private and gone after the call.

This machine has no ssh server (and CI installs none), so no test fetches over ssh end to end.
What is tested for real: the client dulwich builds carries the key file and the ssh command;
the files it names hold the Secret's identity and known_hosts, readable by the owner only; an
ssh URL without known_hosts is refused before any connection; and the real ``ssh`` program,
run by dulwich against a port where nothing listens, gives a transient error naming the URL.
"""

from __future__ import annotations

import shlex
import shutil
import stat
from pathlib import Path

import pytest
from dulwich.client import SSHGitClient

from api_types.gitops import GitRef
from controller.errors import TerminalError, TransientError
from reconcilers.gitsource import (
    AuthenticationFailed,
    Credentials,
    RepositoryUnreachable,
    fetch,
    remote_revision,
)
from reconcilers.gitsource.transport import open_client, ssh_options
from tests.gitservers import closed_port

IDENTITY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
)
KNOWN_HOSTS = b"[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEHOSTKEYEXAMPLEHOSTKEY"
CREDENTIALS = Credentials(username="git", identity=IDENTITY, known_hosts=KNOWN_HOSTS)
MAIN = GitRef(branch="main")


def options_of(command: str) -> dict[str, str]:
    words = shlex.split(command)
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-o")


def test_ssh_options_write_private_files_and_check_host_keys(tmp_path: Path) -> None:
    key_file, command = ssh_options(tmp_path, CREDENTIALS)

    assert key_file is not None and Path(key_file).read_bytes() == IDENTITY
    known_hosts = tmp_path / "known_hosts"
    assert known_hosts.read_bytes() == KNOWN_HOSTS + b"\n"
    for path in (Path(key_file), known_hosts):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    options = options_of(command)
    assert shlex.split(command)[:3] == ["ssh", "-F", "/dev/null"]
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["UserKnownHostsFile"] == str(known_hosts)
    assert options["BatchMode"] == "yes" and options["IdentitiesOnly"] == "yes"


def test_the_client_carries_the_key_and_known_hosts_only_during_the_call() -> None:
    url = "ssh://git@127.0.0.1:2222/infra.git"
    with open_client(url, "branch main", CREDENTIALS) as (client, path):
        assert isinstance(client, SSHGitClient) and path == b"/infra.git"
        assert client.key_filename is not None and client.ssh_command is not None
        key_file = Path(client.key_filename)
        known_hosts = Path(options_of(client.ssh_command)["UserKnownHostsFile"])
        assert key_file.read_bytes() == IDENTITY
        assert known_hosts.read_bytes().startswith(KNOWN_HOSTS)
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert not key_file.exists() and not known_hosts.exists()


def test_without_known_hosts_nothing_connects(tmp_path: Path) -> None:
    url = f"ssh://git@127.0.0.1:{closed_port()}/infra.git"
    for credentials in (None, Credentials(identity=IDENTITY)):
        with pytest.raises(AuthenticationFailed, match="needs known_hosts") as refused:
            fetch(url, MAIN, credentials, tmp_path / "cache")
        assert isinstance(refused.value, TerminalError) and url in str(refused.value)
        assert "not-a-real-key" not in str(refused.value)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client program on this machine")
def test_an_unreachable_ssh_server_is_transient(tmp_path: Path) -> None:
    url = f"ssh://git@127.0.0.1:{closed_port()}/infra.git"
    for call in (
        lambda: fetch(url, MAIN, CREDENTIALS, tmp_path / "cache"),
        lambda: remote_revision(url, MAIN, CREDENTIALS),
    ):
        with pytest.raises(RepositoryUnreachable) as failed:
            call()
        assert isinstance(failed.value, TransientError)
        assert url in str(failed.value) and "branch main" in str(failed.value)
        assert "not-a-real-key" not in str(failed.value)


def test_credentials_from_a_secret_and_their_repr() -> None:
    credentials = Credentials.from_secret_data(
        {"username": b"bot", "password": b"tok3n", "identity": IDENTITY,
         "known_hosts": KNOWN_HOSTS, "other": b"ignored"}
    )  # fmt: skip
    assert (credentials.username, credentials.password) == ("bot", "tok3n")
    assert credentials.identity == IDENTITY and credentials.known_hosts == KNOWN_HOSTS
    assert "tok3n" not in repr(credentials) and "not-a-real-key" not in repr(credentials)
    assert credentials.scrub("failed with tok3n") == "failed with ***"
