"""The EC2 front-door tests' common ground: an API server over a store seeded with a world of
objects, whose access keys come from a dict, and boto3's ``ec2`` client against it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from api_types import registry
from apiserver import ApiOptions
from apiserver.accesskeys import AccessKeyCredential
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import TOKEN_FILE

__all__ = ["API", "ec2_api", "ec2_client", "pool_readers"]

API = "skybroker.io/v1alpha1"


def pool_readers(*users: str) -> list[dict[str, Any]]:
    """A ClusterRole reading pools and its binding to ``users``: what a tenant needs to see
    the regions (pools) of its namespace through the front door."""
    return [
        {"apiVersion": API, "kind": "ClusterRole", "metadata": {"name": "pool-reader"},
         "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools"],
                    "verbs": ["get", "list"]}]},
        {"apiVersion": API, "kind": "ClusterRoleBinding", "metadata": {"name": "pool-readers"},
         "roleRef": {"kind": "ClusterRole", "name": "pool-reader"},
         "subjects": [{"kind": "User", "name": user} for user in users]},
    ]  # fmt: skip


@contextmanager
def ec2_api(
    store: Store,
    tmp_path: Path,
    world: Iterable[dict[str, Any]],
    keys: Mapping[str, AccessKeyCredential],
) -> Iterator[HttpServer]:
    """An API server on a free port over ``store`` once ``world`` is created in it (objects
    without ``apiVersion`` get ours), resolving access keys from ``keys``."""
    for wire in world:
        store.create(registry.parse_object({"apiVersion": API, **wire}))
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(store, token_file, "127.0.0.1:0", ApiOptions(), credentials=keys.get)
    http.start()
    try:
        yield http
    finally:
        http.stop()


def ec2_client(server: HttpServer, key: AccessKeyCredential, region: str = "general") -> Any:
    """boto3's ``ec2`` client signing with ``key`` for ``region`` (a Pool), no retries."""
    return boto3.client(
        "ec2",
        endpoint_url=f"{server.url}/ec2/",
        region_name=region,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
