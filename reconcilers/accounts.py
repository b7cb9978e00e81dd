"""Account name → a live cloud provider and its inventory, built from ProviderAccount + Secret.

Where it sits: shared by every reconciler that talks to a cloud (instances, subnets, firewalls,
volumes, the account health probe, the leak sweeper). It maps the stored ``ProviderAccount``
and its credentials Secret onto ``providers.AccountConfig`` and keeps one guarded provider (API
budget, circuit breaker, metrics) and one ``Inventory`` per account, shared by all workers, so
the budget and the batched reads really are per account, and one :class:`Catalogue` (zones,
sizes, image architectures; listed at most once per ``CATALOGUE_TTL`` on the registry's
clock) that placement, quota and pool status read. A provider is rebuilt when the
account's generation or its Secret's resourceVersion changes (the Secret is read again at most
every ``CREDENTIALS_SECONDS``). Whoever needs to hear that an account's circuit breaker opened
(the ProviderAccount health reconciler) subscribes with ``on_circuit_open``.

Simulated accounts keep their state in ``{simulated_state_dir}/simulated.sqlite`` (one file for
all of them, so capacity per zone is shared as in a real region) unless the account sets an
endpoint. Annotations ``options.skybroker.io/<name>: <value>`` become driver options (the
simulated cloud's latency, fault rates, quotas…), so tests and demos configure a cloud the
same way an operator would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from api_types import Arch, ProviderAccount, Secret
from controller.errors import NotFoundError, ReconcileError, TerminalError
from controller.store.objects import Store
from providers import (
    AccountConfig,
    ApiBudget,
    CloudSize,
    GuardedProvider,
    Inventory,
    open_provider,
)
from providers.clock import Clock, MonotonicClock

__all__ = [
    "CATALOGUE_TTL",
    "CREDENTIALS_SECONDS",
    "INVENTORY_SECONDS",
    "OPTION_ANNOTATION_PREFIX",
    "AccountHandle",
    "Catalogue",
    "Offer",
    "ProviderRegistry",
    "account_config",
]

OPTION_ANNOTATION_PREFIX = "options.skybroker.io/"
#: Default age of an account's inventory views: one list per kind per account this often.
INVENTORY_SECONDS = 30.0
#: A credentials Secret is read again at most this often: a rotation is used within it.
CREDENTIALS_SECONDS = 5.0
#: Zones, sizes and images of a cloud change rarely: one list per account per this many seconds.
CATALOGUE_TTL = 600.0

T = TypeVar("T")


class _Expiring(Generic[T]):
    """A value fetched again once it is ``ttl`` seconds old on ``clock``; thread-safe."""

    def __init__(self, fetch: Callable[[], T], clock: Clock, ttl: float) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._fetched: tuple[float, T] | None = None

    def get(self) -> T:
        """The value, fetched again if it is stale (a failed fetch raises, remembers nothing)."""
        with self._lock:
            known = self._fetched
        if known is not None and self._clock.now() - known[0] < self._ttl:
            return known[1]
        value = self._fetch()
        with self._lock:
            self._fetched = (self._clock.now(), value)
        return value

    def last(self) -> T | None:
        """The value last fetched, however old (None if never)."""
        with self._lock:
            return None if self._fetched is None else self._fetched[1]


@dataclass(frozen=True)
class Offer:
    """The zones an account can place in now and the sizes it offers."""

    zones: tuple[str, ...]
    sizes: tuple[CloudSize, ...]


class Catalogue:
    """What one account offers, read through its guarded provider once per ``ttl``."""

    def __init__(self, provider: GuardedProvider, clock: Clock, ttl: float = CATALOGUE_TTL) -> None:
        self._provider = provider
        self._offer = _Expiring(self._list_offer, clock, ttl)
        self._image_arch = _Expiring(self._list_image_arch, clock, ttl)

    def offer(self) -> Offer:
        """Available zones and sizes (ReconcileError while the cloud cannot say)."""
        return self._offer.get()

    def image_arch(self) -> dict[str, str] | None:
        """Architecture per image id; the last known one, or None, while the cloud cannot say
        (a guess could pick an arm64 size for an x86_64 image)."""
        try:
            return self._image_arch.get()
        except ReconcileError:
            return self._image_arch.last()

    def _list_offer(self) -> Offer:
        zones = tuple(z.name for z in self._provider.list_zones() if z.available)
        return Offer(zones, tuple(self._provider.list_sizes()))

    def _list_image_arch(self) -> dict[str, str]:
        # Some clouds report no (or odd) architectures: those images constrain nothing.
        arches = {a.value for a in Arch}
        return {i.id: i.arch for i in self._provider.list_images() if i.arch in arches}


@dataclass(frozen=True)
class AccountHandle:
    """One account's provider, inventory and catalogue, valid for the account version it was
    built from."""

    name: str
    provider: GuardedProvider
    inventory: Inventory
    catalogue: Catalogue
    version: tuple[str, int, str]


def account_config(
    account: ProviderAccount, credentials: dict[str, str], simulated_state_dir: Path | None
) -> AccountConfig:
    spec = account.spec
    endpoint = str(spec.endpoint) if spec.endpoint else None
    if spec.driver == "simulated" and endpoint is None and simulated_state_dir is not None:
        endpoint = str(simulated_state_dir / "simulated.sqlite")
    options = {
        key[len(OPTION_ANNOTATION_PREFIX) :]: value
        for key, value in account.metadata.annotations.items()
        if key.startswith(OPTION_ANNOTATION_PREFIX)
    }
    budget = spec.api_budget
    return AccountConfig(
        name=account.metadata.name,
        driver=spec.driver,
        region=spec.region,
        endpoint=endpoint,
        credentials=credentials,
        images=dict(spec.images),
        options=options,
        api_budget=ApiBudget(rate=budget.requests_per_second, burst=budget.burst),
    )


class ProviderRegistry:
    """Account name → :class:`AccountHandle`, rebuilt when the account or its Secret changes;
    ``clock`` times the API budget, the inventory and the catalogue (the manager's clock)."""

    def __init__(
        self,
        store: Store,
        *,
        simulated_state_dir: Path | None = None,
        inventory_interval: float = INVENTORY_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._simulated_state_dir = simulated_state_dir
        self._inventory_interval = inventory_interval
        self._clock = clock or MonotonicClock()
        self._lock = threading.Lock()
        self._handles: dict[str, AccountHandle] = {}
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str], str]] = {}
        self._circuit_listeners: list[Callable[[str], None]] = []
        self._share = 1.0

    def set_share(self, share: float) -> None:
        """Every account's API budget, now and for providers built later, is ``share`` of the
        account's (this process's shards ÷ all shards); 1.0 until first called."""
        with self._lock:
            self._share = share
            handles = list(self._handles.values())
        for handle in handles:
            handle.provider.gate.set_share(share)

    def on_circuit_open(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(account name)`` whenever an account's circuit breaker opens."""
        with self._lock:
            self._circuit_listeners.append(listener)

    def _circuit_opened(self, account: str) -> None:
        with self._lock:
            listeners = list(self._circuit_listeners)
        for listener in listeners:
            listener(account)

    def handle(self, account: ProviderAccount) -> AccountHandle:
        """The account's provider; TerminalError if its Secret or driver is unusable."""
        credentials, secret_version = self._credentials(account)
        version = (str(account.metadata.uid), account.metadata.generation or 0, secret_version)
        name = account.metadata.name
        with self._lock:
            known = self._handles.get(name)
            if known is not None and known.version == version:
                return known
            config = account_config(account, credentials, self._simulated_state_dir)
            try:
                provider = open_provider(
                    config, clock=self._clock, on_circuit_open=self._circuit_opened
                )
            except ValueError as exc:
                raise TerminalError(str(exc), reason="InvalidAccount") from None
            provider.gate.set_share(self._share)
            inventory = Inventory(provider, clock=self._clock, interval=self._inventory_interval)
            catalogue = Catalogue(provider, self._clock)
            handle = AccountHandle(name, provider, inventory, catalogue, version)
            self._handles[name] = handle
        if known is not None:  # outside the lock: closing may wait for background work
            known.provider.close()
        return handle

    def forget(self, name: str) -> None:
        with self._lock:
            handle = self._handles.pop(name, None)
        if handle is not None:
            handle.provider.close()

    def close(self) -> None:
        """Close every account's provider (the simulated cloud's boot agents stop); the
        process is ending. A later :meth:`handle` opens a fresh one."""
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            handle.provider.close()

    def _credentials(self, account: ProviderAccount) -> tuple[dict[str, str], str]:
        """(values, Secret resourceVersion); read at most once per ``CREDENTIALS_SECONDS`` per
        Secret — every reconcile asks, and one etcd read each would cost more than the rest of
        a converged reconcile. A missing Secret is not remembered: created, it is used at once."""
        ref = account.spec.credentials_ref
        if ref is None:
            return {}, ""
        where = (ref.namespace, ref.name)
        with self._lock:
            known = self._secrets.get(where)
        if known is not None and self._clock.now() - known[0] < CREDENTIALS_SECONDS:
            return known[1], known[2]
        try:
            secret = self._store.get(Secret, ref.name, ref.namespace)
        except NotFoundError:
            raise TerminalError(
                f"credentials Secret {ref.namespace}/{ref.name} does not exist",
                reason="CredentialsMissing",
            ) from None
        values = {key: value.decode("utf-8", "replace") for key, value in secret.decoded().items()}
        version = str(secret.metadata.resource_version)
        with self._lock:
            self._secrets[where] = (self._clock.now(), values, version)
        return values, version
