"""EC2 ``Filter.N`` semantics over an action's answer items.

Where it sits: used by the Describe actions after they have listed what the caller may see
(``params.Params.filters`` decodes the filters). EC2's rules: an item passes when it matches
every filter; it matches a filter when any of the filter's values matches any of the item's
values for that name; values may use ``*`` (any run) and ``?`` (one character), case-
sensitively. A filter name the action does not know is refused with ``InvalidParameterValue``,
as EC2 does, rather than silently matching everything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TypeVar

from apiserver.ec2.errors import Ec2Error

__all__ = ["apply_filters"]

T = TypeVar("T")


def _matches(patterns: Iterable[str], values: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns for value in values)


def apply_filters(
    items: Iterable[T],
    filters: Mapping[str, Sequence[str]],
    supported: Collection[str],
    attributes: Callable[[T], Mapping[str, Sequence[str]]],
) -> list[T]:
    """The items that pass every filter (EC2's rules, the module docstring)."""
    for name in filters:
        if name not in supported:
            raise Ec2Error(
                "InvalidParameterValue",
                f"The filter '{name}' is invalid; this action supports "
                f"{', '.join(sorted(supported))}",
            )
    return [
        item
        for item in items
        if all(
            _matches(patterns, attributes(item).get(name, ())) for name, patterns in filters.items()
        )
    ]
