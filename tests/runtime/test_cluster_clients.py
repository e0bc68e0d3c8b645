"""Cluster-aware clients against a real 3-node cluster: CLUSTER SLOTS and friends name the
leader from any node, MOVED goes only to clients that can follow it, and redis-py's
`RedisCluster` and `redis-cli -c` read and write through leader changes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
from cluster_fixture import client, running_cluster
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.store.slot import key_slot


def _follower(cluster: LocalCluster, leader: int) -> int:
    return next(s.node_id for s in cluster.specs if s.node_id != leader)


def test_every_node_names_the_leader_as_the_master_of_all_slots(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        leader_port = cluster.spec(leader).client_port
        for spec in cluster.specs:
            c = client(cluster, spec.node_id)
            deadline = time.monotonic() + 10
            while True:  # a node learns its peers' client addresses in their handshakes
                slots = c.execute_command("CLUSTER SLOTS")
                if len(slots[0]) == 2 + len(cluster.specs) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            (entry,) = slots
            assert entry[0] == 0 and entry[1] == 16383
            master, *replicas = entry[2:]
            assert master[1] == leader_port
            others = {s.client_port for s in cluster.specs if s.node_id != leader}
            assert {r[1] for r in replicas} == others
            info = c.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
            assert info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 3
            nodes = c.execute_command("CLUSTER NODES")
            assert len(nodes) == 3
            mine = [addr for addr, n in nodes.items() if "myself" in n["flags"]]
            assert mine == [f"{HOST}:{spec.client_port}"]
            assert nodes[f"{HOST}:{leader_port}"]["flags"].endswith("master")
            assert c.execute_command("CLUSTER KEYSLOT", "foo") == key_slot(b"foo")
            assert c.info("server")["redis_mode"] == "cluster"


def test_moved_only_for_connections_that_asked_for_the_layout(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = _follower(cluster, leader)
        plain = client(cluster, follower)
        plain.set("k", "v")  # forwarded to the leader
        assert plain.get("k") == b"v"
        aware = client(cluster, follower, single_connection_client=True)
        aware.execute_command("CLUSTER SLOTS")
        with pytest.raises(redis.ResponseError) as moved:
            aware.get("k")
        leader_port = cluster.spec(leader).client_port
        assert str(moved.value) == f"{key_slot(b'k')} {HOST}:{leader_port}"  # after "MOVED "
        aware.execute_command("RESET")
        assert aware.get("k") == b"v"  # a reset connection is plain again
        # On the leader itself nothing is ever redirected.
        on_leader = client(cluster, leader, single_connection_client=True)
        on_leader.execute_command("READONLY")
        assert on_leader.get("k") == b"v"


def test_redis_py_cluster_client_writes_through_a_leader_kill(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = _follower(cluster, leader)
        rc = RedisCluster(
            startup_nodes=[ClusterNode(HOST, cluster.spec(follower).client_port)],
            password=cluster.password,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 20),
            socket_timeout=5,
        )
        try:
            acked = {}
            for i in range(100):
                assert rc.set(f"key:{i}", str(i))
                acked[f"key:{i}"] = str(i)
            cluster.kill(leader)
            new_leader = cluster.wait_for_leader(timeout=30)
            assert new_leader != leader
            for i in range(100, 200):
                for _ in range(50):
                    try:
                        rc.set(f"key:{i}", str(i))
                        break
                    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                        time.sleep(0.1)
                else:
                    pytest.fail(f"key:{i} was never written")
                acked[f"key:{i}"] = str(i)
            for key, value in acked.items():
                assert rc.get(key) == value.encode(), key
        finally:
            rc.close()


def test_redis_cli_follows_moved(tmp_path: Path) -> None:
    with running_cluster(tmp_path, settings={"redirect": "always"}) as cluster:
        leader = cluster.wait_for_leader()
        follower = _follower(cluster, leader)
        plain = client(cluster, follower)
        with pytest.raises(redis.ResponseError, match=r"^[0-9]+ 127\.0\.0\.1:"):
            plain.set("k", "v")  # "always": every client is redirected, as by Redis Cluster
        port = str(cluster.spec(follower).client_port)
        cli = ["redis-cli", "-c", "-h", HOST, "-p", port]
        if cluster.password:
            cli += ["-a", cluster.password, "--no-auth-warning"]
        out = subprocess.run([*cli, "SET", "k", "v"], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "OK", out
        out = subprocess.run([*cli, "GET", "k"], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "v", out
