"""``skybroker agent``: flags, signals and exit codes of the boot agent.

Where it sits: ``skybroker.main.build_parser`` adds this subcommand with :func:`add_parser`;
it needs no etcd and no server flag. :func:`run` resolves the boot string
(:mod:`~skybroker.agent.bootsource`), then runs the :class:`~skybroker.agent.runner.Agent`. A
stop signal reaches the agent's stop event through ``controller.signals`` (standard library
only), never by a lock taken inside the signal handler.

Exit codes: 0 stopped (SIGTERM/SIGINT, ``--once`` done, parent gone); 1 a failure the agent
cannot work around; 2 bad flags or boot string; 3 the rendezvous refused the boot string or
enrollment secret (401); 4 ``--claim`` found no free slot (409). Every reason is one line on
stderr, without the secret.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path
from typing import Any

from controller.signals import stop_on_signals
from skybroker.agent.bootsource import BootSources, resolve_boot_string
from skybroker.agent.errors import EXIT_OK, EXIT_USAGE, AgentExit
from skybroker.agent.logs import Reachability, event
from skybroker.agent.runner import PARENT_PID_ENV, Agent, AgentOptions

__all__ = ["DEFAULT_CONFIG_PATH", "add_parser", "main", "run"]

DEFAULT_CONFIG_PATH = "/var/lib/skybroker/config"


_DESCRIPTION = (
    "Fetch this instance's config from the rendezvous, apply it, report, heartbeat and follow "
    "config changes (DESIGN §11). Exit codes: 0 stopped, 1 failure, 2 bad flags or boot "
    "string, 3 refused (401), 4 no free slot (409)."
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``agent`` to ``commands`` (the subparsers of the ``skybroker`` parser)."""
    agent = commands.add_parser(
        "agent", help="the boot agent that runs inside a cloud instance", description=_DESCRIPTION
    )
    _add_flags(agent)
    agent.set_defaults(func=run, shards=1, workers=1)
    parser: argparse.ArgumentParser = agent
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m skybroker.agent``: the agent alone, without importing the server (what the
    simulated cloud starts: a second less per boot than ``python -m skybroker agent``)."""
    parser = argparse.ArgumentParser(prog="skybroker agent", description=_DESCRIPTION)
    _add_flags(parser)
    return run(parser.parse_args(argv))


def _add_flags(agent: argparse.ArgumentParser) -> None:
    source = agent.add_argument_group("boot string (exactly one)")
    source.add_argument("--boot-string", metavar="S", help="the boot string itself")
    source.add_argument(
        "--boot-string-file",
        metavar="F",
        help="a file holding it (with --claim: where the claimed one is saved and reused)",
    )
    source.add_argument(
        "--claim",
        nargs=2,
        metavar=("ENDPOINT", "ENROLLMENT_SECRET"),
        help="claim a slot of a dynamic BootConfig (ENROLLMENT_SECRET '-': read it from "
        "$SKYBROKER_ENROLLMENT_SECRET); else the boot string comes from $SKYBROKER_BOOT",
    )
    agent.add_argument(
        "--config-path",
        default=DEFAULT_CONFIG_PATH,
        help=f"where the config is written, 0600 (default {DEFAULT_CONFIG_PATH})",
    )
    agent.add_argument(
        "--handler",
        metavar="CMD",
        help="run CMD CONFIG_PATH after each config (default: the config "
        "itself if it starts with #!)",
    )
    agent.add_argument(
        "--handler-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a handler running longer fails (default 300)",
    )
    agent.add_argument("--address", help="the address to report (default: detected)")
    agent.add_argument(
        "--once", action="store_true", help="fetch, apply and report once, then exit"
    )
    agent.add_argument(
        "--poll-seconds",
        type=int,
        default=60,
        metavar="SECONDS",
        help="long-poll for config changes this long per request (default 60)",
    )
    agent.add_argument(
        "--retry-max",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait between retries of an unreachable rendezvous",
    )


def _options(args: argparse.Namespace) -> AgentOptions:
    if args.handler_timeout <= 0 or args.retry_max <= 0 or not 1 <= args.poll_seconds <= 300:
        raise AgentExit(
            EXIT_USAGE,
            "--handler-timeout and --retry-max must be positive, --poll-seconds 1 to 300",
        )
    parent = os.environ.get(PARENT_PID_ENV, "").strip()
    if parent and not parent.isdigit():
        raise AgentExit(EXIT_USAGE, f"${PARENT_PID_ENV} must be a process id")
    return AgentOptions(
        config_path=Path(args.config_path).absolute(),
        handler=args.handler or None,
        handler_timeout=args.handler_timeout,
        address=args.address or None,
        once=args.once,
        poll_seconds=args.poll_seconds,
        retry_max=args.retry_max,
        parent_pid=int(parent) if parent else None,
    )


def run(args: argparse.Namespace) -> int:
    """Run the agent with ``args``; the exit code."""
    # httpx logs every request at INFO: a heartbeat is not an event worth a line.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    stop = threading.Event()
    stop_on_signals(stop)
    reach = Reachability()
    try:
        options = _options(args)
        sources = BootSources(
            args.boot_string,
            args.boot_string_file,
            tuple(args.claim) if args.claim else None,
            os.environ,
        )
        boot = resolve_boot_string(sources, stop, reach, options.retry_max)
    except AgentExit as exc:
        if exc.message:
            event(exc.message)
        return exc.code
    if stop.is_set():
        event("stopped")
        return EXIT_OK
    return Agent(boot, options, stop, reach).run()
