"""``make demo``: skybroker on its embedded etcd and simulated cloud, driven with skyctl.

Where it sits: a script over the real commands. It starts ``skybroker up`` as a separate
process (embedded etcd, REST API, controllers, two seeded simulated accounts with a pool),
applies ``examples/acme`` with ``skyctl`` (a tenant with a quota, a hardware profile, a subnet,
a firewall, five instances and a volume attached to one), prints progress until everything is
Ready, shows the tables, deletes one instance in the cloud behind skybroker's back and shows it
recreated, shows what a manifest written straight into etcd becomes, keeps a git repository
applied with a GitSource (a commit that adds an instance, planned with ``skyctl diff
--gitsource``, synced at once with ``skyctl sync``, converging, its history naming the
commit), boots an instance that configures itself from a BootConfig (a real ``skybroker agent``
in the simulated cloud fetches the config, runs it and reports its address and parameters; a
config change reaches it), then stops the server with SIGTERM. It exits 0
only if every step happened and the server stopped cleanly; then it removes its temporary
data dir, which it otherwise keeps for a look (and says where).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from dulwich import porcelain
from dulwich.repo import Repo

from controller.store.embedded import free_port
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from providers import AccountConfig
from providers.simulated import SimulatedProvider

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SKYCTL = str(Path(sys.executable).with_name("skyctl"))


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Skyctl:
    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "SKYCONFIG": str(config)}

    def show(self, *args: str, exits: tuple[int, ...] = (0,)) -> None:
        print(f"$ skyctl {' '.join(args)}", flush=True)
        done = subprocess.run([SKYCTL, *args], env=self.env)
        if done.returncode not in exits:
            raise subprocess.CalledProcessError(done.returncode, [SKYCTL, *args])

    def json(self, *args: str) -> Any:
        out = subprocess.run(
            [SKYCTL, *args, "-o", "json"], env=self.env, check=True, capture_output=True
        )
        return json.loads(out.stdout)


def ready(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def items(listing: Any) -> list[dict[str, Any]]:
    return list(listing.get("items", [])) if isinstance(listing, dict) else list(listing)


def converge(skyctl: Skyctl) -> None:
    kinds = ("subnets", "firewalls", "instances", "volumes")
    last = ""

    def all_ready() -> bool:
        nonlocal last
        counts = {k: items(skyctl.json("get", k, "-n", "acme")) for k in kinds}
        line = "  " + ", ".join(
            f"{k} {sum(ready(o) for o in objs)}/{len(objs)} ready" for k, objs in counts.items()
        )
        if line != last:
            print(line, flush=True)
            last = line
        return all(objs and all(ready(o) for o in objs) for objs in counts.values())

    wait_for("every object Ready", all_ready, timeout=180)


def delete_behind_the_back(skyctl: Skyctl, data_dir: Path, name: str) -> str:
    instance = skyctl.json("get", "instance", name, "-n", "acme")
    placement = instance["status"]["placement"]
    provider_id = str(instance["status"]["providerID"])
    account = skyctl.json("get", "provideraccount", placement["account"])
    config = AccountConfig(
        name=placement["account"],
        driver="simulated",
        region=account["spec"]["region"],
        endpoint=str(data_dir / "simulated.sqlite"),
    )
    SimulatedProvider(config).delete_instance(provider_id)  # type: ignore[arg-type]
    print(f"deleted {provider_id} ({name}) in {placement['account']} directly, not via skybroker")
    return provider_id


def run_demo(data_dir: Path) -> int:
    listen, health = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    step(f"skybroker up --data-dir {data_dir}")
    server = subprocess.Popen(
        [sys.executable, "-m", "skybroker", "--log-format", "console", "--log-level", "warning",
         "up", "--data-dir", str(data_dir), "--listen", listen, "--health-listen", health,
         "--resync-period", "5"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        wait_for("the API", lambda: http_ok(f"http://{listen}/healthz"))
        wait_for("the controllers", lambda: http_ok(f"http://{health}/readyz"))
        skyctl = Skyctl(data_dir / "skyctl.yaml")
        apply_the_tenant(skyctl)
        drift_is_corrected(skyctl, data_dir)
        direct_writes_are_picked_up(skyctl, data_dir)
        gitops(skyctl, data_dir)
        boot_rendezvous(skyctl)
    finally:
        step("stopping skybroker (SIGTERM)")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    if code != 0:
        print(f"demo: skybroker exited with {code}", file=sys.stderr)
        return 1
    step("done: skybroker stopped cleanly")
    return 0


def apply_the_tenant(skyctl: Skyctl) -> None:
    skyctl.show("get", "provideraccounts")
    skyctl.show("get", "pools")
    step("skyctl apply -R -f examples/acme")
    skyctl.show("apply", "-R", "-f", str(EXAMPLES / "acme"))
    step("waiting until everything is Ready")
    converge(skyctl)
    for kind in ("subnets", "firewalls", "instances", "volumes"):
        skyctl.show("get", kind, "-n", "acme", "-o", "wide")


def drift_is_corrected(skyctl: Skyctl, data_dir: Path) -> None:
    step("an instance disappears from the cloud behind skybroker's back")
    old_id = delete_behind_the_back(skyctl, data_dir, "web-3")
    wait_for(
        "web-3 recreated",
        lambda: (
            (i := skyctl.json("get", "instance", "web-3", "-n", "acme"))["status"].get("providerID")
            not in (None, old_id)
            and ready(i)
        ),
    )
    skyctl.show("get", "instance", "web-3", "-n", "acme", "-o", "wide")
    skyctl.show("history", "instance/web-3", "-n", "acme")


def direct_writes_are_picked_up(skyctl: Skyctl, data_dir: Path) -> None:
    step("a manifest written straight into etcd, and a broken one")
    endpoints = json.loads((data_dir / "endpoints.json").read_text())
    client = EtcdClient([endpoints["etcdEndpoint"]])
    layout = KeyLayout(endpoints["prefix"])
    for name in ("web-6", "broken"):
        key = layout.object_key(ObjectKey("instances", "acme", name))
        print(f"$ etcdctl put {key.decode()} < examples/direct-write/{name}.yaml")
        client.put(key, (EXAMPLES / "direct-write" / f"{name}.yaml").read_bytes())
    client.close()
    wait_for("web-6 Ready", lambda: ready(skyctl.json("get", "instance", "web-6", "-n", "acme")))
    skyctl.show("get", "instance", "web-6", "-n", "acme", "-o", "wide")
    wait_for(
        "the Warning event",
        lambda: any(
            e.get("reason") == "InvalidObject" for e in items(skyctl.json("events", "-n", "acme"))
        ),
    )
    skyctl.show("events", "-n", "acme")


def _instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "labels": {"app": "batch"}},
        "spec": {"pool": "general", "hardware": {"profile": "small"}, "image": "ubuntu-22.04"},
    }


def commit(repo: Repo, files: dict[str, list[dict[str, Any]]], message: str) -> str:
    """Write ``files`` (path → manifests) into the work tree of ``repo`` and commit them."""
    for name, objects in files.items():
        path = Path(repo.path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        porcelain.add(repo, [str(path)])
    author = b"demo <demo@skybroker.example>"
    sha = porcelain.commit(repo, message.encode(), author=author, committer=author)
    print(f"$ git commit -m {message!r}   # {sha.decode()[:12]}", flush=True)
    return sha.decode()


def gitops(skyctl: Skyctl, data_dir: Path) -> None:
    step("GitOps: a git repository kept applied by a GitSource")
    repo = Repo.init(str(data_dir / "infra"), mkdir=True)
    commit(repo, {"batch/batch-1.yaml": [_instance("batch-1")]}, "batch-1")
    source = [
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "RoleBinding",
            "metadata": {"name": "gitops", "namespace": "acme"},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "gitops-acme"}],
        },
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "infra", "namespace": "acme"},
            "spec": {
                "url": f"file://{data_dir / 'infra'}",
                "ref": {"branch": "master"},
                "path": "batch",
                "interval": "1m",
                "prune": True,
                "wait": True,
                "serviceAccount": "gitops-acme",
            },
        },
    ]
    manifest = data_dir / "gitsource.yaml"
    manifest.write_text(yaml.safe_dump_all(source, sort_keys=False))
    print(manifest.read_text(), end="")
    skyctl.show("apply", "-f", str(manifest))
    wait_for("the GitSource Ready", lambda: ready(skyctl.json("get", "gs", "infra", "-n", "acme")))
    skyctl.show("get", "gs", "-n", "acme")

    step("a commit adds an instance: skyctl diff shows the plan first (where it would go, at what")
    print("price; nothing written), then skyctl sync applies it now instead of in a minute")
    sha = commit(repo, {"batch/batch-2.yaml": [_instance("batch-2")]}, "batch-2 for the night jobs")
    skyctl.show("diff", "--gitsource", "infra", "-n", "acme", exits=(1,))  # 1: it changes things
    skyctl.show("sync", "gitsource/infra", "-n", "acme", "--wait")
    wait_for(
        "batch-2 Ready", lambda: ready(skyctl.json("get", "instance", "batch-2", "-n", "acme"))
    )
    skyctl.show("get", "instances", "-n", "acme", "-l", "app=batch", "-o", "wide")
    skyctl.show("get", "gs", "-n", "acme")
    history = skyctl.json("history", "instance/batch-2", "-n", "acme")
    actors = {record.get("actor") for record in items(history)}
    if f"gitsource/acme/infra@{sha}" not in actors:
        raise SystemExit(f"demo: batch-2's history does not name the commit: {actors}")
    skyctl.show("history", "instance/batch-2", "-n", "acme")


def agent_of(skyctl: Skyctl, name: str) -> dict[str, Any]:
    return dict(skyctl.json("get", "instance", name, "-n", "acme")["status"].get("agent") or {})


def boot_rendezvous(skyctl: Skyctl) -> None:
    step("boot rendezvous: a generic image configures itself from a BootConfig")
    print((EXAMPLES / "boot" / "10-bootconfig.yaml").read_text(), end="")
    skyctl.show("apply", "-f", str(EXAMPLES / "boot"))
    print("the instance boots with only a boot string as its user data; its agent fetches the")
    print("config from the rendezvous point, runs it and reports back", flush=True)
    configured = wait_for(
        "app-1's agent Configured",
        lambda: (a := agent_of(skyctl, "app-1")).get("state") == "Configured" and a,
        timeout=180,
    )
    if "greeting" not in configured.get("parameters", {}) or not configured.get("address"):
        raise SystemExit(f"demo: app-1's agent reported no greeting or address: {configured}")
    skyctl.show("describe", "instance", "app-1", "-n", "acme")

    step("the BootConfig changes: the running agent applies it and reports the new revision")
    patch = json.dumps({"spec": {"parameters": {"role": "app", "tier": "gold"}}})
    skyctl.show("patch", "bootconfig", "app", "-n", "acme", "--type", "merge", "-p", patch)
    revision = int(configured.get("configRevision") or 0)
    wait_for(
        "app-1's agent on the new revision",
        lambda: int(agent_of(skyctl, "app-1").get("configRevision") or 0) > revision,
        timeout=120,
    )
    skyctl.show("get", "bootconfigs", "-n", "acme")
    skyctl.show("get", "instance", "app-1", "-n", "acme", "-o", "wide")


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="skybroker-demo-"))
    code = 1
    try:
        code = run_demo(data_dir)
    finally:
        if code == 0:
            shutil.rmtree(data_dir)
            print(f"removed the demo's data dir {data_dir}", flush=True)
        else:
            print(
                f"demo: its data dir is kept for a look: {data_dir} (etcd.log, simulated.sqlite);"
                f" remove it with: rm -rf {data_dir}",
                file=sys.stderr,
            )
    return code


if __name__ == "__main__":
    sys.exit(main())
