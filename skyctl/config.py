"""skyctl's client configuration: named contexts (server, token, default namespace).

Where it sits: read first by every verb to know where to send requests. The file is
``$SKYCONFIG`` or ``~/.config/skybroker/config.yaml`` (``skybroker up`` writes one for its admin
to ``DIR/skyctl.yaml``)::

    current-context: local
    contexts:
      - name: local
        server: http://127.0.0.1:7480
        token: 3f0c…
        namespace: default        # optional

``server`` may name several API servers of one installation (DESIGN §13), as a YAML list or
comma-separated (``--server`` too): a request that finds one unreachable, or an idempotent one
answered 503, goes to the next (``skyctl.http``).

Flags override the chosen context field by field: ``--context``, ``--server``, ``--token``,
``-n/--namespace``. The file holds bearer tokens, so it is written readable by its owner only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.errors import SkybrokerError
from controller.store.codec import DecodeError, decode_value

__all__ = [
    "DEFAULT_NAMESPACE",
    "ConfigError",
    "Context",
    "config_path",
    "explicit_path",
    "load_config",
    "resolve_context",
    "save_config",
    "server_text",
    "set_context",
    "use_context",
]

DEFAULT_NAMESPACE = "default"


class ConfigError(SkybrokerError, ValueError):
    """The configuration file is unreadable or names a context that does not exist."""


@dataclass(frozen=True)
class Context:
    """One context of the skyctl config: where the API is, the token, the default namespace."""
    name: str
    server: str | None  # one URL, or several comma-separated
    token: str | None
    namespace: str


def explicit_path() -> Path | None:
    """``$SKYCONFIG``, when set: a file the user named, so its absence is worth saying."""
    explicit = os.environ.get("SKYCONFIG")
    return Path(explicit) if explicit else None


def config_path() -> Path:
    return explicit_path() or Path.home() / ".config" / "skybroker" / "config.yaml"


def load_config(path: Path) -> dict[str, Any]:
    """The parsed file; an absent file is an empty configuration."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"contexts": []}
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        config = decode_value(raw) if raw.strip() else {}
    except DecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    contexts = config.setdefault("contexts", [])
    if not isinstance(contexts, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in contexts
    ):
        raise ConfigError(f"{path}: contexts must be a list of mappings with a name")
    return config


def save_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


def _find(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in config["contexts"] if c["name"] == name), None)


def resolve_context(
    config: dict[str, Any],
    *,
    context: str | None = None,
    server: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Context:
    """The context to use: named by ``context`` or ``current-context``, flags on top."""
    name = context or config.get("current-context")
    chosen: dict[str, Any] = {}
    if name:
        found = _find(config, str(name))
        if found is None:
            raise ConfigError(f"context {name!r} is not in the configuration")
        chosen = found
    return Context(
        name=str(name or ""),
        server=server or server_text(chosen.get("server"), str(name)),
        token=token or chosen.get("token"),
        namespace=namespace or chosen.get("namespace") or DEFAULT_NAMESPACE,
    )


def server_text(value: Any, context: str) -> str | None:
    """A context's ``server``: one URL, a comma-separated string, or a list, as one string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise ConfigError(f"context {context!r}: server must be a URL or a list of URLs")


def use_context(config: dict[str, Any], name: str) -> None:
    if _find(config, name) is None:
        raise ConfigError(f"context {name!r} is not in the configuration")
    config["current-context"] = name


def set_context(
    config: dict[str, Any],
    name: str,
    *,
    server: str | None,
    token: str | None,
    namespace: str | None,
) -> None:
    """Create or update a context; fields not given are left as they were."""
    entry = _find(config, name)
    if entry is None:
        entry = {"name": name}
        config["contexts"].append(entry)
    for field, value in (("server", server), ("token", token), ("namespace", namespace)):
        if value is not None:
            entry[field] = value
    config.setdefault("current-context", name)
