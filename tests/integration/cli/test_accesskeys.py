"""``skyctl create accesskey`` over both backends (DESIGN §12): exactly two lines, the id and the
secret, shown once; ``get ak`` never shows the secret, only an admin reads it from the Secret;
a failed write leaves nothing behind; deleting the key lets the garbage collector take its
Secret."""

from __future__ import annotations

import base64
import contextlib
import re

from api_types import registry
from api_types.accesskeys import AccessKey
from api_types.common import SYSTEM_NAMESPACE
from api_types.tenancy import Secret
from controller.errors import AlreadyExistsError
from controller.gc import GarbageCollector
from controller.store.objects import Store
from skyctl.accesskeys import secret_name
from tests.integration.cli.helpers import Skyctl

CREATE = ("create", "accesskey", "ci", "--user", "alice", "--group", "tenants", "-n", "acme")
TWO_LINES = re.compile(r"accessKeyId: (AKIA[A-Z0-9]{16})\nsecretAccessKey: ([A-Za-z0-9+/]{40})\n")


def _system_namespace(store: Store) -> None:
    """``--etcd`` has no API server to create it at start."""
    namespace = registry.parse_object({"kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}})
    with contextlib.suppress(AlreadyExistsError):
        store.create(namespace)


def test_create_prints_two_lines_and_only_an_admin_reads_the_secret(
    any_backend: Skyctl, store: Store
) -> None:
    _system_namespace(store)
    created = any_backend(*CREATE)
    assert created.code == 0, created.err
    match = TWO_LINES.fullmatch(created.out)
    assert match, created.out
    key_id, secret = match.groups()

    (key,) = store.list(AccessKey).items
    assert (key.metadata.name, key.spec.access_key_id, key.spec.user) == ("ci", key_id, "alice")
    assert (key.spec.groups, key.spec.namespace) == (["tenants"], "acme")
    stored = store.get(Secret, secret_name(key_id), SYSTEM_NAMESPACE)
    assert stored.get_text("secretAccessKey") == secret
    assert [(r.kind, r.name, r.uid) for r in stored.metadata.owner_references] == [
        ("AccessKey", "ci", key.metadata.uid)
    ]

    listed = any_backend("get", "ak")
    assert listed.code == 0, listed.err
    header, row = listed.out.splitlines()
    assert header.split() == ["NAME", "ID", "USER", "NAMESPACE", "DISABLED", "AGE"]
    assert row.split()[:5] == ["ci", key_id, "alice", "acme", "False"]
    for shown in (
        listed,
        any_backend("get", "accesskey", "ci", "-o", "yaml"),
        any_backend("describe", "ak", "ci"),
        any_backend("get", "ak", "-o", "wide"),
    ):
        assert shown.code == 0, shown.err
        assert secret not in shown.out

    path = "jsonpath={.data.secretAccessKey}"
    read = any_backend("get", "secret", secret_name(key_id), "-n", SYSTEM_NAMESPACE, "-o", path)
    assert read.code == 0, read.err
    assert base64.b64decode(read.out.strip()).decode() == secret

    if any_backend.connection[0] == "--server":  # RBAC is the API server's
        alice = Skyctl((*any_backend.connection[:2], "--token", "alice-token"))
        assert alice("get", "ns", "acme").code == 0  # alice is admin in acme …
        for argv in (
            ("get", "ak"),
            ("get", "ak", "ci"),
            ("get", "secret", secret_name(key_id), "-n", SYSTEM_NAMESPACE),
            ("create", "accesskey", "mine", "--user", "alice", "-n", "acme"),
        ):
            denied = alice(*argv)  # … and may neither read nor create access keys
            assert denied.code == 1 and 'User "alice" cannot' in denied.err, (argv, denied)
            assert secret not in denied.out + denied.err
        assert len(store.list(AccessKey).items) == 1

    deleted = any_backend("delete", "ak", "ci")
    assert deleted.code == 0, deleted.err
    GarbageCollector(store).collect_once()
    assert store.list(Secret, SYSTEM_NAMESPACE).items == []


def test_a_failed_write_leaves_nothing_behind(any_backend: Skyctl, store: Store) -> None:
    refused = any_backend("create", "accesskey", "ci", "--user", "alice", "-n", "ghost")
    assert refused.code == 1 and "spec.namespace" in refused.err, refused.err
    assert refused.out == ""
    if any_backend.connection[0] == "--etcd":
        # No skybroker-system yet: the Secret is refused after its AccessKey was written,
        # and the AccessKey is removed again.
        orphaned = any_backend(*CREATE)
        assert orphaned.code == 1 and SYSTEM_NAMESPACE in orphaned.err, orphaned.err
        assert orphaned.out == ""
    assert store.list(AccessKey).items == []
    assert store.list(Secret).items == []


def test_usage_errors(any_backend: Skyctl) -> None:
    for argv, words in (
        (("create", "accesskey", "ci", "-n", "acme"), "--user"),
        (("create", "accesskey", "ci", "--user", "alice"), "--namespace"),
        (("create", "accesskey", "--user", "alice", "-n", "acme"), "one NAME"),
        (("create", "instance", "web", "--user", "alice", "-n", "acme"), "only accesskey"),
        (("create",), "-f FILE"),
        (("create", "-f", "x.yaml", "--user", "alice"), "--user"),
    ):
        result = any_backend(*argv)
        assert result.code == 2 and words in result.err, (argv, result)


def test_dry_run_prints_no_secret_and_writes_nothing(any_backend: Skyctl, store: Store) -> None:
    _system_namespace(store)
    result = any_backend(*CREATE, "--dry-run")
    assert result.code == 0, result.err
    assert result.out == "accesskey.skybroker.io/ci created (dry run)\n"
    assert store.list(AccessKey).items == [] and store.list(Secret).items == []
