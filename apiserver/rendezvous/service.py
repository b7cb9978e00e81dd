"""The rendezvous operations, synchronously: what each endpoint reads and writes in etcd.

Where it sits: under ``routes``, which calls every method here off the event loop
(``asyncio.to_thread``: each blocks on etcd), and over ``controller.rendezvous.RendezvousStore``
(every rendezvous key is read and written there), the API server's BootConfig informer and its
watched copy of the boot records (``controller.rendezvous.RecordCache``).

- :meth:`RendezvousService.authenticate`: the uuid's record from the record cache (from etcd
  when the cache lacks it: registered a moment ago, or unknown), then ``bearer``'s
  constant-time check; a fetch reads the BootConfig from etcd
  (:meth:`~RendezvousService.current_boot_config`: the cache may lag), a report from the
  informer's cache (:meth:`~RendezvousService.boot_config`; etcd only for one it lacks);
- :meth:`~RendezvousService.config`: the BootConfig's config and parameters overlaid with the
  agent's last reported ones (one read of its heartbeat);
- :meth:`~RendezvousService.report`: exactly one etcd write, the heartbeat
  (``RendezvousStore.beat``); nothing is written to the Instance — the controllers turn
  heartbeats into ``status.agent`` on transitions only;
- :meth:`~RendezvousService.claim`: the enrollment secret's record, its Secret's current value
  (compared in constant time), then ``RendezvousStore.claim`` of the next free slot for a new
  uuid and secret.

A BootConfig that is gone answers 404 (:func:`config_gone`): the agent reads it as "my config
was deleted"; an unknown uuid or a wrong secret is ``bearer.refused`` (401).
"""

from __future__ import annotations

import hmac
import re
import uuid as uuids
from datetime import UTC, datetime

import pydantic
import structlog

from api_types import registry
from api_types.boot import new_boot_secret
from api_types.bootconfigs import BootConfig
from api_types.rendezvous import (
    SECRET_KEY,
    AgentReport,
    ClaimAnswer,
    Heartbeat,
    RendezvousConfig,
    RendezvousRecord,
    enrollment_secret_name,
    heartbeat_seconds,
    secret_digest,
)
from api_types.tenancy import Secret
from apiserver.body import decode_body
from apiserver.rendezvous.bearer import matches, refused
from apiserver.rendezvous.waiters import boot_config_key
from apiserver.status import ApiError
from controller.cache import Informer
from controller.errors import FieldCause, InvalidObjectError, NotFoundError
from controller.rendezvous import RecordCache, RendezvousStore
from controller.store.objects import Store

__all__ = ["RendezvousService", "config_gone", "is_uuid", "parse_report"]

log = structlog.get_logger(__name__)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a canonical uuid (the only ones ever registered)."""
    return _UUID.fullmatch(value) is not None


def config_gone() -> ApiError:
    """The answer for a uuid whose BootConfig has been deleted."""
    return ApiError(404, "NotFound", "the BootConfig of this uuid no longer exists")


def parse_report(body: bytes, content_type: str | None) -> AgentReport:
    """The report in ``body``; 400/415 for a body that does not decode, 422 naming every bad
    field (the messages never quote the values sent)."""
    wire = decode_body(body, content_type)
    try:
        return AgentReport.model_validate(wire)
    except pydantic.ValidationError as exc:
        causes = tuple(FieldCause(field, message) for field, message in registry.field_errors(exc))
        raise ApiError(422, "Invalid", "the agent report is invalid", causes) from None


class RendezvousService:
    """The endpoints' reads and writes over one store (blocking: call off the event loop)."""

    def __init__(
        self, store: Store, boot_configs: Informer[BootConfig], cached: RecordCache
    ) -> None:
        self.store = store
        self.records = RendezvousStore(store)
        self.boot_configs = boot_configs
        self.cached = cached

    # --- who is asking --------------------------------------------------------------------

    def authenticate(self, uuid: str, secret: str) -> RendezvousRecord:
        """The record of ``uuid`` if ``secret`` is its secret; else the one 401."""
        record = None
        if is_uuid(uuid):
            # A record the cache lacks may have been registered a moment ago: etcd decides.
            record = self.cached.get(uuid) or self.records.record(uuid)
        # An unknown uuid costs the same hash and compare as a wrong secret.
        accepted = matches(secret, None if record is None else record.secret_sha256)
        if record is None or not accepted:
            raise refused()
        return record

    # --- what it gets ---------------------------------------------------------------------

    def lookup(self, uuid: str, secret: str) -> tuple[RendezvousRecord, BootConfig]:
        """A fetch's first step: :meth:`authenticate`, then :meth:`current_boot_config`."""
        record = self.authenticate(uuid, secret)
        return record, self.current_boot_config(record)

    def boot_config(self, record: RendezvousRecord) -> BootConfig:
        """The record's BootConfig (read-only), from the cache or else etcd; 404 when gone.
        For what may lag a little (a report's ``staleAfter``)."""
        cached = self.boot_configs.peek(boot_config_key(record.namespace, record.boot_config))
        return cached if cached is not None else self.current_boot_config(record)

    def current_boot_config(self, record: RendezvousRecord) -> BootConfig:
        """The record's BootConfig as etcd has it now; 404 when gone. A fetch starts from it:
        the cache may lag, and an agent must never be handed a revision older than one it
        was already given."""
        try:
            return self.store.get(BootConfig, record.boot_config, record.namespace)
        except NotFoundError:
            raise config_gone() from None

    def cached_boot_config(self, record: RendezvousRecord) -> BootConfig | None:
        """The record's BootConfig as the cache has it (no etcd: safe on the event loop)."""
        return self.boot_configs.peek(boot_config_key(record.namespace, record.boot_config))

    def config(self, uuid: str, record: RendezvousRecord, boot: BootConfig) -> RendezvousConfig:
        """What ``uuid``'s agent applies: ``boot``'s config, its parameters overlaid with the
        agent's last reported ones."""
        beat = self.records.heartbeat(record.namespace, uuid)
        parameters = {**boot.spec.parameters, **(beat.parameters if beat is not None else {})}
        return RendezvousConfig(
            uuid=uuid,
            config=boot.spec.config,
            parameters=parameters,
            revision=boot.status.revision or 0,
            heartbeat_seconds=heartbeat_seconds(boot.spec.stale_after_seconds),
        )

    # --- what it says ---------------------------------------------------------------------

    def report(self, uuid: str, secret: str, body: bytes, content_type: str | None) -> None:
        """Check the secret, then the report, then write it as the uuid's heartbeat."""
        record = self.authenticate(uuid, secret)
        report = parse_report(body, content_type)
        boot = self.boot_config(record)
        heartbeat = Heartbeat(
            uuid=uuid,
            boot_config=record.boot_config,
            instance=record.instance,
            slot=record.slot,
            status=report.status,
            address=report.address,
            parameters=report.parameters,
            message=report.message,
            config_revision=report.config_revision,
            reported_at=datetime.now(UTC),
        )
        self.records.beat(record.namespace, heartbeat, boot.spec.stale_after_seconds)

    # --- dynamic claims -------------------------------------------------------------------

    def claim(self, secret: str, endpoint: str) -> ClaimAnswer:
        """A new uuid and secret bound to the next free slot of the dynamic BootConfig whose
        enrollment secret ``secret`` is; 401 for anything else, 409 when no slot is free."""
        enrollment = self.records.enrollment(secret_digest(secret)) if secret else None
        if enrollment is None:
            raise refused()
        namespace, name = enrollment.namespace, enrollment.boot_config
        try:
            stored = self.store.get(Secret, enrollment_secret_name(name), namespace)
            boot = self.store.get(BootConfig, name, namespace)
        except (NotFoundError, InvalidObjectError):
            raise refused() from None
        value = stored.decoded().get(SECRET_KEY, b"")
        # The record is found by digest; the Secret's current value decides (it may have been
        # rotated since the record was written).
        if not hmac.compare_digest(value, secret.encode("utf-8")) or not boot.spec.dynamic:
            raise refused()
        claimant, claimant_secret = str(uuids.uuid4()), new_boot_secret()
        record = RendezvousRecord(
            namespace=namespace,
            boot_config=name,
            secret_sha256=secret_digest(claimant_secret),
            created_at=datetime.now(UTC),
        )
        slot = self.records.claim(boot.spec.slots, claimant, record)
        if slot is None:
            raise ApiError(
                409,
                "Conflict",
                f"all {boot.spec.slots} slots of BootConfig {namespace}/{name} are claimed",
            )
        log.info("slot claimed", uuid=claimant, namespace=namespace, bootconfig=name, slot=slot)
        return ClaimAnswer(uuid=claimant, secret=claimant_secret, endpoint=endpoint)
