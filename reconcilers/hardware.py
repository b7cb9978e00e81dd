"""Hardware matching: which provider size an Instance's ``spec.hardware`` asks for.

Where it sits: a pure helper of placement (``reconcilers.placement``), which asks it once per
candidate account. ``spec.hardware`` names a HardwareProfile, gives inline constraints, or an
explicit size; all three become one :class:`HardwareConstraints`, and
:func:`cheapest_match` picks, among an account's sizes, the cheapest one that satisfies every
constraint (DESIGN §3: "the cheapest size that satisfies all wins"). Sizes without a price
rank after priced ones; ties go to the smaller size, then the size id, so the choice is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from api_types import HardwareProfileSpec, HardwareSpec, IntRange
from controller.errors import SkybrokerError
from providers import CloudSize

__all__ = ["HardwareConstraints", "UnknownProfileError", "cheapest_match"]


class UnknownProfileError(SkybrokerError, LookupError):
    """``spec.hardware.profile`` names a HardwareProfile that does not exist."""


def _range_text(name: str, bounds: IntRange | None) -> str | None:
    if bounds is None or (bounds.min is None and bounds.max is None):
        return None
    if bounds.min == bounds.max:
        return f"{name}={bounds.min}"
    if bounds.max is None:
        return f"{name}>={bounds.min}"
    if bounds.min is None:
        return f"{name}<={bounds.max}"
    return f"{name} {bounds.min}-{bounds.max}"


@dataclass(frozen=True)
class HardwareConstraints:
    """What a size must offer; ``size`` set = exactly that provider size (and ``arch``)."""

    cpu: IntRange | None = None
    memory_mib: IntRange | None = None
    disk_gib: IntRange | None = None
    arch: str | None = None
    size: str | None = None

    @classmethod
    def from_profile(cls, spec: HardwareProfileSpec) -> HardwareConstraints:
        arch = spec.arch.value if spec.arch is not None else None
        return cls(spec.cpu, spec.memory_mib, spec.disk_gib, arch)

    @classmethod
    def from_spec(
        cls, spec: HardwareSpec, profile: Callable[[str], HardwareProfileSpec | None]
    ) -> HardwareConstraints:
        """Resolve ``spec`` (``profile(name)`` looks profiles up; UnknownProfileError if None)."""
        if spec.size is not None:
            return cls(size=spec.size)
        if spec.profile is not None:
            found = profile(spec.profile)
            if found is None:
                raise UnknownProfileError(f"HardwareProfile {spec.profile!r} does not exist")
            return cls.from_profile(found)
        cpu, memory, disk = spec.constraints()
        return cls(cpu, memory, disk, spec.arch.value if spec.arch is not None else None)

    def allows(self, size: CloudSize) -> bool:
        """True if ``size`` satisfies every constraint."""
        if self.arch is not None and self.arch != size.arch:
            return False
        if self.size is not None:
            return size.id == self.size
        checks = ((self.cpu, size.cpu), (self.memory_mib, size.memory_mib))
        if any(bounds is not None and not bounds.contains(value) for bounds, value in checks):
            return False
        return self.disk_gib is None or self.disk_gib.contains(size.disk_gib)

    def describe(self) -> str:
        """Human-readable form for rejection reasons, e.g. ``cpu 1-2, memoryMiB>=1024``."""
        if self.size is not None:
            return f"size {self.size}" + (f", arch={self.arch}" if self.arch else "")
        parts = [
            _range_text("cpu", self.cpu),
            _range_text("memoryMiB", self.memory_mib),
            _range_text("diskGiB", self.disk_gib),
            f"arch={self.arch}" if self.arch else None,
        ]
        return ", ".join(p for p in parts if p) or "any size"


def _cost_key(size: CloudSize) -> tuple[bool, float, int, int, str]:
    unpriced = size.price_per_hour is None
    return (unpriced, size.price_per_hour or 0.0, size.cpu, size.memory_mib, size.id)


def cheapest_match(sizes: Iterable[CloudSize], wanted: HardwareConstraints) -> CloudSize | None:
    """The cheapest size satisfying ``wanted`` (unpriced sizes last), or None."""
    matching = [size for size in sizes if wanted.allows(size)]
    return min(matching, key=_cost_key, default=None)
