"""EC2 credentials: an ``AccessKey`` id resolved to its secret and the caller it acts as.

Where it sits: between the EC2 front door (``apiserver.ec2``: SigV4 verification needs the
secret of the key a request names) and the store, where an ``AccessKey`` object (DESIGN §12:
{user, groups, namespace, secretRef}) names a Secret in ``skybroker-system`` holding the secret
access key. A signed request then acts as that user in that namespace: RBAC, admission and
quota apply exactly as for REST (``apiserver.local.LocalBackend`` as that :class:`User`).

:class:`AccessKeys` is the resolver (a :data:`CredentialResolver`), called on every EC2
request, so it reads nothing from etcd for the common case:

- AccessKeys come from an informer (list + watch) indexed by ``spec.accessKeyId``: finding a
  key is one dict lookup, and an id nobody has — a typo, a scan — costs no etcd read at all.
  A key deleted, disabled or being deleted stops resolving as soon as its watch event arrives
  (milliseconds), whatever the Secret cache below holds; an id two AccessKeys claim (admission
  refuses that, but a direct write to etcd could do it) resolves to nothing.
- The secret is read from the Secret on demand (through the store, which decrypts it) and kept
  for :data:`SECRET_TTL` seconds, per access key id and version of the AccessKey (any change
  of the AccessKey reads the Secret again; its deletion drops the copy). A rotated secret is
  thus in force within the TTL. Secrets are not watched: that would hold every tenant's
  Secrets, decrypted, in this process. A missing Secret or entry is not cached, so a key whose
  Secret is written a moment after it resolves at once.

The secret is never logged: log lines name the key's id and object, and
:class:`AccessKeyCredential`'s ``repr`` leaves it out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from api_types.accesskeys import SECRET_ACCESS_KEY, AccessKey, is_access_key_id
from api_types.common import SYSTEM_NAMESPACE
from api_types.tenancy import Secret
from apiserver.auth import AUTHENTICATED_GROUP, User
from controller.cache import Informer
from controller.errors import InvalidObjectError, NotFoundError
from controller.store.objects import Store

__all__ = ["SECRET_TTL", "AccessKeyCredential", "AccessKeys", "CredentialResolver"]

log = structlog.get_logger(__name__)

#: Seconds a secret read from its Secret is used before it is read again.
SECRET_TTL = 10.0
_BY_ID = "accessKeyId"


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


@dataclass(frozen=True)
class _CachedSecret:
    version: tuple[str, str]  # (uid, resourceVersion) of the AccessKey it was read for
    secret: str
    expires: float

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"_CachedSecret(version={self.version!r}, expires={self.expires!r})"


class AccessKeys:
    """The :data:`CredentialResolver` over one store (the module docstring says how it reads
    and caches). :meth:`start` it, and wait for :meth:`wait_for_sync`, before serving: until
    its informer has listed, every id is unknown."""

    def __init__(
        self,
        store: Store,
        *,
        secret_ttl: float = SECRET_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.secret_ttl = secret_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, _CachedSecret] = {}
        self.informer = Informer(store, AccessKey)
        self.informer.add_index(_BY_ID, lambda key: [key.spec.access_key_id])
        self.informer.add_handlers(on_delete=self._forget)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self.informer.wait_for_sync(timeout)

    def has_synced(self) -> bool:
        return self.informer.has_synced()

    # --- resolving ------------------------------------------------------------------------

    def __call__(self, access_key_id: str) -> AccessKeyCredential | None:
        """The credential of ``access_key_id``; None when no enabled AccessKey has it, or its
        Secret (or the Secret's ``secretAccessKey`` entry) is missing."""
        if not is_access_key_id(access_key_id):
            return None
        found = self.informer.by_index(_BY_ID, access_key_id)
        if len(found) != 1:
            if found:
                names = [key.metadata.name for key in found]
                log.warning(
                    "access key id claimed by several AccessKeys",
                    id=access_key_id,
                    accesskeys=names,
                )
            return None
        key = found[0]
        if key.spec.disabled or key.metadata.deletion_timestamp is not None:
            return None
        secret = self._secret(key)
        if secret is None:
            return None
        user = User(
            key.spec.user,
            key.metadata.uid or key.metadata.name,
            frozenset({*key.spec.groups, AUTHENTICATED_GROUP}),
        )
        return AccessKeyCredential(access_key_id, secret, user, key.spec.namespace)

    def _secret(self, key: AccessKey) -> str | None:
        """The secret access key of ``key``: cached, else read from its Secret."""
        access_key_id = key.spec.access_key_id
        version = (key.metadata.uid or "", key.metadata.resource_version or "")
        now = self._clock()
        with self._lock:
            cached = self._secrets.get(access_key_id)
        if cached is not None and cached.version == version and now < cached.expires:
            return cached.secret
        secret = self._read_secret(key)
        with self._lock:
            if secret is None:
                self._secrets.pop(access_key_id, None)
            else:
                self._secrets[access_key_id] = _CachedSecret(version, secret, now + self.secret_ttl)
        return secret

    def _read_secret(self, key: AccessKey) -> str | None:
        name = key.spec.secret_ref.name
        try:
            stored = self.store.get(Secret, name, SYSTEM_NAMESPACE)
            value = stored.get_text(SECRET_ACCESS_KEY)
        except (NotFoundError, InvalidObjectError, UnicodeDecodeError):
            value = None  # missing, undecryptable, invalid or not text: no usable secret
        if not value:
            log.warning(
                "access key has no usable secret",
                id=key.spec.access_key_id,
                accesskey=key.metadata.name,
                secret=f"{SYSTEM_NAMESPACE}/{name}",
                entry=SECRET_ACCESS_KEY,
            )
            return None
        return value

    def _forget(self, key: AccessKey) -> None:
        """A deleted AccessKey's secret leaves memory with it."""
        with self._lock:
            self._secrets.pop(key.spec.access_key_id, None)
