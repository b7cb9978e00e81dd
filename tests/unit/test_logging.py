"""The process's log configuration: one JSON line per event at or above the level, with the
context bound through contextvars; events below the level never reach the output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from controller.logging import configure_logging


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_at_the_level_and_nothing_below(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="info")
    log = structlog.get_logger("skybroker.test")
    structlog.contextvars.bind_contextvars(kind="Instance", name="web-1")
    log.debug("reconciled", result="success")
    log.info("instance placed", account="sim-east")
    logging.getLogger("foreign").warning("from the standard library")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["instance placed", "from the standard library"]
    placed = lines[0]
    assert placed["level"] == "info" and placed["logger"] == "skybroker.test"
    assert (placed["kind"], placed["name"], placed["account"]) == ("Instance", "web-1", "sim-east")
    assert placed["timestamp"].endswith("Z")
