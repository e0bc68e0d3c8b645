"""Byte for byte: the store's command script against a real redis-server and a Cairn cluster.

Every line of the scripts in `tests/store/scripts/` goes to redis-server and to Cairn (the
leader for one run, a follower — which forwards — for another); replies must be the same
bytes, except those the script tags as clock-, randomness- or order-dependent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_fixture import running_cluster
from store_harness import RawRedis, normalize
from store_script import load_script

from cairn.runtime.local_cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("vs-redis")) as c:
        yield c


def _compare(redis_port: int, cairn_port: int) -> list[str]:
    redis = RawRedis(redis_port)
    cairn = RawRedis(cairn_port)
    mismatches = []
    for line in load_script():
        theirs = redis.call(line.argv)
        ours = cairn.call(line.argv)
        if normalize(theirs, line.tags, line.argv) != normalize(ours, line.tags, line.argv):
            mismatches.append(f"{line.where}: {line.argv!r}: redis {theirs!r} cairn {ours!r}")
    redis.close()
    cairn.close()
    return mismatches


@pytest.mark.parametrize("where", ["leader", "follower"])
def test_every_reply_matches_redis(
    where: str, cluster: LocalCluster, redis_server_port: int, tmp_path: Path
) -> None:
    leader = cluster.wait_for_leader()
    node = (
        leader
        if where == "leader"
        else next(n.node_id for n in cluster.specs if n.node_id != leader)
    )
    mismatches = _compare(redis_server_port, cluster.spec(node).client_port)
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
