"""The EC2 front door's ASGI application: ``GET``/``POST /ec2/`` in, EC2's XML out.

Where it sits: ``apiserver.app`` hands it every path under ``/ec2`` (DESIGN §12). One request::

    body (bounded: apiserver.body, 413 past the API's limit)
      → params.parse_pairs: the query string, and the form body of a POST
      → sigv4.verify: the key's credential and region, or AuthFailure/SignatureDoesNotMatch/…
      → params.Params: Action and Version (2016-11-15) required, names unique
      → registry: the action's handler (InvalidAction if none), on a worker thread, with an
        ActionContext whose backend is the REST pipeline as the key's user
      → xmlwriter: ``<{Action}Response>`` with the request id, or EC2's error document

Every answer carries a fresh uuid4 request id (``<requestId>``/``<RequestID>`` and the
``x-amzn-RequestId`` header botocore reads). Methods other than GET and POST answer 405 and
paths under ``/ec2/`` other than the root 404, both in EC2's error format. Given the API's
request metrics, an EC2 request counts as resource ``ec2`` (action names come from the
client, so they stay out of the labels).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote
from uuid import uuid4

from prometheus_client import Counter, Histogram

from apiserver.accesskeys import CredentialResolver
from apiserver.body import read_request_body
from apiserver.ec2.actions import default_actions
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, ec2_error_from, invalid_parameter
from apiserver.ec2.params import API_VERSION, Params, parse_pairs
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.sigv4 import SignedRequest, verify
from apiserver.ec2.xmlwriter import error_document, response_document
from apiserver.handlers import Resources
from apiserver.local import LocalBackend
from controller.asgi import Answer, Receive, Scope, Send

__all__ = ["EC2_ROOT", "Ec2Routes", "is_ec2_path"]

#: The endpoint clients are configured with (``endpoint_url=…/ec2/``).
EC2_ROOT = "/ec2/"
_XML = b"text/xml;charset=UTF-8"
_FORM = "application/x-www-form-urlencoded"


def is_ec2_path(path: str) -> bool:
    return path == EC2_ROOT.rstrip("/") or path.startswith(EC2_ROOT)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ec2Routes:
    """The ``/ec2/`` ASGI application (the module docstring's pipeline) over the REST API's
    resource operations. Without a credential resolver every signed request is refused
    (``AuthFailure``)."""

    def __init__(
        self,
        resources: Resources,
        credentials: CredentialResolver | None,
        max_body_bytes: int,
        *,
        actions: ActionRegistry | None = None,
        clock: Callable[[], datetime] = _utcnow,
        requests: Counter | None = None,
        duration: Histogram | None = None,
    ) -> None:
        self.resources = resources
        self.credentials = credentials
        self.max_body_bytes = max_body_bytes
        self.actions = actions or default_actions()
        self.clock = clock
        self._requests, self._duration = requests, duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = str(uuid4())
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            if scope["path"] not in (EC2_ROOT, EC2_ROOT.rstrip("/")):
                raise Ec2Error("InvalidRequest", f"the EC2 endpoint is {EC2_ROOT}", 404)
            if scope["method"] not in ("GET", "POST"):
                raise Ec2Error("InvalidRequest", "the EC2 API accepts GET and POST", 405)
            length = next((v for k, v in headers if k == "content-length"), None)
            body = await read_request_body(receive, length, self.max_body_bytes)
            answer = await asyncio.to_thread(self._serve, scope, headers, body, request_id)
        except Exception as exc:
            error = ec2_error_from(exc)
            answer = Answer(
                error.status,
                error_document(error.code, error.message, request_id),
                _XML,
                ((b"x-amzn-requestid", request_id.encode("ascii")),),
            )
        if self._requests is not None:
            self._requests.labels(scope["method"], "ec2", str(answer.code)).inc()
        if self._duration is not None:
            self._duration.labels(scope["method"]).observe(time.perf_counter() - started)
        await answer.send(send)

    def _serve(
        self, scope: Scope, headers: list[tuple[str, str]], body: bytes, request_id: str
    ) -> Answer:
        """Verify, parse and run one request (on a worker thread: actions block on the store)."""
        method: str = scope["method"]
        query = parse_pairs(scope.get("query_string", b""), "query string")
        form: list[tuple[str, str]] = []
        if method == "POST" and body:
            media = next((v for k, v in headers if k == "content-type"), _FORM)
            if media.split(";")[0].strip().lower() != _FORM:
                raise invalid_parameter("Content-Type", f"the body must be {_FORM}")
            form = parse_pairs(body, "request body")
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
        signed = SignedRequest(method, path, query, headers, body)
        verified = verify(signed, self.credentials, self.clock())
        params = Params([*query, *form])
        action = params.require("Action")
        version = params.require("Version")
        if version != API_VERSION:
            raise Ec2Error(
                "NoSuchVersion", f"The API version {version} does not exist; use {API_VERSION}"
            )
        handler = self.actions.handler(action)
        host = signed.header("host") or "{}:{}".format(*scope["server"])
        context = ActionContext(
            request_id=request_id,
            action=action,
            credential=verified.credential,
            region=verified.region,
            endpoint=f"{scope.get('scheme', 'http')}://{host}{EC2_ROOT}",
            backend=LocalBackend(self.resources, verified.credential.user),
            lookups=self.resources.lookups,
        )
        fields = handler(context, params)
        document = response_document(action, request_id, fields)
        return Answer(200, document, _XML, ((b"x-amzn-requestid", request_id.encode("ascii")),))
