"""Helpers every reconciler shares: accounts, cloud tags, create tokens, reference indexes.

Where it sits: under the per-kind reconcilers (``reconcilers/<kind>.py``), above the runtime
(``controller``) and the providers. Everything here is kind-independent, so the Instance
reconciler uses it as much as the network and storage ones do. Snapshot, finalizers,
conditions and the one status save of a reconcile are ``controller.passes.Pass``'s; keep
condition messages free of timestamps/counters so a converged object compares equal and is
not written.

* :func:`account_handle` — the provider and inventory of a ProviderAccount named by a spec or
  placement; a missing or unusable account is a wait, not a failure. :func:`account_sizes` —
  its sizes by id, from the account's catalogue.
* :func:`cloud_tags` / :func:`derived_token` — the ``Name``/``skybroker/uid``/``skybroker/token``
  tags of a resource created for an object.
* :func:`install_indexes` — call at register time: creates the informers these helpers read
  and the reference indexes several reconcilers use (installed once, whoever comes first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from api_types import Instance, Pool, ProviderAccount, Volume
from api_types.meta import Resource
from controller.cache import Informer
from controller.errors import ReconcileError, TerminalError, TransientError
from controller.store.keys import ObjectKey
from providers import CloudSize, ResourceTags
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps

__all__ = [
    "INSTANCES_BY_FIREWALL",
    "INSTANCES_BY_SUBNET",
    "TRANSITION_VIEW_SECONDS",
    "VOLUMES_BY_INSTANCE",
    "account_handle",
    "account_sizes",
    "cloud_tags",
    "derived_token",
    "install_indexes",
    "namespaced_key",
    "shared_index",
]

R = TypeVar("R", bound=Resource)

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


def shared_index(informer: Informer[R], name: str, index: Callable[[R], list[str]]) -> None:
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
