"""Boot agents of the simulated cloud: a real ``skybroker agent`` per running instance (§11).

Where it sits: owned by a ``SimulatedProvider`` whose account sets the option
``boot-agents: "true"`` (annotation ``options.skybroker.io/boot-agents``). A supervisor thread
reconciles, every :data:`INTERVAL` seconds, "should run" against "runs":

- an instance that is effectively running (its state moves on the clock lazily, so it is read
  again each pass) and whose user data is a boot string (``api_types.boot``) gets a child
  process ``python -m skybroker.agent --boot-string-file F --config-path DIR/config --address
  PRIVATE_IP`` with ``$SKYBROKER_AGENT_PARENT_PID`` set to this process (so the agents die
  with it, however it ends); other user data gets no agent;
- an instance that is no longer running (stopping, stopped, shutting down, terminated, gone)
  has its agent stopped: SIGTERM, then SIGKILL after :data:`GRACE` seconds;
- an agent that dies by itself is *not* started again while its instance keeps running — that
  is the lost agent the controller must notice; it is started again only once the instance has
  stopped and started (a new run) or been replaced (a new instance).

Each instance's files are in :func:`agent_dir`: ``boot`` (the boot string, 0600), ``config``,
``agent.log`` (the agent's output) and ``agent.pid`` (the pid of the agent started for the
current run, present while the supervisor tracks that run — how a test in another process
finds the agent to kill). ``agent.lock`` is held (``flock``) by the supervisor that runs the
agent, so two providers of one account — in this process or another — never run two agents
for one instance. :meth:`BootAgents.close` (the provider's ``close``) stops them all; so does
the interpreter's exit.

The agent is this installation's: the child's ``PYTHONPATH`` starts with the directory holding
the ``providers`` package (and so ``skybroker``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from api_types.boot import parse_boot_string
from providers.simulated.store import Row

__all__ = ["GRACE", "INTERVAL", "BootAgents", "agent_dir", "agents_root"]

log = structlog.get_logger(__name__)

#: Seconds between two passes of the supervisor.
INTERVAL = 0.5
#: Seconds an agent has to end after SIGTERM before it is killed.
GRACE = 3.0
#: The directory whose ``skybroker`` package the agents run (the project root).
_CODE_ROOT = Path(__file__).resolve().parents[2]


def agents_root(state_path: str) -> Path:
    """Where the agents of the cloud whose state file is ``state_path`` keep their files:
    beside it, ``{state file without suffix}.agents``."""
    path = Path(state_path)
    return path.with_name(f"{path.stem}.agents")


def agent_dir(state_path: str, account: str, region: str, instance_id: str) -> Path:
    """One instance's agent files (``boot``, ``config``, ``agent.log``, ``agent.pid``)."""
    return agents_root(state_path) / account / region / instance_id


@dataclass
class _Run:
    """One run of an instance (a start) and the agent started for it."""

    epoch: tuple[str, str | None, float | None]
    process: subprocess.Popen[bytes]
    lock: IO[str]
    directory: Path
    reported_exit: bool = False


def _boot_string(row: Row) -> str | None:
    text = row.data.get("user_data")
    if not isinstance(text, str) or not text.startswith("skybroker-boot:"):
        return None
    try:
        parse_boot_string(text)
    except ValueError:
        return None
    return text.strip()


def _epoch(row: Row) -> tuple[str, str | None, float | None]:
    """What tells two runs of one instance apart: each start writes a new transition."""
    return (row.state, row.next_state, row.ready_at)


class BootAgents:
    """The agents of one simulated account in one region; see the module."""

    def __init__(
        self,
        *,
        account: str,
        region: str,
        state_path: str,
        instances: Callable[[], list[Row]],
        now: Callable[[], float],
    ) -> None:
        self._account = account
        self._region = region
        self._state_path = state_path
        self._instances = instances
        self._now = now
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._stop = threading.Event()
        self._passes = 0
        self._thread = threading.Thread(
            target=self._loop, name=f"boot-agents-{account}-{region}", daemon=True
        )
        self._thread.start()
        _live.add(self)

    # --- what tests and the provider ask -------------------------------------------------------

    def agent_pid(self, instance_id: str) -> int | None:
        """The pid of the agent started for the instance's current run (it may have died since;
        None if none was started or the run is over)."""
        with self._lock:
            run = self._runs.get(instance_id)
            return run.process.pid if run is not None else None

    @property
    def passes(self) -> int:
        """Passes completed so far (a test waits for a few to say "still not restarted")."""
        with self._lock:
            return self._passes

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop supervising and stop every agent (idempotent)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=INTERVAL * 4 + GRACE)
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        self._end(runs)
        _live.discard(self)

    # --- the supervisor --------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # the state file busy, a fork failing: the next pass retries
                log.exception("boot agents pass failed", account=self._account)
            self._stop.wait(INTERVAL)

    def reconcile(self) -> None:
        """One pass: start the agents that should run, stop those whose run is over."""
        now = self._now()
        wanted: dict[str, tuple[Row, str]] = {}
        for row in self._instances():
            if row.effective_state(now) != "running":
                continue
            boot = _boot_string(row)
            if boot is not None:
                wanted[row.id] = (row, boot)
        with self._lock:
            over = [
                run
                for rid, run in self._runs.items()
                if rid not in wanted or run.epoch != _epoch(wanted[rid][0])
            ]
            for rid in [rid for rid, run in self._runs.items() if run in over]:
                del self._runs[rid]
        self._end(over)
        for rid, (row, boot) in wanted.items():
            if self._stop.is_set():
                return
            with self._lock:
                run = self._runs.get(rid)
            if run is None:
                self._begin(row, boot)
            elif not run.reported_exit and run.process.poll() is not None:
                run.reported_exit = True  # not restarted: the controller must see it lost
                log.info(
                    "boot agent ended on its own; not restarted while the instance runs",
                    instance=rid,
                    exit_code=run.process.returncode,
                )
        with self._lock:
            self._passes += 1

    def _begin(self, row: Row, boot: str) -> None:
        directory = agent_dir(self._state_path, self._account, self._region, row.id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = open(directory / "agent.lock", "a+")  # noqa: SIM115 - held while the run lasts
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another provider of this account runs it
            lock.close()
            return
        try:
            process = self._spawn(directory, row, boot)
        except OSError:
            lock.close()
            raise
        # Renamed into place: a reader in another process never sees it empty.
        (directory / "agent.pid.new").write_text(f"{process.pid}\n")
        (directory / "agent.pid.new").replace(directory / "agent.pid")
        with self._lock:
            self._runs[row.id] = _Run(_epoch(row), process, lock, directory)
        log.info("boot agent started", instance=row.id, pid=process.pid)

    def _spawn(self, directory: Path, row: Row, boot: str) -> subprocess.Popen[bytes]:
        boot_file = directory / "boot"
        fd = os.open(boot_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(boot + "\n")
        env = {k: v for k, v in os.environ.items() if k != "SKYBROKER_BOOT"}
        env["SKYBROKER_AGENT_PARENT_PID"] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_CODE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        command = [
            sys.executable, "-m", "skybroker.agent",
            "--boot-string-file", str(boot_file),
            "--config-path", str(directory / "config"),
            "--address", str(row.data["private_ip"]),
        ]  # fmt: skip
        with open(directory / "agent.log", "ab") as output:
            return subprocess.Popen(
                command,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is the controller's, not theirs
            )

    def _end(self, runs: list[_Run]) -> None:
        """SIGTERM every agent of ``runs``, then SIGKILL those still there after GRACE."""
        for run in runs:
            if run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    run.process.send_signal(signal.SIGTERM)
        for run in runs:
            try:
                run.process.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    run.process.kill()
                run.process.wait()
            with contextlib.suppress(OSError):
                (run.directory / "agent.pid").unlink()
            run.lock.close()
            log.info("boot agent stopped", directory=str(run.directory))


_live: weakref.WeakSet[BootAgents] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, stop every agent still running (they would notice their parent
    gone anyway, within a second)."""
    for agents in list(_live):
        agents.close()
