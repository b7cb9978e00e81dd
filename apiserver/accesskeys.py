"""EC2 credentials: an ``AccessKey`` id resolved to its secret and the caller it acts as.

Where it sits: between the EC2 front door (``apiserver.ec2``: SigV4 verification needs the
secret of the key a request names) and the store, where an ``AccessKey`` object (DESIGN §12:
{user, groups, namespace, secretRef}) names a Secret in ``skybroker-system`` holding the secret
access key. A signed request then acts as that user in that namespace: RBAC, admission and
quota apply exactly as for REST (``apiserver.local.LocalBackend`` as that :class:`User`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apiserver.auth import User

__all__ = ["AccessKeyCredential", "CredentialResolver"]


@dataclass(frozen=True)
class AccessKeyCredential:
    """What a request signed with ``access_key_id`` may do, and the secret to check it with."""

    access_key_id: str
    secret_access_key: str
    user: User
    namespace: str

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return (
            f"AccessKeyCredential(access_key_id={self.access_key_id!r}, user={self.user.name!r}, "
            f"namespace={self.namespace!r})"
        )


#: ``access key id -> credential``, None for a key that does not exist (or is disabled).
CredentialResolver = Callable[[str], AccessKeyCredential | None]
