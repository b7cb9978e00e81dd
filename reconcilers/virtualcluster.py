"""The VirtualCluster reconciler: a group of Instances placed together under rules (DESIGN §10).

Where it sits: registered by :func:`register` on the VirtualCluster informer, woken also by
every change of an Instance a VirtualCluster controls (its controller ownerReference). It owns
the group's shape and placement; each child is then an ordinary Instance that the Instance
reconciler creates, watches and repairs in the place written here (it never places a child
itself: ``WaitingForGroupPlacement``). One pass:

1. deleted: without host rules, nothing here — the garbage collector deletes the children after
   their owner, each taking its cloud instance with it (the Instance finalizer). With them, the
   VirtualCluster carries ``reconcilers.placementgroups.FINALIZER``: this pass deletes the
   children itself, waits until their Instances are gone, deletes the placement groups, then
   drops the finalizer;
2. the children: Instances controlled by this VirtualCluster (uid), by member and ordinal; a
   name taken by an object it does not control is reported (``NameTaken``), never adopted;
3. scale down: a child of a member no longer in the spec, or of an ordinal at or above its
   member's ``replicas``, is deleted — lowering ``replicas`` removes the highest ordinals;
4. place: the missing ordinals and the children left unplaced (a capacity failure cleared a
   placement: the Instance reconciler recorded the failure against the member) are placed in
   one go by the group scheduler (:meth:`reconcilers.placement.Scheduler.schedule_group`), with
   every placed child fixed where it is. If a Required rule cannot hold, or a replica fits
   nowhere, nothing is created: ``PlacementSatisfied=False`` with the reason per rule and
   ``status.rejections`` per pool member, and the pass looks again every
   :data:`INFEASIBLE_RETRY_SECONDS`;
5. write: the placement groups of the ``host`` rules are made first, on each account their
   replicas are placed on (``reconcilers.placementgroups``; one that cannot be made stops the
   pass before any child is written: ``Ready=False`` with the reason, retried); then the
   missing children are created with ``status.placement`` already bound (named
   ``{vc}-{member}-{ordinal}``, labelled, owned), the unplaced ones get their new placement;
   each replica's ``volumes`` become Volumes ``{vc}-{member}-{ordinal}-{volume}`` attached to
   its Instance (the Volume reconciler places them where the Instance is), deleted with it;
   a child of a host rule's member names its group (``placementGroup``); groups no child
   uses any more are deleted;
6. status: per member the replicas, how many are Ready and where each is; per rule
   ``Satisfied``/``Broken``/``Infeasible`` (the group scheduler judging the placements as they
   are); ``PlacementSatisfied`` and ``Ready`` (every replica Ready and every Required rule
   kept).

A replica whose cloud instance is lost keeps its placement, so the Instance reconciler
recreates it where it was — a place that keeps the rules by construction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import suppress
from typing import TypeVar

import structlog

from api_types import Instance, InstancePhase, Subnet, VirtualCluster, Volume, VolumeSpec
from api_types.clusters import (
    MEMBER_LABEL,
    VIRTUALCLUSTER_LABEL,
    PlacementRule,
    ReplicaPlacement,
    RuleState,
    RuleStatus,
    VirtualClusterCondition,
    VirtualClusterMemberStatus,
    instance_name,
    placing_group,
    volume_name,
)
from api_types.common import PlacementRejection
from api_types.compute import InstancePlacement
from api_types.meta import ConditionStatus, ObjectMeta, OwnerReference, Resource
from controller.errors import AlreadyExistsError, NotFoundError
from controller.handler import EnqueueMapped
from controller.passes import Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers._common import namespaced_key, shared_index
from reconcilers.deps import Deps
from reconcilers.hardware import UnknownProfileError
from reconcilers.placement import (
    GroupDecision,
    Mode,
    Rule,
    Unschedulable,
)
from reconcilers.placementgroups import (
    FINALIZER,
    GroupError,
    GroupRef,
    PlacementGroups,
    controlled_instances,
    in_use,
)

__all__ = ["INFEASIBLE_RETRY_SECONDS", "VirtualClusterReconciler", "register"]

log = structlog.get_logger(__name__)

V = TypeVar("V", Instance, Volume)

#: Index of Instances and Volumes by the VirtualCluster that controls them (``namespace/name``).
BY_GROUP = "virtualcluster"
#: A group that cannot be placed is looked at again this often (pools and accounts change).
INFEASIBLE_RETRY_SECONDS = 15.0
#: Waiting for a template's subnet to be placed.
WAIT_SECONDS = 5.0

READY = VirtualClusterCondition.READY.value
PLACEMENT_SATISFIED = VirtualClusterCondition.PLACEMENT_SATISFIED.value


def _group_index(child: Instance | Volume) -> list[str]:
    group = placing_group(child)
    return [] if group is None else [namespaced_key(child.metadata.namespace, group)]


def group_rule(rule: PlacementRule) -> Rule:
    """The group scheduler's form of a spec rule."""
    return Rule(rule.type, tuple(rule.members), rule.topology, rule.mode)


def _is_ready(instance: Instance) -> bool:
    ready = instance.status.condition("Ready")
    return ready is not None and ready.status == ConditionStatus.TRUE


class _Children:
    """The Instances a VirtualCluster controls, by (member, ordinal); and names it cannot use."""

    def __init__(self, vc: VirtualCluster, instances: Sequence[Instance]) -> None:
        self.by_slot: dict[tuple[str, int], Instance] = {}
        self.strays: list[Instance] = []  # controlled by it, but no slot (member gone, bad name)
        uid = vc.metadata.uid
        for instance in instances:
            owners = instance.metadata.owner_references
            owned = any(owner.controller and owner.uid == uid for owner in owners)
            if not owned:
                continue
            member = instance.metadata.labels.get(MEMBER_LABEL, "")
            prefix = instance_name(vc.metadata.name, member, 0)[:-1]
            suffix = instance.metadata.name.removeprefix(prefix)
            if member and suffix.isdigit() and instance.metadata.name == prefix + suffix:
                self.by_slot[(member, int(suffix))] = instance
            else:
                self.strays.append(instance)


class VirtualClusterReconciler:
    """Keeps each VirtualCluster's children in shape and placed under its rules (see the
    module for one pass)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._groups = deps.manager.informer(VirtualCluster)
        self._instances = deps.manager.informer(Instance)
        self._volumes = deps.manager.informer(Volume)
        self._subnets = deps.manager.informer(Subnet)
        self._host = PlacementGroups(deps)
        shared_index(self._instances, BY_GROUP, _group_index)
        shared_index(self._volumes, BY_GROUP, _group_index)

    def group_of(self, obj: Resource) -> list[Request]:
        """The VirtualCluster controlling an Instance or Volume, if any."""
        group = placing_group(obj)
        if group is None:
            return []
        return [Request.of(VirtualCluster.PLURAL, obj.metadata.namespace, group)]

    def reconcile(self, request: Request) -> Result:
        vc = self._groups.get(request.key)
        if vc is None:
            return Result()
        if vc.metadata.deletion_timestamp is not None:
            if FINALIZER not in vc.metadata.finalizers:
                return Result()  # the garbage collector deletes the children
            with Pass(self._deps.manager, vc) as pass_:
                return self._finalize(pass_)
        with Pass(self._deps.manager, vc) as pass_:
            log.debug("reconciling virtualcluster", key=str(request.key))
            if self._host.wanted(vc):
                pass_.add_finalizer(FINALIZER)  # before any placement group exists
            else:
                pass_.remove_finalizer(FINALIZER)
            result = self._converge(pass_)
            pass_.observe_generation()
            return result

    # --- one pass ---------------------------------------------------------------------------

    def _converge(self, pass_: Pass[VirtualCluster]) -> Result:
        vc = pass_.obj
        children = _Children(vc, self._instances.by_index(BY_GROUP, _key(vc)))
        self._scale_down(vc, children)
        wanted = [
            (member.name, ordinal)
            for member in vc.spec.members
            for ordinal in range(member.replicas)
        ]
        taken = self._names_taken(vc, children, wanted)
        if taken:
            message = f"names taken by objects it does not control: {', '.join(taken)}"
            pass_.condition(PLACEMENT_SATISFIED, False, "NameTaken", message)
            pass_.condition(READY, False, "NameTaken", message)
            self._report(pass_, children, None)
            return Result(requeue_after=INFEASIBLE_RETRY_SECONDS)
        subnets = self._subnets_not_placed(vc)
        if subnets:
            message = f"waiting for subnet {', '.join(subnets)} to be placed"
            pass_.condition(READY, False, "WaitingForSubnet", message)
            self._report(pass_, children, None)
            return Result(requeue_after=WAIT_SECONDS)
        to_place = [
            (member, ordinal, children.by_slot.get((member, ordinal)))
            for member, ordinal in wanted
            if (child := children.by_slot.get((member, ordinal))) is None
            or (child.status.placement is None and child.metadata.deletion_timestamp is None)
        ]
        try:
            decision = self._schedule(vc, to_place, children)
        except (Unschedulable, UnknownProfileError) as exc:
            pass_.condition(PLACEMENT_SATISFIED, False, "Unschedulable", str(exc))
            pass_.condition(READY, False, "Unschedulable", str(exc))
            self._report(pass_, children, None)
            return Result(requeue_after=INFEASIBLE_RETRY_SECONDS)
        if not decision.feasible:
            message = f"nothing placed: {decision.summary()}"
            if pass_.condition(PLACEMENT_SATISFIED, False, "Infeasible", message):
                pass_.event("Warning", "Infeasible", message)
            pass_.condition(READY, False, "Infeasible", message)
            self._report(pass_, children, decision)
            return Result(requeue_after=INFEASIBLE_RETRY_SECONDS)
        groups: dict[tuple[str, int], GroupRef] = {}
        if to_place:
            groups = {
                (a.replica.member, a.replica.ordinal): group
                for a in decision.assignments
                if (group := self._host.group_for(vc, a.replica.member, a.option.account))
            }
            try:
                self._host.ensure(pass_, groups.values())
            except GroupError as exc:
                message = f"nothing placed: {exc}"
                if pass_.condition(READY, False, exc.reason, message):
                    pass_.event("Warning", exc.reason, message)
                pass_.condition(PLACEMENT_SATISFIED, False, exc.reason, message)
                self._report(pass_, children, None)
                return Result(requeue_after=exc.delay)
            self._write(vc, decision, children, groups)
            placed = ", ".join(
                f"{a.replica.name} on {a.option.key}/{a.option.zone or a.option.region}"
                for a in decision.assignments
            )
            pass_.event("Normal", "Placed", f"placed {placed}")
        self._ensure_volumes(vc, children)
        result = self._report(pass_, children, decision)
        cached = self._controlled(vc, self._instances.by_index(BY_GROUP, _key(vc)))
        used = in_use(cached) | {group.where for group in groups.values()}  # written just now
        delay = self._host.release(pass_, used)
        return result if delay is None else Result(requeue_after=delay)

    def _finalize(self, pass_: Pass[VirtualCluster]) -> Result:
        """Deleted, with placement groups to delete: the children first (read from the store:
        none may be missed), then the groups once no Instance is left, then the finalizer."""
        vc = pass_.obj
        instances = controlled_instances(self._deps, vc)
        volumes = self._controlled(vc, self._volumes.by_index(BY_GROUP, _key(vc)))
        for obj in [*instances, *volumes]:
            if obj.metadata.deletion_timestamp is None:
                with suppress(NotFoundError):
                    self._deps.store.delete(
                        type(obj), obj.metadata.name, obj.metadata.namespace, actor=_actor(vc)
                    )
        if instances:
            message = f"waiting for {len(instances)} instances to go before the placement groups"
            pass_.condition(READY, False, "Deleting", message)
            return Result(requeue_after=WAIT_SECONDS)
        delay = self._host.release(pass_, set())
        if delay is not None:
            left = ", ".join(str(GroupRef.of(g)) for g in pass_.obj.status.placement_groups)
            pass_.condition(READY, False, "Deleting", f"deleting placement groups: {left}")
            return Result(requeue_after=delay)
        pass_.remove_finalizer(FINALIZER)
        return Result()

    def _scale_down(self, vc: VirtualCluster, children: _Children) -> None:
        """Delete the children no slot of the spec wants (highest ordinals, members gone), and
        the volumes no wanted replica has."""
        replicas = {member.name: member.replicas for member in vc.spec.members}
        extra = [
            child
            for (member, ordinal), child in children.by_slot.items()
            if ordinal >= replicas.get(member, 0)
        ] + children.strays
        wanted_volumes = set(_volume_names(vc))
        extra_volumes = [
            volume
            for volume in self._controlled(vc, self._volumes.by_index(BY_GROUP, _key(vc)))
            if volume.metadata.name not in wanted_volumes
        ]
        for obj in [*extra, *extra_volumes]:
            if obj.metadata.deletion_timestamp is not None:
                continue
            with suppress(NotFoundError):
                self._deps.store.delete(
                    type(obj), obj.metadata.name, obj.metadata.namespace, actor=_actor(vc)
                )
        for child in extra:
            children.by_slot = {s: c for s, c in children.by_slot.items() if c is not child}

    @staticmethod
    def _controlled(vc: VirtualCluster, objects: Sequence[V]) -> list[V]:
        uid = vc.metadata.uid
        return [
            obj
            for obj in objects
            if any(o.controller and o.uid == uid for o in obj.metadata.owner_references)
        ]

    def _ensure_volumes(self, vc: VirtualCluster, children: _Children) -> None:
        """Each replica's volumes (``members[].volumes``), attached to its Instance: created
        once the Instance exists; placed where it is by the Volume reconciler."""
        for (member_name, ordinal), child in sorted(children.by_slot.items()):
            member = vc.spec.member(member_name)
            if member is None or child.metadata.deletion_timestamp is not None:
                continue
            for wanted in member.volumes:
                name = volume_name(vc.metadata.name, member_name, ordinal, wanted.name)
                key = ObjectKey(Volume.PLURAL, vc.metadata.namespace, name)
                if self._volumes.peek(key) is not None:
                    continue
                volume = Volume(
                    metadata=self._child_metadata(vc, name, member_name),
                    spec=VolumeSpec.model_validate(
                        {
                            "pool": vc.spec.pool,
                            "sizeGiB": wanted.size_gib,
                            "type": wanted.type,
                            "attachTo": {"instance": child.metadata.name, "device": wanted.device},
                        }
                    ),
                )
                with suppress(AlreadyExistsError):  # a slower cache: the next pass sees it
                    self._deps.store.create(volume, actor=_actor(vc))

    def _names_taken(
        self, vc: VirtualCluster, children: _Children, wanted: Sequence[tuple[str, int]]
    ) -> list[str]:
        """Wanted child names held by Instances this VirtualCluster does not control."""
        taken = []
        for member, ordinal in wanted:
            if (member, ordinal) in children.by_slot:
                continue
            name = instance_name(vc.metadata.name, member, ordinal)
            other = self._instances.peek(ObjectKey(Instance.PLURAL, vc.metadata.namespace, name))
            if other is not None:
                taken.append(name)
        return taken

    def _subnets_not_placed(self, vc: VirtualCluster) -> list[str]:
        refs = {m.template.subnet_ref for m in vc.spec.members if m.template.subnet_ref}
        waiting = []
        for ref in sorted(refs):
            subnet = self._subnets.peek(ObjectKey(Subnet.PLURAL, vc.metadata.namespace, ref))
            if subnet is None or subnet.status.placement is None:
                waiting.append(ref)
        return waiting

    def _schedule(
        self,
        vc: VirtualCluster,
        to_place: Sequence[tuple[str, int, Instance | None]],
        children: _Children,
    ) -> GroupDecision:
        """The group scheduler over ``to_place`` with every placed child fixed (with nothing
        to place, it judges the rules on the placements as they are)."""
        replicas = [
            (member, ordinal, child or self._child(vc, member, ordinal, None))
            for member, ordinal, child in to_place
        ]
        placing = {(member, ordinal) for member, ordinal, _ in to_place}
        fixed = [
            (member, ordinal, child.status.placement)
            for (member, ordinal), child in sorted(children.by_slot.items())
            if (member, ordinal) not in placing and child.status.placement is not None
        ]
        return self._deps.scheduler.schedule_group(
            vc.spec.pool,
            vc.metadata.namespace or "",
            replicas,
            fixed,
            [group_rule(rule) for rule in vc.spec.placement],
        )

    def _child(
        self, vc: VirtualCluster, member: str, ordinal: int, placement: InstancePlacement | None
    ) -> Instance:
        """The Instance of a replica, as created (its uid a stand-in until the store gives
        one: the scheduler seeds its draws with it)."""
        template = vc.spec.member(member)
        assert template is not None
        metadata = self._child_metadata(
            vc, instance_name(vc.metadata.name, member, ordinal), member
        )
        metadata.uid = f"{vc.metadata.uid}/{member}/{ordinal}"
        instance = Instance(metadata=metadata, spec=template.template.instance_spec(vc.spec.pool))
        if placement is not None:
            instance.status.placement = placement
            instance.status.phase = InstancePhase.SCHEDULED
        return instance

    @staticmethod
    def _child_metadata(vc: VirtualCluster, name: str, member: str) -> ObjectMeta:
        """Named, labelled and controlled by ``vc`` (garbage collected with it)."""
        return ObjectMeta(
            name=name,
            namespace=vc.metadata.namespace,
            labels={VIRTUALCLUSTER_LABEL: vc.metadata.name, MEMBER_LABEL: member},
            owner_references=[
                OwnerReference(
                    kind=VirtualCluster.KIND,
                    name=vc.metadata.name,
                    uid=str(vc.metadata.uid),
                    controller=True,
                    block_owner_deletion=True,
                )
            ],
        )

    def _write(
        self,
        vc: VirtualCluster,
        decision: GroupDecision,
        children: _Children,
        groups: dict[tuple[str, int], GroupRef],
    ) -> None:
        """Create the missing children placed (in their placement group, made already), bind
        the unplaced ones; remember them as load."""
        written: list[tuple[Instance, str]] = []
        for assignment in decision.assignments:
            replica, option = assignment.replica, assignment.option
            assert option.size is not None
            placement = InstancePlacement(
                account=option.account,
                region=option.region,
                zone=option.zone,
                size=option.size.id,
                member=option.candidate.member,
                placement_group=group.name
                if (group := groups.get((replica.member, replica.ordinal)))
                else None,
            )
            existing = children.by_slot.get((replica.member, replica.ordinal))
            if existing is None:
                child = self._child(vc, replica.member, replica.ordinal, placement)
                child.metadata.uid = None
                try:
                    created = self._deps.store.create(child, actor=_actor(vc))
                except AlreadyExistsError:
                    continue  # created meanwhile (a slower cache): the next pass sees it
            else:
                existing.status.placement = placement
                existing.status.phase = InstancePhase.SCHEDULED
                created = self._deps.store.update_status(existing, actor=_actor(vc))
            children.by_slot[(replica.member, replica.ordinal)] = created
            written.append((created, option.key))
        self._deps.scheduler.remember_group(vc.spec.pool, written)

    def _report(
        self, pass_: Pass[VirtualCluster], children: _Children, decision: GroupDecision | None
    ) -> Result:
        """Status per member and rule, PlacementSatisfied and Ready."""
        vc = pass_.obj
        status = vc.status
        members: dict[str, VirtualClusterMemberStatus] = {}
        placements: dict[str, list[ReplicaPlacement]] = defaultdict(list)
        ready: dict[str, int] = defaultdict(int)
        for (name, _), child in sorted(children.by_slot.items()):
            ready[name] += _is_ready(child)
            where = child.status.placement
            if where is not None:
                placements[name].append(
                    ReplicaPlacement(
                        instance=child.metadata.name,
                        account=where.account,
                        region=where.region,
                        zone=where.zone,
                        member=where.member,
                    )
                )
        for member in vc.spec.members:
            members[member.name] = VirtualClusterMemberStatus(
                replicas=sum(1 for (name, _) in children.by_slot if name == member.name),
                ready=ready[member.name],
                placements=placements[member.name],
            )
        status.members = members
        if decision is None:
            return Result()
        status.rules = [
            _rule_status(index, rule, decision) for index, rule in enumerate(vc.spec.placement)
        ]
        status.rejections = [
            PlacementRejection(member=report.key, account=report.account, reason=reason)
            for report in decision.members
            for reason in report.reasons
        ][:100]
        if decision.feasible:
            pass_.condition(PLACEMENT_SATISFIED, True, "Placed", _kept(decision))
        wanted = sum(member.replicas for member in vc.spec.members)
        ready_count = sum(ready.values())
        if decision.feasible and ready_count == wanted and len(children.by_slot) == wanted:
            pass_.condition(READY, True, "Ready", f"{ready_count}/{wanted} replicas Ready")
        elif decision.feasible:
            pass_.condition(READY, False, "Progressing", f"{ready_count}/{wanted} replicas Ready")
        return Result()


def _rule_status(index: int, rule: PlacementRule, decision: GroupDecision) -> RuleStatus:
    outcome = decision.rules[index] if index < len(decision.rules) else None
    if outcome is not None and outcome.kept:
        state = RuleState.SATISFIED
    elif not decision.feasible and rule.mode.value == Mode.REQUIRED.value:
        state = RuleState.INFEASIBLE
    else:
        state = RuleState.BROKEN
    message = outcome.message if outcome is not None else decision.reason
    return RuleStatus(index=index, rule=rule.text, state=state, message=message)


def _kept(decision: GroupDecision) -> str:
    broken = [o.message for o in decision.rules if not o.kept]
    if broken:
        return "Required rules kept; Preferred broken: " + "; ".join(broken)
    return "every rule kept" if decision.rules else "no rules"


def _key(vc: VirtualCluster) -> str:
    """The ``BY_GROUP`` index value of its children."""
    return namespaced_key(vc.metadata.namespace, vc.metadata.name)


def _volume_names(vc: VirtualCluster) -> list[str]:
    return [
        volume_name(vc.metadata.name, member.name, ordinal, volume.name)
        for member in vc.spec.members
        for ordinal in range(member.replicas)
        for volume in member.volumes
    ]


def _actor(vc: VirtualCluster) -> str:
    return f"virtualcluster/{vc.metadata.namespace}/{vc.metadata.name}"


def register(deps: Deps) -> None:
    reconciler = VirtualClusterReconciler(deps)
    deps.manager.add_controller(
        VirtualCluster,
        reconciler,
        watches=[
            (Instance, EnqueueMapped(reconciler.group_of)),
            (Volume, EnqueueMapped(reconciler.group_of)),
        ],
    )
