"""Driver name → factory, and ``open_provider``: the one way to get a provider for an account.

Where it sits: the composition root calls ``open_provider(config)`` once per ProviderAccount
and shares the result among all workers (the API budget lives in it). Drivers are imported
lazily, so an installation that never talks to EC2 never imports libcloud.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from providers.budget import ApiGate
from providers.clock import Clock, MonotonicClock
from providers.config import AccountConfig
from providers.guarded import CircuitListener, GuardedProvider
from providers.metrics import ProviderMetrics, default_metrics
from providers.protocol import CloudProvider

__all__ = ["ProviderFactory", "driver_names", "open_provider", "register_driver"]

ProviderFactory = Callable[[AccountConfig], CloudProvider]
"""Builds the raw (unguarded) provider of one account."""


def _simulated(config: AccountConfig) -> CloudProvider:
    from providers.simulated import SimulatedProvider

    return SimulatedProvider(config)


def _ec2(config: AccountConfig) -> CloudProvider:
    from providers.ec2 import Ec2Provider

    return Ec2Provider(config)


_factories: dict[str, ProviderFactory] = {"simulated": _simulated, "ec2": _ec2}
_lock = threading.Lock()


def register_driver(name: str, factory: ProviderFactory) -> None:
    """Add (or replace) a driver, e.g. another libcloud cloud."""
    with _lock:
        _factories[name] = factory


def driver_names() -> list[str]:
    with _lock:
        return sorted(_factories)


def open_provider(
    config: AccountConfig,
    *,
    clock: Clock | None = None,
    metrics: ProviderMetrics | None = None,
    inner: CloudProvider | None = None,
    on_circuit_open: CircuitListener | None = None,
) -> GuardedProvider:
    """The account's provider behind its API budget, circuit breaker and metrics.

    ``clock`` drives the budget and breaker (monotonic by default); ``inner`` supplies an
    already-built driver (tests pass a simulated cloud on a fake clock); ``on_circuit_open``
    hears the account's name whenever its circuit opens.
    """
    if inner is None:
        with _lock:
            factory = _factories.get(config.driver)
        if factory is None:
            raise ValueError(f"unknown provider driver {config.driver!r}; known: {driver_names()}")
        inner = factory(config)
    gate = ApiGate(config.name, config.api_budget, clock or MonotonicClock())
    return GuardedProvider(inner, gate, metrics or default_metrics(), on_circuit_open)
