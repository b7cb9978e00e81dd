"""Where the agent's boot string comes from: a flag, a file, the environment, or a claim.

Where it sits: the first step of :func:`skybroker.agent.cli.run`. Exactly one source:

- ``--boot-string S``, ``--boot-string-file F`` or ``$SKYBROKER_BOOT`` (the user data of an
  Instance with a ``bootConfigRef``);
- ``--claim ENDPOINT ENROLLMENT_SECRET`` (a dynamic BootConfig): claim a slot, first come
  first served; ``-`` as the secret reads it from ``$SKYBROKER_ENROLLMENT_SECRET``. With
  ``--boot-string-file`` the claimed boot string is saved there (0600) and, on a restart, read
  back instead of claiming a second slot.

A bad string stops the agent with exit 2 and a message naming the source and the wrong part
(:func:`api_types.boot.parse_boot_string` never quotes its input, so not the secret either).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from api_types.boot import BootString, format_boot_string, parse_boot_string
from skybroker.agent.apply import BOOT_ENV, write_config
from skybroker.agent.client import Backoff, ClaimRefused, NoFreeSlot, Rejected, Unavailable, claim
from skybroker.agent.errors import (
    EXIT_FAILURE,
    EXIT_NO_SLOT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    AgentExit,
)
from skybroker.agent.logs import Reachability, event

__all__ = ["ENROLLMENT_ENV", "FROM_ENV", "BootSources", "resolve_boot_string"]

#: ``--claim ENDPOINT -`` reads the enrollment secret from this variable instead: kept out of
#: the process list, and usable when the secret starts with ``-`` (which argparse would take
#: for a flag).
ENROLLMENT_ENV = "SKYBROKER_ENROLLMENT_SECRET"
FROM_ENV = "-"


class BootSources:
    """The boot-string flags as given (None = not given)."""

    def __init__(
        self,
        boot_string: str | None,
        boot_string_file: str | None,
        claim: tuple[str, str] | None,
        environ: Mapping[str, str],
    ) -> None:
        self.boot_string = boot_string
        self.file = Path(boot_string_file) if boot_string_file else None
        self.claim = claim
        self.env = environ.get(BOOT_ENV) or None


def _parse(text: str, where: str) -> BootString:
    try:
        return parse_boot_string(text)
    except ValueError as exc:
        raise AgentExit(EXIT_USAGE, f"{where}: {exc}") from None


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise AgentExit(
            EXIT_USAGE, f"--boot-string-file {path}: cannot read it ({reason})"
        ) from None


def resolve_boot_string(
    sources: BootSources, stop: threading.Event, reach: Reachability, retry_max: float
) -> BootString:
    """The boot string to run with; AgentExit when there is none, more than one, or a bad one
    (or, for a claim, when refused, full, or stopped while retrying)."""
    given = [
        name
        for name, value in (
            ("--boot-string", sources.boot_string),
            ("--boot-string-file", sources.file),
            (f"${BOOT_ENV}", sources.env),
        )
        if value is not None
    ]
    if sources.claim is not None:
        clashing = [name for name in given if name != "--boot-string-file"]
        if clashing:
            raise AgentExit(
                EXIT_USAGE, f"--claim gets its boot string by claiming: drop {clashing[0]}"
            )
        return _claimed(sources.claim, sources.file, stop, reach, retry_max)
    if not given:
        raise AgentExit(
            EXIT_USAGE,
            f"no boot string: give --boot-string, --boot-string-file or ${BOOT_ENV} "
            "(or --claim ENDPOINT ENROLLMENT_SECRET)",
        )
    if len(given) > 1:
        raise AgentExit(EXIT_USAGE, f"two boot strings given ({given[0]} and {given[1]}): keep one")
    if sources.boot_string is not None:
        return _parse(sources.boot_string, "--boot-string")
    if sources.file is not None:
        return _parse(_read_file(sources.file), f"--boot-string-file {sources.file}")
    return _parse(sources.env or "", f"${BOOT_ENV}")


def _check_claim_endpoint(endpoint: str) -> None:
    try:
        parts = urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or parts.query or parts.fragment:
        raise AgentExit(EXIT_USAGE, "--claim: the endpoint must be an http(s):// base URL")


def _claimed(
    arguments: tuple[str, str],
    file: Path | None,
    stop: threading.Event,
    reach: Reachability,
    retry_max: float,
) -> BootString:
    if file is not None and file.exists():
        text = _read_file(file)
        if text.strip():
            event(f"using the boot string claimed earlier (saved in {file})")
            return _parse(text, f"--boot-string-file {file} (saved claim)")
    endpoint, enrollment_secret = arguments
    _check_claim_endpoint(endpoint)
    if enrollment_secret == FROM_ENV:
        enrollment_secret = os.environ.get(ENROLLMENT_ENV, "")
        if not enrollment_secret:
            raise AgentExit(EXIT_USAGE, f"--claim ENDPOINT -: set ${ENROLLMENT_ENV}")
    backoff = Backoff(cap=retry_max)
    while True:
        try:
            answer = claim(endpoint, enrollment_secret)
            reach.answered()
            break
        except Unavailable as exc:
            reach.failed(exc.problem)
        except ClaimRefused:
            raise AgentExit(
                EXIT_REFUSED, "the rendezvous refused the enrollment secret (HTTP 401)"
            ) from None
        except NoFreeSlot:
            raise AgentExit(
                EXIT_NO_SLOT, "no free slot: every slot of the dynamic BootConfig is claimed"
            ) from None
        except Rejected as exc:
            raise AgentExit(EXIT_FAILURE, f"the claim failed: {exc}") from None
        if stop.wait(backoff.delay()):
            raise AgentExit(EXIT_OK, "stopped while claiming")
    try:
        text = format_boot_string(answer.uuid, answer.secret, answer.endpoint)
    except ValueError as exc:
        raise AgentExit(EXIT_FAILURE, f"the claim's answer is unusable: {exc}") from None
    event(f"claimed a slot: uuid {answer.uuid}")
    if file is not None:
        try:
            write_config(file, text + "\n")
        except OSError as exc:
            raise AgentExit(
                EXIT_FAILURE, f"cannot save the claimed boot string to {file}: {exc.strerror}"
            ) from None
    return BootString(answer.uuid, answer.secret, answer.endpoint)
