"""Fixtures of the reconciler tests: ``harness`` (a running Manager; see ``harness.py``)."""

from tests.integration.reconcilers.harness import harness

__all__ = ["harness"]
