"""One round of the reconcile loops: every checker and scheduler, in priority order.

Repair comes before anything else, then drains (leaders first, then replicas), then zone
spread, then splits and merges, and balance last. Each pass runs over every region before
the next pass starts, so when the rate limits run short it is the lower-priority work that
waits. Balance runs only while no repair-class operator is in flight: moving replicas for
balance while the cluster is still short of replicas would chase counts that are about to
change.
"""

from __future__ import annotations

from collections.abc import Callable

from cairn.placement.balance import balance_leaders, balance_regions, check_drain_leader
from cairn.placement.context import ScheduleContext
from cairn.placement.model import RegionInfo
from cairn.placement.operators import Operator, OperatorKind
from cairn.placement.replica import check_draining, check_repair, check_zones
from cairn.placement.split_merge import check_merge, check_split

REPAIR_KINDS = frozenset(
    {
        OperatorKind.REPAIR,
        OperatorKind.REPLACE,
        OperatorKind.ADD_REPLICA,
        OperatorKind.REMOVE_REPLICA,
        OperatorKind.PROMOTE_LEARNER,
        OperatorKind.FIX_ZONE,
        OperatorKind.DRAIN_LEADER,
    }
)
"""Operators that bring the cluster to its declared state (balance waits for them)."""

RegionCheck = Callable[[ScheduleContext, RegionInfo], Operator | None]

REGION_PASSES: tuple[RegionCheck, ...] = (
    check_repair,
    check_drain_leader,
    check_draining,
    check_zones,
    check_split,
)
"""The per-region checks, highest priority first (merge and balance follow)."""


def _run_region_pass(ctx: ScheduleContext, check: RegionCheck) -> None:
    for info in ctx.regions:
        if not ctx.is_busy(info.region.id):
            check(ctx, info)


def _repairing(ctx: ScheduleContext) -> bool:
    return any(op.kind in REPAIR_KINDS for op in ctx.running.values())


def run_checkers(ctx: ScheduleContext) -> list[Operator]:
    """Run every pass over `ctx`; the operators started, in order."""
    for check in REGION_PASSES:
        _run_region_pass(ctx, check)
    for index, info in enumerate(ctx.regions):
        if not ctx.is_busy(info.region.id):
            check_merge(ctx, index)
    if not _repairing(ctx):
        while balance_leaders(ctx) is not None:
            pass
        while balance_regions(ctx) is not None:
            pass
    return list(ctx.started)
