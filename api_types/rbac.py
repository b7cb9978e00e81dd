"""RBAC kinds in Kubernetes' shape: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Where it sits: pure data read by the API server's authoriser. Roles carry top-level ``rules``
(apiGroups, resources, verbs, resourceNames); bindings carry top-level ``roleRef`` and
``subjects`` (User or Group), so manifests copied from Kubernetes read as expected. None of
these kinds has a status. A RoleBinding may grant a ClusterRole inside its namespace (the
built-in ``cluster-admin``, ``admin``, ``edit`` and ``view``); a ClusterRoleBinding may only
reference a ClusterRole.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field, StringConstraints, model_validator

from api_types.common import NamespaceName, ObjectName, field_error
from api_types.meta import Resource, Scope, WireEnum, WireModel

__all__ = [
    "RBAC_API_GROUP",
    "ClusterRole",
    "ClusterRoleBinding",
    "PolicyRule",
    "Role",
    "RoleBinding",
    "RoleRef",
    "RoleRefKind",
    "Subject",
    "SubjectKind",
]

#: The roleRef/subject apiGroup Kubernetes manifests carry; ``skybroker.io`` is accepted too.
RBAC_API_GROUP: Final = "rbac.authorization.k8s.io"

_NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class PolicyRule(WireModel):
    """Allows ``verbs`` on ``resources`` (plurals, e.g. instances) in ``apiGroups``.

    ``"*"`` matches every verb, resource or group; empty ``resourceNames`` = every object.
    """

    api_groups: list[str] = Field(
        default_factory=list,
        description="API groups: 'skybroker.io', '' (core, as in Kubernetes) or '*'.",
    )
    resources: list[_NonEmpty] = Field(
        default_factory=list,
        description="Resource plurals (instances, secrets, …), 'instances/status', or '*'.",
    )
    verbs: list[_NonEmpty] = Field(
        min_length=1,
        description="get, list, watch, create, update, patch, delete, deletecollection, or '*'.",
    )
    resource_names: list[_NonEmpty] = Field(
        default_factory=list, description="Restrict to these object names; empty = all."
    )


class Role(Resource):
    """Permissions inside one namespace."""

    KIND: ClassVar[str] = "Role"
    PLURAL: ClassVar[str] = "roles"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["Role"] = Field("Role", description="Role.")
    rules: list[PolicyRule] = Field(default_factory=list, description="What the role allows.")


class ClusterRole(Resource):
    """Permissions cluster-wide, or per namespace when granted by a RoleBinding."""

    KIND: ClassVar[str] = "ClusterRole"
    PLURAL: ClassVar[str] = "clusterroles"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["ClusterRole"] = Field("ClusterRole", description="ClusterRole.")
    rules: list[PolicyRule] = Field(default_factory=list, description="What the role allows.")


class RoleRefKind(StrEnum):
    ROLE = "Role"
    CLUSTER_ROLE = "ClusterRole"


class SubjectKind(StrEnum):
    USER = "User"
    GROUP = "Group"


class RoleRef(WireModel):
    """The role a binding grants."""

    api_group: Literal["rbac.authorization.k8s.io", "skybroker.io"] = Field(
        RBAC_API_GROUP, description="rbac.authorization.k8s.io (as in Kubernetes) or skybroker.io."
    )
    kind: WireEnum[RoleRefKind] = Field(description="Role or ClusterRole.")
    name: ObjectName = Field(description="Name of the role.")


class Subject(WireModel):
    """Who is granted: a user or a group from the token file (e.g. system:masters)."""

    kind: WireEnum[SubjectKind] = Field(description="User or Group.")
    name: _NonEmpty = Field(description="User or group name, exactly as authenticated.")
    api_group: str | None = Field(
        None, description="Accepted for Kubernetes compatibility (rbac.authorization.k8s.io)."
    )
    namespace: NamespaceName | None = Field(None, description="Unused for users and groups.")


class RoleBinding(Resource):
    """Grants a Role or ClusterRole to subjects inside the binding's namespace."""

    KIND: ClassVar[str] = "RoleBinding"
    PLURAL: ClassVar[str] = "rolebindings"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["RoleBinding"] = Field("RoleBinding", description="RoleBinding.")
    role_ref: RoleRef = Field(description="The role granted.")
    subjects: list[Subject] = Field(default_factory=list, description="Who it is granted to.")


class ClusterRoleBinding(Resource):
    """Grants a ClusterRole to subjects in every namespace and for cluster-scoped kinds."""

    KIND: ClassVar[str] = "ClusterRoleBinding"
    PLURAL: ClassVar[str] = "clusterrolebindings"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["ClusterRoleBinding"] = Field(
        "ClusterRoleBinding", description="ClusterRoleBinding."
    )
    role_ref: RoleRef = Field(description="The ClusterRole granted.")
    subjects: list[Subject] = Field(default_factory=list, description="Who it is granted to.")

    @model_validator(mode="after")
    def _cluster_role_only(self) -> ClusterRoleBinding:
        if self.role_ref.kind is not RoleRefKind.CLUSTER_ROLE:
            raise field_error(
                ("roleRef", "kind"),
                "a ClusterRoleBinding can only reference a ClusterRole",
                self.role_ref.kind.value,
            )
        return self
