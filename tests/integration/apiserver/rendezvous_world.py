"""The rendezvous tests' common ground: BootConfigs, uuids registered the way the controllers
do it (``RendezvousStore.register`` with the digest of a fresh boot secret), enrollments, the
BootConfig reconciler's ``status.revision`` written by hand, and an API server with options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from api_types import registry
from api_types.boot import new_boot_secret
from api_types.bootconfigs import BootConfig
from api_types.rendezvous import (
    API_PREFIX,
    SECRET_KEY,
    EnrollmentRecord,
    RendezvousRecord,
    enrollment_secret_name,
    secret_digest,
)
from apiserver import ApiOptions
from controller.rendezvous import RendezvousStore
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import TOKEN_FILE

__all__ = [
    "CLAIMS",
    "api_server",
    "bearer",
    "boot_config",
    "config_path",
    "enroll",
    "register",
    "set_revision",
]

CLAIMS = f"{API_PREFIX}/claims"
CONFIG = "#!/bin/sh\necho configured\n"


def config_path(uid: str) -> str:
    return f"{API_PREFIX}/configs/{uid}"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def boot_config(store: Store, name: str, namespace: str = "team-a", **spec: Any) -> BootConfig:
    wire = {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "BootConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": CONFIG, "parameters": {"role": "web"}, "staleAfter": "1m", **spec},
    }
    created = store.create(registry.parse_object(wire))
    assert isinstance(created, BootConfig)
    return created


def set_revision(store: Store, name: str, revision: int, namespace: str = "team-a") -> None:
    """What the BootConfig reconciler does when the spec changes."""
    boot = store.get(BootConfig, name, namespace)
    boot.status.revision = revision
    store.update_status(boot, actor="test")


def register(
    store: Store, bootconfig: str, instance: str = "vm-1", namespace: str = "team-a"
) -> tuple[str, str]:
    """(uuid, secret) pre-registered for ``instance``, as the Instance reconciler does it."""
    uid, secret = str(uuid4()), new_boot_secret()
    record = RendezvousRecord(
        namespace=namespace,
        boot_config=bootconfig,
        instance=instance,
        secret_sha256=secret_digest(secret),
        created_at=datetime.now(UTC),
    )
    RendezvousStore(store).register(uid, record)
    return uid, secret


def enroll(store: Store, bootconfig: str, namespace: str = "team-a") -> str:
    """The enrollment Secret of a dynamic BootConfig and its record; the secret."""
    secret = new_boot_secret()
    wire = {
        "kind": "Secret",
        "metadata": {"name": enrollment_secret_name(bootconfig), "namespace": namespace},
        "stringData": {SECRET_KEY: secret},
    }
    store.create(registry.parse_object(wire))
    record = EnrollmentRecord(namespace=namespace, boot_config=bootconfig)
    RendezvousStore(store).enroll(secret_digest(secret), record)
    return secret


@contextmanager
def api_server(store: Store, tmp_path: Path, options: ApiOptions) -> Iterator[HttpServer]:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(store, token_file, "127.0.0.1:0", options)
    http.start()
    try:
        yield http
    finally:
        http.stop()
