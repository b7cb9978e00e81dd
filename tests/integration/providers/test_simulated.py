"""What only the simulated cloud promises: persistence across processes, accounts sharing a
file, quotas and capacity, thread safety, clocked transitions, and the dependency checks AWS
makes but moto 5.0.28 does not (so the EC2 side cannot be held to them in CI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controller.clock import FakeClock
from controller.errors import TerminalError, TransientError
from providers.simulated import SimulatedProvider
from providers.types import (
    FirewallCreate,
    ImageId,
    InstanceCreate,
    InstanceState,
    NetworkCreate,
    SizeId,
    SubnetCreate,
    VolumeCreate,
    ZoneName,
)
from tests.integration.providers.conftest import REGION, sim_config
from tests.integration.providers.helpers import CLOCK_START, tags

ZONE_A, ZONE_B = ZoneName(f"{REGION}a"), ZoneName(f"{REGION}b")
UBUNTU, SMALL = ImageId("img-ubuntu-2204"), SizeId("s1.small")


def _sim(
    path: Path, name: str = "sim-test", clock: FakeClock | None = None, **options: str
) -> SimulatedProvider:
    return SimulatedProvider(
        sim_config(path, name, **options), clock=clock or FakeClock(CLOCK_START)
    )


def _vm(name: str, size: SizeId = SMALL, image: ImageId = UBUNTU, **kw: object) -> InstanceCreate:
    return InstanceCreate(tags(name), size, image, **kw)  # type: ignore[arg-type]


def test_state_survives_a_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    script = textwrap.dedent(
        f"""
        from providers.config import AccountConfig
        from providers.simulated import SimulatedProvider
        from providers.types import ImageId, InstanceCreate, ResourceTags, SizeId
        config = AccountConfig("sim-test", "simulated", "{REGION}", endpoint={str(db)!r})
        p = SimulatedProvider(config)
        for n in range(3):
            p.create_instance(InstanceCreate(ResourceTags(f"vm-{{n}}", "u", f"t-{{n}}"),
                                             SizeId("s1.small"), ImageId("img-ubuntu-2204")))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[3])
    p = _sim(db)
    assert sorted(i.name for i in p.list_instances()) == ["vm-0", "vm-1", "vm-2"]
    # and the other process's create tokens still make creates idempotent here
    again = p.create_instance(InstanceCreate(tags("vm-0", token="t-0"), SMALL, UBUNTU))
    assert again.id in {i.id for i in p.list_instances()} and len(p.list_instances()) == 3


def test_accounts_and_regions_share_a_file_without_seeing_each_other(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    a, b = _sim(db, "acct-a"), _sim(db, "acct-b")
    a.create_instance(_vm("a-vm"))
    b.create_instance(_vm("b-vm"))
    assert [i.name for i in a.list_instances()] == ["a-vm"]
    assert [i.name for i in b.list_instances()] == ["b-vm"]
    # the same token in another account is another resource
    assert a.create_instance(_vm("same")).id != b.create_instance(_vm("same")).id
    west = SimulatedProvider(
        type(sim_config(db))(
            name="acct-a", driver="simulated", region="us-west-2", endpoint=str(db)
        )
    )
    assert west.list_instances() == []
    assert {z.name for z in west.list_zones()} == {"us-west-2a", "us-west-2b", "us-west-2c"}
    prices = {s.id: s.price_per_hour for s in a.list_sizes()}
    assert prices != {s.id: s.price_per_hour for s in west.list_sizes()}  # regions differ


def test_provider_quota_and_zone_capacity_are_terminal(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    p = _sim(db, quota_instances="2", quota_vcpus="100")
    p.create_instance(_vm("one"))
    p.create_instance(_vm("two"))
    with pytest.raises(TerminalError) as quota:
        p.create_instance(_vm("three"))
    assert (quota.value.reason, quota.value.code) == (
        "ProviderQuotaExceeded",
        "InstanceLimitExceeded",
    )
    p.delete_instance(p.list_instances()[0].id)  # deleting frees the quota
    p.create_instance(_vm("three"))

    big = _sim(db, "acct-big", zone_capacity_vcpus="20")  # capacity is per zone, all accounts
    big.create_instance(_vm("c1", SizeId("c1.2xlarge"), zone=ZONE_A))  # 16 vCPU (+2 above)
    with pytest.raises(TerminalError) as full:
        big.create_instance(_vm("c2", SizeId("c1.large"), zone=ZONE_A))
    assert (full.value.reason, full.value.code) == (
        "InsufficientCapacity",
        "InsufficientInstanceCapacity",
    )
    big.create_instance(_vm("c3", SizeId("c1.large"), zone=ZONE_B))


def test_arch_mismatch_is_terminal(tmp_path: Path) -> None:
    p = _sim(tmp_path / "cloud.db")
    with pytest.raises(TerminalError) as err:
        p.create_instance(_vm("vm", SizeId("a1.large"), UBUNTU))
    assert err.value.reason == "InvalidRequest"
    p.create_instance(_vm("arm", SizeId("a1.large"), ImageId("img-ubuntu-2204-arm")))


def test_transitions_follow_the_clock(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    p = _sim(tmp_path / "cloud.db", clock=clock, boot_seconds="5", stop_seconds="3")
    vm = p.create_instance(_vm("vm"))
    assert vm.state is InstanceState.PENDING
    clock.step(4.9)
    assert p.list_instances()[0].state is InstanceState.PENDING
    clock.step(0.1)
    assert p.list_instances()[0].state is InstanceState.RUNNING
    p.stop_instance(vm.id)
    assert p.list_instances()[0].state is InstanceState.STOPPING
    with pytest.raises(TransientError) as busy:
        p.start_instance(vm.id)
    assert busy.value.code == "IncorrectInstanceState"
    clock.step(3)
    assert p.list_instances()[0].state is InstanceState.STOPPED
    p.delete_instance(vm.id)
    assert p.list_instances()[0].state is InstanceState.SHUTTING_DOWN
    clock.step(1)
    assert p.list_instances() == []


def test_concurrent_workers_create_exactly_once(tmp_path: Path) -> None:
    p = _sim(tmp_path / "cloud.db", quota_instances="1000000")
    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(lambda n: p.create_instance(_vm(f"vm-{n % 200}")).id, range(800)))
    assert len(set(made)) == 200  # 800 creates of 200 tokens from 16 threads: 200 resources
    assert len(p.list_instances()) == 200
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(p.delete_instance, set(made)))
    p.clock.step(120)  # type: ignore[attr-defined]
    assert p.list_instances() == []
    # usage counters went back to zero: a quota of 1 admits one instance again
    q = _sim(tmp_path / "cloud.db", quota_instances="1")
    q.create_instance(_vm("after"))


def test_random_faults_keep_idempotency(tmp_path: Path) -> None:
    p = _sim(tmp_path / "cloud.db", error_rate="0.2", throttle_rate="0.1", timeout_rate="0.2")
    for n in range(50):
        for _attempt in range(100):  # what the workqueue does: retry transient failures
            try:
                p.create_instance(_vm(f"vm-{n}"))
                break
            except TransientError:
                continue
    p.faults.clear()
    assert sorted(i.name for i in p.list_instances()) == sorted(f"vm-{n}" for n in range(50))


def test_dependency_checks_moto_does_not_make(tmp_path: Path) -> None:
    p = _sim(tmp_path / "cloud.db")
    net = p.create_network(NetworkCreate(tags("net"), "10.40.0.0/16"))
    sub = p.create_subnet(SubnetCreate(tags("sub"), net.id, "10.40.1.0/24", ZONE_A))
    with pytest.raises(TerminalError) as overlap:
        p.create_subnet(SubnetCreate(tags("sub2"), net.id, "10.40.1.128/25", ZONE_A))
    assert overlap.value.code == "InvalidSubnet.Conflict"
    fw = p.create_firewall(FirewallCreate(tags("fw"), net.id))
    vm = p.create_instance(_vm("vm", subnet_id=sub.id, firewall_ids=(fw.id,)))
    vol = p.create_volume(VolumeCreate(tags("vol"), 4, ZONE_B))
    p.clock.step(120)  # type: ignore[attr-defined]
    for delete in (
        lambda: p.delete_network(net.id),
        lambda: p.delete_subnet(sub.id),
        lambda: p.delete_firewall(fw.id),
    ):
        with pytest.raises(TransientError) as busy:
            delete()
        assert busy.value.code == "DependencyViolation"
    with pytest.raises(TerminalError) as zone:
        p.attach_volume(vol.id, vm.id, "/dev/sdf")
    assert zone.value.code == "InvalidVolume.ZoneMismatch"
    p.delete_instance(vm.id)
    p.clock.step(120)  # type: ignore[attr-defined]
    p.delete_firewall(fw.id)
    p.delete_subnet(sub.id)
    p.delete_network(net.id)
