"""The BootConfig reconciler: config revisions, enrollment and dynamic slots (DESIGN §11).

Where it sits: registered by :func:`register` on the BootConfig informer, woken also by the
enrollment Secrets (``{bootconfig}-enrollment``), by claims made or freed (``Deps.claims``) and
by the boot agents' heartbeats of claimed slots (``Deps.heartbeats``) — caches beside the
informers. The rendezvous records
are ``Deps.rendezvous``'s; the endpoints agents talk to are the API server's
(``apiserver.rendezvous``), which read what this writes. One pass:

1. revision: ``status.revision`` moves (1 on first sight) whenever the canonical JSON of
   ``spec.config`` and ``spec.parameters`` changes — ``status.configDigest`` is its SHA-256 —
   and not for ``staleAfter`` or ``slots`` edits: agents long-poll on it and re-apply when it
   moves, so it must mean "what you run changed";
2. dynamic (``spec.dynamic``), with the finalizer :data:`FINALIZER` on first:

   - enrollment: the Secret ``{bootconfig}-enrollment`` (entry ``secret``) is created with a
     fresh secret and owned by the BootConfig, unless it exists (a user's: its value is used;
     a missing or empty entry is ``Ready=False``, ``EnrollmentSecretInvalid``). Its digest is
     enrolled (``EnrollmentRecord``), so a claim needs nothing but the secret; when the value
     changes (rotated, Secret re-created) the old digest is unenrolled. No digest is kept in
     status: one of a weak user-made secret could be guessed offline by anyone reading it;
   - claims: every claimed slot whose claimant has not reported within ``staleAfter`` — its
     heartbeat's ``reportedAt``, or its record's ``createdAt`` when it never reported — is
     released (with its record and heartbeat: the seeds' remove_stale) with a ``SlotFreed``
     event; the rest are ``status.claimed`` and ``status.claims``, and the pass comes back at
     the earliest staleness deadline among them. Claims of slots at or above ``spec.slots`` (it was
     lowered) are released too, as lowering a VirtualCluster's replicas removes the highest
     ordinals;
3. deleted, or no longer dynamic: every claim is released and every enrollment of it removed,
   then the finalizer goes (the enrollment Secret, owned, is the garbage collector's).

Heartbeats are not a reason to reconcile on their own: the handler enqueues a BootConfig only
when one of its claims first reports, reports another address, or its heartbeat goes away, so
1,000 agents beating cost no reconciles (the deadline requeue notices the ones that stop).
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta

import structlog

from api_types import Secret
from api_types.boot import new_boot_secret
from api_types.bootconfigs import (
    MAX_LISTED_CLAIMS,
    BootConfig,
    BootConfigClaim,
    BootConfigCondition,
    BootConfigSpec,
)
from api_types.meta import ObjectMeta, OwnerReference, Resource
from api_types.rendezvous import (
    SECRET_KEY,
    EnrollmentRecord,
    Heartbeat,
    enrollment_secret_name,
    secret_digest,
)
from api_types.validation import validate_dns1123_subdomain
from controller.controller import Controller
from controller.errors import AlreadyExistsError, InvalidObjectError
from controller.handler import EnqueueMapped
from controller.passes import ACTOR, Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers.deps import Deps

__all__ = ["FINALIZER", "BootConfigReconciler", "config_digest", "register"]

log = structlog.get_logger(__name__)

#: On dynamic BootConfigs: their claims and enrollment are released before they go.
FINALIZER = "skybroker.io/rendezvous"
READY = BootConfigCondition.READY.value
#: Past a staleness deadline by this much before looking again: the requeue then finds the
#: claim stale instead of a hair early (clock granularity), which would cost a second pass.
_DEADLINE_SLACK_SECONDS = 0.05


def _enrollment_secret() -> str:
    """A fresh enrollment secret that does not start with ``-``: it is handed to agents as a
    command-line argument (``skybroker agent --claim ENDPOINT SECRET``), where a leading ``-``
    reads as a flag."""
    while (secret := new_boot_secret()).startswith("-"):
        pass
    return secret


def config_digest(spec: BootConfigSpec) -> str:
    """SHA-256 (hex) of the canonical JSON of what an agent runs: config and parameters."""
    canonical = json.dumps(
        {"config": spec.config, "parameters": spec.parameters},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _EnrollmentProblem(Exception):
    """The enrollment cannot be made as the spec asks: Ready=False with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BootConfigReconciler:
    """Keeps each BootConfig's revision, enrollment and claims (see the module for a pass)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._bootconfigs = deps.manager.informer(BootConfig)
        self._secrets = deps.manager.informer(Secret)
        self._rendezvous = deps.rendezvous
        self._heartbeats = deps.heartbeats
        self._claim_cache = deps.claims
        self._controller: Controller | None = None
        self._lock = threading.Lock()
        #: (namespace, uuid) of a claimant → (its BootConfig, the address it last reported):
        #: what the heartbeat handler compares a beat with to tell a change from a beat.
        self._beats: dict[tuple[str, str], tuple[str, str | None]] = {}

    def attach(self, controller: Controller) -> None:
        """The controller whose queue the heartbeat handler feeds."""
        self._controller = controller
        self._heartbeats.add_handler(self.on_heartbeat)
        self._claim_cache.add_handler(self.on_claim)

    # --- what wakes a BootConfig besides itself -------------------------------------------

    def of_secret(self, obj: Resource) -> list[Request]:
        """The BootConfig an enrollment Secret is named for (created, changed, deleted)."""
        bootconfig = obj.metadata.name.removesuffix(enrollment_secret_name(""))
        if bootconfig == obj.metadata.name or not bootconfig:
            return []
        return [Request.of(BootConfig.PLURAL, obj.metadata.namespace, bootconfig)]

    def on_claim(self, namespace: str, bootconfig: str, slot: int, uuid: str | None) -> None:
        """A slot claimed (by the API server) or freed: its BootConfig counts again."""
        self._enqueue(namespace, bootconfig)

    def _enqueue(self, namespace: str, bootconfig: str) -> None:
        if self._controller is not None:
            self._controller.enqueue(Request.of(BootConfig.PLURAL, namespace, bootconfig))

    def on_heartbeat(self, namespace: str, uuid: str, beat: Heartbeat | None) -> None:
        """Enqueue the BootConfig of a claimed slot when what its status lists would change:
        a claimant's first report, a new address, or its heartbeat gone — not every beat."""
        with self._lock:
            if beat is None:
                seen = self._beats.pop((namespace, uuid), None)
                bootconfig = seen[0] if seen is not None else None
            elif beat.slot is None:
                return  # an Instance's agent: the Instance reconciler's
            else:
                now = (beat.boot_config, beat.address)
                changed = self._beats.get((namespace, uuid)) != now
                self._beats[(namespace, uuid)] = now
                bootconfig = beat.boot_config if changed else None
        if bootconfig is not None:
            self._enqueue(namespace, bootconfig)

    # --- one pass -------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result:
        bc = self._bootconfigs.get(request.key)
        if bc is None:
            return Result()
        if bc.metadata.deletion_timestamp is not None:
            if FINALIZER in bc.metadata.finalizers:
                with Pass(self._deps.manager, bc) as pass_:
                    self._retire(pass_, "deleted")
                    pass_.remove_finalizer(FINALIZER)
            return Result()
        with Pass(self._deps.manager, bc) as pass_:
            if bc.spec.dynamic:
                pass_.add_finalizer(FINALIZER)  # before anything is enrolled or claimable
            elif FINALIZER in bc.metadata.finalizers or bc.status.enrollment_secret:
                self._retire(pass_, "no longer dynamic")
                pass_.remove_finalizer(FINALIZER)
            self._revision(pass_)
            delay = None
            problem = None
            if pass_.obj.spec.dynamic:
                try:
                    self._enroll(pass_)
                except _EnrollmentProblem as exc:
                    problem = exc
                delay = self._claims(pass_)
            else:
                status = pass_.obj.status
                status.claimed, status.claims, status.enrollment_secret = 0, [], None
            self._ready(pass_, problem)
            pass_.observe_generation()
            return Result(requeue_after=delay)

    def _revision(self, pass_: Pass[BootConfig]) -> None:
        status = pass_.obj.status
        digest = config_digest(pass_.obj.spec)
        if status.config_digest == digest and status.revision is not None:
            return
        status.revision = (status.revision or 0) + 1
        status.config_digest = digest
        log.info("config revision moved", revision=status.revision)

    def _ready(self, pass_: Pass[BootConfig], problem: _EnrollmentProblem | None) -> None:
        status = pass_.obj.status
        if problem is not None:
            if pass_.condition(READY, False, problem.reason, problem.message):
                pass_.event("Warning", problem.reason, problem.message)
            return
        message = f"serving revision {status.revision}"
        if pass_.obj.spec.dynamic:
            message += f"; claims present the entry '{SECRET_KEY}' of Secret "
            message += f"{status.enrollment_secret}"
        pass_.condition(READY, True, "Serving", message)

    # --- enrollment -----------------------------------------------------------------------

    def _enroll(self, pass_: Pass[BootConfig]) -> None:
        """Enroll the current enrollment secret (creating it if absent), unenroll older ones;
        :class:`_EnrollmentProblem` when the Secret cannot be used."""
        bc = pass_.obj
        namespace, name = bc.metadata.namespace or "", bc.metadata.name
        secret_name = enrollment_secret_name(name)
        bc.status.enrollment_secret = secret_name
        value = self._enrollment_value(pass_, secret_name)
        if value is None:
            self._unenroll_all(namespace, name)
            raise _EnrollmentProblem(
                "EnrollmentSecretInvalid",
                f"Secret {secret_name}: entry '{SECRET_KEY}' is missing, empty or not UTF-8 text",
            )
        digest = secret_digest(value)
        wanted = EnrollmentRecord(namespace=namespace, boot_config=name)
        enrolled = self._rendezvous.enrollment(digest)
        if enrolled == wanted:
            return
        if enrolled is not None:
            # Another BootConfig enrolled the same value first (a user-made Secret copied):
            # taking it over would flip the two back and forth. Which one is not said here.
            self._unenroll_all(namespace, name)
            raise _EnrollmentProblem(
                "EnrollmentSecretInUse",
                f"Secret {secret_name}: another BootConfig is enrolled with the same "
                f"'{SECRET_KEY}'; give this one a value of its own",
            )
        self._rendezvous.enroll(digest, wanted)
        old = [d for d in self._rendezvous.enrollments_of(namespace, name) if d != digest]
        for stale in old:
            self._rendezvous.unenroll(stale)
        what = "rotated" if old else "enrolled"
        log.info(f"enrollment secret {what}", secret=secret_name)
        pass_.event(
            "Normal",
            "Enrolled",
            f"claims take the enrollment secret of Secret {secret_name} ({what})",
        )

    def _enrollment_value(self, pass_: Pass[BootConfig], secret_name: str) -> str | None:
        """The enrollment secret's value (the Secret created first if absent); None when the
        entry is missing, empty or not text. Never logged."""
        bc = pass_.obj
        key = ObjectKey(Secret.PLURAL, bc.metadata.namespace, secret_name)
        secret = self._secrets.get(key)
        if secret is None:
            secret = self._create_secret(pass_, secret_name)
        raw = secret.decoded().get(SECRET_KEY)
        if not raw:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _create_secret(self, pass_: Pass[BootConfig], secret_name: str) -> Secret:
        bc = pass_.obj
        try:
            validate_dns1123_subdomain(secret_name)
        except ValueError as exc:
            raise _EnrollmentProblem(
                "EnrollmentSecretInvalid",
                f"cannot create Secret {secret_name[:64]}…: its name {exc}; "
                "shorten the BootConfig's name",
            ) from None
        secret = Secret(
            metadata=ObjectMeta(
                name=secret_name,
                namespace=bc.metadata.namespace,
                owner_references=[
                    OwnerReference(
                        kind=BootConfig.KIND,
                        name=bc.metadata.name,
                        uid=str(bc.metadata.uid),
                        controller=True,
                        block_owner_deletion=True,
                    )
                ],
            ),
            string_data={SECRET_KEY: _enrollment_secret()},
        ).folded()
        try:
            created = self._deps.store.create(secret, actor=ACTOR)
        except AlreadyExistsError:
            # Made meanwhile (by a user, or this pass's cache was behind): that one counts.
            return self._deps.store.get(Secret, secret_name, bc.metadata.namespace)
        except InvalidObjectError:
            # Not quoted: a Secret's validation error may carry its value.
            raise _EnrollmentProblem(
                "EnrollmentSecretInvalid", f"cannot create Secret {secret_name}: refused"
            ) from None
        pass_.event("Normal", "EnrollmentSecretCreated", f"created Secret {secret_name}")
        return created

    def _unenroll_all(self, namespace: str, name: str) -> None:
        for digest in self._rendezvous.enrollments_of(namespace, name):
            self._rendezvous.unenroll(digest)

    # --- claims ---------------------------------------------------------------------------

    def _claims(self, pass_: Pass[BootConfig]) -> float | None:
        """Release stale claims, list the rest in status; seconds until the earliest of them
        goes stale (None: no claims)."""
        bc = pass_.obj
        namespace, name = bc.metadata.namespace or "", bc.metadata.name
        stale_after = timedelta(seconds=bc.spec.stale_after_seconds)
        now = self._deps.clock.wall()
        kept: list[BootConfigClaim] = []
        earliest: datetime | None = None
        for slot, uuid in sorted(self._rendezvous.claims(namespace, name).items()):
            if slot >= bc.spec.slots:
                self._free(pass_, slot, uuid, f"spec.slots is {bc.spec.slots} now")
                continue
            beat = self._heartbeats.get(namespace, uuid)
            last = beat.reported_at if beat is not None else self._claimed_at(uuid)
            if last is None or now - last >= stale_after:
                since = "its last report" if beat is not None else "its claim"
                why = f"agent did not report within {bc.spec.stale_after} of {since}"
                self._free(pass_, slot, uuid, why)
                continue
            deadline = last + stale_after
            earliest = deadline if earliest is None else min(earliest, deadline)
            kept.append(
                BootConfigClaim(
                    slot=slot,
                    uuid=uuid,
                    address=beat.address if beat is not None else None,
                    last_report=beat.reported_at if beat is not None else None,
                )
            )
        bc.status.claimed = len(kept)
        bc.status.claims = kept[:MAX_LISTED_CLAIMS]
        if earliest is None:
            return None
        return max(0.0, (earliest - now).total_seconds()) + _DEADLINE_SLACK_SECONDS

    def _claimed_at(self, uuid: str) -> datetime | None:
        """When a claim that never reported was made (its record's ``createdAt``); None for a
        claim without a record, which can never authenticate: stale at once."""
        record = self._rendezvous.record(uuid)
        return record.created_at if record is not None else None

    def _free(self, pass_: Pass[BootConfig], slot: int, uuid: str, why: str) -> None:
        """Release a claim (with its record and heartbeat), saying why in a SlotFreed event."""
        bc = pass_.obj
        namespace, name = bc.metadata.namespace or "", bc.metadata.name
        if not self._rendezvous.release(namespace, name, slot, uuid):
            return  # claimed by someone else meanwhile: the next pass sees the new claimant
        log.info("claim released", slot=slot, uuid=uuid, why=why)
        pass_.event("Normal", "SlotFreed", f"slot {slot} of agent {uuid} freed: {why}")

    def _retire(self, pass_: Pass[BootConfig], why: str) -> None:
        """Unenroll (no new claims), then release every claim with its record and heartbeat."""
        bc = pass_.obj
        namespace, name = bc.metadata.namespace or "", bc.metadata.name
        self._unenroll_all(namespace, name)
        released = 0
        for slot, uuid in sorted(self._rendezvous.claims(namespace, name).items()):
            released += self._rendezvous.release(namespace, name, slot, uuid)
        if released:
            log.info("claims released", released=released, why=why)
            pass_.event("Normal", "ClaimsReleased", f"released {released} claimed slot(s): {why}")


def register(deps: Deps) -> None:
    reconciler = BootConfigReconciler(deps)
    controller = deps.manager.add_controller(
        BootConfig,
        reconciler,
        watches=[(Secret, EnqueueMapped(reconciler.of_secret))],
    )
    reconciler.attach(controller)
