"""Fixtures of the agent tests: ``peer``, a fake rendezvous (``tests.rendezvous_peer``)."""

from tests.rendezvous_peer import peer

__all__ = ["peer"]
