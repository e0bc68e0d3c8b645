"""`cairn ctl node drain` on a real cluster under a RedisCluster write load: the drained
node ends with no replica and no leader, every region keeps 3 voters on the others, and no
acknowledged write is lost."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner
from cluster_fixture import client
from self_heal_support import WriteLoad, healing_cluster, settled, voters, wait_for

from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST


def test_a_drained_node_ends_with_no_replica_under_load(tmp_path: Path) -> None:
    with healing_cluster(tmp_path) as cluster:
        drained = 4
        held = [r.id for r in wait_for(cluster, bool, 5) if drained in voters(r)]
        assert held, "the node to drain holds no replica"
        load = WriteLoad(cluster, "drain")
        load.start()
        try:
            time.sleep(1.0)
            endpoints = [a for s in cluster.specs for a in ("-e", f"{HOST}:{s.admin_port}")]
            endpoints += ["--token", str(cluster.admin_token)]
            result = CliRunner().invoke(main, ["ctl", *endpoints, "node", "drain", str(drained)])
            assert result.exit_code == 0, result.output
            started = time.monotonic()
            rest = {1, 2, 3, 5}
            regions = wait_for(cluster, lambda rs: settled(rs, rest), 50)
            print(f"node {drained} drained in {time.monotonic() - started:.1f} s")
            assert all(drained not in {p.node_id for p in r.peers} for r in regions)
            time.sleep(0.5)
        finally:
            load.stop()
        load.verify()
        # The drained node hosts nothing and still serves: INFO, and keys it forwards.
        c = client(cluster, drained, socket_timeout=5)
        try:
            info = c.info("everything")
            assert info["raft_regions"] == 0 and info["raft_role"] == "none", info
            key = min(load.acked)
            assert c.get(key) == load.acked[key].encode()
            assert c.set("drained:after", "x") and c.get("drained:after") == b"x"
        finally:
            c.close()
