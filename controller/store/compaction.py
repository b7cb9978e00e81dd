"""Compaction: etcd keeps every revision until told to forget; this keeps a bounded window.

Where it sits: beside the store, driven by the manager's maintenance loop (the process that
holds shard 0) every ``compaction_interval``. Without it etcd's history grows until its space
quota stops every write (DESIGN §2 keeps the durable history as keys, not as revisions).

The algorithm is the Kubernetes API server's, so that any number of processes — several
managers, or installations under other prefixes of one cluster — compact at most once per
interval between them and never below one interval's history:

* every round, a process CASes the compaction key against the ``mod_revision`` it saw there
  one round earlier and writes it again; the write's revision is the new record;
* if that succeeds, nobody recorded anything since its last round, so it compacts to the
  revision it saw then — everything newer, at least one interval of history, stays, and a
  watch or a ``resourceVersion`` within the window can resume;
* if it fails, another process ran this round; it remembers what it found and tries next time.

Worked example with a 5 min interval: at 12:00 a process finds the key at revision 0 (absent)
and remembers 0; at 12:05 its CAS against 0 creates the key at revision 1,000 — there is no
older record, so nothing is compacted; at 12:10 its CAS against 1,000 succeeds at revision
1,900 and etcd is compacted to 1,000: the window is from 12:05 to now, never less than 5 minutes.
"""

from __future__ import annotations

import grpc
import structlog

from controller.store.etcd import EtcdClient, cmp_mod_revision, op_put
from controller.store.keys import KeyLayout

__all__ = ["Compactor"]

log = structlog.get_logger(__name__)


class Compactor:
    """One participant in the rounds described above; call :meth:`round` once per interval."""

    def __init__(self, client: EtcdClient, layout: KeyLayout) -> None:
        self._client = client
        self._key = layout.compaction_key
        #: The compaction key's ``mod_revision`` at this process's previous round.
        self._seen: int | None = None

    def round(self) -> int | None:
        """Take part in one round; the revision compacted to, or ``None`` if none this time."""
        if self._seen is None:
            self._seen = self._recorded()
            return None
        seen = self._seen
        response = self._client.txn(
            [cmp_mod_revision(self._key, seen)], [op_put(self._key, b"")]
        )
        if not response.succeeded:
            self._seen = self._recorded()  # another process ran this round
            return None
        self._seen = int(response.header.revision)
        if seen == 0:
            return None  # the first record: no older one to compact to yet
        try:
            self._client.compact(seen)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.OUT_OF_RANGE:  # compacted further already
                raise
        log.info("etcd compacted", revision=seen, recorded=self._seen)
        return seen

    def _recorded(self) -> int:
        kvs = self._client.range(self._key).kvs
        return int(kvs[0].mod_revision) if kvs else 0
