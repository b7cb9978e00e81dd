"""The apply engine: one declarative-sync path for ``skyctl apply`` and the GitSource reconciler.

Where it sits: in the runtime, kind-independent (it knows kinds only through
``api_types.registry``), on top of a :class:`~controller.apply.backend.Backend` — skyctl's REST
client, or the API server's admission pipeline run in-process as one user. The pipeline:

1. **decode** (:mod:`.manifests`) — files, directories, stdin or bytes into documents, with
   the store's size, depth and expansion limits, errors naming the file and document;
2. **prepare** (:mod:`.prepare`) — kind, namespace, server-owned metadata dropped, the
   last-applied annotation recorded, validated with the kind's model;
3. **plan** (:mod:`.plan`, :mod:`.merge`, :mod:`.diff`) — created / configured (three-way
   merge, so fields other writers own are left alone) / unchanged, dry-run by the server;
4. **write** (:mod:`.plan`) — per document (skyctl) or all or nothing in the registry's kind
   order (:func:`apply_manifests`);
5. **prune** (:mod:`.prune`) — what was applied and left the set is deleted.
"""

from controller.apply.backend import ApiError, Backend, ListResult, StagingBackend, Wire, deleted
from controller.apply.diff import diff_all, unified_diff
from controller.apply.manifests import (
    MAX_FILE_BYTES,
    Manifest,
    ManifestError,
    decode_manifests,
    load_manifests,
)
from controller.apply.merge import three_way_patch
from controller.apply.plan import (
    CONFIGURED,
    CREATED,
    UNCHANGED,
    Change,
    Failure,
    Plan,
    apply_manifests,
    apply_one,
    decide,
    get_or_none,
    plan_change,
    plan_manifests,
)
from controller.apply.prepare import (
    LAST_APPLIED,
    SERVER_METADATA,
    ObjectKey,
    Target,
    prepare,
    resource_ref,
)
from controller.apply.prune import (
    LiveObject,
    applied_objects,
    in_prune_order,
    live_objects,
    prune,
)

__all__ = [
    "CONFIGURED",
    "CREATED",
    "LAST_APPLIED",
    "MAX_FILE_BYTES",
    "SERVER_METADATA",
    "UNCHANGED",
    "ApiError",
    "Backend",
    "Change",
    "Failure",
    "ListResult",
    "LiveObject",
    "Manifest",
    "ManifestError",
    "ObjectKey",
    "Plan",
    "StagingBackend",
    "Target",
    "Wire",
    "applied_objects",
    "apply_manifests",
    "apply_one",
    "decide",
    "decode_manifests",
    "deleted",
    "diff_all",
    "get_or_none",
    "in_prune_order",
    "live_objects",
    "load_manifests",
    "plan_change",
    "plan_manifests",
    "prepare",
    "prune",
    "resource_ref",
    "three_way_patch",
    "unified_diff",
]
