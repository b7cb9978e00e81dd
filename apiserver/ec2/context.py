"""What an EC2 action is given besides its parameters: who asks, for which region, and the
one write path to act through.

Where it sits: built by ``routes`` once a request's signature is verified (``sigv4``), handed
to the action's handler (``registry``). ``backend`` is the REST API's own resource pipeline
in-process (``apiserver.local.LocalBackend``) as the access key's user, so every read and
write an action makes goes through RBAC, validation, admission and quota exactly as the same
request through REST would (DESIGN §12: no second write path); its failures are the REST
errors, which ``errors.ec2_error_from`` turns into EC2's codes.

``lookups`` are admission's reads (``apiserver.lookups``), for the catalogue a cloud's API
shows every account — its regions (the Pools the key's namespace may use, DESIGN §12: the
namespace decides, not an RBAC grant on cluster-scoped kinds a tenant is never given), its
instance types (HardwareProfiles) and, behind a pool, its zones and logical image names — never
an account's name or credentials (tenants never read ProviderAccounts).

The region of a request is the region of its credential scope, and a region is a Pool:
:meth:`ActionContext.pool` answers ``AuthFailure`` when there is no such pool or the key's
namespace may not use it. That is what EC2 answers for a region the
account is not enabled in; it is the credential, not a parameter, that names the region, so
``InvalidParameterValue`` would name nothing the client sent as a parameter. A pool that
exists but is closed to the namespace gets the same answer as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_types.pools import Pool
from apiserver.accesskeys import AccessKeyCredential
from apiserver.auth import User
from apiserver.ec2.errors import auth_failure
from apiserver.local import LocalBackend
from apiserver.lookups import Lookups
from controller.errors import NotFoundError

__all__ = ["ActionContext"]


@dataclass(frozen=True)
class ActionContext:
    """One verified request: its id, action, credential, region and the ways to act."""

    request_id: str
    action: str
    credential: AccessKeyCredential
    #: The credential scope's region: a Pool name (:meth:`pool`).
    region: str
    #: This front door's URL as the client reached it, e.g. ``http://host:port/ec2/``.
    endpoint: str
    #: The REST resource operations as ``credential.user`` (RBAC, admission, quota).
    backend: LocalBackend
    #: Admission's reads, for what stands behind a pool the user may read (accounts).
    lookups: Lookups

    @property
    def user(self) -> User:
        return self.credential.user

    @property
    def namespace(self) -> str:
        return self.credential.namespace

    def pool(self) -> Pool:
        """The Pool this request's region names; AuthFailure if there is none or the
        namespace may not use it."""
        try:
            pool: Pool | None = self.lookups.get(Pool, self.region)
        except NotFoundError:
            pool = None
        if pool is None or not pool.spec.allows(self.namespace):
            raise auth_failure(
                f"The region '{self.region}' is not a pool namespace '{self.namespace}' may use"
            )
        return pool
