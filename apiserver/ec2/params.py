"""EC2 Query parameters in: the request's flat ``name=value`` pairs and the list helpers.

Where it sits: the first step of the EC2 front door after the body is read (``routes``), and
the vocabulary actions read their input with. An EC2 Query request carries its parameters as
``application/x-www-form-urlencoded`` pairs — the form body of a POST, the query string of a
GET (and of a presigned URL, beside its ``X-Amz-*`` signature parameters). :func:`parse_pairs`
decodes them once; the signature check (``sigv4``) and the action both read that one decoding,
so what was signed is what is acted on.

Lists are flattened with 1-based indexes, as EC2 does::

    InstanceId.1=i-…&InstanceId.2=i-…                       Params.strings("InstanceId")
    Filter.1.Name=state&Filter.1.Value.1=running            Params.filters()
    TagSpecification.1.ResourceType=instance
    TagSpecification.1.Tag.1.Key=Name&…Tag.1.Value=web     Params.tag_specifications()

Indexes need not be contiguous (clients skip none, but EC2 accepts gaps); entries come back in
index order. Every refusal names the parameter: ``MissingParameter`` for an absent required
one, ``InvalidParameterValue`` for a value that does not parse (an integer out of range, a
boolean that is not ``true``/``false``, a duplicate name).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from apiserver.ec2.errors import Ec2Error, invalid_parameter, missing_parameter

__all__ = [
    "API_VERSION",
    "MAX_PARAMETERS",
    "Params",
    "TagSpecification",
    "parse_pairs",
]

API_VERSION = "2016-11-15"
#: More pairs than this is not a request any EC2 client makes (a RunInstances with every
#: option and fifty tags stays far below): refused before anything looks at them.
MAX_PARAMETERS = 2000
_INDEX = re.compile(r"[1-9][0-9]{0,5}")


def parse_pairs(encoded: bytes, where: str) -> list[tuple[str, str]]:
    """The ``name=value`` pairs of a form body or query string, in order (``+`` is a space,
    as in any form encoding); ``InvalidParameterValue`` for bytes that are not one."""
    try:
        text = encoded.decode("ascii")
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMETERS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        reason = "too many parameters" if "Max number" in str(exc) else "not form-encoded UTF-8"
        raise Ec2Error("InvalidParameterValue", f"The {where} is {reason}") from None


@dataclass(frozen=True)
class TagSpecification:
    """One ``TagSpecification.N``: the resource type it applies to and its tags, in order."""

    resource_type: str | None
    tags: dict[str, str]


class Params:
    """An action's parameters by name (``Action``, ``Version`` and the signature's ``X-Amz-*``
    included; actions ignore what they do not ask for)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        values: dict[str, str] = {}
        for name, value in pairs:
            if name in values:
                raise invalid_parameter(name, "the parameter is given more than once")
            values[name] = value
        self._values = values

    @property
    def values(self) -> Mapping[str, str]:
        return self._values

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def require(self, name: str) -> str:
        value = self._values.get(name)
        if value is None or value == "":
            raise missing_parameter(name)
        return value

    def integer(self, name: str, minimum: int, maximum: int) -> int | None:
        """An optional integer parameter in ``[minimum, maximum]``."""
        raw = self._values.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"-?[0-9]{1,10}", raw):
            raise invalid_parameter(name, f"{raw!r} is not an integer")
        value = int(raw)
        if not minimum <= value <= maximum:
            raise invalid_parameter(name, f"{value} is not between {minimum} and {maximum}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self._values.get(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise invalid_parameter(name, f"{raw!r} is neither true nor false")
        return raw.lower() == "true"

    def _indexed(self, prefix: str) -> Iterator[tuple[int, str, str]]:
        """``(index, rest, value)`` of every ``{prefix}.{index}{rest}`` parameter."""
        start = f"{prefix}."
        for name, value in self._values.items():
            if not name.startswith(start):
                continue
            index, dot, rest = name[len(start) :].partition(".")
            if not _INDEX.fullmatch(index):
                raise invalid_parameter(name, "the list index must be a positive integer")
            yield int(index), dot + rest, value

    def strings(self, prefix: str) -> list[str]:
        """The values of ``{prefix}.1``, ``{prefix}.2``, … in index order."""
        found: dict[int, str] = {}
        for index, rest, value in self._indexed(prefix):
            if rest:
                raise invalid_parameter(f"{prefix}.{index}{rest}", "unexpected nested parameter")
            found[index] = value
        return [found[index] for index in sorted(found)]

    def _groups(self, prefix: str) -> list[tuple[int, Params]]:
        """``{prefix}.N.*`` grouped by N, each group's parameters without the ``{prefix}.N.``."""
        groups: dict[int, list[tuple[str, str]]] = {}
        for index, rest, value in self._indexed(prefix):
            if not rest:
                raise invalid_parameter(f"{prefix}.{index}", "a structure is expected here")
            groups.setdefault(index, []).append((rest[1:], value))
        return [(index, Params(groups[index])) for index in sorted(groups)]

    def structures(self, prefix: str) -> list[tuple[int, Params]]:
        """``{prefix}.N.*`` as ``(N, its parameters without the {prefix}.N. part)``, in index
        order: a list of structures such as ``IpPermissions.N`` (``IpProtocol``, ``FromPort``,
        ``IpRanges.M.CidrIp`` …), each read with this class's own methods."""
        return self._groups(prefix)

    def filters(self) -> dict[str, list[str]]:
        """``Filter.N.Name`` → its ``Filter.N.Value.M`` values (two filters of one name: their
        values together, as EC2 reads them)."""
        filters: dict[str, list[str]] = {}
        for index, group in self._groups("Filter"):
            name = group.require_named("Name", f"Filter.{index}.Name")
            filters.setdefault(name, []).extend(group.strings("Value"))
        return filters

    def tags(self, prefix: str = "Tag", shown: str | None = None) -> dict[str, str | None]:
        """``{prefix}.N.Key`` → ``{prefix}.N.Value`` in index order; None where the value is
        absent (DeleteTags tells "any value" from an empty one); a key given twice is refused.
        Errors name the parameter as ``{shown}.N.Key`` (``shown`` defaults to ``prefix``)."""
        tags: dict[str, str | None] = {}
        for index, tag in self._groups(prefix):
            where = f"{shown or prefix}.{index}"
            key = tag.require_named("Key", f"{where}.Key")
            if key in tags:
                raise invalid_parameter(f"{where}.Key", f"duplicate tag key {key!r}")
            tags[key] = tag.get("Value")
        return tags

    def tag_specifications(self) -> list[TagSpecification]:
        """``TagSpecification.N.ResourceType`` and its ``Tag.M.Key``/``Tag.M.Value`` pairs."""
        specifications: list[TagSpecification] = []
        for index, group in self._groups("TagSpecification"):
            tags = group.tags("Tag", f"TagSpecification.{index}.Tag")
            specifications.append(
                TagSpecification(group.get("ResourceType"), {k: v or "" for k, v in tags.items()})
            )
        return specifications

    def require_named(self, name: str, full_name: str) -> str:
        """Like :meth:`require`, the error naming the parameter by ``full_name``."""
        value = self._values.get(name)
        if value is None or value == "":
            raise missing_parameter(full_name)
        return value
