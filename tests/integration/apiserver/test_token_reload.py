"""The token file is followed: changes apply within a second, a broken file keeps the old table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from apiserver.auth import RELOAD_INTERVAL, TokenAuthenticator, TokenFileError
from apiserver.status import ApiError
from controller.clock import FakeClock
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import ROOT, TOKEN_FILE
from tests.waiting import eventually


def _accepts(authenticator: TokenAuthenticator, token: str) -> bool:
    try:
        authenticator.authenticate(f"Bearer {token}")
    except ApiError as exc:
        assert exc.code == 401
        return False
    return True


def _rewrite(path: Path, text: str) -> None:
    """Replace the file as editors and config tools do: a new file renamed over the old."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_changes_apply_after_the_interval_and_a_broken_file_keeps_the_old_table(
    tmp_path: Path,
) -> None:
    path, clock = tmp_path / "tokens.csv", FakeClock(start=1000.0)
    path.write_text("tok-a,alice,1\n")
    authenticator = TokenAuthenticator.from_file(path, clock=clock.now)
    assert _accepts(authenticator, "tok-a")

    _rewrite(path, "tok-b,bob,2,system:masters\n")
    assert _accepts(authenticator, "tok-a"), "not looked at again within the interval"
    clock.step(RELOAD_INTERVAL)
    assert not _accepts(authenticator, "tok-a") and _accepts(authenticator, "tok-b")
    assert authenticator.authenticate("Bearer tok-b").groups >= {"system:masters"}

    with capture_logs() as logs:
        _rewrite(path, "tok-c,carol,3\nbroken-line\n")
        clock.step(RELOAD_INTERVAL)
        assert _accepts(authenticator, "tok-b") and not _accepts(authenticator, "tok-c")
        clock.step(RELOAD_INTERVAL)
        assert _accepts(authenticator, "tok-b")
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(errors) == 1, "a broken file is reported once, not on every look"
    assert f"{path}:2:" in errors[0]["error"] and "tok-c" not in str(errors[0])

    _rewrite(path, "tok-c,carol,3\n")
    clock.step(RELOAD_INTERVAL)
    assert _accepts(authenticator, "tok-c") and not _accepts(authenticator, "tok-b")

    with capture_logs() as logs:
        path.unlink()
        clock.step(RELOAD_INTERVAL)
        assert _accepts(authenticator, "tok-c"), "a vanished file keeps the table"
    assert [entry["log_level"] for entry in logs] == ["error"]


def test_the_file_is_looked_at_no_more_than_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, clock = tmp_path / "tokens.csv", FakeClock(start=1000.0)
    path.write_text("tok-a,alice,1\n")
    authenticator = TokenAuthenticator.from_file(path, clock=clock.now)
    looks: list[Any] = []
    real_stat = os.stat

    def counting_stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        looks.append(target)
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(1000):
        authenticator.authenticate("Bearer tok-a")
        clock.step(RELOAD_INTERVAL / 100)
    assert 9 <= len(looks) <= 10  # ten seconds of requests, one look a second


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("ok,a,1\n" + '"' + "x" * 200_000 + '",b,2\n', 2),  # over the csv field limit
        ("ok,a,1\n# comment\nx,y\n", 3),
        ("t,a,1\nt,b,2\n", 2),
    ],
)
def test_a_file_that_does_not_parse_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=f":{line}:"):
        TokenAuthenticator.from_file(path)


def test_a_running_server_follows_the_file(
    server: HttpServer, tmp_path: Path, client: Callable[[str | None], httpx.Client]
) -> None:
    path = tmp_path / "tokens.csv"  # the server fixture's token file
    namespaces = f"{server.url}{ROOT}/namespaces"

    def code(token: str) -> int:
        return httpx.get(namespaces, headers={"Authorization": f"Bearer {token}"}).status_code

    def answers(token: str, expected: int) -> None:
        eventually(lambda: code(token) == expected, what=f"{token} never answered {expected}")

    assert code("carol-token") == 401
    without_alice = TOKEN_FILE.replace('alice-token,alice,u-alice,"tenants"\n', "")
    _rewrite(path, without_alice + 'carol-token,carol,u-carol,"system:masters"\n')
    answers("carol-token", 200)
    answers("alice-token", 401)

    _rewrite(path, 'carol-token,carol,u-carol,"system:masters"\nnot a token line\n')
    time.sleep(3 * RELOAD_INTERVAL)
    assert code("admin-token") == 200, "the broken file was not applied"
    assert code("carol-token") == 200
