"""Do P controller processes converge N instances faster than one? Alternating rounds, medians.

``bench.converge --processes P`` times one run; on a shared 2-core VM one run of the same code
varies by a third from minute to minute, more than the speed-up being asked about. This
alternates: each round runs one process, then P processes (``bench.converge``'s
``converge_processes``: real ``skybroker controller`` processes splitting ``--shards`` over one
etcd and one simulated cloud), each on N fresh Instances under a fresh key prefix of the same
etcd, so both sides of a round see the same machine. Per round it prints both times and their
ratio, and each side's controller CPU per object (the sum over its processes: what running P
copies of the informers and the interpreter adds). The last line is exactly::

    scaleout N=<n> processes=<p> rounds=<r> p1_seconds=<median> pN_seconds=<median> \
speedup=<p1 median ÷ pN median> rounds_faster=<rounds where P processes won>/<r>

    python -m bench.scaleout --count 10000 --processes 2 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from pathlib import Path

from bench._common import etcd_for_bench
from bench.converge import Measured, add_run_arguments, converge_processes, create_manifests
from controller.logging import configure_logging
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from skybroker.main import tune_interpreter

__all__ = ["main"]


def one_run(args: argparse.Namespace, client: EtcdClient, processes: int) -> Measured:
    """N fresh Instances under a fresh prefix, converged by ``processes`` controllers."""
    store = Store(client, KeyLayout(f"/scaleout-{uuid.uuid4().hex[:8]}"))
    create_manifests(store, args)
    run_args = argparse.Namespace(**{**vars(args), "processes": processes})
    with tempfile.TemporaryDirectory() as state_dir:
        return converge_processes(run_args, client, store, Path(state_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--processes", type=int, default=2, help="the side compared with one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    add_run_arguments(parser)
    args = parser.parse_args()
    if args.processes < 2 or args.rounds < 1:
        parser.error("--processes must be at least 2 and --rounds at least 1")
    args.steady = 0.0  # converge_processes' steady window: not what this measures
    configure_logging(json=True, level=args.log_level)
    tune_interpreter()
    singles: list[float] = []
    multiples: list[float] = []
    with etcd_for_bench(args) as client:
        args.endpoint = client.endpoints[0]
        for round_index in range(args.rounds):
            one = one_run(args, client, 1)
            many = one_run(args, client, args.processes)
            singles.append(one.seconds)
            multiples.append(many.seconds)
            print(
                f"round {round_index + 1}: P=1 {one.seconds:.2f} s "
                f"({1000 * sum(one.cpu) / args.count:.2f} ms CPU/object), "
                f"P={args.processes} {many.seconds:.2f} s "
                f"({1000 * sum(many.cpu) / args.count:.2f} ms CPU/object), "
                f"P{args.processes}/P1 {many.seconds / one.seconds:.2f}",
                flush=True,
            )
    single, multiple = statistics.median(singles), statistics.median(multiples)
    faster = sum(m < s for s, m in zip(singles, multiples, strict=True))
    print(
        f"scaleout N={args.count} processes={args.processes} rounds={args.rounds} "
        f"p1_seconds={single:.2f} pN_seconds={multiple:.2f} speedup={single / multiple:.2f} "
        f"rounds_faster={faster}/{args.rounds}"
    )


if __name__ == "__main__":
    main()
