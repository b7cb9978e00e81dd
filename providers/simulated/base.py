"""Shared plumbing of the simulated cloud: options, catalogue, faults, ids, adoption, tags.

Where it sits: ``SimulatedProvider`` (``engine.py``) and its network half (``network.py``)
build on ``SimBase``. Options come from ``AccountConfig.options`` (strings, as a manifest
holds them): ``boot_seconds``, ``stop_seconds``, ``terminate_seconds``, ``volume_seconds``
(asynchronous transitions), ``quota_instances``, ``quota_vcpus``, ``quota_volumes``
(provider-side quotas per account and region), ``zone_capacity_vcpus`` (capacity per zone,
shared by every account on the same state file), ``latency``, ``error_rate``,
``throttle_rate``, ``timeout_rate``, ``retry_after`` and ``seed`` (fault injection), and
``boot-agents`` (``"true"``: a real ``skybroker agent`` process per running instance whose user
data is a boot string, ``providers.simulated.agents``). A ``-`` in an option name reads as
``_`` (annotations are usually spelled with dashes).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from controller.errors import ReconcileError
from providers.clock import Clock, WallClock
from providers.config import AccountConfig
from providers.errors import UnsupportedError
from providers.simulated.agents import BootAgents
from providers.simulated.catalog import image_catalogue, size_catalogue, zone_names
from providers.simulated.faults import FaultInjector, FaultRates, sim_error
from providers.simulated.store import Row, Scoped, SimStore
from providers.types import (
    CloudImage,
    CloudPlacementGroup,
    CloudSize,
    CloudZone,
    PlacementStrategy,
    ResourceKind,
    ResourceTags,
    ZoneName,
)

__all__ = ["SimBase", "SimOptions"]


@dataclass(frozen=True)
class SimOptions:
    """The simulated cloud's timings (seconds per transition) and account quotas."""

    boot_seconds: float = 1.0
    stop_seconds: float = 0.5
    terminate_seconds: float = 0.5
    volume_seconds: float = 0.5
    quota_instances: int = 100_000
    quota_vcpus: int = 400_000
    quota_volumes: int = 100_000
    zone_capacity_vcpus: int = 10_000_000
    latency: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    retry_after: float = 1.0
    seed: int | None = None
    boot_agents: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SimOptions:
        known = {f.name: f for f in fields(cls)}
        named = {name.replace("-", "_"): text for name, text in options.items()}
        unknown = set(named) - set(known)
        if unknown:
            raise ValueError(f"unknown simulated-driver options: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, text in named.items():
            if name == "boot_agents":
                values[name] = _flag(name, text)
                continue
            kind = int if name.startswith(("quota_", "zone_")) or name == "seed" else float
            values[name] = kind(text)
        return cls(**values)

    def fault_rates(self) -> FaultRates:
        return FaultRates(
            error_rate=self.error_rate,
            throttle_rate=self.throttle_rate,
            timeout_rate=self.timeout_rate,
            latency=self.latency,
            retry_after=self.retry_after,
        )


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"simulated-driver option {name.replace('_', '-')} must be true or false")
    return value == "true"


_ID_PREFIX = {
    ResourceKind.INSTANCE: "i",
    ResourceKind.NETWORK: "vpc",
    ResourceKind.SUBNET: "subnet",
    ResourceKind.FIREWALL: "sg",
    ResourceKind.VOLUME: "vol",
}

_NOT_FOUND = {
    ResourceKind.INSTANCE: "InvalidInstanceID.NotFound",
    ResourceKind.NETWORK: "InvalidVpcID.NotFound",
    ResourceKind.SUBNET: "InvalidSubnetID.NotFound",
    ResourceKind.FIREWALL: "InvalidGroup.NotFound",
    ResourceKind.VOLUME: "InvalidVolume.NotFound",
}


class SimBase:
    """State, catalogue and helpers of one simulated account in one region."""

    def __init__(
        self,
        config: AccountConfig,
        *,
        clock: Clock | None = None,
        store: SimStore | None = None,
    ) -> None:
        self.config = config
        self.options = SimOptions.parse(config.options)
        self.clock: Clock = clock or WallClock()
        self.store = store or SimStore.open(config.endpoint)
        self.scope = Scoped(config.name, config.region)
        self.faults = FaultInjector(self.options.fault_rates(), seed=self.options.seed)
        self.sizes = size_catalogue(config.region)
        self.images = image_catalogue(config.images)
        self.zones = zone_names(config.region)
        self._zone_names = {zone.name for zone in self.zones}
        self.boot_agents: BootAgents | None = None
        if self.options.boot_agents:
            self.boot_agents = BootAgents(
                account=config.name,
                region=config.region,
                state_path=self.store.path,
                instances=lambda: self.scope.rows(self.store.reader(), "instance"),
                now=self.clock.now,
            )

    def agent_pid(self, instance_id: str) -> int | None:
        """With ``boot-agents``: the pid of the agent started for the instance's current run
        (None if none; it may have died since). Other processes read ``agent.pid`` in
        ``providers.simulated.agents.agent_dir(...)``."""
        return self.boot_agents.agent_pid(instance_id) if self.boot_agents else None

    def close(self) -> None:
        """Stop what the provider runs in the background (its boot agents); idempotent."""
        if self.boot_agents is not None:
            self.boot_agents.close()

    @property
    def account(self) -> str:
        return self.config.name

    @property
    def region(self) -> str:
        return self.config.region

    # catalogue
    def list_zones(self) -> list[CloudZone]:
        with self.faults.around("list_zones"):
            return list(self.zones)

    def list_sizes(self) -> list[CloudSize]:
        with self.faults.around("list_sizes"):
            return list(self.sizes.values())

    def list_images(self) -> list[CloudImage]:
        with self.faults.around("list_images"):
            return list(self.images.values())

    # placement groups: the simulated cloud has no hardware to spread over or pack onto, so it
    # has none (a VirtualCluster's ``host`` topology is refused on it); nothing can exist, so
    # the list is empty and a delete has nothing to do.
    @property
    def supports_placement_groups(self) -> bool:
        return False

    def unsupported_placement_group(self, name: str) -> UnsupportedError:
        return UnsupportedError(
            f"account {self.account}: the simulated cloud has no placement groups "
            f"(asked for {name!r})"
        )

    def list_placement_groups(self) -> list[CloudPlacementGroup]:
        return []

    def ensure_placement_group(
        self,
        name: str,
        strategy: PlacementStrategy,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> CloudPlacementGroup:
        raise self.unsupported_placement_group(name)

    def delete_placement_group(self, name: str) -> None:
        return None

    # helpers for the operations
    def account_scope(self) -> str:
        return f"account/{self.account}/{self.region}"

    @staticmethod
    def zone_scope(region: str, zone: str) -> str:
        return f"zone/{region}/{zone}"

    def check_zone(self, zone: str) -> ZoneName:
        if zone not in self._zone_names:
            raise sim_error(
                "InvalidParameterValue", f"zone {zone!r} is not in region {self.region}"
            )
        return ZoneName(zone)

    @staticmethod
    def new_row(kind: ResourceKind, tags: ResourceTags, data: dict[str, Any]) -> Row:
        rid = f"{_ID_PREFIX[kind]}-{secrets.token_hex(9)[:17]}"
        return Row(id=rid, kind=kind.value, state="available", data=data, tags=tags.as_dict())

    @staticmethod
    def not_found(kind: ResourceKind, rid: str) -> ReconcileError:
        return sim_error(_NOT_FOUND[kind], f"the {kind.value} {rid!r} does not exist")

    def live(self, row: Row | None, kind: ResourceKind) -> Row | None:
        """``row`` if it is a live resource of ``kind`` (terminated instances are gone)."""
        if row is None or row.kind != kind.value:
            return None
        if row.effective_state(self.clock.now()) == "terminated":
            return None
        return row

    def require(self, conn: sqlite3.Connection, kind: ResourceKind, rid: str) -> Row:
        row = self.live(self.scope.get(conn, rid), kind)
        if row is None:
            raise self.not_found(kind, rid)
        return row

    def adopt(self, conn: sqlite3.Connection, kind: ResourceKind, token: str) -> Row | None:
        """The live resource created with ``token``, if any (idempotent create)."""
        for row in self.scope.by_token(conn, kind.value, token):
            if self.live(row, kind) is not None:
                return row
        return None

    def live_rows(self, kind: ResourceKind) -> list[Row]:
        now = self.clock.now()
        return [
            row
            for row in self.scope.rows(self.store.reader(), kind.value)
            if row.effective_state(now) != "terminated"
        ]

    def due(self, delay: float) -> float | None:
        """When a transition started now and lasting ``delay`` ends (None = at once)."""
        return self.clock.now() + delay if delay > 0 else None

    # tags
    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        with self.faults.around("set_tags"), self.store.transaction() as conn:
            row = self._tagged_row(conn, resource_id)
            row.tags.update(tags)
            self.scope.put(conn, row)

    def remove_tags(self, resource_id: str, keys: Iterable[str]) -> None:
        with self.faults.around("remove_tags"), self.store.transaction() as conn:
            row = self._tagged_row(conn, resource_id)
            for key in keys:
                row.tags.pop(key, None)
            self.scope.put(conn, row)

    def _tagged_row(self, conn: sqlite3.Connection, resource_id: str) -> Row:
        row = self.scope.get(conn, resource_id)
        if row is None or row.effective_state(self.clock.now()) == "terminated":
            raise sim_error("InvalidID.NotFound", f"resource {resource_id!r} does not exist")
        return row
