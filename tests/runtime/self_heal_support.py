"""Shared parts of the self-healing tests: a 5-node cluster with the placement group on its
first 3 nodes, a steady RedisCluster write load in a thread, and waits on the placement
driver's views through the admin API (the client tries every node's endpoint)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from cluster_fixture import running_cluster
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from cairn.admin.client import AdminClient, AdminClientError
from cairn.admin.views import RegionView
from cairn.runtime.local_cluster import HOST, LocalCluster

REGIONS = 6
SETTINGS = {
    "initial_regions": REGIONS,
    "down_after_s": 3,
    "placement_heartbeat_ms": 200,
}


@contextmanager
def healing_cluster(
    root: Path, nodes: int = 5, settings: dict[str, object] | None = None, **kwargs: object
) -> Iterator[LocalCluster]:
    """A running cluster whose driver has settled every region on 3 voters (`settings`
    override `SETTINGS`; other arguments go to `running_cluster`)."""
    with running_cluster(
        root, nodes=nodes, settings=SETTINGS | (settings or {}), **kwargs
    ) as cluster:
        wait_for(cluster, lambda regions: settled(regions, set(range(1, nodes + 1))), 45)
        yield cluster


def admin(cluster: LocalCluster) -> AdminClient:
    """An admin client over every node's endpoint."""
    endpoints = [f"{HOST}:{s.admin_port}" for s in cluster.specs]
    return AdminClient(endpoints, token=cluster.admin_token, timeout=2)


def driver_regions(cluster: LocalCluster) -> list[RegionView] | None:
    """The placement driver's regions (None when no endpoint serves them right now)."""
    try:
        if not admin(cluster).status().placement_running:
            return None
        return list(admin(cluster).regions())
    except AdminClientError:
        return None


def voters(region: RegionView) -> set[int]:
    """The nodes holding a voter of `region`."""
    return {p.node_id for p in region.peers if p.role == "voter"}


def settled(regions: list[RegionView], live: set[int]) -> bool:
    """Every region has exactly 3 voters, all on `live` nodes, no learner, a leader."""
    return bool(regions) and all(
        len(voters(r)) == 3
        and voters(r) <= live
        and len(r.peers) == 3
        and r.leader in live
        and r.operator is None
        for r in regions
    )


def wait_for(
    cluster: LocalCluster, done: Callable[[list[RegionView]], bool], timeout: float
) -> list[RegionView]:
    """Poll the driver's regions until `done` holds; the regions then."""
    deadline = time.monotonic() + timeout
    regions: list[RegionView] | None = None
    while time.monotonic() < deadline:
        regions = driver_regions(cluster)
        if regions is not None and done(regions):
            return regions
        time.sleep(0.3)
    raise TimeoutError(f"placement did not settle within {timeout} s: {regions}")


@dataclass
class WriteLoad:
    """SETs of fresh keys through redis-py's RedisCluster in a thread; every acknowledged
    one is remembered (a failed one may or may not have been applied: not checked)."""

    cluster: LocalCluster
    prefix: str
    value_size: int = 0
    """Values are padded to this many bytes (0: short values)."""
    acked: dict[str, str] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def client(self) -> RedisCluster:
        nodes = [ClusterNode(HOST, s.client_port) for s in self.cluster.specs]
        return RedisCluster(
            startup_nodes=nodes,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 10),
            socket_timeout=3,
            require_full_coverage=False,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rc = self.client()
        i = 0
        while not self._stop.is_set():
            key, value = f"{self.prefix}:{i}", f"v{i}".ljust(self.value_size, "x")
            try:
                if rc.set(key, value):
                    self.acked[key] = value
            except redis.RedisError:
                self.errors += 1
                time.sleep(0.05)
            i += 1
        rc.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def verify(self, least: int = 50) -> None:
        """The load (stopped) made progress, and no acknowledged write is lost."""
        assert len(self.acked) > least, f"the load made no progress ({self.errors} errors)"
        self.check()

    def check(self) -> None:
        """Every acknowledged write reads back (through the cluster, once it serves)."""
        rc = self.client()
        try:
            keys = sorted(self.acked)
            for at in range(0, len(keys), 100):
                chunk = keys[at : at + 100]
                got = [_get(rc, k) for k in chunk]
                lost = [k for k, v in zip(chunk, got, strict=True) if v != self.acked[k]]
                assert not lost, f"acknowledged writes lost: {lost[:10]}"
        finally:
            rc.close()


def _get(rc: RedisCluster, key: str) -> str | None:
    for _ in range(50):
        try:
            value = rc.get(key)
            return None if value is None else bytes(value).decode()
        except redis.RedisError:
            time.sleep(0.1)
    raise AssertionError(f"{key} could not be read")
