"""The rendezvous protocol's wire shapes and the records kept for it in etcd (DESIGN §11).

Where it sits: pure data beside the kinds. ``apiserver.rendezvous`` serves the endpoints with
these bodies, ``skybroker agent`` speaks them (as plain JSON: it imports no pydantic), and
``controller.rendezvous`` stores the records:

- ``GET /rendezvous/v1/configs/{uuid}`` answers :class:`RendezvousConfig`;
- ``PUT /rendezvous/v1/configs/{uuid}/report`` takes :class:`AgentReport` (204); every report is
  also a heartbeat, stored as :class:`Heartbeat` at ``{prefix}/heartbeats/{namespace}/{uuid}``
  under a lease (never written to the Instance);
- ``POST /rendezvous/v1/claims`` (bearer: a dynamic BootConfig's enrollment secret) answers
  :class:`ClaimAnswer` for the next free slot, 409 when none is left.

Records, none of which holds a secret in the clear (only :func:`secret_digest`):

- :class:`RendezvousRecord` at ``{prefix}/rendezvous/records/{uuid}``: whom a uuid belongs to
  (the Instance it was pre-registered for, or the dynamic slot it claimed) and the digest of
  its bearer secret — how the endpoints find a uuid's namespace and check its secret with one
  read. The secret itself is in a Secret (:func:`boot_secret_name`, owned by the Instance).
- :class:`EnrollmentRecord` at ``{prefix}/rendezvous/enrollments/{digest}``: the dynamic
  BootConfig whose enrollment secret (the Secret ``{bootconfig}-enrollment``, entry
  :data:`SECRET_KEY`) has that digest, so a claim needs nothing but the secret;
- claimed slots at ``{prefix}/rendezvous/claims/{namespace}/{bootconfig}/{slot}`` (value: the
  claimant's uuid), created only if absent, so two claimants never get one slot.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import Field, StrictInt, StrictStr

from api_types.bootconfigs import ParameterMap
from api_types.common import NonNegativeInt, ObjectName
from api_types.meta import WireModel

__all__ = [
    "API_PREFIX",
    "BOOT_SECRET_PREFIX",
    "INSTANCE_LABEL",
    "MAX_ADDRESS_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MAX_POLL_SECONDS",
    "SECRET_KEY",
    "AgentReport",
    "ClaimAnswer",
    "EnrollmentRecord",
    "Heartbeat",
    "RendezvousConfig",
    "RendezvousRecord",
    "ReportStatus",
    "boot_secret_name",
    "enrollment_secret_name",
    "heartbeat_seconds",
    "secret_digest",
]

#: The rendezvous endpoints live under this path of the API server.
API_PREFIX = "/rendezvous/v1"
#: The entry of a boot Secret (the Instance's bearer secret) and of an enrollment Secret.
SECRET_KEY = "secret"
#: Boot Secrets are named this plus the Instance's uid: unique, and never a user's name.
BOOT_SECRET_PREFIX = "skybroker-boot-"
#: On a boot Secret: the name of the Instance it belongs to.
INSTANCE_LABEL = "skybroker.io/instance"
MAX_ADDRESS_LENGTH = 255
MAX_MESSAGE_LENGTH = 1024
#: The longest long-poll a config fetch may ask for (``timeoutSeconds``).
MAX_POLL_SECONDS = 300


def boot_secret_name(uid: str) -> str:
    """The Secret holding an Instance's boot secret (owned by the Instance)."""
    return f"{BOOT_SECRET_PREFIX}{uid}"


def enrollment_secret_name(bootconfig: str) -> str:
    """The Secret holding a dynamic BootConfig's enrollment secret (DESIGN §11's name)."""
    return f"{bootconfig}-enrollment"


def secret_digest(secret: str) -> str:
    """SHA-256 of a bearer secret, hex: what records keep instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def heartbeat_seconds(stale_after_seconds: int) -> int:
    """How often agents report: three beats within ``staleAfter``, so one lost request never
    makes an agent stale."""
    return max(1, stale_after_seconds // 3)


class ReportStatus(StrEnum):
    """What an agent reports about applying its config."""

    CONFIGURED = "Configured"
    FAILED = "Failed"


class RendezvousConfig(WireModel):
    """``GET /rendezvous/v1/configs/{uuid}``: what the agent applies, and how often to report."""

    uuid: StrictStr
    config: StrictStr = Field(description="The BootConfig's spec.config, verbatim.")
    parameters: ParameterMap = Field(
        description="The BootConfig's spec.parameters, overlaid with what this agent reported."
    )
    revision: NonNegativeInt = Field(description="The BootConfig's status.revision.")
    heartbeat_seconds: StrictInt = Field(description="Report at least this often.")


class AgentReport(WireModel):
    """``PUT /rendezvous/v1/configs/{uuid}/report``: the seeds' update_cache, and a heartbeat."""

    status: ReportStatus = Field(description="Configured or Failed.")
    address: StrictStr | None = Field(
        None, max_length=MAX_ADDRESS_LENGTH, description="The agent's address (IP or host)."
    )
    parameters: ParameterMap = Field(
        default_factory=dict, description="Parameters the agent reports (its handler's)."
    )
    message: StrictStr | None = Field(
        None, max_length=MAX_MESSAGE_LENGTH, description="Why it failed, or anything to say."
    )
    config_revision: NonNegativeInt | None = Field(
        None,
        description="The config revision the agent applied (skybroker's agent sends it; absent, "
        "the Instance keeps the revision it had).",
    )


class ClaimAnswer(WireModel):
    """``POST /rendezvous/v1/claims``: a fresh identity bound to one slot."""

    uuid: StrictStr
    secret: StrictStr
    endpoint: StrictStr


class RendezvousRecord(WireModel):
    """Whom a uuid belongs to and the digest of its bearer secret."""

    namespace: ObjectName
    boot_config: ObjectName
    instance: ObjectName | None = Field(None, description="Pre-registered for this Instance.")
    slot: NonNegativeInt | None = Field(None, description="Or: holds this dynamic slot.")
    secret_sha256: StrictStr
    created_at: datetime


class EnrollmentRecord(WireModel):
    """The dynamic BootConfig an enrollment secret's digest belongs to."""

    namespace: ObjectName
    boot_config: ObjectName


class Heartbeat(WireModel):
    """An agent's last report (leased: etcd drops it some time after ``staleAfter``)."""

    uuid: StrictStr
    boot_config: ObjectName
    instance: ObjectName | None = None
    slot: NonNegativeInt | None = None
    status: ReportStatus
    address: StrictStr | None = None
    parameters: ParameterMap = Field(default_factory=dict)
    message: StrictStr | None = None
    config_revision: NonNegativeInt | None = None
    reported_at: datetime
