"""Authorization: Kubernetes RBAC over Roles and bindings cached by informers (DESIGN §7).

Where it sits: second step of every API request, after authentication. The four RBAC kinds are
listed and watched into informer caches (``controller.cache.Informer``), so deciding costs no
etcd read; a binding written a moment ago applies as soon as its watch event arrives.

Semantics, as in Kubernetes:

- members of ``system:masters`` may do everything;
- a ClusterRoleBinding grants its ClusterRole everywhere (cluster-scoped kinds, every
  namespace); a RoleBinding grants its Role or ClusterRole inside its own namespace only;
- a rule matches when its verbs, resources (``plural``, ``plural/sub``, ``*/sub`` or ``*``) and
  resourceNames (empty = all) match; apiGroups are not checked beyond the rule's presence, since
  every kind is in one group (``skybroker.io``, ``""`` and ``*`` all mean it);
- a request on a Namespace object is checked in that namespace too, so a tenant bound in
  ``acme`` may get ``namespaces/acme`` but not list every namespace;
- the built-in ClusterRoles ``cluster-admin``, ``admin``, ``edit`` and ``view`` are defined here
  and win over stored objects of the same names. ``view`` cannot read Secrets or RBAC objects;
  ``edit`` writes workloads (GitSources, VirtualClusters and BootConfigs among them) and Secrets;
  ``admin`` also manages Roles and RoleBindings of its namespace; neither may write Quotas or
  any ``/status`` (tenants must not reset their usage). None of them covers ``accesskeys``
  (EC2 credentials acting as any user, DESIGN §12): only ``cluster-admin`` and
  ``system:masters`` manage them, and their Secrets live in ``skybroker-system``, where no
  tenant is bound.
- impersonation (Kubernetes' rule shape): a user may act as user ``X`` when it is ``X``, is in
  ``system:masters``, or holds verb ``impersonate`` on resource ``users`` with resourceName
  ``X`` (or no resourceNames) in the namespace asked about or cluster-wide
  (:meth:`Authorizer.may_act_as`). No HTTP impersonation header uses it: admission does, for
  the user a GitSource applies as (``spec.serviceAccount``, see ``admission``). No built-in
  role but ``cluster-admin`` grants it, and nobody can grant it (or anything) without holding
  it: a Role or binding grants only what its writer holds, unless the writer has ``escalate``
  / ``bind`` (``escalation``, Kubernetes' escalation prevention).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api_types.rbac import (
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    Role,
    RoleBinding,
    RoleRefKind,
    Subject,
    SubjectKind,
)
from apiserver.auth import MASTERS_GROUP, User
from apiserver.status import ApiError
from controller.cache import Informer
from controller.store.objects import Store

__all__ = ["BUILTIN_CLUSTER_ROLES", "IMPERSONATE", "Attributes", "Authorizer"]

_READ = ["get", "list", "watch"]
_WRITE = ["create", "update", "patch", "delete", "deletecollection"]
_WORKLOADS = [
    "instances",
    "subnets",
    "firewalls",
    "volumes",
    "gitsources",
    "virtualclusters",
    "bootconfigs",
]
_BY_NAME = "name"
#: The verb (on resource ``users``, resourceName = the user) that lets a user act as another.
IMPERSONATE = "impersonate"


def _rule(resources: list[str], verbs: list[str]) -> PolicyRule:
    return PolicyRule(api_groups=["skybroker.io"], resources=resources, verbs=verbs)


_VIEW = [
    _rule([*_WORKLOADS, "quotas", "events", "namespaces", "pools", "hardwareprofiles"], _READ),
    _rule([f"{plural}/status" for plural in [*_WORKLOADS, "quotas", "namespaces"]], ["get"]),
]
_EDIT = [*_VIEW, _rule([*_WORKLOADS, "secrets"], _WRITE), _rule(["secrets"], _READ)]
_ADMIN = [*_EDIT, _rule(["roles", "rolebindings"], [*_READ, *_WRITE])]

BUILTIN_CLUSTER_ROLES: dict[str, list[PolicyRule]] = {
    "cluster-admin": [PolicyRule(api_groups=["*"], resources=["*"], verbs=["*"])],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
}


@dataclass(frozen=True)
class Attributes:
    """What a request does, in RBAC's terms."""

    verb: str
    resource: str  # plural, or "plural/subresource"
    namespace: str | None = None
    name: str | None = None

    def describe(self) -> str:
        where = f'in namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return f'{self.verb} resource "{self.resource}" {where}'


def _matches(rule: PolicyRule, attrs: Attributes) -> bool:
    if "*" not in rule.verbs and attrs.verb not in rule.verbs:
        return False
    sub = attrs.resource.partition("/")[2]
    wanted = {attrs.resource, "*"} | ({f"*/{sub}"} if sub else set())
    if not wanted.intersection(rule.resources):
        return False
    return not rule.resource_names or attrs.name in rule.resource_names


def _binds(subjects: list[Subject], user: User) -> bool:
    for subject in subjects:
        if subject.kind == SubjectKind.USER and subject.name == user.name:
            return True
        if subject.kind == SubjectKind.GROUP and subject.name in user.groups:
            return True
    return False


class Authorizer:
    """RBAC decisions (the module docstring's semantics) from informer caches of the four
    RBAC kinds; :meth:`check` raises 403, :meth:`allowed` answers yes or no."""

    def __init__(self, store: Store) -> None:
        self.cluster_roles = Informer(store, ClusterRole)
        self.roles = Informer(store, Role)
        self.cluster_bindings = Informer(store, ClusterRoleBinding)
        self.bindings = Informer(store, RoleBinding)
        self.cluster_roles.add_index(_BY_NAME, lambda role: [role.metadata.name])
        self.roles.add_index(
            _BY_NAME, lambda role: [f"{role.metadata.namespace}/{role.metadata.name}"]
        )
        self._informers: tuple[Informer[Any], ...] = (
            self.cluster_roles,
            self.roles,
            self.cluster_bindings,
            self.bindings,
        )

    def start(self) -> None:
        for informer in self._informers:
            informer.start()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

    def wait_for_sync(self, timeout: float) -> bool:
        return all(informer.wait_for_sync(timeout) for informer in self._informers)

    def has_synced(self) -> bool:
        return all(informer.has_synced() for informer in self._informers)

    # --- rules ----------------------------------------------------------------------------

    def _cluster_role_rules(self, name: str) -> list[PolicyRule]:
        if name in BUILTIN_CLUSTER_ROLES:
            return BUILTIN_CLUSTER_ROLES[name]
        return [rule for role in self.cluster_roles.by_index(_BY_NAME, name) for rule in role.rules]

    def _rules(self, user: User, namespace: str | None) -> Iterator[PolicyRule]:
        """Every rule granted to ``user`` that applies in ``namespace`` (None = cluster scope)."""
        for binding in self.cluster_bindings.list():
            if _binds(binding.subjects, user):
                yield from self._cluster_role_rules(binding.role_ref.name)
        if namespace is None:
            return
        for local in self.bindings.list(namespace):
            if not _binds(local.subjects, user):
                continue
            ref = local.role_ref
            if ref.kind == RoleRefKind.CLUSTER_ROLE:
                yield from self._cluster_role_rules(ref.name)
            else:
                for role in self.roles.by_index(_BY_NAME, f"{namespace}/{ref.name}"):
                    yield from role.rules

    # --- decisions ------------------------------------------------------------------------

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if MASTERS_GROUP in user.groups:
            return True
        return any(_matches(rule, attrs) for rule in self._rules(user, attrs.namespace))

    def may_act_as(self, user: User, name: str, namespace: str | None) -> bool:
        """Whether ``user`` may act as user ``name`` in ``namespace`` (None = cluster scope):
        it is that user, or may ``impersonate`` ``users/{name}`` there."""
        if user.name == name:
            return True
        return self.allowed(user, Attributes(IMPERSONATE, "users", namespace, name))

    def check(self, user: User, attrs: Attributes) -> None:
        """403 ``ApiError`` naming user, verb, resource and namespace unless allowed."""
        if not self.allowed(user, attrs):
            raise ApiError(
                403,
                "Forbidden",
                f'User "{user.name}" cannot {attrs.describe()}',
                details={"kind": attrs.resource, "name": attrs.name or ""},
            )
