"""A real manager process for the e2e tests: one controller whose reconciler bumps a counter.

Run: ``python tests/e2e/manager_process.py ENDPOINT PREFIX IDENTITY [SHARDS]``. Each reconcile
of a HardwareProfile increments ``{prefix}/fence/counter`` by a CAS that carries the manager's
fence for the key, writing ``count:identity``, so the counter's history shows who reconciled
when; it also records ``identity`` under ``{prefix}/owners/{name}``; then it asks to be called
again soon.
"""

from __future__ import annotations

import sys

from api_types import registry
from controller.logging import configure_logging
from controller.manager import Manager, ManagerOptions
from controller.reconcile import Request, Result
from controller.store.etcd import EtcdClient, cmp_mod_revision, op_put
from controller.store.keys import KeyLayout
from controller.store.objects import Store

HardwareProfile = registry.by_kind("HardwareProfile").model


class CounterReconciler:
    def __init__(self, manager: Manager, identity: str) -> None:
        self.manager = manager
        self.identity = identity
        self.counter_key = f"{manager.store.layout.prefix}/fence/counter".encode()

    def reconcile(self, request: Request) -> Result:
        client = self.manager.store.client
        kvs = client.range(self.counter_key).kvs
        revision = int(kvs[0].mod_revision) if kvs else 0
        value = kvs[0].value.decode() if kvs else ""
        count = int(value.split(":")[0]) if value else 0
        owner_key = f"{self.manager.store.layout.prefix}/owners/{request.name}".encode()
        # A lost compare means someone else moved first (or the shard moved): try again soon.
        client.txn(
            [cmp_mod_revision(self.counter_key, revision), *self.manager.fence_for(request.key)],
            [
                op_put(self.counter_key, f"{count + 1}:{self.identity}".encode()),
                op_put(owner_key, self.identity.encode()),
            ],
        )
        return Result(requeue_after=0.02)


def main() -> int:
    endpoint, prefix, identity = sys.argv[1:4]
    shards = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    configure_logging(json=True, level="warning")
    store = Store(EtcdClient([endpoint]), KeyLayout(prefix))
    options = ManagerOptions(
        identity=identity, workers=2, shards=shards, lease_ttl=2, renew_every=0.5
    )
    manager = Manager(store, options)
    manager.add_controller(HardwareProfile, CounterReconciler(manager, identity))
    manager.install_signal_handlers()
    manager.run(ready=lambda: print("ready", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
