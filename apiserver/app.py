"""The application: the ASGI entry of the REST API and its life cycle.

Where it sits: the top of ``apiserver``; ``skybroker apiserver`` and ``skybroker up`` serve
:meth:`ApiServer.app` with uvicorn (``controller.asgi``). Every request under
``/apis/skybroker.io/v1alpha1/`` goes to the resource pipeline (``dispatch``): authenticate
(``auth``) → read the body under the size limit (``body``) → in one worker thread, map the
path (``paths``) and run the operation (``handlers``: RBAC, validation, admission, quota,
store) → pre-serialised JSON, or a ``Status`` for any failure (``status``); or a watch stream
(``watch``). Bad input never produces a 5xx. Paths under ``/hooks/`` are webhooks
(``hooks``): a git host's signed delivery asks a GitSource to sync. ``/ec2/`` is the IaaS
front door (``ec2``, DESIGN §12): EC2 Query requests signed with an access key, whose
:data:`~apiserver.accesskeys.CredentialResolver` is the store's AccessKeys
(``apiserver.accesskeys.AccessKeys``) unless one is handed over, run as the key's user through
the same resource operations as REST. ``/rendezvous/`` is the boot rendezvous (``rendezvous``,
DESIGN §11): agents fetch their BootConfig (long-polling a BootConfig informer started with the
other caches), report and claim slots, with a bearer secret instead of a user token. Every
other path is a system endpoint (``system``):
unauthenticated ``/healthz``, ``/readyz``, ``/version``, ``/openapi.json`` and ``/metrics``
(as the controller manager's health port), and discovery
(``/apis``, ``/apis/skybroker.io/v1alpha1``), which needs a token but no permission.
``selfsubjectaccessreviews`` answers "may I?" for the caller (``skyctl auth can-i``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from api_types import registry
from api_types.bootconfigs import BootConfig
from api_types.common import SYSTEM_NAMESPACE
from api_types.meta import Resource
from apiserver.accesskeys import AccessKeys, CredentialResolver
from apiserver.auth import TokenAuthenticator
from apiserver.body import MAX_BODY_BYTES
from apiserver.cachedreads import CachedReads
from apiserver.dispatch import Dispatcher
from apiserver.ec2 import Ec2Routes, is_ec2_path
from apiserver.handlers import Resources
from apiserver.hooks import HOOKS_ROOT, WebhookRoutes
from apiserver.lookups import Lookups
from apiserver.openapi import API_ROOT
from apiserver.rbac import BUILTIN_CLUSTER_ROLES, Authorizer
from apiserver.rendezvous import RENDEZVOUS_ROOT, RendezvousRoutes
from apiserver.system import SystemRoutes
from apiserver.watchcache import DEFAULT_CAPACITY, WatchCaches
from controller.asgi import Receive, Scope, Send
from controller.cache import Informer
from controller.errors import AlreadyExistsError, StoreError
from controller.manager import Source
from controller.rendezvous import RecordCache
from controller.store.objects import Store

__all__ = ["ApiOptions", "ApiServer"]

_RESOURCE_ROOT = f"{API_ROOT}/"


@dataclass(frozen=True)
class ApiOptions:
    """The API server's tunables (``skybroker apiserver`` and ``up`` take the defaults)."""

    max_body_bytes: int = MAX_BODY_BYTES
    #: Seconds of quiet after which a watch stream sends a BOOKMARK.
    bookmark_interval: float = 30.0
    #: Events each plural's watch cache keeps: a watch resuming from further back than these
    #: reach watches etcd itself.
    watch_cache_size: int = DEFAULT_CAPACITY
    #: How long start() waits for the RBAC caches before giving up.
    sync_timeout: float = 30.0
    #: Threads running resource operations (each blocks on etcd for a round trip).
    workers: int = 32
    #: Rendezvous requests per second per client address, and the burst allowed: enough for
    #: some fifty agents behind one NAT heartbeating and long-polling.
    rendezvous_rate: float = 50.0
    rendezvous_burst: int = 100
    #: The rendezvous URL a dynamic claim answers (``--rendezvous-url``); None: the claim
    #: request's own base URL.
    rendezvous_url: str | None = None


class _Metrics:
    """Request counters on the process registry, created once (``up`` shares the process)."""

    _lock = threading.Lock()
    _instance: _Metrics | None = None

    def __init__(self) -> None:
        self.requests = Counter(
            "apiserver_requests_total",
            "API requests by HTTP method, resource (plural) and status code.",
            ["method", "resource", "code"],
        )
        self.duration = Histogram(
            "apiserver_request_duration_seconds",
            "Time to answer an API request (a watch: until its headers).",
            ["method"],
        )

    @classmethod
    def get(cls) -> _Metrics:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class ApiServer:
    """The REST API over one store: its caches (RBAC, admission lookups), its life cycle
    (:meth:`start` bootstraps the built-in roles and the system namespace) and its ASGI
    application (:meth:`app`), which an HTTP server such as ``skybroker.apiserver.HttpServer``
    serves."""

    def __init__(
        self,
        store: Store,
        authenticator: TokenAuthenticator,
        options: ApiOptions | None = None,
        credentials: CredentialResolver | None = None,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.options = options or ApiOptions()
        self.authorizer = Authorizer(store)
        self.lookups = Lookups(store)
        #: One etcd watch per plural read or watched, shared by the REST watches and serving
        #: the reads ``cachedreads`` allows (started lazily).
        self.watch_caches = WatchCaches(store, self.options.watch_cache_size)
        self.resources = Resources(
            store, self.authorizer, self.lookups, CachedReads(store, self.watch_caches)
        )
        metrics = _Metrics.get()
        self.dispatcher = Dispatcher(
            self.resources,
            authenticator,
            max_body_bytes=self.options.max_body_bytes,
            bookmark_interval=self.options.bookmark_interval,
            watch_caches=self.watch_caches,
            workers=self.options.workers,
            requests=metrics.requests,
            duration=metrics.duration,
        )
        self.hooks = WebhookRoutes(store, self.options.max_body_bytes)
        #: The AccessKeys in the store sign EC2 requests, unless a resolver is handed over.
        self.access_keys = AccessKeys(store) if credentials is None else None
        self.ec2 = Ec2Routes(
            self.resources,
            credentials or self.access_keys,
            self.options.max_body_bytes,
            requests=metrics.requests,
            duration=metrics.duration,
        )
        #: BootConfigs for the rendezvous endpoints (config fetches and long-polls).
        self.boot_configs: Informer[BootConfig] = Informer(store, BootConfig)
        #: Every boot uuid's record: a report's secret is checked without an etcd read.
        self.boot_records = RecordCache(store)
        self.rendezvous = RendezvousRoutes(
            store,
            self.boot_configs,
            self.boot_records,
            max_body_bytes=self.options.max_body_bytes,
            rate=self.options.rendezvous_rate,
            burst=self.options.rendezvous_burst,
            rendezvous_url=self.options.rendezvous_url,
        )
        self.system = SystemRoutes(authenticator, self.ready)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the RBAC, admission and rendezvous (BootConfigs, boot records) caches, wait for
        them, store the built-in ClusterRoles and the system namespace (admission creates
        nothing in a namespace that is missing)."""
        for cache in (caches := self._caches()):
            cache.start()
        timeout = self.options.sync_timeout
        if not all(cache.wait_for_sync(timeout) for cache in caches):
            raise StoreError("the API server's caches did not sync; is etcd reachable?")
        self._bootstrap_roles()
        self._bootstrap(
            registry.parse_object({"kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}})
        )

    def _caches(self) -> list[Source]:
        caches: list[Source] = [self.authorizer, self.lookups, self.boot_configs, self.boot_records]
        if self.access_keys is not None:
            caches.append(self.access_keys)
        return caches

    def stop(self) -> None:
        self.dispatcher.close()
        self.watch_caches.stop()
        for cache in self._caches():
            cache.stop()

    def end_watches(self) -> None:
        """End the open watch streams and answer the waiting rendezvous long-polls: the HTTP
        server is shutting down (event loop only)."""
        self.dispatcher.end_watches()
        self.rendezvous.end_polls()

    def _bootstrap_roles(self) -> None:
        """Make the built-in roles visible to ``skyctl get clusterroles`` (the code's copy is
        what authorizes, so an edited stored copy cannot widen or narrow them)."""
        for name, rules in BUILTIN_CLUSTER_ROLES.items():
            role = registry.parse_object(
                {
                    "kind": "ClusterRole",
                    "metadata": {"name": name, "labels": {"skybroker.io/bootstrapping": "true"}},
                    "rules": [rule.model_dump(mode="json", by_alias=True) for rule in rules],
                }
            )
            self._bootstrap(role)

    def _bootstrap(self, obj: Resource) -> None:
        """Create ``obj`` unless it exists (every API server does this at start)."""
        try:
            self.store.create(obj, actor="system:apiserver")
        except AlreadyExistsError:
            return

    def ready(self) -> bool:
        """Caches synced and etcd answering (``/readyz``)."""
        synced = all(cache.has_synced() for cache in self._caches())
        return synced and self.store.client.reachable()

    # --- the application ------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application: resource paths to the dispatcher, webhooks to their receiver,
        ``/ec2/`` to the EC2 front door, ``/rendezvous/`` to the boot rendezvous, the rest to
        the system endpoints (HTTP only: there is no websocket, and uvicorn runs without
        lifespan)."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(_RESOURCE_ROOT):
            await self.dispatcher(scope, receive, send, path[len(_RESOURCE_ROOT) :])
        elif path.startswith(HOOKS_ROOT):
            await self.hooks(scope, receive, send)
        elif is_ec2_path(path):
            await self.ec2(scope, receive, send)
        elif path.startswith(RENDEZVOUS_ROOT):
            await self.rendezvous(scope, receive, send)
        else:
            await self.system(scope, receive, send)
