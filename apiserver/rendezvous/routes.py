"""The ``/rendezvous/`` ASGI application: the endpoints agents call (DESIGN §11).

Where it sits: ``apiserver.app`` hands it every path under ``/rendezvous/``; it is outside the
resource pipeline because agents hold no user token — their bearer is a boot secret (or, for a
claim, an enrollment secret; ``bearer``). A request meets, in order:

1. the per-address rate limit (``ratelimit``: 429 with ``Retry-After``), before anything else;
2. the route — ``GET {API_PREFIX}/configs/{uuid}``, ``PUT {API_PREFIX}/configs/{uuid}/report``,
   ``POST {API_PREFIX}/claims`` — 404 for any other path under ``/rendezvous/``, 405 for another
   method, 400 for bad long-poll parameters (naming the parameter);
3. the body under the API's size limit (``apiserver.body``: 413);
4. the operation, off the event loop (``service``, via ``asyncio.to_thread``): the secret's
   check (401, one answer for every refusal), then the read or the one write;
5. for a long-poll (``?afterRevision=N&timeoutSeconds=T``), an asyncio wait (``waiters``) woken
   by the BootConfig informer: no thread and no etcd watch per waiting poll. It answers as soon
   as ``status.revision`` != N, at T with the current config (200, the same revision), when the
   API server shuts down (the same), 404 when the BootConfig is deleted meanwhile; a client
   that goes away ends its poll at once.

Failures are the REST API's ``Status`` JSON (``apiserver.status``; a store that cannot be
reached is 503). Log lines bind the uuid and endpoint, never the secret or the
``Authorization`` header; metrics count requests by endpoint and code (``metrics``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl

import structlog

from api_types.bootconfigs import BootConfig
from api_types.meta import WireModel
from api_types.rendezvous import API_PREFIX, MAX_POLL_SECONDS, RendezvousRecord
from apiserver.body import read_request_body
from apiserver.dispatch import encode, failure
from apiserver.redaction import RequestFacts
from apiserver.rendezvous.bearer import bearer_secret
from apiserver.rendezvous.metrics import RendezvousMetrics
from apiserver.rendezvous.ratelimit import RateLimiter
from apiserver.rendezvous.service import RendezvousService, is_uuid
from apiserver.rendezvous.waiters import RevisionWaiters, boot_config_key
from apiserver.status import ApiError, error_from
from controller.asgi import Answer, Receive, Scope, Send, request_headers
from controller.cache import Informer
from controller.rendezvous import RecordCache
from controller.store.objects import Store

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "RENDEZVOUS_ROOT",
    "RendezvousRoutes",
    "poll_parameters",
]

log = structlog.get_logger(__name__)

#: Every path below this one is the rendezvous application's.
RENDEZVOUS_ROOT = "/rendezvous/"
#: How long a long-poll waits when it names no ``timeoutSeconds``.
DEFAULT_POLL_SECONDS = 30
_CONFIGS = f"{API_PREFIX}/configs/"
_CLAIMS = f"{API_PREFIX}/claims"
#: endpoint → its one method.
_METHODS = {"config": "GET", "report": "PUT", "claims": "POST"}
_NUMBER = re.compile(r"[0-9]{1,18}")
#: A Host header fit to be echoed in a claim's endpoint (anything else: the server's address).
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
#: The metrics' code for a long-poll whose client went away (nginx's convention).
_CLIENT_GONE = "499"


class _ClientGone(Exception):
    """The client of a waiting long-poll disconnected: nothing is sent."""


def _route(path: str) -> tuple[str, str | None]:
    """(endpoint, uuid or None) of a rendezvous path; 404 for any other."""
    if path == _CLAIMS:
        return "claims", None
    if path.startswith(_CONFIGS):
        rest = path[len(_CONFIGS) :].split("/")
        if len(rest) == 1 and rest[0]:
            return "config", rest[0]
        if len(rest) == 2 and rest[0] and rest[1] == "report":
            return "report", rest[0]
    raise ApiError(404, "NotFound", "404: Not Found")


def poll_parameters(query: Mapping[str, str]) -> tuple[int | None, int]:
    """(afterRevision or None, timeoutSeconds) of a config fetch; 400 naming a bad one."""
    after_raw, timeout_raw = query.get("afterRevision"), query.get("timeoutSeconds")
    after = None
    if after_raw is not None:
        if not _NUMBER.fullmatch(after_raw):
            raise ApiError(400, "BadRequest", "afterRevision must be a non-negative integer")
        after = int(after_raw)
    timeout = DEFAULT_POLL_SECONDS
    if timeout_raw is not None:
        if not _NUMBER.fullmatch(timeout_raw) or int(timeout_raw) > MAX_POLL_SECONDS:
            raise ApiError(
                400, "BadRequest", f"timeoutSeconds must be an integer from 0 to {MAX_POLL_SECONDS}"
            )
        timeout = int(timeout_raw)
    return after, timeout


def _revision(boot: BootConfig) -> int:
    return boot.status.revision or 0


def _newer(candidate: BootConfig, known: BootConfig) -> bool:
    """Whether ``candidate`` was written after ``known`` (etcd revisions order them)."""
    return int(candidate.metadata.resource_version or 0) > int(known.metadata.resource_version or 0)


def _json(code: int, model: WireModel) -> Answer:
    return Answer(code, encode(model.model_dump(mode="json", by_alias=True)))


async def _disconnected(receive: Receive) -> None:
    """Returns when the client goes away (a GET's request message comes first)."""
    while (await receive())["type"] != "http.disconnect":
        continue


class RendezvousRoutes:
    """The ``/rendezvous/`` ASGI application (the module docstring's pipeline)."""

    def __init__(
        self,
        store: Store,
        boot_configs: Informer[BootConfig],
        records: RecordCache,
        *,
        max_body_bytes: int,
        rate: float,
        burst: int,
        rendezvous_url: str | None = None,
    ) -> None:
        self.service = RendezvousService(store, boot_configs, records)
        self.waiters = RevisionWaiters()
        self.waiters.follow(boot_configs)
        self.limiter = RateLimiter(rate, burst)
        self.max_body_bytes = max_body_bytes
        self.rendezvous_url = rendezvous_url.rstrip("/") if rendezvous_url else None
        self.metrics = RendezvousMetrics.get()
        self._closing = False

    def end_polls(self) -> None:
        """Answer every waiting long-poll now, and let no new one wait (shutdown begins)."""
        self._closing = True
        self.waiters.wake_all()

    # --- the event loop side --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = request_headers(scope)
        endpoint, uuid = "other", None
        try:
            client = scope.get("client")
            retry_after = self.limiter.admit(str(client[0]) if client else "")
            if retry_after:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "too many rendezvous requests from this address; retry later",
                    details={"retryAfterSeconds": retry_after},
                )
            endpoint, uuid = _route(scope["path"])
            if scope["method"] != _METHODS[endpoint]:
                raise ApiError(
                    405, "MethodNotAllowed", f"this endpoint only answers {_METHODS[endpoint]}"
                )
            secret = bearer_secret(headers.get("authorization"))
            if endpoint == "config":
                query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
                answer = await self._config(str(uuid), secret, query, receive)
            else:
                length = headers.get("content-length")
                body = await read_request_body(receive, length, self.max_body_bytes)
                if endpoint == "report":
                    content_type = headers.get("content-type")
                    await asyncio.to_thread(
                        self.service.report, str(uuid), secret, body, content_type
                    )
                    answer = Answer(204, b"", content_type=None)
                else:
                    claimed = await asyncio.to_thread(
                        self.service.claim, secret, self._endpoint(scope, headers)
                    )
                    answer = _json(201, claimed)
        except _ClientGone:
            self._count(endpoint, _CLIENT_GONE, started)
            return
        except Exception as exc:
            # The path and method only: the Authorization header is cut from any traceback.
            facts = RequestFacts(
                scope["method"], scope["path"], authorization=headers.get("authorization")
            )
            answer = failure(error_from(exc, facts))
        self._count(endpoint, str(answer.code), started)
        self._log(endpoint, uuid, answer.code)
        await answer.send(send)

    def _count(self, endpoint: str, code: str, started: float) -> None:
        self.metrics.requests.labels(endpoint, code).inc()
        self.metrics.duration.labels(endpoint).observe(time.perf_counter() - started)

    def _log(self, endpoint: str, uuid: str | None, code: int) -> None:
        # A path segment that is no uuid is not logged: it is anyone's text, of any length.
        shown = uuid if uuid is None or is_uuid(uuid) else "<not a uuid>"
        bound = log.bind(endpoint=endpoint, uuid=shown, code=code)
        # A refusal is worth a line (a broken agent, or someone guessing); an answered request
        # or a rate-limited one (a flood would flood the log) only at debug.
        if 400 <= code < 500 and code != 429:
            bound.info("rendezvous request refused")
        else:
            bound.debug("rendezvous request answered")

    def _endpoint(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """The rendezvous URL a claimant is told: ``rendezvous_url`` if set, else this
        request's own base URL (scheme and Host header, or the server's address)."""
        if self.rendezvous_url:
            return self.rendezvous_url
        host = headers.get("host", "")
        if not _HOST.fullmatch(host):
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}"

    # --- the config fetch and its long-poll ---------------------------------------------

    async def _config(
        self, uuid: str, secret: str, query: Mapping[str, str], receive: Receive
    ) -> Answer:
        after, timeout = poll_parameters(query)
        record, boot = await asyncio.to_thread(self.service.lookup, uuid, secret)
        if after is not None and timeout > 0 and _revision(boot) == after:
            boot = await self._wait(record, boot, after, timeout, receive)
        config = await asyncio.to_thread(self.service.config, uuid, record, boot)
        return _json(200, config)

    async def _wait(
        self,
        record: RendezvousRecord,
        boot: BootConfig,
        after: int,
        timeout: float,
        receive: Receive,
    ) -> BootConfig:
        """``record``'s BootConfig once its revision is not ``after``, or as it is at the
        deadline or at shutdown; 404 if it is deleted meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = boot_config_key(record.namespace, record.boot_config)
        gone = asyncio.ensure_future(_disconnected(receive))
        self.metrics.waiting.inc()
        try:
            while not self._closing:
                # Registered before the cache is read: a change in between wakes it.
                changed = self.waiters.wait(key)
                try:
                    cached = self.service.cached_boot_config(record)
                    if cached is None:
                        # Deleted (404), or not in the cache yet: etcd says which.
                        boot = await asyncio.to_thread(self.service.current_boot_config, record)
                    elif _newer(cached, boot):
                        boot = cached  # never a copy older than the one read from etcd
                    remaining = deadline - loop.time()
                    if _revision(boot) != after or remaining <= 0:
                        return boot
                    await asyncio.wait(
                        {changed, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                    if gone.done():
                        raise _ClientGone
                finally:
                    self.waiters.discard(key, changed)
            return boot
        finally:
            self.metrics.waiting.dec()
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: a receive that failed is just a client gone

    def waiting(self) -> int:
        """Long-polls waiting now (tests and metrics)."""
        return self.waiters.waiting()
