"""``GuardedProvider``: any ``CloudProvider`` behind the account's API gate, with metrics.

Where it sits: ``providers.registry.open_provider`` wraps every driver in one of these, and the
reconcilers only ever hold the wrapper. Each call passes the account's ``ApiGate`` (token bucket
with a delete reserve, then circuit breaker), is timed and counted in
``provider_calls_total{account,op,code}`` / ``provider_call_seconds``, and reports its outcome
to the breaker: only failures of the provider itself count against it
(``providers.errors.counts_against_provider``: throttling, 5xx, timeouts); an answer about one
resource (not found, invalid, in use) shows a cloud that works. A circuit that opens is logged
with the failures that opened it and reported to ``on_circuit_open`` (the account's name), so
the ProviderAccount's status can say so at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import ParamSpec, TypeVar

import structlog

from controller.errors import ReconcileError, TransientError
from providers.budget import ApiGate
from providers.errors import counts_against_provider
from providers.metrics import ProviderMetrics
from providers.protocol import CloudProvider
from providers.rules import FirewallRule
from providers.types import (
    CloudFirewall,
    CloudImage,
    CloudInstance,
    CloudNetwork,
    CloudPlacementGroup,
    CloudSize,
    CloudSubnet,
    CloudVolume,
    CloudZone,
    FirewallCreate,
    FirewallId,
    InstanceCreate,
    InstanceId,
    NetworkCreate,
    NetworkId,
    PlacementStrategy,
    SubnetCreate,
    SubnetId,
    VolumeCreate,
    VolumeId,
)

__all__ = ["GuardedProvider"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

CircuitListener = Callable[[str], None]
"""Called with the account's name when its circuit opens (from the failing worker's thread)."""


class GuardedProvider:
    """A ``CloudProvider`` that budgets, breaks and measures the calls of ``inner``."""

    def __init__(
        self,
        inner: CloudProvider,
        gate: ApiGate,
        metrics: ProviderMetrics,
        on_circuit_open: CircuitListener | None = None,
    ) -> None:
        self.inner = inner
        self.gate = gate
        self._metrics = metrics
        self._on_circuit_open = on_circuit_open

    @property
    def account(self) -> str:
        return self.inner.account

    @property
    def region(self) -> str:
        return self.inner.region

    @property
    def supports_placement_groups(self) -> bool:
        return self.inner.supports_placement_groups  # local: no API call, nothing to budget

    def close(self) -> None:
        """Stop what the driver runs in the background (the simulated cloud's boot agents), if
        it has a ``close``; not a cloud call, so not budgeted."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def _call(self, op: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        account = self.inner.account
        try:
            self.gate.enter(is_delete=op.startswith("delete_"))
        except TransientError as exc:
            self._metrics.record(account, op, exc.code or "Throttled", None)
            raise
        started = time.perf_counter()
        code = "OK"
        try:
            result = fn(*args, **kwargs)
        except ReconcileError as exc:
            code = exc.code or ("Transient" if isinstance(exc, TransientError) else "Terminal")
            if counts_against_provider(exc):
                self._failed(op, exc)
            else:
                self.gate.breaker.record_success()
            raise
        except BaseException:
            code = "Error"
            self.gate.breaker.release()
            raise
        finally:
            self._metrics.record(account, op, code, time.perf_counter() - started)
        self.gate.breaker.record_success()
        return result

    def _failed(self, op: str, error: ReconcileError) -> None:
        """Count a failure of the provider; say so loudly if it opened the circuit."""
        if not self.gate.breaker.record_failure(f"{op}: {error.message}"):
            return
        log.warning(
            "circuit opened",
            account=self.inner.account,
            cooldown_seconds=self.gate.cooldown,
            failures=list(self.gate.breaker.recent_failures),
        )
        if self._on_circuit_open is not None:
            self._on_circuit_open(self.inner.account)

    # catalogue
    def list_zones(self) -> list[CloudZone]:
        return self._call("list_zones", self.inner.list_zones)

    def list_sizes(self) -> list[CloudSize]:
        return self._call("list_sizes", self.inner.list_sizes)

    def list_images(self) -> list[CloudImage]:
        return self._call("list_images", self.inner.list_images)

    # instances
    def list_instances(self) -> list[CloudInstance]:
        return self._call("list_instances", self.inner.list_instances)

    def create_instance(self, request: InstanceCreate) -> CloudInstance:
        return self._call("create_instance", self.inner.create_instance, request)

    def start_instance(self, instance_id: InstanceId) -> None:
        self._call("start_instance", self.inner.start_instance, instance_id)

    def stop_instance(self, instance_id: InstanceId) -> None:
        self._call("stop_instance", self.inner.stop_instance, instance_id)

    def delete_instance(self, instance_id: InstanceId) -> None:
        self._call("delete_instance", self.inner.delete_instance, instance_id)

    # networks and subnets
    def list_networks(self) -> list[CloudNetwork]:
        return self._call("list_networks", self.inner.list_networks)

    def create_network(self, request: NetworkCreate) -> CloudNetwork:
        return self._call("create_network", self.inner.create_network, request)

    def delete_network(self, network_id: NetworkId) -> None:
        self._call("delete_network", self.inner.delete_network, network_id)

    def list_subnets(self) -> list[CloudSubnet]:
        return self._call("list_subnets", self.inner.list_subnets)

    def create_subnet(self, request: SubnetCreate) -> CloudSubnet:
        return self._call("create_subnet", self.inner.create_subnet, request)

    def delete_subnet(self, subnet_id: SubnetId) -> None:
        self._call("delete_subnet", self.inner.delete_subnet, subnet_id)

    # firewalls
    def list_firewalls(self) -> list[CloudFirewall]:
        return self._call("list_firewalls", self.inner.list_firewalls)

    def create_firewall(self, request: FirewallCreate) -> CloudFirewall:
        return self._call("create_firewall", self.inner.create_firewall, request)

    def update_firewall_rules(
        self,
        firewall_id: FirewallId,
        *,
        authorize: Iterable[FirewallRule] = (),
        revoke: Iterable[FirewallRule] = (),
    ) -> None:
        self._call(
            "update_firewall_rules",
            self.inner.update_firewall_rules,
            firewall_id,
            authorize=authorize,
            revoke=revoke,
        )

    def delete_firewall(self, firewall_id: FirewallId) -> None:
        self._call("delete_firewall", self.inner.delete_firewall, firewall_id)

    # volumes
    def list_volumes(self) -> list[CloudVolume]:
        return self._call("list_volumes", self.inner.list_volumes)

    def create_volume(self, request: VolumeCreate) -> CloudVolume:
        return self._call("create_volume", self.inner.create_volume, request)

    def attach_volume(self, volume_id: VolumeId, instance_id: InstanceId, device: str) -> None:
        self._call("attach_volume", self.inner.attach_volume, volume_id, instance_id, device)

    def detach_volume(self, volume_id: VolumeId) -> None:
        self._call("detach_volume", self.inner.detach_volume, volume_id)

    def delete_volume(self, volume_id: VolumeId) -> None:
        self._call("delete_volume", self.inner.delete_volume, volume_id)

    # placement groups
    def list_placement_groups(self) -> list[CloudPlacementGroup]:
        return self._call("list_placement_groups", self.inner.list_placement_groups)

    def ensure_placement_group(
        self,
        name: str,
        strategy: PlacementStrategy,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> CloudPlacementGroup:
        return self._call(
            "ensure_placement_group", self.inner.ensure_placement_group, name, strategy, tags=tags
        )

    def delete_placement_group(self, name: str) -> None:
        self._call("delete_placement_group", self.inner.delete_placement_group, name)

    # tags
    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        self._call("set_tags", self.inner.set_tags, resource_id, tags)

    def remove_tags(self, resource_id: str, keys: Iterable[str]) -> None:
        self._call("remove_tags", self.inner.remove_tags, resource_id, keys)
