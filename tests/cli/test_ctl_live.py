"""`cairn ctl` and /metrics against a real 3-node cluster: `cairn server` serves the admin
API beside the Redis port (started and stopped with the node)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import main
from cairn.runtime.local_cluster import HOST

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from cluster_fixture import running_cluster


def test_ctl_and_metrics_on_a_live_cluster(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        endpoints = [f"{HOST}:{s.admin_port}" for s in cluster.specs]
        args = [a for e in endpoints for a in ("-e", e)] + ["--token", str(cluster.admin_token)]
        runner = CliRunner()
        result = runner.invoke(main, ["ctl", *args, "--json", "status"])
        assert result.exit_code == 0, result.output
        status = json.loads(result.output)
        assert status["nodes"]["total"] == 3
        result = runner.invoke(main, ["ctl", *args, "--json", "regions"])
        assert result.exit_code == 0, result.output
        (region,) = json.loads(result.output)["regions"]
        assert region["leader"] == leader
        assert sorted(p["node_id"] for p in region["peers"]) == [1, 2, 3]
        table = runner.invoke(main, ["ctl", *args, "nodes"], env={"COLUMNS": "200"})
        assert table.exit_code == 0 and "3 node(s)" in table.output, table.output
        # the first endpoint down: ctl tries the next
        cluster.kill(1)
        result = runner.invoke(main, ["ctl", *args, "--json", "status"])
        assert result.exit_code == 0, result.output
        port = cluster.specs[1].admin_port
        bearer = {"Authorization": f"Bearer {cluster.admin_token}"}
        scrape = urllib.request.Request(f"http://{HOST}:{port}/metrics", headers=bearer)
        with urllib.request.urlopen(scrape, timeout=5) as response:
            text = response.read().decode()
        assert "cairn_raft_term" in text and 'node="2"' in text
