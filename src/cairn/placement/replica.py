"""The replica checkers: every region gets the declared number of voters, healthy, spread.

Three checks run per region, in priority order (the driver runs each over all regions
before the next, so repair always comes before anything else):

* `check_repair` — a voter on a down or removed node (or reported down for longer than the
  down time) is replaced; a learner is promoted once caught up, or removed when it is not
  needed or its node is gone; a missing voter is added; a surplus one is removed (this is
  also how a replica is dropped that was repaired elsewhere while its node was away and
  then came back).
* `check_draining` — a voter on a draining node is moved off (its leadership was moved
  first by the drain-leader scheduler).
* `check_zones` — when two voters share a zone and a zone with at least two fewer of the
  region's voters has a usable node, one of them moves there.

A new replica goes to the best node: the zone holding fewest of the region's replicas
first (so no two share a zone while zones allow), then the node with fewest replicas,
then the lowest id; never a node that already has a peer of the region. The replica
removed is the worst-placed: unhealthy first, then on a draining node, then in the most
crowded zone, then on the fullest node, a follower before the leader.
"""

from __future__ import annotations

from cairn.meta.region import Peer
from cairn.placement.context import ScheduleContext
from cairn.placement.model import NodeAdmin, RegionInfo
from cairn.placement.operators import Operator, OperatorKind
from cairn.placement.steps import AddLearner, PromoteLearner, RemovePeer, Step


def best_target(ctx: ScheduleContext, info: RegionInfo, label: str, keep: list[Peer]) -> int | None:
    """The best node for a new replica of the region, next to the peers in `keep`."""
    zones = ctx.zone_counts(keep, label)
    taken = {p.node_id for p in info.region.peers}
    candidates = [n for n in ctx.schedulable_nodes() if n not in taken and ctx.can_add_on(n)]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (zones[ctx.zone(n, label)], ctx.region_count[n], n))


def worst_voter(ctx: ScheduleContext, info: RegionInfo, label: str, voters: list[Peer]) -> Peer:
    """The voter to remove first (see the module doc)."""
    zones = ctx.zone_counts(voters, label)

    def badness(p: Peer) -> tuple[bool, bool, int, int, bool, int]:
        return (
            not ctx.peer_is_healthy(info, p),
            not ctx.is_schedulable(p.node_id),
            zones[ctx.zone(p.node_id, label)],
            ctx.region_count[p.node_id],
            p.id != info.report.leader_peer_id,
            p.id,
        )

    return max(voters, key=badness)


def _why_unhealthy(ctx: ScheduleContext, info: RegionInfo, peer: Peer) -> str:
    node = ctx.nodes.get(peer.node_id)
    if node is None:
        return f"peer {peer.id} is on unknown node {peer.node_id}"
    if node.admin is NodeAdmin.REMOVED:
        return f"peer {peer.id}: node {peer.node_id} was removed"
    if node.down:
        return f"peer {peer.id}: node {peer.node_id} is down"
    return f"peer {peer.id} on node {peer.node_id} reported down by the leader"


def replace_peer(
    ctx: ScheduleContext, info: RegionInfo, old: Peer, kind: OperatorKind, reason: str
) -> Operator | None:
    """Move `old`'s replica to the best other node: add a learner, promote it, remove `old`."""
    _, label = ctx.rule(info.region)
    keep = [p for p in info.region.voters() if p.id != old.id]
    target = best_target(ctx, info, label, keep)
    if target is None:
        return None
    new_peer = ctx.alloc_ids(1)
    steps: tuple[Step, ...] = (
        AddLearner(target, new_peer),
        PromoteLearner(target, new_peer),
        RemovePeer(old.node_id, old.id),
    )
    return ctx.start(info, kind, steps, f"{reason}; new replica on node {target}")


def check_repair(ctx: ScheduleContext, info: RegionInfo) -> Operator | None:
    """Repair unhealthy voters, settle learners, add missing and remove surplus voters."""
    replicas, label = ctx.rule(info.region)
    voters = sorted(info.region.voters(), key=lambda p: p.id)
    for peer in voters:
        if not ctx.peer_is_healthy(info, peer):
            why = _why_unhealthy(ctx, info, peer)
            healthy = sum(ctx.peer_is_healthy(info, p) for p in voters)
            if healthy >= replicas:
                step = RemovePeer(peer.node_id, peer.id)
                return ctx.start(info, OperatorKind.REMOVE_REPLICA, (step,), why)
            return replace_peer(ctx, info, peer, OperatorKind.REPAIR, why)
    for peer in sorted(info.region.learners(), key=lambda p: p.id):
        return _check_learner(ctx, info, peer, len(voters), replicas)
    if len(voters) < replicas:
        return _add_voter(ctx, info, voters, replicas, label)
    if len(voters) > replicas:
        worst = worst_voter(ctx, info, label, voters)
        why = f"{len(voters)} voters, {replicas} declared"
        step = RemovePeer(worst.node_id, worst.id)
        return ctx.start(info, OperatorKind.REMOVE_REPLICA, (step,), why)
    return None


def _check_learner(
    ctx: ScheduleContext, info: RegionInfo, peer: Peer, voters: int, replicas: int
) -> Operator | None:
    node = ctx.nodes.get(peer.node_id)
    unusable = not ctx.is_alive(peer.node_id) or node is None or node.admin is not NodeAdmin.ACTIVE
    if unusable or voters >= replicas:
        why = "learner's node is unusable" if unusable else "learner not needed"
        step: Step = RemovePeer(peer.node_id, peer.id)
        return ctx.start(info, OperatorKind.REMOVE_REPLICA, (step,), f"peer {peer.id}: {why}")
    if peer.id in info.report.pending_peers:
        return None
    step = PromoteLearner(peer.node_id, peer.id)
    why = f"learner {peer.id} caught up, {voters} of {replicas} voters"
    return ctx.start(info, OperatorKind.PROMOTE_LEARNER, (step,), why)


def _add_voter(
    ctx: ScheduleContext, info: RegionInfo, voters: list[Peer], replicas: int, label: str
) -> Operator | None:
    target = best_target(ctx, info, label, voters)
    if target is None:
        return None
    peer_id = ctx.alloc_ids(1)
    steps: tuple[Step, ...] = (AddLearner(target, peer_id), PromoteLearner(target, peer_id))
    why = f"{len(voters)} of {replicas} voters; new replica on node {target}"
    return ctx.start(info, OperatorKind.ADD_REPLICA, steps, why)


def check_draining(ctx: ScheduleContext, info: RegionInfo) -> Operator | None:
    """Move a voter off a draining node (one per region at a time)."""
    for peer in sorted(info.region.voters(), key=lambda p: p.id):
        node = ctx.nodes.get(peer.node_id)
        if node is not None and node.admin is NodeAdmin.DRAINING and ctx.is_alive(node.id):
            why = f"node {node.id} is draining"
            return replace_peer(ctx, info, peer, OperatorKind.REPLACE, why)
    return None


def check_zones(ctx: ScheduleContext, info: RegionInfo) -> Operator | None:
    """Move a voter out of a crowded zone into one holding at least two fewer."""
    replicas, label = ctx.rule(info.region)
    voters = list(info.region.voters())
    if len(voters) != replicas or info.region.learners():
        return None
    zones = ctx.zone_counts(voters, label)
    crowded, most = max(sorted(zones.items()), key=lambda kv: kv[1])
    if most < 2:
        return None
    movable = [p for p in voters if ctx.zone(p.node_id, label) == crowded]
    victim = worst_voter(ctx, info, label, movable)
    keep = [p for p in voters if p.id != victim.id]
    target = best_target(ctx, info, label, keep)
    if target is None or most - zones[ctx.zone(target, label)] < 2:
        return None
    why = f"zone {crowded!r} holds {most} voters"
    return replace_peer(ctx, info, victim, OperatorKind.FIX_ZONE, why)
