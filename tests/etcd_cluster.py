"""A three-member etcd cluster on loopback for the tests that kill members (DESIGN §13).

Where it sits: beside ``tests/conftest.py``'s one-member fixture; each member is an
:class:`~controller.store.embedded.EmbeddedEtcd` told its peers. The cluster's own questions —
which member leads, which members it counts — go to etcd's maintenance and cluster APIs through
the JSON gateway every member serves on its client port (``/v3/maintenance/status``,
``/v3/cluster/member/…``), so no gRPC stub is needed here.

A killed member comes back by :meth:`EtcdCluster.replace`: removed from the cluster, then
added again on the same addresses with an empty data dir (etcd's procedure for a failed
member), so the endpoint lists clients were given stay right. A restart on its old data dir
is not used because the etcd we ship (3.5.1) may come back from SIGKILL under write load
missing applied writes (etcd-io/etcd#13766, fixed in 3.5.3): a silently divergent member.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.store.embedded import EmbeddedEtcd

__all__ = ["EtcdCluster"]


def _gateway(endpoint: str, path: str, body: dict[str, Any], timeout: float = 2.0) -> Any:
    request = urllib.request.Request(
        endpoint + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class EtcdCluster:
    """``size`` members named ``m0``… under ``root``, each on its own free ports and data dir."""

    root: Path
    size: int = 3
    members: list[EmbeddedEtcd] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.members = [
            EmbeddedEtcd(data_dir=self.root / f"m{i}", name=f"m{i}") for i in range(self.size)
        ]
        for member in self.members:
            member.initial_cluster = self._initial_cluster()

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def endpoints_flag(self) -> str:
        """The value of ``--etcd-endpoints``: every member, comma-separated."""
        return ",".join(self.endpoints)

    def start(self, timeout: float = 60.0) -> None:
        for member in self.members:  # together: none is healthy before a quorum runs
            member.start(wait=False)
        for member in self.members:
            member.wait_healthy(timeout)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def running(self) -> list[int]:
        """Indices of the members whose process is alive."""
        return [i for i, m in enumerate(self.members) if m.pid is not None]

    def _status(self, index: int) -> dict[str, Any] | None:
        try:
            status: dict[str, Any] = _gateway(
                self.members[index].endpoint, "/v3/maintenance/status", {}
            )
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return status

    def leader(self, timeout: float = 30.0) -> int:
        """The index of the member that leads, once the running members agree on one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = {i: self._status(i) for i in self.running()}
            leaders = {s.get("leader") for s in statuses.values() if s}
            if None not in statuses.values() and len(leaders) == 1 and "0" not in leaders:
                (leader,) = leaders
                for i, status in statuses.items():
                    if status and status["header"]["member_id"] == leader:
                        return i
            time.sleep(0.1)
        raise AssertionError(f"no agreed etcd leader within {timeout}s")

    def follower(self) -> int:
        """The index of a running member that does not lead."""
        leader = self.leader()
        return next(i for i in self.running() if i != leader)

    def kill(self, index: int) -> None:
        self.members[index].kill()

    def replace(self, index: int, timeout: float = 60.0) -> None:
        """Bring a dead member back as a new, empty member on the same addresses."""
        dead = self.members[index]
        assert dead.pid is None, f"member m{index} still runs"
        alive = self.members[self.running()[0]].endpoint
        listed = _gateway(alive, "/v3/cluster/member/list", {})["members"]
        old = next(m for m in listed if dead.peer_url in m.get("peerURLs", []))
        _gateway(alive, "/v3/cluster/member/remove", {"ID": old["ID"]}, timeout=10)
        deadline = time.monotonic() + timeout
        while True:  # refused ("unhealthy cluster") until the leader saw its peers for 5 s
            try:
                _gateway(alive, "/v3/cluster/member/add", {"peerURLs": [dead.peer_url]}, 10)
                break
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        shutil.rmtree(dead.data_dir / "etcd")
        dead.initial_cluster_state = "existing"
        dead.start(wait=False)
        dead.wait_healthy(timeout)
