"""The timestamp oracle on a real 3-node cluster: timestamps taken on every node (through
the admin API's `POST /v1/tso`) are unique and increase across a kill and restart of the
placement group's leader."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cluster_fixture import running_cluster

from cairn.admin.client import AdminClient, AdminClientError, ApiError
from cairn.placement.tso import split
from cairn.runtime.local_cluster import HOST, LocalCluster

NODES = (1, 2, 3)


def _admin(cluster: LocalCluster, node_id: int) -> AdminClient:
    port = cluster.spec(node_id).admin_port
    return AdminClient([f"{HOST}:{port}"], token=cluster.admin_token, timeout=8.0)


def _take(admin: AdminClient, within: float = 30.0) -> dict[str, int]:
    """One timestamp from the node behind `admin` (retried while it cannot answer yet)."""
    deadline = time.monotonic() + within
    while True:
        try:
            doc: dict[str, int] = admin.request("POST", "/v1/tso", {})
            return doc
        except AdminClientError as exc:
            if (isinstance(exc, ApiError) and exc.status != 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_timestamps_from_every_node_increase_across_a_placement_leader_kill(
    tmp_path: Path,
) -> None:
    with running_cluster(tmp_path, nodes=3) as cluster:
        admins = {n: _admin(cluster, n) for n in NODES}
        seen: list[int] = []

        def take_in_turn(nodes: tuple[int, ...], rounds: int) -> dict[str, int]:
            doc: dict[str, int] = {}
            for _ in range(rounds):
                for node in nodes:
                    doc = _take(admins[node])
                    assert doc["node_id"] == node
                    assert not seen or doc["ts"] > seen[-1], (doc, seen[-1])
                    seen.append(doc["ts"])
            return doc

        doc = take_in_turn(NODES, 3)
        physical, _ = split(doc["ts"])
        assert abs(physical - time.time() * 1000) < 60_000  # wall-clock milliseconds

        # Concurrent callers on every node: unique, and above everything taken before.
        floor = seen[-1]
        with ThreadPoolExecutor(6) as pool:
            docs = list(pool.map(lambda i: _take(admins[NODES[i % 3]]), range(24)))
        burst = [d["ts"] for d in docs]
        assert len(set(burst)) == len(burst) and min(burst) > floor
        seen.append(max(burst))

        leader = doc["placement_leader"]
        assert leader in NODES
        cluster.kill(leader)
        cluster.start(leader)  # it boots while the others fail over
        others = tuple(n for n in NODES if n != leader)
        take_in_turn(others, 3)  # a new leader serves, above the old one's
        cluster.wait_serving(leader)
        take_in_turn(NODES, 3)
        assert len(set(seen)) == len(seen)
