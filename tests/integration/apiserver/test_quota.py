"""Quota reserved in the create's own etcd transaction: concurrency can never exceed it."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from api_types import registry
from api_types.compute import Instance
from api_types.tenancy import Quota
from apiserver.auth import MASTERS_GROUP, User
from apiserver.handlers import Resources
from apiserver.lookups import Lookups
from apiserver.paths import Target
from apiserver.rbac import Authorizer
from apiserver.status import ApiError
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT

NS = f"{ROOT}/namespaces/team-a"

#: Admission checks that the image is mapped by the account.
IMAGES = {"ubuntu": "img-ubuntu"}


def _instance(name: str, **hardware: Any) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"account": "sim", "image": "ubuntu", "hardware": hardware or {"cpu": 2}},
    }


def _setup(admin: httpx.Client, hard: dict[str, int]) -> None:
    account = {"kind": "ProviderAccount", "metadata": {"name": "sim"},
               "spec": {"driver": "simulated", "region": "local", "images": IMAGES}}  # fmt: skip
    assert admin.post(f"{ROOT}/provideraccounts", json=account).status_code == 201
    quota = {"kind": "Quota", "metadata": {"name": "default"}, "spec": {"hard": hard}}
    assert admin.post(f"{NS}/quotas", json=quota).status_code == 201


def test_twenty_concurrent_creates_against_ten(
    admin: httpx.Client, api_store: Store, server: Any
) -> None:
    _setup(admin, {"instances": 10})
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def create(i: int) -> None:
        with httpx.Client(base_url=server.url, headers=admin.headers, timeout=60) as http:
            barrier.wait()
            codes.append(http.post(f"{NS}/instances", json=_instance(f"vm-{i}")).status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201] * 10 + [403] * 10
    assert len(api_store.list(Instance, "team-a").items) == 10
    used = api_store.get(Quota, "default", "team-a").status.used
    assert (used.instances, used.cpu) == (10, 20)


def test_usage_counts_cpu_memory_volumes_and_is_released(admin: httpx.Client) -> None:
    _setup(admin, {"cpu": 4, "memoryMiB": 8192, "volumeGiB": 15})
    profile = {"kind": "HardwareProfile", "metadata": {"name": "small"},
               "spec": {"cpu": {"min": 2}, "memoryMiB": {"min": 4096}}}  # fmt: skip
    assert admin.post(f"{ROOT}/hardwareprofiles", json=profile).status_code == 201
    assert admin.post(f"{NS}/instances", json=_instance("a", profile="small")).status_code == 201
    assert admin.post(f"{NS}/instances", json=_instance("b", size="t3.micro")).status_code == 201
    over = admin.post(f"{NS}/instances", json=_instance("c", cpu={"min": 3, "max": 8}))
    assert over.status_code == 403 and "cpu" in over.json()["message"]
    assert admin.post(f"{NS}/instances", json=_instance("c", cpu=2)).status_code == 201
    used = admin.get(f"{NS}/quotas/default").json()["status"]["used"]
    assert used == {"instances": 3, "cpu": 4, "memoryMiB": 4096, "volumes": 0, "volumeGiB": 0}

    volume = {"kind": "Volume", "metadata": {"name": "data"},
              "spec": {"account": "sim", "sizeGiB": 10}}  # fmt: skip
    assert admin.post(f"{NS}/volumes", json=volume).status_code == 201
    grown = admin.patch(
        f"{NS}/volumes/data",
        json={"spec": {"sizeGiB": 20}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert grown.status_code == 403, grown.text  # resizing is charged too

    assert admin.delete(f"{NS}/instances/a").status_code == 200
    assert admin.delete(f"{NS}/volumes/data").status_code == 200
    used = admin.get(f"{NS}/quotas/default").json()["status"]["used"]
    assert used == {"instances": 2, "cpu": 2, "memoryMiB": 0, "volumes": 0, "volumeGiB": 0}


def test_new_quota_starts_from_current_usage(admin: httpx.Client) -> None:
    account = {"kind": "ProviderAccount", "metadata": {"name": "sim"},
               "spec": {"driver": "simulated", "region": "local", "images": IMAGES}}  # fmt: skip
    assert admin.post(f"{ROOT}/provideraccounts", json=account).status_code == 201
    assert admin.post(f"{NS}/instances", json=_instance("a")).status_code == 201
    quota = {"kind": "Quota", "metadata": {"name": "q"}, "spec": {"hard": {"instances": 1}},
             "status": {"used": {"instances": 0}}}  # fmt: skip
    created = admin.post(f"{NS}/quotas", json=quota).json()
    assert created["status"]["used"]["instances"] == 1, "a client cannot forge usage"
    assert admin.post(f"{NS}/instances", json=_instance("b")).status_code == 403


def test_a_quota_the_cache_has_not_seen_still_limits(api_store: Store) -> None:
    """The admission cache is frozen before the Quota (and the account) exist: the account is
    found in etcd, and the create's transaction, which compares that no Quota of the namespace
    was written after the cache's revision, fails and is retried on the Quota read from etcd."""
    lookups = Lookups(api_store)
    lookups.start()
    assert lookups.wait_for_sync(10)
    lookups.stop()  # from here on the cache sees nothing
    api_store.create(registry.parse_object(
        {"kind": "ProviderAccount", "metadata": {"name": "sim"},
         "spec": {"driver": "simulated", "region": "local", "images": IMAGES}}))  # fmt: skip
    quota = {"kind": "Quota", "metadata": {"name": "q", "namespace": "team-a"},
             "spec": {"hard": {"instances": 1}}}  # fmt: skip
    api_store.create(registry.parse_object(quota))
    assert lookups.quotas("team-a").quotas == [], "the cache has not seen the Quota"

    resources = Resources(api_store, Authorizer(api_store), lookups)
    admin = User("admin", "admin", frozenset({MASTERS_GROUP}))
    target = Target(registry.by_plural("instances"), "team-a")
    resources.create(admin, target, _instance("a"), dry_run=False)
    with pytest.raises(ApiError) as refused:
        resources.create(admin, target, _instance("b"), dry_run=False)
    assert refused.value.code == 403 and "exceeded quota: q" in refused.value.message
    assert api_store.get(Quota, "q", "team-a").status.used.instances == 1
    assert [i.metadata.name for i in api_store.list(Instance, "team-a").items] == ["a"]


def test_a_reservation_is_a_store_write_with_its_history(api_store: Store) -> None:
    """The Quota's new usage goes through the store in the create's transaction: the Quota's
    history says who reserved what, and the store knows the value as its own write."""
    api_store.create(registry.parse_object(
        {"kind": "ProviderAccount", "metadata": {"name": "sim"},
         "spec": {"driver": "simulated", "region": "local", "images": IMAGES}}))  # fmt: skip
    quota = {"kind": "Quota", "metadata": {"name": "q", "namespace": "team-a"},
             "spec": {"hard": {"instances": 5}}}  # fmt: skip
    api_store.create(registry.parse_object(quota))
    lookups = Lookups(api_store)  # not started: admission reads etcd
    resources = Resources(api_store, Authorizer(api_store), lookups)
    alice = User("alice", "u-alice", frozenset({MASTERS_GROUP}))
    target = Target(registry.by_plural("instances"), "team-a")
    created = resources.create(alice, target, _instance("a"), dry_run=False)

    stored = api_store.get(Quota, "q", "team-a")
    assert stored.metadata.resource_version == created["metadata"]["resourceVersion"]
    key = ObjectKey(Quota.PLURAL, "team-a", "q")
    assert api_store.wrote(key, int(str(stored.metadata.resource_version)))
    reserved = api_store.history(key)[-1]
    assert (reserved.action, reserved.actor) == ("StatusChanged", "alice")
    assert {c["path"]: (c["before"], c["after"]) for c in reserved.changes} == {
        "status.used.instances": (0, 1),
        "status.used.cpu": (0, 2),
    }
