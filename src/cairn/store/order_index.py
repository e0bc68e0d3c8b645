"""An order-statistics index over one ordered family of a key's sub-records: the rank of
any position and the entry at any rank in O(log n) record reads, kept as records beside
the entries (so DEL, RENAME, COPY, expiry, region splits and snapshots, which treat every
record under a key's ``F`` prefix alike, carry it with no code of their own).

The design is a deterministic skip list whose spans are counts (Redis's zskiplist keeps
the same counts in memory, as `span`). Every entry has a level from 0 to `LEVELS`, drawn
from a hash of its bytes (so every replica, and every rebuild, gives it the same one): a
level of at least ``l`` has probability ``FANOUT ** -l``. The entries of level ``>= l``
are the *pivots* of level ``l``; each keeps one count record::

    counts family | l (1 byte) | entry  ->  the number of entries in [entry, next pivot
                                            of level l), 8 bytes big-endian

The entries before the first pivot of a level (its *head*) keep no record: their count is
the enclosing span's count minus the counts of the pivots inside it, and the enclosing
count of the top level is the key's size, which the metadata holds. Finding a rank or a
position descends one level at a time, reading the pivots of one span (about `FANOUT`
records) at each, then about `FANOUT` entries at the bottom: about
``FANOUT * (LEVELS + 1) + n / FANOUT ** LEVELS`` records, a few hundred for a set of
millions. Adding or removing an entry updates one count per level (its predecessor pivot
at that level; the levels with no pivot before the entry, every level of a small set,
cost one failed lookup in all), plus, for the one entry in `FANOUT` that is itself a
pivot, one span's count at the level below.

An entry's level comes from a public hash, so a client can choose members that are all
pivots and make the walks of its own key longer (never wrong); the cost stays bounded by
the size of that key, as the walks it replaces were.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from dataclasses import dataclass

from cairn.store.db import Db

FANOUT_BITS = 6
FANOUT = 1 << FANOUT_BITS
"""One entry in `FANOUT` is a pivot of level 1, one in ``FANOUT ** 2`` of level 2, ..."""
LEVELS = 3
"""Pivot levels: the top level has one pivot per ``FANOUT ** LEVELS`` (about 260,000)
entries, so its walk stays short for sets of tens of millions, while an addition or a
removal touches at most `LEVELS` counts."""

SELECT_COST = FANOUT * (LEVELS + 1) // 2
"""About the records one selection reads (the top span whole, then about a quarter of
each span below, `OrderIndex.select_path`): what callers weigh against a walk."""

_U64 = struct.Struct(">Q")
_CHUNK = 16
"""Pivot records read per step of a walk inside a span (about `FANOUT` long)."""

_Rows = list[tuple[bytes, bytes]]
"""Records as `Db.raw_fields` returns them."""

Path = list[tuple[bytes, int] | None]
"""Per level from 1 up: the pivot whose span holds an entry, with its count (None: the
entry lies in that level's head); see `OrderIndex.select_path`."""


class IndexCorruptError(Exception):
    """The counts disagree with the entries (a bug: the index is maintained in the same
    batch as the entries it counts)."""


def level(entry: bytes, bits: int = FANOUT_BITS, levels: int = LEVELS) -> int:
    """The level of `entry`: how many of its hash's low `bits`-bit groups are zero (at
    most `levels`)."""
    value = int.from_bytes(hashlib.blake2b(entry, digest_size=4).digest(), "little")
    mask = (1 << bits) - 1
    found = 0
    while found < levels and not value & mask:
        found += 1
        value >>= bits
    return found


@dataclass(frozen=True, slots=True)
class OrderIndex:
    """The index of one family of sub-records: entries are the fields ``entries | entry``
    (below `entries_end`), counts live under the family prefix `counts` (which no entry
    field starts with). `bits` and `levels` shape the index (tests use a fan-out of 2 to
    reach every level with a few entries); stored indexes use the defaults."""

    entries: bytes
    entries_end: bytes
    counts: bytes
    bits: int = FANOUT_BITS
    levels: int = LEVELS

    # -- queries ------------------------------------------------------------------------

    def rank(self, db: Db, key: bytes, size: int, position: bytes) -> int:
        """How many of `key`'s `size` entries are below `position` (any bytes, compared
        with the entries' bytes)."""
        lo, hi, total, below = b"", None, size, 0
        for lvl in range(self.levels, 0, -1):
            pivots = self._pivots(db, key, lvl, lo, hi)
            head = total - sum(count for _, count in pivots)
            at = bisect_right(pivots, (position, _U64_MAX)) - 1
            if at < 0:
                hi = pivots[0][0] if pivots else hi
                total = head
                continue
            below += head + sum(count for _, count in pivots[:at])
            lo, total = pivots[at]
            hi = pivots[at + 1][0] if at + 1 < len(pivots) else hi
        rows = db.fields(key, self.entries + lo, None, self.entries + position)
        return below + len(rows)

    def select(self, db: Db, key: bytes, size: int, rank: int) -> bytes:
        """The entry at 0-based `rank` (``0 <= rank < size``) among `key`'s `size`."""
        return self.select_path(db, key, size, rank)[0]

    def select_path(self, db: Db, key: bytes, size: int, rank: int) -> tuple[bytes, Path]:
        """`select`, with the pivot (and its count) whose span holds the entry at each
        level, from level 1 up, None where it lies in the head (then every level above
        is None too).

        Each level's span is read a chunk of pivots at a time, up to the pivot that holds
        `rank`: below the top span, every span starts with a pivot of its own level (the
        pivot of the level above is one), so it has no head and is read from whichever
        end is nearer to `rank`; a span that holds the head of its level (the top one, and
        any below a head) keeps no count for that head, so it is read from its end (the
        head's count is what is left once its pivots are counted); the entries of the
        last span likewise from the nearer end. About a quarter of a span's records on
        average, half of it for a head span, instead of all of them. The first chunk is
        read across every level's counts at once, from the top level's end down: levels
        with no pivot at all (the top ones of a set of thousands) cost no read of their
        own, their head being the whole set."""
        lo: bytes | None = None
        hi: bytes | None = None
        total = size
        top, first = self._top_chunk(db, key)
        chosen: list[tuple[bytes, int] | None] = [None] * (self.levels - top)
        for lvl in range(top, 0, -1):
            lo, hi, total, rank = self._within(
                db, key, lvl, lo, hi, total, rank, first if lvl == top else None
            )
            chosen.append(None if lo is None else (lo, total))
        chosen.reverse()
        return self._entry_in(db, key, lo or b"", hi, total, rank), chosen

    def _top_chunk(self, db: Db, key: bytes) -> tuple[int, tuple[_Rows, bool]]:
        """The highest level with a pivot (0: none), and the last pivots of that level (up
        to `_CHUNK`, descending) with whether they are all of it: one backward read from
        the end of the top level over every level's counts."""
        at = db.field_offset(key) + len(self.counts)
        floor = self.counts + bytes((1,))
        rows = db.raw_fields(key, floor, _CHUNK, self._level_end(self.levels), True)
        if not rows:
            return 0, ([], True)
        top = rows[0][0][at]
        mine = [row for row in rows if row[0][at] == top]
        return top, (mine, len(mine) < _CHUNK)

    def _within(
        self,
        db: Db,
        key: bytes,
        lvl: int,
        lo: bytes | None,
        hi: bytes | None,
        total: int,
        rank: int,
        first: tuple[_Rows, bool] | None = None,
    ) -> tuple[bytes | None, bytes | None, int, int]:
        """The pivot of level `lvl` whose span holds `rank` in the span [`lo`, `hi`) of
        `total` entries (`lo` a pivot of this level; None: the span starts at the first
        entry, with this level's head): (that pivot, or None for the head, the next pivot
        or `hi`, its count, the rank within it). `first`: the span's last pivots, already
        read (`_top_chunk`), and whether they are all of them."""
        end = self._level_end(lvl) if hi is None else self._pivot(lvl, hi)
        offset = db.field_offset(key)
        skip = offset + len(self.counts) + 1
        unpack = _U64.unpack
        if lo is not None and rank < total - rank:  # forwards from `lo`
            start = self._pivot(lvl, lo)
            while True:
                rows = db.raw_fields(key, start, _CHUNK, end)
                for at, (record, raw) in enumerate(rows):
                    count = unpack(raw)[0]
                    if rank < count:
                        return record[skip:], self._next(db, key, rows, at, end, hi), count, rank
                    rank -= count
                if len(rows) < _CHUNK:
                    raise IndexCorruptError(f"rank past the counts of {key!r}")
                start = rows[-1][0][offset:] + b"\x00"
        back = total - 1 - rank  # backwards from `hi`
        after: bytes | None = None  # the record of the pivot after the one looked at
        floor = self._pivot(lvl, b"" if lo is None else lo)
        while True:
            if first is None:
                rows = db.raw_fields(key, floor, _CHUNK, end, reverse=True)
                complete = len(rows) < _CHUNK
            else:
                rows, complete = first
                first = None
            for record, raw in rows:
                count = unpack(raw)[0]
                if back < count:
                    following = hi if after is None else after[skip:]
                    return record[skip:], following, count, count - 1 - back
                back -= count
                after = record
            if complete:
                if lo is None:  # in the head: `back` entries of it lie after `rank`
                    head_end = hi if after is None else after[skip:]
                    return None, head_end, back + rank + 1, rank
                raise IndexCorruptError(f"rank past the counts of {key!r}")
            end = rows[-1][0][offset:]

    def _next(
        self,
        db: Db,
        key: bytes,
        rows: list[tuple[bytes, bytes]],
        at: int,
        end: bytes,
        hi: bytes | None,
    ) -> bytes | None:
        """The pivot after `rows[at]` (raw count records of one level, read forwards up
        to `end`), or `hi` when there is none before `end`."""
        offset = db.field_offset(key)
        skip = offset + len(self.counts) + 1
        if at + 1 < len(rows):
            return rows[at + 1][0][skip:]
        if len(rows) < _CHUNK:
            return hi
        start = rows[at][0][offset:] + b"\x00"
        more = db.raw_fields(key, start, 1, end)
        return more[0][0][skip:] if more else hi

    def _entry_in(
        self, db: Db, key: bytes, lo: bytes, hi: bytes | None, total: int, rank: int
    ) -> bytes:
        """The entry at `rank` of the `total` entries in [`lo`, `hi`), read from the
        nearer end."""
        bound = self._entry_bound(hi)
        if rank < total - rank:
            at = rank
            rows = db.raw_fields(key, self.entries + lo, rank + 1, bound)
        else:
            at = total - 1 - rank
            rows = db.raw_fields(key, self.entries + lo, at + 1, bound, reverse=True)
        if len(rows) <= at:
            raise IndexCorruptError(f"fewer entries than counted in {key!r}")
        return rows[at][0][db.field_offset(key) + len(self.entries) :]

    # -- maintenance --------------------------------------------------------------------

    def added(self, db: Db, key: bytes, entry: bytes) -> None:
        """Count `entry`, whose record the caller has just written (it was absent)."""
        height = level(entry, self.bits, self.levels)
        if not height:
            self._bump(db, key, entry, 1)
            return
        for lvl in range(1, self.levels + 1):
            prev = self._previous(db, key, lvl, entry)
            if lvl > height:
                if prev is None:
                    break  # no pivot below `entry` at this level, hence none above it
                self._put(db, key, lvl, prev[0], prev[1] + 1)
                continue
            following = db.fields(key, self._pivot(lvl, entry) + b"\x00", 1, self._level_end(lvl))
            hi = following[0][0][len(self.counts) + 1 :] if following else None
            count = self._span_count(db, key, lvl - 1, entry, hi)
            self._put(db, key, lvl, entry, count)
            if prev is not None:
                self._put(db, key, lvl, prev[0], prev[1] - (count - 1))

    def added_many(self, db: Db, key: bytes, entries: list[bytes]) -> None:
        """Count `entries` (distinct), whose records the caller has just written (they were
        absent): level by level, bottom up, each existing pivot's count grows once by the
        new entries in its span, then the new pivots of the level split their spans. A
        bulk write (a variadic SADD or ZADD, RESTORE, a *STORE) so reads each pivot it
        touches once, not once per entry."""
        if not entries:
            return
        ordered = sorted(entries)
        heights = [level(e, self.bits, self.levels) for e in ordered]
        for lvl in range(1, self.levels + 1):
            grown = self._grow_spans(db, key, lvl, ordered)
            rising = [e for e, height in zip(ordered, heights, strict=True) if height >= lvl]
            if not grown and not rising:
                break  # no pivot below any entry at this level, hence none above
            for entry in rising:
                following = db.fields(
                    key, self._pivot(lvl, entry) + b"\x00", 1, self._level_end(lvl)
                )
                hi = following[0][0][len(self.counts) + 1 :] if following else None
                count = self._span_count(db, key, lvl - 1, entry, hi)
                prev = self._previous(db, key, lvl, entry)
                self._put(db, key, lvl, entry, count)
                if prev is not None:
                    self._put(db, key, lvl, prev[0], prev[1] - count)

    def _grow_spans(self, db: Db, key: bytes, lvl: int, ordered: list[bytes]) -> bool:
        """Add to each existing pivot of level `lvl` the number of `ordered` entries in its
        span; whether any entry has a pivot below it."""
        limit = 2 * len(ordered) + 1
        end = self._pivot(lvl, ordered[-1]) + b"\x00"
        inside = self._pivots_upto(db, key, lvl, ordered[0], end, limit)
        grown: dict[bytes, list[int]] = {}
        if len(inside) < limit:  # every pivot among the entries: one merge in memory
            prev = self._previous(db, key, lvl, ordered[0])
            at = 0
            for entry in ordered:
                while at < len(inside) and inside[at][0] < entry:
                    prev = inside[at]
                    at += 1
                if prev is not None:
                    grown.setdefault(prev[0], [prev[1], 0])[1] += 1
        else:
            for entry in ordered:
                prev = self._previous(db, key, lvl, entry)
                if prev is not None:
                    grown.setdefault(prev[0], [prev[1], 0])[1] += 1
        for pivot, (count, more) in grown.items():
            self._put(db, key, lvl, pivot, count + more)
        return bool(grown)

    def _pivots_upto(
        self, db: Db, key: bytes, lvl: int, lo: bytes, end: bytes, limit: int
    ) -> list[tuple[bytes, int]]:
        """At most `limit` pivots of level `lvl` from entry `lo` to record key `end`."""
        skip = len(self.counts) + 1
        rows = db.fields(key, self._pivot(lvl, lo), limit, end)
        return [(field[skip:], _U64.unpack(raw)[0]) for field, raw in rows]

    def removed(self, db: Db, key: bytes, entry: bytes) -> None:
        """Stop counting `entry` (present until this call or just deleted by the caller)."""
        height = level(entry, self.bits, self.levels)
        if not height:
            self._bump(db, key, entry, -1)
            return
        for lvl in range(1, self.levels + 1):
            prev = self._previous(db, key, lvl, entry)
            if prev is None and lvl > height:
                break  # no pivot below `entry` at this level, hence none above it
            change = -1
            if lvl <= height:
                raw = db.get_field(key, self._pivot(lvl, entry))
                if raw is None:
                    raise IndexCorruptError(f"a pivot of {key!r} has no count")
                db.delete_field(key, self._pivot(lvl, entry))
                change = _U64.unpack(raw)[0] - 1
            if prev is not None and change:
                self._put(db, key, lvl, prev[0], prev[1] + change)

    def moved(self, db: Db, key: bytes, old: bytes, new: bytes) -> None:
        """Count `new` instead of `old` (a member's score change): the caller has deleted
        `old`'s record and written `new`'s. When neither is a pivot (all but about one
        change in 32), each level's count moves from the pivot holding `old` to the one
        holding `new`, and the walk stops at the first level where both lie in the same
        span (or head): no pivot of that level lies between them, hence none of a level
        above. A small change of score stops at level 1 with two lookups and no write."""
        if level(old, self.bits, self.levels) or level(new, self.bits, self.levels):
            self.removed(db, key, old)
            self.added(db, key, new)
            return
        base = db.field_prefix(key) + self.counts
        rscan = db.records.rscan
        for lvl in range(1, self.levels + 1):
            floor = base + _LEVEL_TAGS[lvl]
            was = rscan(floor, floor + old, 1)
            now = rscan(floor, floor + new, 1)
            if was == now:
                return  # the same span, or both in the head, here and on every level above
            if was:
                self._adjust(db, key, was[0], -1)
            if now:
                self._adjust(db, key, now[0], 1)

    def _adjust(self, db: Db, key: bytes, row: tuple[bytes, bytes], delta: int) -> None:
        """Add `delta` to the count record `row` (as `Db.raw_fields` returned it)."""
        count = _U64.unpack(row[1])[0] + delta
        if count <= 0:
            raise IndexCorruptError(f"a count of {key!r} would drop to {count}")
        db.put_record(key, row[0], _U64.pack(count))

    def removed_first(self, db: Db, key: bytes, entry: bytes) -> None:
        """`removed` for the first entry (ZPOPMIN's): no pivot lies below it at any level,
        so its own count records, if it is a pivot, are all that change (its span joins
        the head, which keeps no record)."""
        for lvl in range(1, level(entry, self.bits, self.levels) + 1):
            db.delete_field(key, self._pivot(lvl, entry))

    # -- internals ----------------------------------------------------------------------

    def _pivot(self, lvl: int, entry: bytes) -> bytes:
        return self.counts + bytes((lvl,)) + entry

    def _level_end(self, lvl: int) -> bytes:
        return self.counts + bytes((lvl + 1,))

    def _entry_bound(self, hi: bytes | None) -> bytes:
        return self.entries_end if hi is None else self.entries + hi

    def _pivots(
        self, db: Db, key: bytes, lvl: int, lo: bytes, hi: bytes | None
    ) -> list[tuple[bytes, int]]:
        """The pivots of level `lvl` with entries in [`lo`, `hi`) and their counts."""
        end = self._level_end(lvl) if hi is None else self._pivot(lvl, hi)
        skip = db.field_offset(key) + len(self.counts) + 1
        rows = db.raw_fields(key, self._pivot(lvl, lo), None, end)
        return [(record[skip:], _U64.unpack(raw)[0]) for record, raw in rows]

    def _previous(self, db: Db, key: bytes, lvl: int, entry: bytes) -> tuple[bytes, int] | None:
        """The last pivot of level `lvl` below `entry`, with its count (None: the head)."""
        rows = db.raw_fields(key, self._pivot(lvl, b""), 1, self._pivot(lvl, entry), True)
        if not rows:
            return None
        record, raw = rows[0]
        return record[db.field_offset(key) + len(self.counts) + 1 :], _U64.unpack(raw)[0]

    def _bump(self, db: Db, key: bytes, entry: bytes, delta: int) -> None:
        """Add `delta` to the count of the last pivot below `entry` at each level, up to
        the first level with none (then none lies below it above either): the whole of
        counting or uncounting an entry that is no pivot (all but one in `FANOUT`), one
        reverse lookup and one write per level, each on the record as read. The hot path
        of ZADD and SADD: the lookups go to the records directly, from the key's prefix
        read once."""
        base = db.field_prefix(key) + self.counts
        rscan = db.records.rscan
        for lvl in range(1, self.levels + 1):
            floor = base + _LEVEL_TAGS[lvl]
            rows = rscan(floor, floor + entry, 1)
            if not rows:
                return
            record, raw = rows[0]
            count = _U64.unpack(raw)[0] + delta
            if count <= 0:
                raise IndexCorruptError(f"a count of {key!r} would drop to {count}")
            db.put_record(key, record, _U64.pack(count))

    def _span_count(self, db: Db, key: bytes, lvl: int, lo: bytes, hi: bytes | None) -> int:
        """The entries in [`lo`, `hi`), `lo` being a pivot of level `lvl` (0: an entry):
        the sum of that level's counts over the span, or the entries themselves."""
        if lvl == 0:
            return len(db.raw_fields(key, self.entries + lo, None, self._entry_bound(hi)))
        return sum(count for _, count in self._pivots(db, key, lvl, lo, hi))

    def _put(self, db: Db, key: bytes, lvl: int, entry: bytes, count: int) -> None:
        if count <= 0:
            raise IndexCorruptError(f"a count of {key!r} would drop to {count}")
        db.put_field(key, self._pivot(lvl, entry), _U64.pack(count))


_U64_MAX = (1 << 64) - 1
_LEVEL_TAGS = [bytes((lvl,)) for lvl in range(256)]
"""The level byte of a count record, by level."""
