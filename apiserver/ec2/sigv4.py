"""AWS Signature Version 4 verification of an EC2 Query request.

Where it sits: the EC2 front door's authentication, after the parameters are decoded
(``params``) and before any action runs (``routes``). It accepts both forms a client signs in:

- an ``Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`` header,
  the time in ``X-Amz-Date`` (or ``Date``), valid within ±15 minutes of the server's clock;
- a presigned URL: ``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``,
  ``X-Amz-Expires`` (1 s to 7 days), ``X-Amz-SignedHeaders`` and ``X-Amz-Signature`` in the
  query string, valid from 15 minutes before ``X-Amz-Date`` until it expires.

The credential scope is ``{key id}/{yyyymmdd}/{region}/ec2/aws4_request``: the service must be
``ec2`` and the date that of the request; the region is whatever the client chose — a region
is a Pool (DESIGN §12), which the action resolves (``context``), not the signature.

The expected signature is computed by botocore's own signer (``botocore.auth.SigV4Auth``: the
canonical request, the string to sign and the HMAC key derivation), given exactly the request
as received: its method, path as sent, query pairs (without ``X-Amz-Signature``), the headers
the client listed as signed (all their values) and the SHA-256 of the body; only the final
comparison is ours, by :func:`hmac.compare_digest`. An ``X-Amz-Content-SHA256`` header must be
the body's digest (``UNSIGNED-PAYLOAD`` would leave the parameters unsigned).

Answers, in the order they are checked (EC2's codes)::

    neither form present                  401 MissingAuthenticationToken
    both forms, malformed header/params,  400 IncompleteSignature
      other algorithm, no host signed
    unknown access key (or no resolver)   401 AuthFailure
    scope service/date wrong, signature   403 SignatureDoesNotMatch
      differs, body digest differs
    outside the time window               400 RequestExpired (only for a genuine signature)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from apiserver.accesskeys import AccessKeyCredential, CredentialResolver
from apiserver.ec2.errors import Ec2Error, auth_failure

__all__ = [
    "ALGORITHM",
    "CLOCK_SKEW",
    "MAX_EXPIRES",
    "SERVICE",
    "SignedRequest",
    "Verified",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "ec2"
CLOCK_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 7 * 24 * 3600
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_PRESIGN = "X-Amz-Algorithm"
_SIGNATURE_PARAM = "X-Amz-Signature"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTENT_SHA256 = "x-amz-content-sha256"


@dataclass(frozen=True)
class SignedRequest:
    """A request as received: ``path`` as sent (percent-encoded, no query), the decoded query
    pairs in order, every header (lower-case names, repeats kept) and the body."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Verified:
    """Who signed the request, and the region (Pool name) of its credential scope."""

    credential: AccessKeyCredential
    region: str
    presigned: bool


@dataclass(frozen=True)
class _Claim:
    """What the request says about its signature, whichever form carried it."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: datetime
    expires: int | None  # presigned only


def _incomplete(message: str) -> Ec2Error:
    return Ec2Error("IncompleteSignature", message)


def _mismatch(message: str) -> Ec2Error:
    return Ec2Error("SignatureDoesNotMatch", message, 403)


def _parse_timestamp(value: str, where: str) -> datetime:
    try:
        return datetime.strptime(value, _TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete(f"{where} {value!r} is not of the form YYYYMMDDTHHMMSSZ") from None


def _scope(credential: str, where: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise _incomplete(
            f"{where} must be <access key id>/<yyyymmdd>/<region>/ec2/aws4_request, "
            f"not {credential!r}"
        )
    return parts[0], parts[1], parts[2], parts[3]


def _signed_headers(value: str, where: str) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not all(names) or any(name != name.strip().lower() for name in names):
        raise _incomplete(f"{where} must be lower-case header names separated by ';'")
    if "host" not in names:
        raise _incomplete(f"{where} must include host")
    return names


def _header_claim(request: SignedRequest, authorization: str) -> _Claim:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"unsupported signature algorithm {algorithm!r}; use {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name in fields:
            raise _incomplete(f"malformed Authorization header component {part.strip()!r}")
        fields[name] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            raise _incomplete(f"the Authorization header lacks {required}=")
    key, date, region, service = _scope(fields["Credential"], "Credential")
    amz_date = request.header("x-amz-date")
    if amz_date is not None:
        timestamp = _parse_timestamp(amz_date, "X-Amz-Date")
    elif (http_date := request.header("date")) is not None:
        try:
            timestamp = parsedate_to_datetime(http_date).astimezone(UTC)
        except (TypeError, ValueError):
            raise _incomplete(f"Date {http_date!r} is not an HTTP date") from None
    else:
        raise _incomplete("the request needs an X-Amz-Date or a Date header")
    signed = _signed_headers(fields["SignedHeaders"], "SignedHeaders")
    return _Claim(key, date, region, service, signed, fields["Signature"], timestamp, None)


def _query_claim(query: dict[str, str]) -> _Claim:
    def need(name: str) -> str:
        value = query.get(name)
        if not value:
            raise _incomplete(f"the presigned request lacks {name}")
        return value

    if need(_PRESIGN) != ALGORITHM:
        raise _incomplete(f"unsupported signature algorithm {query[_PRESIGN]!r}; use {ALGORITHM}")
    key, date, region, service = _scope(need("X-Amz-Credential"), "X-Amz-Credential")
    timestamp = _parse_timestamp(need("X-Amz-Date"), "X-Amz-Date")
    raw_expires = need("X-Amz-Expires")
    if not raw_expires.isdigit() or not 1 <= int(raw_expires) <= MAX_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds")
    signed = _signed_headers(need("X-Amz-SignedHeaders"), "X-Amz-SignedHeaders")
    signature = need(_SIGNATURE_PARAM)
    return _Claim(key, date, region, service, signed, signature, timestamp, int(raw_expires))


class _Signer(SigV4Auth):  # type: ignore[misc]  # botocore ships no types
    """botocore's SigV4 signer over exactly the headers the client said it signed."""

    def __init__(self, credentials: Credentials, region: str, headers: HTTPHeaders) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = headers

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        return self._signed

    def expected(self, request: AWSRequest) -> str:
        canonical = self.canonical_request(request)
        signature: str = self.signature(self.string_to_sign(request, canonical), request)
        return signature


def _expected_signature(request: SignedRequest, claim: _Claim, secret: str, presigned: bool) -> str:
    headers = HTTPHeaders()
    for name in claim.signed_headers:
        values = request.header_values(name)
        if not values:
            raise _mismatch(f"the signed header {name!r} is not in the request")
        for value in values:
            headers[name] = value  # a Message: a repeated header keeps every value
    query = [(k, v) for k, v in request.query if not (presigned and k == _SIGNATURE_PARAM)]
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{request.header('host') or ''}{request.path}",
        data=request.body,
        params=query,
    )
    aws_request.context["timestamp"] = claim.timestamp.strftime(_TIMESTAMP)
    credentials = Credentials(claim.access_key_id, secret)
    return _Signer(credentials, claim.region, headers).expected(aws_request)


def _check_time(claim: _Claim, now: datetime) -> None:
    expired = Ec2Error(
        "RequestExpired",
        f"Request has expired: signed at {claim.timestamp.strftime(_TIMESTAMP)}, "
        f"the time is {now.strftime(_TIMESTAMP)}",
    )
    if claim.timestamp - now > CLOCK_SKEW:
        raise expired  # signed in the future, by a clock too far ahead
    lifetime = CLOCK_SKEW if claim.expires is None else timedelta(seconds=claim.expires)
    if now - claim.timestamp > lifetime:
        raise expired


def verify(request: SignedRequest, resolve: CredentialResolver | None, now: datetime) -> Verified:
    """The credential a genuine, timely request was signed with; :class:`Ec2Error` otherwise
    (the module docstring's table)."""
    authorization = request.header("authorization")
    query = dict(request.query)
    presigned = _PRESIGN in query
    if authorization is None and not presigned:
        raise Ec2Error("MissingAuthenticationToken", "Request is missing Authentication Token", 401)
    if authorization is not None and presigned:
        raise _incomplete("sign either with the Authorization header or in the query, not both")
    claim = _query_claim(query) if presigned else _header_claim(request, authorization or "")
    credential = resolve(claim.access_key_id) if resolve is not None else None
    if credential is None:
        raise auth_failure()
    if claim.service != SERVICE:
        raise _mismatch(f"Credential should be scoped to correct service: '{SERVICE}'")
    if claim.date != claim.timestamp.strftime("%Y%m%d"):
        raise _mismatch("the date of the credential scope is not the date of the request")
    digest = request.header(_CONTENT_SHA256)
    if digest is not None and digest != hashlib.sha256(request.body).hexdigest():
        raise _mismatch("X-Amz-Content-SHA256 is not the SHA-256 of the body")
    expected = _expected_signature(request, claim, credential.secret_access_key, presigned)
    given = claim.signature
    if not _HEX64.fullmatch(given) or not hmac.compare_digest(expected, given):
        raise _mismatch(
            "The request signature we calculated does not match the signature you provided"
        )
    _check_time(claim, now)
    return Verified(credential, claim.region, presigned)
