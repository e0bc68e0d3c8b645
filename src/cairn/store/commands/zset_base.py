"""The ground every sorted-set command stands on: the typed lookup, member-count
bookkeeping, bounded walks and counts over the two record families of
`cairn.store.zset_records`, and the reply shapes.

Walks read the records in chunks (`CHUNK`, or fewer when the caller says how many it
wants), so a command that returns k members of a huge set reads about k records, and one
that must skip or count many holds one chunk in memory at a time.

Ranks and counts by score (ZRANK, ZCOUNT, ZRANGE by rank, ZREMRANGEBY RANK, ZRANDMEMBER)
go through the score index's order-statistics index (`zset_records.RANKS`): O(log n)
record reads wherever the rank lies; a rank within `NEAR` of either end is still reached
by a plain walk, which is cheaper there. ZLEXCOUNT counts the member records: when every
member has the same score (the case Redis defines lex ranges for) the member order is the
score order and the index answers; otherwise `count_in` walks the inside and the outside
of the range by turns and stops when either runs out (about twice the smaller count).

Stored scores are normalised as Redis 7.0 stores them in its compact encoding (the one a
default server uses for sets of up to 128 members): ``-0`` becomes ``0``. A computed
reply (ZINCRBY, ZADD INCR) still shows ``-0`` when the arithmetic gives it, as Redis does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from cairn.resp.reply import Array, Bulk, Double, Pairs, Reply
from cairn.store.commands.common import lookup_typed
from cairn.store.commands.spec import Ctx
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType
from cairn.store.order_index import SELECT_COST
from cairn.store.zset_records import (
    INDEX,
    INDEX_END,
    MEMBER,
    from_sortable,
    index_field,
    member_at,
    put_member,
    rank_at,
    remove_member,
    score_of,
)

CHUNK = 512
"""Records read per step of a walk or a count."""

NEAR = 64
"""Ranks this close to an end are reached by a walk rather than through the index."""

_DOUBLE = struct.Struct(">d")
"""How a member record holds its score (see `cairn.store.zset_records`)."""

Scored = tuple[bytes, float]
"""A member with its score."""


def lookup(ctx: Ctx, key: bytes) -> Meta | None:
    """`key`'s metadata if it is a sorted set, None if missing; WRONGTYPE otherwise."""
    return lookup_typed(ctx.db, key, ValueType.ZSET)


def stored(score: float) -> float:
    """The score as the store keeps it (``-0`` as ``0``, see the module docstring)."""
    return 0.0 if score == 0.0 else score


def set_score(
    db: Db,
    key: bytes,
    member: bytes,
    score: float,
    old: float | None,
    deferred: list[bytes] | None = None,
) -> None:
    """Give `member` the score `score` (`old`: its current one, None if new); the caller
    keeps the size. `deferred`: see `zset_records.put_member`."""
    put_member(db, key, member, stored(score), old, deferred)


def save_size(db: Db, key: bytes, meta: Meta | None, size: int) -> None:
    """Record `key`'s new member count; a set emptied to 0 is deleted."""
    if size == 0:
        if meta is not None:
            db.delete(key)
        return
    expire_ms = None if meta is None else meta.expire_ms
    db.put_meta(key, Meta(ValueType.ZSET, expire_ms, size=size), meta is not None)


def remove(db: Db, key: bytes, meta: Meta, rows: Iterable[Scored], lowest: bool = False) -> int:
    """Remove the members `rows` (all present) from `key`; how many, the key deleted if
    emptied. `lowest`: `rows` are the set's lowest members in ascending order (ZPOPMIN),
    so each is the first of the index when it goes (`zset_records.remove_member`)."""
    removed = 0
    for member, score in rows:
        remove_member(db, key, member, score, lowest)
        removed += 1
    if removed:
        save_size(db, key, meta, meta.size - removed)
    return removed


def walk(
    db: Db, key: bytes, start: bytes, end: bytes, reverse: bool = False, want: int | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """`key`'s records with positions in [`start`, `end`), ascending or descending, read a
    chunk at a time; `want` (how many the caller will take, if known) caps the chunks."""
    read = db.fields_reversed if reverse else db.fields
    while start < end and want != 0:
        size = CHUNK if want is None else min(CHUNK, want)
        rows = read(key, start, size, end)
        yield from rows
        if len(rows) < size:
            return
        if want is not None:
            want -= len(rows)
        if reverse:
            end = rows[-1][0]
        else:
            start = rows[-1][0] + b"\x00"


def by_score(
    db: Db,
    key: bytes,
    start: bytes = INDEX,
    end: bytes = INDEX_END,
    reverse: bool = False,
    want: int | None = None,
) -> Iterator[Scored]:
    """Members in (score, member) order from the score index, in [`start`, `end`)."""
    for field, _ in walk(db, key, start, end, reverse, want):
        yield field[9:], from_sortable(field[1:9])


def by_member(
    db: Db,
    key: bytes,
    start: bytes = MEMBER,
    end: bytes = INDEX,
    reverse: bool = False,
    want: int | None = None,
) -> Iterator[Scored]:
    """Members in byte order from the member records, in [`start`, `end`)."""
    for field, raw in walk(db, key, start, end, reverse, want):
        yield field[1:], float(_DOUBLE.unpack(raw)[0])


def _chunk_counts(
    db: Db, key: bytes, spans: Sequence[tuple[bytes, bytes]]
) -> Iterator[tuple[int, bool]]:
    """Record counts of the spans a chunk at a time, each with whether it is the last."""
    for at, (start, end) in enumerate(spans):
        last_span = at == len(spans) - 1
        while start < end:
            rows = db.fields(key, start, CHUNK, end)
            if len(rows) < CHUNK:
                if rows or last_span:
                    yield len(rows), last_span
                break
            yield len(rows), False
            start = rows[-1][0] + b"\x00"
    yield 0, True


def count_in(
    db: Db, key: bytes, start: bytes, end: bytes, family: tuple[bytes, bytes], size: int
) -> int:
    """How many of `key`'s `size` records of one family (positions in `family`) lie in
    [`start`, `end`): the inside and the outside are walked by turns, and the first to
    run out gives the answer (see the module docstring)."""
    if start >= end:
        return 0
    inside = _chunk_counts(db, key, [(start, end)])
    outside = _chunk_counts(db, key, [(family[0], start), (end, family[1])])
    counted_in = counted_out = 0
    while True:
        step, done = next(inside)
        counted_in += step
        if done:
            return counted_in
        step, done = next(outside)
        counted_out += step
        if done:
            return size - counted_out


SCORE_FAMILY = (INDEX, INDEX_END)
MEMBER_FAMILY = (MEMBER, INDEX)


def rank_of(db: Db, key: bytes, size: int, member: bytes, reverse: bool) -> int | None:
    """`member`'s 0-based rank by (score, member), from the highest when `reverse`."""
    score = score_of(db, key, member)
    if score is None:
        return None
    rank = rank_at(db, key, size, index_field(score, member))
    return size - 1 - rank if reverse else rank


def count_scores(db: Db, key: bytes, size: int, start: bytes, end: bytes) -> int:
    """How many of `key`'s `size` members have score-index positions in [`start`, `end`)."""
    if start >= end:
        return 0
    return rank_at(db, key, size, end) - rank_at(db, key, size, start)


def count_lex(db: Db, key: bytes, size: int, start: bytes, end: bytes) -> int:
    """How many members lie in [`start`, `end`) of the member records (lex positions):
    through the index when every score is equal, else by `count_in` (module docstring)."""
    if start >= end:
        return 0
    first = db.fields(key, INDEX, 1, INDEX_END)
    last = db.fields_reversed(key, INDEX, 1, INDEX_END)
    if first and last and first[0][0][1:9] == last[0][0][1:9]:
        score = INDEX + first[0][0][1:9]
        return count_scores(db, key, size, _as_index(score, start), _as_index(score, end))
    return count_in(db, key, start, end, MEMBER_FAMILY, size)


def _as_index(score: bytes, position: bytes) -> bytes:
    """The score-index position of lex position `position` when every member's index
    position starts with `score`."""
    if position >= INDEX:
        return INDEX_END
    return score + position[len(MEMBER) :]


def by_rank(db: Db, key: bytes, size: int, first: int, last: int, reverse: bool) -> list[Scored]:
    """The members at ranks `first`..`last` (0 <= first <= last < size) counted in the
    walk's direction (`reverse`: from the highest): a walk from the nearer end when it is
    within `NEAR` of the range, else from the range's first member found by rank."""
    want = last - first + 1
    if first <= NEAR:
        return list(islice(by_score(db, key, reverse=reverse, want=last + 1), first, last + 1))
    if size - 1 - last <= NEAR:
        rows = by_score(db, key, reverse=not reverse, want=size - first)
        picked = list(islice(rows, size - 1 - last, size - first))
        picked.reverse()
        return picked
    ascending = size - 1 - first if reverse else first
    member, score = member_at(db, key, size, ascending)
    position = index_field(score, member)
    if reverse:
        return list(by_score(db, key, INDEX, position + b"\x00", True, want))
    return list(by_score(db, key, position, INDEX_END, False, want))


def at_ranks(db: Db, key: bytes, size: int, ranks: Sequence[int]) -> dict[int, Scored]:
    """The members at the given ranks (ascending order): each found through the index,
    or all in one walk up to the largest when that reads fewer records."""
    wanted = sorted(set(ranks))
    found: dict[int, Scored] = {}
    if len(wanted) * SELECT_COST < wanted[-1]:
        for rank in wanted:
            found[rank] = member_at(db, key, size, rank)
        return found
    rows = by_score(db, key, want=wanted[-1] + 1)
    at = 0
    for rank in wanted:
        found[rank] = next(islice(rows, rank - at, None))
        at = rank + 1
    return found


def scored_reply(rows: Iterable[Scored], withscores: bool) -> Reply:
    """Members alone, or with their scores as pairs (nested in RESP3, as Redis 7.0); no
    members is the empty array either way."""
    if withscores:
        found = tuple((Bulk(m), Double(s)) for m, s in rows)
        return Pairs(found) if found else Array(())
    return Array(tuple(Bulk(m) for m, _ in rows))


def nested_pairs(rows: Iterable[Scored]) -> Reply:
    """Member/score pairs nested in both protocols (ZMPOP, BZMPOP)."""
    return Array(tuple(Array((Bulk(m), Double(s))) for m, s in rows))
