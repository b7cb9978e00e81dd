"""skyctl test helpers: running it in-process (argv in, exit code and output out), the objects
the tests start from, and an API server (in this process) with the users the tests act as."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from api_types import registry
from apiserver import ApiOptions
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from skyctl.main import main

#: Admission checks references and images, so the pool and its account exist beforehand.
ACCOUNT = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "ProviderAccount",
    "metadata": {"name": "sim-a"},
    "spec": {
        "driver": "simulated",
        "region": "local",
        "images": {"ubuntu-22.04": "img-ubuntu", "debian-12": "img-debian"},
    },
}
POOL = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "Pool",
    "metadata": {"name": "general"},
    "spec": {"members": [{"account": "sim-a"}]},
}

INSTANCES = """\
apiVersion: skybroker.io/v1alpha1
kind: HardwareProfile
metadata: {{name: small-{suffix}, labels: {{app: web}}}}
spec: {{cpu: {{min: 1, max: 2}}, memoryMiB: {{min: 1024}}}}
---
apiVersion: skybroker.io/v1alpha1
kind: Firewall
metadata: {{name: web, namespace: acme, labels: {{app: web}}}}
spec:
  rules:
    - {{direction: Ingress, protocol: tcp, ports: "80", cidrs: [0.0.0.0/0]}}
---
apiVersion: skybroker.io/v1alpha1
kind: Subnet
metadata: {{name: web, namespace: acme, labels: {{app: web}}}}
spec: {{pool: general, network: {{name: main, cidr: 10.0.0.0/16}}, cidr: 10.0.1.0/24}}
---
apiVersion: skybroker.io/v1alpha1
kind: Instance
metadata: {{name: web-1, namespace: acme, labels: {{app: web}}}}
spec:
  pool: general
  hardware: {{profile: small-{suffix}}}
  image: {image}
  subnetRef: web
  firewallRefs: [web]
"""


def write_manifest(path: Path, *, image: str = "ubuntu-22.04", suffix: str = "a") -> Path:
    path.write_text(INSTANCES.format(image=image, suffix=suffix))
    return path


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Skyctl:
    """Calls ``skyctl.main.main`` with fixed connection flags appended."""

    connection: tuple[str, ...]

    def __call__(self, *argv: str, stdin: bytes = b"") -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main([*argv, *self.connection], stdout=out, stderr=err, stdin=io.BytesIO(stdin))
        return Result(code, out.getvalue(), err.getvalue())


TOKENS = """\
admin-token,admin,u-admin,"system:masters"
alice-token,alice,u-alice
nobody-token,nobody,u-nobody
"""
ALICE_IS_ADMIN_IN_ACME = {
    "kind": "RoleBinding",
    "metadata": {"name": "alice-admin", "namespace": "acme"},
    "roleRef": {"kind": "ClusterRole", "name": "admin"},
    "subjects": [{"kind": "User", "name": "alice"}],
}


def seed(store: Store) -> None:
    """The account, its pool, namespace ``acme`` and alice's admin binding in it."""
    acme = {"kind": "Namespace", "metadata": {"name": "acme"}}
    for wire in (ACCOUNT, POOL, acme, ALICE_IS_ADMIN_IN_ACME):
        store.create(registry.parse_object(wire))


@contextmanager
def running_api_server(store: Store, directory: Path) -> Iterator[HttpServer]:
    """The API on a free port over ``store``, seeded (:func:`seed`); users ``admin``,
    ``alice``, ``nobody`` with tokens ``<user>-token``."""
    seed(store)
    token_file = directory / "tokens.csv"
    token_file.write_text(TOKENS)
    http = HttpServer(store, token_file, "127.0.0.1:0", ApiOptions(bookmark_interval=0.3))
    http.start()
    try:
        yield http
    finally:
        http.stop()
