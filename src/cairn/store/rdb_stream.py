"""Streams in Redis 7.0's DUMP payload format (RDB_TYPE_STREAM_LISTPACKS_2, type 19).

A stream payload is, after the type byte:

* the number of radix-tree nodes, then per node its key (the node's 16-byte big-endian
  "master id") and its listpack, both as RDB strings (the listpack LZF-compressed as any
  string over 20 bytes). A node's listpack starts with the master entry (live count,
  deleted count, the master field names, a 0 terminator); each entry follows as flags
  (1: deleted, 2: same fields as the master), the ms and seq differences from the master
  id, the field count and names unless "same fields", the values, and the number of
  listpack elements the entry took (so Redis can walk it backwards);
* the length, last id, first id, largest deleted id and entries-added counter;
* the groups in name order: name, last delivered id, entries-read counter (-1 as 2**64-1),
  the group PEL in id order (16-byte raw id, 8-byte little-endian delivery time, delivery
  count), then the consumers in name order: name, 8-byte seen time, and the ids they own
  (raw, the rest of each PEL entry is not repeated). Redis 7.0 keeps a seen time only;
  7.2's active time comes with a new type (21), which 7.0 cannot load and neither do we.

`dump_stream` builds nodes the way XADD fills them in a Redis 7.0 with the default
`stream-node-max-bytes` 4096 and `stream-node-max-entries` 100: a new node when the tail
node's listpack plus the new entry's field and value bytes reaches 4096 bytes, or when it
holds 100 entries. Cairn keeps no tombstones, so a Redis stream whose nodes never saw an
XDEL or an exact trim (XADD of entries, approximate trimming, consumer groups) dumps
byte for byte as Redis does; after deletions Redis keeps the deleted entries inside its
nodes and Cairn writes the live entries packed, which Redis loads as the same stream.

`load_stream` reads a hostile payload: every count is checked against the bytes left
before anything is allocated; ids must increase across nodes; a node's live and deleted
counts, each entry's element count and the stream length must agree with the entries;
each group PEL entry must belong to exactly one of the group's consumers; names must be
unique. Anything else raises `BadPayloadError`. Type 15 (Redis 5 and 6) loads too, its
missing counters derived as Redis 7.0 does (the caller estimates each group's
entries-read counter, `StreamValue.legacy`). Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cairn.store.listpack import int_entry, lp_entry, pack, parse_listpack
from cairn.store.lzf import BadPayloadError
from cairn.store.numbers import parse_ll
from cairn.store.rdb import (
    ELEMENT_COST,
    T_STREAM,
    T_STREAM_2,
    Reader,
    encode_length,
    encode_string,
    with_footer,
)

Id = tuple[int, int]
"""A stream id as (ms, seq), each an unsigned 64-bit number."""
Entry = tuple[Id, tuple[bytes, ...]]
"""An entry: its id and its flat field/value list."""

NODE_MAX_BYTES = 4096
"""Redis' default stream-node-max-bytes: a node's listpack stops growing at this size."""
NODE_MAX_ENTRIES = 100
"""Redis' default stream-node-max-entries."""
UNKNOWN_READ = -1
"""A group's entries-read counter when it is not known (saved as 2**64 - 1)."""

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1
_DELETED, _SAME_FIELDS = 1, 2
_RAW_ID = struct.Struct(">QQ")
_MS_TIME = struct.Struct("<q")
_PEL_ENTRY_MIN = _RAW_ID.size + _MS_TIME.size + 1
_CONSUMER_MIN = 1 + _MS_TIME.size + 1
_GROUP_MIN = 6
_NODE_MIN = 2


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """What a stream records beside its entries (see `stream_store.StreamState`)."""

    length: int
    last_id: Id
    first_id: Id
    max_deleted: Id
    entries_added: int


@dataclass(frozen=True, slots=True)
class PendingData:
    """A group PEL entry: id, last delivery time (Unix ms) and delivery count."""

    id: Id
    delivery_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class ConsumerData:
    """A consumer: name, seen time (Unix ms) and the ids it owns, ascending."""

    name: bytes
    seen_ms: int
    pending: list[Id]


@dataclass(frozen=True, slots=True)
class GroupData:
    """A consumer group: name, last delivered id, entries-read counter (UNKNOWN_READ: not
    known), its PEL ascending and its consumers by name."""

    name: bytes
    last_id: Id
    entries_read: int
    pending: list[PendingData]
    consumers: list[ConsumerData]


@dataclass(frozen=True, slots=True)
class StreamValue:
    """A loaded stream: header (its first id recomputed from the entries), live entries
    ascending, groups. `legacy`: a type 15 payload, whose groups carry no entries-read
    counter (UNKNOWN_READ here: the caller estimates it as Redis 7.0 does on load)."""

    header: StreamHeader
    entries: list[Entry]
    groups: list[GroupData]
    legacy: bool = False


# -- writing ------------------------------------------------------------------------------


def _signed(diff: int) -> int:
    """An unsigned 64-bit difference as the int64 Redis passes to lpAppendInteger."""
    diff %= _U64
    return diff - _U64 if diff > _I64_MAX else diff


class _Node:
    """One radix-tree node being filled as XADD fills it."""

    def __init__(self, master: Id, names: tuple[bytes, ...]) -> None:
        self.master = master
        self.names = names
        self.count = 0
        self.elements = 4 + len(names)
        tail = [int_entry(0), int_entry(len(names)), *map(lp_entry, names), int_entry(0)]
        self.parts = tail
        self.size = sum(map(len, tail))

    def lp_bytes(self) -> int:
        """The listpack's size as it stands (header, count, entries, terminator)."""
        return 6 + len(int_entry(self.count)) + self.size + 1

    def append(self, entry_id: Id, fields: tuple[bytes, ...]) -> None:
        """Add one entry (flags, id deltas, fields unless the master's, values, count)."""
        names, values = fields[0::2], fields[1::2]
        same = names == self.names
        parts = [
            int_entry(_SAME_FIELDS if same else 0),
            int_entry(_signed(entry_id[0] - self.master[0])),
            int_entry(_signed(entry_id[1] - self.master[1])),
        ]
        if same:
            parts.extend(map(lp_entry, values))
            elements = 3 + len(values)
        else:
            parts.append(int_entry(len(names)))
            parts.extend(lp_entry(item) for item in fields)
            elements = 4 + len(fields)
        parts.append(int_entry(elements))
        self.parts.extend(parts)
        self.size += sum(map(len, parts))
        self.elements += elements + 1
        self.count += 1

    def serialize(self) -> bytes:
        """The node's key and listpack as RDB strings."""
        blob = pack([int_entry(self.count), *self.parts], self.elements)
        return encode_string(_RAW_ID.pack(*self.master)) + encode_string(blob)


def _nodes(entries: Iterable[Entry]) -> Iterator[bytes]:
    """Each node's serialized key and listpack, built as Redis 7.0's XADD builds them."""
    node: _Node | None = None
    for entry_id, fields in entries:
        value_bytes = sum(map(len, fields))
        if node is not None and (
            node.lp_bytes() + value_bytes >= NODE_MAX_BYTES or node.count >= NODE_MAX_ENTRIES
        ):
            yield node.serialize()
            node = None
        if node is None:
            node = _Node(entry_id, fields[0::2])
        node.append(entry_id, fields)
    if node is not None:
        yield node.serialize()


def _id_lengths(entry_id: Id) -> bytes:
    """An id as two RDB lengths, as Redis saves the stream's and groups' ids."""
    return encode_length(entry_id[0]) + encode_length(entry_id[1])


def _group(group: GroupData) -> bytes:
    """One group: name, last id, entries-read, the PEL with its NACKs, the consumers."""
    parts = [
        encode_string(group.name),
        _id_lengths(group.last_id),
        encode_length(group.entries_read % _U64),
        encode_length(len(group.pending)),
    ]
    for pending in group.pending:
        parts.append(_RAW_ID.pack(*pending.id) + _MS_TIME.pack(pending.delivery_ms))
        parts.append(encode_length(pending.deliveries))
    parts.append(encode_length(len(group.consumers)))
    for consumer in group.consumers:
        parts.append(encode_string(consumer.name) + _MS_TIME.pack(consumer.seen_ms))
        parts.append(encode_length(len(consumer.pending)))
        parts.extend(_RAW_ID.pack(*entry_id) for entry_id in consumer.pending)
    return b"".join(parts)


def dump_stream(header: StreamHeader, entries: Iterable[Entry], groups: list[GroupData]) -> bytes:
    """The DUMP payload of a stream (`entries` ascending, `groups` by name)."""
    nodes = list(_nodes(entries))
    parts = [bytes([T_STREAM_2]), encode_length(len(nodes)), *nodes]
    parts.append(encode_length(header.length) + _id_lengths(header.last_id))
    parts.append(_id_lengths(header.first_id) + _id_lengths(header.max_deleted))
    parts.append(encode_length(header.entries_added) + encode_length(len(groups)))
    parts.extend(_group(group) for group in groups)
    return with_footer(b"".join(parts))


# -- reading ------------------------------------------------------------------------------


def _u64(r: Reader) -> int:
    """An RDB length read as a plain unsigned number."""
    value, special = r.length()
    if special:
        raise BadPayloadError("expected a number")
    return value


def _read_id(r: Reader) -> Id:
    """An id saved as two RDB lengths (ms, then seq)."""
    return _u64(r), _u64(r)


def _int(item: bytes) -> int:
    """A listpack element that must be an integer (counts, flags, id deltas)."""
    number = parse_ll(item)
    if number is None:
        raise BadPayloadError("stream listpack: expected an integer")
    return number


class _NodeReader:
    """Walks one node's listpack elements, checking each entry's shape."""

    def __init__(self, items: list[bytes], master: Id) -> None:
        self.items = items
        self.master = master
        self.pos = 0

    def take(self, n: int) -> list[bytes]:
        """The next `n` elements, refused when the node has fewer left."""
        if n < 0 or self.pos + n > len(self.items):
            raise BadPayloadError("stream listpack: entry overruns the node")
        chunk = self.items[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, low: int = 0) -> int:
        """The next element as an integer of at least `low`."""
        value = _int(self.take(1)[0])
        if value < low:
            raise BadPayloadError("stream listpack: number out of range")
        return value

    def entry(self, names: list[bytes]) -> tuple[bool, Id, tuple[bytes, ...]]:
        """(deleted, id, fields) of the next entry."""
        flags = self.number()
        if flags > _DELETED | _SAME_FIELDS:
            raise BadPayloadError("stream listpack: bad entry flags")
        ms = (self.master[0] + _int(self.take(1)[0])) % _U64
        seq = (self.master[1] + _int(self.take(1)[0])) % _U64
        if flags & _SAME_FIELDS:
            values = self.take(len(names))
            fields = tuple(x for pair in zip(names, values, strict=True) for x in pair)
            expected = 3 + len(names)
        else:
            count = self.number(1)
            fields = tuple(self.take(2 * count))
            expected = 4 + 2 * count
        if self.number() != expected:
            raise BadPayloadError("stream listpack: bad entry element count")
        return bool(flags & _DELETED), (ms, seq), fields


def _read_node(blob: bytes, master: Id, after: Id | None, out: list[Entry]) -> Id | None:
    """Append the node's live entries to `out`; the largest id it holds (live or deleted),
    every id above `after`."""
    node = _NodeReader(parse_listpack(blob), master)
    live, deleted = node.number(), node.number()
    names = node.take(node.number(1))
    if node.number() != 0:
        raise BadPayloadError("stream listpack: bad master entry terminator")
    seen_live = seen_deleted = 0
    while node.pos < len(node.items):
        gone, entry_id, fields = node.entry(names)
        if after is not None and entry_id <= after:
            raise BadPayloadError("stream ids do not increase")
        if not any(entry_id):  # no command makes 0-0, and reads start above it
            raise BadPayloadError("stream entry id 0-0")
        after = entry_id
        if gone:
            seen_deleted += 1
        else:
            seen_live += 1
            out.append((entry_id, fields))
    if (seen_live, seen_deleted) != (live, deleted) or not live + deleted:
        raise BadPayloadError("stream listpack: counts disagree with the entries")
    return after


def _read_entries(r: Reader) -> tuple[list[Entry], Id | None]:
    """Every live entry in id order, and the largest id seen (deleted ones included)."""
    entries: list[Entry] = []
    top: Id | None = None
    for _ in range(r.count(_NODE_MIN)):
        key = r.string()
        if len(key) != _RAW_ID.size:
            raise BadPayloadError("stream node key is not an id")
        master: Id = _RAW_ID.unpack(key)
        blob = r.string()
        upper = len(blob) // 2 * ELEMENT_COST  # the node's elements, charged before parsing
        r.budget.charge(upper)
        before = len(entries)
        top = _read_node(blob, master, top, entries)
        r.budget.refund(upper - (len(entries) - before) * ELEMENT_COST)
    return entries, top


def _read_pel(r: Reader) -> dict[Id, PendingData]:
    """A group PEL by id (raw id, delivery time, delivery count); duplicates refused."""
    pel: dict[Id, PendingData] = {}
    for _ in range(r.count(_PEL_ENTRY_MIN)):
        entry_id: Id = _RAW_ID.unpack(r.take(_RAW_ID.size))
        delivery = _MS_TIME.unpack(r.take(_MS_TIME.size))[0]
        deliveries = _u64(r)
        if entry_id in pel or deliveries > _I64_MAX:
            raise BadPayloadError("bad group PEL entry")
        pel[entry_id] = PendingData(entry_id, delivery, deliveries)
    return pel


def _read_consumers(r: Reader, pel: dict[Id, PendingData]) -> list[ConsumerData]:
    """The group's consumers; every PEL entry must be owned by exactly one of them."""
    consumers: list[ConsumerData] = []
    names: set[bytes] = set()
    owned: set[Id] = set()
    for _ in range(r.count(_CONSUMER_MIN)):
        name = r.string()
        seen = _MS_TIME.unpack(r.take(_MS_TIME.size))[0]
        ids: list[Id] = []
        for _ in range(r.count(_RAW_ID.size)):
            entry_id: Id = _RAW_ID.unpack(r.take(_RAW_ID.size))
            if entry_id not in pel or entry_id in owned:
                raise BadPayloadError("consumer PEL entry not in the group PEL")
            owned.add(entry_id)
            ids.append(entry_id)
        if name in names:
            raise BadPayloadError("duplicate consumer")
        names.add(name)
        consumers.append(ConsumerData(name, seen, sorted(ids)))
    if len(owned) != len(pel):
        raise BadPayloadError("group PEL entry without a consumer")
    consumers.sort(key=lambda c: c.name)
    return consumers


def _read_groups(r: Reader, legacy: bool) -> list[GroupData]:
    """The groups by name (type 15 saves no entries-read counter)."""
    groups: list[GroupData] = []
    names: set[bytes] = set()
    for _ in range(r.count(_GROUP_MIN)):
        name = r.string()
        if name in names:
            raise BadPayloadError("duplicate group")
        names.add(name)
        last_id = _read_id(r)
        read = UNKNOWN_READ
        if not legacy:
            raw = _u64(r)
            if raw != _U64 - 1 and raw > _I64_MAX:
                raise BadPayloadError("bad entries-read counter")
            read = UNKNOWN_READ if raw == _U64 - 1 else raw
        pel = _read_pel(r)
        consumers = _read_consumers(r, pel)
        groups.append(GroupData(name, last_id, read, sorted(pel.values(), key=_pel_id), consumers))
    groups.sort(key=lambda g: g.name)
    return groups


def _pel_id(entry: PendingData) -> Id:
    """Sort key of a PEL entry."""
    return entry.id


def load_stream(payload: bytes) -> StreamValue:
    """The stream a footer-checked type 15 or 19 payload holds (see the module docstring
    for what is checked); `BadPayloadError` for anything malformed."""
    kind = payload[0] if len(payload) > 10 else None
    if kind not in (T_STREAM, T_STREAM_2):
        raise BadPayloadError("not a stream payload")
    legacy = kind == T_STREAM
    r = Reader(payload, 1, len(payload) - 10)
    entries, top = _read_entries(r)
    length, last_id = _u64(r), _read_id(r)
    max_deleted: Id = (0, 0)
    added = length
    if not legacy:
        _read_id(r)  # the recorded first id: recomputed from the entries below
        max_deleted, added = _read_id(r), _u64(r)
    if length != len(entries) or added < length or added > _I64_MAX:
        raise BadPayloadError("stream length disagrees with its entries")
    if (top is not None and top > last_id) or max_deleted > last_id:
        raise BadPayloadError("stream last id below its entries")
    first_id = entries[0][0] if entries else (0, 0)
    header = StreamHeader(length, last_id, first_id, max_deleted, added)
    groups = _read_groups(r, legacy)
    if r.left:
        raise BadPayloadError("trailing bytes after the stream")
    return StreamValue(header, entries, groups, legacy)
