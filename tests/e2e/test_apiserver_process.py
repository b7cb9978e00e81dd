"""``skybroker apiserver`` and ``skybroker up`` as real processes: serve, authenticate, stop."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from controller.store.embedded import EmbeddedEtcd
from controller.store.encryption import SecretCipher, write_key_file
from controller.store.etcd import EtcdClient
from tests.waiting import eventually

pytestmark = pytest.mark.slow
ROOT = "/apis/skybroker.io/v1alpha1"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    process.send_signal(sig)
    return process.wait(timeout=20)


def _apiserver(
    etcd: EmbeddedEtcd, prefix: str, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A ``skybroker apiserver`` process (its output piped), its URL and its key file."""
    tokens, key_file = tmp_path / "tokens.csv", tmp_path / "enc.key"
    tokens.write_text('tok-1,root,1,"system:masters"\n')
    write_key_file(key_file)
    port = _port()
    command = [
        sys.executable, "-m", "skybroker", "--log-level", "warning", "apiserver",
        "--etcd-endpoints", etcd.endpoint, "--listen", f"127.0.0.1:{port}",
        "--token-file", str(tokens), "--encryption-key-file", str(key_file), "--prefix", prefix,
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, process)
    return process, url, key_file


HEADERS = {"Authorization": "Bearer tok-1"}


def test_apiserver_command(
    etcd_server: EmbeddedEtcd,
    key_prefix: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    process, url, key_file = _apiserver(etcd_server, key_prefix, tmp_path)
    processes.append(process)
    assert httpx.get(f"{url}{ROOT}/namespaces", headers=HEADERS).status_code == 200
    assert httpx.get(f"{url}{ROOT}/namespaces").status_code == 401
    namespace = {"kind": "Namespace", "metadata": {"name": "ops"}}
    assert httpx.post(f"{url}{ROOT}/namespaces", json=namespace, headers=HEADERS).is_success
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "plain-value"}}
    created = httpx.post(f"{url}{ROOT}/namespaces/ops/secrets", json=secret, headers=HEADERS)
    assert created.status_code == 201, created.text
    client = EtcdClient([etcd_server.endpoint])
    raw = bytes(client.range(f"{key_prefix}/registry/secrets/ops/s".encode()).kvs[0].value)
    client.close()
    assert SecretCipher.is_sealed(raw) and b"plain-value" not in raw
    assert SecretCipher.from_file(key_file).open(raw, b"secrets/ops/s").startswith(b"{")
    assert _stop(process) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_is_a_clean_exit(
    etcd_server: EmbeddedEtcd,
    key_prefix: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    sig: int,
) -> None:
    """Graceful shutdown: an open watch stream is ended cleanly at once (its client re-watches
    elsewhere), then exit code 0, nothing logged as an error, no traceback."""
    process, url, _ = _apiserver(etcd_server, key_prefix, tmp_path)
    processes.append(process)
    with httpx.stream(
        "GET", f"{url}{ROOT}/namespaces", params={"watch": "true"}, headers=HEADERS
    ) as watch:
        assert watch.status_code == 200
        process.send_signal(sig)
        lines = list(watch.iter_lines())  # a cut connection would raise here
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode()
    assert b"Traceback" not in output and b"error" not in output.lower(), output.decode()
    assert all(json.loads(line)["type"] != "ERROR" for line in lines if line.strip())


def _cache_revision(url: str, plural: str) -> int:
    """The revision the API server's watch cache of ``plural`` holds (0: not listed yet)."""
    metrics = httpx.get(f"{url}/metrics").text
    sample = f'apiserver_watch_cache_revision{{resource="{plural}"}} '
    return next((int(float(line.split()[-1])) for line in metrics.splitlines()
                 if line.startswith(sample)), 0)  # fmt: skip


def test_while_etcd_is_down_writes_answer_503_at_once_and_cached_reads_go_on(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Once a request found the store down, the others do not each wait out the client's
    retries (5 s; 100 of them held every worker for seconds): 503 with Retry-After at once.
    Reads of a plural whose watch cache is ready are answered from it meanwhile."""
    etcd = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    etcd.start()
    try:
        process, url, _ = _apiserver(etcd, "/sky", tmp_path)
        processes.append(process)
        namespaces = f"{url}{ROOT}/namespaces"
        listed = httpx.get(namespaces, headers=HEADERS)  # starts the namespaces cache
        assert listed.status_code == 200
        revision = int(listed.json()["metadata"]["resourceVersion"])
        eventually(lambda: _cache_revision(url, "namespaces") >= revision, timeout=60)
        etcd.kill()
        body = {"metadata": {"name": "late"}}
        first = httpx.post(namespaces, json=body, headers=HEADERS, timeout=60)  # rides retries
        assert first.status_code == 503 and first.headers["Retry-After"] == "1"

        def timed_create(index: int) -> tuple[int, float]:
            started = time.monotonic()
            answer = httpx.post(
                namespaces, json={"metadata": {"name": f"late-{index}"}}, headers=HEADERS,
                timeout=60,
            )  # fmt: skip
            return answer.status_code, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=100) as pool:
            answers = list(pool.map(timed_create, range(100)))
        assert {code for code, _ in answers} == {503}
        slowest = max(seconds for _, seconds in answers)
        assert slowest < 5.0, f"a request waited {slowest:.1f} s: as long as the retries"
        cached = httpx.get(namespaces, headers=HEADERS)
        assert cached.status_code == 200, cached.text
        assert cached.json()["items"] == listed.json()["items"]
        assert "watch cache" in cached.headers["warning"]
        etcd.start()
        eventually(
            lambda: httpx.post(namespaces, json=body, headers=HEADERS).status_code == 201,
            timeout=60,
        )
        assert "warning" not in httpx.get(namespaces, headers=HEADERS).headers
    finally:
        etcd.stop()


def test_up_writes_an_admin_skyctl_config(tmp_path: Path) -> None:
    port = _port()
    command = [
        sys.executable, "-m", "skybroker", "up", "--data-dir", str(tmp_path / "data"),
        "--listen", f"127.0.0.1:{port}", "--health-listen", "",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        config = yaml.safe_load((tmp_path / "data" / "skyctl.yaml").read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        assert context["server"] == f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {context['token']}"}
        answer = httpx.get(f"{context['server']}{ROOT}/namespaces", headers=headers)
        assert answer.status_code == 200, answer.text
        assert (tmp_path / "data" / "skyctl.yaml").stat().st_mode & 0o077 == 0
        key = (tmp_path / "data" / "encryption.key").read_text().strip()
        assert len(base64.b64decode(key)) == 32
    finally:
        _stop(process)
