"""The network actions of the EC2 front door: VPCs, subnets, security groups (DESIGN §12).

Where it sits: ``actions`` calls :func:`register`, which adds the handlers of ``vpcs`` (VPCs
and subnets) and ``securitygroups`` (security groups and their rules, read and written by
``permissions``). Every write goes through ``context.backend`` as the key's user: RBAC,
validation, admission and quota as for REST. The mapping onto skybroker's kinds:

* **Subnet** = a Subnet: ``VpcId`` → ``spec.network`` {name, cidr} of that VPC, ``CidrBlock``
  → ``spec.cidr`` (IPv4, inside the VPC's, /28 at most — ``InvalidSubnet.Range`` —, not
  overlapping another subnet of the VPC — ``InvalidSubnet.Conflict``), ``AvailabilityZone`` →
  ``spec.zone`` (one of the region's zones when the pool knows them), ``spec.pool`` = the
  request's region. ``state`` is ``pending`` until the Subnet is ``Ready`` (``available``;
  ``failed`` when it failed). Ids ``subnet-…`` from the uid.
* **Security group** = a Firewall (``securitygroups`` says how), ids ``sg-…`` from the uid.
* **VPC** = the network name Subnets share (``spec.network``), which is no kind: its id
  ``vpc-…`` is derived from the uid of its record (below; ``resources.vpc_id``), so a VPC
  made again under a deleted one's name is a new id; its ``Name`` tag the network name (or
  the text it was created with, when that is no name or another VPC's: ``…/vpc-name``).

How a VPC is persisted — the choice, and why. CreateVpc must be remembered before any subnet
names the network, or DescribeVpcs could not list it and CreateSubnet could not learn its CIDR.
A VPC is recorded by **its default security group**: CreateVpc writes a Firewall
``default.{network}`` whose annotations hold the network name (``ec2.skybroker.io/vpc``), the
CIDR (``…/vpc-cidr``) and the VPC's other tags (``…/vpc-tags``, JSON). This is what EC2 itself
does — every VPC is created with a security group named ``default`` that cannot be deleted
while the VPC exists and goes with it — so the record is an object EC2 clients expect to see
(``DescribeSecurityGroups`` lists it as ``groupName`` ``default`` with the VPC's ``vpcId``),
lives in the tenant's namespace as a kind tenants already write (RBAC and quota unchanged),
has no cloud side until an instance uses it (a Firewall is realised only where its users
live), and is removed by DeleteVpc (DeleteSecurityGroup answers ``CannotDelete``).
The alternatives were worse: an id encoding the CIDR cannot list a VPC that has no subnet; a
placeholder Subnet would create a cloud network; a Secret or a ConfigMap-like object would be
a lie about what it holds; a new ``Network`` kind would be a second source of truth beside
``Subnet.spec.network``, which the Subnet and Firewall reconcilers already group by.

Its honest limits: EC2's default group allows all traffic from its own members, which CIDR
rules cannot say, so ours allows nothing in (narrower, never wider) and all out, as EC2 does;
deleting the ``default.{network}`` Firewall through REST forgets an empty VPC (one with subnets
stays: their ``spec.network`` names it, and its id becomes that of a VPC with no record, from
the namespace and network name); a VPC is the namespace's, not a region's (its subnets
are regional); a VPC's ``state`` is always ``available`` (its cloud network is created with its
first subnet, by the Subnet reconciler); network names are unique per namespace, so a
second VPC with the ``Name`` of an existing one gets a generated network name and keeps the
tag in its record (``…/vpc-name``), as does a ``Name`` that is no name: EC2 allows both.
A VPC's tags live in its record, not in labels: whatever reads or writes tags by resource id
(DescribeTags, CreateTags) finds a VPC's through ``vpcs.vpcs``.

- ``CreateVpc`` (``CidrBlock``: IPv4, /16 to /28 else ``InvalidVpc.Range``;
  ``TagSpecification`` of type ``vpc``, ``Name`` = network name, generated ``vpc-…`` when
  absent, no name or taken); ``DescribeVpcs`` (``VpcId.N`` — unknown:
  ``InvalidVpcID.NotFound`` —, filters ``vpc-id``, ``cidr``,
  ``cidr-block-association.cidr-block``, ``state``, ``is-default``, ``tag:<key>``,
  ``tag-key``, ``tag-value``; MaxResults/NextToken); ``DeleteVpc`` (``DependencyViolation``
  naming the subnets, security groups and instances using it).
- ``CreateSubnet``, ``DescribeSubnets`` (``SubnetId.N``, filters ``subnet-id``, ``vpc-id``,
  ``availability-zone``, ``cidr-block``/``cidr``, ``state``, ``default-for-az``, tags;
  MaxResults/NextToken), ``DeleteSubnet`` — ``DependencyViolation`` while an instance names the
  subnet in ``subnetRef``. REST accepts that delete and leaves the Subnet ``Deleting`` until the
  instances are gone (the Subnet reconciler's finalizer); EC2 refuses it, so this door does.
  Only instances count: a VirtualCluster whose template names the subnet does not hold it.
- ``CreateSecurityGroup``, ``DescribeSecurityGroups``, ``DeleteSecurityGroup``,
  ``Authorize``/``RevokeSecurityGroupIngress``/``Egress`` (``securitygroups``).

Every action honours ``DryRun`` (the same checks, the write as a server-side dry run, then
``DryRunOperation``), and answers a region the namespace may not use with ``AuthFailure``.
"""

from __future__ import annotations

from apiserver.ec2 import securitygroups, vpcs
from apiserver.ec2.registry import ActionRegistry

__all__ = ["register"]


def register(registry: ActionRegistry) -> None:
    vpcs.register(registry)
    securitygroups.register(registry)
