"""Running ``skybroker agent`` as a real process in tests: start it, read its log, end it.

Where it sits: under ``tests/integration/agent`` (the agent against ``tests.rendezvous_peer``)
and the simulated cloud's boot-agent tests. The agent's stderr goes to a file, so a test can
read the log while the agent runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "AgentProcess"]

ROOT = Path(__file__).resolve().parents[3]


class AgentProcess:
    """``python -m skybroker agent ARGS`` in ``workdir`` (config at ``workdir/config``)."""

    def __init__(
        self, workdir: Path, *args: str, env: dict[str, str] | None = None, retry_max: str = "0.5"
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config"
        self.log_path = workdir / "agent.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SKYBROKER_")}
        command = [
            sys.executable, "-m", "skybroker", "agent",
            "--config-path", str(self.config_path), "--retry-max", retry_max, *args,
        ]  # fmt: skip
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, **(env or {})},
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def end(self) -> None:
        """Kill it if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
