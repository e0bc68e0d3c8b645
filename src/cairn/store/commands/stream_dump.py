"""DUMP and RESTORE of a stream: between a stream's records (`stream_store`,
`stream_group_store`) and the plain values `cairn.store.rdb_stream` serializes.

DUMP reads the entries in batches of `BATCH` records and the groups, PELs and consumers
in their record order (names and ids ascending: Redis' radix-tree order), so the payload
is built in one pass; its size is the stream's, as in Redis. RESTORE writes one record
per entry, group, consumer and pending entry, with every counter the records keep (group
PEL and consumer sizes, each consumer's PEL size, the stream's group count) computed from
what was loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from cairn.store.commands.stream_group_store import (
    BATCH,
    Consumer,
    Group,
    Pending,
    consumer_pending_ids,
    consumers,
    group_pending,
    groups,
    put_consumer,
    put_group,
    put_pending,
)
from cairn.store.commands.stream_groups import estimate_read
from cairn.store.commands.stream_ids import MAX_ID, MIN_ID, StreamId
from cairn.store.commands.stream_store import (
    StreamState,
    entries,
    lookup_stream,
    put_entry,
    save,
)
from cairn.store.db import Db
from cairn.store.rdb_stream import (
    ConsumerData,
    Entry,
    GroupData,
    PendingData,
    StreamHeader,
    StreamValue,
    dump_stream,
)


def _all_entries(db: Db, key: bytes, state: StreamState) -> Iterator[Entry]:
    """Every entry ascending, read `BATCH` records at a time."""
    start: StreamId | None = MIN_ID
    while start is not None:
        rows = entries(db, key, state, start, MAX_ID, BATCH)
        yield from rows
        if len(rows) < BATCH:
            return
        start = rows[-1][0].next()


def _group_data(db: Db, key: bytes, group: Group) -> GroupData:
    pel = [
        PendingData(p.id, p.delivery_ms, p.deliveries)
        for p in group_pending(db, key, group.name, MIN_ID)
    ]
    members = [
        ConsumerData(
            c.name,
            c.seen_ms,
            list(consumer_pending_ids(db, key, group.name, c.name, MIN_ID, None)),
        )
        for c in consumers(db, key, group.name)
    ]
    return GroupData(group.name, group.last_id, group.entries_read, pel, members)


def serialize_stream(db: Db, key: bytes) -> bytes:
    """The DUMP payload of the stream at `key` (the caller checked it is one)."""
    stream = lookup_stream(db, key)
    assert stream is not None
    state = stream.state
    header = StreamHeader(
        state.length, state.last_id, state.first_id, state.max_deleted, state.entries_added
    )
    data = [_group_data(db, key, group) for group in groups(db, key)]
    return dump_stream(header, _all_entries(db, key, state), data)


def write_stream(db: Db, key: bytes, value: StreamValue, expire_ms: int | None) -> None:
    """Create `key` (absent) holding the loaded stream, through the stream's records."""
    head = value.header
    ordinals = StreamState()
    for entry_id, fields in value.entries:
        put_entry(db, key, ordinals, StreamId(*entry_id), fields)
        ordinals = replace(ordinals, next_ord=ordinals.next_ord + 1)
    state = StreamState(
        length=head.length,
        last_id=StreamId(*head.last_id),
        first_id=StreamId(*head.first_id),
        max_deleted=StreamId(*head.max_deleted),
        entries_added=head.entries_added,
        groups=len(value.groups),
        next_ord=ordinals.next_ord,
    )
    stream = save(db, key, None, state)
    if expire_ms is not None:
        db.put_meta(key, replace(stream.meta, expire_ms=expire_ms), existed=True)
    for group in value.groups:
        _write_group(db, key, state, group, value.legacy)


def _write_group(db: Db, key: bytes, state: StreamState, data: GroupData, legacy: bool) -> None:
    last_id = StreamId(*data.last_id)
    read = estimate_read(state, last_id) if legacy else data.entries_read
    group = Group(data.name, last_id, read, len(data.pending), len(data.consumers))
    put_group(db, key, group)
    pel = {entry.id: entry for entry in data.pending}
    for member in data.consumers:
        put_consumer(db, key, data.name, Consumer(member.name, member.seen_ms, len(member.pending)))
        for entry_id in member.pending:
            entry = pel[entry_id]
            pending = Pending(StreamId(*entry_id), member.name, entry.delivery_ms, entry.deliveries)
            put_pending(db, key, data.name, pending)
