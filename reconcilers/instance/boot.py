"""Pre-registration of an Instance with a boot agent (DESIGN §11, the seeds' pre_register/remove).

Where it sits: the Instance reconciler calls :meth:`BootRegistrar.pre_register` for an Instance
with ``spec.bootConfigRef`` once it is placed and its dependencies exist, just before
``cloud.CloudSteps.converge`` creates it, and :meth:`BootRegistrar.forget` on every pass of
its finalizer. ``reconcilers.instance.agent`` takes over from the agent's first report.

Pre-registration, in this order, each step durable before the next and all before the create
call (whose request then carries the boot string as its user data):

1. the BootConfig must exist (else ``Ready=False`` ``BootConfigNotFound``, a Warning event once,
   and a wait that a BootConfig created under that name ends: :meth:`users_of_bootconfig`), and
   the controller must know the rendezvous URL (``--rendezvous-url``; else
   ``RendezvousURLNotSet``);
2. ``status.agent`` = Booting with ``AgentReady=False`` (``Booting``) and the Instance's
   finalizer are saved, so nothing below is made for an Instance that could go without
   :meth:`forget` running;
3. the Secret ``skybroker-boot-{uid}`` (owned by the Instance: garbage collected after it,
   labelled ``skybroker.io/instance``) holds the boot secret in its entry ``secret``; one that
   exists is reused, so a create retried after a crash or a conflict sends the same boot string,
   and a replacement machine boots with the same one and reports for the same uuid;
4. the uuid's :class:`~api_types.rendezvous.RendezvousRecord` (namespace, BootConfig, Instance,
   the secret's SHA-256) is written unless it already says exactly that.

The secret itself goes only into that Secret and the create request: never into the Instance,
an event, a log line or a condition.
"""

from __future__ import annotations

from api_types import BootConfig, Instance, Secret
from api_types.boot import format_boot_string, new_boot_secret
from api_types.compute import AgentState, AgentStatus
from api_types.meta import ObjectMeta, OwnerReference, Resource
from api_types.rendezvous import (
    INSTANCE_LABEL,
    SECRET_KEY,
    RendezvousRecord,
    boot_secret_name,
    secret_digest,
)
from controller.errors import AlreadyExistsError, NotFoundError, TransientError
from controller.passes import ACTOR, Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers._common import namespaced_key, shared_index
from reconcilers.deps import Deps

__all__ = [
    "AGENT_READY",
    "BOOT_WAIT_SECONDS",
    "INSTANCES_BY_BOOTCONFIG",
    "BootRegistrar",
]

#: The condition saying whether the boot agent has configured the instance.
AGENT_READY = "AgentReady"
#: Instance index: ``namespace/bootconfig`` of ``spec.bootConfigRef``.
INSTANCES_BY_BOOTCONFIG = "bootConfigRef"
#: Waiting for a BootConfig (a new one wakes the instance at once) or for a fixed controller.
BOOT_WAIT_SECONDS = 10.0


def _bootconfig_ref(instance: Instance) -> list[str]:
    ref = instance.spec.boot_config_ref
    return [] if ref is None else [namespaced_key(instance.metadata.namespace, ref)]


class BootRegistrar:
    """Pre-registers Instances with a ``bootConfigRef`` and forgets them when they go."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._instances = deps.manager.informer(Instance)
        self._bootconfigs = deps.manager.informer(BootConfig)
        shared_index(self._instances, INSTANCES_BY_BOOTCONFIG, _bootconfig_ref)

    def users_of_bootconfig(self, obj: Resource) -> list[Request]:
        """Instances naming this BootConfig: one created ends their wait, a changed
        ``staleAfter`` moves their staleness deadline."""
        users = self._instances.by_index(
            INSTANCES_BY_BOOTCONFIG, namespaced_key(obj.metadata.namespace, obj.metadata.name)
        )
        return [
            Request.of(Instance.PLURAL, user.metadata.namespace, user.metadata.name)
            for user in users
        ]

    def bootconfig(self, instance: Instance) -> BootConfig | None:
        ref = instance.spec.boot_config_ref
        if ref is None:
            return None
        return self._bootconfigs.peek(
            ObjectKey(BootConfig.PLURAL, instance.metadata.namespace, ref)
        )

    # --- pre-registration -----------------------------------------------------------------

    def pre_register(self, pass_: Pass[Instance]) -> str | Result:
        """The boot string to create the instance with (its user data), everything it needs
        registered and durable; or a Result while it has to wait."""
        instance = pass_.obj
        namespace = instance.metadata.namespace or ""
        ref = instance.spec.boot_config_ref
        assert ref is not None
        url = self._deps.rendezvous_url
        if url is None:
            return self._wait(
                pass_,
                "RendezvousURLNotSet",
                f"BootConfig {ref} needs a boot string, but the controller runs without "
                "--rendezvous-url: set it (skybroker controller --rendezvous-url URL)",
            )
        if self.bootconfig(instance) is None:
            return self._wait(
                pass_, "BootConfigNotFound", f"BootConfig {ref} not found in namespace {namespace}"
            )
        if instance.status.agent is None:
            instance.status.agent = AgentStatus(
                state=AgentState.BOOTING, last_transition_time=self._deps.clock.wall()
            )
            pass_.condition(AGENT_READY, False, "Booting", "waiting for the agent's first report")
            pass_.save()  # with the finalizer: forget() will run for what is registered below
            instance = pass_.obj
        secret = self._secret(pass_)
        if isinstance(secret, Result):
            return secret
        uid = pass_.uid
        wanted = RendezvousRecord(
            namespace=namespace,
            boot_config=ref,
            instance=instance.metadata.name,
            secret_sha256=secret_digest(secret),
            created_at=self._deps.clock.wall(),
        )
        known = self._deps.rendezvous.record(uid)
        if known is None or known.model_copy(update={"created_at": wanted.created_at}) != wanted:
            self._deps.rendezvous.register(uid, wanted)
        try:
            return format_boot_string(uid, secret, url)
        except ValueError as exc:  # never quotes its input: safe to show
            return self._wait(pass_, "RendezvousURLInvalid", f"--rendezvous-url: {exc}")

    def _secret(self, pass_: Pass[Instance]) -> str | Result:
        """The Instance's boot secret: the one its Secret holds, or a new one stored first."""
        instance = pass_.obj
        namespace = instance.metadata.namespace or ""
        name = boot_secret_name(pass_.uid)
        try:
            existing: Secret | None = self._deps.store.get(Secret, name, namespace)
        except NotFoundError:
            existing = None
        if existing is not None:
            owned = any(ref.uid == pass_.uid for ref in existing.metadata.owner_references)
            value = existing.get_text(SECRET_KEY) if owned else None
            if value is None:
                # Not ours (made by someone else under our name) or without the entry: never
                # boot with a secret someone else chose, never overwrite what is not ours.
                return self._wait(
                    pass_,
                    "BootSecretConflict",
                    f"Secret {name} exists but is not this Instance's boot secret "
                    f"(owned by it, with entry {SECRET_KEY!r}): delete it",
                )
            return value
        secret = new_boot_secret()
        owned_secret = Secret(
            metadata=ObjectMeta(
                name=name,
                namespace=namespace,
                labels={INSTANCE_LABEL: instance.metadata.name},
                owner_references=[
                    OwnerReference(
                        kind=Instance.KIND,
                        name=instance.metadata.name,
                        uid=pass_.uid,
                        controller=True,
                    )
                ],
            ),
            string_data={SECRET_KEY: secret},
        ).folded()
        try:
            self._deps.store.create(owned_secret, actor=ACTOR)
        except AlreadyExistsError:
            # Made meanwhile (another pass after a lost shard): read it on the retry.
            raise TransientError(f"Secret {name} was created meanwhile", delay=0.1) from None
        return secret

    def _wait(self, pass_: Pass[Instance], reason: str, message: str) -> Result:
        if pass_.condition("Ready", False, reason, message):
            pass_.event("Warning", reason, message)
        return Result(requeue_after=BOOT_WAIT_SECONDS)

    # --- removal --------------------------------------------------------------------------

    def forget(self, pass_: Pass[Instance]) -> None:
        """Remove the uuid's record and heartbeat (the seeds' remove); its Secret goes with
        the Instance (owner garbage collection). Idempotent: called on every finalizer pass,
        before the finalizer goes, so a crash cannot leave the record behind."""
        instance = pass_.obj
        if instance.spec.boot_config_ref is None and instance.status.agent is None:
            return
        self._deps.rendezvous.forget(instance.metadata.namespace or "", pass_.uid)
