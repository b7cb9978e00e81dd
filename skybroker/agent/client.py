"""The rendezvous protocol as the agent speaks it (DESIGN §11), over httpx, plus backoff.

Where it sits: under :mod:`skybroker.agent.runner` (config fetch, long-poll, report) and
:mod:`skybroker.agent.bootsource` (claims). Answers are plain JSON (the agent has no
pydantic); failures are sorted into what the caller does about them:

- :class:`Refused` (401): the secret is not valid — the agent stops (exit 3);
- :class:`Unavailable` (no connection, a timeout, 5xx, 429): retry later with :class:`Backoff`;
- :class:`Rejected` (another 4xx, or a body that is not the protocol's): logged; the agent
  carries on and tries again at its next beat.

The bearer secret goes only into the ``Authorization`` header; nothing here logs or raises
with a header, a body or a URL, so no error can carry it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from api_types.boot import BootString

__all__ = [
    "API_PREFIX",
    "Backoff",
    "ClaimRefused",
    "Config",
    "NoFreeSlot",
    "Refused",
    "Rejected",
    "RendezvousClient",
    "Unavailable",
    "claim",
    "parse_config",
]

#: The rendezvous endpoints' path under the endpoint of a boot string.
API_PREFIX = "/rendezvous/v1"
#: Seconds a plain request may take (connect, read, write).
REQUEST_TIMEOUT = 10.0
#: Slack above a long-poll's ``timeoutSeconds`` before the agent stops waiting for the answer.
POLL_SLACK = 15.0


class Unavailable(Exception):
    """The rendezvous did not answer usefully; ``problem`` is short and stable (for logs)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Refused(Exception):
    """401: the rendezvous refused the bearer secret."""


class ClaimRefused(Refused):
    """401 on a claim: the enrollment secret is not (or no longer) valid."""


class NoFreeSlot(Exception):
    """409 on a claim: every slot of the dynamic BootConfig is taken."""


class Rejected(Exception):
    """Another 4xx, or an answer that does not follow the protocol."""


@dataclass(frozen=True)
class Config:
    """``GET /rendezvous/v1/configs/{uuid}``'s answer."""

    uuid: str
    config: str
    parameters: dict[str, str]
    revision: int
    heartbeat_seconds: int


class Backoff:
    """Capped exponential backoff with jitter: ``initial``, doubling up to ``cap``, each delay
    drawn from its upper half so that many agents restarting together spread out."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0) -> None:
        self._initial = initial
        self._cap = max(cap, initial)
        self._next = initial
        self._random = random.Random()

    def delay(self) -> float:
        """The next delay (seconds), growing the one after it."""
        ceiling = self._next
        self._next = min(self._cap, self._next * 2)
        return self._random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._next = self._initial


def _base(endpoint: str) -> str:
    return endpoint.rstrip("/") + API_PREFIX


def _send(
    client: httpx.Client, method: str, url: str, secret: str, **kwargs: Any
) -> httpx.Response:
    try:
        response = client.request(
            method, url, headers={"Authorization": f"Bearer {secret}"}, **kwargs
        )
    except httpx.TimeoutException:
        raise Unavailable("timed out") from None
    except httpx.ConnectError:
        raise Unavailable("cannot connect") from None
    except httpx.TransportError as exc:
        raise Unavailable(f"connection failed: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise Unavailable(f"HTTP {response.status_code}")
    return response


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise Rejected(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise Rejected(f"{what}: the answer is not a JSON object")
    return body


def parse_config(body: dict[str, Any]) -> Config:
    """A config answer's JSON object as :class:`Config`; Rejected if it is not one."""
    try:
        parameters = body.get("parameters") or {}
        config = Config(
            uuid=str(body["uuid"]),
            config=body["config"],
            parameters={str(k): str(v) for k, v in dict(parameters).items()},
            revision=int(body["revision"]),
            heartbeat_seconds=max(1, int(body["heartbeatSeconds"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Rejected(f"config: the answer lacks or mangles a field ({exc!s:.60})") from None
    if not isinstance(config.config, str):
        raise Rejected("config: 'config' is not a string")
    return config


class RendezvousClient:
    """One boot string's endpoints; thread-safe (httpx's client is)."""

    def __init__(self, boot: BootString, timeout: float = REQUEST_TIMEOUT) -> None:
        self._boot = boot
        self._url = f"{_base(boot.endpoint)}/configs/{boot.uuid}"
        self._timeout = timeout
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def fetch(self, after_revision: int | None = None, wait_seconds: int = 0) -> Config:
        """The config now, or (``after_revision``) once its revision differs from that one or
        ``wait_seconds`` have passed (the long-poll)."""
        params: dict[str, int] = {}
        timeout = self._timeout
        if after_revision is not None:
            params = {"afterRevision": after_revision, "timeoutSeconds": wait_seconds}
            timeout = wait_seconds + POLL_SLACK
        response = _send(
            self._client, "GET", self._url, self._boot.secret, params=params, timeout=timeout
        )
        if response.status_code == 401:
            raise Refused()
        if response.status_code != 200:
            raise Rejected(f"config: HTTP {response.status_code}")
        return parse_config(_json_object(response, "config"))

    def report(self, body: dict[str, Any]) -> None:
        """``PUT …/report`` (204; any 2xx is taken)."""
        response = _send(self._client, "PUT", f"{self._url}/report", self._boot.secret, json=body)
        if response.status_code == 401:
            raise Refused()
        if not 200 <= response.status_code < 300:
            raise Rejected(f"report: HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


def claim(endpoint: str, enrollment_secret: str, timeout: float = REQUEST_TIMEOUT) -> BootString:
    """``POST {endpoint}/rendezvous/v1/claims``: the fresh identity of a free slot, as the parts
    of a boot string (not checked here: the caller formats and so validates them)."""
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        response = _send(client, "POST", f"{_base(endpoint)}/claims", enrollment_secret)
    if response.status_code == 401:
        raise ClaimRefused()
    if response.status_code == 409:
        raise NoFreeSlot()
    if response.status_code not in (200, 201):
        raise Rejected(f"claim: HTTP {response.status_code}")
    body = _json_object(response, "claim")
    parts = [body.get(name) for name in ("uuid", "secret", "endpoint")]
    if not all(isinstance(part, str) for part in parts):
        raise Rejected("claim: the answer lacks uuid, secret or endpoint")
    uuid, secret, claimed_endpoint = (str(part) for part in parts)
    return BootString(uuid, secret, claimed_endpoint)
