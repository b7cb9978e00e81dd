"""The ``AccessKey`` kind: an EC2 access key id that acts as one user in one namespace (§12).

Where it sits: pure data, cluster-scoped. ``skyctl create accesskey`` writes one with its
Secret; the API server's resolver (``apiserver.accesskeys.AccessKeys``) finds the key a
SigV4-signed EC2 request names and reads the secret it must have been signed with; the
request then acts as ``spec.user`` (with ``spec.groups``) in ``spec.namespace``, under RBAC,
admission and quota exactly as a REST request.

Identity, decided: the object's *name* is the administrator's choice (a DNS-1123 subdomain,
e.g. ``ci-robot``), and ``spec.accessKeyId`` holds the generated id, AWS-shaped — ``AKIA``
followed by 16 upper-case letters or digits (:data:`ACCESS_KEY_ID_PATTERN`). An object name
cannot be the id itself (names are lower case, ids upper case). The id is unique: admission
refuses a second AccessKey with an id already in use, and the resolver, which finds keys by
id through an informer index (O(1)), answers no key at all for an id two objects claim.

The secret access key is never in this object: ``spec.secretRef.name`` names a Secret in
``skybroker-system`` (:data:`~api_types.common.SYSTEM_NAMESPACE`, encrypted at rest like
every Secret) whose entry :data:`SECRET_ACCESS_KEY` holds it. Only cluster administrators
may read or write AccessKeys and that namespace's Secrets (the built-in ``admin``, ``edit``
and ``view`` roles do not cover ``accesskeys``). The Secret ``skyctl`` writes carries an
owner reference to its AccessKey, so deleting the key garbage-collects its secret.
``spec.disabled`` turns a key off without deleting it. An AccessKey has no status.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, StrictBool, StringConstraints

from api_types.common import NamespaceName, ObjectName
from api_types.meta import Resource, Scope, WireModel

__all__ = [
    "ACCESS_KEY_ID_ALPHABET",
    "ACCESS_KEY_ID_PATTERN",
    "ACCESS_KEY_ID_PREFIX",
    "SECRET_ACCESS_KEY",
    "AccessKey",
    "AccessKeyId",
    "AccessKeySecretReference",
    "AccessKeySpec",
    "is_access_key_id",
]

#: Every access key id starts so (AWS's prefix of long-term user keys).
ACCESS_KEY_ID_PREFIX: Final = "AKIA"
#: The characters of the 16 that follow the prefix.
ACCESS_KEY_ID_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: The whole id: ``AKIA`` + 16 upper-case letters or digits (20 characters, as AWS's).
ACCESS_KEY_ID_PATTERN: Final = re.compile(r"AKIA[A-Z0-9]{16}")
#: The entry of the referenced Secret that holds the secret access key.
SECRET_ACCESS_KEY: Final = "secretAccessKey"


def is_access_key_id(value: str) -> bool:
    """Whether ``value`` has the shape of an access key id."""
    return ACCESS_KEY_ID_PATTERN.fullmatch(value) is not None


def _validate_access_key_id(value: str) -> str:
    if not is_access_key_id(value):
        raise ValueError(
            f"{value!r} is not an access key id: AKIA followed by 16 upper-case letters or digits"
        )
    return value


AccessKeyId = Annotated[str, AfterValidator(_validate_access_key_id)]
#: A user or group name, as the token file and RBAC subjects spell them.
_Principal = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class AccessKeySecretReference(WireModel):
    """The Secret in ``skybroker-system`` holding the secret access key (entry
    ``secretAccessKey``); no namespace field: an AccessKey cannot point anywhere else."""

    name: ObjectName = Field(description="Name of the Secret in skybroker-system.")


class AccessKeySpec(WireModel):
    access_key_id: AccessKeyId = Field(
        description="The key's id, as EC2 clients send it: AKIA + 16 upper-case letters or "
        "digits; unique among AccessKeys."
    )
    user: _Principal = Field(description="The user a request signed with this key acts as.")
    groups: list[_Principal] = Field(
        default_factory=list,
        description="Groups of that user (system:authenticated is always added).",
    )
    namespace: NamespaceName = Field(description="The namespace the key's requests act in.")
    secret_ref: AccessKeySecretReference = Field(
        description="Secret in skybroker-system whose 'secretAccessKey' entry holds the secret."
    )
    disabled: StrictBool = Field(
        False, description="True: requests signed with this key are refused as unknown."
    )


class AccessKey(Resource):
    """An EC2 access key: its id, who it acts as, where, and the Secret holding its secret."""

    KIND: ClassVar[str] = "AccessKey"
    PLURAL: ClassVar[str] = "accesskeys"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["AccessKey"] = Field("AccessKey", description="AccessKey.")
    spec: AccessKeySpec = Field(description="The key's id, user, groups, namespace and secret.")
