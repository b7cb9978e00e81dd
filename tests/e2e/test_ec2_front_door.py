"""The EC2 front door of a real ``skybroker up`` process, driven by real clients: an access key
made by the ``skyctl`` process, then the AWS CLI running, stopping and terminating instances,
and boto3 starting one again, converging on the simulated cloud behind it (DESIGN §12)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.awscli import answer, aws_cli
from tests.e2e.up import ROOT, Up

pytestmark = pytest.mark.slow
CONVERGE = 180.0  # seconds: instances boot on a loaded 2-core machine


def _create(up: Up, path: str, obj: dict[str, Any]) -> None:
    created = httpx.post(f"{up.url}{ROOT}/{path}", json=obj, headers=up.headers(), timeout=30)
    assert created.status_code == 201, created.text


def _poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CONVERGE
    while not check():
        assert time.monotonic() < deadline, f"not within {CONVERGE}s: {what}"
        time.sleep(0.5)


def test_the_aws_cli_drives_instances_through_a_real_up(
    tmp_path: Path, start_up: Callable[[Path], Up]
) -> None:
    up = start_up(tmp_path / "data")
    up.wait_ready()
    _create(up, "namespaces", {"kind": "Namespace", "metadata": {"name": "acme"}})
    small = {"cpu": {"min": 1}, "memoryMiB": {"min": 512}}
    _create(up, "hardwareprofiles",
            {"kind": "HardwareProfile", "metadata": {"name": "small"}, "spec": small})  # fmt: skip
    _create(up, "namespaces/acme/rolebindings", {
        "kind": "RoleBinding", "metadata": {"name": "alice-edit", "namespace": "acme"},
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "alice"}]})  # fmt: skip
    made = subprocess.run(
        [sys.executable, "-m", "skyctl", "create", "accesskey", "alice-key", "--user", "alice",
         "--namespace", "acme"],
        env={**os.environ, "SKYCONFIG": str(up.data_dir / "skyctl.yaml")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = dict(line.split(": ", 1) for line in made.stdout.splitlines())
    run = aws_cli(f"{up.url}/ec2/", key["accessKeyId"], key["secretAccessKey"], "general", tmp_path)

    launched = answer(run("run-instances", "--image-id", "ubuntu-22.04", "--instance-type",
                          "small", "--count", "2"))  # fmt: skip
    ids = sorted(i["InstanceId"] for i in launched["Instances"])
    assert len(ids) == 2

    def states() -> dict[str, str]:
        listed = answer(run("describe-instances", "--instance-ids", *ids))
        found = [i for r in listed["Reservations"] for i in r["Instances"]]
        return {i["InstanceId"]: i["State"]["Name"] for i in found}

    _poll(lambda: set(states().values()) == {"running"}, "both instances running")
    answer(run("stop-instances", "--instance-ids", ids[0]))
    _poll(lambda: states()[ids[0]] == "stopped", f"{ids[0]} stopped")
    assert states()[ids[1]] == "running"
    # boto3 on the same process and key: it starts what the CLI stopped.
    client = boto3.client(
        "ec2",
        endpoint_url=f"{up.url}/ec2/",
        region_name="general",
        aws_access_key_id=key["accessKeyId"],
        aws_secret_access_key=key["secretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    )
    [starting] = client.start_instances(InstanceIds=ids[:1])["StartingInstances"]
    assert (starting["PreviousState"]["Name"], starting["CurrentState"]["Name"]) == (
        "stopped",
        "pending",
    )
    _poll(lambda: set(states().values()) == {"running"}, f"{ids[0]} started by boto3")
    ended = answer(run("terminate-instances", "--instance-ids", *ids))
    assert {i["CurrentState"]["Name"] for i in ended["TerminatingInstances"]} == {"shutting-down"}

    def gone() -> bool:
        done = run("describe-instances", "--instance-ids", *ids)
        return done.returncode != 0 and "InvalidInstanceID.NotFound" in done.stderr

    _poll(gone, "both instances terminated and gone")
