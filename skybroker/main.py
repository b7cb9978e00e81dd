"""The ``skybroker`` server command: the composition root that wires runtime, store and kinds.

Where it sits: on top of everything. ``up`` runs everything in one process on an embedded etcd
(the default for trying skybroker out); ``controller`` runs only the controllers beside an
existing etcd cluster, leader-elected and sharded, with every kind's reconciler and the
kind-independent loops (direct-write normalisation, owner garbage collection, history
trimming, compaction); ``apiserver`` runs only the REST API, as many as you like.

What stops a command from starting (a data dir in use, an unreadable key or token file, an
address taken) is a :class:`StartupError` or a file error naming the file: one line on stderr,
exit code 1, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import structlog

from apiserver import ApiOptions
from apiserver.auth import TokenFileError
from controller.asgi import ListenError
from controller.errors import SkybrokerError
from controller.logging import configure_logging
from controller.manager import Manager, ManagerOptions
from controller.store.embedded import EmbeddedEtcd
from controller.store.encryption import CipherError, SecretCipher
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from skybroker.agent.cli import add_parser as add_agent_parser
from skybroker.apiserver import HttpServer, load_cipher, prepare_data_dir
from skybroker.seed import seed_if_empty
from skybroker.wiring import register_reconcilers

__all__ = ["LOCK_FILE", "StartupError", "main", "tune_interpreter"]

log = structlog.get_logger(__name__)

#: In the data dir: locked by the ``up`` that owns it, and holding that process's pid.
LOCK_FILE = "skybroker.lock"


class StartupError(SkybrokerError):
    """Why a command cannot start, in one line for the operator."""


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Own ``data_dir`` while the block runs, or fail at once naming the process that owns it.

    An exclusive ``flock`` on ``DIR/skybroker.lock``: the kernel releases it however the
    process ends (SIGKILL included), so a crash never leaves a stale lock behind; children do
    not inherit it (close-on-exec), so an etcd that outlived its ``up`` cannot hold it either.
    """
    with open(data_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise StartupError(f"data dir {data_dir} is in use by pid {owner}") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def _api_options(args: argparse.Namespace) -> ApiOptions:
    """The API server's tunables from the command line (the rest keep their defaults)."""
    if args.rendezvous_rate <= 0 or args.rendezvous_burst < 1:
        raise StartupError("--rendezvous-rate must be positive and --rendezvous-burst at least 1")
    return ApiOptions(
        rendezvous_rate=args.rendezvous_rate,
        rendezvous_burst=args.rendezvous_burst,
        rendezvous_url=args.rendezvous_url or None,
    )


def _http_server(
    store: Store, token_file: Path, listen: str, args: argparse.Namespace
) -> HttpServer:
    try:
        return HttpServer(store, token_file, listen, _api_options(args))
    except ListenError as exc:
        raise StartupError(
            f"cannot serve the API on {exc.address}: {exc.reason}; --listen chooses another"
        ) from None


def tune_interpreter() -> None:
    """Settings of a server process (the benchmarks use them too, so bench = product).

    - Collect young objects less often: an informer relist allocates ~100 objects per stored
      object, and CPython's default threshold (700) then spends a third of a 10,000-object
      relist in the cyclic collector, which finds almost nothing there (models are acyclic).
    - Hand the GIL over every 1 ms instead of 5 ms: dozens of threads wait on etcd and clouds,
      and with the default a thread whose answer has arrived waits up to 5 ms for a busy one
      (back-to-back converge runs were ~20 % faster; later runs varied as much as that).
    """
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.001)


def _manager_options(args: argparse.Namespace) -> ManagerOptions:
    options = {
        "workers": args.workers,
        "shards": args.shards,
        "health_listen": args.health_listen,
        "lease_ttl": args.lease_ttl,
        "renew_every": args.renew_every,
        "resync_period": args.resync_period,
        "compaction_interval": args.compaction_interval,
    }
    if args.identity:
        options["identity"] = args.identity
    return ManagerOptions(**options)


def _run_manager(
    endpoints: list[str],
    args: argparse.Namespace,
    cipher: SecretCipher | None,
    on_ready: str | None,
) -> int:
    client = EtcdClient(endpoints)
    store = Store(client, KeyLayout(args.prefix), cipher=cipher)
    manager = Manager(store, _manager_options(args))
    register_reconcilers(
        manager,
        Path(args.simulated_state_dir).resolve(),
        rendezvous_url=args.rendezvous_url or None,
    )
    manager.install_signal_handlers()

    def ready() -> None:
        if on_ready:
            print(on_ready, flush=True)
        address = manager.health_address
        log.info("ready", health=f"http://{address[0]}:{address[1]}" if address else None)

    try:
        manager.run(ready=ready)
    except ListenError as exc:
        raise StartupError(
            f"cannot serve /healthz and /metrics on {exc.address}: {exc.reason}; "
            "--health-listen chooses another ('' for none)"
        ) from None
    finally:
        client.close()
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    return _run_manager(endpoints, args, load_cipher(args.encryption_key_file), None)


def cmd_up(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _data_dir_lock(data_dir), contextlib.ExitStack() as cleanup:
        files = prepare_data_dir(data_dir, f"http://{args.listen}")
        cipher = load_cipher(args.encryption_key_file or files.encryption_key_file)
        etcd = EmbeddedEtcd(data_dir=data_dir)
        orphan = etcd.stop_orphan()
        if orphan is not None:
            print(
                f"skybroker up: stopped an orphaned etcd (pid {orphan}) that an earlier run "
                f"left on {data_dir}",
                flush=True,
            )
        etcd.start()
        cleanup.callback(print, "skybroker up: stopped", flush=True)
        cleanup.callback(etcd.stop)
        state = {"etcdEndpoint": etcd.endpoint, "prefix": args.prefix, "pid": etcd.pid}
        (data_dir / "endpoints.json").write_text(json.dumps(state))
        print(f"skybroker up: etcd at {etcd.endpoint} (data in {data_dir})", flush=True)
        api_client = EtcdClient([etcd.endpoint], fail_fast=True)
        cleanup.callback(api_client.close)
        api_store = Store(api_client, KeyLayout(args.prefix), cipher=cipher)
        for created in seed_if_empty(api_store):
            print(f"skybroker up: created {created}", flush=True)
        http = _http_server(api_store, files.token_file, args.listen, args)
        http.start()
        cleanup.callback(http.stop)
        print(
            f"skybroker up: API at {http.url}\n"
            f"  export SKYCONFIG={files.skyctl_config}\n  skyctl get namespaces",
            flush=True,
        )
        args.simulated_state_dir = args.simulated_state_dir or str(data_dir)
        args.rendezvous_url = args.rendezvous_url or http.url
        return _run_manager([etcd.endpoint], args, cipher, "skybroker up: controllers running")


def cmd_apiserver(args: argparse.Namespace) -> int:
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    client = EtcdClient(endpoints, fail_fast=True)
    store = Store(client, KeyLayout(args.prefix), cipher=load_cipher(args.encryption_key_file))
    try:
        http = _http_server(store, Path(args.token_file), args.listen, args)
        log.info("apiserver listening", url=http.url)
        http.run()
    finally:
        client.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skybroker", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    commands = parser.add_subparsers(dest="command", required=True)

    def runtime_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--workers", type=int, default=4, help="worker threads per controller")
        sub.add_argument("--shards", type=int, default=1, help="shard leases to split work")
        sub.add_argument("--prefix", default="/skybroker", help="etcd key prefix")
        sub.add_argument("--identity", default="", help="this process in leases (default host-pid)")
        sub.add_argument("--lease-ttl", type=int, default=15)
        sub.add_argument("--renew-every", type=float, default=5.0)
        sub.add_argument("--resync-period", type=float, default=600.0,
                         help="seconds between re-checks of each object's cloud state")  # fmt: skip
        sub.add_argument(
            "--compaction-interval",
            type=float,
            default=300.0,
            help="compact etcd to the revision of one interval ago, every "
            "interval (seconds; 0 = never)",
        )
        sub.add_argument("--encryption-key-file", default="",
                         help="AES-GCM keys of Secrets at rest (as the apiserver's)")  # fmt: skip
        sub.add_argument("--simulated-state-dir", default="",
                         help="state of simulated clouds (default: data dir, or .)")  # fmt: skip
        sub.add_argument("--health-listen", default="127.0.0.1:8081",
                         help="host:port of /healthz, /readyz and /metrics ('' = off)")  # fmt: skip

    def rendezvous_flags(sub: argparse.ArgumentParser, serves: bool) -> None:
        sub.add_argument("--rendezvous-url", default="",
                         help="base URL boot agents reach the rendezvous endpoints at (an API "
                              "server's; up: its own API)")  # fmt: skip
        if serves:
            sub.add_argument("--rendezvous-rate", type=float, default=ApiOptions.rendezvous_rate,
                             help="rendezvous requests/s allowed per client address")  # fmt: skip
            sub.add_argument("--rendezvous-burst", type=int, default=ApiOptions.rendezvous_burst,
                             help="rendezvous requests a client address may burst")  # fmt: skip

    up = commands.add_parser("up", help="everything in one process on an embedded etcd")
    up.add_argument("--data-dir", default="./.skybroker")
    up.add_argument("--listen", default="127.0.0.1:7480", help="REST API address")
    runtime_flags(up)
    rendezvous_flags(up, serves=True)
    up.set_defaults(func=cmd_up)

    controller = commands.add_parser("controller", help="the controllers beside an etcd cluster")
    controller.add_argument("--etcd-endpoints", required=True, help="URL[,URL…]")
    runtime_flags(controller)
    rendezvous_flags(controller, serves=False)
    controller.set_defaults(func=cmd_controller)

    apiserver = commands.add_parser("apiserver", help="the REST API beside an etcd cluster")
    apiserver.add_argument("--etcd-endpoints", required=True, help="URL[,URL…]")
    apiserver.add_argument("--listen", default="127.0.0.1:7480", help="host:port to serve on")
    apiserver.add_argument(
        "--token-file", required=True, help='token,user,uid,"groups" lines, re-read on change'
    )
    apiserver.add_argument("--encryption-key-file", default="", help="AES-GCM keys for Secrets")
    apiserver.add_argument("--prefix", default="/skybroker", help="etcd key prefix")
    rendezvous_flags(apiserver, serves=True)
    apiserver.set_defaults(func=cmd_apiserver, shards=1, workers=1)

    add_agent_parser(commands)  # the boot agent (§11): no etcd, no server flags
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(json=json_logs, level=args.log_level)
    tune_interpreter()
    if args.shards < 1 or args.workers < 1:
        print("skybroker: --shards and --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        result: int = args.func(args)
    except (StartupError, CipherError, TokenFileError) as exc:
        print(f"skybroker {args.command}: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    threading.current_thread().name = "main"
    sys.exit(main())
