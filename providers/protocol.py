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
* Placement groups (the ``host`` topology of a VirtualCluster, DESIGN §10) are an optional
  capability: where ``supports_placement_groups`` is false, ``ensure_placement_group`` and a
  create naming ``placement_group`` raise ``providers.errors.UnsupportedError`` (terminal),
  ``list_placement_groups`` answers ``[]`` and ``delete_placement_group`` succeeds (nothing
  of the kind can exist). Groups are identified by name (unique per account and region), so
  ``ensure_placement_group`` is idempotent on it.
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

__all__ = ["CloudProvider"]


class CloudProvider(Protocol):
    """One account in one region of one cloud."""

    @property
    def account(self) -> str:
        """The ProviderAccount name (the ``account`` label of the metrics)."""
        ...

    @property
    def region(self) -> str:
        """The cloud region every call of this provider addresses."""
        ...

    @property
    def supports_placement_groups(self) -> bool:
        """Whether this account can make placement groups (a local answer: no API call)."""
        ...

    # catalogue
    def list_zones(self) -> list[CloudZone]:
        """The availability zones of the region, with their state."""
        ...

    def list_sizes(self) -> list[CloudSize]:
        """The instance sizes (hardware) the account may launch in the region."""
        ...

    def list_images(self) -> list[CloudImage]:
        """The account's own images and those its ``images`` mapping names."""
        ...

    # instances
    def list_instances(self) -> list[CloudInstance]:
        """Every live instance of the region (terminated ones left out), all pages."""
        ...

    def create_instance(self, request: InstanceCreate) -> CloudInstance:
        """Launch an instance, or adopt the live one carrying ``request.tags.token``.

        An unknown image or size is a ``TerminalError``; so is a refusal for capacity or
        the cloud's own quota, with the reason the placement reads to choose elsewhere.
        ``request.placement_group`` names a group ``ensure_placement_group`` made (unknown:
        ``TerminalError`` NotFound; no such capability: ``UnsupportedError``).
        """
        ...

    def start_instance(self, instance_id: InstanceId) -> None:
        """Ask a stopped instance to start; volumes stay attached. Missing: ``TerminalError``."""
        ...

    def stop_instance(self, instance_id: InstanceId) -> None:
        """Ask a running instance to stop; volumes stay attached. Missing: ``TerminalError``."""
        ...

    def delete_instance(self, instance_id: InstanceId) -> None:
        """Terminate the instance; one already gone is success."""
        ...

    # networks and subnets
    def list_networks(self) -> list[CloudNetwork]:
        """Every network (VPC) of the region, all pages."""
        ...

    def create_network(self, request: NetworkCreate) -> CloudNetwork:
        """Create a network with ``request.cidr``, or adopt the one carrying the token."""
        ...

    def delete_network(self, network_id: NetworkId) -> None:
        """Delete an empty network; one already gone is success, one in use is transient."""
        ...

    def list_subnets(self) -> list[CloudSubnet]:
        """Every subnet of the region, all pages."""
        ...

    def create_subnet(self, request: SubnetCreate) -> CloudSubnet:
        """Create a subnet in a network and zone, or adopt the one carrying the token."""
        ...

    def delete_subnet(self, subnet_id: SubnetId) -> None:
        """Delete the subnet; one already gone is success."""
        ...

    # firewalls
    def list_firewalls(self) -> list[CloudFirewall]:
        """Every security group of the region with its rules, all pages."""
        ...

    def create_firewall(self, request: FirewallCreate) -> CloudFirewall:
        """Create a security group holding exactly ``request.rules``, or adopt by token."""
        ...

    def update_firewall_rules(
        self,
        firewall_id: FirewallId,
        *,
        authorize: Iterable[FirewallRule] = (),
        revoke: Iterable[FirewallRule] = (),
    ) -> None:
        """Add the ``authorize`` rules and remove the ``revoke`` rules, as one diff."""
        ...

    def delete_firewall(self, firewall_id: FirewallId) -> None:
        """Delete the security group; one already gone is success."""
        ...

    # volumes
    def list_volumes(self) -> list[CloudVolume]:
        """Every volume of the region with its attachment, all pages."""
        ...

    def create_volume(self, request: VolumeCreate) -> CloudVolume:
        """Create a volume in a zone, or adopt the one carrying the token."""
        ...

    def attach_volume(self, volume_id: VolumeId, instance_id: InstanceId, device: str) -> None:
        """Attach the volume to the instance (same zone) as ``device``."""
        ...

    def detach_volume(self, volume_id: VolumeId) -> None:
        """Detach the volume; a detached one is success."""
        ...

    def delete_volume(self, volume_id: VolumeId) -> None:
        """Delete a detached volume; one already gone is success."""
        ...

    # placement groups (optional: see ``supports_placement_groups``)
    def list_placement_groups(self) -> list[CloudPlacementGroup]:
        """Every placement group of the region, whoever made it ([] without the capability)."""
        ...

    def ensure_placement_group(
        self,
        name: str,
        strategy: PlacementStrategy,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> CloudPlacementGroup:
        """The group ``name`` with ``strategy``: created, or found if it exists (read back).

        ``tags`` go on a group this call creates (e.g. ``skybroker/uid`` for leak sweeping).
        One of that name with another strategy is a ``TerminalError`` (InvalidRequest); one
        being deleted is a ``ResourceBusyError``. Without the capability: ``UnsupportedError``.
        """
        ...

    def delete_placement_group(self, name: str) -> None:
        """Delete the group; one already gone succeeds, one holding instances is busy."""
        ...

    # tags (orphaning strips the skybroker tags so the leak sweeper leaves a resource alone)
    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite ``tags`` on any resource of the account."""
        ...

    def remove_tags(self, resource_id: str, keys: Iterable[str]) -> None:
        """Remove the tags named by ``keys``; absent ones are ignored."""
        ...
