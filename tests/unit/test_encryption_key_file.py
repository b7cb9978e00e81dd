"""Reading an encryption key file: every way it can be wrong is a CipherError naming the file,
the line where there is one, and the format expected."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from controller.store.encryption import CipherError, SecretCipher

FORMAT = "expected one base64-encoded 32-byte key per line"
KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("content", "where", "problem"),
    [
        (b"\xff\xfe\x00\x01", "", "not a key file (not text)"),
        (f"# rotated\n{KEY}\nnot base64!\n".encode(), ":3", "not base64"),
        (f"{KEY}\n\n{base64.b64encode(b'sixteen bytes...').decode()}\n".encode(), ":3",
         "a 16-byte key"),
        (b"# only a comment\n\n", "", "no key"),
    ],
    ids=["binary", "not-base64", "short-key", "empty"],
)  # fmt: skip
def test_a_broken_key_file_names_the_file_line_and_format(
    tmp_path: Path, content: bytes, where: str, problem: str
) -> None:
    path = tmp_path / "enc.key"
    path.write_bytes(content)
    with pytest.raises(CipherError) as raised:
        SecretCipher.from_file(path)
    assert str(raised.value) == f"{path}{where}: {problem}: {FORMAT}"


def test_a_missing_key_file_is_a_cipher_error(tmp_path: Path) -> None:
    with pytest.raises(CipherError, match="cannot read the key file: No such file"):
        SecretCipher.from_file(tmp_path / "absent.key")


def test_keys_after_comments_and_blank_lines_all_open(tmp_path: Path) -> None:
    old, new = SecretCipher([bytes(32)]), bytes(range(32))
    sealed = old.seal(b"value", b"secrets/a/b")
    path = tmp_path / "enc.key"
    path.write_text(f"# new first\n{KEY}\n\n{base64.b64encode(bytes(32)).decode()}\n")
    cipher = SecretCipher.from_file(path)
    assert cipher.open(sealed, b"secrets/a/b") == b"value"
    assert SecretCipher([new]).open(cipher.seal(b"v", b"k"), b"k") == b"v"
