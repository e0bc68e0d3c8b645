"""How a stream lives in the keyspace, and the record-level operations its commands share.

A stream is a metadata record (`ValueType.STREAM`: `Meta.size` is its length, `Meta.value`
its `StreamState`) and one ``F`` sub-record per entry, keyed by `ENTRY`, the stream's
4-byte generation and the entry's 16-byte big-endian id, valued by the entry's 8-byte
ordinal and its field/value pairs. Id ranges are ordered scans over that family, so XADD
is one point write and XRANGE of n entries one seek and a scan of n records.

The last generated id, the recorded first id, the largest deleted id and the entries-added
counter live in the metadata: they are replicated state like the entries, so ids never go
backwards, whichever replica leads. Unlike the other composite types, an emptied stream is
kept (Redis keeps it: its last id must survive XDEL and XTRIM).

Trimming never deletes in bulk (issue 13: XTRIM MAXLEN 0 of ten million entries must not
stall the node). It moves the stream's *cut*:

    Invariant: an entry record is live iff its generation is the stream's `gen` and its
    id is above `cut`; `cut <= last_id`; every live entry's ordinal is at least
    `cut_ord`, and `length` counts the live entries.

Records behind the cut (trimmed) are invisible to every read, which starts its scans past
the cut, and are deleted later in bounded batches (`reclaim`: by each later write of the
stream, and by the leader's `cairn.reclaim` steps, `stream_reclaim`); `reclaim` in the
state says some may remain. Finding the cut is O(log n) however many entries go: the
number of live entries between two ordinals is their difference minus the XDEL holes in
between, which `stream_holes` counts in bounded reads, and the entry of a given ordinal is
found by a binary search over ids (ordinals grow with ids). Trims of at most `SCAN_MAX`
entries simply read them. When XSETID takes an emptied stream's last id below its cut
(Redis allows any id on an empty stream), the stream moves to a new generation, so the
records of the old one stay behind the cut whatever ids come next.

DEL, RENAME, COPY, DUMP and a snapshot see the records as they are: a deleted stream takes
its trimmed records with it, a copied one keeps its state and cut with them, and DUMP
writes the live entries only. Trimming leaves consumer groups and their PELs alone, as
Redis does (a pending entry that was trimmed reads as deleted).

Approximate trimming (`MAXLEN ~`, `MINID ~`) removes whole nodes in Redis (a radix-tree
node holds up to `stream-node-max-entries`, 100, entries). Cairn has no nodes; it counts
virtual nodes of `NODE_ENTRIES` consecutive entries from the first one, which is what a
Redis stream built by XADD of small entries has, so it trims exactly as much as Redis
there (after XDEL, or with entries over 4 KB a node, Redis's nodes differ and so may the
amount trimmed; either way the promise of `~`, at least the threshold kept, holds).

A stream written before ordinals and cuts existed (a 64-byte state) is refused with an
error reply rather than misread: DUMP it with the old version and RESTORE it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from cairn.resp.reply import ErrorReply
from cairn.store.commands.common import fail, lookup_typed
from cairn.store.commands.stream_holes import (
    add_hole,
    first_hole_records,
    holes_below,
    nth_solid,
)
from cairn.store.commands.stream_ids import MAX_ID, MIN_ID, StreamId, decode_id
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType

ENTRY = b"e"
"""First byte of an entry's sub-record key (then its 4-byte generation and 16-byte id)."""
ENTRY_END = b"f"
"""Just past every entry key."""
NODE_ENTRIES = 100
"""Entries per virtual node for approximate trimming (Redis's stream-node-max-entries)."""
APPROX_LIMIT = 100 * NODE_ENTRIES
"""How many entries an approximate trim without LIMIT may remove (Redis's default)."""
RECLAIM_BATCH = 64
"""Trimmed records a write to the stream deletes at most (`reclaim`); the leader's
background `cairn.reclaim` steps delete the rest in batches (`stream_reclaim`)."""
SCAN_MAX = 256
"""A trim of at most this many entries reads them instead of counting in the hole tree."""

_STATE = struct.Struct(">QQQQQQQQQQQQI?")
_LEGACY_STATE = 64
"""The size of a state written before cuts and ordinals existed (refused: see the docstring)."""
_LEGACY = ErrorReply(
    "ERR this stream was written by an older Cairn (before trimming cuts): DUMP it with "
    "that version and RESTORE it"
)
_ORD = struct.Struct(">Q")
_GEN = struct.Struct(">I")
_LEN = struct.Struct(">I")
Entry = tuple[StreamId, tuple[bytes, ...]]
"""One stream entry: its id and its flat field/value list."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream's state beyond its entries (XINFO STREAM shows the first six).

    `first_id` is the recorded first entry id (0-0 when empty); `max_deleted` the largest
    id XDEL removed; `entries_added` counts every entry ever added; `groups` the number of
    consumer groups. The rest is the layout's (module docstring): entries of generation
    `gen` with ids up to `cut` and every entry of an older generation are trimmed;
    `cut_ord` is the ordinal of the first entry past the cut, `next_ord` the next entry's;
    `reclaim` says trimmed records may remain. Invariant: `cut <= last_id`.
    """

    length: int = 0
    last_id: StreamId = MIN_ID
    first_id: StreamId = MIN_ID
    max_deleted: StreamId = MIN_ID
    entries_added: int = 0
    groups: int = 0
    cut: StreamId = MIN_ID
    cut_ord: int = 0
    next_ord: int = 0
    gen: int = 0
    reclaim: bool = False


def _encode_state(state: StreamState) -> bytes:
    return _STATE.pack(
        *state.last_id,
        *state.first_id,
        *state.max_deleted,
        state.entries_added,
        state.groups,
        *state.cut,
        state.cut_ord,
        state.next_ord,
        state.gen,
        state.reclaim,
    )


def decode_state(meta: Meta) -> StreamState:
    """A stream's state from its metadata record."""
    if len(meta.value) == _LEGACY_STATE:
        raise fail(_LEGACY)
    v = _STATE.unpack(meta.value)
    return StreamState(
        length=meta.size,
        last_id=StreamId(v[0], v[1]),
        first_id=StreamId(v[2], v[3]),
        max_deleted=StreamId(v[4], v[5]),
        entries_added=v[6],
        groups=v[7],
        cut=StreamId(v[8], v[9]),
        cut_ord=v[10],
        next_ord=v[11],
        gen=v[12],
        reclaim=v[13],
    )


@dataclass(frozen=True, slots=True)
class Stream:
    """A live stream: its key, metadata (for the expiry) and state."""

    key: bytes
    meta: Meta
    state: StreamState


def lookup_stream(db: Db, key: bytes) -> Stream | None:
    """The stream at `key`, None if missing; WRONGTYPE for another type."""
    meta = lookup_typed(db, key, ValueType.STREAM)
    return None if meta is None else Stream(key, meta, decode_state(meta))


def save(db: Db, key: bytes, old: Stream | None, state: StreamState) -> Stream:
    """Write `key`'s stream metadata as `state` (a new stream when `old` is None), after
    deleting up to `RECLAIM_BATCH` trimmed records if some remain (`reclaim`)."""
    if state.reclaim:
        state = reclaim(db, key, state, RECLAIM_BATCH)[0]
    expire = None if old is None else old.meta.expire_ms
    meta = Meta(ValueType.STREAM, expire, value=_encode_state(state), size=state.length)
    db.put_meta(key, meta, existed=old is not None)
    return Stream(key, meta, state)


def save_state(db: Db, key: bytes, meta: Meta, state: StreamState) -> None:
    """Rewrite existing stream `key`'s metadata `meta` with `state`, nothing else."""
    db.put_meta(key, replace(meta, value=_encode_state(state), size=state.length), existed=True)


def is_legacy(meta: Meta) -> bool:
    """Whether a stream's metadata predates cuts and ordinals (`decode_state` refuses it)."""
    return len(meta.value) == _LEGACY_STATE


def encode_fields(fields: tuple[bytes, ...]) -> bytes:
    """An entry's field/value pairs, each length-prefixed (its stored value after the
    ordinal)."""
    return b"".join(_LEN.pack(len(item)) + item for item in fields)


def decode_fields(data: bytes, pos: int = 0) -> tuple[bytes, ...]:
    """The inverse of `encode_fields`, from `pos` on."""
    items = []
    while pos < len(data):
        size = _LEN.unpack_from(data, pos)[0]
        items.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return tuple(items)


def entry_key(gen: int, entry_id: StreamId) -> bytes:
    """The sub-record name of entry `entry_id` of generation `gen`."""
    return ENTRY + _GEN.pack(gen) + entry_id.encode()


def _gen_end(gen: int) -> bytes:
    """Just past every entry key of generation `gen`."""
    return ENTRY + _GEN.pack(gen + 1) if gen < 0xFFFFFFFF else ENTRY_END


def _live_start(state: StreamState, start: StreamId) -> bytes | None:
    """The key where live entries from `start` on begin (None: nothing can be live)."""
    if start <= state.cut:
        past = state.cut.next() if state.length else None
        if past is None:
            return None
        start = past
    return entry_key(state.gen, start)


def _ordinal(value: bytes) -> int:
    return int(_ORD.unpack_from(value)[0])


def _decode_entry(name: bytes, value: bytes) -> Entry:
    return decode_id(name[5:]), decode_fields(value, _ORD.size)


def put_entry(
    db: Db, key: bytes, state: StreamState, entry_id: StreamId, fields: tuple[bytes, ...]
) -> None:
    """Store entry `entry_id` with ordinal `state.next_ord` (the caller counts it)."""
    value = _ORD.pack(state.next_ord) + encode_fields(fields)
    db.put_field(key, entry_key(state.gen, entry_id), value)


def get_entry(db: Db, key: bytes, state: StreamState, entry_id: StreamId) -> Entry | None:
    """Entry `entry_id`, None if it is not in the stream (deleted or trimmed)."""
    if entry_id <= state.cut or not state.length:
        return None
    raw = db.get_field(key, entry_key(state.gen, entry_id))
    return None if raw is None else (entry_id, decode_fields(raw, _ORD.size))


def entry_ordinal(db: Db, key: bytes, state: StreamState, entry_id: StreamId) -> int | None:
    """The ordinal of live entry `entry_id`, None if it is not in the stream."""
    if entry_id <= state.cut or not state.length:
        return None
    raw = db.get_field(key, entry_key(state.gen, entry_id))
    return None if raw is None else _ordinal(raw)


def entries(
    db: Db,
    key: bytes,
    state: StreamState,
    start: StreamId,
    end: StreamId,
    count: int | None,
    rev: bool = False,
) -> list[Entry]:
    """Entries with `start <= id <= end`, at most `count` (None: all), ascending or, with
    `rev`, descending from `end`."""
    low = _live_start(state, start)
    if low is None or start > end:
        return []
    high = entry_key(state.gen, end) + b"\x00"
    if low >= high:
        return []
    scan = db.fields_reversed if rev else db.fields
    return [_decode_entry(name, value) for name, value in scan(key, low, count, high)]


def _seek(db: Db, key: bytes, state: StreamState, start: StreamId) -> tuple[StreamId, int] | None:
    """The first live entry with an id `>= start`: its id and ordinal."""
    low = _live_start(state, start)
    if low is None:
        return None
    rows = db.fields(key, low, 1, _gen_end(state.gen))
    return (decode_id(rows[0][0][5:]), _ordinal(rows[0][1])) if rows else None


def first_entry_id(db: Db, key: bytes, state: StreamState) -> StreamId | None:
    """The smallest live entry id, None when the stream is empty."""
    found = _seek(db, key, state, MIN_ID)
    return None if found is None else found[0]


def last_entry_id(db: Db, key: bytes, state: StreamState) -> StreamId | None:
    """The largest live entry id, None when the stream is empty."""
    rows = entries(db, key, state, MIN_ID, MAX_ID, 1, rev=True)
    return rows[0][0] if rows else None


# -- trimming -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trim:
    """A trimming request (XADD/XTRIM MAXLEN or MINID): keep at most `maxlen` entries, or
    none below `minid`; `approx` trims whole virtual nodes only, at most `limit` entries
    (0: no limit)."""

    maxlen: int | None
    minid: StreamId | None
    approx: bool
    limit: int


def live_before(db: Db, key: bytes, state: StreamState, ordinal: int) -> int:
    """How many live entries have an ordinal below `ordinal` (>= `cut_ord`)."""
    holes = holes_below(db, key, ordinal) - holes_below(db, key, state.cut_ord)
    return ordinal - state.cut_ord - holes


def trim(db: Db, key: bytes, state: StreamState, how: Trim) -> tuple[StreamState, int]:
    """Trim the stream (whose current state is `state`); its new state and how many
    entries were trimmed. O(log n) whatever the amount: the trimmed entries only move
    behind the cut (a trim of at most `SCAN_MAX` entries just reads them: XADD's usual
    one-entry trim costs one short scan)."""
    if not state.length:
        return state, 0
    head: list[tuple[StreamId, int]] = []
    if how.maxlen is not None:
        wanted = max(0, state.length - how.maxlen)
    else:
        assert how.minid is not None
        head = _head(db, key, state, how.minid, SCAN_MAX + 1)
        wanted = len(head)
        if wanted > SCAN_MAX:
            found = _seek(db, key, state, how.minid)
            wanted = live_before(db, key, state, state.next_ord if found is None else found[1])
    count = _approx_count(state.length, wanted, how) if how.approx else wanted
    if not count:
        return state, 0
    if count == state.length:
        return _cut(state, state.last_id, state.next_ord, MIN_ID, 0), count
    if count < len(head):
        new_first, ordinal = head[count]
    elif count <= SCAN_MAX:
        found = _seek(db, key, state, how.minid) if how.minid is not None else None
        new_first, ordinal = found or _head(db, key, state, None, count + 1)[count]
    else:
        new_first = _find_ordinal(db, key, state, _solid_rank(db, key, state, count))
        found_ordinal = entry_ordinal(db, key, state, new_first)
        assert found_ordinal is not None
        ordinal = found_ordinal
    cut = new_first.previous()
    assert cut is not None
    return _cut(state, cut, ordinal, new_first, state.length - count), count


def _head(
    db: Db, key: bytes, state: StreamState, below: StreamId | None, limit: int
) -> list[tuple[StreamId, int]]:
    """The first `limit` live entries (only those below `below` when given): ids and
    ordinals."""
    low = _live_start(state, MIN_ID)
    if low is None:
        return []
    high = _gen_end(state.gen) if below is None else entry_key(state.gen, below)
    rows = db.fields(key, low, limit, high) if low < high else []
    return [(decode_id(name[5:]), _ordinal(value)) for name, value in rows]


def _approx_count(length: int, wanted: int, how: Trim) -> int:
    """How many entries an approximate trim removes: whole virtual nodes of
    `NODE_ENTRIES` from the first (the last one may be short), none beyond `wanted` and
    `how.limit` (module docstring)."""
    cap = min(wanted, how.limit) if how.limit else wanted
    return length if cap >= length else cap - cap % NODE_ENTRIES


def _solid_rank(db: Db, key: bytes, state: StreamState, count: int) -> int:
    """The rank, among every ordinal that is not a hole, of the live entry `count`
    entries past the first."""
    return state.cut_ord - holes_below(db, key, state.cut_ord) + count


def _find_ordinal(db: Db, key: bytes, state: StreamState, rank: int) -> StreamId:
    """The id of the live entry whose ordinal is the `rank`-th solid one: a binary search
    over the id space between the first and last entries, one seek a step (at most 128)."""
    target = nth_solid(db, key, rank)
    low, high = _as_int(state.first_id), _as_int(state.last_id)
    while low < high:
        middle = (low + high) // 2
        found = _seek(db, key, state, _as_id(middle))
        if found is not None and found[1] >= target:
            high = middle
        else:
            low = middle + 1
    found = _seek(db, key, state, _as_id(low))
    assert found is not None and found[1] == target
    return found[0]


def _as_int(entry_id: StreamId) -> int:
    return (entry_id.ms << 64) | entry_id.seq


def _as_id(value: int) -> StreamId:
    return StreamId(value >> 64, value & 0xFFFFFFFFFFFFFFFF)


def _cut(
    state: StreamState, cut: StreamId, cut_ord: int, first: StreamId, length: int
) -> StreamState:
    return replace(state, cut=cut, cut_ord=cut_ord, first_id=first, length=length, reclaim=True)


def new_generation(state: StreamState) -> StreamState:
    """The state of an empty stream whose last id goes below its cut (XSETID): later
    entries go to a new generation, so every trimmed record stays behind the cut."""
    assert not state.length
    return replace(state, gen=state.gen + 1, cut=MIN_ID, reclaim=True)


def reclaim(db: Db, key: bytes, state: StreamState, budget: int) -> tuple[StreamState, int]:
    """Delete up to `budget` trimmed records (entries behind the cut, then holes below
    `cut_ord`); the state (`reclaim` cleared once none remain) and how many were deleted."""
    end = (
        entry_key(state.gen, state.cut) + b"\x00"
        if state.cut != MIN_ID
        else entry_key(state.gen, MIN_ID)
    )
    rows = db.fields(key, ENTRY, budget, end)
    for name, _ in rows:
        db.delete_field(key, name)
    done = len(rows)
    if done < budget:
        for ordinal in first_hole_records(db, key, state.cut_ord, budget - done):
            add_hole(db, key, ordinal, -1)
            done += 1
    if done < budget:
        state = replace(state, reclaim=False)
    return state, done


def after_delete(
    db: Db, key: bytes, state: StreamState, deleted: int, first_gone: bool
) -> StreamState:
    """The state once XDEL removed `deleted` entries (`first_gone`: the first entry may
    have been one of them, so the recorded first id is read again)."""
    length = state.length - deleted
    first = state.first_id
    if length == 0:
        first = MIN_ID
    elif first_gone:
        found = first_entry_id(db, key, replace(state, length=length))
        assert found is not None
        first = found
    return replace(state, length=length, first_id=first)
