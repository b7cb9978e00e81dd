"""The REST API of DESIGN §7: plain ASGI over the object store, with authentication, RBAC,
admission and race-free quotas.

Where it sits: beside the controllers, on the same store. A request flows
``app`` → ``dispatch`` → ``auth`` (Bearer token) → ``body`` (size limit) → in a worker thread
``paths`` → ``handlers`` (``rbac`` → validation → ``admission`` → ``quota`` → store, the
reads of admission and quota served by ``lookups``' caches) or ``watch``; failures become
``status`` objects. Paths outside the resource tree (health, metrics, version, discovery) are
``system``'s route table; ``openapi`` documents every route from the models. ``local`` runs
the same resource operations in-process as one user (skyctl's ``--etcd`` mode, GitOps) — and
for ``ec2``, the EC2 Query front door at ``/ec2/`` (DESIGN §12), whose SigV4-signed actions run
as an access key's user (``accesskeys``). ``rendezvous`` serves the boot rendezvous at
``/rendezvous/`` (DESIGN §11): agents authenticated by a boot secret instead of a user token.
``skybroker apiserver`` and ``skybroker up`` serve :class:`ApiServer` with uvicorn.
"""

from apiserver.app import ApiOptions, ApiServer
from apiserver.auth import TokenAuthenticator, User

__all__ = ["ApiOptions", "ApiServer", "TokenAuthenticator", "User"]
