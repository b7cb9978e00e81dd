"""Applying a config: write it to disk atomically, run the handler, read what it reports.

Where it sits: :mod:`skybroker.agent.runner` calls :func:`apply_config` for the first config
and for every new revision. The handler is ``--handler CMD`` (split like a shell would, the
config path appended), or — with no handler — the config file itself when it starts with
``#!`` (made executable), or nothing (the config is only written). It runs in its own process
group (a timeout or the agent stopping ends it and its children) with:

- ``SKYBROKER_CONFIG``: the config file's path;
- ``SKYBROKER_PARAMETERS``: the parameters as a JSON object;
- ``SKYBROKER_REVISION``, ``SKYBROKER_UUID``.

The agent's own environment is passed on without ``SKYBROKER_BOOT`` (the secret). A JSON object
on the handler's stdout (the whole output, or its last line) becomes the reported parameters,
values stringified; keys or values the rendezvous would refuse are left out (and logged). A
non-zero exit or a timeout is a ``Failed`` report whose message is the tail of its stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skybroker.agent.logs import event

__all__ = ["Applied", "HandlerRunner", "parse_parameters", "write_config"]

CONFIGURED = "Configured"
FAILED = "Failed"
#: The rendezvous keeps messages up to 1024 characters; the tail of stderr fits in that.
MAX_MESSAGE = 1024
#: Parameter bounds of the rendezvous (api_types.bootconfigs): entries, value bytes, key shape.
MAX_PARAMETERS = 256
MAX_VALUE_BYTES = 4096
_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
#: The environment variable the boot string may come from: never handed to the handler.
BOOT_ENV = "SKYBROKER_BOOT"


@dataclass(frozen=True)
class Applied:
    """The outcome of applying one config revision: what the agent reports for it."""

    status: str
    revision: int
    parameters: dict[str, str] = field(default_factory=dict)
    message: str | None = None


def write_config(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, renamed), mode 0600;
    the directory is made (0700) if missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_parameters(stdout: str) -> dict[str, str] | None:
    """The JSON object the handler printed (whole output or last line), values stringified and
    entries the rendezvous would refuse left out; None if it printed none."""
    text = stdout.strip()
    candidates = [text]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        candidates.append(lines[-1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return _bounded({str(k): _stringify(v) for k, v in value.items()})
    return None


def _bounded(parameters: dict[str, str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    dropped = []
    for key, value in parameters.items():
        fits = _KEY.fullmatch(key) and len(value.encode("utf-8")) <= MAX_VALUE_BYTES
        if fits and len(kept) < MAX_PARAMETERS:
            kept[key] = value
        else:
            dropped.append(key)
    if dropped:
        event(
            f"left out {len(dropped)} handler parameter(s) the rendezvous would refuse "
            "(keys: letters, digits, '-', '_', '.'; values up to 4096 bytes; 256 entries)"
        )
    return kept


def _tail(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


class HandlerRunner:
    """Runs the handler for a config; :meth:`stop` ends the one running (agent shutdown)."""

    def __init__(self, handler: str | None, config_path: Path, timeout: float) -> None:
        self._handler = shlex.split(handler) if handler else None
        self._config_path = config_path
        self._timeout = timeout
        self._lock = threading.Lock()
        self._running: subprocess.Popen[str] | None = None
        self._stopped = False

    def apply(
        self, uuid: str, config: str, parameters: Mapping[str, str], revision: int
    ) -> Applied:
        """Write ``config`` and run the handler on it; never raises for the handler's faults."""
        try:
            write_config(self._config_path, config)
        except OSError as exc:
            return Applied(
                FAILED,
                revision,
                message=f"cannot write the config to {self._config_path}: {exc.strerror or exc}",
            )
        command = self._command(config)
        if command is None:
            event(f"config revision {revision} written to {self._config_path} (no handler)")
            return Applied(CONFIGURED, revision)
        return self._run(command, uuid, parameters, revision)

    def _command(self, config: str) -> list[str] | None:
        if self._handler is not None:
            return [*self._handler, str(self._config_path)]
        if config.startswith("#!"):
            os.chmod(self._config_path, 0o700)
            return [str(self._config_path)]
        return None

    def _environment(
        self, uuid: str, parameters: Mapping[str, str], revision: int
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != BOOT_ENV}
        env.update(
            SKYBROKER_CONFIG=str(self._config_path),
            SKYBROKER_PARAMETERS=json.dumps(dict(parameters), separators=(",", ":")),
            SKYBROKER_REVISION=str(revision),
            SKYBROKER_UUID=uuid,
        )
        return env

    def _run(
        self, command: list[str], uuid: str, parameters: Mapping[str, str], revision: int
    ) -> Applied:
        name = Path(command[0]).name
        try:
            with self._lock:
                if self._stopped:
                    return Applied(FAILED, revision, message="the agent is stopping")
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    errors="replace",
                    env=self._environment(uuid, parameters, revision),
                    start_new_session=True,
                )
                self._running = process
        except OSError as exc:
            return Applied(
                FAILED, revision, message=f"cannot run the handler {name}: {exc.strerror or exc}"
            )
        try:
            stdout, stderr = process.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            try:
                _, stderr = process.communicate(timeout=5.0)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
                stderr = ""
            message = f"handler {name} timed out after {self._timeout:g} s"
            return Applied(FAILED, revision, message=self._with_tail(message, stderr))
        finally:
            with self._lock:
                self._running = None
        if process.returncode != 0:
            message = f"handler {name} exited with {process.returncode}"
            return Applied(FAILED, revision, message=self._with_tail(message, stderr))
        reported = parse_parameters(stdout)
        event(
            f"revision {revision} configured by {name}"
            + (f", which reported {len(reported)} parameter(s)" if reported else "")
        )
        return Applied(CONFIGURED, revision, reported or {})

    @staticmethod
    def _with_tail(message: str, stderr: str) -> str:
        tail = _tail(stderr, MAX_MESSAGE - len(message) - 2)
        return f"{message}: {tail}" if tail else message

    def stop(self) -> None:
        """End the running handler (its whole process group) and run no more."""
        with self._lock:
            self._stopped = True
            process = self._running
        if process is not None:
            _kill_group(process)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
