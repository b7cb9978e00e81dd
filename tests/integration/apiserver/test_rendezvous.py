"""The rendezvous endpoints through a real API server over real etcd (DESIGN §11): the config
fetch and its long-poll, reports as one-write heartbeats, the one 401, dynamic claims."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api_types.bootconfigs import BootConfig
from api_types.rendezvous import API_PREFIX, ReportStatus
from api_types.tenancy import Secret
from controller.rendezvous import RendezvousStore
from controller.store.etcd import EtcdClient
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.etcd_writes import key_revisions
from tests.integration.apiserver.rendezvous_world import (
    CLAIMS,
    CONFIG,
    bearer,
    boot_config,
    config_path,
    enroll,
    register,
    set_revision,
)
from tests.waiting import eventually


@pytest.fixture
def http(server: HttpServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client  # type: ignore[misc]


def test_fetch_answers_the_config_in_camel_case(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "web", staleAfter="90s")
    set_revision(api_store, "web", 4)
    uid, secret = register(api_store, "web")
    answer = http.get(config_path(uid), headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "uuid": uid,
        "config": CONFIG,
        "parameters": {"role": "web"},
        "revision": 4,
        "heartbeatSeconds": 30,
    }


def test_revision_is_zero_until_the_reconciler_sets_it(
    api_store: Store, http: httpx.Client
) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    assert http.get(config_path(uid), headers=bearer(secret)).json()["revision"] == 0


def test_every_refusal_is_the_same_401(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    other_uid, _ = register(api_store, "web", instance="vm-2")
    unknown = "0b6f7a4e-1d2c-4e5f-8a9b-0c1d2e3f4a5b"
    refusals = [
        http.get(config_path(uid), headers=bearer(secret[:-1] + "x")),  # wrong secret
        http.get(config_path(unknown), headers=bearer(secret)),  # unknown uuid
        http.get(config_path(other_uid), headers=bearer(secret)),  # another uuid's secret
        http.get(config_path(uid)),  # no Authorization
        http.get(config_path(uid), headers={"Authorization": f"Basic {secret}"}),
        http.get(config_path("not-a-uuid"), headers=bearer(secret)),
        http.put(f"{config_path(unknown)}/report", json={"status": "Configured"},
                 headers=bearer(secret)),
    ]  # fmt: skip
    first = refusals[0]
    assert first.status_code == 401
    assert first.json()["reason"] == "Unauthorized" and first.json()["kind"] == "Status"
    for answer in refusals:
        assert answer.status_code == 401
        assert answer.content == first.content
        assert {k: v for k, v in answer.headers.items() if k != "date"} == {
            k: v for k, v in first.headers.items() if k != "date"
        }
        assert secret not in answer.text


def test_a_forgotten_uuid_is_refused_once_the_record_is_gone(
    api_store: Store, http: httpx.Client
) -> None:
    """Reports are checked against the API server's watched copy of the records; deleting a
    record (the Instance deleted, a stale slot released) reaches it at once."""
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    report = {"status": "Configured"}
    path = f"{config_path(uid)}/report"
    assert http.put(path, json=report, headers=bearer(secret)).status_code == 204
    RendezvousStore(api_store).forget("team-a", uid)
    eventually(
        lambda: http.put(path, json=report, headers=bearer(secret)).status_code == 401,
        what="a report of a forgotten uuid still accepted",
    )
    assert http.get(config_path(uid), headers=bearer(secret)).status_code == 401


def test_report_is_one_etcd_write_of_the_heartbeat(
    api_store: Store, http: httpx.Client, etcd_client: EtcdClient, key_prefix: str
) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    heartbeat_key = api_store.layout.heartbeat_key("team-a", uid)
    report = {
        "status": "Configured",
        "address": "10.0.0.7",
        "parameters": {"ip": "10.0.0.7", "role": "db"},
        "message": "configured",
        "configRevision": 0,
    }

    def report_writes() -> tuple[set[bytes], int]:
        """The keys of this test a report wrote, and how many puts its heartbeat has had.
        (This test's keys, not etcd's global revision: the session's etcd is shared.)"""
        before = key_revisions(etcd_client, key_prefix)
        answer = http.put(f"{config_path(uid)}/report", json=report, headers=bearer(secret))
        assert answer.status_code == 204, answer.text
        assert answer.content == b""
        after = key_revisions(etcd_client, key_prefix)
        written = {key for key, revision in after.items() if before.get(key) != revision}
        assert set(before) <= set(after)  # nothing deleted either
        return written, int(etcd_client.range(heartbeat_key).kvs[0].version)

    # One put of one key, the heartbeat: nothing to the Instance, the BootConfig or the record.
    assert report_writes() == ({heartbeat_key}, 1)
    beat = RendezvousStore(api_store).heartbeat("team-a", uid)
    assert beat is not None
    assert (beat.uuid, beat.boot_config, beat.instance, beat.slot) == (uid, "web", "vm-1", None)
    assert (beat.status, beat.address, beat.config_revision) == (
        ReportStatus.CONFIGURED,
        "10.0.0.7",
        0,
    )
    assert beat.parameters == {"ip": "10.0.0.7", "role": "db"}
    # A second report is again one put (the lease of its time bucket is reused).
    assert report_writes() == ({heartbeat_key}, 2)
    # The config answers the BootConfig's parameters overlaid with the reported ones.
    config = http.get(config_path(uid), headers=bearer(secret)).json()
    assert config["parameters"] == {"role": "db", "ip": "10.0.0.7"}


def test_bad_reports_name_the_field_and_write_nothing(
    api_store: Store, http: httpx.Client, etcd_client: EtcdClient, key_prefix: str
) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    url, headers = f"{config_path(uid)}/report", bearer(secret)
    before = key_revisions(etcd_client, key_prefix)
    bad_status = http.put(url, json={"status": "Bogus-value-xyz"}, headers=headers)
    assert bad_status.status_code == 422
    assert [c["field"] for c in bad_status.json()["details"]["causes"]] == ["status"]
    assert "Bogus-value-xyz" not in bad_status.text
    long_address = http.put(url, json={"status": "Failed", "address": "a" * 300}, headers=headers)
    assert long_address.status_code == 422
    assert [c["field"] for c in long_address.json()["details"]["causes"]] == ["address"]
    assert "a" * 300 not in long_address.text
    unknown = http.put(url, json={"status": "Failed", "colour": "red"}, headers=headers)
    assert [c["field"] for c in unknown.json()["details"]["causes"]] == ["colour"]
    missing = http.put(url, json={}, headers=headers)
    assert missing.status_code in (400, 422)
    not_json = http.put(url, content=b"[1, 2]", headers={**headers,
                        "Content-Type": "application/json"})  # fmt: skip
    assert not_json.status_code == 400
    assert key_revisions(etcd_client, key_prefix) == before
    # Checked before anything else: a wrong secret with a bad body is the 401.
    refused = http.put(url, json={"status": "Bogus"}, headers=bearer("x" * 43))
    assert refused.status_code == 401


def test_long_poll_wakes_when_the_revision_moves(
    api_store: Store, http: httpx.Client, server: HttpServer
) -> None:
    boot_config(api_store, "web")
    set_revision(api_store, "web", 1)
    uid, secret = register(api_store, "web")
    url = f"{config_path(uid)}?afterRevision=1&timeoutSeconds=120"
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(http.get, url, headers=bearer(secret))
        eventually(lambda: server.api.rendezvous.waiting() == 1, what="the poll to wait")
        assert not polling.done()
        set_revision(api_store, "web", 2)
        answer = polling.result(timeout=20)
    assert answer.status_code == 200
    assert answer.json()["revision"] == 2
    assert server.api.rendezvous.waiting() == 0
    # A revision other than the current one answers at once.
    assert (
        http.get(f"{config_path(uid)}?afterRevision=1", headers=bearer(secret)).json()["revision"]
        == 2
    )


def test_long_poll_answers_the_same_revision_at_its_timeout(
    api_store: Store, http: httpx.Client, server: HttpServer
) -> None:
    boot_config(api_store, "web")
    set_revision(api_store, "web", 3)
    uid, secret = register(api_store, "web")
    answer = http.get(f"{config_path(uid)}?afterRevision=3&timeoutSeconds=1",
                      headers=bearer(secret))  # fmt: skip
    assert answer.status_code == 200
    assert answer.json()["revision"] == 3
    assert server.api.rendezvous.waiting() == 0


def test_long_poll_of_a_deleted_boot_config_is_404(
    api_store: Store, http: httpx.Client, server: HttpServer
) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    url = f"{config_path(uid)}?afterRevision=0&timeoutSeconds=120"
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(http.get, url, headers=bearer(secret))
        eventually(lambda: server.api.rendezvous.waiting() == 1, what="the poll to wait")
        api_store.delete(BootConfig, "web", "team-a")
        answer = polling.result(timeout=20)
    assert answer.status_code == 404
    assert answer.json()["reason"] == "NotFound"
    # And so is a fetch or a report afterwards.
    assert http.get(config_path(uid), headers=bearer(secret)).status_code == 404
    report = http.put(f"{config_path(uid)}/report", json={"status": "Configured"},
                      headers=bearer(secret))  # fmt: skip
    assert report.status_code == 404


def test_poll_parameters_are_checked(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    for query, parameter in [
        ("afterRevision=-1", "afterRevision"),
        ("afterRevision=x", "afterRevision"),
        ("afterRevision=1&timeoutSeconds=301", "timeoutSeconds"),
        ("afterRevision=1&timeoutSeconds=1.5", "timeoutSeconds"),
    ]:
        answer = http.get(f"{config_path(uid)}?{query}", headers=bearer(secret))
        assert answer.status_code == 400, query
        assert answer.json()["message"].startswith(parameter)
    # timeoutSeconds=0 answers at once.
    assert http.get(f"{config_path(uid)}?afterRevision=0&timeoutSeconds=0",
                    headers=bearer(secret)).status_code == 200  # fmt: skip


def test_unknown_paths_and_wrong_methods(http: httpx.Client) -> None:
    uid = "0b6f7a4e-1d2c-4e5f-8a9b-0c1d2e3f4a5b"
    for path in [
        "/rendezvous/",
        "/rendezvous/v2/claims",
        f"{API_PREFIX}/configs/",
        f"{API_PREFIX}/configs/{uid}/reports",
        f"{API_PREFIX}/configs/{uid}/report/x",
    ]:
        answer = http.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["kind"] == "Status"
    for method, path in [("POST", config_path(uid)), ("GET", f"{config_path(uid)}/report"),
                         ("GET", CLAIMS), ("DELETE", config_path(uid))]:  # fmt: skip
        answer = http.request(method, path)
        assert answer.status_code == 405, (method, path)
        assert answer.json()["reason"] == "MethodNotAllowed"


def test_a_report_over_the_body_limit_is_413(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    answer = http.put(f"{config_path(uid)}/report", content=huge, headers=bearer(secret))
    assert answer.status_code == 413


def test_three_slots_four_claimants(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "pool", dynamic=True, slots=3)
    enrollment = enroll(api_store, "pool")
    start = threading.Barrier(4)

    def claimant(_: int) -> httpx.Response:
        """One agent: its own connection, sent when all four are ready."""
        with httpx.Client(base_url=http.base_url, timeout=30) as own:
            start.wait(30)
            return own.post(CLAIMS, headers=bearer(enrollment))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(claimant, range(4)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201, 201, 201, 409], [a.text for a in answers]
    [full] = [a for a in answers if a.status_code == 409]
    assert full.json()["kind"] == "Status"
    assert "all 3 slots" in full.json()["message"]
    claimed = [a.json() for a in answers if a.status_code == 201]
    assert len({c["uuid"] for c in claimed}) == 3
    assert all(c["endpoint"] == str(http.base_url).rstrip("/") for c in claimed)
    taken = RendezvousStore(api_store).claims("team-a", "pool")
    assert sorted(taken) == [0, 1, 2]
    assert sorted(taken.values()) == sorted(c["uuid"] for c in claimed)
    # Each claimant is a uuid of its own: it fetches and reports with its new secret.
    for claim in claimed:
        config = http.get(config_path(claim["uuid"]), headers=bearer(claim["secret"]))
        assert config.status_code == 200 and config.json()["uuid"] == claim["uuid"]
        report = http.put(f"{config_path(claim['uuid'])}/report", json={"status": "Configured"},
                          headers=bearer(claim["secret"]))  # fmt: skip
        assert report.status_code == 204
        beat = RendezvousStore(api_store).heartbeat("team-a", claim["uuid"])
        assert beat is not None and beat.slot is not None and beat.instance is None
    # The enrollment secret is not a uuid's secret.
    assert http.get(config_path(claimed[0]["uuid"]), headers=bearer(enrollment)).status_code == 401


def test_a_bad_enrollment_is_the_same_401(api_store: Store, http: httpx.Client) -> None:
    boot_config(api_store, "pool", dynamic=True, slots=3)
    enrollment = enroll(api_store, "pool")
    boot_config(api_store, "static")
    static_enrollment = enroll(api_store, "static")
    uid, secret = register(api_store, "pool")
    refusals = [
        http.post(CLAIMS, headers=bearer(enrollment[:-1] + "x")),
        http.post(CLAIMS),
        http.post(CLAIMS, headers=bearer(secret)),  # a uuid's secret is no enrollment
        http.post(CLAIMS, headers=bearer(static_enrollment)),  # not dynamic
        http.get(config_path(uid), headers=bearer(enrollment)),
    ]
    for answer in refusals:
        assert answer.status_code == 401
        assert answer.content == refusals[0].content
    assert RendezvousStore(api_store).claims("team-a", "pool") == {}
    # A rotated enrollment Secret refuses the old value, though its record is still there.
    stored = api_store.get(Secret, "pool-enrollment", "team-a")
    stored.string_data = {"secret": "rotated-" + enrollment}
    stored.data = {}
    api_store.update(stored)
    assert http.post(CLAIMS, headers=bearer(enrollment)).status_code == 401
