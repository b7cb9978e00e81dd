# mypy: disable-error-code="no-untyped-call"
# (libcloud ships py.typed but leaves the EC2 driver unannotated)
"""Construction of the EC2 driver from an ``AccountConfig``, and the shared helpers of the adapter.

Where it sits: ``Ec2Base`` is the root of ``Ec2Provider`` (``adapter.py``) and its network
half (``network.py``). Credentials come from the account's Secret (``key``, ``secret``,
optional ``token`` for session credentials); ``endpoint`` (e.g. ``http://127.0.0.1:5000``, or
another skybroker's front door ``http://host:port/ec2/``: its path is the requests' path)
overrides AWS's regional endpoint, and the region may then be any name the server has (a
skybroker's regions are its pools); ``options["timeout"]`` sets the HTTP timeout in seconds
(default 30); ``options["placement_groups"]`` (``true``/``false``, default true as on AWS)
says whether the endpoint has placement groups — false for EC2-compatible servers without
them (moto up to at least 5.2 answers those Actions with a bare HTTP 500), so that the
``host`` topology is refused there instead of failing like an outage. Signature version 4
always (moto and every current AWS region accept it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from controller.errors import TerminalError
from providers.config import AccountConfig
from providers.ec2.driver import PortableEC2NodeDriver
from providers.ec2.errors import ec2_errors
from providers.types import TAG_TOKEN, ResourceTags

__all__ = ["LIVE_INSTANCE_STATES", "Ec2Base"]

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
_KNOWN_OPTIONS = frozenset({"timeout", "placement_groups"})
_FLAGS = {"true": True, "false": False}

T = TypeVar("T")


def _driver(config: AccountConfig) -> PortableEC2NodeDriver:
    key, secret = config.credentials.get("key"), config.credentials.get("secret")
    if not key or not secret:
        raise TerminalError(
            f"account {config.name}: credentials need 'key' and 'secret'",
            reason="AuthFailure",
            code="MissingCredentials",
        )
    unknown = set(config.options) - _KNOWN_OPTIONS
    if unknown:
        raise ValueError(f"unknown ec2-driver options: {sorted(unknown)}")
    kwargs: dict[str, Any] = {
        "region": config.region,
        "token": config.credentials.get("token"),
        "signature_version": "4",
        "timeout": float(config.options.get("timeout", "30")),
    }
    if config.endpoint:
        url = urlsplit(config.endpoint)
        secure = url.scheme == "https"
        kwargs.update(
            secure=secure,
            host=url.hostname,
            port=url.port or (443 if secure else 80),
            path=url.path or "/",
        )
    with ec2_errors():
        return PortableEC2NodeDriver(key, secret, **kwargs)


class Ec2Base:
    """The driver of one account and region, plus helpers shared by every operation.

    libcloud connections keep per-request state, so each worker thread gets its own driver
    (and HTTP connection); the provider object itself is shared by all workers.
    """

    def __init__(self, config: AccountConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._local.driver = _driver(config)  # fail fast on bad credentials or options
        flag = config.options.get("placement_groups", "true").strip().lower()
        if flag not in _FLAGS:
            raise ValueError(f"ec2-driver option placement_groups: {flag!r} is not true/false")
        self.placement_groups = _FLAGS[flag]

    @property
    def driver(self) -> PortableEC2NodeDriver:
        driver: PortableEC2NodeDriver | None = getattr(self._local, "driver", None)
        if driver is None:
            driver = self._local.driver = _driver(self.config)
        return driver

    @property
    def account(self) -> str:
        return self.config.name

    @property
    def region(self) -> str:
        return self.config.region

    def created_with(
        self,
        resource_type: str,
        tags: ResourceTags,
        describe: Callable[[list[str]], Iterable[T]],
    ) -> T | None:
        """The live resource of ``resource_type`` created with ``tags.token``: what a create
        adopts instead of making a second one.

        EC2-compatible servers (moto) ignore ``ClientToken``, so the token tag is the
        idempotency key on every cloud. The ids found by tag may include deleted resources:
        ``describe`` is called with them as an id *filter*, which drops those instead of
        failing NotFound. The tag is checked again on what it answers rather than trusted to
        the server's filters: a server that ignores one (an EC2-compatible implementation
        without ``Filter.N`` on DescribeTags, say) answers with other objects' resources, and
        adopting one of those would give two objects the same cloud resource.
        """
        ids = self.driver.ex_find_tagged(resource_type, TAG_TOKEN, tags.token)
        if not ids:
            return None
        return next(
            (item for item in describe(ids) if self.tags_of(item).get(TAG_TOKEN) == tags.token),
            None,
        )

    @staticmethod
    def tags_of(obj: Any) -> dict[str, str]:
        extra: Mapping[str, Any] = getattr(obj, "extra", None) or {}
        return dict(extra.get("tags") or {})

    @staticmethod
    def first(items: Iterable[Any]) -> Any | None:
        return next(iter(items), None)
