"""The boot rendezvous through the ec2 adapter against a real EC2 API server (moto_server): the
user data EC2 holds for the instance is exactly its boot string, read back with the EC2 API,
and a ``skybroker agent`` run here with that string configures the Instance's record through a
real API server's rendezvous endpoints."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import boto3

from api_types import AgentState, Instance, Secret
from api_types.rendezvous import SECRET_KEY, boot_secret_name
from controller.store.objects import Store
from providers.ec2 import Ec2Provider
from reconcilers import bootconfig, instance
from skybroker.apiserver import HttpServer
from tests.integration.providers.conftest import (
    EC2_CREDENTIALS,
    REGION,
    SETUP_TIMEOUT,
    MotoServer,
    ec2_config,
)
from tests.integration.reconcilers.harness import API, Harness, ec2_account, instance_manifest

BOOTCONFIG = {
    "apiVersion": API,
    "kind": "BootConfig",
    "metadata": {"name": "web", "namespace": "acme"},
    "spec": {"config": '#!/bin/sh\necho \'{"port": "8080"}\'\n'},
}


def test_ec2_holds_the_boot_string_and_an_agent_with_it_configures_the_instance(
    store: Store, tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.reset()
    cloud = Ec2Provider(ec2_config(moto_server.port, timeout=str(SETUP_TIMEOUT)))
    image = cloud.driver.ex_register_image("skybroker-image", description="boot test")
    token_file = tmp_path / "tokens.csv"
    token_file.write_text('admin-token,admin,admin,"system:masters"\n')
    api = HttpServer(store, token_file, "127.0.0.1:0")
    api.start()
    harness = Harness(store, tmp_path / "state", rendezvous_url=api.url)
    try:
        harness.apply(*ec2_account("aws", moto_server.url, image.id), BOOTCONFIG)
        harness.start(instance.register, bootconfig.register)
        harness.apply(
            instance_manifest(
                "web-1", account="aws", hardware={"size": "t3.micro"}, bootConfigRef="web"
            )
        )
        web = harness.wait_for(
            Instance, "web-1", "acme", lambda i: i.status.provider_id is not None, 60
        )
        ec2 = boto3.client(
            "ec2",
            endpoint_url=moto_server.url,
            region_name=REGION,
            aws_access_key_id=EC2_CREDENTIALS["key"],
            aws_secret_access_key=EC2_CREDENTIALS["secret"],
        )
        attribute = ec2.describe_instance_attribute(
            InstanceId=str(web.status.provider_id), Attribute="userData"
        )
        user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()
        uid = str(web.metadata.uid)
        secret = store.get(Secret, boot_secret_name(uid), "acme")
        value = base64.b64decode(secret.data[SECRET_KEY]).decode()
        assert user_data == f"skybroker-boot:v1:{uid}:{value}:{api.url}"

        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYBROKER_")}
        agent = subprocess.run(
            [sys.executable, "-m", "skybroker", "agent", "--once", "--address", "10.9.8.7",
             "--config-path", str(tmp_path / "config")],
            env={**env, "SKYBROKER_BOOT": user_data},
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert agent.returncode == 0, agent.stderr
        assert value not in agent.stderr + agent.stdout
        configured = harness.wait_for(
            Instance,
            "web-1",
            "acme",
            lambda i: i.status.agent is not None and i.status.agent.state == AgentState.CONFIGURED,
            60,
        )
        assert configured.status.agent is not None
        assert configured.status.agent.address == "10.9.8.7"
        assert configured.status.agent.parameters == {"port": "8080"}
    finally:
        harness.stop()
        api.stop()
