"""Counting a stream's entries between two positions in O(log n): ordinals and holes.

Every entry gets an ordinal when it is added: the stream's `next_ord` counter, stored in
the entry's value (`stream_store`). Ordinals grow with ids, so the live entries between two
ordinals are the ordinals in between minus those whose entry XDEL removed: the *holes*.
Trimming from the front never makes holes; it moves the stream's cut (see `stream_store`).

Holes are counted in a sparse tree of `LEVELS` levels of fanout 256 under the stream's
``F`` prefix, family ``h``::

    b"h" | level (1 byte) | block (8 bytes, big-endian): the number of holes (8 bytes)

whose ordinal shifted right by 8 x level is `block` (level 0 is one ordinal: a hole's own
record, count 1). A record exists only while its count is not 0. XDEL changes one record per
level; counting the holes below an ordinal reads at most 255 records per level (the earlier
siblings of each ancestor block), and so does finding the r-th ordinal that is not a hole:
bounded work whatever the stream's size, and no write at all on XADD.
"""

from __future__ import annotations

import struct

from cairn.store.db import Db

HOLE = b"h"
"""First byte of a hole-count record."""
LEVELS = 8
"""Levels of the tree: 8 x 8 bits cover every 64-bit ordinal."""
_FAN_BITS = 8
_FAN = 1 << _FAN_BITS
_U64 = struct.Struct(">Q")


def _record(level: int, block: int) -> bytes:
    return HOLE + bytes([level]) + _U64.pack(block)


def add_hole(db: Db, key: bytes, ordinal: int, delta: int) -> None:
    """Count ordinal `ordinal` as a hole (`delta` 1) or no longer (`delta` -1)."""
    for level in range(LEVELS):
        name = _record(level, ordinal >> (_FAN_BITS * level))
        raw = db.get_field(key, name)
        count = (0 if raw is None else _U64.unpack(raw)[0]) + delta
        if count:
            db.put_field(key, name, _U64.pack(count))
        else:
            db.delete_field(key, name)


def _counts(db: Db, key: bytes, level: int, first: int, end: int) -> dict[int, int]:
    """The non-zero counts of blocks `first <= block < end` of `level` (end - first <= 256)."""
    rows = db.fields(key, _record(level, first), None, _record(level, end))
    return {_U64.unpack_from(name, 2)[0]: _U64.unpack(value)[0] for name, value in rows}


def holes_below(db: Db, key: bytes, ordinal: int) -> int:
    """How many holes have an ordinal smaller than `ordinal`."""
    total = 0
    for level in range(LEVELS):
        block = ordinal >> (_FAN_BITS * level)
        first = block & ~(_FAN - 1)
        if block > first:
            total += sum(_counts(db, key, level, first, block).values())
    return total


def nth_solid(db: Db, key: bytes, rank: int) -> int:
    """The ordinal that is not a hole with exactly `rank` such ordinals below it."""
    base = 0
    for level in reversed(range(LEVELS)):
        size = 1 << (_FAN_BITS * level)
        first = base >> (_FAN_BITS * level)
        counts = _counts(db, key, level, first, first + _FAN)
        for child in range(_FAN):
            solid = size - counts.get(first + child, 0)
            if rank < solid:
                break
            rank -= solid
        base += child * size
    return base


def first_hole_records(db: Db, key: bytes, below: int, limit: int) -> list[int]:
    """The ordinals of up to `limit` holes below `below`, ascending (what reclaim drops)."""
    rows = db.fields(key, _record(0, 0), limit, _record(0, below))
    return [_U64.unpack_from(name, 2)[0] for name, _ in rows]
