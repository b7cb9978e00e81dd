"""The first start of ``skybroker up``: an empty store gets two simulated accounts and a pool.

Where it sits: called by ``skybroker up`` once etcd is running, before the controllers start.
The objects come from ``skybroker/seed.yaml`` (package data, so an installed wheel has it) and
go through the store like any create, so they are validated and get uids and a history.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import structlog

from api_types import Namespace, registry
from controller.errors import AlreadyExistsError
from controller.store.codec import decode_documents
from controller.store.objects import Store

__all__ = ["seed_if_empty"]

log = structlog.get_logger(__name__)


def _documents() -> list[dict[str, Any]]:
    return decode_documents(resources.files("skybroker").joinpath("seed.yaml").read_bytes())


def seed_if_empty(store: Store) -> list[str]:
    """Create the seed objects if the store holds no objects at all; returns what was created."""
    kvs, _ = store.client.range_prefix(store.layout.registry_root)
    if kvs:
        return []
    created = []
    for namespace in ("skybroker-system",):
        try:
            store.create(Namespace.model_validate({"metadata": {"name": namespace}}))
            created.append(f"namespaces/{namespace}")
        except AlreadyExistsError:
            pass
    for document in _documents():
        obj = registry.parse_object(document)
        try:
            store.create(obj, actor="skybroker-up")
        except AlreadyExistsError:
            continue
        created.append(f"{obj.PLURAL}/{obj.metadata.name}")
    log.info("seeded an empty store", objects=created)
    return created
