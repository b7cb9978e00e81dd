"""ProviderAccount health: a periodic cheap probe through the guarded provider.

Where it sits: the ProviderAccount controller. Every ``probe_interval`` (30 s) it calls
``list_zones`` through the account's shared provider (so the API budget and circuit breaker
see it like any other call) and writes:

* ``zones``: the zones ``list_zones`` reports available, sorted (kept as they were while the
  cloud cannot say) — the EC2 front door's availability zones of a pool (DESIGN §12);
* condition ``Ready``: True/``Healthy``, or False with the reason — the driver's error code
  (``InternalError``, ``AuthFailure``…), ``CircuitOpen`` / ``BudgetExhausted`` from the gate, or
  the registry's ``InvalidAccount`` / ``CredentialsMissing``. Placement reads this condition:
  an account whose Ready is False is not scheduled on (``reconcilers.placement.inputs``).
* a circuit breaker that opens (``providers.guarded``) re-probes the account at once, so
  ``Ready=False``/``CircuitOpen`` with the failure that opened it shows within moments (and a
  Warning event ``CircuitOpen``), not at the next interval; while it is open the account is
  probed again as soon as the cooldown ends, the probe being the call that closes it.
* ``errorRate`` and ``latencyMs`` over the last ``WINDOW`` probes (latency: median of the
  successful ones), and ``managedResources`` from the account's inventory, listed afresh by
  the probe (which thereby refreshes the views every reconciler of the account reads).

Status is written only when it changes meaningfully: the condition, the error rate, the zones,
the counts, or a latency that moved by more than half — so a steady, healthy account writes
nothing.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque

from api_types import ManagedResourceCounts, ProviderAccount
from controller.errors import CircuitOpen, ReconcileError, TerminalError
from controller.passes import Pass
from controller.predicate import GenerationChanged
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps

__all__ = ["PROBE_SECONDS", "AccountReconciler", "register"]

PROBE_SECONDS = 30.0
WINDOW = 10
#: Latency changes smaller than this (ms), or within a factor of two, are not written.
LATENCY_SLACK_MS = 5.0


def _latency_moved(old: float | None, new: float | None) -> bool:
    if old is None or new is None:
        return old != new
    return abs(new - old) > LATENCY_SLACK_MS and not old / 2 <= new <= old * 2


class AccountReconciler:
    """Probes each ProviderAccount's cloud every ``probe_interval`` and writes its health:
    condition ``Ready``, error rate and latency over the last probes, managed resource counts
    (see the module)."""

    def __init__(self, deps: Deps, probe_interval: float = PROBE_SECONDS) -> None:
        self._deps = deps
        self._accounts = deps.manager.informer(ProviderAccount)
        self._interval = probe_interval
        self._lock = threading.Lock()
        self._probes: dict[ObjectKey, deque[tuple[bool, float]]] = {}

    def _record(self, key: ObjectKey, ok: bool, seconds: float) -> tuple[float, float | None]:
        """Add one probe; returns (error rate, median latency ms of successes) of the window."""
        with self._lock:
            window = self._probes.setdefault(key, deque(maxlen=WINDOW))
            window.append((ok, seconds))
            probes = list(window)
        failures = sum(1 for ok_, _ in probes if not ok_)
        latencies = [s * 1000 for ok_, s in probes if ok_]
        median = round(statistics.median(latencies), 3) if latencies else None
        return round(failures / len(probes), 3), median

    def reconcile(self, request: Request) -> Result:
        account = self._accounts.get(request.key)
        if account is None:
            with self._lock:
                self._probes.pop(request.key, None)
            return Result()
        with Pass(self._deps.manager, account) as pass_:
            return self._probe(pass_, request.key)

    def _probe(self, pass_: Pass[ProviderAccount], key: ObjectKey) -> Result:
        """Probe the account's cloud once; conditions and measurements go on its status."""
        status = pass_.obj.status
        try:
            handle = self._deps.providers.handle(pass_.obj)
        except TerminalError as exc:
            pass_.condition("Ready", False, exc.reason, exc.message)
            pass_.observe_generation()
            return Result(requeue_after=self._interval)
        started = self._deps.clock.now()
        try:
            zones = handle.provider.list_zones()
            status.zones = sorted({zone.name for zone in zones if zone.available})
            problem: ReconcileError | None = None
        except ReconcileError as exc:
            problem = exc
        error_rate, latency = self._record(key, problem is None, self._deps.clock.now() - started)
        requeue_after = self._interval
        if problem is None:
            pass_.condition("Ready", True, "Healthy")
        else:
            reason = problem.code or type(problem).__name__
            changed = pass_.condition("Ready", False, reason, problem.message)
            if isinstance(problem, CircuitOpen):
                if changed:
                    pass_.event("Warning", reason, problem.message)
                if problem.delay is not None:  # probe again as the cooldown ends
                    requeue_after = min(requeue_after, problem.delay)
        status.error_rate = error_rate
        if _latency_moved(status.latency_ms, latency):
            status.latency_ms = latency
        status.managed_resources = self._counts(handle, status.managed_resources)
        pass_.observe_generation()
        return Result(requeue_after=requeue_after)

    @staticmethod
    def _counts(handle: AccountHandle, known: ManagedResourceCounts) -> ManagedResourceCounts:
        """Managed (uid-tagged) resources per kind, from views the probe lists afresh: a
        cached view could be most of an interval old, and counts read from it would trail the
        cloud by two probes (and keep writing status that long after everything settled)."""
        inventory = handle.inventory
        try:
            views = (
                inventory.instances(max_age=0.0),
                inventory.subnets(max_age=0.0),
                inventory.firewalls(max_age=0.0),
                inventory.volumes(max_age=0.0),
            )
        except ReconcileError:
            return known  # the probe's condition already says the cloud is unwell
        instances, subnets, firewalls, volumes = (
            sum(1 for item in view.by_id.values() if item.uid is not None) for view in views
        )
        return ManagedResourceCounts(
            instances=instances, subnets=subnets, firewalls=firewalls, volumes=volumes
        )


def register(deps: Deps, *, probe_interval: float = PROBE_SECONDS) -> None:
    # Only spec changes: the account's own status writes must not trigger extra probes.
    controller = deps.manager.add_controller(
        ProviderAccount,
        AccountReconciler(deps, probe_interval),
        workers=1,
        predicates=[GenerationChanged()],
    )
    deps.providers.on_circuit_open(
        lambda name: controller.enqueue(Request.of(ProviderAccount.PLURAL, None, name))
    )
