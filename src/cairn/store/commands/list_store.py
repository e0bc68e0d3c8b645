"""How a Redis list lives in the keyspace, and the record operations its commands share.

A list is a metadata record `Meta(ValueType.LIST, size=n, head=h)` plus one sub-record per
element: element i (0-based from the left) is the field holding the 8-byte big-endian
position h + i. Positions are unsigned 64-bit and a new list starts at `START_HEAD` (2**63),
the middle of that space, so either end can grow: LPUSH writes at h - 1 and lowers the head,
RPUSH writes at h + n. A list would need 2**63 pushes at one end to run out of room, and an
emptied list is deleted, so its next incarnation starts in the middle again.

Because positions are contiguous and sort in list order, every end operation (push, pop,
LINDEX, LSET) is a point read or write, a range of k elements is one scan of k records, and
trimming deletes only the trimmed records. Removing or inserting inside the list shifts the
elements of the shorter side by rewriting their records, O(n) as in Redis.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from cairn.resp.reply import Array, Bulk, ErrorReply
from cairn.store.commands.common import fail, lookup_typed
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType

START_HEAD = 1 << 63
"""The head position of a new list: the middle of the unsigned 64-bit position space."""

WALK_CHUNK = 256
"""How many records a walk over a list reads per scan (walks often stop early: LPOS,
LINSERT, LREM with a count)."""

_POS = struct.Struct(">Q")
_POSITIONS = 1 << 64
_NO_ROOM = ErrorReply("ERR list has no room left at that end")


class ListCorruptError(Exception):
    """A list's records disagree with its metadata (a bug: both change in one batch)."""


def _bound(meta: Meta, upto: int) -> bytes | None:
    """The exclusive end field of the first `upto` elements (None: the list's end, which
    may be the end of the position space)."""
    return None if upto >= meta.size else position(meta.head + upto)


def _check_room(lowest: int, highest: int) -> None:
    """Refuse a write outside the position space (2**63 pushes at one end of one list:
    unreachable in practice, but a node must never crash on it)."""
    if lowest < 0 or highest >= _POSITIONS:
        raise fail(_NO_ROOM)


def position(pos: int) -> bytes:
    """The sub-record field of list position `pos`."""
    return _POS.pack(pos)


def clamp_range(start: int, stop: int, size: int) -> tuple[int, int] | None:
    """The inclusive index range [start, stop] of a list of `size` elements after Redis'
    LRANGE/LTRIM rules (negative indexes count from the end, the ends are clamped); None
    when the range is empty. Arbitrary integers are fine: nothing is allocated here."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = max(start, 0)
    if start > stop or start >= size:
        return None
    return start, min(stop, size - 1)


def normalize_index(index: int, size: int) -> int | None:
    """The 0-based index LINDEX/LSET's `index` names (negative: from the end); None when
    it is out of range."""
    if index < 0:
        index += size
    return index if 0 <= index < size else None


def lookup_list(db: Db, key: bytes) -> Meta | None:
    """List `key`'s live metadata, None if missing; WRONGTYPE for another type."""
    return lookup_typed(db, key, ValueType.LIST)


def store_meta(db: Db, key: bytes, meta: Meta, head: int, size: int) -> None:
    """Write list `key`'s metadata after a change (its expiry kept); an emptied list is
    deleted with whatever records it still has."""
    if size == 0:
        db.delete(key)
    else:
        db.put_meta(key, Meta(ValueType.LIST, meta.expire_ms, size=size, head=head), True)


def get(db: Db, key: bytes, meta: Meta, index: int) -> bytes | None:
    """Element `index` (0-based, in range) of list `key`: one point read."""
    return db.get_field(key, position(meta.head + index))


def push(db: Db, key: bytes, meta: Meta | None, values: Sequence[bytes], left: bool) -> int:
    """Push `values` one by one at the left or right end of list `key` (created if `meta`
    is None); the new length. One record write per element plus the metadata."""
    existed = meta is not None
    base = meta if meta is not None else Meta(ValueType.LIST, size=0, head=START_HEAD)
    head, size = base.head, base.size
    if left:
        _check_room(head - len(values), head)
    else:
        _check_room(head, head + size + len(values) - 1)
    for value in values:
        if left:
            head -= 1
            db.put_field(key, position(head), value)
        else:
            db.put_field(key, position(head + size), value)
        size += 1
    db.put_meta(key, Meta(ValueType.LIST, base.expire_ms, size=size, head=head), existed)
    return size


def pop(db: Db, key: bytes, meta: Meta, count: int, left: bool) -> list[bytes]:
    """Remove and return up to `count` (>= 1) elements from one end of list `key`, in the
    order they leave it (RPOP's come last element first). One scan of the popped records
    and a delete for each; an emptied list is deleted."""
    taken = min(count, meta.size)
    if taken == 1 and meta.size > 1:  # LPOP/RPOP without a count: point read and delete
        field = position(meta.head if left else meta.head + meta.size - 1)
        value = db.get_field(key, field)
        if value is None:
            raise ListCorruptError(f"list {key!r} has no element at an end")
        db.delete_field(key, field)
        store_meta(db, key, meta, meta.head + 1 if left else meta.head, meta.size - 1)
        return [value]
    if left:
        rows = db.fields(key, position(meta.head), taken)
        head = meta.head + taken
    else:
        rows = db.fields_reversed(key, position(meta.head), taken, _bound(meta, meta.size))
        head = meta.head
    if taken < meta.size:
        for field, _ in rows:
            db.delete_field(key, field)
    store_meta(db, key, meta, head, meta.size - taken)
    return [value for _, value in rows]


def span(db: Db, key: bytes, meta: Meta, start: int, stop: int) -> list[bytes]:
    """The elements of the inclusive index range [start, stop] (already clamped): one
    scan of exactly those records."""
    rows = db.fields(key, position(meta.head + start), stop - start + 1)
    return [value for _, value in rows]


def walk(
    db: Db, key: bytes, meta: Meta, from_left: bool, limit: int = 0
) -> Iterator[tuple[int, bytes]]:
    """(index, element) pairs of list `key` from one end towards the other, at most
    `limit` of them (0: all), read a chunk of records at a time, so a caller that stops
    early reads little."""
    total = meta.size if limit <= 0 else min(limit, meta.size)
    done = 0
    while done < total:
        chunk = min(WALK_CHUNK, total - done)
        if from_left:
            rows = db.fields(key, position(meta.head + done), chunk)
        else:
            end = _bound(meta, meta.size - done)
            rows = db.fields_reversed(key, position(meta.head), chunk, end)
        for offset, (_, value) in enumerate(rows):
            yield (done + offset if from_left else meta.size - 1 - done - offset), value
        if not rows:
            return
        done += len(rows)


def trim(db: Db, key: bytes, meta: Meta, drop_left: int, drop_right: int) -> None:
    """Delete `drop_left` elements from the left end and `drop_right` from the right end
    (LTRIM): one delete per trimmed record, no reads."""
    kept = meta.size - drop_left - drop_right
    if kept <= 0:
        db.delete(key)
        return
    for i in range(drop_left):
        db.delete_field(key, position(meta.head + i))
    for i in range(meta.size - drop_right, meta.size):
        db.delete_field(key, position(meta.head + i))
    store_meta(db, key, meta, meta.head + drop_left, kept)


def remove_at(db: Db, key: bytes, meta: Meta, indexes: Sequence[int]) -> None:
    """Remove the elements at `indexes` (ascending, distinct, in range) and close the gaps
    by shifting the shorter side: the elements left of the last removed one move right,
    or those right of the first removed one move left (LREM)."""
    removed, count = set(indexes), len(indexes)
    if count == meta.size:
        db.delete(key)
        return
    first, last = indexes[0], indexes[-1]
    if last + 1 <= meta.size - first:
        values = span(db, key, meta, 0, last)
        target = last
        for i in range(last, -1, -1):
            if i in removed:
                continue
            if i != target:
                db.put_field(key, position(meta.head + target), values[i])
            target -= 1
        for i in range(count):
            db.delete_field(key, position(meta.head + i))
        store_meta(db, key, meta, meta.head + count, meta.size - count)
        return
    values = span(db, key, meta, first, meta.size - 1)
    target = first
    for i in range(first, meta.size):
        if i in removed:
            continue
        if i != target:
            db.put_field(key, position(meta.head + target), values[i - first])
        target += 1
    for i in range(meta.size - count, meta.size):
        db.delete_field(key, position(meta.head + i))
    store_meta(db, key, meta, meta.head, meta.size - count)


def insert_at(db: Db, key: bytes, meta: Meta, index: int, value: bytes) -> int:
    """Insert `value` so that it becomes element `index` (0 .. size), shifting the shorter
    side by one position (LINSERT); the new length."""
    head, size = meta.head, meta.size
    if index <= size - index:
        _check_room(head - 1, head)
        for i, moved in enumerate(span(db, key, meta, 0, index - 1) if index else []):
            db.put_field(key, position(head - 1 + i), moved)
        head -= 1
        db.put_field(key, position(head + index), value)
    else:
        _check_room(head, head + size)
        for i, moved in enumerate(span(db, key, meta, index, size - 1)):
            db.put_field(key, position(head + index + 1 + i), moved)
        db.put_field(key, position(head + index), value)
    store_meta(db, key, meta, head, size + 1)
    return size + 1


def elements(values: Sequence[bytes]) -> Array:
    """The array reply of list elements `values`."""
    return Array(tuple(Bulk(v) for v in values))
