"""How a stream's consumer groups live in the keyspace: groups, consumers and pending entries
as sub-records under the stream key's ``F`` prefix, beside its entries (`stream_store`).

Four record families, each with its own first byte (entries use ``e``):

* ``g`` + group name: the group (`Group`: last delivered id, entries-read counter, and the
  sizes of its PEL and consumer set, so summaries are point reads);
* ``c`` + len(group) + group + consumer: a consumer (`Consumer`: seen time, PEL size);
* ``p`` + len(group) + group + 16-byte id: the group's pending entry (`Pending`: owner,
  delivery time, delivery count), so the group PEL is ordered by id;
* ``q`` + len(group) + group + len(consumer) + consumer + 16-byte id (empty value): the
  consumer's own PEL, ordered by id, for XREADGROUP history and XPENDING's consumer filter.

Lengths are 4-byte big-endian, so one group's (or consumer's) records form one contiguous
range and no name is a prefix trap for another. Every change to one pending entry is a
constant number of point reads and writes; the group's counters are kept in step. Times
are the command's `now_ms`, identical on every replica, so the whole state is replicated
Raft state and survives leader changes exactly.

Consumers keep a seen time only: Redis 7.0 has no "active time" (7.2 added it, with
XINFO's `inactive` field), and 7.0.15's replies are the target.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from cairn.store.commands.stream_ids import StreamId, decode_id
from cairn.store.commands.stream_store import Stream, StreamState, save
from cairn.store.db import Db
from cairn.store.numbers import LLONG_MAX, LLONG_MIN

GROUP = b"g"
GROUP_END = b"h"
CONSUMER = b"c"
PENDING = b"p"
CONSUMER_PEL = b"q"
INVALID_READ = -1
"""The entries-read counter's "unknown" value (Redis's SCG_INVALID_ENTRIES_READ)."""
BATCH = 512
"""Records read per scan when walking a range of unbounded size."""

_LEN = struct.Struct(">I")
_GROUP = struct.Struct(">QQqQQ")
_CONSUMER = struct.Struct(">qQ")
_PENDING = struct.Struct(">qq")


def _name(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


@dataclass(frozen=True, slots=True)
class Group:
    """A consumer group: `last_id` delivered, `entries_read` (INVALID_READ: unknown), the
    number of pending entries and of consumers."""

    name: bytes
    last_id: StreamId
    entries_read: int = INVALID_READ
    pending: int = 0
    consumers: int = 0


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer: the time it was last seen and the number of entries it has pending."""

    name: bytes
    seen_ms: int
    pending: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """A pending entry: its id, owner, last delivery time and delivery count."""

    id: StreamId
    consumer: bytes
    delivery_ms: int
    deliveries: int


# -- groups ---------------------------------------------------------------------------


def get_group(db: Db, key: bytes, name: bytes) -> Group | None:
    """Group `name` of the stream at `key` (the caller checked the type)."""
    raw = db.get_field(key, GROUP + name)
    return None if raw is None else _decode_group(name, raw)


def _decode_group(name: bytes, raw: bytes) -> Group:
    ms, seq, read, pending, consumers = _GROUP.unpack(raw)
    return Group(name, StreamId(ms, seq), read, pending, consumers)


def put_group(db: Db, key: bytes, group: Group) -> None:
    """Store `group` (new or changed)."""
    value = _GROUP.pack(*group.last_id, group.entries_read, group.pending, group.consumers)
    db.put_field(key, GROUP + group.name, value)


def groups(db: Db, key: bytes) -> Iterator[Group]:
    """Every group of the stream, in name byte order (read in batches)."""
    for name, raw in _walk(db, key, GROUP, GROUP_END):
        yield _decode_group(name[1:], raw)


def count_groups(db: Db, stream: Stream, delta: int) -> Stream:
    """The stream with its group count changed by `delta` (metadata rewritten)."""
    state: StreamState = replace(stream.state, groups=stream.state.groups + delta)
    return save(db, stream.key, stream, state)


def destroy_group(db: Db, key: bytes, group: Group) -> None:
    """Delete a group and every consumer and pending record of it."""
    tag = _name(group.name)
    for family in (CONSUMER, PENDING, CONSUMER_PEL):
        _delete_range(db, key, family + tag)
    db.delete_field(key, GROUP + group.name)


def _delete_range(db: Db, key: bytes, prefix: bytes) -> None:
    end = _prefix_end(prefix)
    while rows := db.fields(key, prefix, BATCH, end):
        for name, _ in rows:
            db.delete_field(key, name)


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest field name past every name starting with `prefix` (never all 0xff:
    every prefix here starts with a family letter)."""
    trimmed = prefix.rstrip(b"\xff")
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _walk(
    db: Db, key: bytes, start: bytes, end: bytes, reverse: bool = False
) -> Iterator[tuple[bytes, bytes]]:
    """The sub-records with `start <= name < end`, fetched `BATCH` at a time (ascending;
    `reverse`: descending)."""
    low, high = start, end
    while True:
        if reverse:
            rows = db.fields_reversed(key, low, BATCH, high)
        else:
            rows = db.fields(key, low, BATCH, high)
        yield from rows
        if len(rows) < BATCH:
            return
        if reverse:
            high = rows[-1][0]
        else:
            low = rows[-1][0] + b"\x00"


# -- consumers ------------------------------------------------------------------------


def _consumer_field(group: bytes, name: bytes) -> bytes:
    return CONSUMER + _name(group) + name


def get_consumer(db: Db, key: bytes, group: bytes, name: bytes) -> Consumer | None:
    """Consumer `name` of `group`, None if it does not exist."""
    raw = db.get_field(key, _consumer_field(group, name))
    if raw is None:
        return None
    seen, pending = _CONSUMER.unpack(raw)
    return Consumer(name, seen, pending)


def put_consumer(db: Db, key: bytes, group: bytes, consumer: Consumer) -> None:
    """Store `consumer` of `group`."""
    value = _CONSUMER.pack(consumer.seen_ms, consumer.pending)
    db.put_field(key, _consumer_field(group, consumer.name), value)


def consumers(db: Db, key: bytes, group: bytes) -> Iterator[Consumer]:
    """Every consumer of `group` in name byte order."""
    prefix = CONSUMER + _name(group)
    for name, raw in _walk(db, key, prefix, _prefix_end(prefix)):
        seen, pending = _CONSUMER.unpack(raw)
        yield Consumer(name[len(prefix) :], seen, pending)


def delete_consumer(db: Db, key: bytes, group: Group, consumer: Consumer) -> Group:
    """Delete `consumer` and its pending entries (from the group PEL too); the group with
    its counters updated (the caller stores it)."""
    prefix = _consumer_pel_prefix(group.name, consumer.name)
    while rows := db.fields(key, prefix, BATCH, _prefix_end(prefix)):
        for name, _ in rows:
            db.delete_field(key, name)
            db.delete_field(key, _pending_field(group.name, decode_id(name[len(prefix) :])))
    db.delete_field(key, _consumer_field(group.name, consumer.name))
    return replace(group, pending=group.pending - consumer.pending, consumers=group.consumers - 1)


# -- pending entries ------------------------------------------------------------------


def _pending_field(group: bytes, entry_id: StreamId) -> bytes:
    return PENDING + _name(group) + entry_id.encode()


def _consumer_pel_prefix(group: bytes, consumer: bytes) -> bytes:
    return CONSUMER_PEL + _name(group) + _name(consumer)


def get_pending(db: Db, key: bytes, group: bytes, entry_id: StreamId) -> Pending | None:
    """The group's pending entry `entry_id`, None if not pending."""
    raw = db.get_field(key, _pending_field(group, entry_id))
    return None if raw is None else _decode_pending(entry_id, raw)


def _decode_pending(entry_id: StreamId, raw: bytes) -> Pending:
    delivery, deliveries = _PENDING.unpack_from(raw)
    return Pending(entry_id, raw[_PENDING.size :], delivery, deliveries)


def next_delivery(deliveries: int) -> int:
    """A delivery count plus one, wrapping at 2**63 like Redis' `long long` counter (a
    RETRYCOUNT of 9223372036854775807 then one more claim gives -9223372036854775808)."""
    return deliveries + 1 if deliveries < LLONG_MAX else LLONG_MIN


def put_pending(db: Db, key: bytes, group: bytes, entry: Pending) -> None:
    """Store (or overwrite) a pending entry in the group PEL and its owner's PEL. Moving an
    entry to another consumer is `drop_pending` of the old one first."""
    value = _PENDING.pack(entry.delivery_ms, entry.deliveries) + entry.consumer
    db.put_field(key, _pending_field(group, entry.id), value)
    owner = _consumer_pel_prefix(group, entry.consumer) + entry.id.encode()
    db.put_field(key, owner, b"")


def drop_pending(db: Db, key: bytes, group: bytes, entry: Pending) -> None:
    """Remove a pending entry from both PELs (the caller fixes the counters)."""
    db.delete_field(key, _pending_field(group, entry.id))
    db.delete_field(key, _consumer_pel_prefix(group, entry.consumer) + entry.id.encode())


def group_pending(
    db: Db, key: bytes, group: bytes, start: StreamId, end: StreamId | None = None
) -> Iterator[Pending]:
    """The group PEL from `start` to `end` (inclusive; None: to the last), ascending."""
    prefix = PENDING + _name(group)
    high = _prefix_end(prefix) if end is None else prefix + end.encode() + b"\x00"
    for name, raw in _walk(db, key, prefix + start.encode(), high):
        yield _decode_pending(decode_id(name[len(prefix) :]), raw)


def last_pending(db: Db, key: bytes, group: bytes) -> StreamId | None:
    """The largest pending id of the group, None if its PEL is empty."""
    prefix = PENDING + _name(group)
    rows = db.fields_reversed(key, prefix, 1, _prefix_end(prefix))
    return decode_id(rows[0][0][len(prefix) :]) if rows else None


def consumer_pending_ids(
    db: Db, key: bytes, group: bytes, consumer: bytes, start: StreamId, end: StreamId | None
) -> Iterator[StreamId]:
    """The ids in `consumer`'s own PEL from `start` to `end` (None: to the last)."""
    prefix = _consumer_pel_prefix(group, consumer)
    high = _prefix_end(prefix) if end is None else prefix + end.encode() + b"\x00"
    for name, _ in _walk(db, key, prefix + start.encode(), high):
        yield decode_id(name[len(prefix) :])
