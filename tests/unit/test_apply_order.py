"""The apply engine's kind order (``api_types.registry.APPLY_ORDER``) and prune order."""

from __future__ import annotations

from api_types import registry
from controller.apply import LiveObject, in_prune_order


def live(kind: str, name: str, annotations: dict[str, str] | None = None) -> LiveObject:
    metadata = {"name": name, "annotations": annotations or {}}
    return LiveObject(registry.by_kind(kind), {"kind": kind, "metadata": metadata})


def test_unlisted_kinds_rank_after_the_listed_ones_and_keep_their_order() -> None:
    kinds = ["GitSource", "RoleBinding", "Instance", "Role", "Namespace", "Event", "Volume"]
    ordered = sorted(kinds, key=registry.apply_rank)
    assert ordered == [
        "Namespace", "Instance", "Volume", "Role", "RoleBinding", "GitSource", "Event"
    ]  # fmt: skip
    assert registry.apply_rank("BootConfig") < registry.apply_rank("Instance")


def test_prune_order_is_the_reverse_and_skips_what_is_annotated() -> None:
    disabled = {registry.PRUNE_ANNOTATION: registry.PRUNE_DISABLED}
    objects = [
        live("Namespace", "n"),
        live("Instance", "i"),
        live("Secret", "s"),
        live("Firewall", "kept", disabled),
        live("Volume", "v"),
        live("Role", "r"),
    ]
    assert [o.key[2] for o in in_prune_order(objects)] == ["r", "v", "i", "s", "n"]
