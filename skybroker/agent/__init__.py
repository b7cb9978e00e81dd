"""``skybroker agent``: the boot agent that runs inside a cloud instance (DESIGN §11).

Where it sits: a small client of the rendezvous endpoints, shipped in the ``skybroker``
command (``skybroker agent …``) but kept apart from the server: its modules import only the
standard library, httpx and :mod:`api_types.boot` (the boot-string parser), so it runs on a
generic image with nothing of the broker's runtime. A unit test checks that on every module.

- :mod:`~skybroker.agent.cli`: the ``agent`` subcommand's flags and exit codes;
- :mod:`~skybroker.agent.bootsource`: where the boot string comes from (flag, file, env, or a
  dynamic claim saved to the file);
- :mod:`~skybroker.agent.client`: the rendezvous protocol over httpx, with backoff;
- :mod:`~skybroker.agent.apply`: writing the config and running the handler;
- :mod:`~skybroker.agent.runner`: the loop — fetch, apply, report, heartbeat, long-poll;
- :mod:`~skybroker.agent.logs`: one line per event on stderr, never the secret.
"""

from __future__ import annotations

from skybroker.agent.errors import (
    EXIT_FAILURE,
    EXIT_NO_SLOT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    AgentExit,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NO_SLOT",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "AgentExit",
]
