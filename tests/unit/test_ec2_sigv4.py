"""SigV4 verification (``apiserver.ec2.sigv4``) against signatures botocore makes, as a
client's SDK would: both forms, the failure codes, the time windows, tampering, and query
parameters arriving duplicated or in another order than they were signed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from apiserver.accesskeys import AccessKeyCredential
from apiserver.auth import User
from apiserver.ec2.errors import Ec2Error
from apiserver.ec2.params import parse_pairs
from apiserver.ec2.sigv4 import SignedRequest, Verified, verify

KEY = AccessKeyCredential("AKIATEST", "the-secret", User("alice", "u", frozenset()), "team-a")
RESOLVE = {KEY.access_key_id: KEY}.get
URL = "http://127.0.0.1:7480/ec2/"
BODY = b"Action=DescribeRegions&Version=2016-11-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def _received(prepared: object, body: bytes = b"") -> SignedRequest:
    """What the server sees of a prepared botocore request (host added as a client sends it)."""
    url = urlsplit(prepared.url)  # type: ignore[attr-defined]
    headers = [(k.lower(), v) for k, v in prepared.headers.items()]  # type: ignore[attr-defined]
    headers.append(("host", url.netloc))
    query = parse_pairs(url.query.encode("ascii"), "query string")
    return SignedRequest(prepared.method, url.path, query, headers, body)  # type: ignore[attr-defined]


def header_signed(
    body: bytes = BODY,
    *,
    secret: str = KEY.secret_access_key,
    key_id: str = KEY.access_key_id,
    region: str = "general",
    service: str = "ec2",
    headers: dict[str, str] | None = None,
) -> tuple[SignedRequest, datetime]:
    request = AWSRequest("POST", URL, data=body, headers={"Content-Type": FORM, **(headers or {})})
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    return _received(request.prepare(), body), signed_at.replace(tzinfo=UTC)


def presigned(
    params: Sequence[tuple[str, str]] | dict[str, str], expires: int = 300, method: str = "GET"
) -> tuple[SignedRequest, datetime, str]:
    request = AWSRequest(method, URL, params=params)
    credentials = Credentials(KEY.access_key_id, KEY.secret_access_key)
    SigV4QueryAuth(credentials, "ec2", "general", expires=expires).add_auth(request)
    prepared = request.prepare()
    url = prepared.url
    stamp = dict(parse_pairs(urlsplit(url).query.encode(), "q"))["X-Amz-Date"]
    signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return _received(prepared), signed_at, url


def refused(request: SignedRequest, now: datetime, resolve=RESOLVE) -> Ec2Error:  # type: ignore[no-untyped-def]
    with pytest.raises(Ec2Error) as raised:
        verify(request, resolve, now)
    return raised.value


def test_header_signature_verifies_and_names_credential_and_region() -> None:
    request, at = header_signed(region="any-region-the-client-chose")
    assert verify(request, RESOLVE, at) == Verified(KEY, "any-region-the-client-chose", False)


def test_presigned_url_verifies() -> None:
    params = {"Action": "DescribeImages", "Version": "2016-11-15", "Filter.1.Name": "a b+c/é~"}
    request, at, _ = presigned(params)
    assert verify(request, RESOLVE, at) == Verified(KEY, "general", True)


def test_wrong_secret_is_signature_does_not_match() -> None:
    request, at = header_signed(secret="guessed")
    error = refused(request, at)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_unknown_key_and_no_resolver_are_auth_failure() -> None:
    request, at = header_signed(key_id="AKIAUNKNOWN")
    assert (refused(request, at).code, refused(request, at).status) == ("AuthFailure", 401)
    known, at = header_signed()
    assert refused(known, at, resolve=None).code == "AuthFailure"


def test_clock_skew_window_of_header_signatures() -> None:
    request, at = header_signed()
    skew = timedelta(minutes=15)
    assert verify(request, RESOLVE, at + skew).credential is KEY  # the edges are inside
    assert verify(request, RESOLVE, at - skew).credential is KEY
    for now in (at + skew + timedelta(seconds=1), at - skew - timedelta(seconds=1)):
        error = refused(request, now)
        assert (error.code, error.status) == ("RequestExpired", 400)


def test_presigned_urls_expire() -> None:
    request, at, _ = presigned({"Action": "DescribeRegions", "Version": "2016-11-15"}, expires=60)
    assert verify(request, RESOLVE, at + timedelta(seconds=60)).presigned
    assert refused(request, at + timedelta(seconds=61)).code == "RequestExpired"
    # Signed by a clock far ahead: not valid yet.
    assert refused(request, at - timedelta(minutes=16)).code == "RequestExpired"


def test_expired_but_forged_is_a_signature_error_not_an_expiry() -> None:
    request, at = header_signed(secret="guessed")
    assert refused(request, at + timedelta(hours=2)).code == "SignatureDoesNotMatch"


def test_tampered_body_and_signed_header() -> None:
    request, at = header_signed()
    tampered = SignedRequest(
        request.method, request.path, request.query, request.headers, BODY + b"&RegionName.1=x"
    )
    assert refused(tampered, at).code == "SignatureDoesNotMatch"
    headers = [(k, "text/plain" if k == "content-type" else v) for k, v in request.headers]
    changed = SignedRequest(request.method, request.path, request.query, headers, request.body)
    assert refused(changed, at).code == "SignatureDoesNotMatch"
    # A header the client did not sign may be added on the way (a proxy's): still genuine.
    extra = [*request.headers, ("x-forwarded-for", "10.0.0.1")]
    added = SignedRequest(request.method, request.path, request.query, extra, request.body)
    assert verify(added, RESOLVE, at).credential is KEY


def test_content_digest_header_must_be_the_bodys() -> None:
    request, at = header_signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    error = refused(request, at)
    assert error.code == "SignatureDoesNotMatch" and "SHA-256" in error.message


def test_query_parameters_in_any_order_and_duplicated() -> None:
    params = [
        ("Version", "2016-11-15"),
        ("Action", "DescribeImages"),
        ("Filter.1.Value.1", "b"),
        ("Filter.1.Value.1", "a"),
        ("Filter.1.Name", "name"),
    ]
    request, at, _ = presigned(params)
    reordered = SignedRequest(
        request.method, request.path, list(reversed(request.query)), request.headers, b""
    )
    assert verify(reordered, RESOLVE, at).presigned
    # A duplicate dropped (or its value changed) is another request.
    dropped = [pair for pair in request.query if pair != ("Filter.1.Value.1", "a")]
    shorter = SignedRequest(request.method, request.path, dropped, request.headers, b"")
    assert refused(shorter, at).code == "SignatureDoesNotMatch"


def test_presigned_method_and_path_are_signed() -> None:
    request, at, _ = presigned({"Action": "DescribeRegions", "Version": "2016-11-15"})
    as_post = SignedRequest("POST", request.path, request.query, request.headers, b"")
    assert refused(as_post, at).code == "SignatureDoesNotMatch"
    elsewhere = SignedRequest("GET", "/other/", request.query, request.headers, b"")
    assert refused(elsewhere, at).code == "SignatureDoesNotMatch"


def test_malformed_and_missing_signatures() -> None:
    now = datetime.now(UTC)
    bare = SignedRequest("POST", "/ec2/", [], [("host", "h")], BODY)
    missing = refused(bare, now)
    assert (missing.code, missing.status) == ("MissingAuthenticationToken", 401)

    def with_authorization(value: str) -> Ec2Error:
        headers = [("host", "h"), ("x-amz-date", "20261203T070000Z"), ("authorization", value)]
        return refused(SignedRequest("POST", "/ec2/", [], headers, BODY), now)

    assert with_authorization("AWS4-HMAC-SHA1 Credential=a/b/c/ec2/aws4_request").code == (
        "IncompleteSignature"
    )
    no_scope = with_authorization("AWS4-HMAC-SHA256 Credential=AKIATEST, SignedHeaders=host, "
                                  "Signature=" + "0" * 64)  # fmt: skip
    assert no_scope.code == "IncompleteSignature" and "Credential" in no_scope.message
    no_host = with_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIATEST/20261203/general/ec2/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=" + "0" * 64
    )
    assert no_host.code == "IncompleteSignature" and "host" in no_host.message

    request, at, _ = presigned({"Action": "DescribeRegions", "Version": "2016-11-15"})
    both = SignedRequest(
        "GET", request.path, request.query, [*request.headers, ("authorization", "x")], b""
    )
    assert refused(both, at).code == "IncompleteSignature"
    too_long = [(k, "604801" if k == "X-Amz-Expires" else v) for k, v in request.query]
    expires = refused(SignedRequest("GET", request.path, too_long, request.headers, b""), at)
    assert expires.code == "IncompleteSignature" and "X-Amz-Expires" in expires.message


def test_scope_must_be_ec2_and_the_requests_date() -> None:
    request, at = header_signed(service="s3")
    error = refused(request, at)
    assert error.code == "SignatureDoesNotMatch" and "'ec2'" in error.message
    signed, at = header_signed()
    next_day = (at + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    headers = [(k, next_day if k == "x-amz-date" else v) for k, v in signed.headers]
    moved = SignedRequest(signed.method, signed.path, signed.query, headers, signed.body)
    error = refused(moved, at + timedelta(days=1))
    assert error.code == "SignatureDoesNotMatch" and "date" in error.message
