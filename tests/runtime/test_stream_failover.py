"""A stream through failover: kill -9 the leader of the stream's region while producers
XADD and a consumer group of three reads, acknowledges and claims; restart it; then the
history and a final read must show no acknowledged entry missing, no id repeated, and a
pending entries list equal to what the consumers were given and did not acknowledge.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from cluster_fixture import client, running_cluster

from cairn.chaos.stream_workload import StreamWorkload
from cairn.check.history import OpType
from cairn.check.stream import StreamFinal, StreamOp, check_stream, stream_operations
from cairn.runtime.local_cluster import HOST, LocalCluster

KEY = "stream:f"


def _final(cluster: LocalCluster, workload: StreamWorkload) -> StreamFinal:
    deadline = time.monotonic() + 20
    while True:
        try:
            with client(cluster, cluster.wait_for_leader(), decode_responses=True) as c:
                final = workload.final_read(c)
            assert isinstance(final, dict)
            return final[KEY]
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _expected_pel(ops: list[StreamOp]) -> tuple[set[str], set[str], set[str]]:
    """What the consumers were given and did not acknowledge; the ids whose XACKs were all
    unknown (they may be pending or not); and whether unknown reads happened (their
    entries, never seen, may be pending too)."""
    given: set[str] = set()
    acked: set[str] = set()
    maybe_acked: set[str] = set()
    unknown_reads: set[str] = set()
    for op in ops:
        if op.f in ("xreadgroup", "xautoclaim"):
            if op.outcome is OpType.INFO:
                unknown_reads.add(op.consumer)
            given.update(i for i, _ in op.entries())
        elif op.f == "xack" and op.outcome is OpType.OK:
            acked.update(op.ids())
        elif op.f == "xack" and op.outcome is OpType.INFO:
            maybe_acked.update(op.ids())
    return given - acked, maybe_acked - acked, unknown_reads


def test_kill_9_of_the_streams_leader_loses_and_repeats_nothing(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        endpoints = [(HOST, n.client_port) for n in cluster.specs]
        workload = StreamWorkload(
            endpoints,
            workers=5,
            timeout=5.0,
            seed=11,
            keys=(KEY,),
            producer_every=4,
            claim_idle_ms=1500,
        )
        workload.start()
        try:
            time.sleep(2)
            leader = cluster.wait_for_leader()  # one region: the stream's
            cluster.kill(leader)
            new_leader = cluster.wait_for_leader()
            time.sleep(2)
            cluster.start(leader)
            time.sleep(1.5)
        finally:
            workload.stop()
        final = _final(cluster, workload)
    history = workload.history.snapshot()
    verdict = check_stream(history, {KEY: final})
    print(f"\nleader {leader} -> {new_leader}: {verdict.stats.describe()}")
    assert verdict.ok, "\n".join(a.text for a in verdict.anomalies[:10])
    ids = [i for i, _ in final.entries]
    assert len(ids) == len(set(ids)) and verdict.stats.lost == 0
    pel = {i for i, _ in final.pending}
    expected, maybe_acked, unknown_readers = _expected_pel(stream_operations(history))
    assert expected - maybe_acked <= pel, "given, never acknowledged, yet not pending"
    extra = pel - expected
    assert all(consumer in unknown_readers for i, consumer in final.pending if i in extra), (
        f"pending yet never given (and no unknown read to explain it): {sorted(extra)[:5]}"
    )
    s = verdict.stats
    assert s.added > 50 and s.delivered > 50 and s.acked > 20, s.describe()
    assert final.last_delivered is not None
