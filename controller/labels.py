"""Label selectors, Kubernetes' string syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``.

Where it sits: used by the store's list, the informer cache, the REST API's
``labelSelector`` parameter and ``skyctl -l``. Parsing errors name the offending term.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from controller.errors import SkybrokerError

__all__ = ["LabelSelector", "SelectorError"]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[A-Za-z0-9_.-]*"
_TERM = re.compile(
    rf"^\s*(?:(?P<not>!)\s*(?P<nkey>{_KEY})"
    rf"|(?P<key>{_KEY})\s*(?:(?P<op>==|!=|=)\s*(?P<value>{_VALUE})"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


class SelectorError(SkybrokerError, ValueError):
    """A label selector string does not parse."""


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


@dataclass(frozen=True)
class LabelSelector:
    """A parsed Kubernetes label selector (``a=b,c!=d,e in (f,g),!h``); matches label maps."""
    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if text is None or not text.strip():
            return cls()
        requirements = []
        for term in _split_terms(text):
            match = _TERM.match(term)
            if not match:
                raise SelectorError(f"label selector term {term.strip()!r} is not valid")
            if match["nkey"]:
                requirements.append(_Requirement(match["nkey"], "!exists"))
            elif match["op"]:
                operator = "notin" if match["op"] == "!=" else "in"
                requirements.append(
                    _Requirement(match["key"], operator, frozenset([match["value"]]))
                )
            elif match["setop"]:
                values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
                requirements.append(_Requirement(match["key"], match["setop"], values))
            else:
                requirements.append(_Requirement(match["key"], "exists"))
        return cls(tuple(requirements))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(_Requirement(k, "in", frozenset([v])) for k, v in labels.items()))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)
