"""kubectl's JSONPath templates, for ``-o jsonpath=…``, ``-o custom-columns=…`` and
``wait --for=jsonpath=…``.

Where it sits: a pure function of a wire dict, used by the printers (``skyctl.output``)
and by ``wait``. The subset is kubectl's (https://kubernetes.io/docs/reference/kubectl/jsonpath/):

- text outside braces is printed as is; ``{"\\n"}`` and ``{"\\t"}`` are string literals;
- ``{.metadata.name}``, ``{$.items[0]}``, ``{@.x}`` (``$``/``@`` = the current object);
- ``.*`` and ``[*]`` (every member), ``..name`` (recursive descent), ``[N]``, ``[-1]``,
  ``[start:end:step]``, ``['key.with.dots']``, ``\\.`` escaping a dot in a field name;
- filters ``[?(@.status.phase=="Running")]`` with ``== != < <= > >=`` against a string, a number
  or another path, and ``[?(@.x)]`` (the field exists);
- ``{range .items[*]}…{end}`` repeats its body with each result as the current object.

As in ``kubectl get``, a missing field yields nothing (not an error); several results of one
expression are joined with spaces; strings print raw, other values as JSON. A template that
does not parse raises :class:`JsonPathError` naming the position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from controller.errors import SkybrokerError

__all__ = ["JsonPathError", "Template", "format_value", "parse_path"]


class JsonPathError(SkybrokerError, ValueError):
    """A template that does not parse."""


# --------------------------------------------------------------------------- paths

_FIELD = re.compile(r"(?:\\.|[^.\[\]\\\s=!<>()])+")
_SLICE = re.compile(r"^\s*(-?\d*)\s*(?::\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?)?$")
_COMPARISON = re.compile(r"^(.*?)\s*(==|!=|<=|>=|<|>)\s*(.*)$")


@dataclass(frozen=True)
class _Step:
    """One step of a path: ``field`` (None = every member), ``recursive`` (``..``),
    ``index`` (a slice or a number), or ``test`` (a filter)."""

    field: str | None = None
    recursive: bool = False
    index: slice | int | None = None
    test: _Filter | None = None


@dataclass(frozen=True)
class _Filter:
    left: _Path
    operator: str | None = None  # None: the left side exists
    right: _Path | Any = None


@dataclass(frozen=True)
class _Path:
    steps: tuple[_Step, ...]

    def results(self, root: Any) -> list[Any]:
        current = [root]
        for step in self.steps:
            current = [found for value in current for found in _apply(step, value)]
        return current


def _members(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descendants(value: Any) -> Iterator[Any]:
    yield value
    for member in _members(value):
        yield from _descendants(member)


def _apply(step: _Step, value: Any) -> list[Any]:
    if step.recursive:
        return [
            found
            for node in _descendants(value)
            for found in _apply(_Step(step.field, False, step.index, step.test), node)
        ]
    if step.test is not None:
        return [member for member in _members(value) if _passes(step.test, member)]
    if step.index is not None:
        if not isinstance(value, list):
            return []
        if isinstance(step.index, int):
            return [value[step.index]] if -len(value) <= step.index < len(value) else []
        return value[step.index]
    if step.field is None:
        return _members(value)
    if isinstance(value, dict) and step.field in value:
        return [value[step.field]]
    return []


def _passes(test: _Filter, item: Any) -> bool:
    found = test.left.results(item)
    if test.operator is None:
        return any(value is not None for value in found)
    right = test.right.results(item) if isinstance(test.right, _Path) else [test.right]
    return any(_compare(a, test.operator, b) for a in found for b in right)


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator in ("==", "!="):
        equal = left == right or (
            not isinstance(left, type(right)) and format_value(left) == format_value(right)
        )
        return equal if operator == "==" else not equal
    try:
        if operator == "<":
            return bool(left < right)
        if operator == "<=":
            return bool(left <= right)
        if operator == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:  # "a" < 1: not comparable, so not a match
        return False


def _literal(text: str, where: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)  # numbers, true, false, null
    except ValueError:
        raise JsonPathError(
            f"{where}: {text!r} is neither a path, a quoted string nor a number"
        ) from None


def _filter(text: str, where: str) -> _Filter:
    if not (text.startswith("(") and text.endswith(")")):
        raise JsonPathError(f"{where}: a filter is written [?(@.field==value)]")
    body = text[1:-1].strip()
    match = _COMPARISON.match(body)
    if match is None:
        return _Filter(parse_path(body, where))
    left, operator, right = match.groups()
    parsed_right: Any = (
        parse_path(right, where) if right.strip()[:1] in ("@", "$") else _literal(right, where)
    )
    return _Filter(parse_path(left, where), operator, parsed_right)


def _closing_bracket(text: str, start: int, where: str) -> int:
    """The index of the ``]`` closing the ``[`` at ``start`` (quotes and nesting respected)."""
    depth, quote = 0, ""
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0 and char == "]":
                return position
    raise JsonPathError(f"{where}: unclosed '[' at {text[start:]!r}")


def _bracket(inner: str, where: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _Step()
    if inner.startswith("?"):
        return _Step(test=_filter(inner[1:].strip(), where))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Step(field=inner[1:-1])
    match = _SLICE.match(inner)
    if match is None or inner == "":
        raise JsonPathError(f"{where}: [{inner}] is not an index, a slice, '*' or a filter")
    start, end, step = match.groups()
    if end is None:  # one number: an index
        return _Step(index=int(start))
    if step == "0":
        raise JsonPathError(f"{where}: [{inner}]: the step of a slice cannot be 0")

    def number(text: str | None) -> int | None:
        return int(text) if text else None

    return _Step(index=slice(number(start), number(end), number(step)))


def parse_path(text: str, where: str = "jsonpath") -> _Path:
    """``.a.b[0]``, ``$.a``, ``@.a``, ``a.b`` (a leading dot may be left out)."""
    text = text.strip()
    if text[:1] in ("$", "@"):
        text = text[1:]
    steps: list[_Step] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "[":
            end = _closing_bracket(text, position, where)
            steps.append(_bracket(text[position + 1 : end], where))
            position = end + 1
            continue
        recursive = False
        if char == ".":
            position += 1
            if text[position : position + 1] == ".":
                recursive, position = True, position + 1
        elif steps:
            raise JsonPathError(f"{where}: unexpected {char!r} in {text!r}")
        if text[position : position + 1] == "*":
            steps.append(_Step(recursive=recursive))
            position += 1
            continue
        if text[position : position + 1] == "[" and recursive:
            end = _closing_bracket(text, position, where)
            bracket = _bracket(text[position + 1 : end], where)
            steps.append(_Step(bracket.field, True, bracket.index, bracket.test))
            position = end + 1
            continue
        match = _FIELD.match(text, position)
        if match is None:
            if position >= len(text) and not recursive:
                break  # a lone "." is the current object
            raise JsonPathError(f"{where}: expected a field name at {text[position:]!r}")
        steps.append(_Step(field=match[0].replace("\\.", "."), recursive=recursive))
        position = match.end()
    return _Path(tuple(steps))


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Range:
    path: _Path
    body: tuple[_Text | _Path | _Range, ...]


_Node = _Text | _Path | _Range


def format_value(value: Any) -> str:
    """How a result prints: strings raw, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _actions(template: str) -> Iterator[tuple[str, bool]]:
    """(text, is_action) pieces: literal text and the insides of ``{…}``."""
    position = 0
    while position < len(template):
        start = template.find("{", position)
        if start < 0:
            yield template[position:], False
            return
        if start > position:
            yield template[position:start], False
        quote, end = "", start + 1
        while end < len(template) and (quote or template[end] != "}"):
            char = template[end]
            if quote:
                if char == "\\":
                    end += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            end += 1
        if end >= len(template):
            raise JsonPathError(f"unclosed '{{' at {template[start:]!r}")
        yield template[start + 1 : end], True
        position = end + 1


def _parse(template: str) -> tuple[_Node, ...]:
    stack: list[tuple[_Path | None, list[_Node]]] = [(None, [])]
    for piece, is_action in _actions(template):
        body = stack[-1][1]
        if not is_action:
            body.append(_Text(piece))
            continue
        action = piece.strip()
        if action.startswith("range ") or action == "range":
            stack.append((parse_path(action[len("range") :]), []))
        elif action == "end":
            if len(stack) == 1:
                raise JsonPathError("{end} without a {range …}")
            path, inner = stack.pop()
            assert path is not None
            stack[-1][1].append(_Range(path, tuple(inner)))
        elif action[:1] in ("'", '"'):
            body.append(_Text(_string(action)))
        else:
            body.append(parse_path(action))
    if len(stack) > 1:
        raise JsonPathError("{range …} without an {end}")
    return tuple(stack[0][1])


def _string(action: str) -> str:
    """``"\\n"`` or ``'\\t'``: a literal with JSON's escapes."""
    if len(action) < 2 or action[-1] != action[0]:
        raise JsonPathError(f"unterminated string {action!r}")
    inner = action[1:-1]
    if action[0] == "'":
        inner = inner.replace('"', '\\"')
    try:
        return str(json.loads(f'"{inner}"'))
    except ValueError:
        raise JsonPathError(f"invalid string {action!r}") from None


@dataclass(frozen=True)
class Template:
    """A parsed JSONPath template; :meth:`render` applies it to one object."""

    nodes: tuple[_Node, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        return cls(_parse(text))

    def render(self, obj: Any) -> str:
        return "".join(_render(node, obj) for node in self.nodes)

    def results(self, obj: Any) -> list[Any]:
        """The values of a template that is one expression (``wait``, custom columns)."""
        return [
            value for node in self.nodes if isinstance(node, _Path) for value in node.results(obj)
        ]


def _render(node: _Node, current: Any) -> str:
    if isinstance(node, _Text):
        return node.text
    if isinstance(node, _Path):
        return " ".join(format_value(value) for value in node.results(current))
    return "".join(
        _render(inner, item) for item in node.path.results(current) for inner in node.body
    )
