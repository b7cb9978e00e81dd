"""The registry of kinds: lookup by kind or plural, generic parsing, error paths, JSON Schema.

Where it sits: the one place that knows every kind. The store decodes values with
:func:`parse_object`, the API server maps REST paths with :func:`by_plural` and turns a
``ValidationError`` into Kubernetes-style field causes with :func:`field_errors`, the OpenAPI
document and ``skyctl explain`` come from :func:`json_schema`, and the apply engine
(``controller.apply``) sorts by :data:`APPLY_ORDER` and honours :data:`PRUNE_ANNOTATION`.

Plural rule (DESIGN §2): the kind in lower case + ``s``; it is checked when this module loads.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails

from api_types.accesskeys import AccessKey
from api_types.accounts import HardwareProfile, ProviderAccount
from api_types.bootconfigs import BootConfig
from api_types.clusters import VirtualCluster
from api_types.compute import Instance
from api_types.events import Event
from api_types.gitops import PRUNE_ANNOTATION, PRUNE_DISABLED, GitSource
from api_types.meta import Resource, Scope, WireModel
from api_types.network import Firewall, Subnet
from api_types.pools import Pool
from api_types.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from api_types.storage import Volume
from api_types.tenancy import Namespace, Quota, Secret

__all__ = [
    "APPLY_ORDER",
    "PRUNE_ANNOTATION",
    "PRUNE_DISABLED",
    "KindInfo",
    "UnknownKindError",
    "all_kinds",
    "apply_rank",
    "by_kind",
    "by_plural",
    "field_errors",
    "json_schema",
    "lookup",
    "parse_object",
]

_MODELS: tuple[type[Resource], ...] = (
    Namespace,
    ProviderAccount,
    Pool,
    HardwareProfile,
    ClusterRole,
    ClusterRoleBinding,
    AccessKey,
    Instance,
    Subnet,
    Firewall,
    Volume,
    Quota,
    Secret,
    Role,
    RoleBinding,
    Event,
    GitSource,
    VirtualCluster,
    BootConfig,
)


#: The order in which the apply engine writes a set of objects (DESIGN §9): what others refer
#: to comes first; prune deletes in reverse. Kind names, so the kind-independent engine
#: (``controller.apply``) can sort without importing a kind; kinds not listed come after.
#: The RBAC kinds follow DESIGN's list, roles before the bindings that name them: escalation
#: prevention (``apiserver.escalation``) checks a binding against the rules of its role, so a
#: binding planned before its role would be refused.
APPLY_ORDER: tuple[str, ...] = (
    "Namespace",
    "Secret",
    "AccessKey",
    "ProviderAccount",
    "HardwareProfile",
    "Pool",
    "Quota",
    "Subnet",
    "Firewall",
    "BootConfig",
    "VirtualCluster",
    "Instance",
    "Volume",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
)
# PRUNE_ANNOTATION/PRUNE_DISABLED (imported above) are re-exported for the apply engine, which
# may import the registry but no kind module; they are defined beside GitSource, as contract.
_APPLY_RANK = {kind: rank for rank, kind in enumerate(APPLY_ORDER)}


def apply_rank(kind: str) -> int:
    """The position of ``kind`` in :data:`APPLY_ORDER`; every unlisted kind ranks after it
    (equal among themselves, so a stable sort keeps their given order)."""
    return _APPLY_RANK.get(kind, len(APPLY_ORDER))


class UnknownKindError(LookupError):
    """A kind or plural that is not registered; the message lists the known ones."""


@dataclass(frozen=True)
class KindInfo:
    """What the generic runtime needs to know about one kind."""

    kind: str
    plural: str
    model: type[Resource]
    scope: Scope

    @property
    def namespaced(self) -> bool:
        return self.scope is Scope.NAMESPACED

    @property
    def has_status(self) -> bool:
        """False for kinds without a status subresource (Secret, RBAC kinds, Event)."""
        return self.model.HAS_STATUS

    @property
    def last_applied_keys_only(self) -> tuple[str, ...]:
        """Top-level fields whose values stay out of the last-applied annotation (Secret's
        ``data`` and ``stringData``): only their keys are recorded there."""
        return self.model.LAST_APPLIED_KEYS_ONLY


def _info(model: type[Resource]) -> KindInfo:
    if not model.KIND or model.KIND.lower() + "s" != model.PLURAL:
        raise AssertionError(f"{model.__name__}: PLURAL must be KIND.lower() + 's'")
    return KindInfo(kind=model.KIND, plural=model.PLURAL, model=model, scope=model.SCOPE)


_KINDS: tuple[KindInfo, ...] = tuple(_info(model) for model in _MODELS)
_BY_KIND = {info.kind: info for info in _KINDS}
_BY_PLURAL = {info.plural: info for info in _KINDS}
assert len(_BY_KIND) == len(_BY_PLURAL) == len(_KINDS), "duplicate kind or plural"


def all_kinds() -> tuple[KindInfo, ...]:
    """Every registered kind, cluster-scoped ones first."""
    return _KINDS


def _known(names: typing.Iterable[str]) -> str:
    return ", ".join(sorted(names))


def by_kind(kind: str) -> KindInfo:
    """The kind named exactly ``kind`` (e.g. ``"Instance"``)."""
    try:
        return _BY_KIND[kind]
    except (KeyError, TypeError):
        raise UnknownKindError(f"unknown kind {kind!r}; known kinds: {_known(_BY_KIND)}") from None


def by_plural(plural: str) -> KindInfo:
    """The kind whose plural is exactly ``plural`` (e.g. ``"instances"``)."""
    try:
        return _BY_PLURAL[plural]
    except (KeyError, TypeError):
        raise UnknownKindError(
            f"unknown resource {plural!r}; known resources: {_known(_BY_PLURAL)}"
        ) from None


def lookup(name: str) -> KindInfo:
    """Forgiving lookup for the CLI: kind, plural or singular, any letter case."""
    folded = name.lower()
    for info in _KINDS:
        if folded in (info.kind.lower(), info.plural):
            return info
    raise UnknownKindError(f"unknown kind or resource {name!r}; known: {_known(_BY_PLURAL)}")


def parse_object(data: Mapping[str, Any]) -> Resource:
    """Validate a manifest with the model of its ``kind``.

    Raises ``ValidationError`` (field ``kind`` missing or not a string, or any field of the
    kind invalid) or :class:`UnknownKindError` (a kind that is not registered).
    ``metadata.namespace`` may be absent for a namespaced kind (the caller knows it from the
    path or key); for a cluster-scoped kind it is dropped, as Kubernetes does.
    """
    if not isinstance(data, Mapping):
        raise ValidationError.from_exception_data(
            "Resource",
            [
                InitErrorDetails(
                    type="model_type", loc=(), input=data, ctx={"class_name": "Resource"}
                )
            ],
        )
    if "kind" not in data:
        raise ValidationError.from_exception_data(
            "Resource", [InitErrorDetails(type="missing", loc=("kind",), input=dict(data))]
        )
    kind = data["kind"]
    if not isinstance(kind, str):
        raise ValidationError.from_exception_data(
            "Resource", [InitErrorDetails(type="string_type", loc=("kind",), input=kind)]
        )
    return by_kind(kind).model.model_validate(dict(data))


@cache
def _json_schema(kind: str) -> dict[str, Any]:
    return by_kind(kind).model.model_json_schema(by_alias=True)


def json_schema(kind: str) -> dict[str, Any]:
    """JSON Schema (wire names, with field descriptions) of ``kind``; a fresh copy each call."""
    return copy.deepcopy(_json_schema(kind))


# --------------------------------------------------------------------------- error paths

_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


def _members(annotation: Any) -> list[Any]:
    """The concrete types behind Annotated/Optional/Union wrappers (None dropped)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    if annotation is type(None):
        return []
    return [annotation]


def _model_classes() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    pending: list[type[BaseModel]] = [WireModel]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    found.update({info.model.__name__: info.model for info in _KINDS})
    return found


def _wire_path(title: str, error: ErrorDetails) -> str:
    loc = error["loc"]
    root = _model_classes().get(title)
    candidates: list[Any] = [] if root is None else [root]
    parts: list[str] = []
    for position, segment in enumerate(loc):
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
            candidates = [
                m
                for c in candidates
                if get_origin(c) in (list, tuple, set, frozenset)
                for m in _members(get_args(c)[0])
            ]
            continue
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        field = next(
            (
                (name, info)
                for model in models
                for name, info in model.model_fields.items()
                if segment in (name, info.alias)
            ),
            None,
        )
        if field is not None:
            name, info = field
            parts.append("." + (info.alias or name))
            candidates = _members(info.annotation)
            continue
        dicts = [c for c in candidates if get_origin(c) is dict]
        if dicts:
            parts.append("." + segment)
            candidates = [m for d in dicts for m in _members(get_args(d)[1])]
            continue
        last = position == len(loc) - 1
        if not candidates or (last and error["type"] == "extra_forbidden"):
            parts.append("." + segment)  # unknown structure, or the unknown field itself
            candidates = []
        # otherwise: a union tag ("value"/"range", "function-after[…]"): not part of the path
    return "".join(parts).lstrip(".")


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = error["msg"]
    for prefix in _MESSAGE_PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted wire path such as ``spec.hardware.cpu`` or ``spec.rules[0].ports``, message)
    for every error of ``exc``; list indices are written ``[i]``, the root is ``""``."""
    return [(_wire_path(exc.title, error), _message(error)) for error in exc.errors()]
