"""HardwareProfile status: which size each account would give it, as condition ``Ready``.

Where it sits: the HardwareProfile controller, fed by the profile and ProviderAccount caches.
For every account it asks ``reconcilers.hardware.cheapest_match`` — the same matching placement
uses — against the account's size catalogue (``reconcilers._common.account_sizes``, listed
once per account per ten minutes), and reports ``Ready=True`` (``Matched``) with the size per
account in the message (``sim-a: s1.medium; sim-b: none``), or ``Ready=False``
(``NoMatchingSize``) when no account has a size that satisfies it. HardwareProfileStatus has
no fields of its own, so the condition carries the answer; ``skyctl describe`` shows it.
"""

from __future__ import annotations

from api_types import HardwareProfile, ProviderAccount
from api_types.meta import Resource
from controller.handler import EnqueueMapped
from controller.passes import Pass
from controller.reconcile import Request, Result
from reconcilers._common import account_sizes, install_indexes
from reconcilers.deps import Deps
from reconcilers.hardware import HardwareConstraints, cheapest_match

__all__ = ["HardwareProfileReconciler", "register"]


class HardwareProfileReconciler:
    """Says on each HardwareProfile which size of every ProviderAccount is its cheapest match
    (condition ``Ready``: ``Matched``, or ``NoMatchingSize`` when no account has one);
    re-checked whenever an account changes."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._profiles = deps.manager.informer(HardwareProfile)
        self._accounts = deps.manager.informer(ProviderAccount)
        install_indexes(deps)

    def every_profile(self, obj: Resource) -> list[Request]:
        return [
            Request.of(HardwareProfile.PLURAL, None, p.metadata.name) for p in self._profiles.list()
        ]

    def reconcile(self, request: Request) -> Result:
        profile = self._profiles.get(request.key)
        if profile is None:
            return Result()
        wanted = HardwareConstraints.from_profile(profile.spec)
        matches: list[str] = []
        found = 0
        for account in self._accounts.list():
            name = account.metadata.name
            size = cheapest_match(account_sizes(self._deps, name).values(), wanted)
            matches.append(f"{name}: {size.id if size else 'none'}")
            found += size is not None
        with Pass(self._deps.manager, profile) as pass_:
            pass_.condition(
                "Ready",
                found > 0,
                "Matched" if found else "NoMatchingSize",
                "; ".join(matches) or "no ProviderAccount exists",
            )
            pass_.observe_generation()
        return Result()


def register(deps: Deps) -> None:
    reconciler = HardwareProfileReconciler(deps)
    deps.manager.add_controller(
        HardwareProfile,
        reconciler,
        workers=1,
        watches=[(ProviderAccount, EnqueueMapped(reconciler.every_profile))],
    )
