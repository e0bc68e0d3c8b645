"""A new `cairn server` with an empty data directory and `join` pointed at one node: it
learns the cluster's addresses, registers with the placement group, and the balance
schedulers move replicas to it under a RedisCluster write load; no acknowledged write is
lost, and it serves clients like any other node."""

from __future__ import annotations

import time
from pathlib import Path

from cluster_fixture import client
from self_heal_support import WriteLoad, healing_cluster, voters, wait_for

from cairn.admin.views import RegionView


def test_a_joining_node_receives_replicas_under_load(tmp_path: Path) -> None:
    with healing_cluster(tmp_path, nodes=4) as cluster:
        load = WriteLoad(cluster, "join")
        load.start()
        try:
            time.sleep(1.0)
            new = cluster.add_node(via=4)
            started = time.monotonic()

            def moved_in(regions: list[RegionView]) -> bool:
                return sum(new in voters(r) for r in regions) >= 2 and all(
                    len(voters(r)) == 3 and r.operator is None for r in regions
                )

            wait_for(cluster, moved_in, 50)
            print(f"node {new} received replicas in {time.monotonic() - started:.1f} s")
            time.sleep(0.5)
        finally:
            load.stop()
        load.verify()
        c = client(cluster, new, socket_timeout=5)
        try:
            key = next(iter(sorted(load.acked)))
            assert c.get(key) == load.acked[key].encode()
        finally:
            c.close()
