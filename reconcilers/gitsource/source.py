"""What one GitSource reads: its credentials, its labelled documents, who it acts as.

Where it sits: between the fetch layer (``reconcilers.gitsource.fetch``) and the two users of
a fetched revision — the reconciler's apply pass (``reconcilers.gitsource.reconciler``) and
the plan it computes on request (``reconcilers.gitsource.plan``) — so that both read the same
documents with the same label, authorise as the same user, and prune the same objects.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from api_types import GitSource, Secret
from api_types.gitops import SOURCE_LABEL, InventoryEntry, source_label_value
from controller.apply import (
    Backend,
    LiveObject,
    Manifest,
    ObjectKey,
    decode_manifests,
    in_prune_order,
    live_objects,
)
from controller.errors import NotFoundError, TerminalError
from controller.store.objects import Store
from reconcilers.gitsource.fetch import Checkout, ManifestLimits, Revision
from reconcilers.gitsource.transport import Credentials

__all__ = [
    "actor_of",
    "credentials_of",
    "inventory_key",
    "labelled_manifests",
    "prunable",
    "service_account_of",
    "still_managed",
]


def service_account_of(source: GitSource) -> str:
    """The user a GitSource applies as: ``spec.serviceAccount`` or its own system user."""
    name, namespace = source.metadata.name, source.metadata.namespace
    return source.spec.service_account or f"system:gitsource:{namespace}:{name}"


def actor_of(source: GitSource, revision: Revision | None) -> str:
    """``gitsource/{ns}/{name}@{sha}``: the actor history records name for what it applies."""
    base = f"gitsource/{source.metadata.namespace}/{source.metadata.name}"
    return base if revision is None else f"{base}@{revision.sha}"


def inventory_key(entry: InventoryEntry) -> ObjectKey:
    return (entry.kind, entry.namespace, entry.name)


def credentials_of(store: Store, source: GitSource) -> Credentials | None:
    """The credentials ``spec.credentialsRef`` names (TerminalError ``CredentialsMissing``)."""
    ref = source.spec.credentials_ref
    if ref is None:
        return None
    try:
        secret = store.get(Secret, ref.name, source.metadata.namespace)
    except NotFoundError:
        raise TerminalError(
            f"spec.credentialsRef: Secret {source.metadata.namespace}/{ref.name} does not exist",
            reason="CredentialsMissing",
        ) from None
    return Credentials.from_secret_data(secret.decoded())


def labelled_manifests(
    source: GitSource, checkout: Checkout, limits: ManifestLimits
) -> Iterator[Manifest]:
    """Every document under ``spec.path`` at the checkout, labelled with its source."""
    label = source_label_value(source.metadata.namespace or "", source.metadata.name)
    for file_path, data in checkout.manifests(source.spec.path, limits):
        for manifest in decode_manifests(file_path, data):
            obj = dict(manifest.obj)
            metadata = obj.get("metadata")
            if isinstance(metadata, dict):
                labels = metadata.get("labels")
                labels = dict(labels) if isinstance(labels, dict) else {}
                labels[SOURCE_LABEL] = label
                obj["metadata"] = {**metadata, "labels": labels}
            yield Manifest(manifest.source, obj, manifest.file, manifest.document)


def still_managed(source: GitSource, objects: Iterable[LiveObject]) -> list[LiveObject]:
    """Objects that still carry this source's label (one taken over is not pruned)."""
    label = source_label_value(source.metadata.namespace or "", source.metadata.name)
    return [
        live for live in objects if (live.metadata.get("labels") or {}).get(SOURCE_LABEL) == label
    ]


def prunable(backend: Backend, source: GitSource, kept: Collection[ObjectKey]) -> list[LiveObject]:
    """What leaves with a revision that keeps ``kept``: the inventory's other objects that
    still carry this source's label, in prune order, without those whose prune is disabled."""
    gone = [key for key in map(inventory_key, source.status.inventory) if key not in kept]
    return in_prune_order(still_managed(source, live_objects(backend, gone)))
