"""What stops a ``skybroker`` command from starting is one line on stderr and exit code 1.

Real processes: a broken encryption key file (for each command that reads one) and an address
already taken (for each flag that chooses one). The line names the file and the expected
format, or the flag that changes the address; there is never a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.embedded import PID_FILE, EmbeddedEtcd

pytestmark = pytest.mark.slow
TIMEOUT = 120  # seconds; a failing start must not hang, but CI machines are slow


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def taken() -> Iterator[str]:
    """host:port another process (this test) is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _skybroker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skybroker", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _command(
    command: str, etcd: EmbeddedEtcd, tmp_path: Path, key_file: Path | None = None
) -> list[str]:
    """The arguments that start ``command`` against ``etcd`` (``up``: its own data dir)."""
    keys = ["--encryption-key-file", str(key_file)] if key_file else []
    if command == "up":
        return ["up", "--data-dir", str(tmp_path / "data"), "--listen",
                f"127.0.0.1:{_port()}", "--health-listen", "", *keys]  # fmt: skip
    if command == "controller":
        return ["controller", "--etcd-endpoints", etcd.endpoint, "--health-listen", "", *keys]
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('tok-1,root,1,"system:masters"\n')
    return ["apiserver", "--etcd-endpoints", etcd.endpoint, "--token-file", str(tokens),
            "--listen", f"127.0.0.1:{_port()}", *keys]  # fmt: skip


@pytest.mark.parametrize("command", ["up", "apiserver", "controller"])
@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00binary", b"not base64 at all\n", b"c2hvcnQ=\n"],
    ids=["binary", "not-base64", "short-key"],
)
def test_a_broken_key_file_is_one_line_naming_the_file_and_the_format(
    etcd_server: EmbeddedEtcd, tmp_path: Path, command: str, content: bytes
) -> None:
    key_file = tmp_path / "enc.key"
    key_file.write_bytes(content)
    line = _one_line_error(_skybroker(*_command(command, etcd_server, tmp_path, key_file)))
    assert line.startswith(f"skybroker {command}: {key_file}")
    assert "one base64-encoded 32-byte key per line" in line
    assert not (tmp_path / "data" / PID_FILE).exists()  # up stopped before starting etcd


def test_a_broken_token_file_is_one_line_naming_the_file(
    etcd_server: EmbeddedEtcd, tmp_path: Path
) -> None:
    args = _command("apiserver", etcd_server, tmp_path)
    (tmp_path / "tokens.csv").write_bytes(b"\xff\xfe\x00binary")
    line = _one_line_error(_skybroker(*args))
    assert line.startswith(f"skybroker apiserver: {tmp_path / 'tokens.csv'}: not UTF-8")
    (tmp_path / "tokens.csv").unlink()
    line = _one_line_error(_skybroker(*args))
    assert line.startswith(f"skybroker apiserver: {tmp_path / 'tokens.csv'}: cannot read")


def test_skyctl_in_etcd_mode_with_a_broken_key_file_is_one_line(
    etcd_server: EmbeddedEtcd, tmp_path: Path
) -> None:
    key_file = tmp_path / "enc.key"
    key_file.write_bytes(b"not base64 at all\n")
    result = subprocess.run(
        [sys.executable, "-m", "skyctl", "--etcd", etcd_server.endpoint,
         "--encryption-key-file", str(key_file), "get", "namespaces"],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "SKYCONFIG": str(tmp_path / "none.yaml")},
    )  # fmt: skip
    line = _one_line_error(result)
    assert line.startswith(f"error: {key_file}") and "32-byte key per line" in line


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("controller", "--health-listen"),
        ("apiserver", "--listen"),
        ("up", "--listen"),
        ("up", "--health-listen"),
    ],
)
def test_an_address_taken_is_one_line_naming_the_flag(
    etcd_server: EmbeddedEtcd, tmp_path: Path, taken: str, command: str, flag: str
) -> None:
    args = _command(command, etcd_server, tmp_path)
    args[args.index(flag) + 1] = taken
    line = _one_line_error(_skybroker(*args))
    assert line.startswith(f"skybroker {command}: cannot serve ")
    assert taken in line and f"{flag} chooses another" in line
    assert not (tmp_path / "data" / PID_FILE).exists()  # up stopped the etcd it had started
