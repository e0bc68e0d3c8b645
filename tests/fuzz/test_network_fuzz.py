"""The network fuzzer against a live 3-node cluster (with a password and an admin token).

`network_fuzz.Fuzzer` sends mutated traffic at every node's client, peer (before and after
authenticating as a test peer) and admin ports for `CI_SECONDS`; afterwards every node
must still run, answer PING, serve a SET and a GET, hold an RSS within `RSS_GROWTH_MB` of
what it had before, and its log must show no traceback and a bounded number of lines.
`pytest --run-slow` adds a ten-minute pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bad_input_tools import rss_mb
from cluster_fixture import client, running_cluster
from network_fuzz import Fuzzer

from cairn.runtime.local_cluster import LocalCluster

CI_SECONDS = 20.0
LONG_SECONDS = 600.0
RSS_GROWTH_MB = 100
PASSWORD = "fz-pass"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("netfuzz"), password=PASSWORD) as c:
        yield c


def _log_lines(cluster: LocalCluster) -> dict[int, list[str]]:
    return {
        n.node_id: n.log_path.read_text(errors="replace").splitlines() for n in cluster.specs
    }


def _serves(cluster: LocalCluster, node: int, key: str) -> None:
    """PING, then SET and GET through `node` (retried while a leader is re-elected)."""
    c = client(cluster, node, socket_timeout=4)
    assert c.ping()
    deadline = time.monotonic() + 20
    while True:
        try:
            assert c.set(key, b"after-fuzz")
            assert c.get(key) == b"after-fuzz"
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _fuzz_and_check(cluster: LocalCluster, seconds: float, seed: int) -> dict[str, int]:
    rss = {n.node_id: rss_mb(cluster.procs[n.node_id].pid) for n in cluster.specs}
    before = _log_lines(cluster)
    sent = Fuzzer(cluster, seed=seed).run(seconds)
    for name in ("client", "peer_stranger", "peer_member", "admin"):
        assert sent.get(name, 0) > 0, sent
    for n in cluster.specs:
        assert cluster.running(n.node_id), f"node {n.node_id} died under the fuzzer"
        _serves(cluster, n.node_id, f"fz:after:{n.node_id}")
        grown = rss_mb(cluster.procs[n.node_id].pid) - rss[n.node_id]
        assert grown < RSS_GROWTH_MB, f"node {n.node_id} grew by {grown:.0f} MB"
    after = _log_lines(cluster)
    budget = sent["peer_member"] + 10 * seconds + 100  # a line per refused member frame
    for node, lines in after.items():
        new = lines[len(before[node]) :]
        tracebacks = [i for i, line in enumerate(new) if "Traceback" in line]
        sample = "\n".join(new[tracebacks[0] - 1 : tracebacks[0] + 20]) if tracebacks else ""
        assert not tracebacks, f"node {node} logged {len(tracebacks)} traceback(s):\n{sample}"
        assert len(new) < budget, f"node {node} logged {len(new)} lines for {sent}"
    return sent


def test_network_fuzz_pass(cluster: LocalCluster) -> None:
    sent = _fuzz_and_check(cluster, CI_SECONDS, seed=1)
    print(f"network fuzz, {CI_SECONDS:.0f} s: {sent}")


@pytest.mark.slow
def test_long_network_fuzz_pass(cluster: LocalCluster, tmp_path: Path) -> None:
    sent = _fuzz_and_check(cluster, LONG_SECONDS, seed=2)
    print(f"network fuzz, {LONG_SECONDS:.0f} s: {sent}")
