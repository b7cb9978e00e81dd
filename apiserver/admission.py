"""Admission: what the API server does to a valid object before it is written.

Where it sits: after authentication, authorization and schema validation (the pydantic models),
before the quota reservation and the store write. In order:

0. the namespace — a namespaced object is created only in a Namespace that exists (404
   ``namespaces "x" not found``) and is not being deleted (403, Kubernetes' words), as
   Kubernetes' NamespaceLifecycle plugin does: a tenant's objects always live in a tenant that
   can be listed, and deleted as a unit. Updates and deletes are not checked, so an object left
   in a missing namespace (written before this check, or straight into etcd) can be removed.
   The namespace is read from the watched cache, as Kubernetes does: a create in the instant
   after a deletion began may pass, and is then deleted with the rest of the namespace;
1. defaulting — a create starts from a fresh status (a client cannot forge one) whose phase is
   ``Pending`` wherever the kind's phase allows it, so every create answers at once with
   ``Pending`` (DESIGN §3); a new Quota starts with the namespace's current usage;
   a Secret's ``stringData`` is folded into ``data`` (base64), as Kubernetes does, so the
   stored object has one form;
2. references — the pool, account, hardware profile, subnet, firewalls and BootConfig
   (``bootConfigRef``) an object names must exist, and the pool's ``allowedNamespaces`` must
   admit the object's namespace; an Instance's ``image`` must be mapped (``spec.images``) by
   its account, or by at least one member account of its pool — the placement filter's rule,
   so an image no member can boot is refused now rather than left Unschedulable. A
   VirtualCluster's pool, and each member template's profile, subnet, firewalls, BootConfig
   and image, are checked the same way, at their own paths
   (``spec.members[1].template.image``); a rule of ``host`` topology is refused unless every
   account of the pool can express it (driver ``ec2``: EC2 placement groups, DESIGN §10).
   Each failure is a cause naming the field (422). On an update only references that changed
   are checked, so an object whose pool was since deleted can still be relabelled or have its
   finalizers removed. Namespaces, pools, accounts and profiles are looked up in the API
   server's caches (``lookups``);
3. who a GitSource applies as — ``spec.serviceAccount`` names the user the GitSource
   reconciler writes as (DESIGN §9), so whoever sets it must be allowed to act as that user
   (``Authorizer.may_act_as``: be that user, be in ``system:masters``, or hold ``impersonate``
   on ``users/{name}`` in the GitSource's namespace or cluster-wide); otherwise 403 naming
   ``spec.serviceAccount``, the writer and the user. Checked on a create, and on every write
   (dry-runs included) that changes the spec while ``serviceAccount`` is set — against its new
   value, so a tenant with ``edit`` cannot change the URL of a GitSource an admin pointed at a
   powerful user. Metadata and ``/status`` writes are not checked; an absent
   ``serviceAccount`` (``system:gitsource:{ns}:{name}``, no rights until bound) needs nothing;
4. RBAC escalation prevention — a Role, ClusterRole or binding may grant only what its writer
   holds, unless the writer has ``escalate`` / ``bind`` (``escalation``, Kubernetes' rule). It
   is what makes step 3 hold: without it a namespace ``admin`` could grant herself
   ``impersonate`` through a Role of her namespace;
5. who an AccessKey acts as — the same rule as step 3 for ``spec.user`` in ``spec.namespace``,
   and for each of ``spec.groups`` the writer is not in itself, verb ``impersonate`` on
   resource ``groups`` named so (Kubernetes' rule shape): whoever was granted ``create`` on
   ``accesskeys`` still cannot mint a key acting as ``system:masters``. Checked on a create
   and whenever user, groups or namespace change (403 naming the field). Its
   ``spec.namespace`` must exist (a reference, step 2), and its ``spec.accessKeyId`` must not
   be another AccessKey's (422 on ``spec.accessKeyId``; AccessKeys are few, so they are listed
   from etcd).

Steps 0, 3, 4 and 5's 403 are answered before step 2's causes, as a 403 is before a 422.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import pydantic

from api_types.accesskeys import AccessKey
from api_types.accounts import HardwareProfile, ProviderAccount
from api_types.bootconfigs import BootConfig
from api_types.clusters import HOST_TOPOLOGY_DRIVERS, Topology, VirtualCluster
from api_types.common import TargetSpec
from api_types.compute import Instance, InstanceTemplate
from api_types.gitops import GitSource
from api_types.meta import Resource
from api_types.network import Firewall, Subnet
from api_types.pools import Pool
from api_types.tenancy import Namespace, Quota, Secret
from apiserver.auth import User
from apiserver.escalation import check_escalation
from apiserver.lookups import Lookups
from apiserver.quota import initial_usage
from apiserver.rbac import IMPERSONATE, Attributes, Authorizer
from apiserver.status import ApiError
from controller.errors import FieldCause, InvalidObjectError, NotFoundError

__all__ = ["admit", "default_for_create"]


@cache
def _initial_status(
    model: type[Resource],
) -> tuple[type[pydantic.BaseModel], dict[str, str]] | None:
    """The status type of ``model`` and what a new one holds: phase Pending if allowed."""
    field = model.model_fields.get("status")
    status_type = field.annotation if field is not None else None
    if not isinstance(status_type, type) or not issubclass(status_type, pydantic.BaseModel):
        return None
    try:
        status_type.model_validate({"phase": "Pending"})
    except pydantic.ValidationError:
        return status_type, {}
    return status_type, {"phase": "Pending"}


def default_for_create(lookups: Lookups, obj: Resource) -> Resource:
    initial = _initial_status(type(obj))
    if initial is not None:
        status_type, fields = initial
        obj.status = status_type.model_validate(fields)  # type: ignore[attr-defined]
    if isinstance(obj, Quota) and obj.metadata.namespace:
        obj.status.used = initial_usage(lookups, obj.metadata.namespace)
    return obj


class _Reference(NamedTuple):
    field: str
    model: type[Resource]
    name: str
    namespace: str | None


def _template_references(
    prefix: str, template: InstanceTemplate, namespace: str | None
) -> list[_Reference]:
    """What an Instance spec (or a VirtualCluster member's template) names, at ``prefix``."""
    found: list[_Reference] = []
    if template.hardware.profile:
        found.append(
            _Reference(
                f"{prefix}.hardware.profile", HardwareProfile, template.hardware.profile, None
            )
        )
    if template.subnet_ref:
        found.append(_Reference(f"{prefix}.subnetRef", Subnet, template.subnet_ref, namespace))
    found.extend(
        _Reference(f"{prefix}.firewallRefs[{i}]", Firewall, name, namespace)
        for i, name in enumerate(template.firewall_refs)
    )
    if template.boot_config_ref:
        found.append(
            _Reference(f"{prefix}.bootConfigRef", BootConfig, template.boot_config_ref, namespace)
        )
    return found


def _references(obj: Resource) -> list[_Reference]:
    spec = getattr(obj, "spec", None)
    namespace = obj.metadata.namespace
    found: list[_Reference] = []
    if isinstance(spec, TargetSpec):
        if spec.pool:
            found.append(_Reference("spec.pool", Pool, spec.pool, None))
        if spec.account:
            found.append(_Reference("spec.account", ProviderAccount, spec.account, None))
    if isinstance(obj, Instance):
        found.extend(_template_references("spec", obj.spec, namespace))
    if isinstance(obj, AccessKey):
        found.append(_Reference("spec.namespace", Namespace, obj.spec.namespace, None))
    if isinstance(obj, VirtualCluster):
        found.append(_Reference("spec.pool", Pool, obj.spec.pool, None))
        for i, member in enumerate(obj.spec.members):
            found.extend(
                _template_references(f"spec.members[{i}].template", member.template, namespace)
            )
    return found


def _check_namespace(lookups: Lookups, name: str) -> None:
    """The namespace a new object goes into exists and is not terminating (404 / 403)."""
    try:
        namespace = lookups.get(Namespace, name)
    except NotFoundError:
        raise NotFoundError(f'namespaces "{name}" not found') from None
    if namespace.metadata.deletion_timestamp is not None:
        raise ApiError(
            403,
            "Forbidden",
            f"unable to create new content in namespace {name} because it is being terminated",
        )


class _Image(NamedTuple):
    """An image to be booted where ``pool`` (or ``account``) may place it; ``field`` names it."""

    field: str
    pool: str | None
    account: str | None
    image: str


def _images(obj: Resource | None) -> list[_Image]:
    if isinstance(obj, Instance):
        return [_Image("spec.image", obj.spec.pool, obj.spec.account, obj.spec.image)]
    if isinstance(obj, VirtualCluster):
        return [
            _Image(f"spec.members[{i}].template.image", obj.spec.pool, None, m.template.image)
            for i, m in enumerate(obj.spec.members)
        ]
    return []


def _image_problem(lookups: Lookups, wanted: _Image) -> str | None:
    """Why no account ``wanted`` may be placed on maps its image (None if one does). Checked
    only once the pool or account itself passed (a problem there is reported on its own
    field)."""
    if wanted.pool:
        try:
            names = [member.account for member in lookups.get(Pool, wanted.pool).spec.members]
        except NotFoundError:
            return None
        where = f"any member account of pool {wanted.pool!r}"
    else:
        names, where = [str(wanted.account)], f"account {wanted.account!r}"
    for name in names:
        try:
            if wanted.image in lookups.get(ProviderAccount, name).spec.images:
                return None
        except NotFoundError:
            continue  # a member naming a missing account maps nothing
    return f"image {wanted.image!r} is not mapped by {where} (spec.images)"


def _host_rule_problems(
    lookups: Lookups, obj: VirtualCluster, old: Resource | None
) -> list[FieldCause]:
    """A ``host`` rule where an account of the pool cannot express it (DESIGN §10: only
    :data:`HOST_TOPOLOGY_DRIVERS`, EC2 placement groups). Like references, checked on an
    update only where something changed: every host rule when the pool did, else the new
    ones. A missing pool is reported on ``spec.pool``; a member naming a missing account is
    skipped (nothing is placed on it)."""
    same_pool = isinstance(old, VirtualCluster) and old.spec.pool == obj.spec.pool
    kept = old.spec.placement if same_pool and isinstance(old, VirtualCluster) else []
    rules = [
        (i, rule)
        for i, rule in enumerate(obj.spec.placement)
        if rule.topology == Topology.HOST and rule not in kept
    ]
    if not rules:
        return []
    try:
        accounts = [member.account for member in lookups.get(Pool, obj.spec.pool).spec.members]
    except NotFoundError:
        return []
    unable = None
    for name in accounts:
        try:
            driver = lookups.get(ProviderAccount, name).spec.driver
        except NotFoundError:
            continue
        if driver not in HOST_TOPOLOGY_DRIVERS:
            unable = f"account {name!r} of pool {obj.spec.pool!r} has driver {driver!r}"
            break
    if unable is None:
        return []
    drivers = " or ".join(sorted(HOST_TOPOLOGY_DRIVERS))
    return [
        FieldCause(
            f"spec.placement[{i}].topology",
            f"topology host can be kept only on accounts with driver {drivers} (EC2 "
            f"placement groups), and {unable}",
        )
        for i, _ in rules
    ]


def _problem(lookups: Lookups, ref: _Reference, namespace: str | None) -> str | None:
    try:
        target = lookups.get(ref.model, ref.name, ref.namespace)
    except NotFoundError:
        where = f" in namespace {ref.namespace!r}" if ref.namespace else ""
        return f"{ref.model.KIND} {ref.name!r} not found{where}"
    if isinstance(target, Pool) and namespace and not target.spec.allows(namespace):
        return f"pool {ref.name!r} does not allow namespace {namespace!r}"
    return None


def _check_service_account(
    authorizer: Authorizer, writer: User, obj: GitSource, old: Resource | None
) -> None:
    """``writer`` may act as the user ``obj`` applies as, if the write sets it (403)."""
    account = obj.spec.service_account
    if account is None or (isinstance(old, GitSource) and old.spec == obj.spec):
        return
    namespace = obj.metadata.namespace
    if authorizer.may_act_as(writer, account, namespace):
        return
    field = "spec.serviceAccount"
    raise ApiError(
        403,
        "Forbidden",
        f'{GitSource.PLURAL} "{obj.metadata.name}" is forbidden: User "{writer.name}" may not '
        f'set {field} to "{account}": that needs verb "{IMPERSONATE}" on resource "users" '
        f'named "{account}" in namespace "{namespace}" or cluster-wide',
        (FieldCause(field, f'User "{writer.name}" may not act as user "{account}"'),),
        details={"kind": GitSource.PLURAL, "name": obj.metadata.name},
    )


def _acts_as(key: AccessKey) -> tuple[str, list[str], str]:
    return key.spec.user, key.spec.groups, key.spec.namespace


def _check_access_key_principal(
    authorizer: Authorizer, writer: User, obj: AccessKey, old: Resource | None
) -> None:
    """``writer`` may act as the user and groups ``obj`` acts as, if the write sets them (403
    naming the first field it may not set)."""
    spec = obj.spec
    if isinstance(old, AccessKey) and _acts_as(old) == _acts_as(obj):
        return
    namespace = spec.namespace
    denied: tuple[str, str, str] | None = None
    if not authorizer.may_act_as(writer, spec.user, namespace):
        denied = ("spec.user", "users", spec.user)
    else:
        for i, group in enumerate(spec.groups):
            if group in writer.groups:
                continue
            if not authorizer.allowed(writer, Attributes(IMPERSONATE, "groups", namespace, group)):
                denied = (f"spec.groups[{i}]", "groups", group)
                break
    if denied is None:
        return
    field, resource, name = denied
    raise ApiError(
        403,
        "Forbidden",
        f'{AccessKey.PLURAL} "{obj.metadata.name}" is forbidden: User "{writer.name}" may not '
        f'set {field} to "{name}": that needs verb "{IMPERSONATE}" on resource "{resource}" '
        f'named "{name}" in namespace "{namespace}" or cluster-wide',
        (FieldCause(field, f'User "{writer.name}" may not act as {resource[:-1]} "{name}"'),),
        details={"kind": AccessKey.PLURAL, "name": obj.metadata.name},
    )


def _access_key_id_problem(lookups: Lookups, obj: AccessKey, old: Resource | None) -> str | None:
    """Why ``obj``'s id cannot be used (another AccessKey has it); None if it can."""
    wanted = obj.spec.access_key_id
    if isinstance(old, AccessKey) and old.spec.access_key_id == wanted:
        return None
    for other in lookups.store.list(AccessKey).items:
        if other.metadata.name != obj.metadata.name and other.spec.access_key_id == wanted:
            return f"already the id of AccessKey {other.metadata.name!r}"
    return None


def admit(
    lookups: Lookups,
    obj: Resource,
    old: Resource | None = None,
    *,
    writer: User,
    authorizer: Authorizer,
) -> Resource:
    """Default and check ``obj``, written by ``writer`` (a create when ``old`` is None); 403
    or 404 on the namespace, a GitSource's serviceAccount, an RBAC escalation or an
    AccessKey's user or groups, else 422 naming every bad field."""
    if isinstance(obj, Secret):
        obj = obj.folded()
    if old is None and obj.metadata.namespace:
        _check_namespace(lookups, obj.metadata.namespace)
    if isinstance(obj, GitSource):
        _check_service_account(authorizer, writer, obj, old)
    check_escalation(lookups, authorizer, writer, obj, old)
    if isinstance(obj, AccessKey):
        _check_access_key_principal(authorizer, writer, obj, old)
    unchanged = set(_references(old)) if old is not None else set()
    causes = []
    for ref in _references(obj):
        if ref in unchanged:
            continue
        problem = _problem(lookups, ref, obj.metadata.namespace)
        if problem:
            causes.append(FieldCause(ref.field, problem))
    target_ok = not any(c.field in ("spec.pool", "spec.account") for c in causes)
    if target_ok:
        known = {(i.pool, i.account, i.image) for i in _images(old)}
        for wanted in _images(obj):
            if (wanted.pool, wanted.account, wanted.image) in known:
                continue
            problem = _image_problem(lookups, wanted)
            if problem:
                causes.append(FieldCause(wanted.field, problem))
        if isinstance(obj, VirtualCluster):
            causes.extend(_host_rule_problems(lookups, obj, old))
    if isinstance(obj, AccessKey):
        problem = _access_key_id_problem(lookups, obj, old)
        if problem:
            causes.append(FieldCause("spec.accessKeyId", problem))
    if causes:
        message = f"{obj.kind} {obj.metadata.name!r}: admission denied"
        raise InvalidObjectError(message, tuple(causes))
    return obj
