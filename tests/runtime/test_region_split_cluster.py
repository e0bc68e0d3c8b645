"""Splits and merges in a real 3-node cluster on LMDB, driven by redis-py's RedisCluster.

A region is split while a cluster client writes (every acknowledged key stays readable,
CLUSTER SLOTS shows the new ranges, the client's stale routes are corrected by MOVED),
every node is killed with SIGKILL right after a split and restarted (the split is whole),
and the two halves are merged back.

The nodes are `cairn server` processes run by this file as a script: a `Node` with three
test commands standing for the node-level calls the placement agent makes
(`RegionHost.split`, `prepare_merge`, `commit_merge` on a region the node leads):
`CAIRN.SPLIT region slot new-region`, `CAIRN.PREPAREMERGE source target`,
`CAIRN.COMMITMERGE source target`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from cairn.meta.region import slot_bound
from cairn.resp.reply import OK, ErrorReply, Reply
from cairn.runtime.local_cluster import HOST, LocalCluster
from cairn.runtime.node import Node
from cairn.runtime.region_layout import peer_id
from cairn.runtime.server import ClientConnection, Done
from cairn.shard.region_machine import MergeDone, MergePrepared, SplitDone
from cairn.shard.replica import Completion, Outcome

FAST = (
    "initial_regions = 2\n"
    "[raft]\ntick_ms = 10\nelection_ticks = 30\nheartbeat_ticks = 5\nmax_clock_drift_ticks = 5\n"
    "[limits]\nrequest_timeout_ms = 3000\n"
)


# -- the node process ---------------------------------------------------------------------


class SplittingNode(Node):
    """A node answering the three test commands (module docstring)."""

    def execute(self, client: ClientConnection, args: list[bytes], done: Done) -> None:
        name = args[0].lower()
        handler = {
            b"cairn.split": self._split,
            b"cairn.preparemerge": self._prepare,
            b"cairn.commitmerge": self._commit,
        }.get(name)
        if handler is None:
            super().execute(client, args, done)
            return
        try:
            handler([int(a) for a in args[1:]], done)
        except (ValueError, KeyError) as exc:
            done(ErrorReply(f"ERR {type(exc).__name__}: {exc}"))

    def _split(self, args: list[int], done: Done) -> None:
        region_id, slot, new_id = args
        peer = self.host.peers[region_id]
        ids = [peer_id(new_id, p.node_id) for p in peer.region.peers]
        at = slot_bound(slot)
        self.host.split(region_id, peer.region.epoch, at, new_id, ids, _answer(SplitDone, done))

    def _prepare(self, args: list[int], done: Done) -> None:
        source, target = args
        epoch = self.host.peers[source].region.epoch
        self.host.prepare_merge(source, epoch, target, _answer(MergePrepared, done))

    def _commit(self, args: list[int], done: Done) -> None:
        source_id, target_id = args
        source, target = self.host.peers[source_id], self.host.peers[target_id]
        if source.machine.merging_into != target_id:
            done(ErrorReply("ERR the source is not frozen here yet"))
            return
        data = source.machine.inner.snapshot()
        answer = _answer(MergeDone, done)
        self.host.commit_merge(target_id, target.region.epoch, source.region, data, answer)


def _answer(kind: type, done: Done) -> Callable[[Completion], None]:
    def on_done(c: Completion) -> None:
        ok = c.outcome is Outcome.OK and isinstance(c.value, kind)
        reply: Reply = OK if ok else ErrorReply(f"ERR {c.outcome.name} {c.reason} {c.value}")
        done(reply)

    return on_done


def main() -> None:
    import cairn.runtime.node as node_module
    from cairn.cli.server_cmd import run_forever
    from cairn.runtime.config import load

    node_module.Node = SplittingNode  # type: ignore[misc]
    sys.exit(run_forever(load(Path(sys.argv[2]), {})))


# -- the cluster ---------------------------------------------------------------------------


class SplitCluster(LocalCluster):
    """A `LocalCluster` whose nodes are `SplittingNode`s."""

    def start(self, node_id: int | None = None) -> None:
        if node_id is None:
            self.write_configs()
            for n in self.specs:
                self.start(n.node_id)
            return
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return
        n = self.spec(node_id)
        with n.log_path.open("ab") as log:
            self.procs[node_id] = subprocess.Popen(
                [sys.executable, __file__, "--config", str(n.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.env},
            )


@contextmanager
def split_cluster(root: Path) -> Iterator[SplitCluster]:
    cluster = SplitCluster.plan(root, 3, extra=FAST)
    assert isinstance(cluster, SplitCluster)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def node_client(cluster: LocalCluster, node_id: int) -> redis.Redis:
    port = cluster.spec(node_id).client_port
    return redis.Redis(host=HOST, port=port, socket_timeout=3)


def region_leaders(cluster: LocalCluster, node_id: int) -> dict[int, int]:
    """region id -> leader node, as node `node_id` sees it (0: none known)."""
    info: dict[str, Any] = dict(node_client(cluster, node_id).info("raft"))
    return {
        int(name.removeprefix("raft_region")): int(value["leader"])
        for name, value in info.items()
        if name.startswith("raft_region") and isinstance(value, dict)
    }


def wait_for_regions(
    cluster: LocalCluster, regions: set[int], timeout: float = 30
) -> dict[int, int]:
    """Until every node hosts exactly `regions`, each with the same known leader."""
    deadline = time.monotonic() + timeout
    seen: list[dict[int, int]] = []
    while time.monotonic() < deadline:
        try:
            seen = [region_leaders(cluster, n) for n in (1, 2, 3)]
        except redis.RedisError:
            seen = []
        if (
            seen
            and all(set(s) == regions and all(s.values()) for s in seen)
            and seen[0] == seen[1] == seen[2]
        ):
            return seen[0]
        time.sleep(0.1)
    raise TimeoutError(f"regions {sorted(regions)} not settled: {seen}")


def admin(cluster: LocalCluster, node_id: int, *args: object) -> None:
    """Run a test command on `node_id`, retrying while the cluster settles."""
    deadline = time.monotonic() + 20
    while True:
        try:
            assert node_client(cluster, node_id).execute_command(*args) in (b"OK", "OK", True)
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def slot_ranges(cluster: LocalCluster) -> list[tuple[int, int]]:
    rows = node_client(cluster, 1).execute_command("CLUSTER", "SLOTS")
    return sorted((int(r[0]), int(r[1])) for r in rows)


def cluster_client(cluster: LocalCluster) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(HOST, cluster.spec(1).client_port)],
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 30),
        socket_timeout=3,
    )


class Writer(threading.Thread):
    """SETs distinct keys through one RedisCluster until stopped; keeps what was acked."""

    def __init__(self, rc: RedisCluster, prefix: str) -> None:
        super().__init__(daemon=True)
        self.rc, self.prefix = rc, prefix
        self.acked: dict[str, str] = {}
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            key, value = f"{self.prefix}{i}", f"v{i}"
            try:
                if self.rc.set(key, value):
                    self.acked[key] = value
            except redis.RedisError:
                self.failed += 1
            i += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def assert_readable(cluster: LocalCluster, acked: dict[str, str]) -> None:
    rc = cluster_client(cluster)
    try:
        keys = sorted(acked)
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            values = [rc.get(k) for k in chunk]
            missing = [k for k, v in zip(chunk, values, strict=True) if v != acked[k].encode()]
            assert not missing, f"{len(missing)} acknowledged keys lost, e.g. {missing[:5]}"
    finally:
        rc.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SplitCluster]:
    with split_cluster(tmp_path_factory.mktemp("split")) as started:
        wait_for_regions(started, {1, 2})
        yield started


def test_a_split_under_cluster_write_load_keeps_every_acked_key(cluster: SplitCluster) -> None:
    rc = cluster_client(cluster)
    writer = Writer(rc, "w")
    writer.start()
    try:
        while len(writer.acked) < 300:
            time.sleep(0.05)
        leaders = wait_for_regions(cluster, {1, 2})
        admin(cluster, leaders[1], "CAIRN.SPLIT", 1, 4096, 3)
        wait_for_regions(cluster, {1, 2, 3})
        acked_at_split = len(writer.acked)
        while len(writer.acked) < acked_at_split + 300:
            time.sleep(0.05)
    finally:
        writer.stop()
        rc.close()
    assert slot_ranges(cluster) == [(0, 4095), (4096, 8191), (8192, 16383)]
    assert_readable(cluster, writer.acked)
    moved = [k for k in list(writer.acked)[acked_at_split:] if 4096 <= _slot(k) < 8192]
    assert moved, "the client kept writing into the split-off range through stale routes"


def test_kill_9_of_every_node_right_after_a_split_keeps_it_whole(cluster: SplitCluster) -> None:
    rc = cluster_client(cluster)
    acked = {f"c{i}": f"v{i}" for i in range(300)}
    for key, value in acked.items():
        rc.set(key, value)
    rc.close()
    leaders = wait_for_regions(cluster, {1, 2, 3})
    admin(cluster, leaders[2], "CAIRN.SPLIT", 2, 12288, 4)
    for node in (1, 2, 3):
        cluster.kill(node)
    cluster.start()
    wait_for_regions(cluster, {1, 2, 3, 4}, timeout=60)
    assert slot_ranges(cluster) == [(0, 4095), (4096, 8191), (8192, 12287), (12288, 16383)]
    assert_readable(cluster, acked)


def test_merging_the_halves_back(cluster: SplitCluster) -> None:
    rc = cluster_client(cluster)
    acked = {f"m{i}": f"v{i}" for i in range(300)}
    for key, value in acked.items():
        rc.set(key, value)
    leaders = wait_for_regions(cluster, {1, 2, 3, 4}, timeout=60)
    admin(cluster, leaders[4], "CAIRN.PREPAREMERGE", 4, 2)
    admin(cluster, leaders[2], "CAIRN.COMMITMERGE", 4, 2)
    wait_for_regions(cluster, {1, 2, 3})
    assert slot_ranges(cluster) == [(0, 4095), (4096, 8191), (8192, 16383)]
    assert_readable(cluster, acked)
    late = {f"after{i}": "x" for i in range(100)}
    for key, value in late.items():
        rc.set(key, value)
    rc.close()
    assert_readable(cluster, late)


def _slot(key: str) -> int:
    from cairn.store.slot import key_slot

    return key_slot(key.encode())


if __name__ == "__main__":
    main()
