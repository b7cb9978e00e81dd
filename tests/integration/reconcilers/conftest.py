"""Fixtures of the reconciler tests: ``harness`` (a running Manager; see ``harness.py``) and the
session's ``moto_server`` (an EC2 API server, shared with the provider contract tests)."""

from tests.integration.providers.conftest import moto_server
from tests.integration.reconcilers.harness import harness

__all__ = ["harness", "moto_server"]
