"""The ``CloudProvider`` protocol: the one interface every reconciler talks to, per account.

Where it sits: reconcilers call it (through ``GuardedProvider``, which adds the API budget,
circuit breaker and metrics); drivers implement it (``providers.simulated``, ``providers.ec2``).

The contract, proven for every driver by ``tests/integration/providers``:

* Every method returns skybroker dataclasses (``providers.types``) and raises only
  ``TransientError`` or ``TerminalError`` (classified by ``providers.errors``).
* ``create_*`` is idempotent on ``request.tags.token``: when a resource with that token
  exists it is adopted and returned, never duplicated — also after a crash between the cloud
  call and the caller's status write. Every created resource carries ``Name``,
  ``skybroker/uid`` and ``skybroker/token`` from the moment it exists.
* ``delete_*`` of a resource that is already gone succeeds. ``detach_volume`` of a detached
  volume succeeds. Mutations return nothing: read back through a list (or the inventory).
* ``list_*`` returns every live resource of the kind in the account's region, following the
  cloud's paging; terminated instances are left out.
* A firewall holds exactly the rules it was created with (the cloud's default rules are
  revoked unless requested); ``update_firewall_rules`` authorizes and revokes a diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from providers.rules import FirewallRule
from providers.types import (
    CloudFirewall,
    CloudImage,
    CloudInstance,
    CloudNetwork,
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
    SubnetCreate,
    SubnetId,
    VolumeCreate,
    VolumeId,
)

__all__ = ["CloudProvider"]


class CloudProvider(Protocol):
    """One account in one region of one cloud."""

    @property
    def account(self) -> str:
        """The ProviderAccount name (the ``account`` label of the metrics)."""
        ...

    @property
    def region(self) -> str: ...

    # catalogue
    def list_zones(self) -> list[CloudZone]: ...

    def list_sizes(self) -> list[CloudSize]: ...

    def list_images(self) -> list[CloudImage]:
        """The account's own images and those its ``images`` mapping names."""
        ...

    # instances
    def list_instances(self) -> list[CloudInstance]: ...

    def create_instance(self, request: InstanceCreate) -> CloudInstance: ...

    def start_instance(self, instance_id: InstanceId) -> None: ...

    def stop_instance(self, instance_id: InstanceId) -> None: ...

    def delete_instance(self, instance_id: InstanceId) -> None: ...

    # networks and subnets
    def list_networks(self) -> list[CloudNetwork]: ...

    def create_network(self, request: NetworkCreate) -> CloudNetwork: ...

    def delete_network(self, network_id: NetworkId) -> None: ...

    def list_subnets(self) -> list[CloudSubnet]: ...

    def create_subnet(self, request: SubnetCreate) -> CloudSubnet: ...

    def delete_subnet(self, subnet_id: SubnetId) -> None: ...

    # firewalls
    def list_firewalls(self) -> list[CloudFirewall]: ...

    def create_firewall(self, request: FirewallCreate) -> CloudFirewall: ...

    def update_firewall_rules(
        self,
        firewall_id: FirewallId,
        *,
        authorize: Iterable[FirewallRule] = (),
        revoke: Iterable[FirewallRule] = (),
    ) -> None: ...

    def delete_firewall(self, firewall_id: FirewallId) -> None: ...

    # volumes
    def list_volumes(self) -> list[CloudVolume]: ...

    def create_volume(self, request: VolumeCreate) -> CloudVolume: ...

    def attach_volume(self, volume_id: VolumeId, instance_id: InstanceId, device: str) -> None: ...

    def detach_volume(self, volume_id: VolumeId) -> None: ...

    def delete_volume(self, volume_id: VolumeId) -> None: ...

    # tags (orphaning strips the skybroker tags so the leak sweeper leaves a resource alone)
    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None: ...

    def remove_tags(self, resource_id: str, keys: Iterable[str]) -> None: ...
