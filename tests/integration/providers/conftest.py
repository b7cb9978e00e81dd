"""Fixtures of the provider contract suite: a real moto_server, the simulated cloud, a harness.

``cloud`` is parametrised over both drivers (ids ``simulated`` and ``ec2``, so ``-k simulated``
and ``-k ec2`` select a side). The EC2 side talks to a moto_server 5.0.28 process started once
per session on a free port (AMI and instance-type validation on, as on AWS), reset with
``POST /moto-api/reset`` before every test, with our own image registered (setup calls wait up
to ``SETUP_TIMEOUT``; the providers under test give up after 2 s); its traffic passes a
fault-injecting proxy (``helpers.FaultProxy``). The simulated side runs on a fresh SQLite
file and a fake clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.clock import FakeClock
from providers.config import AccountConfig
from providers.ec2 import Ec2Provider
from providers.protocol import CloudProvider
from providers.simulated import SimulatedProvider
from providers.types import ImageId, SizeId, ZoneName
from tests.integration.providers.helpers import CLOCK_START, FaultProxy, free_port
from tests.rendezvous_peer import peer  # noqa: F401 (a fixture of the boot agent tests)

REGION = "us-east-1"
#: What moto accepts (it checks no credentials unless told to): libcloud's names.
EC2_CREDENTIALS = {"key": "AKIDSKYBROKERTEST", "secret": "not-a-secret"}
#: The HTTP timeout (s) of fixture setup calls: a loaded machine can make moto slower than
#: the 2 s the providers under test use (short, so that the timeout tests stay quick).
SETUP_TIMEOUT = 30.0

# protocol operation -> the EC2 Action it sends last (where an injected fault should land)
EC2_ACTIONS = {
    "create_instance": "RunInstances",
    "list_instances": "DescribeInstances",
    "create_volume": "CreateVolume",
    "create_network": "CreateVpc",
    "start_instance": "StartInstances",
}
# fault kind -> the code the simulated cloud raises for it
SIM_FAULTS = {
    "throttle": ("RequestLimitExceeded", False),
    "internal": ("InternalError", False),
    "drop_after_apply": ("Timeout", True),
    "slow": ("Timeout", False),
}


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=SETUP_TIMEOUT) as response:
            assert response.status == 200


def _moto_binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: install the dev extra (moto[server]==5.0.28)")
    return found


def _start_moto(**env: str) -> MotoServer:
    port = free_port()
    process = subprocess.Popen(
        [_moto_binary(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    server = MotoServer(port, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/moto-api/data.json", timeout=1):
                return server
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"moto_server did not start on port {port}")
            time.sleep(0.05)


def _stop(server: MotoServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = _start_moto(
        MOTO_ENABLE_AMI_VALIDATION="true", MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="true"
    )
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def moto_auth_server() -> Iterator[MotoServer]:
    """A second moto_server that checks credentials (no IAM user exists: every key fails)."""
    server = _start_moto(INITIAL_NO_AUTH_ACTION_COUNT="0")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def fault_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.port, retry_after=7, slow_seconds=2.5)
    yield proxy
    proxy.close()


def ec2_config(port: int, name: str = "aws-test", **options: str) -> AccountConfig:
    return AccountConfig(
        name=name,
        driver="ec2",
        region=REGION,
        endpoint=f"http://127.0.0.1:{port}",
        credentials=dict(EC2_CREDENTIALS),
        options={"timeout": "2", **options},
    )


def sim_config(path: Path, name: str = "sim-test", **options: str) -> AccountConfig:
    return AccountConfig(
        name=name,
        driver="simulated",
        region=REGION,
        endpoint=str(path),
        images={"ubuntu-22.04": "img-ubuntu-2204"},
        options={"retry_after": "7", "seed": "1", **options},
    )


@dataclass
class Cloud:
    """One driver under test, with what a test needs to know about it."""

    name: str
    provider: CloudProvider
    image: ImageId
    size: SizeId
    zone: ZoneName
    other_zone: ZoneName
    clock: FakeClock | None = None
    proxy: FaultProxy | None = None

    def settle(self) -> None:
        """Let asynchronous transitions finish (the simulated cloud runs on a fake clock)."""
        if self.clock is not None:
            self.clock.step(120)

    def inject(self, kind: str, op: str) -> None:
        """Make the next ``op`` fail with ``kind`` (see ``SIM_FAULTS``)."""
        if isinstance(self.provider, SimulatedProvider):
            code, after_apply = SIM_FAULTS[kind]
            self.provider.faults.fail_next(code, op=op, after_apply=after_apply)
        else:
            assert self.proxy is not None
            self.proxy.inject(kind, EC2_ACTIONS[op])


@pytest.fixture
def ec2_cloud(moto_server: MotoServer, fault_proxy: FaultProxy) -> Cloud:
    moto_server.reset()
    fault_proxy.clear()
    # Registered straight on moto with a setup timeout; the provider under test keeps its 2 s.
    setup = Ec2Provider(ec2_config(moto_server.port, timeout=str(SETUP_TIMEOUT)))
    image = setup.driver.ex_register_image("skybroker-test-image", description="test image")
    return Cloud(
        name="ec2",
        provider=Ec2Provider(ec2_config(fault_proxy.port)),
        image=ImageId(image.id),
        size=SizeId("t3.micro"),
        zone=ZoneName(f"{REGION}a"),
        other_zone=ZoneName(f"{REGION}b"),
        proxy=fault_proxy,
    )


@pytest.fixture
def sim_cloud(tmp_path: Path) -> Cloud:
    clock = FakeClock(CLOCK_START)
    provider = SimulatedProvider(sim_config(tmp_path / "sim.db"), clock=clock)
    return Cloud(
        name="simulated",
        provider=provider,
        image=ImageId("img-ubuntu-2204"),
        size=SizeId("s1.small"),
        zone=ZoneName(f"{REGION}a"),
        other_zone=ZoneName(f"{REGION}b"),
        clock=clock,
    )


@pytest.fixture(params=["simulated", "ec2"])
def cloud(request: pytest.FixtureRequest) -> Cloud:
    fixture = "sim_cloud" if request.param == "simulated" else "ec2_cloud"
    result: Cloud = request.getfixturevalue(fixture)
    return result
