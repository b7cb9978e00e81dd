"""The EC2 actions the front door serves: every action module's handlers in one registry.

Where it sits: ``routes`` builds its :class:`~apiserver.ec2.registry.ActionRegistry` here. To
add actions, write a module with a ``register(registry)`` function (see ``catalog``) and call
it below.
"""

from __future__ import annotations

from apiserver.ec2 import catalog, instances, network, tags, volumes
from apiserver.ec2.registry import ActionRegistry

__all__ = ["default_actions"]


def default_actions() -> ActionRegistry:
    registry = ActionRegistry()
    catalog.register(registry)
    network.register(registry)
    volumes.register(registry)
    instances.register(registry)
    tags.register(registry)
    return registry
