"""``make demo``: skybroker on its embedded etcd, driven by writes straight into the store.

Where it sits: a script over the real command. It starts ``skybroker up`` as a separate
process, writes the manifests of ``examples/direct-write/`` straight into etcd (as an operator
with ``etcdctl`` would), shows the valid one normalised and recorded in history, shows the
Warning event for the invalid one, then stops the server with SIGTERM and exits 0 only if
everything happened and the server stopped cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from controller.events import EventRecorder
from controller.store.embedded import free_port
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "direct-write"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="skybroker-demo-"))
    health = f"127.0.0.1:{free_port()}"
    step(f"starting `skybroker up --data-dir {data_dir}`")
    server = subprocess.Popen(
        [sys.executable, "-m", "skybroker", "--log-format", "console", "--log-level", "warning",
         "up", "--data-dir", str(data_dir), "--health-listen", health],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        state_file = data_dir / "endpoints.json"
        wait_for("the embedded etcd", lambda: state_file.exists() and state_file.read_text())
        wait_for("/readyz", lambda: http_ok(f"http://{health}/readyz"))
        state = json.loads(state_file.read_text())
        client = EtcdClient([state["etcdEndpoint"]])
        store = Store(client, KeyLayout(state["prefix"]))
        print(f"etcd {state['etcdEndpoint']}, health and metrics on http://{health}")

        key = ObjectKey("instances", "acme", "web-1")
        etcd_key = store.layout.object_key(key)
        manifest = (EXAMPLES / "web-1.yaml").read_bytes()
        step(f"etcdctl put {etcd_key.decode()} < examples/direct-write/web-1.yaml")
        client.put(etcd_key, manifest)

        def normalised() -> dict[str, object] | None:
            kvs = client.range(etcd_key).kvs
            value = kvs[0].value if kvs else b""
            return json.loads(value) if value.startswith(b"{") else None

        stored = wait_for("normalisation", normalised)
        step("the controller validated it and completed it by compare-and-swap:")
        print(json.dumps(stored, indent=2))

        step(f"durable history of {key}:")
        for record in store.history(key):
            print(f"  revision {record.revision}  {record.action:<12} by {record.actor}")

        broken_key = store.layout.object_key(ObjectKey("instances", "acme", "broken"))
        step(f"etcdctl put {broken_key.decode()} < examples/direct-write/broken.yaml")
        client.put(broken_key, (EXAMPLES / "broken.yaml").read_bytes())
        recorder_view = EventRecorder(store)
        events = wait_for(
            "the Warning event",
            lambda: [e for e in recorder_view.list_events("acme") if e.reason == "InvalidObject"],
        )
        recorder_view.stop()
        step("it is left alone, and a Warning event says why:")
        for event in events:
            print(f"  {event.type} {event.reason}: {event.message}")
        untouched = client.range(broken_key).kvs[0].value
        assert untouched == (EXAMPLES / "broken.yaml").read_bytes(), "invalid value was changed"
        client.close()
    finally:
        step("stopping skybroker (SIGTERM)")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    if code != 0:
        print(f"demo: skybroker exited with {code}", file=sys.stderr)
        return 1
    step("done: skybroker stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
