"""The EC2 front door end to end: a real API server over real etcd, real clients (boto3,
botocore's presigner, raw httpx) and the read-only "where" actions (DESIGN §12).

Catalogue: accounts ``sim-a`` (zones from its probed status, images ubuntu/debian) and
``sim-b`` (its member names zone ``r1c``; images ubuntu/centos) in pool ``general``; pool
``b-only`` is closed to ``team-a``. ``alice`` is admin in team-a, ``nobody`` holds no role:
both see the catalogue of their namespace. Access keys come from a dict.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from api_types import registry
from apiserver import ApiOptions, User
from apiserver.accesskeys import AccessKeyCredential
from apiserver.ec2 import EC2_NAMESPACE
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from skyctl.main import main as skyctl
from tests.awscli import aws_cli
from tests.integration.apiserver.conftest import TOKEN_FILE
from tests.integration.apiserver.ec2world import ec2_api, ec2_client
from tests.waiting import eventually

API = "skybroker.io/v1alpha1"
ALICE = AccessKeyCredential(
    "AKIAALICE", "alice-secret", User("alice", "u-alice", frozenset({"tenants"})), "team-a"
)
NOBODY = AccessKeyCredential("AKIANOBODY", "nobody-secret", User("nobody", "u-nobody",
                             frozenset()), "team-a")  # fmt: skip
KEYS = {key.access_key_id: key for key in (ALICE, NOBODY)}

CATALOGUE: list[dict[str, Any]] = [
    {"kind": "ProviderAccount", "metadata": {"name": "sim-a"},
     "spec": {"driver": "simulated", "region": "r1",
              "images": {"ubuntu-22.04": "img-u", "debian-12": "img-d"}},
     # what the account's health probe writes; stored before the server's caches start
     "status": {"zones": ["r1a", "r1b"]}},
    {"kind": "ProviderAccount", "metadata": {"name": "sim-b"},
     "spec": {"driver": "simulated", "region": "r1",
              "images": {"ubuntu-22.04": "img-u2", "centos-9": "img-c"}}},
    {"kind": "Pool", "metadata": {"name": "general"},
     "spec": {"members": [{"account": "sim-a"}, {"account": "sim-b", "zones": ["r1c"]}]}},
    {"kind": "Pool", "metadata": {"name": "b-only"},
     "spec": {"members": [{"account": "sim-a"}], "allowedNamespaces": ["team-b"]}},
    {"kind": "HardwareProfile", "metadata": {"name": "small"},
     "spec": {"cpu": {"min": 1, "max": 2}, "memoryMiB": {"min": 1024}}},
    {"kind": "HardwareProfile", "metadata": {"name": "large"},
     "spec": {"cpu": {"min": 8}, "memoryMiB": {"min": 32768}, "arch": "arm64"}},
    {"kind": "ClusterRole", "metadata": {"name": "catalogue-reader"},
     "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools", "hardwareprofiles"],
                "verbs": ["get", "list"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "alice-catalogue"},
     "roleRef": {"kind": "ClusterRole", "name": "catalogue-reader"},
     "subjects": [{"kind": "User", "name": "alice"}]},
]  # fmt: skip


@pytest.fixture
def ec2_server(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with ec2_api(api_store, tmp_path, CATALOGUE, KEYS) as http:
        yield http


def ec2(server: HttpServer, key: AccessKeyCredential, region: str = "general") -> Any:
    return ec2_client(server, key, region)


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    error = raised.value.response
    return (
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Code"],
        error["Error"]["Message"],
    )


def test_describe_regions_lists_the_pools_the_namespace_may_use(ec2_server: HttpServer) -> None:
    answer = ec2(ec2_server, ALICE).describe_regions()
    assert answer["Regions"] == [
        {
            "RegionName": "general",
            "Endpoint": f"{ec2_server.url}/ec2/",
            "OptInStatus": "opt-in-not-required",
        }
    ]
    assert len(answer["ResponseMetadata"]["RequestId"]) == 36  # a uuid4
    # DescribeRegions answers whatever region the client configured: it is how one finds them.
    anywhere = ec2(ec2_server, ALICE, region="us-east-1").describe_regions(
        Filters=[{"Name": "region-name", "Values": ["gen*"]}]
    )
    assert [r["RegionName"] for r in anywhere["Regions"]] == ["general"]
    assert error_of(ec2(ec2_server, ALICE).describe_regions, RegionNames=["b-only"])[:2] == (
        400,
        "InvalidParameterValue",
    )


def test_availability_zones_images_and_instance_types(ec2_server: HttpServer) -> None:
    client = ec2(ec2_server, ALICE)
    zones = client.describe_availability_zones()["AvailabilityZones"]
    assert [(z["ZoneName"], z["State"], z["RegionName"]) for z in zones] == [
        ("r1a", "available", "general"),
        ("r1b", "available", "general"),
        ("r1c", "available", "general"),
    ]
    only = client.describe_availability_zones(ZoneNames=["r1b"])["AvailabilityZones"]
    assert [z["ZoneName"] for z in only] == ["r1b"]

    images = client.describe_images()["Images"]
    assert [(i["ImageId"], i["State"], i["Public"]) for i in images] == [
        ("centos-9", "available", True),
        ("debian-12", "available", True),
        ("ubuntu-22.04", "available", True),
    ]
    status, code, message = error_of(client.describe_images, ImageIds=["windows-11"])
    assert (status, code) == (400, "InvalidAMIID.NotFound") and "windows-11" in message

    types = {t["InstanceType"]: t for t in client.describe_instance_types()["InstanceTypes"]}
    assert sorted(types) == ["large", "small"]
    small, large = types["small"], types["large"]
    assert small["VCpuInfo"]["DefaultVCpus"] == 1 and small["MemoryInfo"]["SizeInMiB"] == 1024
    assert small["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64", "arm64"]
    assert large["VCpuInfo"]["DefaultVCpus"] == 8
    assert large["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]
    filtered = client.describe_instance_types(
        Filters=[{"Name": "processor-info.supported-architecture", "Values": ["x86_64"]}]
    )["InstanceTypes"]
    assert [t["InstanceType"] for t in filtered] == ["small"]
    assert error_of(client.describe_instance_types, InstanceTypes=["huge"])[1] == (
        "InvalidInstanceType"
    )


def test_a_region_must_be_a_pool_the_namespace_may_use(ec2_server: HttpServer) -> None:
    for region in ("nowhere", "b-only"):  # missing and closed to team-a: the same answer
        status, code, message = error_of(
            ec2(ec2_server, ALICE, region=region).describe_availability_zones
        )
        assert (status, code) == (401, "AuthFailure")
        assert region in message and "team-a" in message


def test_the_catalogue_is_the_namespaces_and_writes_need_rbac(ec2_server: HttpServer) -> None:
    # nobody holds no role at all, yet sees the regions its namespace may use, as every cloud
    # account sees its regions; what it may do in them is RBAC's, as for REST.
    regions = ec2(ec2_server, NOBODY).describe_regions()["Regions"]
    assert [region["RegionName"] for region in regions] == ["general"]
    status, code, message = error_of(
        ec2(ec2_server, NOBODY).run_instances,
        ImageId="ubuntu-22.04",
        InstanceType="small",
        MinCount=1,
        MaxCount=1,
    )
    assert (status, code) == (403, "UnauthorizedOperation")
    assert 'User "nobody" cannot' in message and 'resource "instances"' in message
    # DryRun checks the same and stops short of the answer.
    assert error_of(ec2(ec2_server, ALICE).describe_images, DryRun=True)[:2] == (
        412,
        "DryRunOperation",
    )


def test_signature_failures(ec2_server: HttpServer) -> None:
    stranger = AccessKeyCredential("AKIAUNKNOWN", "x", ALICE.user, "team-a")
    assert error_of(ec2(ec2_server, stranger).describe_regions)[:2] == (401, "AuthFailure")
    forged = AccessKeyCredential(ALICE.access_key_id, "not-the-secret", ALICE.user, "team-a")
    assert error_of(ec2(ec2_server, forged).describe_regions)[:2] == (
        403,
        "SignatureDoesNotMatch",
    )


def test_expired_requests_are_refused(
    ec2_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3 signing with a clock 20 minutes off either way (beyond the 15-minute skew window),
    and a presigned URL past its expiry: genuine signatures, refused as ``RequestExpired``."""
    real_now = botocore.auth.get_current_datetime
    for offset in (timedelta(minutes=-20), timedelta(minutes=20)):
        monkeypatch.setattr(
            botocore.auth,
            "get_current_datetime",
            lambda *a, shift=offset, **k: real_now(*a, **k) + shift,
        )
        status, code, message = error_of(ec2(ec2_server, ALICE).describe_regions)
        assert (status, code) == (400, "RequestExpired") and "expired" in message
    monkeypatch.setattr(botocore.auth, "get_current_datetime", real_now)
    assert ec2(ec2_server, ALICE).describe_regions()["Regions"]  # the right clock passes

    # A URL presigned for 60 s, two minutes ago.
    two_minutes_ago = real_now() - timedelta(minutes=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: two_minutes_ago)
    request = AWSRequest(
        "GET",
        f"{ec2_server.url}/ec2/",
        params={"Action": "DescribeRegions", "Version": "2016-11-15"},
    )
    credentials = Credentials(ALICE.access_key_id, ALICE.secret_access_key)
    SigV4QueryAuth(credentials, "ec2", "general", expires=60).add_auth(request)
    response = httpx.get(request.prepare().url)
    assert response.status_code == 400
    assert _xml(response).findtext("Errors/Error/Code") == "RequestExpired"


def _xml(response: httpx.Response) -> ElementTree.Element:
    assert response.headers["content-type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


def test_unsigned_request_is_refused_in_ec2s_error_format(ec2_server: HttpServer) -> None:
    response = httpx.post(
        f"{ec2_server.url}/ec2/", data={"Action": "DescribeRegions", "Version": "2016-11-15"}
    )
    assert response.status_code == 401
    root = _xml(response)
    assert root.tag == "Response"
    assert root.findtext("Errors/Error/Code") == "MissingAuthenticationToken"
    request_id = root.findtext("RequestID")
    assert request_id and response.headers["x-amzn-requestid"] == request_id


def _signed(server: HttpServer, body: bytes, key: AccessKeyCredential = ALICE) -> httpx.Response:
    request = AWSRequest(
        "POST",
        f"{server.url}/ec2/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    credentials = Credentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "ec2", "general").add_auth(request)
    prepared = request.prepare()
    return httpx.post(prepared.url, content=body, headers=dict(prepared.headers.items()))


def test_unknown_action_and_version(ec2_server: HttpServer) -> None:
    response = _signed(ec2_server, b"Action=LaunchRockets&Version=2016-11-15")
    assert response.status_code == 400
    root = _xml(response)
    assert root.findtext("Errors/Error/Code") == "InvalidAction"
    assert "LaunchRockets" in (root.findtext("Errors/Error/Message") or "")

    old = _signed(ec2_server, b"Action=DescribeRegions&Version=2014-01-01")
    assert _xml(old).findtext("Errors/Error/Code") == "NoSuchVersion"
    missing = _signed(ec2_server, b"Version=2016-11-15")
    assert _xml(missing).findtext("Errors/Error/Message") == (
        "The request must contain the parameter Action"
    )


def test_raw_answer_is_in_ec2s_namespace(ec2_server: HttpServer) -> None:
    response = _signed(ec2_server, b"Action=DescribeRegions&Version=2016-11-15")
    assert response.status_code == 200
    root = _xml(response)
    assert root.tag == f"{{{EC2_NAMESPACE}}}DescribeRegionsResponse"
    namespace = {"ec2": EC2_NAMESPACE}
    assert (
        root.findtext("ec2:requestId", namespaces=namespace)
        == (response.headers["x-amzn-requestid"])
    )
    names = root.findall("ec2:regionInfo/ec2:item/ec2:regionName", namespace)
    assert [name.text for name in names] == ["general"]
    metrics = httpx.get(f"{ec2_server.url}/metrics").text
    assert 'apiserver_requests_total{code="200",method="POST",resource="ec2"}' in metrics


def test_presigned_get(ec2_server: HttpServer) -> None:
    request = AWSRequest(
        "GET",
        f"{ec2_server.url}/ec2/",
        params={"Action": "DescribeImages", "Version": "2016-11-15", "ImageId.1": "debian-12"},
    )
    credentials = Credentials(ALICE.access_key_id, ALICE.secret_access_key)
    SigV4QueryAuth(credentials, "ec2", "general", expires=60).add_auth(request)
    url = request.prepare().url
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    ids = _xml(response).findall(f".//{{{EC2_NAMESPACE}}}imageId")
    assert [i.text for i in ids] == ["debian-12"]
    # The signature covers the query: another image id is not what was signed.
    tampered = httpx.get(url.replace("debian-12", "centos-9"))
    assert tampered.status_code == 403
    assert _xml(tampered).findtext("Errors/Error/Code") == "SignatureDoesNotMatch"


def test_body_is_bounded(ec2_server: HttpServer) -> None:
    limit = ec2_server.api.options.max_body_bytes
    body = b"Action=DescribeRegions&Version=2016-11-15&Pad=" + b"x" * limit
    response = httpx.post(f"{ec2_server.url}/ec2/", content=body)
    assert response.status_code == 413
    assert _xml(response).findtext("Errors/Error/Code") == "RequestEntityTooLarge"


def test_without_a_resolver_every_request_is_refused(api_store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(api_store, token_file, "127.0.0.1:0", ApiOptions())
    http.start()
    try:
        assert error_of(ec2(http, ALICE).describe_regions)[:2] == (401, "AuthFailure")
    finally:
        http.stop()


def test_request_digest_header_must_match_the_body(ec2_server: HttpServer) -> None:
    body = b"Action=DescribeRegions&Version=2016-11-15"
    request = AWSRequest(
        "POST",
        f"{ec2_server.url}/ec2/",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Amz-Content-SHA256": hashlib.sha256(b"something else").hexdigest(),
        },
    )
    SigV4Auth(Credentials(ALICE.access_key_id, ALICE.secret_access_key), "ec2", "general").add_auth(
        request
    )
    prepared = request.prepare()
    response = httpx.post(prepared.url, content=body, headers=dict(prepared.headers.items()))
    assert response.status_code == 403
    assert _xml(response).findtext("Errors/Error/Code") == "SignatureDoesNotMatch"


def test_aws_cli(ec2_server: HttpServer, tmp_path: Path) -> None:
    aws = aws_cli(
        f"{ec2_server.url}/ec2/", ALICE.access_key_id, ALICE.secret_access_key, "general", tmp_path
    )

    zones = aws("describe-availability-zones")
    assert zones.returncode == 0, zones.stderr
    names = [zone["ZoneName"] for zone in json.loads(zones.stdout)["AvailabilityZones"]]
    assert names == ["r1a", "r1b", "r1c"]
    refused = aws("describe-images", "--image-ids", "windows-11")
    assert refused.returncode != 0 and "InvalidAMIID.NotFound" in refused.stderr


def test_a_key_made_by_skyctl_signs_requests_through_the_stores_access_keys(
    api_store: Store, tmp_path: Path
) -> None:
    """The API server's own resolver (no dict handed over): ``skyctl create accesskey`` makes
    the key, boto3 signs with it, the request acts as its user in its namespace."""
    for wire in CATALOGUE:
        api_store.create(registry.parse_object({"apiVersion": API, **wire}))
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(api_store, token_file, "127.0.0.1:0", ApiOptions())
    http.start()
    try:
        out, err = io.StringIO(), io.StringIO()
        argv = ["create", "accesskey", "alice-key", "--user", "alice", "--namespace", "team-a"]
        argv += ["--server", http.url, "--token", "admin-token"]
        assert skyctl(argv, stdout=out, stderr=err) == 0, err.getvalue()
        lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
        key = AccessKeyCredential(
            lines["accessKeyId"], lines["secretAccessKey"], ALICE.user, "team-a"
        )

        def regions() -> list[str]:
            return [r["RegionName"] for r in ec2(http, key).describe_regions()["Regions"]]

        eventually(lambda: _answers(regions) == ["general"])  # once the key's watch event is in
        wrong = AccessKeyCredential(key.access_key_id, "x" * 40, ALICE.user, "team-a")
        assert error_of(ec2(http, wrong).describe_regions)[:2] == (403, "SignatureDoesNotMatch")
    finally:
        http.stop()


def _answers(call: Any) -> Any:
    """``call()``, or None while the server does not know the key yet (AuthFailure)."""
    try:
        return call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "AuthFailure":
            return None
        raise
