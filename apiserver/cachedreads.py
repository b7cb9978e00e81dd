"""Which reads the watch cache answers: lists and gets by their ``resourceVersion``.

Where it sits: between the REST read handlers (``handlers.Resources.list``/``get``, and the
initial list of a watch in ``watch``) and the two places an object can be read from — etcd,
or its plural's :class:`~apiserver.watchcache.WatchCache`. Kubernetes' rules, with etcd
outages in mind (DESIGN §4: the API server keeps serving what it can while etcd is down):

================  =========================================  ===============================
resourceVersion   etcd answering                             etcd unreachable
================  =========================================  ===============================
unset             etcd (a consistent read)                   the cache, with a ``Warning``
``0``             the cache (any recent state)               the cache
``N``             the cache once it holds N (waits ≤ 1 s),   the cache if it holds N,
                  else etcd (504 if etcd is not at N yet)    else 503
continue token    etcd at the token's revision               503
================  =========================================  ===============================

"The cache" means a ready one (its first list is in); reads and watches start their plural's
cache, so a plural's first reads go to etcd until its cache has listed. A cache that is not
ready answers nothing: the read goes to etcd (or is 503). A stale answer carries the cache's
revision as its resourceVersion and Kubernetes' warning header, ``Warning: 299 - "…"``.

Worked example: ``skyctl get instances`` (no resourceVersion) while etcd is being restarted —
etcd raises ``StoreUnavailableError`` at once (the API server's client fails fast), the
instances cache is ready at revision 5120, so the answer is the 300 instances as of 5120 with
``Warning: 299 - "etcd is unreachable: …"``; the same list with ``resourceVersion=5200`` is a
503, since the cache cannot show what it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from api_types.meta import Resource
from api_types.registry import KindInfo
from apiserver.status import ApiError
from apiserver.watchcache import Entry, WatchCache, WatchCaches
from controller.errors import InvalidObjectError, NotFoundError, StoreUnavailableError
from controller.labels import LabelSelector
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from controller.store.results import ObjectList

__all__ = ["CachedReads", "Warnings", "parse_resource_version", "stale_warning"]

#: A request's warnings, answered as ``Warning`` headers (Kubernetes' ``warning.AddWarning``).
Warnings = list[str]

#: How long a read with ``resourceVersion=N`` waits for the cache to catch up with N.
CATCH_UP_SECONDS = 1.0

T = TypeVar("T")


def parse_resource_version(text: str | None) -> int | None:
    """None for unset, else the revision (0: any); 400 naming the parameter when malformed."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not text.isdigit():
        raise ApiError(400, "BadRequest", f"resourceVersion {text!r} is not a number")
    return int(text)


def stale_warning(revision: int) -> str:
    return (
        f"etcd is unreachable: served from the API server's watch cache as of resourceVersion "
        f"{revision}, which may be behind"
    )


class CachedReads:
    """The rules of the module docstring; without caches every read goes to etcd."""

    def __init__(self, store: Store, caches: WatchCaches | None = None) -> None:
        self.store = store
        self.caches = caches

    def _cache(self, info: KindInfo) -> WatchCache | None:
        cache = self.caches.get(info) if self.caches is not None else None
        return cache if cache is not None and cache.ready() else None

    def _read(
        self,
        info: KindInfo,
        resource_version: int | None,
        from_etcd: Callable[[], T],
        from_cache: Callable[[WatchCache], T],
        warnings: Warnings | None,
    ) -> T:
        cache = self._cache(info)
        caught_up = cache is not None and (
            resource_version == 0
            or (resource_version is not None and cache.wait_for(resource_version, CATCH_UP_SECONDS))
        )
        if cache is not None and caught_up:
            return from_cache(cache)
        try:
            return from_etcd()
        except StoreUnavailableError:
            if cache is None or resource_version:
                raise
        if warnings is not None:
            warnings.append(stale_warning(cache.last_revision))
        return from_cache(cache)

    def list(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: LabelSelector | None,
        *,
        limit: int = 0,
        continue_after: bytes | None = None,
        revision: int = 0,
        resource_version: int | None = None,
        warnings: Warnings | None = None,
    ) -> ObjectList[Resource]:
        """A list (one page with ``limit``); ``revision`` > 0 is a continue token's (etcd)."""

        def from_etcd() -> ObjectList[Resource]:
            listed = self.store.list(
                info.model,
                namespace,
                selector,
                limit=limit,
                continue_after=continue_after,
                revision=revision,
            )
            if resource_version and listed.resource_version < resource_version:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {resource_version}, current: "
                    f"{listed.resource_version}",
                    details={"retryAfterSeconds": 1},
                )
            return listed

        if revision:
            return from_etcd()
        return self._read(
            info,
            resource_version,
            from_etcd,
            lambda cache: cache.list(
                namespace, selector, limit=limit, continue_after=continue_after
            ),
            warnings,
        )

    def get(
        self,
        info: KindInfo,
        key: ObjectKey,
        *,
        resource_version: int | None = None,
        warnings: Warnings | None = None,
    ) -> Entry:
        """The object at ``key``, or its invalid value (a bad direct write); NotFoundError."""

        def from_etcd() -> Entry:
            try:
                return self.store.get(info.model, key.name, key.namespace)
            except InvalidObjectError:
                return self.store.invalid_value(key)

        def from_cache(cache: WatchCache) -> Entry:
            entry = cache.get(self.store.layout.object_key(key))
            if entry is None:
                raise NotFoundError(key.said("not found"))
            return entry

        return self._read(info, resource_version, from_etcd, from_cache, warnings)
