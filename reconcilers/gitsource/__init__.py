"""GitOps (DESIGN §9): keep a directory of a git repository applied, for the GitSource kind.

Where it sits: a package of ``reconcilers``. The pipeline, stage by stage::

    GitSource reconciler → fetch → decode/plan → apply

- :mod:`~reconcilers.gitsource.reconciler`: one pass over a GitSource — dependencies, fetch,
  the all-or-nothing apply as its serviceAccount (``controller.apply``), prune, drift, health;
- :mod:`~reconcilers.gitsource.plan`: the plan of a revision on request (``skyctl diff
  --gitsource``): creates, updates with their diff, prunes, each new Instance's forecast;
- :mod:`~reconcilers.gitsource.source`: what both read — credentials, labelled documents, the
  user they act as, the objects a revision drops;
- :mod:`~reconcilers.gitsource.fetch`: URL + ref → a :class:`Revision` (one ref lookup), the
  commit cached per URL, its manifests read from the object store (:class:`Checkout`);
- :mod:`~reconcilers.gitsource.transport`: the dulwich client of each scheme, credentials,
  errors made typed (:mod:`~reconcilers.gitsource.errors`).

GitHub's webhook signature check lives in ``api_types.gitops`` (the API server's webhook
endpoint uses it, and the API server may not import reconcilers).
"""

from __future__ import annotations

from reconcilers.gitsource.errors import (
    AuthenticationFailed,
    GitFetchError,
    ManifestLimitExceeded,
    PathNotFound,
    RefNotFound,
    RepositoryNotFound,
    RepositoryUnreachable,
)
from reconcilers.gitsource.fetch import (
    MANIFEST_SUFFIXES,
    Checkout,
    ManifestLimits,
    Revision,
    cache_path,
    describe_ref,
    fetch,
    remote_revision,
)
from reconcilers.gitsource.plan import BackendFactory, Planner
from reconcilers.gitsource.reconciler import FINALIZER, GitSourceReconciler, register
from reconcilers.gitsource.source import actor_of, service_account_of
from reconcilers.gitsource.transport import Credentials

__all__ = [
    "FINALIZER",
    "MANIFEST_SUFFIXES",
    "AuthenticationFailed",
    "BackendFactory",
    "Checkout",
    "Credentials",
    "GitFetchError",
    "GitSourceReconciler",
    "ManifestLimitExceeded",
    "ManifestLimits",
    "PathNotFound",
    "Planner",
    "RefNotFound",
    "RepositoryNotFound",
    "RepositoryUnreachable",
    "Revision",
    "actor_of",
    "cache_path",
    "describe_ref",
    "fetch",
    "register",
    "remote_revision",
    "service_account_of",
]
