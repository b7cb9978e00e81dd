"""``skyctl create accesskey NAME --user U [--group G…] --namespace NS`` (DESIGN §12).

Where it sits: under ``skyctl.commands.cmd_create``, over either backend (the REST API or the
``--etcd`` admin mode), since it only creates and deletes objects through the
:class:`~skyctl.backend.Backend`. It generates an access key id (``AKIA`` + 16 upper-case
letters or digits) and a 40-character secret access key (240 random bits, base64) with
:mod:`secrets`, and writes two objects:

1. the ``AccessKey`` ``NAME`` (``spec.accessKeyId``, user, groups, namespace, and
   ``secretRef`` naming the Secret below);
2. the Secret ``accesskey-<id in lower case>`` in ``skybroker-system`` holding the secret
   (entry ``secretAccessKey``), owned by the AccessKey (an owner reference with its uid), so
   deleting the key garbage-collects its Secret.

The AccessKey goes first so that the Secret is born owned (the owner's uid exists only once it
is written): a Secret written first would be, until a third write, a secret nobody deletes.
If the Secret cannot be written, the AccessKey is deleted again: nothing is left half written
(and an AccessKey without its Secret resolves to no credential in the meantime). The Secret's
name comes from the id, not from NAME, so it always fits a name and never meets the Secret of
a deleted key of the same NAME that the garbage collector has not removed yet.

The caller prints the id and the secret once; they are not kept anywhere else than in the
Secret, which only cluster administrators may read.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from api_types import registry
from api_types.accesskeys import (
    ACCESS_KEY_ID_ALPHABET,
    ACCESS_KEY_ID_PREFIX,
    SECRET_ACCESS_KEY,
    AccessKey,
)
from api_types.common import SYSTEM_NAMESPACE
from api_types.meta import API_VERSION
from api_types.tenancy import Secret
from skyctl.backend import ApiError, Backend

__all__ = [
    "SECRET_TYPE",
    "CreatedAccessKey",
    "create_access_key",
    "new_access_key_id",
    "new_secret_access_key",
    "secret_name",
]

Wire = dict[str, Any]

#: The ``type`` of the Secrets this module writes.
SECRET_TYPE = "skybroker.io/access-key"
_ID_RANDOM_CHARACTERS = 16
#: 30 random bytes are exactly 40 base64 characters, AWS's length of a secret access key.
_SECRET_BYTES = 30
_SECRET_PREFIX = "accesskey-"


def new_access_key_id() -> str:
    """A fresh id: ``AKIA`` + 16 random upper-case letters or digits (82 random bits)."""
    random = "".join(secrets.choice(ACCESS_KEY_ID_ALPHABET) for _ in range(_ID_RANDOM_CHARACTERS))
    return ACCESS_KEY_ID_PREFIX + random


def new_secret_access_key() -> str:
    """A fresh 40-character secret access key (base64 of 240 random bits)."""
    return base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def secret_name(access_key_id: str) -> str:
    """The Secret in ``skybroker-system`` that holds the secret of ``access_key_id``."""
    return _SECRET_PREFIX + access_key_id.lower()


@dataclass(frozen=True)
class CreatedAccessKey:
    """What was created: the id and the secret to show once."""

    name: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"CreatedAccessKey(name={self.name!r}, access_key_id={self.access_key_id!r})"


def _access_key(
    name: str, access_key_id: str, user: str, groups: list[str], namespace: str
) -> Wire:
    spec = {
        "accessKeyId": access_key_id,
        "user": user,
        "groups": groups,
        "namespace": namespace,
        "secretRef": {"name": secret_name(access_key_id)},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": AccessKey.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def _secret(owner: Wire, access_key_id: str, secret_access_key: str) -> Wire:
    metadata = owner.get("metadata") or {}
    owner_reference = {
        "apiVersion": API_VERSION,
        "kind": AccessKey.KIND,
        "name": metadata.get("name"),
        # A dry run has no uid to point at; the reference only has to be well-formed.
        "uid": metadata.get("uid") or "dry-run",
    }
    encoded = base64.b64encode(secret_access_key.encode("ascii")).decode("ascii")
    return {
        "apiVersion": API_VERSION,
        "kind": Secret.KIND,
        "metadata": {
            "name": secret_name(access_key_id),
            "namespace": SYSTEM_NAMESPACE,
            "ownerReferences": [owner_reference],
        },
        "type": SECRET_TYPE,
        "data": {SECRET_ACCESS_KEY: encoded},
    }


def create_access_key(
    backend: Backend,
    name: str,
    *,
    user: str,
    groups: list[str],
    namespace: str,
    dry_run: bool = False,
) -> CreatedAccessKey:
    """Write AccessKey ``name`` and its Secret (the module docstring's order); on a failure
    to write the Secret the AccessKey is deleted again and the Secret's error raised."""
    access_key_id = new_access_key_id()
    secret_access_key = new_secret_access_key()
    created = backend.create(
        _access_key(name, access_key_id, user, groups, namespace), dry_run=dry_run
    )
    try:
        backend.create(_secret(created, access_key_id, secret_access_key), dry_run=dry_run)
    except ApiError:
        if not dry_run:
            _remove(backend, name)
        raise
    return CreatedAccessKey(name, access_key_id, secret_access_key)


def _remove(backend: Backend, name: str) -> None:
    """Delete the AccessKey whose Secret could not be written; if even that fails, say so in
    the error the caller reports (the key resolves to nothing without its Secret)."""
    try:
        backend.delete(registry.by_kind(AccessKey.KIND), None, name, dry_run=False)
    except ApiError as exc:
        if not exc.not_found:
            raise ApiError(
                exc.code,
                exc.reason,
                f"the Secret of accesskey/{name} could not be written, and deleting the "
                f"AccessKey failed too (delete it by hand): {exc.message}",
            ) from exc
