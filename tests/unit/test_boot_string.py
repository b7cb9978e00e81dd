"""The boot string (DESIGN §11, ``api_types.boot``): the exact format, round trips, and bad
inputs refused naming the part that is wrong — never quoting the secret."""

from __future__ import annotations

import base64
import uuid as uuidlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api_types.boot import (
    BootString,
    format_boot_string,
    new_boot_secret,
    parse_boot_string,
)

UUID = "0b9f3c1e-5a7d-4e2b-9c8f-1d2e3f4a5b6c"
SECRET = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
ENDPOINT = "https://skybroker.example.com:7480/base"


def test_exact_format() -> None:
    text = format_boot_string(UUID, SECRET, ENDPOINT)
    assert text == f"skybroker-boot:v1:{UUID}:{SECRET}:{ENDPOINT}"
    assert parse_boot_string(text) == BootString(UUID, SECRET, ENDPOINT)
    assert str(parse_boot_string(text)) == text


def test_surrounding_whitespace_of_a_file_is_ignored() -> None:
    text = format_boot_string(UUID, SECRET, "http://10.0.0.1:7480")
    assert parse_boot_string(f"  {text}\n").endpoint == "http://10.0.0.1:7480"


def test_new_secrets_are_32_random_bytes_in_url_safe_base64() -> None:
    first, second = new_boot_secret(), new_boot_secret()
    assert first != second
    for secret in (first, second):
        assert len(secret) == 43 and "=" not in secret
        assert len(base64.urlsafe_b64decode(secret + "=")) == 32
        format_boot_string(UUID, secret, ENDPOINT)  # accepted as is


def test_repr_hides_the_secret() -> None:
    parsed = parse_boot_string(format_boot_string(UUID, SECRET, ENDPOINT))
    assert SECRET not in repr(parsed) and "***" in repr(parsed)


_WRONG_LAST = SECRET[:-1] + ("B" if SECRET[-1] != "B" else "C")  # non-zero spare bits


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "5 ':'-separated parts, got 1"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}", "got 4"),
        (f"skybroker:v1:{UUID}:{SECRET}:{ENDPOINT}", "must start with skybroker-boot:"),
        (f"skybroker-boot:v2:{UUID}:{SECRET}:{ENDPOINT}", "version v2 is not supported"),
        (f"skybroker-boot:{SECRET}:{UUID}:{SECRET}:{ENDPOINT}", "unknown version"),
        (f"skybroker-boot:v1:{UUID.upper()}:{SECRET}:{ENDPOINT}", "the uuid"),
        (f"skybroker-boot:v1:{UUID[:-1]}:{SECRET}:{ENDPOINT}", "the uuid"),
        (f"skybroker-boot:v1:{SECRET}:{UUID}:{ENDPOINT}", "the uuid"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}=:{ENDPOINT}", "the secret"),
        (f"skybroker-boot:v1:{UUID}:{SECRET[:-1]}:{ENDPOINT}", "the secret"),
        (f"skybroker-boot:v1:{UUID}:{SECRET[:-1]}+:{ENDPOINT}", "the secret"),
        (f"skybroker-boot:v1:{UUID}:{_WRONG_LAST}:{ENDPOINT}", "canonical"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:", "the endpoint is missing"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:ftp://host", "http:// or https://"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:host:7480", "http:// or https://"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://", "has no host"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://h:99999", "bad host or port"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://u:p@h", "credentials"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://h/?a=1", "query or fragment"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://h/#x", "query or fragment"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://h/a b", "spaces"),
        (f"skybroker-boot:v1:{UUID}:{SECRET}:http://h/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_bad_boot_strings_name_the_part(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="boot string") as refused:
        parse_boot_string(text)
    assert words in str(refused.value)
    assert SECRET not in str(refused.value) and SECRET[:20] not in str(refused.value)


@pytest.mark.parametrize(
    "uuid, secret, endpoint, part",
    [
        ("nope", SECRET, ENDPOINT, "uuid"),
        (UUID, "short", ENDPOINT, "secret"),
        (UUID, SECRET, "nope", "endpoint"),
    ],
)
def test_format_refuses_what_parse_would(uuid: str, secret: str, endpoint: str, part: str) -> None:
    with pytest.raises(ValueError, match=f"the {part}"):
        format_boot_string(uuid, secret, endpoint)


_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
_PATHS = st.from_regex(r"(/[A-Za-z0-9._~:@!$&'()*+,;=-]{0,12}){0,4}", fullmatch=True)


@st.composite
def endpoints(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    return f"{scheme}://{draw(_HOSTS)}{'' if port is None else f':{port}'}{draw(_PATHS)}"


@settings(max_examples=300, deadline=None)
@given(
    uid=st.uuids(),
    raw=st.binary(min_size=32, max_size=32),
    endpoint=endpoints(),
)
def test_round_trip(uid: uuidlib.UUID, raw: bytes, endpoint: str) -> None:
    secret = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    text = format_boot_string(str(uid), secret, endpoint)
    assert text.startswith(f"skybroker-boot:v1:{uid}:{secret}:")
    parsed = parse_boot_string(text)
    assert parsed == (str(uid), secret, endpoint)
    assert base64.urlsafe_b64decode(parsed.secret + "=") == raw


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32), junk=st.text(max_size=80), cut=st.integers(0, 200))
def test_mangled_strings_never_echo_the_secret(raw: bytes, junk: str, cut: int) -> None:
    secret = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    text = format_boot_string(UUID, secret, ENDPOINT)
    mangled = text[:cut] + junk + text[cut:]
    try:
        parse_boot_string(mangled)
    except ValueError as exc:
        for start in range(0, len(secret) - 8):
            assert secret[start : start + 8] not in str(exc)
