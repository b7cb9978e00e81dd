"""A LocalBackend whose user carries a history actor (``User.actor``): what the GitSource
reconciler writes with — authorised as its serviceAccount, recorded as the GitSource and
revision (DESIGN §9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api_types import registry
from api_types.compute import Instance
from api_types.tenancy import Quota
from apiserver.auth import AUTHENTICATED_GROUP, User
from apiserver.handlers import Resources
from apiserver.local import LocalBackend
from apiserver.rbac import Authorizer
from controller.errors import ApiError
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.integration.apiserver.conftest import firewall

ACCOUNT = "gitops-b"
ACTOR = "gitsource/team-b/infra@" + "c0ffee" * 6 + "abcd"
FIREWALLS = registry.by_plural("firewalls")


@pytest.fixture
def backend(api_store: Store) -> Iterator[LocalBackend]:
    """``gitops-b`` may edit team-b only (conftest's seed); an account and a Quota there."""
    for wire in (
        {"kind": "RoleBinding", "metadata": {"name": "gitops", "namespace": "team-b"},
         "roleRef": {"kind": "ClusterRole", "name": "edit"},
         "subjects": [{"kind": "User", "name": ACCOUNT}]},
        {"kind": "ProviderAccount", "metadata": {"name": "sim"},
         "spec": {"driver": "simulated", "region": "local", "images": {"ubuntu": "img-u"}}},
        {"kind": "Quota", "metadata": {"name": "q", "namespace": "team-b"},
         "spec": {"hard": {"instances": 5}}},
    ):  # fmt: skip
        api_store.create(registry.parse_object(wire))
    authorizer = Authorizer(api_store)
    authorizer.start()
    assert authorizer.wait_for_sync(10)
    user = User(ACCOUNT, ACCOUNT, frozenset({AUTHENTICATED_GROUP}), actor=ACTOR)
    yield LocalBackend(Resources(api_store, authorizer), user)
    authorizer.stop()


def _actors(store: Store, plural: str, namespace: str, name: str) -> list[tuple[str, str]]:
    return [(r.action, r.actor) for r in store.history(ObjectKey(plural, namespace, name))]


def test_writes_are_recorded_as_the_actor(backend: LocalBackend, api_store: Store) -> None:
    backend.create(firewall("web", "team-b"), dry_run=False)
    current = backend.get(FIREWALLS, "team-b", "web")
    current["spec"]["rules"][0]["ports"] = "443"
    backend.update(current, dry_run=False)
    patch = {"spec": {"rules": [{**current["spec"]["rules"][0], "ports": "8443"}]}}
    backend.patch(FIREWALLS, "team-b", "web", patch, dry_run=False)
    backend.delete(FIREWALLS, "team-b", "web", dry_run=False)
    assert _actors(api_store, "firewalls", "team-b", "web") == [
        ("Created", ACTOR),
        ("SpecChanged", ACTOR),
        ("SpecChanged", ACTOR),
        ("Deleted", ACTOR),
    ]
    # staged() keeps the user, actor included.
    backend.staged([]).create(firewall("db", "team-b"), dry_run=False)
    assert _actors(api_store, "firewalls", "team-b", "db") == [("Created", ACTOR)]


def test_quota_reservations_are_recorded_as_the_actor(
    backend: LocalBackend, api_store: Store
) -> None:
    instance: dict[str, Any] = {
        "kind": "Instance",
        "metadata": {"name": "vm", "namespace": "team-b"},
        "spec": {"account": "sim", "image": "ubuntu", "hardware": {"cpu": 1}},
    }
    backend.create(instance, dry_run=False)
    backend.delete(registry.by_plural("instances"), "team-b", "vm", dry_run=False)
    assert api_store.list(Instance, "team-b").items == []
    reservations = _actors(api_store, Quota.PLURAL, "team-b", "q")[-2:]
    assert reservations == [("StatusChanged", ACTOR), ("StatusChanged", ACTOR)]


def test_rbac_is_decided_by_the_user_not_the_actor(backend: LocalBackend, api_store: Store) -> None:
    with pytest.raises(ApiError) as refused:
        backend.create(firewall("web", "team-a"), dry_run=False)
    assert refused.value.code == 403
    assert refused.value.message.startswith(f'User "{ACCOUNT}" cannot create')
    assert _actors(api_store, "firewalls", "team-a", "web") == []
