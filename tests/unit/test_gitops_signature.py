"""GitHub's webhook signature (X-Hub-Signature-256), checked against GitHub's documented
test vector: secret "It's a Secret to Everybody", payload "Hello, World!"."""

from __future__ import annotations

import pytest

from api_types.gitops import github_signature, verify_github_signature

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
DOCUMENTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_vector() -> None:
    assert github_signature(SECRET, BODY) == DOCUMENTED
    assert verify_github_signature(SECRET, BODY, DOCUMENTED)
    assert verify_github_signature(SECRET, BODY, f" {DOCUMENTED} ")


@pytest.mark.parametrize(
    "secret, body, header",
    [
        (SECRET, BODY + b"\n", DOCUMENTED),  # the body changed
        (b"another secret", BODY, DOCUMENTED),  # another key
        (SECRET, BODY, DOCUMENTED[:-1] + "0"),  # one digit off
        (SECRET, BODY, DOCUMENTED.upper()),  # GitHub sends lower-case hex
        (SECRET, BODY, DOCUMENTED.removeprefix("sha256=")),  # no scheme
        (SECRET, BODY, "sha1=" + DOCUMENTED.removeprefix("sha256=")),  # the old header's scheme
        (SECRET, BODY, "sha256="),
        (SECRET, BODY, ""),
        (SECRET, BODY, None),  # no header at all
        (SECRET, BODY, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043é17"),
        (b"", BODY, github_signature(b"", BODY)),  # no secret configured: nothing is trusted
    ],
)
def test_anything_else_is_refused(secret: bytes, body: bytes, header: str | None) -> None:
    assert not verify_github_signature(secret, body, header)
