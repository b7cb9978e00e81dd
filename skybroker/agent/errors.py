"""The agent's exit codes and the exception that carries one out of the loop.

Where it sits: raised anywhere in :mod:`skybroker.agent` when the agent must stop (a bad boot
string, a refused secret, no free slot), caught once by :func:`skybroker.agent.cli.run`, which
prints its message as one line and exits with its code. Messages never hold the secret.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NO_SLOT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "AgentExit",
]

#: Stopped by SIGTERM/SIGINT, by ``--once`` after its report, or because its parent is gone.
EXIT_OK = 0
#: Something the agent cannot work around (a claim answer it cannot use, an unwritable file).
EXIT_FAILURE = 1
#: Bad flags or a bad boot string (the message names the wrong part).
EXIT_USAGE = 2
#: The rendezvous answered 401: this boot string (or enrollment secret) is not, or no longer,
#: valid — retrying would not change that.
EXIT_REFUSED = 3
#: ``--claim``: the dynamic BootConfig has no free slot (409).
EXIT_NO_SLOT = 4


class AgentExit(Exception):
    """Stop the agent with ``code``, saying ``message`` (one line, no secret) on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
