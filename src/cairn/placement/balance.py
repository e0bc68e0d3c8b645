"""The schedulers that move leaders and replicas: drain, leader balance, region balance.

* `check_drain_leader` — a region led from a draining node hands its leadership to the
  healthy voter on the node with fewest leaders (cheap, so a drain moves leaders first).
* `balance_leaders` — a leader moves from node A to a voter of the same region on node B
  when A leads more than `leader_balance_tolerance` more regions than B.
* `balance_regions` — a replica moves from node A to node B when A holds more than
  `region_balance_tolerance` more replicas than B, the region is not on B already, and the
  move does not crowd a zone more than it was. A node that joins empty receives load this way.

Why they settle: a move is made only when the source exceeds the target by at least
tolerance + 1 >= 2, so it strictly lowers the sum of squared counts; that sum cannot fall
forever, so the schedulers stop, and a move is never undone by the reverse move (that
would need the target to exceed the source by two afterwards). Counts include operators in
flight (see `ScheduleContext`), so one tick does not send everything to the same node.
"""

from __future__ import annotations

from cairn.meta.region import Peer
from cairn.placement.context import ScheduleContext
from cairn.placement.model import NodeAdmin, RegionInfo
from cairn.placement.operators import Operator, OperatorKind
from cairn.placement.split_merge import is_settled
from cairn.placement.steps import AddLearner, PromoteLearner, RemovePeer, Step, TransferLeader


def _leader_candidates(ctx: ScheduleContext, info: RegionInfo) -> list[Peer]:
    """Voters that could lead: healthy, caught up, on a schedulable node, not the leader."""
    report = info.report
    return [
        p
        for p in info.region.voters()
        if p.id != report.leader_peer_id
        and p.id not in report.pending_peers
        and ctx.peer_is_healthy(info, p)
        and ctx.is_schedulable(p.node_id)
    ]


def _fewest_leaders(ctx: ScheduleContext, peers: list[Peer]) -> Peer:
    return min(peers, key=lambda p: (ctx.leader_count[p.node_id], p.node_id))


def check_drain_leader(ctx: ScheduleContext, info: RegionInfo) -> Operator | None:
    """Move the region's leadership off a draining node."""
    leader = info.report.leader_node_id
    node = None if leader is None else ctx.nodes.get(leader)
    if node is None or node.admin is not NodeAdmin.DRAINING:
        return None
    candidates = _leader_candidates(ctx, info)
    if not candidates:
        return None
    to = _fewest_leaders(ctx, candidates)
    step = TransferLeader(to.node_id, to.id)
    why = f"node {node.id} is draining; leader to node {to.node_id}"
    return ctx.start(info, OperatorKind.DRAIN_LEADER, (step,), why)


def _in_flight(ctx: ScheduleContext, kind: OperatorKind) -> int:
    ops = {op.id: op for op in ctx.running.values()}
    return sum(op.kind is kind for op in ops.values())


def balance_leaders(ctx: ScheduleContext) -> Operator | None:
    """One leader transfer that reduces the leader-count imbalance, if any is due."""
    if _in_flight(ctx, OperatorKind.BALANCE_LEADER) >= ctx.config.max_leader_balance_operators:
        return None
    nodes = ctx.schedulable_nodes()
    tolerance = ctx.config.leader_balance_tolerance
    for src in sorted(nodes, key=lambda n: (-ctx.leader_count[n], n)):
        for info in ctx.regions:
            if info.report.leader_node_id != src or ctx.is_busy(info.region.id):
                continue
            candidates = _leader_candidates(ctx, info)
            if not candidates:
                continue
            to = _fewest_leaders(ctx, candidates)
            if ctx.leader_count[src] - ctx.leader_count[to.node_id] <= tolerance:
                continue
            why = (
                f"node {src} leads {ctx.leader_count[src]}, "
                f"node {to.node_id} leads {ctx.leader_count[to.node_id]}"
            )
            step = TransferLeader(to.node_id, to.id)
            op = ctx.start(info, OperatorKind.BALANCE_LEADER, (step,), why)
            if op is not None:
                return op
    return None


def _zone_ok(ctx: ScheduleContext, info: RegionInfo, moving: Peer, dst: int) -> bool:
    """Whether moving `moving` to node `dst` leaves no zone more crowded than before."""
    _, label = ctx.rule(info.region)
    voters = list(info.region.voters())
    before = ctx.zone_counts(voters, label)
    after = ctx.zone_counts([p for p in voters if p.id != moving.id], label)
    return after[ctx.zone(dst, label)] + 1 <= before[ctx.zone(moving.node_id, label)]


def _move_from(ctx: ScheduleContext, src: int, dst: int) -> Operator | None:
    movable: list[tuple[bool, int, RegionInfo, Peer]] = []
    for info in ctx.regions:
        peer = info.region.peer_on(src)
        if peer is None or info.region.peer_on(dst) is not None or ctx.is_busy(info.region.id):
            continue
        if is_settled(ctx, info) and _zone_ok(ctx, info, peer, dst):
            movable.append((peer.id == info.report.leader_peer_id, info.region.id, info, peer))
    if not movable:
        return None
    _, _, info, peer = min(movable, key=lambda m: (m[0], m[1]))
    new_peer = ctx.alloc_ids(1)
    steps: tuple[Step, ...] = (
        AddLearner(dst, new_peer),
        PromoteLearner(dst, new_peer),
        RemovePeer(src, peer.id),
    )
    why = (
        f"node {src} holds {ctx.region_count[src]} replicas, "
        f"node {dst} holds {ctx.region_count[dst]}"
    )
    return ctx.start(info, OperatorKind.BALANCE_REGION, steps, why)


def balance_regions(ctx: ScheduleContext) -> Operator | None:
    """One replica move that reduces the replica-count imbalance, if any is due."""
    if _in_flight(ctx, OperatorKind.BALANCE_REGION) >= ctx.config.max_region_balance_operators:
        return None
    nodes = ctx.schedulable_nodes()
    tolerance = ctx.config.region_balance_tolerance
    count = ctx.region_count
    pairs = sorted(
        ((s, d) for s in nodes for d in nodes if count[s] - count[d] > tolerance),
        key=lambda sd: (count[sd[1]] - count[sd[0]], sd[0], sd[1]),
    )
    for src, dst in pairs:
        if not ctx.can_add_on(dst):
            continue
        op = _move_from(ctx, src, dst)
        if op is not None:
            return op
    return None
