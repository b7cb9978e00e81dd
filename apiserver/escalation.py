"""RBAC escalation prevention: nobody grants, through a Role or a binding, what they do not hold.

Where it sits: an admission step (``admission``, step 4) for writes of the four RBAC kinds,
after RBAC has allowed the verb on ``roles``/``rolebindings``/… itself. Without it, RBAC's
write permission on Roles would be a permission to everything: a namespace ``admin`` (who may
manage the Roles and RoleBindings of her namespace) could write a Role granting ``impersonate``
on ``users`` and bind herself, then set a GitSource's ``spec.serviceAccount`` to a cluster
admin (DESIGN §9), or bind herself to ``cluster-admin``.

Kubernetes' rule, chosen over the narrower "impersonate counts only from ClusterRoleBindings"
because it closes every such path (``*`` verbs, Secrets, Quotas, ``/status``), not only
impersonation, and keeps namespaced ``impersonate`` grants meaningful:

- a Role (ClusterRole) may be created or updated only with rules the writer already holds in
  the Role's namespace (cluster-wide), unless the writer has verb ``escalate`` on ``roles``
  (``clusterroles``) there, named or not;
- a RoleBinding (ClusterRoleBinding) may be written only when the writer holds every rule of
  the role it references in the binding's namespace (cluster-wide), or has verb ``bind`` on
  ``roles``/``clusterroles`` with that role's name (or no resourceNames) there. A binding to a
  role that does not exist is refused without ``bind`` (as Kubernetes does): its rules cannot
  be checked, and whoever creates the role later would grant them to these subjects;
- "holds" means every combination of a rule's verbs, resources and resourceNames (none = all)
  is allowed by the writer's own rules (``Authorizer.allowed``): a wildcard is covered only by
  a wildcard, a rule on all names only by one on all names. ``system:masters`` holds all;
- a write that changes nothing RBAC grants (a Role's rules; a binding's roleRef and subjects
  unchanged: labels, finalizers) is not checked, so it can still be relabelled or deleted;
  deletes are never checked.

The roles a binding references are read with ``Lookups`` (staged objects first, then etcd), not
the authoriser's caches: a Role written a moment ago, or planned earlier in an all-or-nothing
apply, is found. The writer's own rules come from the authoriser's caches, as for every request.
Built-in ClusterRoles win over stored ones of the same name, as in ``rbac``.
"""

from __future__ import annotations

from collections.abc import Iterator

from api_types.meta import Resource
from api_types.rbac import (
    ClusterRole,
    ClusterRoleBinding,
    PolicyRule,
    Role,
    RoleBinding,
    RoleRef,
    RoleRefKind,
)
from apiserver.auth import User
from apiserver.lookups import Lookups
from apiserver.rbac import BUILTIN_CLUSTER_ROLES, Attributes, Authorizer
from apiserver.status import ApiError
from controller.errors import FieldCause, NotFoundError

__all__ = ["BIND", "ESCALATE", "check_escalation"]

#: The verb on ``roles``/``clusterroles`` that allows writing a role with rules one lacks.
ESCALATE = "escalate"
#: The verb on ``roles``/``clusterroles`` (resourceName = the role) that allows binding it.
BIND = "bind"
_Binding = RoleBinding | ClusterRoleBinding


def _atoms(rule: PolicyRule, namespace: str | None) -> Iterator[Attributes]:
    """Every single permission ``rule`` grants, as a request it would allow."""
    for verb in rule.verbs:
        for resource in rule.resources:
            names: list[str | None] = [*rule.resource_names] or [None]
            for name in names:
                yield Attributes(verb, resource, namespace, name)


def _missing(
    authorizer: Authorizer, user: User, rules: list[PolicyRule], namespace: str | None
) -> list[str]:
    """The permissions of ``rules`` that ``user`` does not hold in ``namespace``, described."""
    missing: list[str] = []
    for rule in rules:
        for atom in _atoms(rule, namespace):
            if not authorizer.allowed(user, atom):
                named = f' named "{atom.name}"' if atom.name else ""
                missing.append(f'{atom.verb} "{atom.resource}"{named}')
    return missing


def _forbidden(obj: Resource, user: User, field: str, why: str) -> ApiError:
    where = f' in namespace "{obj.metadata.namespace}"' if obj.metadata.namespace else ""
    return ApiError(
        403,
        "Forbidden",
        f'{obj.PLURAL} "{obj.metadata.name}" is forbidden: User "{user.name}" {why}{where} '
        f"(RBAC escalation prevention)",
        (FieldCause(field, why),),
        details={"kind": obj.PLURAL, "name": obj.metadata.name},
    )


def _role_plural(ref: RoleRef) -> str:
    return ClusterRole.PLURAL if ref.kind == RoleRefKind.CLUSTER_ROLE else Role.PLURAL


def _referenced_rules(lookups: Lookups, ref: RoleRef, namespace: str | None) -> list[PolicyRule]:
    """The rules of the role ``ref`` names (NotFoundError if it does not exist)."""
    if ref.kind == RoleRefKind.CLUSTER_ROLE:
        if ref.name in BUILTIN_CLUSTER_ROLES:
            return BUILTIN_CLUSTER_ROLES[ref.name]
        return lookups.get(ClusterRole, ref.name).rules
    return lookups.get(Role, ref.name, namespace).rules


def _check_role(
    authorizer: Authorizer, user: User, role: Role | ClusterRole, old: Resource | None
) -> None:
    if isinstance(old, type(role)) and old.rules == role.rules:
        return
    namespace = role.metadata.namespace
    if authorizer.allowed(user, Attributes(ESCALATE, role.PLURAL, namespace, role.metadata.name)):
        return
    missing = _missing(authorizer, user, role.rules, namespace)
    if missing:
        why = f"may not grant permissions it does not hold: {', '.join(missing)}"
        raise _forbidden(role, user, "rules", why)


def _check_binding(
    lookups: Lookups, authorizer: Authorizer, user: User, binding: _Binding, old: Resource | None
) -> None:
    if (
        isinstance(old, type(binding))
        and old.role_ref == binding.role_ref
        and old.subjects == binding.subjects
    ):
        return
    ref, namespace = binding.role_ref, binding.metadata.namespace
    plural = _role_plural(ref)
    if authorizer.allowed(user, Attributes(BIND, plural, namespace, ref.name)):
        return
    role = f'{ref.kind.value} "{ref.name}"'
    try:
        rules = _referenced_rules(lookups, ref, namespace)
    except NotFoundError:
        why = f'may not bind {role}: it does not exist, and binding it needs verb "{BIND}"'
        raise _forbidden(binding, user, "roleRef.name", why) from None
    missing = _missing(authorizer, user, rules, namespace)
    if missing:
        why = (
            f"may not bind {role} without holding its permissions (or verb "
            f'"{BIND}" on "{plural}"): lacks {", ".join(missing)}'
        )
        raise _forbidden(binding, user, "roleRef", why)


def check_escalation(
    lookups: Lookups, authorizer: Authorizer, writer: User, obj: Resource, old: Resource | None
) -> None:
    """403 unless writing ``obj`` (over ``old``) grants nothing ``writer`` lacks (the module
    docstring's rule); other kinds pass."""
    if isinstance(obj, Role | ClusterRole):
        _check_role(authorizer, writer, obj, old)
    elif isinstance(obj, RoleBinding | ClusterRoleBinding):
        _check_binding(lookups, authorizer, writer, obj, old)
