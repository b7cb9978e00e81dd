"""Running skyctl in-process for tests: argv in, (exit code, stdout, stderr) out."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from controller.cli.main import main

#: Admission checks references, so the pool exists beforehand (see ``POOL``).
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
kind: Instance
metadata: {{name: web-1, namespace: acme, labels: {{app: web}}}}
spec:
  pool: general
  hardware: {{profile: small-{suffix}}}
  image: {image}
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
    """Calls ``controller.cli.main.main`` with fixed connection flags appended."""

    connection: tuple[str, ...]

    def __call__(self, *argv: str, stdin: bytes = b"") -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main([*argv, *self.connection], stdout=out, stderr=err, stdin=io.BytesIO(stdin))
        return Result(code, out.getvalue(), err.getvalue())
