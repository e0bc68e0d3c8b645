"""`redis-benchmark --cluster`, the load of `bench/compare.py`, against a real cluster founded
with one region per node (as `cairn dev` founds it).

redis-benchmark reads CLUSTER NODES from the node it is given, keeps the masters (the lines
without `slave` and with slots), stops with "Invalid cluster: 1 node(s)" unless there are
two or more, asks each for CONFIG GET save/appendonly, then deals its clients round-robin
over the masters, each client writing `key:{tag}:<random>` where the tag hashes to the first
slot its master lists; redis-benchmark 7.0 exits at the first error reply. So a run that
ends with a CSV row, over every master the nodes show, whose keys sit in each master's
first slot, is the whole contract."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cluster_fixture import client, running_cluster

from cairn.runtime.local_cluster import HOST, LocalCluster

pytestmark = pytest.mark.skipif(
    shutil.which("redis-benchmark") is None, reason="redis-benchmark (redis-tools) not installed"
)
REGIONS = 3
BALANCE_WAIT = 20.0
"""How long the placement driver gets to spread the leaders (one per node)."""


def _masters(cluster: LocalCluster) -> dict[str, int]:
    """host:port -> first slot listed, of every master with slots in node 1's CLUSTER NODES
    (what redis-benchmark keeps; redis-py parses the reply into a dict by address)."""
    nodes = client(cluster, 1).execute_command("CLUSTER NODES")
    return {
        address: int(node["slots"][0][0])
        for address, node in nodes.items()
        if "slave" not in node["flags"] and node["slots"]
    }


def _wait_for_masters(cluster: LocalCluster) -> dict[str, int]:
    """The masters once every region has a leader, one per node if the driver gets there
    within `BALANCE_WAIT` (two or more are enough for redis-benchmark)."""
    deadline = time.monotonic() + BALANCE_WAIT
    masters: dict[str, int] = {}
    while time.monotonic() < deadline:
        masters = _masters(cluster)
        if len(masters) == REGIONS:
            break
        time.sleep(0.2)
    return masters


def test_redis_benchmark_cluster_writes_through_every_master(tmp_path: Path) -> None:
    settings = {"initial_regions": REGIONS}
    with running_cluster(tmp_path, settings=settings) as cluster:
        masters = _wait_for_masters(cluster)
        assert len(masters) >= 2, f"leaders not spread: {masters}"
        port = cluster.specs[0].client_port
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "--cluster", "-t", "set"]
        argv += ["-n", "600", "-c", "6", "-d", "100", "-r", "100000", "--csv"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr + out.stdout
        assert f"Cluster has {len(masters)} master nodes" in out.stdout
        assert out.stdout.splitlines()[-1].startswith('"SET",')
        for address, first_slot in masters.items():
            assert f" {address}\n" in out.stdout  # "Master i: <name> <address>"
            keys = _keys_of_region_at(cluster, address, first_slot)
            assert keys > 0, f"no key in the region of slot {first_slot} (master {address})"


def _keys_of_region_at(cluster: LocalCluster, address: str, first_slot: int) -> int:
    """The keys the master at `address` holds in its region that begins at `first_slot`
    (INFO regions; Cairn answers no CLUSTER COUNTKEYSINSLOT)."""
    node = next(s.node_id for s in cluster.specs if f"{HOST}:{s.client_port}" == address)
    info = client(cluster, node).info("regions")
    for name, fields in info.items():
        region = name.startswith("region") and isinstance(fields, dict)
        if region and str(fields["slots"]).split("-")[0] == str(first_slot):
            return int(fields["keys"])
    raise AssertionError(f"no region of node {node} begins at slot {first_slot}: {info}")
