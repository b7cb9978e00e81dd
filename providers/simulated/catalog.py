"""The simulated cloud's catalogue: instance families with prices, zones, public images.

Where it sits: ``providers.simulated.engine`` validates create requests against it and serves
``list_sizes`` / ``list_zones`` / ``list_images`` from it. Prices vary a little by region
(deterministically) so that a ``LowestCost`` pool policy has something to choose between.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from providers.types import CloudImage, CloudSize, CloudZone, ImageId, SizeId, ZoneName

__all__ = ["PUBLIC_IMAGES", "image_catalogue", "size_catalogue", "zone_names"]

# (name, vcpu, memory MiB, disk GiB, $/h in the cheapest region, arch)
_FAMILIES: tuple[tuple[str, int, int, int, float, str], ...] = (
    # s1: general purpose
    ("s1.small", 1, 2048, 20, 0.020, "x86_64"),
    ("s1.medium", 2, 4096, 40, 0.040, "x86_64"),
    ("s1.large", 4, 8192, 80, 0.080, "x86_64"),
    ("s1.xlarge", 8, 16384, 160, 0.160, "x86_64"),
    # c1: compute optimised
    ("c1.large", 4, 4096, 40, 0.070, "x86_64"),
    ("c1.xlarge", 8, 8192, 80, 0.140, "x86_64"),
    ("c1.2xlarge", 16, 16384, 160, 0.280, "x86_64"),
    # m1: memory optimised
    ("m1.large", 2, 16384, 40, 0.100, "x86_64"),
    ("m1.xlarge", 4, 32768, 80, 0.200, "x86_64"),
    ("m1.2xlarge", 8, 65536, 160, 0.400, "x86_64"),
    # a1: arm64
    ("a1.medium", 1, 2048, 20, 0.015, "arm64"),
    ("a1.large", 2, 4096, 40, 0.030, "arm64"),
    ("a1.xlarge", 4, 8192, 80, 0.060, "arm64"),
)

PUBLIC_IMAGES: tuple[CloudImage, ...] = (
    CloudImage(ImageId("img-ubuntu-2204"), "ubuntu-22.04", "x86_64"),
    CloudImage(ImageId("img-ubuntu-2204-arm"), "ubuntu-22.04-arm64", "arm64"),
    CloudImage(ImageId("img-debian-12"), "debian-12", "x86_64"),
    CloudImage(ImageId("img-rocky-9"), "rocky-9", "x86_64"),
)


def _region_factor(region: str) -> float:
    """1.00 to 1.19: a stable per-region price multiplier."""
    return 1.0 + (zlib.crc32(region.encode()) % 20) / 100.0


def size_catalogue(region: str) -> dict[SizeId, CloudSize]:
    factor = _region_factor(region)
    return {
        SizeId(name): CloudSize(
            id=SizeId(name),
            cpu=cpu,
            memory_mib=mem,
            disk_gib=disk,
            price_per_hour=round(price * factor, 5),
            arch=arch,
        )
        for name, cpu, mem, disk, price, arch in _FAMILIES
    }


def zone_names(region: str) -> list[CloudZone]:
    return [CloudZone(ZoneName(f"{region}{suffix}"), region) for suffix in "abc"]


def image_catalogue(mapped: Mapping[str, str]) -> dict[ImageId, CloudImage]:
    """Public images plus every image id the account's ``images`` mapping names (x86_64)."""
    images = {image.id: image for image in PUBLIC_IMAGES}
    for logical, image_id in mapped.items():
        images.setdefault(ImageId(image_id), CloudImage(ImageId(image_id), logical, "x86_64"))
    return images
