"""Small builders for the placement tests: a driver with nodes, regions, reports."""

from __future__ import annotations

from cairn.meta.region import Peer, PeerRole, Region, RegionEpoch
from cairn.placement import PlacementConfig, PlacementDriver, PlacementRules, RegionReport
from cairn.placement.operators import Operator

T0 = 1_000


def driver_with_nodes(
    zones: list[str | None],
    config: PlacementConfig | None = None,
    rules: PlacementRules | None = None,
) -> PlacementDriver:
    """A driver knowing nodes 1..n (in `zones`), all heartbeating at `T0`."""
    driver = PlacementDriver(config, rules)
    for node_id, zone in enumerate(zones, start=1):
        labels = {} if zone is None else {"zone": zone}
        assert driver.add_node(node_id, f"n{node_id}", f"c{node_id}", labels, 0).ok
        driver.node_heartbeat(node_id, T0)
    return driver


def region(
    region_id: int,
    nodes: list[int],
    *,
    learners: tuple[int, ...] = (),
    start: bytes = b"",
    end: bytes = b"",
    epoch: RegionEpoch | None = None,
) -> Region:
    """Region `region_id` with peer `100 * region_id + node` on each node (voters first)."""
    peers = tuple(
        Peer(region_id * 100 + n, n, PeerRole.LEARNER if n in learners else PeerRole.VOTER)
        for n in nodes
    )
    return Region(region_id, start, end, epoch or RegionEpoch(), peers)


def report(r: Region, leader_node: int | None = None, **fields: object) -> RegionReport:
    """A report of `r` led by the peer on `leader_node` (default: the first peer)."""
    peer = r.peers[0] if leader_node is None else r.peer_on(leader_node)
    assert peer is not None
    return RegionReport(r, peer.id, **fields)  # type: ignore[arg-type]


def heartbeat_all(driver: PlacementDriver, now_ms: int, skip: tuple[int, ...] = ()) -> None:
    """Every known node heartbeats at `now_ms`, except `skip`."""
    for row in driver.nodes():
        if row.id not in skip:
            driver.node_heartbeat(row.id, now_ms)


def only(ops: list[Operator]) -> Operator:
    """The single operator of `ops`."""
    assert len(ops) == 1, ops
    return ops[0]
