"""BootConfig reconciler on real etcd: revisions, enrollment, stale claims, deletion (§11).

The harness runs on real time (no fake clock), and ``staleAfter`` is at least 30 s, so staleness
is shown with backdated timestamps: a claim's record ``createdAt`` and a heartbeat's
``reportedAt`` are the test's to choose, and the reconciler measures them against its clock.
Tests that must show something happens without a resync run with a long resync period.
"""

from __future__ import annotations

import base64
import uuid as uuids
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api_types import Secret
from api_types.bootconfigs import BootConfig, BootConfigSpec
from api_types.meta import ConditionStatus
from api_types.rendezvous import (
    SECRET_KEY,
    EnrollmentRecord,
    Heartbeat,
    RendezvousRecord,
    ReportStatus,
    secret_digest,
)
from controller.store.objects import Store
from reconcilers import bootconfig
from tests.integration.reconcilers.harness import API, Harness

NS = "acme"
STALE_AFTER = 30


def bootconfig_manifest(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"config": "#!/bin/sh\necho configured\n", "parameters": {"role": name}}
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "BootConfig",
        "metadata": {"name": name, "namespace": NS},
        "spec": body,
    }


def dynamic(name: str, slots: int = 3) -> dict[str, Any]:
    return bootconfig_manifest(name, dynamic=True, slots=slots, staleAfter=f"{STALE_AFTER}s")


def secret_manifest(name: str, **entries: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": entries,
    }


@pytest.fixture
def quiet(store: Store, tmp_path: Path) -> Iterator[Harness]:
    """A harness whose resync is far away: what happens is driven by events and requeues."""
    running = Harness(store, tmp_path, resync_period=600)
    yield running
    running.stop()


def ready(bc: BootConfig, status: str = "True") -> bool:
    condition = bc.status.condition("Ready")
    return (
        condition is not None
        and condition.status == ConditionStatus(status)
        and bc.status.observed_generation == bc.metadata.generation
    )


def edit(harness: Harness, name: str, **spec: Any) -> BootConfig:
    bc = harness.store.get(BootConfig, name, NS)
    bc.spec = BootConfigSpec.model_validate(
        {**bc.spec.model_dump(mode="json", by_alias=True), **spec}
    )
    return harness.store.update(bc, actor="test")


def secret_value(harness: Harness, name: str) -> str:
    secret = harness.store.get(Secret, name, NS)
    return secret.decoded()[SECRET_KEY].decode()


def enrolled(harness: Harness, value: str) -> EnrollmentRecord | None:
    return harness.deps.rendezvous.enrollment(secret_digest(value))


def now(harness: Harness) -> datetime:
    return harness.deps.clock.wall()


def claim(
    harness: Harness, bc: str, *, age: float, slots: int = 3, uuid: str | None = None
) -> tuple[int, str]:
    """Claim the next free slot as the API server would, made ``age`` seconds ago."""
    uuid = uuid or str(uuids.uuid4())
    record = RendezvousRecord(
        namespace=NS,
        boot_config=bc,
        secret_sha256=secret_digest("claimant secret"),
        created_at=now(harness) - timedelta(seconds=age),
    )
    slot = harness.deps.rendezvous.claim(slots, uuid, record)
    assert slot is not None
    return slot, uuid


def beat(
    harness: Harness, bc: str, uuid: str, slot: int, *, age: float = 0.0, address: str = "10.0.0.9"
) -> None:
    """Report for a claimant ``age`` seconds ago, and wait until the controller's cache has it."""
    reported_at = now(harness) - timedelta(seconds=age)
    heartbeat = Heartbeat(
        uuid=uuid,
        boot_config=bc,
        slot=slot,
        status=ReportStatus.CONFIGURED,
        address=address,
        reported_at=reported_at,
    )
    harness.deps.rendezvous.beat(NS, heartbeat, STALE_AFTER)
    harness.eventually(
        lambda: harness.deps.heartbeats.get(NS, uuid) == heartbeat, what="heartbeat not cached"
    )


def claimed(harness: Harness, bc: str) -> dict[int, str]:
    return harness.deps.rendezvous.claims(NS, bc)


# --- revision ----------------------------------------------------------------------------


def test_revision_moves_on_config_and_parameters_edits_only(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(bootconfig_manifest("web"))
    first = quiet.wait_for(BootConfig, "web", NS, ready)
    assert first.status.revision == 1
    assert first.status.config_digest == bootconfig.config_digest(first.spec)
    assert first.metadata.finalizers == []  # static: nothing to release on deletion

    edit(quiet, "web", config="#!/bin/sh\necho again\n")
    quiet.wait_for(BootConfig, "web", NS, lambda b: b.status.revision == 2, timeout=10)
    edit(quiet, "web", parameters={"role": "web", "tier": "front"})
    quiet.wait_for(BootConfig, "web", NS, lambda b: b.status.revision == 3, timeout=10)

    moved = edit(quiet, "web", staleAfter="5m")
    after = quiet.wait_for(
        BootConfig,
        "web",
        NS,
        lambda b: b.status.observed_generation == moved.metadata.generation,
        timeout=10,
    )
    assert after.status.revision == 3


# --- enrollment --------------------------------------------------------------------------


def test_dynamic_gets_an_owned_enrollment_secret_that_is_enrolled_and_rotates(
    quiet: Harness,
) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool"))
    bc = quiet.wait_for(BootConfig, "pool", NS, ready)
    assert bc.metadata.finalizers == [bootconfig.FINALIZER]
    assert bc.status.enrollment_secret == "pool-enrollment"
    secret = quiet.store.get(Secret, "pool-enrollment", NS)
    owners = secret.metadata.owner_references
    assert [(o.kind, o.name, o.uid, o.controller) for o in owners] == [
        ("BootConfig", "pool", bc.metadata.uid, True)
    ]
    value = secret_value(quiet, "pool-enrollment")
    assert len(value) == 43
    assert enrolled(quiet, value) == EnrollmentRecord(namespace=NS, boot_config="pool")
    assert value not in str(bc.to_wire())  # neither the secret nor its digest in status
    assert secret_digest(value) not in str(bc.to_wire())
    quiet.wait_for_event("bootconfigs", "pool", NS, "EnrollmentSecretCreated")

    secret.data = {SECRET_KEY: base64.b64encode(b"rotated-by-hand").decode()}
    quiet.store.update(secret, actor="test")
    quiet.eventually(lambda: enrolled(quiet, "rotated-by-hand") is not None, 10)
    quiet.eventually(lambda: enrolled(quiet, value) is None, 10, "old digest still enrolled")


def test_a_user_made_secret_is_used_and_a_missing_entry_is_reported(quiet: Harness) -> None:
    quiet.apply(
        secret_manifest("mine-enrollment", secret="chosen-by-the-user"),
        secret_manifest("bad-enrollment", token="wrong-entry"),
    )
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("mine"), dynamic("bad"))
    quiet.wait_for(BootConfig, "mine", NS, ready)
    assert enrolled(quiet, "chosen-by-the-user") == EnrollmentRecord(
        namespace=NS, boot_config="mine"
    )
    assert quiet.store.get(Secret, "mine-enrollment", NS).metadata.owner_references == []
    assert secret_value(quiet, "mine-enrollment") == "chosen-by-the-user"

    bad = quiet.wait_for(BootConfig, "bad", NS, lambda b: ready(b, "False"))
    condition = bad.status.condition("Ready")
    assert condition is not None and condition.reason == "EnrollmentSecretInvalid"
    assert "bad-enrollment" in condition.message and f"'{SECRET_KEY}'" in condition.message
    quiet.wait_for_event("bootconfigs", "bad", NS, "EnrollmentSecretInvalid")
    assert quiet.deps.rendezvous.enrollments_of(NS, "bad") == []

    fixed = quiet.store.get(Secret, "bad-enrollment", NS)
    fixed.data = {SECRET_KEY: base64.b64encode(b"now-it-is-right").decode()}
    quiet.store.update(fixed, actor="test")
    quiet.wait_for(BootConfig, "bad", NS, ready, timeout=10)
    assert enrolled(quiet, "now-it-is-right") == EnrollmentRecord(namespace=NS, boot_config="bad")


def test_a_name_too_long_for_its_enrollment_secret_is_reported(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    name = "b" * 250  # valid, but "{name}-enrollment" is longer than a name may be
    quiet.apply(dynamic(name))
    bc = quiet.wait_for(BootConfig, name, NS, lambda b: ready(b, "False"))
    condition = bc.status.condition("Ready")
    assert condition is not None and condition.reason == "EnrollmentSecretInvalid"
    assert bc.status.revision == 1


# --- claims ------------------------------------------------------------------------------


def test_stale_claims_are_freed_and_reporting_ones_kept(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool", slots=4))
    quiet.wait_for(BootConfig, "pool", NS, ready)

    # Slot 0: claimed long ago, reporting now — kept. The heartbeat is cached before the claim
    # exists, so no pass can see the old claim without it.
    fresh_uuid = str(uuids.uuid4())
    beat(quiet, "pool", fresh_uuid, 0)
    assert claim(quiet, "pool", age=10 * STALE_AFTER, slots=4, uuid=fresh_uuid)[0] == 0
    kept = quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 1, timeout=10)
    [listed] = kept.status.claims
    assert (listed.slot, listed.uuid, listed.address) == (0, fresh_uuid, "10.0.0.9")
    assert listed.last_report is not None

    # Slot 1: claimed past staleAfter and never reported — freed, with its record.
    slot, silent = claim(quiet, "pool", age=STALE_AFTER + 5, slots=4)
    assert slot == 1
    quiet.eventually(lambda: silent not in claimed(quiet, "pool").values(), 10, "never freed")
    assert quiet.deps.rendezvous.record(silent) is None
    quiet.wait_for_event("bootconfigs", "pool", NS, "SlotFreed")

    # Slot 1 again: reported, but too long ago — freed with its heartbeat (written first, as
    # above: a pass between claim and beat would free the claim for never reporting).
    lost = str(uuids.uuid4())
    beat(quiet, "pool", lost, 1, age=STALE_AFTER + 1)
    assert claim(quiet, "pool", age=STALE_AFTER * 3, slots=4, uuid=lost)[0] == 1
    quiet.eventually(lambda: lost not in claimed(quiet, "pool").values(), 10, "lost not freed")
    assert quiet.deps.rendezvous.heartbeat(NS, lost) is None

    # Slot 1 once more: claimed recently, silent — listed, then freed at its deadline by the
    # pass's own requeue (no resync, no event comes).
    slot, late = claim(quiet, "pool", age=STALE_AFTER - 8, slots=4)
    listed_late = quiet.wait_for(
        BootConfig, "pool", NS, lambda b: b.status.claimed == 2, timeout=10
    )
    assert [(c.slot, c.uuid, c.last_report) for c in listed_late.status.claims] == [
        (0, fresh_uuid, listed.last_report),
        (1, late, None),
    ]
    quiet.eventually(lambda: late not in claimed(quiet, "pool").values(), 20, "late not freed")
    final = quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 1, timeout=10)
    assert [c.uuid for c in final.status.claims] == [fresh_uuid]
    assert claimed(quiet, "pool") == {0: fresh_uuid}


def test_a_beat_changes_the_status_only_when_the_claim_does(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool"))
    quiet.wait_for(BootConfig, "pool", NS, ready)
    slot, uuid = claim(quiet, "pool", age=0)
    quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 1, timeout=10)
    beat(quiet, "pool", uuid, slot, address="10.0.0.1")
    quiet.wait_for(
        BootConfig, "pool", NS, lambda b: b.status.claims[0].address == "10.0.0.1", timeout=10
    )
    before = quiet.reconciles("BootConfig")
    for _ in range(5):
        beat(quiet, "pool", uuid, slot, address="10.0.0.1")
    beat(quiet, "pool", uuid, slot, address="10.0.0.2")
    quiet.wait_for(
        BootConfig, "pool", NS, lambda b: b.status.claims[0].address == "10.0.0.2", timeout=10
    )
    # The new address's pass, and perhaps the count of the previous one (counted after its
    # status write): never one per beat.
    assert quiet.reconciles("BootConfig") - before <= 2


def test_lowering_slots_frees_the_highest(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool", slots=3))
    quiet.wait_for(BootConfig, "pool", NS, ready)
    taken = dict(claim(quiet, "pool", age=0) for _ in range(3))
    quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 3, timeout=10)
    edit(quiet, "pool", slots=1)
    lowered = quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 1, timeout=10)
    assert [c.slot for c in lowered.status.claims] == [0]
    assert claimed(quiet, "pool") == {0: taken[0]}
    assert lowered.status.revision == 1
    quiet.wait_for_event("bootconfigs", "pool", NS, "SlotFreed")


# --- retiring ----------------------------------------------------------------------------


def test_deletion_releases_every_claim_and_enrollment_then_goes(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool"))
    quiet.wait_for(BootConfig, "pool", NS, ready)
    value = secret_value(quiet, "pool-enrollment")
    taken = [claim(quiet, "pool", age=0) for _ in range(2)]
    for slot, uuid in taken:
        beat(quiet, "pool", uuid, slot)
    quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 2, timeout=10)

    quiet.store.delete(BootConfig, "pool", NS)
    quiet.wait_gone(BootConfig, "pool", NS)
    assert claimed(quiet, "pool") == {}
    for _, uuid in taken:
        assert quiet.deps.rendezvous.record(uuid) is None
        assert quiet.deps.rendezvous.heartbeat(NS, uuid) is None
    assert enrolled(quiet, value) is None
    quiet.wait_gone(Secret, "pool-enrollment", NS)  # owned: the garbage collector's


def test_switching_to_static_releases_claims_and_unenrolls(quiet: Harness) -> None:
    quiet.start(bootconfig.register)
    quiet.apply(dynamic("pool"))
    quiet.wait_for(BootConfig, "pool", NS, ready)
    value = secret_value(quiet, "pool-enrollment")
    claim(quiet, "pool", age=0)
    quiet.wait_for(BootConfig, "pool", NS, lambda b: b.status.claimed == 1, timeout=10)

    moved = edit(quiet, "pool", dynamic=False, slots=0)
    static = quiet.wait_for(
        BootConfig,
        "pool",
        NS,
        lambda b: ready(b) and b.metadata.generation == moved.metadata.generation,
        timeout=10,
    )
    assert static.metadata.finalizers == []
    assert (static.status.claimed, static.status.claims, static.status.enrollment_secret) == (
        0,
        [],
        None,
    )
    assert static.status.revision == 1  # config and parameters are the same
    assert claimed(quiet, "pool") == {}
    assert enrolled(quiet, value) is None
