"""An Instance is Ready only while its cloud instance is in the state Ready claims.

The audit checks the Instances as stored in etcd against the simulated cloud at the moments
that matter, from inside the cloud calls the reconciler makes:

* right after each call that takes an instance out of its state (stop, start, delete), even
  one that fails after taking effect: the Instance naming it must no longer be Ready;
* right after each listing: the reconcilers' listings go through the account's inventory one
  at a time, so no view newer than this one exists yet; every Instance stored Ready (Running)
  must be listed running (Stopped: stopped), one stored Ready must not name an instance an
  earlier listing showed and this one no longer lists, and no two may name the same one.

Nothing is changed behind skybroker's back here, so every mismatch is skybroker's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from api_types import Instance, InstancePhase, PowerState
from providers import CloudInstance, InstanceId, InstanceState
from reconcilers import instance
from tests.integration.reconcilers.harness import Harness, instance_manifest, sim_account

NS = "acme"
ACCOUNT = "sim-a"
#: What a Ready condition's reason claims about the cloud instance.
CLAIMED = {PowerState.RUNNING.value: InstanceState.RUNNING, "Stopped": InstanceState.STOPPED}


class ReadyAudit:
    """Records every moment a stored Instance is Ready for a cloud instance not in that state."""

    def __init__(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch, account: str = ACCOUNT
    ) -> None:
        self._harness = harness
        self.violations: list[str] = []
        self.listings = 0
        self._seen: set[str] = set()
        cloud = harness.cloud(account)
        for op in ("stop_instance", "start_instance", "delete_instance"):
            monkeypatch.setattr(cloud, op, self._after_change(op, getattr(cloud, op)))
        monkeypatch.setattr(cloud, "list_instances", self._after_listing(cloud.list_instances))

    def _ready(self) -> list[tuple[Instance, str]]:
        """(Instance, Ready reason) of every Instance stored Ready with a providerID."""
        found = []
        for obj in self._harness.store.list(Instance, NS).items:
            ready = obj.status.condition("Ready")
            if ready is not None and ready.status == "True" and obj.status.provider_id:
                found.append((obj, ready.reason))
        return found

    def _after_change(self, op: str, call: Callable[[Any], None]) -> Callable[[Any], None]:
        def audited(instance_id: Any) -> None:
            try:
                call(instance_id)
            finally:  # also when the call fails after taking effect
                for obj, reason in self._ready():
                    if obj.status.provider_id == instance_id:
                        self.violations.append(
                            f"{op}({instance_id}): {obj.metadata.name} stored Ready ({reason})"
                        )

        return audited

    def _after_listing(
        self, call: Callable[[], list[CloudInstance]]
    ) -> Callable[[], list[CloudInstance]]:
        def audited() -> list[CloudInstance]:
            listed = call()
            by_id = {vm.id: vm for vm in listed}
            named: dict[str, str] = {}
            for obj, reason in self._ready():
                provider_id = str(obj.status.provider_id)
                vm = by_id.get(provider_id)
                name = obj.metadata.name
                other = named.setdefault(provider_id, name)
                if other != name:
                    self.violations.append(f"{other} and {name} stored Ready on {provider_id}")
                if vm is None and provider_id in self._seen:
                    self.violations.append(f"{name} stored Ready ({reason}): {provider_id} gone")
                elif vm is not None and reason in CLAIMED and vm.state != CLAIMED[reason]:
                    self.violations.append(
                        f"{name} stored Ready ({reason}): {provider_id} is {vm.state.value}"
                    )
            self._seen.update(by_id)
            self.listings += 1
            return listed

        return audited


def _running(harness: Harness, monkeypatch: pytest.MonkeyPatch, *names: str) -> ReadyAudit:
    """Account ``sim-a`` (images ubuntu-22.04 and debian-12) under audit, ``names`` Running."""
    account = sim_account(ACCOUNT)
    account["spec"]["images"]["debian-12"] = "img-debian-12"
    harness.apply(account)
    audit = ReadyAudit(harness, monkeypatch)
    harness.start(instance.register)
    harness.apply(*(instance_manifest(n, account=ACCOUNT) for n in names))
    for name in names:
        _settle(harness, name, InstancePhase.RUNNING, 1)
    return audit


def _settle(harness: Harness, name: str, phase: InstancePhase, generation: int) -> Instance:
    def done(obj: Instance) -> bool:
        ready = obj.status.condition("Ready")
        return (
            obj.status.phase == phase
            and obj.status.observed_generation == generation
            and ready is not None
            and ready.status == "True"
        )

    return harness.wait_for(Instance, name, NS, done, 60)


def _change(harness: Harness, name: str, **spec: object) -> int:
    current = harness.store.get(Instance, name, NS)
    current.spec = current.spec.model_copy(update=spec)
    generation = harness.store.update(current).metadata.generation
    assert generation is not None
    return generation


def test_ready_is_withdrawn_before_skybroker_stops_or_starts_the_vm(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = _running(harness, monkeypatch, "web-0", "web-1")
    stopped = _settle(
        harness, "web-0", InstancePhase.STOPPED, _change(harness, "web-0", power_state="Stopped")
    )
    running = _settle(
        harness, "web-0", InstancePhase.RUNNING, _change(harness, "web-0", power_state="Running")
    )
    assert stopped.status.provider_id == running.status.provider_id
    assert audit.listings > 0
    assert audit.violations == []


def test_ready_is_withdrawn_before_a_replacement_deletes_the_vm(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new image replaces the VM; the first delete times out after taking effect (the
    status write after it is then never made)."""
    audit = _running(harness, monkeypatch, "web-0", "web-1")
    before = harness.store.get(Instance, "web-0", NS).status.provider_id
    harness.cloud(ACCOUNT).faults.fail_next("Timeout", op="delete_instance", after_apply=True)
    after = _settle(
        harness, "web-0", InstancePhase.RUNNING, _change(harness, "web-0", image="debian-12")
    )
    assert after.status.provider_id not in (None, before)
    vms = {vm.id: vm for vm in harness.cloud(ACCOUNT).list_instances()}
    new = vms[InstanceId(str(after.status.provider_id))]
    assert (new.token, new.image) == (after.status.create_token, "img-debian-12")
    old = vms.get(InstanceId(str(before)))
    assert old is None or old.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)
    assert audit.violations == []


def test_the_audit_sees_a_vm_stopped_behind_skybrokers_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit is not vacuous: an outside stop leaves the Instance stored Ready (Running)
    until skybroker's next listing, which is where the audit catches it."""
    audit = _running(harness, monkeypatch, "web-0")
    vm = harness.store.get(Instance, "web-0", NS).status.provider_id
    cloud = harness.cloud(ACCOUNT)
    type(cloud).stop_instance(cloud, InstanceId(str(vm)))  # past the audit's own hook
    harness.eventually(lambda: bool(audit.violations), 30, "the audit saw nothing")
    assert audit.violations[0].startswith(f"web-0 stored Ready (Running): {vm} is stop")


def test_a_create_the_cloud_refuses_for_good_leaves_phase_failed(harness: Harness) -> None:
    """The refusal comes after the create token was saved; Failed is set on the stored copy
    that save returned, not on the one read before it (where it was lost: Provisioning)."""
    harness.apply(sim_account(ACCOUNT))
    # Every attempt refused: the status writes wake the instance again, and a create that
    # went through on a later attempt would move it on from Failed.
    faults = harness.cloud(ACCOUNT).faults
    faults.fail_next("InvalidAMIID.NotFound", op="create_instance", count=1000)
    harness.start(instance.register)
    harness.apply(instance_manifest("web-0", account=ACCOUNT))

    def refused(obj: Instance) -> bool:
        provisioned = obj.status.condition("Provisioned")
        return provisioned is not None and provisioned.reason not in ("Creating", "Created")

    web = harness.wait_for(Instance, "web-0", NS, refused, 60)
    assert web.status.phase == InstancePhase.FAILED
    assert web.status.create_token is not None and web.status.provider_id is None
