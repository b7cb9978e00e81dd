"""What a provider is built from: one account's driver, region, endpoint, credentials, budget.

Where it sits: the composition root maps a ``ProviderAccount`` object and its Secret onto an
``AccountConfig`` and hands it to ``providers.registry.open_provider``. Providers never read the
store, so this plain frozen dataclass is the whole interface between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AccountConfig", "ApiBudget"]


@dataclass(frozen=True)
class ApiBudget:
    """The per-account API budget shared by every worker using the account.

    ``rate`` requests per second refill a bucket of ``burst`` tokens; ``delete_reserve`` is the
    fraction of the bucket only deletes may spend, so deletes go first when the budget is tight.
    After ``breaker_threshold`` consecutive failures of the provider itself (throttling, 5xx,
    timeouts: ``providers.errors.counts_against_provider``) the circuit opens for
    ``breaker_cooldown`` seconds, then lets one probe call through.
    """

    rate: float = 20.0
    burst: int = 40
    delete_reserve: float = 0.25
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("ApiBudget needs rate > 0 and burst >= 1")
        if not 0.0 <= self.delete_reserve < 1.0:
            raise ValueError("delete_reserve is a fraction in [0, 1)")
        if self.breaker_threshold < 1 or self.breaker_cooldown < 0:
            raise ValueError("breaker_threshold >= 1 and breaker_cooldown >= 0")


@dataclass(frozen=True)
class AccountConfig:
    """One provider account.

    ``driver`` names a factory in ``providers.registry`` (``simulated``, ``ec2``). ``endpoint``
    overrides the cloud's URL (ec2) or names the state file (simulated; None = in memory).
    ``credentials`` is the Secret's data (``key``, ``secret`` and driver-specific extras);
    ``images`` maps logical image names to provider image ids; ``options`` holds
    driver-specific settings (see each driver's module docstring).
    """

    name: str
    driver: str
    region: str
    endpoint: str | None = None
    credentials: Mapping[str, str] = field(default_factory=dict, hash=False)
    images: Mapping[str, str] = field(default_factory=dict, hash=False)
    options: Mapping[str, str] = field(default_factory=dict, hash=False)
    api_budget: ApiBudget = field(default_factory=ApiBudget)

    def __repr__(self) -> str:  # never print credentials
        return (
            f"AccountConfig(name={self.name!r}, driver={self.driver!r}, region={self.region!r}, "
            f"endpoint={self.endpoint!r})"
        )
