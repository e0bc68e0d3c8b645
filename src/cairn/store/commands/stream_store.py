"""How a stream lives in the keyspace, and the record-level operations its commands share.

A stream is a metadata record (`ValueType.STREAM`: `Meta.size` is its length, `Meta.value`
its `StreamState`) and one ``F`` sub-record per entry, keyed by `ENTRY` and the entry's
16-byte big-endian id, valued by its field/value pairs. Id ranges are ordered scans over
that family, so XADD is one point write, XRANGE of n entries one scan of n records, and
trimming deletes exactly the entries it trims (each a point delete).

The last generated id, the recorded first id, the largest deleted id and the entries-added
counter live in the metadata: they are replicated state like the entries, so ids never go
backwards, whichever replica leads. Unlike the other composite types, an emptied stream is
kept (Redis keeps it: its last id must survive XDEL and XTRIM).

Approximate trimming (`MAXLEN ~`, `MINID ~`) removes whole nodes in Redis (a radix-tree
node holds up to `stream-node-max-entries`, 100, entries). Cairn has no nodes; it counts
virtual nodes of `NODE_ENTRIES` consecutive entries from the first one, which is what a
Redis stream built by XADD of small entries has, so it trims exactly as much as Redis
there (after XDEL, or with entries over 4 KB a node, Redis's nodes differ and so may the
amount trimmed; either way the promise of `~`, at least the threshold kept, holds).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from cairn.store.commands.common import lookup_typed
from cairn.store.commands.stream_ids import MIN_ID, StreamId, decode_id
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType

ENTRY = b"e"
"""First byte of an entry's sub-record key (then its 16-byte id)."""
ENTRY_END = b"f"
"""Just past every entry key."""
NODE_ENTRIES = 100
"""Entries per virtual node for approximate trimming (Redis's stream-node-max-entries)."""
APPROX_LIMIT = 100 * NODE_ENTRIES
"""How many entries an approximate trim without LIMIT may remove (Redis's default)."""

_STATE = struct.Struct(">QQQQQQQQ")
_LEN = struct.Struct(">I")
Entry = tuple[StreamId, tuple[bytes, ...]]
"""One stream entry: its id and its flat field/value list."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream's state beyond its entries (XINFO STREAM shows it).

    `first_id` is the recorded first entry id (0-0 when empty); `max_deleted` the largest
    id XDEL removed; `entries_added` counts every entry ever added; `groups` the number of
    consumer groups."""

    length: int = 0
    last_id: StreamId = MIN_ID
    first_id: StreamId = MIN_ID
    max_deleted: StreamId = MIN_ID
    entries_added: int = 0
    groups: int = 0


def _encode_state(state: StreamState) -> bytes:
    return _STATE.pack(
        *state.last_id, *state.first_id, *state.max_deleted, state.entries_added, state.groups
    )


def _decode_state(meta: Meta) -> StreamState:
    values = _STATE.unpack(meta.value)
    return StreamState(
        length=meta.size,
        last_id=StreamId(values[0], values[1]),
        first_id=StreamId(values[2], values[3]),
        max_deleted=StreamId(values[4], values[5]),
        entries_added=values[6],
        groups=values[7],
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
    return None if meta is None else Stream(key, meta, _decode_state(meta))


def save(db: Db, key: bytes, old: Stream | None, state: StreamState) -> Stream:
    """Write `key`'s stream metadata as `state` (a new stream when `old` is None)."""
    expire = None if old is None else old.meta.expire_ms
    meta = Meta(ValueType.STREAM, expire, value=_encode_state(state), size=state.length)
    db.put_meta(key, meta, existed=old is not None)
    return Stream(key, meta, state)


def encode_fields(fields: tuple[bytes, ...]) -> bytes:
    """An entry's stored value: each field and value length-prefixed."""
    return b"".join(_LEN.pack(len(item)) + item for item in fields)


def decode_fields(data: bytes) -> tuple[bytes, ...]:
    """The inverse of `encode_fields`."""
    items, pos = [], 0
    while pos < len(data):
        size = _LEN.unpack_from(data, pos)[0]
        items.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return tuple(items)


def entry_key(entry_id: StreamId) -> bytes:
    """The sub-record name of entry `entry_id`."""
    return ENTRY + entry_id.encode()


def _after(entry_id: StreamId) -> bytes:
    """Just past entry `entry_id`'s key: the exclusive bound that includes it."""
    return entry_key(entry_id) + b"\x00"


def put_entry(db: Db, key: bytes, entry_id: StreamId, fields: tuple[bytes, ...]) -> None:
    """Store one entry (the caller updates the state)."""
    db.put_field(key, entry_key(entry_id), encode_fields(fields))


def has_entry(db: Db, key: bytes, entry_id: StreamId) -> bool:
    """Whether entry `entry_id` exists."""
    return db.get_field(key, entry_key(entry_id)) is not None


def entries(
    db: Db, key: bytes, start: StreamId, end: StreamId, count: int | None, rev: bool = False
) -> list[Entry]:
    """Entries with `start <= id <= end`, at most `count` (None: all), ascending or, with
    `rev`, descending from `end`."""
    if start > end:
        return []
    scan = db.fields_reversed if rev else db.fields
    rows = scan(key, entry_key(start), count, _after(end))
    return [(decode_id(name[1:]), decode_fields(value)) for name, value in rows]


def first_entry_id(db: Db, key: bytes) -> StreamId | None:
    """The smallest entry id, None when the stream is empty."""
    rows = db.fields(key, ENTRY, 1, ENTRY_END)
    return decode_id(rows[0][0][1:]) if rows else None


def last_entry_id(db: Db, key: bytes) -> StreamId | None:
    """The largest entry id, None when the stream is empty."""
    rows = db.fields_reversed(key, ENTRY, 1, ENTRY_END)
    return decode_id(rows[0][0][1:]) if rows else None


def _delete_ids(db: Db, key: bytes, ids: list[StreamId]) -> None:
    for entry_id in ids:
        db.delete_field(key, entry_key(entry_id))


def _first_ids(db: Db, key: bytes, limit: int, below: StreamId | None = None) -> list[StreamId]:
    """The ids of the first `limit` entries (only those below `below` when given)."""
    end = ENTRY_END if below is None else entry_key(below)
    return [decode_id(name[1:]) for name, _ in db.fields(key, ENTRY, limit, end)]


@dataclass(frozen=True, slots=True)
class Trim:
    """A trimming request (XADD/XTRIM MAXLEN or MINID): keep at most `maxlen` entries, or
    none below `minid`; `approx` trims whole virtual nodes only, at most `limit` entries
    (0: no limit)."""

    maxlen: int | None
    minid: StreamId | None
    approx: bool
    limit: int


def trim(db: Db, key: bytes, state: StreamState, how: Trim) -> tuple[StreamState, int]:
    """Trim the stream; its new state and how many entries were deleted."""
    if how.approx:
        deleted = _trim_nodes(db, key, state, how)
    elif how.maxlen is not None:
        excess = max(0, state.length - how.maxlen)
        ids = _first_ids(db, key, excess) if excess else []
        _delete_ids(db, key, ids)
        deleted = len(ids)
    else:
        assert how.minid is not None
        ids = _first_ids(db, key, state.length, how.minid) if state.length else []
        _delete_ids(db, key, ids)
        deleted = len(ids)
    if not deleted:
        return state, 0
    return after_delete(db, key, state, deleted, first_gone=True), deleted


def _trim_nodes(db: Db, key: bytes, state: StreamState, how: Trim) -> int:
    """Approximate trimming: whole virtual nodes from the first, as Redis's `streamTrim`
    removes whole nodes (see the module docstring)."""
    deleted, length = 0, state.length
    while length and not (how.maxlen is not None and length <= how.maxlen):
        node = _first_ids(db, key, NODE_ENTRIES)
        if how.limit and deleted + len(node) > how.limit:
            break
        if how.maxlen is not None:
            whole = length - len(node) >= how.maxlen
        else:
            assert how.minid is not None
            whole = node[-1] < how.minid
        if not whole:
            break
        _delete_ids(db, key, node)
        deleted += len(node)
        length -= len(node)
    return deleted


def after_delete(
    db: Db, key: bytes, state: StreamState, deleted: int, first_gone: bool
) -> StreamState:
    """The state once `deleted` entries are gone (`first_gone`: the first entry may have
    been one of them, so the recorded first id is read again)."""
    length = state.length - deleted
    first = state.first_id
    if length == 0:
        first = MIN_ID
    elif first_gone:
        found = first_entry_id(db, key)
        assert found is not None
        first = found
    return replace(state, length=length, first_id=first)
