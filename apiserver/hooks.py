"""The webhook receiver: a git host's push notification asks a GitSource to sync at once.

Where it sits: ``app`` hands it every path under ``/hooks/``; outside the resource pipeline,
because the sender (GitHub) cannot present a bearer token — the delivery authenticates itself
with a signature instead (DESIGN §9)::

    POST /hooks/gitsources/{namespace}/{name}
        X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>

The key is the ``webhookSecret`` entry of the Secret named by the GitSource's
``spec.webhookSecretRef`` (read through the store, which decrypts Secrets). A valid delivery
sets the GitSource's ``gitops.skybroker.io/requested-at`` annotation to the time it arrived
(a CAS metadata update as the actor ``webhook``, retried on conflict) and is answered 202 with
``{"kind": "GitSource", "namespace", "name", "requestedAt"}``; the reconciler syncs and echoes
the value into ``status.lastHandledRequest``. The body is never parsed: whatever event GitHub
sends (push, ping, …) only asks for a sync, which costs one ref lookup when nothing changed.

Every refusal of a delivery is the same 401 ``Status`` with the same message, and writes
nothing: a bad or missing signature, a GitSource without ``webhookSecretRef``, a missing
Secret or entry — and an unknown GitSource or namespace too. GitHub does nothing different on
a 404 and a 401 (it records the answer and does not retry), so a distinct 404 would help no
sender and would tell anyone on the network which tenants and GitSources exist. Other answers:
413 for a body over the API's limit (read before anything else, like every endpoint), 405 for
a method other than POST, 404 for a path under ``/hooks/`` that is not a GitSource's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from api_types.gitops import (
    REQUESTED_AT_ANNOTATION,
    SIGNATURE_HEADER,
    WEBHOOK_SECRET_KEY,
    GitSource,
    verify_github_signature,
)
from api_types.tenancy import Secret
from apiserver.body import read_request_body
from apiserver.dispatch import encode, failure
from apiserver.status import ApiError, error_from
from controller.asgi import Answer, Receive, Scope, Send, request_headers
from controller.errors import ConflictError, InvalidObjectError, NotFoundError
from controller.store.objects import Store

__all__ = ["HOOKS_ROOT", "WEBHOOK_ACTOR", "WebhookRoutes"]

#: Every path below this one is a webhook's.
HOOKS_ROOT = "/hooks/"
#: The actor a webhook's write is recorded as.
WEBHOOK_ACTOR = "webhook"
_GITSOURCES = "gitsources"
#: Conflicting writers (the reconciler's status, a user's edit) are rare and brief.
_CONFLICT_RETRIES = 5


def _refused() -> ApiError:
    """The one answer to a delivery that is not accepted, whatever the reason."""
    return ApiError(401, "Unauthorized", "the webhook delivery is not authorized")


def _target(path: str) -> tuple[str, str]:
    """(namespace, name) of ``/hooks/gitsources/{namespace}/{name}``; 404 for another path."""
    segments = path[len(HOOKS_ROOT) :].split("/")
    if len(segments) != 3 or segments[0] != _GITSOURCES or not all(segments[1:]):
        raise ApiError(404, "NotFound", "404: Not Found")
    return segments[1], segments[2]


class WebhookRoutes:
    """The ``/hooks/`` ASGI application (the module docstring's contract) over one store."""

    def __init__(self, store: Store, max_body_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        try:
            namespace, name = _target(scope["path"])
            if scope["method"] != "POST":
                raise ApiError(405, "MethodNotAllowed", "a webhook only accepts POST")
            length = headers.get("content-length")
            body = await read_request_body(receive, length, self.max_body_bytes)
            answer = await asyncio.to_thread(self._deliver, namespace, name, body, headers)
        except Exception as exc:
            answer = failure(error_from(exc))
        await answer.send(send)

    def _deliver(
        self, namespace: str, name: str, body: bytes, headers: Mapping[str, str]
    ) -> Answer:
        """Check the delivery's signature, then request the sync (on a worker thread)."""
        secret = self._webhook_secret(namespace, name)
        if not verify_github_signature(secret, body, headers.get(SIGNATURE_HEADER.lower())):
            raise _refused()
        requested_at = self._request_sync(namespace, name)
        accepted = {
            "kind": GitSource.KIND,
            "namespace": namespace,
            "name": name,
            "requestedAt": requested_at,
        }
        return Answer(202, encode(accepted))

    def _webhook_secret(self, namespace: str, name: str) -> bytes:
        """The key of GitSource ``namespace/name``'s deliveries; the same 401 if it has none."""
        try:
            source = self.store.get(GitSource, name, namespace)
            reference = source.spec.webhook_secret_ref
            if reference is None:
                raise _refused()
            secret = self.store.get(Secret, reference.name, namespace)
        except (NotFoundError, InvalidObjectError):  # a stored value that does not decode too
            raise _refused() from None
        return secret.decoded().get(WEBHOOK_SECRET_KEY, b"")

    def _request_sync(self, namespace: str, name: str) -> str:
        """Set the requested-at annotation by CAS, re-reading on conflict; the value written."""
        requested_at = datetime.now(UTC).isoformat()
        for _ in range(_CONFLICT_RETRIES - 1):
            try:
                return self._annotate(namespace, name, requested_at)
            except ConflictError:
                continue
        return self._annotate(namespace, name, requested_at)

    def _annotate(self, namespace: str, name: str, requested_at: str) -> str:
        source = self.store.get(GitSource, name, namespace)
        source.metadata.annotations[REQUESTED_AT_ANNOTATION] = requested_at
        self.store.update(source, actor=WEBHOOK_ACTOR)
        return requested_at
