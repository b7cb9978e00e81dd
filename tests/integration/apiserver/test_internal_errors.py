"""A 500 is logged with its traceback and the request, never with a secret of the request."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from apiserver import handlers
from apiserver.redaction import REDACTED
from tests.integration.apiserver.conftest import ROOT, TOKENS

SECRETS = f"{ROOT}/namespaces/team-a/secrets"
PLAIN = "hunter2-very-secret"
ENCODED_PLAIN = "s3cr3t-in-data"


def _choking_admission(lookups: Any, obj: Any, old: Any = None, **checks: Any) -> Any:
    """An admission step with a bug whose exception quotes the object it was given."""
    raise RuntimeError(f"admission choked on {obj.to_wire()}")


def test_an_internal_error_is_logged_with_its_traceback_and_no_secret(
    admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "admit", _choking_admission)
    encoded = base64.b64encode(ENCODED_PLAIN.encode()).decode()
    body = {"kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"secret": PLAIN}, "data": {"key": encoded}}  # fmt: skip
    with capture_logs() as logs:
        answer = admin.post(SECRETS, json=body)
    assert answer.status_code == 500
    assert answer.json()["message"] == "internal error"
    [entry] = [e for e in logs if e["event"] == "internal error serving a request"]
    assert entry["log_level"] == "error" and entry["method"] == "POST"
    assert entry["path"].endswith("namespaces/team-a/secrets")
    assert "Traceback (most recent call last)" in entry["traceback"]
    assert "RuntimeError: admission choked on" in entry["traceback"]
    assert entry["body"]["stringData"] == {"secret": REDACTED}
    assert entry["body"]["data"] == {"key": REDACTED}
    assert entry["body"]["metadata"] == {"name": "creds"}, "the rest of the body is kept"
    logged = json.dumps(logs)
    for secret in (PLAIN, ENCODED_PLAIN, encoded, TOKENS["admin"]):
        assert secret not in logged
        assert secret not in answer.text
