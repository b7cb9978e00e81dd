"""Field selectors, Kubernetes' string syntax: ``metadata.name=x,status.phase!=Running``.

Where it sits: the one parser and matcher behind the REST API's ``fieldSelector`` parameter
(list and watch) and ``skyctl get --field-selector`` (sent to the server in HTTP mode,
applied locally in ``--etcd`` mode). Pure: no I/O, works on wire dicts (the JSON shape of an
object as stored and served).

Supported fields: ``metadata.name``, ``metadata.namespace``, ``status.phase`` and any
``spec.<path>`` (dot-separated) that leads to a scalar. Operators: ``=`` and ``==`` (equal),
``!=`` (not equal). Terms are joined by commas and all must hold; an empty selector matches
everything. As in Kubernetes, a missing field reads as the empty string; a JSON scalar reads
as its JSON text (``true``, ``10``, ``1.5``); a list or mapping equals no value. Parsing errors
are ``ValueError`` naming the offending term.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FieldRequirement", "FieldSelector", "parse_field_selector"]

_FIXED_FIELDS = ("metadata.name", "metadata.namespace", "status.phase")
_SPEC_PATH = re.compile(r"^spec(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_TERM = re.compile(r"^(?P<field>[^=!]+?)\s*(?P<op>==|!=|=)\s*(?P<value>[^=!]*)$")
_MISSING = object()


@dataclass(frozen=True)
class FieldRequirement:
    """One term: ``field`` (a dotted path) compared with ``value``; ``equal`` is False for !=."""

    field: str
    value: str
    equal: bool

    def matches(self, obj: Mapping[str, object]) -> bool:
        actual = _read(obj, self.field)
        return (actual == self.value) == self.equal


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of requirements; the empty selector matches every object."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, object]) -> bool:
        """Whether the wire dict ``obj`` satisfies every requirement."""
        return all(r.matches(obj) for r in self.requirements)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``text``; None or blank gives the empty selector. Raises ValueError on a bad term."""
    if text is None or not text.strip():
        return FieldSelector()
    requirements = []
    for raw in text.split(","):
        term = raw.strip()
        match = _TERM.match(term)
        if not match:
            raise ValueError(
                f"field selector term {term!r} is not valid: expected FIELD=VALUE, "
                "FIELD==VALUE or FIELD!=VALUE"
            )
        field = match["field"].strip()
        if field not in _FIXED_FIELDS and not _SPEC_PATH.match(field):
            raise ValueError(
                f"field selector term {term!r} is not valid: field {field!r} is not supported "
                f"(use {', '.join(_FIXED_FIELDS)} or spec.<path>)"
            )
        requirements.append(FieldRequirement(field, match["value"].strip(), match["op"] != "!="))
    return FieldSelector(tuple(requirements))


def _read(obj: Mapping[str, object], path: str) -> str | None:
    """The field at ``path`` as text: '' when missing, None when not a scalar."""
    current: object = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part, _MISSING)
        if current is _MISSING or current is None:
            return ""
    if isinstance(current, str):
        return current
    if isinstance(current, bool | int | float):
        return json.dumps(current)
    return None
