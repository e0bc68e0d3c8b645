"""The split and merge checkers: regions stay between a size floor and ceiling.

A region is split when it straddles a placement-rule boundary (at the boundary, so each
part has one rule), or when its approximate size or write rate passes the thresholds. Only
the leader sees the data, so the operator carries a policy (half by size, half by load)
and the leader picks the key; where the region spans more than one slot the key must fall
between two slots, so a slot keeps one owner and `MOVED` answers stay exact.

A region is merged into a neighbour when both are small, settled (the declared voters, all
healthy, no learners) and old enough not to be the fresh halves of a split, under the same
rule, and the result would not be split again. Raft merges need the two regions' replicas
on the same nodes, so when they are not, the checker first moves the source's replicas onto
the target's nodes (an align operator, as PD does); the merge follows on a later tick. A
neighbour already on the same nodes is preferred, so an aligned region merges into the
neighbour it was aligned with rather than being aligned again towards the other one.
"""

from __future__ import annotations

from cairn.meta.region import Region, bound_slot, is_slot_bound, slot_bound
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
)
from cairn.store.slot import SLOT_COUNT


def can_split_between_slots(region: Region) -> bool:
    """Whether some boundary between two slots lies strictly inside `region`."""
    slot = bound_slot(region.start) + 1
    if slot >= SLOT_COUNT:
        return False
    return not region.end or slot_bound(slot) < region.end


def _split(
    ctx: ScheduleContext, info: RegionInfo, policy: SplitPolicy, reason: str, key: bytes = b""
) -> Operator | None:
    region = info.region
    new_region_id = ctx.alloc_ids(1)
    first_peer = ctx.alloc_ids(len(region.peers))
    peer_ids = tuple(range(first_peer, first_peer + len(region.peers)))
    aligned = is_slot_bound(key) if key else can_split_between_slots(region)
    step = SplitRegion(region.epoch, policy, new_region_id, peer_ids, key, aligned)
    return ctx.start(info, OperatorKind.SPLIT, (step,), reason)


def check_split(ctx: ScheduleContext, info: RegionInfo) -> Operator | None:
    """Split a region that straddles a rule boundary, is too large or too hot."""
    region, report, cfg = info.region, info.report, ctx.config
    for bound in ctx.rules.boundaries():
        if region.start < bound and (not region.end or bound < region.end):
            return _split(ctx, info, SplitPolicy.KEY, f"straddles rule boundary {bound!r}", bound)
    if report.approximate_size >= cfg.split_size_bytes:
        why = f"size {report.approximate_size} >= {cfg.split_size_bytes}"
        return _split(ctx, info, SplitPolicy.HALF_BY_SIZE, why)
    if report.write_bytes_per_s >= cfg.split_write_bytes_per_s:
        why = f"writes {report.write_bytes_per_s} B/s >= {cfg.split_write_bytes_per_s}"
        return _split(ctx, info, SplitPolicy.BY_LOAD, why)
    return None


def _is_small(ctx: ScheduleContext, info: RegionInfo) -> bool:
    report = info.report
    return (
        report.approximate_size < ctx.config.merge_size_bytes
        and report.approximate_keys < ctx.config.merge_keys
        and ctx.now_ms - info.born_ms >= ctx.config.split_merge_interval_ms
    )


def is_settled(ctx: ScheduleContext, info: RegionInfo) -> bool:
    """Whether the region has exactly its declared voters, all healthy, and nothing else."""
    replicas, _ = ctx.rule(info.region)
    region, report = info.region, info.report
    return (
        len(region.voters()) == replicas
        and not region.learners()
        and not report.pending_peers
        and all(ctx.peer_is_healthy(info, p) for p in region.peers)
    )


def _mergeable(ctx: ScheduleContext, source: RegionInfo, target: RegionInfo) -> bool:
    cfg = ctx.config
    a, b = source.report, target.report
    shared = source.region.end if source.region.end == target.region.start else source.region.start
    return (
        not ctx.is_busy(target.region.id)
        and _is_small(ctx, target)
        and is_settled(ctx, target)
        and ctx.rule(source.region) == ctx.rule(target.region)
        and shared not in ctx.rules.boundaries()
        and a.approximate_size + b.approximate_size < cfg.split_size_bytes
        and a.write_bytes_per_s + b.write_bytes_per_s < cfg.split_write_bytes_per_s
    )


def _adjacent(a: Region, b: Region) -> bool:
    return (bool(a.end) and a.end == b.start) or (bool(b.end) and b.end == a.start)


def check_merge(ctx: ScheduleContext, index: int) -> Operator | None:
    """Merge region `ctx.regions[index]` into a small neighbour, aligning replicas first."""
    source = ctx.regions[index]
    if not (_is_small(ctx, source) and is_settled(ctx, source)):
        return None
    window = ctx.regions[max(0, index - 1) : index + 2]
    neighbours = [other for other in window if _adjacent(source.region, other.region)]
    candidates = [t for t in neighbours if _mergeable(ctx, source, t)]
    if not candidates:
        return None
    nodes = {p.node_id for p in source.region.peers}

    def preference(t: RegionInfo) -> tuple[bool, int, int]:
        aligned = {p.node_id for p in t.region.peers} == nodes
        return (not aligned, t.report.approximate_size, t.region.id)

    target = min(candidates, key=preference)
    return _merge_or_align(ctx, source, target)


def _merge_or_align(
    ctx: ScheduleContext, source: RegionInfo, target: RegionInfo
) -> Operator | None:
    src, dst = source.region, target.region
    related = (dst.id,)
    why = (
        f"regions {src.id} ({source.report.approximate_size} B) and "
        f"{dst.id} ({target.report.approximate_size} B) are small"
    )
    src_nodes = {p.node_id for p in src.peers}
    dst_nodes = {p.node_id for p in dst.peers}
    if src_nodes == dst_nodes:
        step = MergeRegion(src.id, src.epoch, dst.id, dst.epoch)
        return ctx.start(source, OperatorKind.MERGE, (step,), why, related)
    adds = sorted(dst_nodes - src_nodes)
    removes = sorted((p for p in src.peers if p.node_id not in dst_nodes), key=lambda p: p.id)
    if len(adds) != len(removes) or not all(ctx.can_add_on(n) for n in adds):
        return None
    steps: list[Step] = []
    for node, old in zip(adds, removes, strict=True):
        peer_id = ctx.alloc_ids(1)
        steps += [AddLearner(node, peer_id), PromoteLearner(node, peer_id)]
        steps.append(RemovePeer(old.node_id, old.id))
    why += f"; moving region {src.id}'s replicas onto region {dst.id}'s nodes first"
    return ctx.start(source, OperatorKind.ALIGN_FOR_MERGE, tuple(steps), why, related)
