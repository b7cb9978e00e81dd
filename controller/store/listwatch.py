"""The list-then-watch loop every cache of the store runs, written once.

Where it sits: under the caches — ``controller.cache.Informer`` (one kind's objects) and the
rendezvous caches of ``controller.rendezvous`` (heartbeats, claims, boot records) subclass
:class:`ListWatch` and supply two steps: ``_relist`` (read the whole prefix, replace the cache,
tell the differences, set :attr:`ListWatch.last_revision`) and ``_apply`` (one watch batch).
The loop lists, then watches from the list's revision + 1 (``PrefixWatch`` resumes by itself
after a broken stream); a compacted history (``WatchCompacted``) means list again at once; an
unreachable store or anything unexpected means list again after a backoff (capped), whose
diff against the cache tells whatever happened meanwhile. :meth:`ListWatch.stop` ends the
watch stream, so a stopped cache holds no thread and no etcd watch.
"""

from __future__ import annotations

import threading

import structlog

from controller.errors import StoreUnavailableError
from controller.store.etcd import EtcdClient
from controller.store.watch import PrefixWatch, WatchCompacted, WatchEvent

__all__ = ["ListWatch"]

log = structlog.get_logger(__name__)

_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 5.0


class ListWatch:
    """A cache of everything under ``prefix``, kept current by list + watch (see the module).

    Subclasses implement :meth:`_relist` and :meth:`_apply`; they may override
    :meth:`_compacted` (called before the re-list a compaction forces, e.g. to count it).
    ``_watch_lock`` guards only the current watch stream; caches keep their own lock."""

    def __init__(self, client: EtcdClient, prefix: bytes, name: str) -> None:
        self._client = client
        self._prefix = prefix
        self._name = name
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._watch_lock = threading.Lock()
        self._watch: PrefixWatch | None = None
        self._thread: threading.Thread | None = None
        #: The newest revision the cache reflects (0 before the first list).
        self.last_revision = 0

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        with self._watch_lock:
            watch = self._watch
        if watch is not None:
            watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def has_synced(self) -> bool:
        """True once the first list is in the cache and its changes have been told."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    # --- the steps a cache supplies ---------------------------------------------------------

    def _relist(self) -> None:
        """Read the whole prefix into the cache and set :attr:`last_revision` (then the loop
        marks the cache synced)."""
        raise NotImplementedError

    def _apply(self, batch: list[WatchEvent], revision: int) -> None:
        """One watch response: its events, all delivered up to ``revision``."""
        raise NotImplementedError

    def _compacted(self, error: WatchCompacted) -> None:
        """The watch fell behind a compaction: a re-list follows."""
        log.info("watch compacted; re-listing", cache=self._name, error=str(error))

    # --- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        needs_list = True
        backoff = _FIRST_BACKOFF
        while not self._stopped.is_set():
            try:
                if needs_list:
                    self._relist()
                    self._synced.set()
                    needs_list = False
                    backoff = _FIRST_BACKOFF
                self._follow()
            except WatchCompacted as exc:
                self._compacted(exc)
                needs_list = True
                continue
            except StoreUnavailableError as exc:
                log.warning("cannot list; retrying", cache=self._name, error=str(exc))
                needs_list = True
            except Exception:
                log.exception("cache failed; re-listing", cache=self._name)
                needs_list = True
            if self._stopped.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _follow(self) -> None:
        watch = PrefixWatch(self._client, self._prefix, self.last_revision + 1)
        with self._watch_lock:
            if self._stopped.is_set():
                return
            self._watch = watch
        try:
            for batch in watch:
                self._apply(batch, watch.last_revision)
        finally:
            with self._watch_lock:
                self._watch = None
