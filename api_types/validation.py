"""Field validators shared by the kinds: DNS-1123 names, label maps, CIDRs, ports, URLs, base64.

Where it sits: pure functions used by ``api_types`` models (through the annotated types of
``api_types.common``); every error message says what is wrong so that the field path pydantic
adds in front of it reads as a complete sentence. No pydantic import here: these are plain
``str -> str`` checks that raise ``ValueError``, usable from any layer.

All patterns are matched with ``fullmatch`` and ASCII-only classes, so a trailing newline or a
non-ASCII digit or letter never slips through (``re``'s ``$`` matches before a final newline,
and ``int()`` accepts Arabic-Indic digits).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "split_url",
    "validate_base64",
    "validate_cidr",
    "validate_cidr_within",
    "validate_dns1123_label",
    "validate_dns1123_subdomain",
    "validate_http_url",
    "validate_label_map",
    "validate_port_range",
    "validate_secret_key",
    "validate_token",
]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
#: Printable ASCII without spaces: provider ids, zones, regions, sizes, image names.
_TOKEN = re.compile(r"[!-~]+")


#: Names, references, zones, sizes and images recur in every object of a relist and in every
#: watch event: the checks below remember the values they accepted (rejections raise, so
#: they are never cached).
_remember_accepted = functools.lru_cache(maxsize=16384)


@_remember_accepted
def validate_dns1123_label(value: str) -> str:
    """A DNS-1123 label (namespace names, driver names): ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``."""
    if len(value) > 63:
        raise ValueError(f"must be no more than 63 characters (got {len(value)})")
    if not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: lower case alphanumerics or '-', "
            "starting and ending with an alphanumeric"
        )
    return value


@_remember_accepted
def validate_dns1123_subdomain(value: str) -> str:
    """A DNS-1123 subdomain (object names and references to objects), at most 253 chars."""
    if len(value) > 253:
        raise ValueError(f"must be no more than 253 characters (got {len(value)})")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 subdomain: lower case alphanumerics, '-' or '.', "
            "starting and ending with an alphanumeric"
        )
    return value


# Labels repeat across thousands of objects (every relist validates them all): remember the
# keys and values already accepted. Rejections raise, so they are never cached.
@functools.lru_cache(maxsize=8192)
def _validate_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix:
        try:
            validate_dns1123_subdomain(prefix)
        except ValueError as exc:
            raise ValueError(f"label key {key!r}: prefix {exc}") from None
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: name part must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )


def validate_label_map(labels: dict[str, str]) -> dict[str, str]:
    """Kubernetes label rules: optional DNS prefix + '/' + name (≤ 63), values ≤ 63."""
    for key, value in labels.items():
        _validate_label_key(key)
        if not _is_label_value(value):
            raise ValueError(
                f"label {key!r}: value must be at most 63 alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric"
            )
    return labels


@functools.lru_cache(maxsize=8192)
def _is_label_value(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def validate_cidr(value: str) -> str:
    """An IPv4 or IPv6 network with an explicit prefix length and no host bits set.

    Returns the canonical spelling (``2001:DB8::/32`` becomes ``2001:db8::/32``).
    """
    if "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR: the prefix length is missing (e.g. /24)")
    if not value.isascii() or value != value.strip():
        raise ValueError(f"{value!r} is not a valid CIDR (unexpected characters)")
    return _canonical_network(value)


@functools.lru_cache(maxsize=4096)
def _canonical_network(value: str) -> str:
    # Cached: every Firewall rule's CIDRs are parsed on each validation of the object (API
    # bodies, store writes, watch decodes), and the same few networks recur everywhere.
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid CIDR ({exc})") from None


def validate_cidr_within(inner: str, outer: str) -> None:
    """Raise unless network ``inner`` lies inside network ``outer`` (both already valid)."""
    inner_net = ipaddress.ip_network(inner)
    outer_net = ipaddress.ip_network(outer)
    if inner_net.version != outer_net.version:
        raise ValueError(
            f"{inner} is IPv{inner_net.version} but the network is IPv{outer_net.version}"
        )
    if not inner_net.subnet_of(outer_net):  # type: ignore[arg-type]
        raise ValueError(f"{inner} does not lie inside the network's CIDR {outer}")


def validate_port_range(value: str) -> tuple[int, int]:
    """Parse ``"80"`` or ``"8000-8100"`` into an inclusive (low, high) pair."""
    match = _PORT_RANGE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a port or a port range like 8000-8100")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise ValueError(f"{value!r}: ports must be between 1 and 65535")
    if low > high:
        raise ValueError(f"{value!r}: range start is greater than its end")
    return low, high


def split_url(value: str) -> SplitResult:
    """``value`` split into its parts, or a ValueError saying why it is no URL (spaces,
    non-ASCII or control characters, a bad port)."""
    if not value.isascii() or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"{value!r} is not a URL: it contains spaces or non-ASCII characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL ({exc})") from None
    return parts


def validate_http_url(value: str) -> str:
    """An absolute ``http://`` or ``https://`` URL with a host (kept exactly as written)."""
    parts = split_url(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host")
    return value


def validate_base64(value: str) -> str:
    """Standard base64 (RFC 4648 alphabet, with padding), as Kubernetes Secret ``data``."""
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ValueError("value is not valid base64 (standard alphabet, padded)") from None
    return value


def validate_secret_key(key: str) -> str:
    """A Secret data key: alphanumerics, '-', '_' or '.', at most 253 characters."""
    if len(key) > 253 or not _SECRET_KEY.fullmatch(key):
        raise ValueError(f"key {key!r} must be 1-253 characters of alphanumerics, '-', '_' or '.'")
    return key


@_remember_accepted
def validate_token(value: str) -> str:
    """A provider-side identifier (region, zone, size, image id): 1-255 printable ASCII, no
    spaces."""
    if len(value) > 255 or not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} must be 1-255 printable ASCII characters without spaces")
    return value
