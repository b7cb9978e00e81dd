"""``-o`` for ``get`` and friends: table, ``wide``, ``yaml``, ``json``, ``name``,
``jsonpath=TEMPLATE`` and ``custom-columns=HEADER:PATH,…``; and the rows ``get -w`` streams.

Where it sits: the last step of the read verbs, after the objects were fetched. It takes the
objects grouped by kind (``get instances,volumes`` fetches several kinds) and prints them as
kubectl does:

- tables: one per kind, separated by a blank line; with several kinds each NAME reads
  ``kind.skybroker.io/name`` so rows of different kinds cannot be confused;
- ``yaml``/``json``/``jsonpath``: one object when one was asked for by name, else a ``List`` of
  every object (which ``skyctl apply`` accepts back);
- ``custom-columns``: one table whatever the kinds, each cell a JSONPath
  (``skyctl.jsonpath``); several values are joined with commas, none is ``<none>``.

A malformed ``-o`` is an ``argparse.ArgumentTypeError`` (a usage error, exit 2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from api_types.meta import API_VERSION
from api_types.registry import KindInfo
from skyctl.apply import resource_ref
from skyctl.jsonpath import JsonPathError, Template, format_value
from skyctl.printers import NONE, TableLayout, render_table, table_layout, table_rows

__all__ = ["FORMATS", "Output", "StreamPrinter", "format_groups", "parse_output"]

Wire = dict[str, Any]
Group = tuple[KindInfo, Sequence[Wire]]

#: The longest watch event type: the EVENT column is this wide from the start.
_WIDEST_EVENT = "MODIFIED"
#: How wide the columns of ``get -w`` start when nothing was listed before the watch.
_EMPTY_START_WIDTH = " " * 12
FORMATS = ("wide", "yaml", "json", "name", "jsonpath=TEMPLATE", "custom-columns=SPEC")


@dataclass(frozen=True)
class Output:
    """A parsed ``-o``: ``format`` is None (a table), ``wide``, ``yaml``, ``json``, ``name``,
    ``jsonpath`` (with ``template``) or ``custom-columns`` (with ``columns``)."""

    format: str | None = None
    template: Template | None = None
    columns: tuple[tuple[str, Template], ...] = field(default=())

    @property
    def table(self) -> bool:
        return self.format in (None, "wide")

    @property
    def wide(self) -> bool:
        return self.format == "wide"


def _custom_columns(spec: str) -> tuple[tuple[str, Template], ...]:
    columns: list[tuple[str, Template]] = []
    for part in spec.split(","):
        header, colon, path = part.partition(":")
        if not colon or not header or not path:
            raise argparse.ArgumentTypeError(
                f"custom-columns: {part!r} is not HEADER:PATH (e.g. NAME:.metadata.name)"
            )
        text = path if path.startswith("{") else "{" + path + "}"
        try:
            columns.append((header, Template.parse(text)))
        except JsonPathError as exc:
            raise argparse.ArgumentTypeError(f"custom-columns {header}: {exc}") from None
    return tuple(columns)


def parse_output(text: str) -> Output:
    """The argparse ``type`` of ``-o``."""
    name, equals, argument = text.partition("=")
    if name in ("wide", "yaml", "json", "name") and not equals:
        return Output(name)
    if name == "jsonpath" and equals:
        try:
            return Output(name, template=Template.parse(argument))
        except JsonPathError as exc:
            raise argparse.ArgumentTypeError(f"jsonpath: {exc}") from None
    if name == "custom-columns" and equals:
        return Output(name, columns=_custom_columns(argument))
    raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(FORMATS)}")


def _name(obj: Wire) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _document(groups: Sequence[Group], single: bool) -> Any:
    items = [obj for _, objects in groups for obj in objects]
    if single and len(items) == 1:
        return items[0]
    return {"apiVersion": API_VERSION, "kind": "List", "items": items}


def _column_cell(template: Template, obj: Wire) -> str:
    values = [format_value(value) for value in template.results(obj)]
    return ",".join(value for value in values if value) or NONE


def _custom_rows(output: Output, objects: Sequence[Wire], header: bool) -> list[list[str]]:
    rows = [[name for name, _ in output.columns]] if header else []
    rows += [[_column_cell(template, obj) for _, template in output.columns] for obj in objects]
    return rows


def format_groups(
    groups: Sequence[Group],
    output: Output,
    *,
    namespaces: bool,
    single: bool = False,
    labels: bool = False,
) -> str:
    """The objects of every (kind, objects) group as ``output`` asks; ``single`` = one object
    was asked for by name (printed bare in yaml/json/jsonpath, not in a List); ``namespaces``
    = a NAMESPACE column in the tables of namespaced kinds."""
    if output.format in ("yaml", "json", "jsonpath"):
        document = _document(groups, single)
        if output.template is not None:
            return output.template.render(document)
        if output.format == "json":
            return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    if output.format == "name":
        return "".join(
            resource_ref(info, _name(obj)) + "\n" for info, objects in groups for obj in objects
        )
    if output.format == "custom-columns":
        every = [obj for _, objects in groups for obj in objects]
        return render_table(_custom_rows(output, every, True), fit=True)
    mixed = len(groups) > 1
    tables = []
    for info, objects in groups:
        if not objects:
            continue

        def name(text: str, info: KindInfo = info) -> str:
            return resource_ref(info, text) if mixed else text

        rows = table_rows(
            info,
            objects,
            wide=output.wide,
            namespaces=namespaces and info.namespaced,
            labels=labels,
            name=name,
        )
        tables.append(render_table(rows, fit=not output.wide))
    return "\n".join(tables)


@dataclass
class StreamPrinter:
    """What ``get -w`` prints per object, in the columns of the first table it printed (12
    characters at least when that table had no rows, so the first objects still fit).

    ``typed`` (``--output-watch-events``) names the event type on every line: an EVENT column
    in tables, ``{"type", "object"}`` in yaml/json; a table without it marks a deleted object
    with a trailing ``(deleted)``, so its columns still line up.
    """

    info: KindInfo
    output: Output
    namespaces: bool
    typed: bool
    labels: bool = False
    _layout: TableLayout | None = None

    def _rows(self, objects: Sequence[Wire], header: bool) -> list[list[str]]:
        if self.output.format == "custom-columns":
            return _custom_rows(self.output, objects, header)
        return table_rows(
            self.info,
            objects,
            wide=self.output.wide,
            namespaces=self.namespaces,
            header=header,
            labels=self.labels,
        )

    @property
    def tabular(self) -> bool:
        return self.output.table or self.output.format == "custom-columns"

    def first(self, objects: Sequence[Wire]) -> str:
        """The header and the objects listed before the watch starts (ADDED when ``typed``);
        in the other formats each object on its own, as every later one."""
        if not self.tabular:
            return "".join(self.event("ADDED", obj) for obj in objects)
        rows = self._rows(objects, header=True)
        if self.typed:
            rows = [["EVENT", *rows[0]], *(["ADDED", *row] for row in rows[1:])]
        # Nothing listed yet: the header alone would make every column as narrow as its title.
        filler = _EMPTY_START_WIDTH if not objects else ""
        sizing = [*rows, [filler] * len(rows[0])]
        if self.typed:
            sizing.append([_WIDEST_EVENT] + [""] * (len(rows[0]) - 1))
        self._layout = table_layout(sizing, fit=not self.output.wide)
        return "".join(self._layout.line(row) + "\n" for row in rows)

    def event(self, type_: str, obj: Wire) -> str:
        """One object of the stream (after :meth:`first`)."""
        if self.output.format in ("yaml", "json"):
            document = {"type": type_, "object": obj} if self.typed else obj
            if self.output.format == "json":
                return json.dumps(document, ensure_ascii=False) + "\n"
            return "---\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        if not self.tabular:
            return format_groups(
                [(self.info, [obj])], self.output, namespaces=self.namespaces, single=True
            )
        if self._layout is None:
            raise RuntimeError("StreamPrinter.first() prints the header before any event")
        row = self._rows([obj], header=False)[0]
        if self.typed:
            return self._layout.line([type_, *row]) + "\n"
        return self._layout.line(row) + ("   (deleted)" if type_ == "DELETED" else "") + "\n"
