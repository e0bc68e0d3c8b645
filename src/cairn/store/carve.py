"""Splitting a region's machine in two, and merging two neighbours into one.

Theory of operation. Regions share one keyspace and own disjoint ranges of it, so neither a
split nor a merge moves a Redis key: only the machines' own records change, in ONE batch,
which a multi-raft driver runs inside the write transaction applying the split (or merge)
entry (`with keyspace.group(wtx):`), next to `NodeStore.stage_split` / `stage_merge`.

Key counts are carried exactly, never recounted over a whole range. A region keeps a count
per non-empty slot besides its total (`Scope.slot_count_key`), so a split:

- moves the per-slot records of the slots wholly on the right to the new region and sums
  them: O(non-empty slots on the right), at most 16384 small records whatever the size;
- when the split key lies inside a slot (a slot too big to stay whole), counts that slot's
  keys from the split key on: O(keys of that one slot on the right);
- subtracts the right's total from the left's.

The request ids of idempotent writes (`cairn.store.idempotency`) follow their first key
the same way: a split moves those past the split key, a merge moves all of the source's.

A merge adds the source's per-slot records into the target's (a slot both share, when the
boundary was inside it, is summed) and deletes the source's records: O(non-empty slots of
the source).

Applied indexes: the left half of a split keeps the Raft group, so its applied index
becomes the split entry's index. The right half is a new group whose log starts where the
driver founds it: `right_index` (the split entry's index if the driver numbers the new
group's log from there; `cairn.storage.NodeStore.stage_split` founds it at
`RAFT_INIT_INDEX` and writes that applied index itself, so pass the same value). Its time
is the left's, so time never runs backwards in either half. A merged target's applied
index becomes the merge entry's index in the target's log, its time the later of the two.

Call `merge_machines` before `NodeStore.stage_merge` in the transaction: the latter deletes
the source's system records, which the merge reads.

A region frozen by a prepare-merge keeps the target's id in a system record of its own
(`freeze`, `frozen_target`), written with its applied index: the freeze survives a restart,
travels in the region's image, and vanishes with the merge.
"""

from __future__ import annotations

import random

from cairn.store.idempotency_table import move_requests, split_requests
from cairn.store.keyspace import Keyspace, WriteBatch, write_batch
from cairn.store.layout import decode_slot, decode_u64, encode_u64, region_key, slot_start
from cairn.store.machine import StoreMachine
from cairn.store.scope import Scope


class CarveError(ValueError):
    """A split or merge that cannot be made (not regions, a bad key, not neighbours)."""


def split_machine(
    machine: StoreMachine,
    split_key: bytes,
    right_id: int,
    index: int,
    right_index: int,
    rng: random.Random | None = None,
) -> StoreMachine:
    """Cut region machine `machine` at range key `split_key`; the new right half.

    `machine` keeps ``[start, split_key)`` with applied index `index` (the split entry);
    the returned machine, region `right_id`, owns ``[split_key, end)`` of the same keyspace
    with applied index `right_index` (module docstring). Runs inside the caller's
    transaction, like `StoreMachine.apply_many_within`.
    """
    scope = machine.scope
    if scope.region_id is None:
        raise CarveError("only a region's machine can be split")
    if not scope.contains(split_key) or split_key == scope.start:
        raise CarveError(f"split key {split_key!r} is not strictly inside the region")
    if right_id == scope.region_id:
        raise CarveError("the right half needs a region id of its own")
    left = Scope.region(scope.region_id, scope.start, split_key)
    right = Scope.region(right_id, split_key, scope.end)
    with write_batch(machine.keyspace) as batch:
        moved = _move_slot_counts(batch, scope, right, split_key)
        moved += _split_inner_slot(batch, machine, left, right, split_key)
        _add(batch, left.count_key, -moved)
        batch.put(right.count_key, encode_u64(moved))
        batch.put(left.applied_key, encode_u64(index))
        batch.put(right.applied_key, encode_u64(right_index))
        batch.put(right.now_key, encode_u64(machine.max_now_ms))
        split_requests(batch, left, right, split_key)  # IDEMPOTENT ids follow their keys
    machine.scope = left
    machine.reload()
    return StoreMachine(
        machine.keyspace,
        rng if rng is not None else random.Random(right_id),
        right,
        machine.images,
    )


def _move_slot_counts(batch: WriteBatch, scope: Scope, right: Scope, split_key: bytes) -> int:
    """Give `right` the per-slot records of the slots wholly past `split_key`; their sum."""
    slot = decode_slot(split_key[:2])
    first = slot if len(split_key) == 2 else slot + 1
    bounds = scope.slot_count_bounds()
    from_key = scope.slot_count_key(first)
    assert bounds is not None and from_key is not None
    total = 0
    for key, value in batch.scan(from_key, bounds[1]):
        moved_to = right.slot_count_key(decode_slot(key[-2:]))
        assert moved_to is not None
        batch.put(moved_to, value)
        batch.delete(key)
        total += decode_u64(value)
    return total


def _split_inner_slot(
    batch: WriteBatch, machine: StoreMachine, left: Scope, right: Scope, split_key: bytes
) -> int:
    """When `split_key` lies inside a slot, share that slot's count between the halves by
    counting its keys from `split_key` on; how many went right."""
    if len(split_key) == 2:
        return 0
    slot = decode_slot(split_key[:2])
    lo, hi = right.meta_bounds()
    count = _count_records(batch, lo, min(hi, slot_start(slot + 1)))
    if count:
        left_key, right_key = left.slot_count_key(slot), right.slot_count_key(slot)
        assert left_key is not None and right_key is not None
        _add(batch, left_key, -count, drop_zero=True)
        batch.put(right_key, encode_u64(count))
    return count


def _count_records(batch: WriteBatch, lo: bytes, hi: bytes) -> int:
    count, pos = 0, lo
    while rows := batch.scan(pos, hi, _PAGE):
        count += len(rows)
        pos = rows[-1][0] + b"\x00"
    return count


_PAGE = 1024


def merge_machines(source: StoreMachine, target: StoreMachine, index: int) -> None:
    """Grow `target` over its neighbour `source`, whose machine is retired.

    The target's applied index becomes `index` (the merge entry in its log) and its time
    the later of the two; the source's records are deleted (its keys are now the
    target's). Runs inside the caller's transaction, before `NodeStore.stage_merge`.
    """
    merged = _merged_scope(source, target)
    src, dst = source.scope, target.scope
    with write_batch(target.keyspace) as batch:
        bounds = src.slot_count_bounds()
        assert bounds is not None
        for key, value in batch.scan(*bounds):
            into = dst.slot_count_key(decode_slot(key[-2:]))
            assert into is not None
            _add(batch, into, decode_u64(value), drop_zero=True)
        _add(batch, dst.count_key, decode_u64(batch.get(src.count_key)))
        move_requests(batch, src, dst)  # IDEMPOTENT ids, before the source's go
        system = src.system_bounds()
        assert system is not None
        for key, _ in batch.scan(*system):
            batch.delete(key)
        batch.put(dst.applied_key, encode_u64(index))
        batch.put(dst.now_key, encode_u64(max(source.max_now_ms, target.max_now_ms)))
    target.scope = merged
    target.reload()
    source.retired = True


def _merged_scope(source: StoreMachine, target: StoreMachine) -> Scope:
    src, dst = source.scope, target.scope
    if src.region_id is None or dst.region_id is None or src.region_id == dst.region_id:
        raise CarveError("only two distinct regions' machines can be merged")
    if source.keyspace is not target.keyspace:
        raise CarveError("merged machines must share one keyspace")
    if source.retired or target.retired:
        raise CarveError("a retired machine cannot be merged")
    if src.end and src.end == dst.start:
        return Scope.region(dst.region_id, src.start, dst.end)
    if dst.end and dst.end == src.start:
        return Scope.region(dst.region_id, dst.start, src.end)
    raise CarveError(f"regions {src.region_id} and {dst.region_id} are not neighbours")


def _add(batch: WriteBatch, where: bytes, delta: int, *, drop_zero: bool = False) -> None:
    value = decode_u64(batch.get(where)) + delta
    if value < 0:
        raise CarveError(f"count record {where!r} would go negative")
    if value or not drop_zero:
        batch.put(where, encode_u64(value))
    else:
        batch.delete(where)


def merge_target_key(region_id: int) -> bytes:
    """The system record naming the region that region `region_id` is frozen into."""
    return region_key(region_id, b"merging")


def freeze(batch: WriteBatch, region_id: int, target_id: int) -> None:
    """Record in `batch` that region `region_id` is frozen to merge into `target_id`."""
    batch.put(merge_target_key(region_id), encode_u64(target_id))


def frozen_target(keyspace: Keyspace, region_id: int) -> int | None:
    """The target a frozen region merges into, or None when it is not frozen."""
    raw = keyspace.get(merge_target_key(region_id))
    return None if raw is None else decode_u64(raw)
