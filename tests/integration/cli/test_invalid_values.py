"""skyctl over both backends: a value written straight into etcd that does not decode is
listed as a row marked Invalid, and ``delete`` removes it."""

from __future__ import annotations

from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl


def test_get_lists_an_undecodable_instance_and_delete_removes_it(
    any_backend: Skyctl, store: Store
) -> None:
    etcd_key = store.layout.object_key(ObjectKey("instances", "acme", "garbage"))
    store.client.put(etcd_key, b"\xff\xfe not a manifest")
    listed = any_backend("get", "instances", "-n", "acme")
    assert listed.code == 0, listed.err
    _header, row = listed.out.splitlines()
    assert row.split()[:2] == ["garbage", "<none>"] and "Invalid" in row.split()
    shown = any_backend("get", "instances", "-n", "acme", "-o", "yaml")
    assert "UTF-8" in shown.out
    single = any_backend("get", "instance", "garbage", "-n", "acme")
    assert single.code == 0 and "Invalid" in single.out.splitlines()[1].split()
    described = any_backend("describe", "instance", "garbage", "-n", "acme")
    assert described.code == 0 and "UTF-8" in described.out, described.err
    deleted = any_backend("delete", "instance", "garbage", "-n", "acme")
    assert deleted.code == 0, deleted.err
    assert "instance.skybroker.io/garbage deleted" in deleted.out
    assert not store.client.range(etcd_key).kvs
