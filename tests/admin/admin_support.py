"""Shared by the admin and ctl tests: a populated placement driver, sources, a live server.

`served` runs a real `AdminServer` on 127.0.0.1 (port 0) in an event loop on a background
thread, so blocking clients (`AdminClient`, click's CliRunner) can talk to it from the test;
it knows an admin and a read-only token, and `http` sends the admin one unless told not to.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cairn.admin import AdminServer, AdminSource, PlacementSource
from cairn.admin.access import Access
from cairn.admin.metrics import MetricsSnapshot, RegionMetrics
from cairn.admin.node_source import StaticLayoutSource, topology_views
from cairn.admin.views import NodeView, RegionView
from cairn.meta.region import Peer, PeerRole, Region, slot_bound
from cairn.placement import PlacementDriver
from cairn.placement.model import RegionReport
from cairn.runtime.admin_tokens import Role, TokenEntry, digest, write_tokens
from cairn.shard.topology import NodeAddress, Topology

T0 = 1_700_000_000_000
"""The driver's clock at the start (milliseconds of wall time)."""


def region(
    region_id: int, nodes: list[int], start: bytes, end: bytes, learners: tuple[int, ...] = ()
) -> Region:
    """Region `region_id` with peer `100 * region_id + node` on each of `nodes`."""
    peers = tuple(
        Peer(100 * region_id + n, n, PeerRole.LEARNER if n in learners else PeerRole.VOTER)
        for n in nodes
    )
    return Region(region_id, start, end, peers=peers)


def sample_driver() -> PlacementDriver:
    """Four nodes (zones a, b, c, a) and two regions split at slot 8192.

    Region 1 (slots 0-8191) is on nodes 1, 2, 3, led by node 1, with 1000 keys; region 2
    (slots 8192-16383) is on nodes 2, 3, 4 with a learner on 1, led by node 2.
    """
    driver = PlacementDriver()
    for n, zone in zip((1, 2, 3, 4), "abca", strict=True):
        driver.add_node(n, f"10.0.0.{n}:17001", f"10.0.0.{n}:7001", {"zone": zone}, T0)
        driver.node_heartbeat(n, T0)
    mid = slot_bound(8192)
    r1 = region(1, [1, 2, 3], b"", mid)
    r2 = region(2, [2, 3, 4, 1], mid, b"", learners=(1,))
    driver.region_heartbeat(
        RegionReport(r1, 101, approximate_size=1 << 20, approximate_keys=1000), T0
    )
    driver.region_heartbeat(RegionReport(r2, 202, approximate_size=2048, approximate_keys=7), T0)
    return driver


def sample_metrics() -> MetricsSnapshot:
    """A node's figures with two regions, one of them led here."""
    lead = RegionMetrics(1, "leader", 7, 120, 118, 1, 40, 2, 0, 300, proposals=99)
    follow = RegionMetrics(2, "follower", 3, 50, 50, 2, 0, 0, 1, 80)
    return MetricsSnapshot(1, 12.5, 3, 10, 1, (lead, follow), {"get": 5, "set": 2})


class Clock:
    """A settable millisecond clock for the driver's actions."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def placement_source(driver: PlacementDriver) -> PlacementSource:
    """The admin source of node 1 over `driver`."""
    return PlacementSource(driver, "test-cluster", 1, Clock(T0 + 500), sample_metrics)


class StaticSource(StaticLayoutSource):
    """An `AdminSource` with no placement driver, over a fixed topology (as a node today).

    `fail` set to an exception makes every read raise it (500s, 503s)."""

    cluster_id = "static"
    node_id = 1

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.fail: Exception | None = None

    def _views(self) -> tuple[list[NodeView], list[RegionView]]:
        if self.fail is not None:
            raise self.fail
        peers = {n: f"{a.host}:{a.bus_port}" for n, a in self.topology.nodes.items()}
        return topology_views(self.topology, peers, lambda r: None)

    def metrics(self) -> MetricsSnapshot:
        return MetricsSnapshot(1, 1.0, 0, 0, 0)


def static_topology(down: tuple[int, ...] = (), leader: int | None = 1) -> Topology:
    """One region over everything on nodes 1-3 (as a single-group node sees it)."""
    nodes = {n: NodeAddress("127.0.0.1", 7000 + n, 17000 + n) for n in (1, 2, 3)}
    leaders = {} if leader is None else {1: leader}
    return Topology([region(1, [1, 2, 3], b"", b"")], leaders, nodes, 1, "static", down=down)


ADMIN_TOKEN = "cairn_test-admin-token"
READ_TOKEN = "cairn_test-read-token"


def write_test_tokens(path: Path) -> Path:
    """A tokens file at `path` holding `ADMIN_TOKEN` (id "adm") and `READ_TOKEN` ("rd")."""
    write_tokens(
        path,
        (
            TokenEntry("adm", "test admin", Role.ADMIN, digest(ADMIN_TOKEN), 0),
            TokenEntry("rd", "test reader", Role.READ, digest(READ_TOKEN), 0),
        ),
    )
    return path


@contextmanager
def served(source: AdminSource, access: Access | None = None) -> Iterator[str]:
    """A live admin server over `source` (by default knowing `ADMIN_TOKEN` and
    `READ_TOKEN`); yields its `host:port`."""
    with tempfile.TemporaryDirectory() as tmp:
        if access is None:
            access = Access.open(write_test_tokens(Path(tmp) / "tokens.json"))
        with _serving(source, access) as address:
            yield address


@contextmanager
def _serving(source: AdminSource, access: Access) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = AdminServer(source, "127.0.0.1", 0, access=access)
    thread = threading.Thread(target=loop.run_forever, name="admin-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        host, port = server.address
        yield f"{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = ADMIN_TOKEN,
) -> tuple[int, str, Any]:
    """(status, content type, decoded JSON or text) of one request, errors included.

    As `cairn ctl` does, it sends `token` as the bearer token and, but for GET and HEAD,
    `Content-Type: application/json`; `headers` override both."""
    sent = {} if token is None else {"Authorization": f"Bearer {token}"}
    if method not in ("GET", "HEAD"):
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=sent | (headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, ctype, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers["Content-Type"], exc.read()
    text = raw.decode()
    return status, ctype, json.loads(text) if ctype.startswith("application/json") else text
