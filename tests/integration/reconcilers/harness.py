"""A real controller for reconciler tests: Manager + ProviderRegistry on the test's etcd prefix.

Where it sits: test support shared by every reconciler test module. ``Harness`` runs a real
``Manager`` (informers, workqueues, leader lease, normaliser) in a thread with the reconcilers
a test registers, against the session's etcd under the test's own key prefix, and simulated
accounts whose state lives in the test's ``tmp_path``. Tests talk to it as a user would
(``apply`` manifests into the store) and look at the cloud directly (``provider(account)``)::

    def test_something(harness: Harness) -> None:
        harness.apply(sim_account("sim-a"), pool("general", ["sim-a"]))
        harness.start(instance.register)
        harness.apply(instance_manifest("web-1", pool="general"))
        harness.wait_for(Instance, "web-1", "acme", lambda i: i.status.phase == "Running")

Timings are short (resync 2 s, inventory 0.3 s, boot 0.2 s) so convergence and drift show up
within a few seconds even on a loaded machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from api_types import ProviderAccount, Resource, registry
from controller.clock import RealClock
from controller.errors import NotFoundError
from controller.manager import Manager, ManagerOptions
from controller.metrics import RECONCILE_RESULTS
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from providers import CloudProvider, GuardedProvider
from reconcilers.accounts import ProviderRegistry
from reconcilers.deps import Deps
from reconcilers.placement import PlacementMemory
from tests.integration.providers.conftest import EC2_CREDENTIALS
from tests.integration.providers.conftest import REGION as EC2_REGION
from tests.waiting import eventually

__all__ = [
    "RENDEZVOUS_URL",
    "Harness",
    "ec2_account",
    "harness",
    "instance_manifest",
    "pool_manifest",
    "pool_of_two",
    "sim_account",
]

R = TypeVar("R", bound=Resource)
Register = Callable[[Deps], None]

API = "skybroker.io/v1alpha1"
REGION = "sim-east"
IMAGES = {"ubuntu-22.04": "img-ubuntu-2204"}
#: The rendezvous base URL written into boot strings (nothing listens there in these tests).
RENDEZVOUS_URL = "http://127.0.0.1:7480"


def sim_account(name: str, region: str = REGION, **options: object) -> dict[str, Any]:
    """A simulated ProviderAccount; ``options`` become ``options.skybroker.io/*`` annotations."""
    annotations = {"options.skybroker.io/boot_seconds": "0.2", "options.skybroker.io/seed": "1"}
    annotations.update({f"options.skybroker.io/{k}": str(v) for k, v in options.items()})
    return {
        "apiVersion": API,
        "kind": "ProviderAccount",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"driver": "simulated", "region": region, "images": dict(IMAGES)},
    }


def ec2_account(name: str, endpoint: str, image_id: str, **spec: Any) -> list[dict[str, Any]]:
    """An ec2 ProviderAccount on ``endpoint`` (the session's moto_server) mapping ubuntu-22.04
    to ``image_id``, and the Secret in ``skybroker-system`` holding its credentials; ``spec``
    adds fields (``apiBudget``…)."""
    return [
        {
            "apiVersion": API,
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "skybroker-system"},
            "stringData": dict(EC2_CREDENTIALS),
        },
        {
            "apiVersion": API,
            "kind": "ProviderAccount",
            "metadata": {"name": name},
            "spec": {
                "driver": "ec2",
                "region": EC2_REGION,
                "endpoint": endpoint,
                "credentialsRef": {"name": name},
                "images": {"ubuntu-22.04": image_id},
                **spec,
            },
        },
    ]


def pool_manifest(
    name: str, members: list[dict[str, Any]], policy: str = "Priority", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Pool",
        "metadata": {"name": name},
        "spec": {"members": members, "policy": {"type": policy}, **spec},
    }


def pool_of_two(policy: str) -> list[dict[str, Any]]:
    """Accounts sim-a and sim-b and pool ``general`` of both under ``policy``; sim-a takes one
    instance at most (``maxInstances``), which must not limit the other kinds."""
    return [
        sim_account("sim-a"),
        sim_account("sim-b"),
        pool_manifest(
            "general", [{"account": "sim-a", "maxInstances": 1}, {"account": "sim-b"}], policy
        ),
    ]


def instance_manifest(name: str, namespace: str = "acme", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hardware": {"cpu": 1}, "image": "ubuntu-22.04"}
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "Instance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


class Harness:
    """``shards > 1``: this manager is one of several splitting the shards (each a Harness on
    the same store and state directory, as separate controller processes would be).
    ``inventory_interval``: the accounts' view age (short by default, so tests see the cloud
    quickly; tests of behaviour under the production interval pass ``INVENTORY_SECONDS``).
    ``resync_period``: short by default; a test that must show something happens without a
    resync passes a long one. ``rendezvous_url``: ``Deps.rendezvous_url`` (None: as a
    controller run without ``--rendezvous-url``)."""

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        shards: int = 1,
        inventory_interval: float = 0.3,
        resync_period: float = 2.0,
        rendezvous_url: str | None = RENDEZVOUS_URL,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        clock = RealClock()
        self.providers = ProviderRegistry(
            store,
            simulated_state_dir=state_dir,
            inventory_interval=inventory_interval,
            clock=clock,
        )
        options = ManagerOptions(
            workers=4,
            shards=shards,
            lease_ttl=5,
            renew_every=1.0,
            resync_period=resync_period,
            maintenance_interval=1.0,
        )
        self.manager = Manager(store, options, clock=clock)
        self.deps = Deps(
            self.manager, self.providers, clock, PlacementMemory(clock), rendezvous_url
        )
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------

    def start(self, *registers: Register, timeout: float = 20.0) -> None:
        """Register the reconcilers and run the manager until it holds a shard's lease."""
        for register in registers:
            register(self.deps)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self.manager.run, kwargs={"ready": ready.set}, name="harness", daemon=True
        )
        self._thread.start()
        assert ready.wait(timeout), "manager did not start"
        self.eventually(
            lambda: bool(self.manager.shards.owned()), timeout, "the manager never got a lease"
        )

    def stop(self) -> None:
        if self._thread is not None:
            self.manager.stop()
            self._thread.join(30)
            self._thread = None

    # --- objects --------------------------------------------------------------------------

    def apply(self, *manifests: dict[str, Any]) -> list[Resource]:
        """Create each manifest in the store (as ``skyctl --etcd`` would)."""
        return [self.store.create(registry.parse_object(m), actor="test") for m in manifests]

    def get(self, model: type[R], name: str, namespace: str | None = None) -> R | None:
        try:
            return self.store.get(model, name, namespace)
        except NotFoundError:
            return None

    def wait_for(
        self,
        model: type[R],
        name: str,
        namespace: str | None,
        check: Callable[[R], bool],
        timeout: float = 30.0,
    ) -> R:
        """Poll the store until ``check(obj)``; returns the object (AssertionError on timeout)."""
        found: list[R] = []

        def done() -> bool:
            obj = self.get(model, name, namespace)
            if obj is not None and check(obj):
                found.append(obj)
                return True
            return False

        def detail() -> str:
            return f"{model.KIND} {name}: {self.get(model, name, namespace)!r}"

        self.eventually(done, timeout, detail)
        return found[0]

    def wait_gone(
        self, model: type[Resource], name: str, namespace: str | None, timeout: float = 30.0
    ) -> None:
        self.eventually(lambda: self.get(model, name, namespace) is None, timeout, f"{name} stays")

    eventually = staticmethod(eventually)

    def event_reasons(self, plural: str, name: str, namespace: str | None) -> set[str]:
        """Reasons of the events recorded about one object (after flushing the recorder)."""
        recorder = self.manager.recorder
        recorder.flush(10)
        return {e.reason for e in recorder.list_events(involved=ObjectKey(plural, namespace, name))}

    def wait_for_event(self, plural: str, name: str, namespace: str | None, reason: str) -> None:
        """Until an event with ``reason`` is recorded about the object. Events are posted in the
        background, some (a terminal error's Warning) after the status write a test waited for."""
        self.eventually(
            lambda: reason in self.event_reasons(plural, name, namespace),
            what=lambda: f"no {reason} event: {self.event_reasons(plural, name, namespace)}",
        )

    def reconciles(self, kind: str) -> float:
        """Reconciles of ``kind`` finished so far in this process, whatever their result."""
        return sum(
            REGISTRY.get_sample_value("reconcile_total", {"kind": kind, "result": result}) or 0.0
            for result in RECONCILE_RESULTS
        )

    def wait_for_reconciles(self, kind: str, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` more reconciles of ``kind`` finish: "a resync later" as a condition,
        where a fixed sleep may end before any resync ran. Reconciles of one key never overlap,
        so with one object the second of them started after this call."""
        start = self.reconciles(kind)
        self.eventually(
            lambda: self.reconciles(kind) - start >= count,
            timeout,
            lambda: f"{self.reconciles(kind) - start} of {count} {kind} reconciles",
        )

    # --- the cloud, directly --------------------------------------------------------------

    def provider(self, account: str) -> GuardedProvider:
        """The account's provider, as the reconcilers use it (same state file)."""
        return self.providers.handle(self.store.get(ProviderAccount, account)).provider

    def cloud(self, account: str) -> CloudProvider:
        """The account's cloud itself, past skybroker's API budget (tests may poll it freely)."""
        return self.provider(account).inner


@pytest.fixture
def harness(store: Store, tmp_path: Path) -> Iterator[Harness]:
    running = Harness(store, tmp_path)
    yield running
    running.stop()
