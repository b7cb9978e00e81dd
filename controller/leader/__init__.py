"""Leader election and sharding on etcd leases (DESIGN §4).

Where it sits: the manager (``controller.manager``) runs an elector in a thread before any
controller works. With one election (:class:`LeaderElector`) a single process reconciles;
with shards (:class:`ShardSet`) several processes split the objects by
:func:`shard_of` ``(namespace, name)``. Workers ask the :class:`Leadership` ``is_valid()``
before each reconcile and add ``fence()`` to their store writes
(``TxnExtras(compares=leadership.fence())``).

Safety, in short: a holder stops at a local deadline — the monotonic time at which its last
successful renewal was *sent*, plus the TTL, minus a margin — which always comes before etcd
can expire its lease and let anyone else in; and a holder that is paused past that point is
stopped by the fence, a compare on the election key's create_revision. Modules:

* ``_session`` — the lease, its keep-alive, the local deadline, deadline-bounded etcd calls;
* ``_holder``  — :class:`Leadership` and the loop that verifies, sweeps, releases, acquires;
* ``_election`` / ``_shards`` — the two ways of wanting keys; ``_metrics`` — the gauge.
"""

import os
import socket
import uuid

from controller.leader._election import LeaderElector
from controller.leader._holder import Leadership
from controller.leader._shards import ShardSet, shard_of

__all__ = ["LeaderElector", "Leadership", "ShardSet", "default_identity", "shard_of"]


def default_identity() -> str:
    """``host-pid-random``: unique per process, readable in ``etcdctl get`` of a lease key."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
