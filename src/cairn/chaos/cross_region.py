"""How many of a run's committed transactions crossed regions.

A transaction (a bank transfer or read, a list-append transaction) is counted as
cross-region when its keys lie in more than one of the regions the cluster was founded
with (`initial_regions`, cut evenly by slot: `cairn.runtime.region_layout.slot_cuts`).
Splits and merges move the boundaries during a run, so this is the founding layout's
count, not the exact one of the moment each ran; with four founding regions and keys
spread over all of them, nearly every bank read and most transfers and list-append
transactions with two keys or more are cross-region under any layout the faults make.

Only acknowledged (`ok`) operations count: a transaction that failed or whose outcome is
unknown proves nothing about the cross-region path.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from cairn.check.history import Op, OpType
from cairn.runtime.region_layout import slot_cuts
from cairn.store.slot import key_slot


def founding_region(key: str, regions: int) -> int:
    """The index of the founding region holding `key`, of `regions` even ones."""
    return bisect.bisect_right(slot_cuts(regions), key_slot(key.encode())) - 1


def operation_keys(op: Op) -> list[str]:
    """The keys an acknowledged bank or list-append operation touched."""
    value = op.value
    if op.f == "transfer" and isinstance(value, list | tuple) and len(value) >= 2:
        return [str(value[0]), str(value[1])]
    if op.f == "read" and isinstance(value, dict):
        return [str(k) for k in value]
    if op.f == "txn" and isinstance(value, list | tuple):
        return [str(mop[1]) for mop in value if isinstance(mop, list | tuple) and len(mop) > 1]
    return []


def count_cross_region(events: Iterable[Op], regions: int) -> dict[str, int]:
    """{"committed": acknowledged operations, "cross_region": those whose keys lie in
    several founding regions} (all zero cross-region with one region)."""
    committed = crossing = 0
    for op in events:
        if op.type is not OpType.OK:
            continue
        keys = operation_keys(op)
        if not keys:
            continue
        committed += 1
        if regions > 1 and len({founding_region(k, regions) for k in keys}) > 1:
            crossing += 1
    return {"committed": committed, "cross_region": crossing}
