"""Schemathesis over the served /openapi.json: generated requests for every operation, no 5xx.

Each operation gets a few generated cases (bodies from the kinds' JSON Schemas, random path and
query parameters), sent as the admin to a real server; whatever the input, the answer must be a
success or a 4xx Status, never a server error.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")

_EXAMPLES = 2


def test_no_server_errors_for_generated_requests(admin: httpx.Client, server: Any) -> None:
    document = admin.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 100
    headers = {"Authorization": admin.headers["Authorization"]}
    failures: list[str] = []

    for operation in operations:

        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        check()
    assert not failures, failures[:10]
