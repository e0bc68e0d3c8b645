"""Health: whether a region, and the cluster, can serve, and the reasons when not.

Both sources (a node on its own, the placement driver) judge health the same way, from the
same values the API shows, so `cairn ctl status` says "degraded" for the reasons a reader
of `cairn ctl nodes` and `regions` can see for themselves:

- a region whose voters are at least half on nodes that are down or removed has lost its
  quorum: it cannot serve (unavailable);
- a region without a known leader, with a voter on a node that is down or removed, or
  with fewer voters than declared, still has a quorum but is degraded (one more loss
  may take it);
- a range of the keyspace no region covers cannot be served; a node down is a degradation.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.admin.views import Health, NodeCounts, NodeStatus, NodeView, PeerView, RegionView

_GONE = (NodeStatus.DOWN, NodeStatus.REMOVED)


def region_health(voters: Sequence[int], leader: int | None, gone: frozenset[int]) -> Health:
    """A region's health from the nodes of its voters, its leader and the nodes gone."""
    lost = sum(1 for n in voters if n in gone)
    if not voters or 2 * lost >= len(voters):
        return Health.UNAVAILABLE
    if lost or leader is None or leader in gone:
        return Health.DEGRADED
    return Health.OK


def gone_nodes(nodes: Sequence[NodeView]) -> frozenset[int]:
    """The nodes that hold no live replica: down or removed."""
    return frozenset(n.id for n in nodes if n.status in _GONE)


def node_counts(nodes: Sequence[NodeView]) -> NodeCounts:
    """How many nodes are in each state."""
    by = {s: sum(1 for n in nodes if n.status is s) for s in NodeStatus}
    return NodeCounts(
        by[NodeStatus.UP], by[NodeStatus.DOWN], by[NodeStatus.DRAINING], by[NodeStatus.REMOVED]
    )


def problems(
    nodes: Sequence[NodeView],
    regions: Sequence[RegionView],
    *,
    under_replicated: int = 0,
    gaps: int = 0,
) -> tuple[Health, tuple[str, ...]]:
    """The cluster's health and why, worst first."""
    worst, found = Health.OK, []
    lost = [r.id for r in regions if r.health is Health.UNAVAILABLE]
    if gaps:
        worst = Health.UNAVAILABLE
        found.append(f"{gaps} range(s) of the keyspace are covered by no region")
    if lost:
        worst = Health.UNAVAILABLE
        found.append(f"region(s) {_ids(lost)} lost their quorum")
    gone = gone_nodes(nodes)
    degraded = [r for r in regions if r.health is Health.DEGRADED]
    leaderless = [r.id for r in degraded if r.leader is None or r.leader in gone]
    exposed = [r.id for r in degraded if any(_voter_gone(p, gone) for p in r.peers)]
    down = [n.id for n in nodes if n.status is NodeStatus.DOWN]
    if leaderless:
        found.append(f"region(s) {_ids(leaderless)} have no leader")
    if exposed:
        found.append(f"region(s) {_ids(exposed)} have a replica on a node down or removed")
    if down:
        found.append(f"node(s) {_ids(down)} down")
    if under_replicated:
        found.append(f"{under_replicated} region(s) have fewer replicas than declared")
    if found and worst is Health.OK:
        worst = Health.DEGRADED
    return worst, tuple(found)


def _voter_gone(peer: PeerView, gone: frozenset[int]) -> bool:
    return peer.role == "voter" and peer.node_id in gone


def _ids(ids: Sequence[int], shown: int = 8) -> str:
    text = ", ".join(map(str, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
