"""How a sorted set's members live under its key's ``F`` prefix: two record families.

- member records, ``b"m" | member`` -> the score as an 8-byte big-endian IEEE double
  (exactly the double given, ``-0.0`` included, so ZSCORE prints what Redis prints);
- score index records, ``b"s" | sortable(score) | member`` -> empty, where `sortable` maps
  doubles to 8 bytes whose byte order is numeric order (``-0.0`` and ``0.0`` map alike,
  as Redis's skiplist compares them equal), so members come out by (score, member), the
  order ZRANGE uses, from a plain ordered scan in either direction;
- rank counts, ``b"c" | level | sortable(score) | member`` -> a count: the order-statistics
  index over the score index (`cairn.store.order_index`), so ranks, counts and the member
  at a rank cost O(log n) record reads (`RANKS`). `put_member` and `remove_member` keep
  it, so every writer of sorted sets (the commands, geo, RESTORE) does.

Every record of the set stays under the key's prefix, so DEL, RENAME, expiry, splits and
snapshots need nothing of their own. The key's `Meta.size` is the member count; the
callers (the sorted-set and geo commands) maintain it and delete an emptied set. NaN is
never stored: the commands refuse it first.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

from cairn.store.db import Db
from cairn.store.order_index import OrderIndex

MEMBER = b"m"
INDEX = b"s"
INDEX_END = bytes([INDEX[0] + 1])
COUNTS = b"c"

RANKS = OrderIndex(INDEX, INDEX_END, COUNTS)
"""The order-statistics index of the score index: entries are ``sortable(score) |
member``."""

_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1


def sortable(score: float) -> bytes:
    """8 bytes whose byte order is the numeric order of scores (-inf .. +inf)."""
    if score == 0.0:
        score = 0.0  # -0.0 sorts with 0.0
    bits = _U64.unpack(_DOUBLE.pack(score))[0]
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    return _U64.pack(bits)


def from_sortable(data: bytes) -> float:
    """The inverse of `sortable` (``-0.0`` comes back as ``0.0``)."""
    bits = _U64.unpack(data)[0]
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _ALL
    return float(_DOUBLE.unpack(_U64.pack(bits))[0])


def score_of(db: Db, key: bytes, member: bytes) -> float | None:
    """The score of `member` in sorted set `key`, or None."""
    raw = db.get_field(key, MEMBER + member)
    return None if raw is None else float(_DOUBLE.unpack(raw)[0])


def put_member(
    db: Db,
    key: bytes,
    member: bytes,
    score: float,
    old: float | None,
    deferred: list[bytes] | None = None,
) -> None:
    """Give `member` the score `score`; `old` is its current score (None: a new member).
    The caller adjusts `Meta.size` for a new member. With `deferred`, the new index entry
    is appended to it rather than counted: the caller counts them all at once with
    `RANKS.added_many` (members distinct within the batch)."""
    assert not math.isnan(score)
    entry = sortable(score) + member
    db.put_field(key, MEMBER + member, _DOUBLE.pack(score))
    if old is not None:
        old_entry = sortable(old) + member
        if old_entry == entry:
            return
        db.delete_field(key, INDEX + old_entry)
        db.put_field(key, INDEX + entry, b"")
        if deferred is None:
            RANKS.moved(db, key, old_entry, entry)
        else:
            RANKS.removed(db, key, old_entry)
            deferred.append(entry)
        return
    db.put_field(key, INDEX + entry, b"")
    if deferred is None:
        RANKS.added(db, key, entry)
    else:
        deferred.append(entry)


def count_added(db: Db, key: bytes, entries: list[bytes]) -> None:
    """Count the index entries `put_member` deferred (see there)."""
    RANKS.added_many(db, key, entries)


def remove_member(db: Db, key: bytes, member: bytes, score: float, lowest: bool = False) -> None:
    """Remove `member` (whose score is `score`). The caller adjusts `Meta.size`.
    `lowest`: it is the set's lowest member (`OrderIndex.removed_first`)."""
    entry = sortable(score) + member
    db.delete_field(key, MEMBER + member)
    db.delete_field(key, INDEX + entry)
    if lowest:
        RANKS.removed_first(db, key, entry)
    else:
        RANKS.removed(db, key, entry)


def rank_at(db: Db, key: bytes, size: int, position: bytes) -> int:
    """How many of `key`'s `size` members sit below score-index position `position` (an
    `index_field` value, or `INDEX` / `INDEX_END`)."""
    if position <= INDEX:
        return 0
    if position >= INDEX_END:
        return size
    return RANKS.rank(db, key, size, position[len(INDEX) :])


def member_at(db: Db, key: bytes, size: int, rank: int) -> tuple[bytes, float]:
    """The (member, score) at 0-based `rank` by (score, member), ``0 <= rank < size``."""
    entry = RANKS.select(db, key, size, rank)
    return entry[8:], from_sortable(entry[:8])


def index_field(score: float, member: bytes = b"") -> bytes:
    """The index position of (`score`, `member`): a bound for `by_score` walks."""
    return INDEX + sortable(score) + member


def by_score(
    db: Db,
    key: bytes,
    start: bytes = INDEX,
    end: bytes = INDEX_END,
    limit: int | None = None,
    reverse: bool = False,
) -> Iterator[tuple[bytes, float]]:
    """(member, score) pairs of `key` with index position in [`start`, `end`), by (score,
    member) ascending, or descending when `reverse`; at most `limit` of them. Bounds are
    `index_field` values (the defaults cover the whole set)."""
    walk = db.fields_reversed if reverse else db.fields
    for field, _ in walk(key, start, limit, end):
        yield field[9:], from_sortable(field[1:9])


def members(
    db: Db, key: bytes, start: bytes = b"", limit: int | None = None
) -> list[tuple[bytes, float]]:
    """(member, score) pairs of `key` with member >= `start`, in member byte order (what
    ZSCAN walks)."""
    rows = db.fields(key, MEMBER + start, limit, INDEX)
    return [(field[1:], float(_DOUBLE.unpack(raw)[0])) for field, raw in rows]
