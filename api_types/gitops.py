"""GitOps kind: GitSource keeps a directory of a git repository applied (DESIGN §9).

Where it sits: pure data, namespaced. The GitSource reconciler reads the spec, the fetch layer
(``reconcilers.gitsource.fetch``) resolves ``url`` + ``ref`` to a revision and reads the
manifests under ``path``, the apply path writes them as ``serviceAccount``; the reconciler
records what it fetched, applied and owns in the status. The labels and annotations the apply
path puts on managed objects are named here, beside the kind, because they are public contract.

"Sync now" (like Flux's ``reconcile.fluxcd.io/requestedAt``): setting the annotation
:data:`REQUESTED_AT_ANNOTATION` (``gitops.skybroker.io/requested-at``) on a GitSource to a new
value — an RFC 3339 timestamp or any opaque token — asks the reconciler to sync it at once,
without waiting for ``interval``. When the reconciler has handled a request it echoes the value
into ``status.lastHandledRequest``, so a client that wrote a value knows its request is done
once the two are equal (``skyctl sync --wait``). Two writers of it: ``skyctl sync`` and the
webhook endpoint ``POST /hooks/gitsources/{namespace}/{name}`` (``apiserver.hooks``), which
accepts a delivery only with GitHub's :data:`SIGNATURE_HEADER`, checked here by
:func:`verify_github_signature` (a pure function, so both the API server and the reconcilers
may use it).

"Plan" (``skyctl diff --gitsource NAME [--revision REF]``): setting
:data:`PLAN_REQUESTED_AT_ANNOTATION` (``gitops.skybroker.io/plan-requested-at``) to a new value,
with :data:`PLAN_REVISION_ANNOTATION` (``gitops.skybroker.io/plan-revision``) naming what to
plan (:meth:`GitRef.parse`; absent = ``spec.ref``), asks the reconciler — the process that has
the clouds' catalogues and the scheduler — for the plan of that revision: it fetches it, dry-runs
every document as the serviceAccount, lists the prunes, forecasts where each new Instance would
be placed, and writes it all to ``status.plan`` (:class:`GitPlan`, bounded) with the request's
value in ``status.plan.request``. Nothing of the revision is written to the store.

Every field is checked at admission, so a GitSource that could never work (an ``ftp://`` URL,
two refs, a path escaping the repository, an interval of a century) is refused with the field
named instead of failing on every poll:

- ``url``: one of the schemes dulwich speaks (file, git, http, https, ssh); a host for every
  scheme but file; no password in the URL (it would be stored and shown in clear — credentials
  live in the Secret named by ``credentialsRef``);
- ``ref``: exactly one of ``branch``, ``tag``, ``commit`` (a full 40-hex sha1);
- ``path``: relative to the repository root, ``/``-separated, no ``..`` component;
- ``interval``/``timeout``: durations such as ``"90s"``, ``"5m"``, ``"1h30m"``, within bounds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from api_types.common import ObjectName, bounded_duration, duration_seconds, field_error
from api_types.meta import PhaselessStatus, Resource, Scope, WireModel
from api_types.validation import split_url, validate_token

__all__ = [
    "GIT_URL_SCHEMES",
    "MAX_INTERVAL_SECONDS",
    "MAX_PLAN_CHANGES",
    "MAX_PLAN_DIFF_CHARS",
    "MAX_TIMEOUT_SECONDS",
    "MIN_INTERVAL_SECONDS",
    "PLAN_REQUESTED_AT_ANNOTATION",
    "PLAN_REVISION_ANNOTATION",
    "PRUNE_ANNOTATION",
    "PRUNE_DISABLED",
    "REQUESTED_AT_ANNOTATION",
    "REVISION_ANNOTATION",
    "SIGNATURE_HEADER",
    "SOURCE_LABEL",
    "WEBHOOK_SECRET_KEY",
    "GitArtifact",
    "GitPlan",
    "GitRef",
    "GitSource",
    "GitSourceCondition",
    "GitSourceDependency",
    "GitSourceSpec",
    "GitSourceStatus",
    "InventoryEntry",
    "LocalSecretReference",
    "PlanAction",
    "PlannedChange",
    "PlannedPlacement",
    "duration_seconds",
    "github_signature",
    "source_label_value",
    "verify_github_signature",
]

#: Label on every object a GitSource applied: ``{namespace}.{name}`` of the GitSource.
SOURCE_LABEL = "gitops.skybroker.io/source"
#: Annotation on every applied object: the revision it was applied from.
REVISION_ANNOTATION = "gitops.skybroker.io/revision"
#: Annotation that keeps an object when it leaves git (value :data:`PRUNE_DISABLED`).
PRUNE_ANNOTATION = "gitops.skybroker.io/prune"
PRUNE_DISABLED = "disabled"
#: Annotation on a GitSource asking for a sync at once; its value is echoed, once handled, in
#: ``status.lastHandledRequest``.
REQUESTED_AT_ANNOTATION = "gitops.skybroker.io/requested-at"
#: Annotation on a GitSource asking for a plan; its value is echoed in ``status.plan.request``.
PLAN_REQUESTED_AT_ANNOTATION = "gitops.skybroker.io/plan-requested-at"
#: Annotation naming the revision to plan (:meth:`GitRef.parse`); absent = ``spec.ref``.
PLAN_REVISION_ANNOTATION = "gitops.skybroker.io/plan-revision"
#: ``status.plan`` lists at most this many changes (the rest are counted in ``omitted``) ...
MAX_PLAN_CHANGES = 100
#: ... and each change's diff at most this many characters, so the status stays small.
MAX_PLAN_DIFF_CHARS = 2048

#: The header GitHub signs webhook deliveries with (HMAC-SHA256 of the raw body).
SIGNATURE_HEADER = "X-Hub-Signature-256"
#: The entry of the ``spec.webhookSecretRef`` Secret that keys the webhook's signature.
WEBHOOK_SECRET_KEY = "webhookSecret"
_SIGNATURE_PREFIX = "sha256="

#: URL schemes the fetch layer speaks.
GIT_URL_SCHEMES = ("file", "git", "http", "https", "ssh")
_MAX_URL_LENGTH = 2048
_MAX_PATH_LENGTH = 1024
_MAX_REF_LENGTH = 255
_MAX_DEPENDENCIES = 64

#: Polling more often than this only loads the git server: a webhook syncs at once.
MIN_INTERVAL_SECONDS = 5
#: One week.
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
#: Waiting for health longer than a day means something else is wrong.
MAX_TIMEOUT_SECONDS = 24 * 3600

#: What git refuses in a ref name (git-check-ref-format), plus whitespace and control chars.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA1 = re.compile(r"[0-9a-f]{40}")


def source_label_value(namespace: str, name: str) -> str:
    """The :data:`SOURCE_LABEL` value of GitSource ``namespace/name``."""
    return f"{namespace}.{name}"


def github_signature(secret: bytes, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value GitHub sends for ``body``: ``sha256=<hex HMAC>``."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if ``header`` is GitHub's signature of ``body`` with ``secret``.

    A missing header, another scheme (``sha1=``) or an empty secret is False; the comparison
    takes the same time wherever the strings differ.
    """
    if not secret or header is None:
        return False
    given = header.strip()
    if not given.startswith(_SIGNATURE_PREFIX):
        return False
    expected = github_signature(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


def _validate_git_url(value: str) -> str:
    if len(value) > _MAX_URL_LENGTH:
        raise ValueError(f"must be no more than {_MAX_URL_LENGTH} characters (got {len(value)})")
    parts = split_url(value)
    if parts.scheme not in GIT_URL_SCHEMES:
        raise ValueError(f"{value!r}: the scheme must be one of {', '.join(GIT_URL_SCHEMES)}")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"{value!r}: a file URL is file:///absolute/path (no host)")
    elif not parts.hostname:
        raise ValueError(f"{value!r} has no host")
    if parts.password is not None:
        raise ValueError(
            "must not contain a password (it would be stored and shown in clear): "
            "put it in the Secret named by credentialsRef"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a repository URL has no query or fragment")
    return value


def _validate_ref_name(value: str) -> str:
    if not 1 <= len(value) <= _MAX_REF_LENGTH:
        raise ValueError(f"must be 1-{_MAX_REF_LENGTH} characters (got {len(value)})")
    if (
        _BAD_REF_CHARS.search(value)
        or ".." in value
        or "//" in value
        or "@{" in value
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
    ):
        raise ValueError(f"{value!r} is not a valid git branch or tag name")
    return value


def _validate_commit(value: str) -> str:
    if not _SHA1.fullmatch(value):
        raise ValueError(f"{value!r} is not a commit: give the full 40-hex sha1 in lower case")
    return value


def _validate_repo_path(value: str) -> str:
    if not 1 <= len(value) <= _MAX_PATH_LENGTH:
        raise ValueError(f"must be 1-{_MAX_PATH_LENGTH} characters (got {len(value)})")
    if value.startswith("/") or "\\" in value or not value.isprintable():
        raise ValueError(f"{value!r} must be a path relative to the repository root, '/'-separated")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..': it stays inside the repository")
    return value


GitUrl = Annotated[str, AfterValidator(_validate_git_url)]
RefName = Annotated[str, AfterValidator(_validate_ref_name)]
CommitSha = Annotated[str, AfterValidator(_validate_commit)]
RepoPath = Annotated[str, AfterValidator(_validate_repo_path)]
UserName = Annotated[str, AfterValidator(validate_token)]
Interval = Annotated[StrictStr, bounded_duration(MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS)]
Timeout = Annotated[StrictStr, bounded_duration(1, MAX_TIMEOUT_SECONDS)]


class GitRef(WireModel):
    """What to follow in the repository: exactly one of a branch, a tag or a commit."""

    branch: RefName | None = Field(None, description="Branch to follow, e.g. main.")
    tag: RefName | None = Field(None, description="Tag to apply, e.g. v1.2.0.")
    commit: CommitSha | None = Field(None, description="Commit to apply: a full 40-hex sha1.")

    @classmethod
    def parse(cls, text: str) -> GitRef:
        """A ref written on one line: a full commit sha1, or a revision as the status shows
        it (``main@sha1:<hex>``: its commit), ``refs/tags/NAME`` or ``tags/NAME`` (a tag),
        ``refs/heads/NAME`` or a plain ``NAME`` (a branch). ValueError says what is wrong."""
        value = text.strip()
        if "@sha1:" in value:
            given = {"commit": value.rsplit("@sha1:", 1)[1]}
        elif _SHA1.fullmatch(value):
            given = {"commit": value}
        elif value.startswith(("refs/tags/", "tags/")):
            given = {"tag": value.split("tags/", 1)[1]}
        else:
            given = {"branch": value.removeprefix("refs/heads/")}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"revision {text!r}: {reason}") from None

    @model_validator(mode="after")
    def _exactly_one(self) -> GitRef:
        given = [name for name in ("branch", "tag", "commit") if getattr(self, name) is not None]
        if not given:
            raise field_error(("branch",), "exactly one of branch, tag or commit is required", None)
        if len(given) > 1:
            raise field_error(
                (given[1],),
                f"must not be set together with {given[0]}: give exactly one of branch, tag "
                "or commit",
                getattr(self, given[1]),
            )
        return self


class LocalSecretReference(WireModel):
    """A Secret in the GitSource's own namespace (a tenant cannot point into another)."""

    name: ObjectName = Field(description="Name of the Secret.")


class GitSourceDependency(WireModel):
    """Another GitSource of the same namespace that must be Ready first."""

    name: ObjectName = Field(description="Name of the GitSource.")


class GitSourceSpec(WireModel):
    url: GitUrl = Field(
        description="Repository URL: file://, git://, http(s):// or ssh:// (no password in it)."
    )
    ref: GitRef = Field(
        default_factory=lambda: GitRef(branch="main"),
        description="Exactly one of {branch}, {tag} or {commit}; default {branch: main}.",
    )
    path: RepoPath | None = Field(
        None,
        description="Directory applied recursively (*.yaml, *.yml, *.json); absent = the "
        "repository root.",
    )
    interval: Interval = Field(
        "60s", description="How often the ref is looked up, e.g. 60s or 5m (5s to 168h)."
    )
    prune: StrictBool = Field(
        False, description="Delete the objects that left git (in reverse kind order)."
    )
    wait: StrictBool = Field(False, description="Ready only when every applied object is Ready.")
    timeout: Timeout = Field(
        "5m", description="How long to wait for the applied objects' health (1s to 24h)."
    )
    depends_on: Annotated[list[GitSourceDependency], Field(max_length=_MAX_DEPENDENCIES)] = Field(
        default_factory=list,
        description="GitSources of this namespace that must be Ready before this one applies.",
    )
    suspend: StrictBool = Field(False, description="Stop syncing (nothing fetched or applied).")
    credentials_ref: LocalSecretReference | None = Field(
        None,
        description="Secret with username/password (http) or identity + known_hosts (ssh).",
    )
    webhook_secret_ref: LocalSecretReference | None = Field(
        None,
        description="Secret whose webhookSecret entry keys the webhook's HMAC signature "
        "(absent = the webhook refuses every delivery).",
    )
    service_account: UserName | None = Field(
        None,
        description="The user the apply is authorised as; absent = "
        "system:gitsource:{namespace}:{name}. Setting it takes being that user, or RBAC verb "
        "impersonate on users/{that user}.",
    )

    @model_validator(mode="after")
    def _dependencies_are_distinct(self) -> GitSourceSpec:
        seen: set[str] = set()
        for index, dependency in enumerate(self.depends_on):
            if dependency.name in seen:
                raise field_error(("dependsOn", index, "name"), "is listed twice", dependency.name)
            seen.add(dependency.name)
        return self

    @property
    def interval_seconds(self) -> int:
        return duration_seconds(self.interval)

    @property
    def timeout_seconds(self) -> int:
        return duration_seconds(self.timeout)


class GitArtifact(WireModel):
    """The revision last fetched, and when."""

    revision: str = Field(min_length=1, description="e.g. main@sha1:<hex>.")
    fetched_at: datetime = Field(description="When it was fetched (RFC 3339).")


class InventoryEntry(WireModel):
    """One object the GitSource applied and manages."""

    kind: str = Field(min_length=1, description="Kind of the object.")
    namespace: str | None = Field(None, description="Namespace; absent for cluster-scoped kinds.")
    name: str = Field(min_length=1, description="Name of the object.")
    uid: str | None = Field(None, description="UID of the object when it was applied.")


class PlannedPlacement(WireModel):
    """Where a new Instance would be placed (a forecast: see ``status.plan``)."""

    member: str | None = Field(None, description="The pool member key; absent without a pool.")
    account: str = Field(description="The ProviderAccount.")
    region: str = Field(description="The region.")
    zone: str | None = Field(None, description="The zone, when the account reports zones.")
    size: str | None = Field(None, description="The cloud size (instance type).")
    price_per_hour: float | None = Field(
        None, description="The size's hourly price, when the catalogue gives one."
    )


class PlanAction(StrEnum):
    CREATE = "Create"
    UPDATE = "Update"
    PRUNE = "Prune"


class PlannedChange(WireModel):
    """One object the planned revision would create, update or prune."""

    action: PlanAction = Field(description="Create, Update or Prune.")
    kind: str = Field(min_length=1, description="Kind of the object.")
    namespace: str | None = Field(None, description="Namespace; absent for cluster-scoped kinds.")
    name: str = Field(min_length=1, description="Name of the object.")
    fields: list[str] = Field(
        default_factory=list, description="Update: the fields that would change."
    )
    diff: str | None = Field(
        None, description="Update: unified diff of the live and the merged object (bounded)."
    )
    placement: PlannedPlacement | None = Field(
        None, description="New Instance: where it would be placed now."
    )
    unplaced: str | None = Field(None, description="New Instance: why no member could take it now.")


class GitPlan(WireModel):
    """The plan of a revision, computed on request (see the module): nothing of it written."""

    request: str = Field(description="The plan-requested-at value this plan answers.")
    revision: str | None = Field(None, description="The revision planned, e.g. main@sha1:<hex>.")
    computed_at: datetime = Field(description="When the plan was computed.")
    changes: list[PlannedChange] = Field(
        default_factory=list, description="Creates and updates in apply order, then prunes."
    )
    unchanged: int = Field(0, ge=0, description="Objects of the revision already as git says.")
    omitted: int = Field(
        0, ge=0, description="Changes left out of the list to keep the status small."
    )
    error: str | None = Field(
        None,
        description="Why the revision cannot be planned or applied (file, document and field), "
        "or cannot be fetched.",
    )


class GitSourceCondition(StrEnum):
    """The condition types a GitSource reports."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    HEALTHY = "Healthy"


class GitSourceStatus(PhaselessStatus):
    """What was fetched, attempted, applied and is managed; conditions say how it went."""

    artifact: GitArtifact | None = Field(None, description="The revision last fetched.")
    last_applied_revision: str | None = Field(
        None, description="The revision whose documents are all applied."
    )
    last_attempted_revision: str | None = Field(
        None, description="The revision last tried (differs from lastAppliedRevision on failure)."
    )
    inventory: list[InventoryEntry] = Field(
        default_factory=list, description="Objects applied from git and managed (pruned later)."
    )
    last_handled_request: str | None = Field(
        None,
        description="The last gitops.skybroker.io/requested-at value the reconciler handled "
        "(equal to the annotation once a requested sync is done).",
    )
    plan: GitPlan | None = Field(
        None, description="The last plan requested with gitops.skybroker.io/plan-requested-at."
    )


class GitSource(Resource):
    """Keeps a directory of a git repository applied: fetched, validated, applied, pruned."""

    KIND: ClassVar[str] = "GitSource"
    PLURAL: ClassVar[str] = "gitsources"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["GitSource"] = Field("GitSource", description="GitSource.")
    spec: GitSourceSpec = Field(description="Repository, ref, path, interval and apply options.")
    status: GitSourceStatus = Field(
        default_factory=GitSourceStatus, description="Fetched and applied revisions, inventory."
    )

    @model_validator(mode="after")
    def _does_not_depend_on_itself(self) -> GitSource:
        for index, dependency in enumerate(self.spec.depends_on):
            if dependency.name == self.metadata.name:
                raise field_error(
                    ("spec", "dependsOn", index, "name"),
                    "a GitSource cannot depend on itself",
                    dependency.name,
                )
        return self
