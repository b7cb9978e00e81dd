"""The ``ec2`` driver on an EC2-compatible server: the endpoint's path and the server's own
regions (issue #15: another skybroker's front door is at ``/ec2/``, its regions are pools).
No request is sent: construction alone."""

from __future__ import annotations

import pytest

from providers.config import AccountConfig
from providers.ec2 import Ec2Provider

CREDENTIALS = {"key": "AKIDSKYBROKERTEST", "secret": "not-a-secret"}


def _provider(region: str, endpoint: str | None) -> Ec2Provider:
    config = AccountConfig(
        name="a", driver="ec2", region=region, endpoint=endpoint, credentials=dict(CREDENTIALS)
    )
    return Ec2Provider(config)


def test_a_front_door_path_and_its_own_region() -> None:
    driver = _provider("general", "http://127.0.0.1:8080/ec2/").driver
    assert driver.path == "/ec2/" and driver.region_name == "general" and driver.own_region
    assert (driver.connection.host, driver.connection.port) == ("127.0.0.1", 8080)


def test_a_bare_endpoint_and_an_aws_region_stay_as_they_were() -> None:
    driver = _provider("us-east-1", "http://127.0.0.1:5000").driver
    assert driver.path == "/" and driver.region_name == "us-east-1"
    assert not driver.own_region


def test_without_an_endpoint_only_aws_regions_exist() -> None:
    with pytest.raises(ValueError, match="Invalid region: general"):
        _provider("general", None)
