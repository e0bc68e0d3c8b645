"""Operators asked for by hand: split, merge, move a replica, transfer a leader.

Theory of operation. A `RequestOperator` command (from `cairn ctl region ...`, the admin
API, a chaos run) names one region and what to do with it. `start_requested` checks the
request against the driver's view of the cluster for this tick (`ScheduleContext`) and
either starts one operator of the kinds the checkers build (a split is a `SPLIT`, a merge
a `MERGE`, a replica move a `BALANCE_REGION`, a leader transfer a `BALANCE_LEADER`, each
with the same steps the checkers would use) or returns why not, in words a person can
act on: the region is unknown, busy with another operator, the node is down, draining or
not a member, the rate limits are full. A request is never queued: it starts now or it is
refused, so its caller knows at once. From then on the operator is like any other: the
region's leader receives its steps in heartbeat replies, it is cancelled when the region
changes under it, and it times out.

A merge of regions whose replicas are on different nodes carries the align steps first
(add a learner on each of the target's nodes, promote it, remove the replica it replaces)
and then the merge itself, stamped with the epoch the source will have once aligned; the
target is the operator's related region, so no other operator touches it meanwhile.
"""

from __future__ import annotations

from cairn.meta.region import Region, RegionEpoch, bound_slot, slot_bound
from cairn.placement.commands import RequestKind, RequestOperator, SplitChoice
from cairn.placement.context import ScheduleContext
from cairn.placement.model import RegionInfo
from cairn.placement.operators import Operator, OperatorKind
from cairn.placement.steps import (
    AddLearner,
    MergeRegion,
    PromoteLearner,
    RemovePeer,
    SplitPolicy,
    SplitRegion,
    Step,
    TransferLeader,
)
from cairn.store.slot import SLOT_COUNT


class RequestRefused(Exception):  # noqa: N818 (a refusal with its reason, not a bug)
    """The request cannot start an operator; the message says why."""


def start_requested(ctx: ScheduleContext, request: RequestOperator) -> Operator:
    """Start the operator `request` asks for on `ctx`; `RequestRefused` with the reason."""
    info = ctx.region_info(request.region_id)
    if info is None:
        raise RequestRefused(f"region {request.region_id} is not known")
    _check_idle(ctx, info.region.id)
    why = f"requested: {request.reason}" if request.reason else "requested"
    kind, steps, related = _plan(ctx, info, request)
    op = ctx.start(info, kind, steps, why, related)
    if op is None:
        raise RequestRefused(
            "the operator rate limits are full (too many operators in flight, on the "
            "cluster or on a node it touches): try again shortly"
        )
    return op


def _plan(
    ctx: ScheduleContext, info: RegionInfo, request: RequestOperator
) -> tuple[OperatorKind, tuple[Step, ...], tuple[int, ...]]:
    """(kind, steps, related regions) of the operator `request` asks for."""
    match request.kind:
        case RequestKind.SPLIT:
            return OperatorKind.SPLIT, _split_steps(ctx, info, request), ()
        case RequestKind.MERGE:
            steps, related = _merge_steps(ctx, info, request.target_region_id)
            return OperatorKind.MERGE, steps, related
        case RequestKind.MOVE:
            steps = _move_steps(ctx, info, request.from_node, request.to_node)
            return OperatorKind.BALANCE_REGION, steps, ()
        case RequestKind.TRANSFER_LEADER:
            return OperatorKind.BALANCE_LEADER, _transfer_steps(ctx, info, request.to_node), ()
    raise RequestRefused(f"unknown request kind {request.kind!r}")


def _check_idle(ctx: ScheduleContext, region_id: int) -> None:
    running = ctx.running.get(region_id)
    if running is not None:
        raise RequestRefused(
            f"region {region_id} is already under operator #{running.id} ({running.kind})"
        )


def _check_up(ctx: ScheduleContext, node_id: int, role: str) -> None:
    node = ctx.nodes.get(node_id)
    if node is None:
        raise RequestRefused(f"{role} node {node_id} is not a member of the cluster")
    if not ctx.is_schedulable(node_id):
        raise RequestRefused(f"{role} node {node_id} is {node.state.name.lower()}, not up")


# -- split ----------------------------------------------------------------------------------


def middle_slot_bound(region: Region) -> bytes | None:
    """The slot boundary halfway through `region`'s slots; None when it spans one slot."""
    first = bound_slot(region.start)
    if region.start != slot_bound(first):
        first += 1  # the region starts inside a slot: its first whole slot is the next
    last = bound_slot(region.end, end=True)
    mid = (first + last) // 2
    if mid <= first or mid >= last or mid >= SLOT_COUNT:
        return None
    return slot_bound(mid)


def _split_steps(
    ctx: ScheduleContext, info: RegionInfo, request: RequestOperator
) -> tuple[Step, ...]:
    region = info.region
    policy, key = SplitPolicy.KEY, b""
    if request.split_slot >= 0:
        if request.split_slot >= SLOT_COUNT:
            raise RequestRefused(f"slot {request.split_slot} is not in 0..{SLOT_COUNT - 1}")
        key = slot_bound(request.split_slot)
        lowest = max(region.start, slot_bound(0))  # a cut at slot 0 would leave nothing left
        if not (lowest < key and (not region.end or key < region.end)):
            raise RequestRefused(
                f"slot {request.split_slot} does not start inside region {region.id}"
            )
    elif request.split_choice is SplitChoice.HALF_BY_SIZE:
        policy = SplitPolicy.HALF_BY_SIZE
    else:
        found = middle_slot_bound(region)
        if found is None:
            raise RequestRefused(f"region {region.id} spans one slot: it cannot be cut by slot")
        key = found
    new_region_id = ctx.alloc_ids(1)
    first_peer = ctx.alloc_ids(len(region.peers))
    peer_ids = tuple(range(first_peer, first_peer + len(region.peers)))
    return (SplitRegion(region.epoch, policy, new_region_id, peer_ids, key, True),)


# -- merge ----------------------------------------------------------------------------------


def _neighbours(ctx: ScheduleContext, region: Region) -> list[RegionInfo]:
    """The right neighbour, then the left one (those that exist)."""
    found: list[RegionInfo] = []
    for other in ctx.regions:
        if region.end and other.region.start == region.end:
            found.insert(0, other)
        elif other.region.end and other.region.end == region.start:
            found.append(other)
    return found


def _merge_target(ctx: ScheduleContext, source: RegionInfo, target_id: int) -> RegionInfo:
    neighbours = _neighbours(ctx, source.region)
    if target_id:
        chosen = [n for n in neighbours if n.region.id == target_id]
        if not chosen:
            raise RequestRefused(
                f"region {target_id} is not a neighbour of region {source.region.id}"
            )
        return chosen[0]
    if not neighbours:
        raise RequestRefused(f"region {source.region.id} has no neighbour to merge into")
    return neighbours[0]


def _merge_steps(
    ctx: ScheduleContext, source: RegionInfo, target_id: int
) -> tuple[tuple[Step, ...], tuple[int, ...]]:
    target = _merge_target(ctx, source, target_id)
    src, dst = source.region, target.region
    _check_idle(ctx, dst.id)
    if ctx.rule(src) != ctx.rule(dst):
        raise RequestRefused(f"regions {src.id} and {dst.id} are under different rules")
    shared = src.end if src.end == dst.start else src.start
    if shared in ctx.rules.boundaries():
        raise RequestRefused(f"regions {src.id} and {dst.id} meet at a placement rule boundary")
    if src.learners() or dst.learners():
        raise RequestRefused(f"regions {src.id} and {dst.id} must have no learners")
    dst_nodes = sorted(p.node_id for p in dst.peers)
    for node in dst_nodes:
        if src.peer_on(node) is None:
            _check_up(ctx, node, "target")
    adds = [n for n in dst_nodes if src.peer_on(n) is None]
    removes = sorted((p for p in src.peers if p.node_id not in dst_nodes), key=lambda p: p.id)
    if len(adds) != len(removes):
        raise RequestRefused(
            f"regions {src.id} and {dst.id} have different replica counts "
            f"({len(src.peers)} and {len(dst.peers)})"
        )
    steps: list[Step] = []
    for node, old in zip(adds, removes, strict=True):
        peer_id = ctx.alloc_ids(1)
        steps += [AddLearner(node, peer_id), PromoteLearner(node, peer_id)]
        steps.append(RemovePeer(old.node_id, old.id))
    conf = sum(s.conf_changes for s in steps)
    aligned = RegionEpoch(src.epoch.version, src.epoch.conf_ver + conf)
    steps.append(MergeRegion(src.id, aligned, dst.id, dst.epoch))
    return tuple(steps), (dst.id,)


# -- replica move and leader transfer --------------------------------------------------------


def _move_steps(
    ctx: ScheduleContext, info: RegionInfo, from_node: int, to_node: int
) -> tuple[Step, ...]:
    region = info.region
    if from_node == to_node:
        raise RequestRefused("a move needs two different nodes")
    old = region.peer_on(from_node)
    if old is None:
        raise RequestRefused(f"region {region.id} has no replica on node {from_node}")
    if region.peer_on(to_node) is not None:
        raise RequestRefused(f"region {region.id} already has a replica on node {to_node}")
    _check_up(ctx, to_node, "target")
    new_peer = ctx.alloc_ids(1)
    return (
        AddLearner(to_node, new_peer),
        PromoteLearner(to_node, new_peer),
        RemovePeer(from_node, old.id),
    )


def _transfer_steps(ctx: ScheduleContext, info: RegionInfo, to_node: int) -> tuple[Step, ...]:
    region, report = info.region, info.report
    peer = region.peer_on(to_node)
    if peer is None or peer not in region.voters():
        raise RequestRefused(f"region {region.id} has no voter on node {to_node}")
    if peer.id == report.leader_peer_id:
        raise RequestRefused(f"node {to_node} already leads region {region.id}")
    _check_up(ctx, to_node, "target")
    if peer.id in report.pending_peers or not ctx.peer_is_healthy(info, peer):
        raise RequestRefused(f"the voter on node {to_node} is behind or down: it cannot lead now")
    return (TransferLeader(to_node, peer.id),)
