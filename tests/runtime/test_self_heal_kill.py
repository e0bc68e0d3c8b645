"""A node killed for good: 5 real nodes under a RedisCluster write load, kill -9 one that
is no placement member; the driver marks it down after `down_after_s` and rebuilds its
replicas on the others until every region has 3 voters on live nodes; no acknowledged
write is lost. `cairn ctl` shows the driver's views and the events that explain it.

Then the node comes back: its stale replicas are removed and the balance schedulers give
it new ones (new peers of regions it held before, when they pick those)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from self_heal_support import WriteLoad, healing_cluster, settled, voters, wait_for

from cairn.admin.views import RegionView
from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST, LocalCluster


def test_a_node_killed_for_good_is_repaired_under_load(tmp_path: Path) -> None:
    with healing_cluster(tmp_path) as cluster:
        load = WriteLoad(cluster, "kill")
        load.start()
        try:
            time.sleep(1.0)
            victim = 5
            held = [r.id for r in wait_for(cluster, bool, 5) if victim in voters(r)]
            assert held, "the victim holds no replica: nothing would be repaired"
            cluster.kill(victim)
            killed_at = time.monotonic()
            regions = wait_for(cluster, lambda rs: settled(rs, {1, 2, 3, 4}), 50)
            repair = time.monotonic() - killed_at
            print(f"time to full repair after kill -9 of node {victim}: {repair:.1f} s")
            assert all(victim not in voters(r) for r in regions)
            time.sleep(0.5)
        finally:
            load.stop()
        load.verify()
        endpoints = [a for s in cluster.specs for a in ("-e", f"{HOST}:{s.admin_port}")]
        endpoints += ["--token", str(cluster.admin_token)]
        runner = CliRunner()
        result = runner.invoke(main, ["ctl", *endpoints, "--json", "events", "--limit", "1000"])
        assert result.exit_code == 0, result.output
        events = json.loads(result.output)["events"]
        assert any(e["kind"] == "node-down" and e["node_id"] == victim for e in events)
        repairs = [
            e
            for e in events
            if e["kind"] == "operator-created" and e["region_id"] in held and "add" in e["reason"]
        ]
        assert repairs, events
        result = runner.invoke(main, ["ctl", *endpoints, "--json", "nodes"])
        assert result.exit_code == 0, result.output
        states = {n["id"]: n["status"] for n in json.loads(result.output)["nodes"]}
        assert states[victim] == "down" and all(states[n] == "up" for n in (1, 2, 3, 4))
        table = runner.invoke(main, ["ctl", *endpoints, "events"], env={"COLUMNS": "200"})
        assert table.exit_code == 0 and "node-down" in table.output, table.output

        came_back(cluster, victim, held)


def came_back(cluster: LocalCluster, victim: int, held: list[int]) -> None:
    """Restart `victim`; wait until its stale replicas are gone (tombstones) and it holds
    voters again (new peers, of regions it held before when the balance picks those); no
    acknowledged write is lost."""
    cluster.start(victim)
    load = WriteLoad(cluster, "back")
    load.start()
    try:

        def rebalanced(regions: list[RegionView]) -> bool:
            return settled(regions, {1, 2, 3, 4, 5}) and any(victim in voters(r) for r in regions)

        started = time.monotonic()
        regions = wait_for(cluster, rebalanced, 60)
        again = sorted(r.id for r in regions if victim in voters(r) and r.id in held)
        print(
            f"node {victim} back with replicas in {time.monotonic() - started:.1f} s; "
            f"new peers of regions it held before: {again}"
        )
    finally:
        load.stop()
    load.verify()
