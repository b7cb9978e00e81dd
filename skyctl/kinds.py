"""How skyctl users name kinds: kinds, plurals, short names, comma lists, ``all``.

Where it sits: the first step of every verb that takes a KIND (``skyctl.commands``,
``skyctl.edits``) and the source of ``skyctl api-resources``. The kinds themselves come
from the registry (``api_types.registry``); this module adds only what is a habit of the
command line, as kubectl has it:

- :data:`SHORT_NAMES`, the one table of short names (``inst``, ``vol``, …). A short name of a
  kind this build does not have yet is inert — the name is still an unknown kind — and starts
  working when the kind is registered, without touching anything else;
- ``get instances,volumes``: several kinds at once (:func:`resolve_kinds`);
- ``all``: the namespaced kinds a tenant's workload is made of (:data:`ALL_KINDS`).

An unknown name is a :class:`UnknownKind` (a usage error, exit 2) that lists the known ones.
"""

from __future__ import annotations

from api_types import registry
from api_types.meta import API_VERSION
from api_types.registry import KindInfo
from controller.errors import SkybrokerError

__all__ = [
    "ALL",
    "ALL_KINDS",
    "SHORT_NAMES",
    "UnknownKind",
    "api_resources",
    "resolve_kind",
    "resolve_kinds",
    "short_names",
]

#: kind → its short names. Add a new kind's short name here and nowhere else.
SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "Instance": ("inst",),
    "Volume": ("vol",),
    "Firewall": ("fw",),
    "Subnet": ("sn",),
    "ProviderAccount": ("pa",),
    "HardwareProfile": ("hp",),
    "Namespace": ("ns",),
    "Event": ("ev",),
    "VirtualCluster": ("vc",),
    "GitSource": ("gs",),
    "BootConfig": ("bc",),
    "AccessKey": ("ak",),
}

#: ``get all``: what a tenant runs (kubectl's "all" is the workload kinds, not every kind).
#: Kinds listed here that this build does not have yet are skipped.
ALL = "all"
ALL_KINDS = ("Instance", "Volume", "Subnet", "Firewall", "VirtualCluster", "GitSource")


class UnknownKind(SkybrokerError, ValueError):
    """A name that is no kind, plural or short name (a usage error)."""


def short_names(info: KindInfo) -> tuple[str, ...]:
    return SHORT_NAMES.get(info.kind, ())


def _known() -> str:
    return ", ".join(sorted(info.plural for info in registry.all_kinds()))


def resolve_kind(name: str) -> KindInfo:
    """A kind by its name, plural or short name, any letter case."""
    try:
        return registry.lookup(name)
    except registry.UnknownKindError:
        pass
    folded = name.lower()
    for info in registry.all_kinds():
        if folded in short_names(info):
            return info
    raise UnknownKind(
        f"unknown kind {name!r} (skyctl api-resources lists them): known: {_known()}"
    ) from None


def resolve_kinds(text: str) -> list[KindInfo]:
    """``instances``, ``inst,vol`` or ``all``: the kinds named, in order, each once."""
    kinds: list[KindInfo] = []
    for name in text.split(","):
        if not name:
            raise UnknownKind(f"{text!r}: an empty kind in the list")
        if name.lower() == ALL:
            known = {info.kind: info for info in registry.all_kinds()}
            found = [known[kind] for kind in ALL_KINDS if kind in known]
        else:
            found = [resolve_kind(name)]
        kinds.extend(info for info in found if info not in kinds)
    return kinds


def api_resources(namespaced: bool | None = None) -> list[list[str]]:
    """kubectl's ``api-resources`` table: NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND."""
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for info in sorted(registry.all_kinds(), key=lambda i: i.plural):
        if namespaced is not None and info.namespaced != namespaced:
            continue
        rows.append(
            [
                info.plural,
                ",".join(short_names(info)),
                API_VERSION,
                str(info.namespaced).lower(),
                info.kind,
            ]
        )
    return rows
