"""Durability and failover of real clusters: kill -9 under load, histories checked.

Acknowledged writes must survive kill -9 of the leader and of every node at once; under
steady load from several clients, killing the leader must only pause writes, and the
recorded history must be linearizable (which also proves no acknowledged write was lost:
later reads would miss it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cluster_fixture import client, running_cluster

from cairn.chaos.workload import RegisterWorkload
from cairn.check.history import OpType
from cairn.check.linearizability import check_history
from cairn.runtime.local_cluster import HOST, LocalCluster


def _write_all(cluster: LocalCluster, keys: range, value: str) -> None:
    c = client(cluster, cluster.wait_for_leader(), decode_responses=True)
    for i in keys:
        assert c.set(f"d:{i}", f"{value}{i}") is True
    c.close()


def _assert_all(cluster: LocalCluster, node_id: int, expected: dict[str, str]) -> None:
    c = client(cluster, node_id, decode_responses=True)
    names = sorted(expected)
    values = c.mget(names)
    c.close()
    missing = [k for k, v in zip(names, values, strict=True) if v != expected[k]]
    assert not missing, f"{len(missing)} acknowledged keys lost or wrong, e.g. {missing[:5]}"


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        _write_all(cluster, range(300), "a")
        expected = {f"d:{i}": f"a{i}" for i in range(300)}
        leader = cluster.wait_for_leader()
        cluster.kill(leader)
        new_leader = cluster.wait_for_leader()
        assert new_leader != leader
        _assert_all(cluster, new_leader, expected)
        _write_all(cluster, range(300, 500), "b")
        expected |= {f"d:{i}": f"b{i}" for i in range(300, 500)}
        cluster.start(leader)
        for n in cluster.specs:
            cluster.kill(n.node_id)
        for n in cluster.specs:
            cluster.start(n.node_id)
        leader = cluster.wait_for_leader()
        for n in cluster.specs:
            _assert_all(cluster, n.node_id, expected)


@pytest.fixture
def loaded_cluster(tmp_path: Path) -> Iterator[tuple[LocalCluster, RegisterWorkload]]:
    with running_cluster(tmp_path) as cluster:
        endpoints = [(HOST, n.client_port) for n in cluster.specs]
        workload = RegisterWorkload(endpoints, workers=6, seed=7)
        workload.start()
        try:
            yield cluster, workload
        finally:
            workload.stop()


def test_failover_under_load_is_linearizable(
    loaded_cluster: tuple[LocalCluster, RegisterWorkload],
) -> None:
    cluster, workload = loaded_cluster
    time.sleep(2)
    leader = cluster.wait_for_leader()
    ok_before = _count_ok_writes(workload)
    cluster.kill(leader)
    killed_at = time.monotonic()
    new_leader = cluster.wait_for_leader()
    time.sleep(2)
    ok_after = _count_ok_writes(workload)
    assert ok_after > ok_before, "writes did not resume after the election"
    cluster.start(leader)
    time.sleep(1)
    workload.stop()
    recovery = _first_ok_write_after(workload, killed_at)
    history = workload.history.ops
    verdict = check_history(history)
    assert verdict.ok, f"{verdict.outcome}: {verdict.explanation}"
    oks = sum(1 for op in history if op.type is OpType.OK)
    print(
        f"\nfailover: leader {leader} -> {new_leader}, first write acknowledged "
        f"{recovery:.2f} s after kill -9; {oks} ok operations, "
        f"{verdict.ops_checked} checked, linearizable"
    )
    assert oks > 100


def _count_ok_writes(workload: RegisterWorkload) -> int:
    with workload.history.lock:
        return sum(
            1 for op in workload.history.ops if op.type is OpType.OK and op.f in ("put", "append")
        )


def _first_ok_write_after(workload: RegisterWorkload, t: float) -> float:
    ns = int(t * 1e9)
    times = [
        op.time
        for op in workload.history.ops
        if op.type is OpType.OK and op.f in ("put", "append") and op.time > ns
    ]
    return (min(times) - ns) / 1e9 if times else float("inf")


def test_reads_and_writes_wait_for_an_election(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(n.node_id for n in cluster.specs if n.node_id != leader)
        other = next(n.node_id for n in cluster.specs if n.node_id not in (leader, follower))
        cluster.kill(leader)
        cluster.kill(other)
        c = client(cluster, follower, socket_timeout=10)
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TryAgainError, match="no leader is available"):
            c.get("x")
        assert time.monotonic() - started >= 2.5  # waited for request_timeout_ms
        c.close()


def test_a_node_whose_fsync_fails_acknowledges_nothing_more(tmp_path: Path) -> None:
    with running_cluster(tmp_path, env={"CAIRN_FAILPOINTS": ""}) as cluster:
        leader = cluster.wait_for_leader()
        c = client(cluster, leader, decode_responses=True, socket_timeout=10)
        assert c.set("before", "1") is True
        assert c.execute_command("CAIRN.FAILPOINT", "storage.lmdb.sync", "return(EIO)") == "OK"
        with pytest.raises(redis.RedisError):
            c.set("during", "1")
        c.close()
        proc = cluster.procs[leader]
        assert proc.wait(timeout=20) == 1, "a node with a failed disk must stop"
        log = cluster.spec(leader).log_path.read_text()
        assert "will acknowledge nothing more" in log
        new_leader = cluster.wait_for_leader()
        assert new_leader != leader
        survivor = client(cluster, new_leader, decode_responses=True)
        assert survivor.get("before") == "1"
        assert survivor.set("after", "1") is True
        survivor.close()


def test_failpoint_command_is_unknown_in_production(tmp_path: Path) -> None:
    with running_cluster(tmp_path, nodes=1) as cluster:
        c = client(cluster, 1)
        with pytest.raises(redis.ResponseError, match="unknown command"):
            c.execute_command("CAIRN.FAILPOINT", "storage.lmdb.sync", "return")
        c.close()


def test_sigterm_stops_the_leader_gracefully_under_load(
    loaded_cluster: tuple[LocalCluster, RegisterWorkload],
) -> None:
    cluster, workload = loaded_cluster
    time.sleep(1)
    leader = cluster.wait_for_leader()
    cluster.stop(leader)
    assert cluster.procs[leader].returncode == 0
    assert "stopped" in cluster.spec(leader).log_path.read_text()
    new_leader = cluster.wait_for_leader(timeout=10)
    assert new_leader != leader
    time.sleep(1)
    workload.stop()
    verdict = check_history(workload.history.ops)
    assert verdict.ok, f"{verdict.outcome}: {verdict.explanation}"


def test_a_lagging_follower_catches_up_by_snapshot(tmp_path: Path) -> None:
    with running_cluster(tmp_path, raft={"snapshot_threshold": 50}) as cluster:
        leader = cluster.wait_for_leader()
        lagging = next(n.node_id for n in cluster.specs if n.node_id != leader)
        cluster.stop(lagging)
        c = client(cluster, leader, decode_responses=True)
        pipe = c.pipeline(transaction=False)
        for i in range(400):
            pipe.set(f"snap:{i}", "x" * 200)
        assert all(pipe.execute())
        c.close()
        cluster.start(lagging)
        cluster.wait_serving(lagging)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = client(cluster, lagging).info()
            if info.get("db0", {}).get("keys") == 400:
                break
            time.sleep(0.2)
        assert info.get("db0", {}).get("keys") == 400
        assert info["raft_snapshots_installed"] >= 1, "it should have caught up by snapshot"
