"""Helpers every reconciler shares: conditions, finalizers, status writes, accounts, tags, indexes.

Where it sits: under the per-kind reconcilers (``reconcilers/<kind>.py``), above the runtime
(``controller``) and the providers. Everything here is kind-independent, so the Instance
reconciler uses it as much as the network and storage ones do:

* conditions are set with ``Status.set_condition`` (api_types): ``lastTransitionTime`` moves
  only when the status flips. Keep messages free of timestamps/counters so a converged object
  compares equal and is not written.
* :func:`write_status` — a status write (fenced by the shard lease) only when ``status``
  differs from the snapshot taken before reconciling (``snapshot(obj)``).
* :func:`failed_on_terminal` — around a cloud create: the cloud's final refusal leaves the
  object in phase ``Failed`` with the reason on ``Ready``, instead of its last phase.
* :func:`add_finalizer` / :func:`remove_finalizer` — fenced CAS updates of metadata;
  :func:`finalizer_on_next_save` instead rides on the next status write.
* :func:`conflicts_retry` — decorate ``reconcile``: a lost CAS race becomes a quiet
  ``TransientError`` (re-read from the cache on the next attempt) instead of a traceback.
* :func:`account_handle` — the provider and inventory of a ProviderAccount named by a spec or
  placement; a missing or unusable account is a wait, not a failure. :func:`account_sizes` —
  its sizes by id, from the account's catalogue.
* :func:`cloud_tags` / :func:`derived_token` — the ``Name``/``skybroker/uid``/``skybroker/token``
  tags of a resource created for an object.
* :func:`install_indexes` — call at register time: creates the informers these helpers read
  and the reference indexes several reconcilers use (installed once, whoever comes first).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from api_types import Instance, Pool, ProviderAccount, Volume
from api_types.meta import Resource
from controller.cache import Informer
from controller.errors import (
    ConflictError,
    NotFoundError,
    ReconcileError,
    TerminalError,
    TransientError,
)
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from controller.store.results import TxnExtras
from providers import CloudSize, ResourceTags
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps

__all__ = [
    "ACTOR",
    "INSTANCES_BY_FIREWALL",
    "INSTANCES_BY_SUBNET",
    "TRANSITION_VIEW_SECONDS",
    "VOLUMES_BY_INSTANCE",
    "account_handle",
    "account_sizes",
    "add_finalizer",
    "cloud_tags",
    "conflicts_retry",
    "derived_token",
    "failed_on_terminal",
    "finalizer_on_next_save",
    "install_indexes",
    "namespaced_key",
    "remove_finalizer",
    "shared_index",
    "snapshot",
    "write_status",
]

R = TypeVar("R", bound=Resource)

#: The actor named in history records of writes made by reconcilers.
ACTOR = "controller"
#: How long to wait before looking again for an account that is missing or unusable.
ACCOUNT_RETRY_SECONDS = 10.0
#: Oldest inventory view an object in transition (booting, stopping, being created) is read
#: through, instead of the inventory interval's: still one list per account, shared by all.
TRANSITION_VIEW_SECONDS = 2.0

#: Instance index: ``namespace/firewall`` for each of ``spec.firewallRefs``.
INSTANCES_BY_FIREWALL = "firewallRefs"
#: Instance index: ``namespace/subnet`` of ``spec.subnetRef``.
INSTANCES_BY_SUBNET = "subnetRef"
#: Volume index: ``namespace/instance`` of ``spec.attachTo.instance``.
VOLUMES_BY_INSTANCE = "attachTo"


# --------------------------------------------------------------------------- conditions/status


def snapshot(obj: Resource) -> dict[str, Any]:
    """What :func:`write_status` compares with: ``obj``'s status and finalizers, as read."""
    return {
        "status": obj.to_wire().get("status", {}),
        "finalizers": list(obj.metadata.finalizers),
    }


def _fence(deps: Deps, obj: Resource) -> TxnExtras:
    return TxnExtras(compares=deps.manager.fence_for(deps.store.key_of(obj)))


def write_status(deps: Deps, obj: R, before: dict[str, Any], *, request_id: str | None = None) -> R:
    """Write ``obj.status`` — and finalizers added since — if they differ from ``before``
    (a :func:`snapshot`); returns the object as stored."""
    now = snapshot(obj)
    if now == before:
        return obj
    return deps.store.update_status(
        obj,
        actor=ACTOR,
        request_id=request_id,
        extras=_fence(deps, obj),
        with_finalizers=now["finalizers"] != before["finalizers"],
    )


@contextmanager
def failed_on_terminal(deps: Deps, obj: Resource, before: dict[str, Any]) -> Iterator[None]:
    """A ``TerminalError`` inside sets phase ``Failed`` and ``Ready=False`` with its reason and
    message on ``obj``, writes them at once, and propagates (not retried; the runtime records
    the Warning event)."""
    try:
        yield
    except TerminalError as exc:
        status = obj.status  # type: ignore[attr-defined]
        status.phase = "Failed"
        generation = obj.metadata.generation
        status.set_condition("Ready", False, exc.reason, exc.message, generation=generation)
        write_status(deps, obj, before)
        raise


def finalizer_on_next_save(obj: Resource, finalizer: str) -> None:
    """Put ``finalizer`` on ``obj`` in memory; the next :func:`write_status` writes it with the
    status. For reconcilers whose first cloud call always follows a status save (the one
    that records the create token), so the finalizer is durable before anything exists."""
    if finalizer not in obj.metadata.finalizers:
        obj.metadata.finalizers.append(finalizer)


def add_finalizer(deps: Deps, obj: R, finalizer: str) -> R:
    """Ensure ``finalizer`` is on ``obj`` (before any cloud resource exists for it)."""
    if finalizer in obj.metadata.finalizers:
        return obj
    obj.metadata.finalizers.append(finalizer)
    return deps.store.update(obj, actor=ACTOR, extras=_fence(deps, obj))


def remove_finalizer(deps: Deps, obj: Resource, finalizer: str) -> None:
    """Drop ``finalizer`` (once the cloud resource is confirmed gone); may delete the key."""
    if finalizer not in obj.metadata.finalizers:
        return
    obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != finalizer]
    try:
        deps.store.update(obj, actor=ACTOR, extras=_fence(deps, obj))
    except NotFoundError:
        return  # already deleted: nothing left to release


def conflicts_retry(
    reconcile: Callable[[Any, Request], Result],
) -> Callable[[Any, Request], Result]:
    """Turn a lost CAS race inside ``reconcile`` into a backoff retry without a traceback."""

    @functools.wraps(reconcile)
    def wrapper(self: Any, request: Request) -> Result:
        try:
            return reconcile(self, request)
        except ConflictError as exc:
            raise TransientError(f"{request.key} changed meanwhile: {exc}") from None

    return wrapper


# --------------------------------------------------------------------------- accounts and tags


def account_handle(deps: Deps, name: str) -> AccountHandle:
    """The named account's provider; TransientError while it is missing or unusable."""
    account = deps.manager.informer(ProviderAccount).peek(
        ObjectKey(ProviderAccount.PLURAL, None, name)
    )
    if account is None:
        raise TransientError(f"ProviderAccount {name} does not exist", delay=ACCOUNT_RETRY_SECONDS)
    try:
        return deps.providers.handle(account)
    except TerminalError as exc:
        # The account may be fixed at any time (a Secret created, a driver corrected); the
        # account's own Ready condition carries the terminal reason.
        raise TransientError(
            f"ProviderAccount {name} is unusable: {exc.message}", delay=ACCOUNT_RETRY_SECONDS
        ) from None


def account_sizes(deps: Deps, name: str) -> dict[str, CloudSize]:
    """The account's sizes by id, from its catalogue (empty if the cloud cannot say now)."""
    try:
        return {size.id: size for size in account_handle(deps, name).catalogue.offer().sizes}
    except ReconcileError:
        return {}


def derived_token(*parts: str) -> str:
    """A stable create token from ``parts`` (uid, generation, place…), short enough for tags."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def cloud_tags(obj: Resource, token: str, *, name: str | None = None) -> ResourceTags:
    """Tags of a cloud resource realising ``obj``: its uid, the create token and a name."""
    namespace = obj.metadata.namespace
    default_name = f"{namespace}/{obj.metadata.name}" if namespace else obj.metadata.name
    return ResourceTags(name=name or default_name, uid=str(obj.metadata.uid), token=token)


# --------------------------------------------------------------------------- indexes


def namespaced_key(namespace: str | None, name: str) -> str:
    """The value used by the reference indexes: ``namespace/name``."""
    return f"{namespace or ''}/{name}"


def shared_index(informer: Informer[Any], name: str, index: Callable[[Any], list[str]]) -> None:
    """Add ``index`` under ``name`` unless another reconciler already installed it."""
    try:
        informer.add_index(name, index)
    except ValueError:
        return  # installed by whoever registered first; the definitions below are the only ones


def _firewall_refs(instance: Instance) -> list[str]:
    namespace = instance.metadata.namespace
    return [namespaced_key(namespace, ref) for ref in instance.spec.firewall_refs]


def _subnet_ref(instance: Instance) -> list[str]:
    ref = instance.spec.subnet_ref
    return [] if ref is None else [namespaced_key(instance.metadata.namespace, ref)]


def _attach_to(volume: Volume) -> list[str]:
    target = volume.spec.attach_to
    return [] if target is None else [namespaced_key(volume.metadata.namespace, target.instance)]


def install_indexes(deps: Deps) -> None:
    """Create the informers the shared helpers read and install the reference indexes.

    Call it from a reconciler's constructor (at ``register`` time): the manager starts only
    the informers that exist when it runs, so one first asked for inside a reconcile would
    never fill.
    """
    deps.manager.informer(ProviderAccount)
    deps.manager.informer(Pool)
    instances = deps.manager.informer(Instance)
    shared_index(instances, INSTANCES_BY_FIREWALL, _firewall_refs)
    shared_index(instances, INSTANCES_BY_SUBNET, _subnet_ref)
    shared_index(deps.manager.informer(Volume), VOLUMES_BY_INSTANCE, _attach_to)
