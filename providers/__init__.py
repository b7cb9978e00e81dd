"""Cloud adapters: the ``CloudProvider`` protocol, the simulated cloud and the EC2 driver.

Where it sits: below the reconcilers, above the clouds (DESIGN §5). Imports only the runtime's
error classes (``controller.errors``) and third-party libraries. Entry points:
``open_provider(AccountConfig)`` for a guarded provider, ``Inventory`` for batched reads,
``LeakTracker`` for the leak sweeper, ``expand_rules``/``diff_rules`` for firewalls.
"""

from providers.budget import ApiGate, CircuitBreaker, TokenBucket
from providers.clock import Clock, MonotonicClock, WallClock
from providers.config import AccountConfig, ApiBudget
from providers.guarded import GuardedProvider
from providers.inventory import Inventory, KindView, LeakTracker
from providers.metrics import ProviderMetrics, default_metrics
from providers.protocol import CloudProvider
from providers.registry import driver_names, open_provider, register_driver
from providers.rules import (
    DEFAULT_EGRESS,
    Direction,
    FirewallRule,
    IpProtocol,
    diff_rules,
    expand_rules,
)
from providers.types import *  # noqa: F403
from providers.types import __all__ as _types_all

__all__ = [
    "DEFAULT_EGRESS",
    "AccountConfig",
    "ApiBudget",
    "ApiGate",
    "CircuitBreaker",
    "Clock",
    "CloudProvider",
    "Direction",
    "FirewallRule",
    "GuardedProvider",
    "Inventory",
    "IpProtocol",
    "KindView",
    "LeakTracker",
    "MonotonicClock",
    "ProviderMetrics",
    "TokenBucket",
    "WallClock",
    "default_metrics",
    "diff_rules",
    "driver_names",
    "expand_rules",
    "open_provider",
    "register_driver",
    *_types_all,
]
