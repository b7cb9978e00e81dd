"""The boot rendezvous endpoints on the API server (DESIGN §11), under ``/rendezvous/v1``.

Where it sits: beside the REST resource pipeline, mounted by ``apiserver.app`` at
``/rendezvous/``. Agents (``skybroker agent``, or anything speaking the protocol) fetch their
BootConfig's config, long-poll for changes, report (every report is a heartbeat) and claim
dynamic slots, authenticated by a bearer secret rather than a user token. Modules, in the
order a request meets them:

- ``routes``     the ASGI application: rate limit, route, body, the operation off the loop,
                 the long-poll's wait, the ``Status`` answer, metrics and logs;
- ``ratelimit``  per-client-address token buckets (429 with ``Retry-After``);
- ``bearer``     the ``Authorization: Bearer`` secret and its constant-time check (one 401);
- ``service``    the blocking reads and the one write of each endpoint, over
                 ``controller.rendezvous.RendezvousStore``, the BootConfig informer and the
                 watched boot records (``RecordCache``);
- ``waiters``    long-polls as asyncio futures, woken from the informer's thread;
- ``metrics``    requests by endpoint and code, durations, waiting polls.

Wire shapes and stored records are ``api_types.rendezvous``'s.
"""

from apiserver.rendezvous.ratelimit import RateLimiter
from apiserver.rendezvous.routes import (
    DEFAULT_POLL_SECONDS,
    RENDEZVOUS_ROOT,
    RendezvousRoutes,
    poll_parameters,
)
from apiserver.rendezvous.service import RendezvousService
from apiserver.rendezvous.waiters import RevisionWaiters

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "RENDEZVOUS_ROOT",
    "RateLimiter",
    "RendezvousRoutes",
    "RendezvousService",
    "RevisionWaiters",
    "poll_parameters",
]
