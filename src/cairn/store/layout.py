"""How Redis keys and values are laid out in the ordered byte keyspace (Kvrocks-style).

Every internal key starts with a one-byte tag naming its record family:

``M`` metadata, one record per Redis key::

    b"M" | slot (2 bytes, big-endian) | user key
    value: flags (1 byte: low 6 bits the `ValueType`, top bit set when an expiry follows,
                  bit 0x40 set when a modification stamp follows the expiry)
           | expiry (8 bytes, big-endian unsigned absolute Unix ms, only with the flag)
           | stamp (16 bytes: the region id and log index of the last write, only with
                    bit 0x40; records written before stamps existed have none)
           | version (4 bytes, big-endian, only with bit 0x20: the incarnation whose
                      ``F`` records hold the elements; absent means 0)
           | payload (string: the value itself; hash: the field count, 8 bytes big-endian)

``F`` sub-records, one per element of a composite value (a hash field)::

    b"F" | slot (2 bytes) | length of user key (4 bytes) | user key | version (4 bytes)
         | field
    value: the field's value

``G`` the graveyard: one record per deleted incarnation of a large composite key whose
sub-records are still being reclaimed (`cairn.store.reclaim`)::

    b"G" | slot (2 bytes) | length of user key (4 bytes) | user key | version (4 bytes)
    value: empty

``L`` a key's lock of a cross-region transaction (`cairn.store.txn_locks`), keyed like the
metadata record::

    b"L" | slot (2 bytes) | user key
    value: msgpack [1, start_ts, primary key, ttl_ms, locked_at_ms, effect]
    (or [2, ..., effect, secondaries] for async commit: `cairn.store.txn_records`)

``S`` the status of a cross-region transaction, kept with its primary key::

    b"S" | slot (2 bytes) | primary key | start_ts (8 bytes, big-endian)
    value: msgpack [1, state (1 committed, 2 rolled back), commit_ts, at_ms]

(the user key of an ``S`` record is everything between the slot and the last 8 bytes).

``X`` the state machine's own records (applied index, largest applied now_ms, key count).
A machine owning the whole keyspace (the single-group node) keeps them at ``X applied``,
``X now``, ``X keys``; a region's machine keeps them under the region's id::

    b"Xr" | region id (8 bytes, big-endian) | name
    names: b"applied", b"now", b"keys", b"slot" | slot (2 bytes): keys of that slot,
           b"deleted": the stamp of the last key deletion (WATCH, see `Meta.stamp`)

(the records `cairn.store.ranges` walks and images, and `cairn.storage.region_data` installs
and drops with the region).

Metadata records sort by (hash slot, key), so the keys of a slot range, which is what a
region will own, are one contiguous range of ``M`` records (plus the matching range of ``F``
records). Composite values keep one record per element so that HSET on a large hash costs
one metadata update and one field write, O(log n), not a rewrite of the whole value, and
HSCAN/HGETALL are range scans over the key's ``F`` prefix (fields come out in byte order).
Lists, sets and sorted sets live the same way, every record of a key under its ``F``
prefix (so splits, snapshots, RENAME and DEL treat every type alike): the metadata payload
holds the size (a list also its head position, see `Meta.head`), and each element is an
``F`` record keyed by member or position (a set and a sorted set keep several families
under the prefix, told apart by their first byte: a set's members and positions, a
sorted set's members (with their scores), score-ordered index and the counts of an
order-statistics index, see `set_records` and `zset_records`).
A stream's metadata payload is its length and its state (`Meta.value`), and its entries
are ``F`` records keyed by the stream's generation and their 16-byte big-endian id, so id
ranges are ordered scans (`cairn.store.commands.stream_store`: trimming moves a cut and
the trimmed records are deleted later, in bounded batches).
As in Kvrocks, the sub-record keys carry the key's *version* (its incarnation), kept in
the metadata: deleting a large composite value (DEL, UNLINK, an overwrite, expiry,
RENAME onto it) drops its metadata and writes one ``G`` record, O(1), and a re-created
key takes a version above every buried one, so it never sees the old elements; the leader
then reclaims the buried records in bounded steps through Raft (`cairn.store.reclaim`).
``G`` records sort by slot like ``F`` records, so splits, merges, snapshots and region
drops carry them with the keys' ranges; so do ``L`` and ``S`` records.
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import dataclass, replace

from cairn.store.slot import key_slot

META_TAG = b"M"
FIELD_TAG = b"F"
GARBAGE_TAG = b"G"
LOCK_TAG = b"L"
STATUS_TAG = b"S"
SYSTEM_TAG = b"X"

APPLIED_KEY = SYSTEM_TAG + b"applied"
NOW_KEY = SYSTEM_TAG + b"now"
KEY_COUNT_KEY = SYSTEM_TAG + b"keys"
REGION_SYSTEM_TAG = SYSTEM_TAG + b"r"
SLOT_COUNT_NAME = b"slot"
DELETED_NAME = b"deleted"
DELETED_KEY = SYSTEM_TAG + DELETED_NAME
"""The stamp of the last key deletion (the whole keyspace's; a region's is under its id)."""

META_END = bytes([META_TAG[0] + 1])
"""Just past every metadata key: the end bound of a scan over all Redis keys."""

_EXPIRE_FLAG = 0x80
_STAMP_FLAG = 0x40
_VERSION_FLAG = 0x20
VERSION_LEN = 4
"""The length of a key's version in its metadata and its sub-record keys."""
MAX_VERSION = 2**32 - 1
STAMP_LEN = 16
"""The length of a modification stamp: region id and log index, 8 bytes each."""
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_SLOT = struct.Struct(">H")


class ValueType(enum.IntEnum):
    """The kind of value a Redis key holds (as TYPE names it)."""

    STRING = 0
    HASH = 1
    LIST = 2
    SET = 3
    ZSET = 4
    STREAM = 5

    @property
    def type_name(self) -> str:
        """The name TYPE and SCAN TYPE use."""
        return self.name.lower()


_VALUE_TYPES = {t.value: t for t in ValueType}
"""`ValueType` by code: a dict lookup, where calling the enum is a slow path of its own."""


@dataclass(frozen=True, slots=True)
class Meta:
    """A Redis key's metadata record.

    `expire_ms` is the absolute expiry in Unix ms (None: persistent). For a string `value`
    is the string; for any other type `size` is its number of elements (always >= 1: an
    emptied value is deleted; a stream is the exception: Redis keeps an empty stream). `head`
    is a list's first position (its elements sit at positions head .. head + size - 1;
    unused by other types). A stream's `value` is its state beyond the length (last,
    first and largest deleted ids, entries added, group count: see
    `cairn.store.commands.stream_store`). `stamp` names the last write to the key
    (`encode_stamp`; empty on records older than stamps): what WATCH compares
    (`cairn.store.transaction`). `version` is the incarnation whose ``F`` records hold
    the elements (`element_prefix`); `cairn.store.db.Db` keeps it, whatever a handler
    builds its `Meta` with.
    """

    type: ValueType
    expire_ms: int | None = None
    value: bytes = b""
    size: int = 0
    head: int = 0
    stamp: bytes = b""
    version: int = 0

    def expired(self, now_ms: int) -> bool:
        """Whether the key is logically gone at `now_ms`."""
        return self.expire_ms is not None and self.expire_ms <= now_ms

    def with_expire(self, expire_ms: int | None) -> Meta:
        """This record with another expiry."""
        return replace(self, expire_ms=expire_ms)


def encode_stamp(region_id: int, index: int) -> bytes:
    """The modification stamp of a write applied at log `index` of region `region_id`
    (0: the whole keyspace's single group): unique across the cluster's history, since
    region ids are never reused and a region's log indexes only grow."""
    return _U64.pack(region_id) + _U64.pack(index)


def encode_meta(meta: Meta, stamp: bytes | None = None, version: int | None = None) -> bytes:
    """The stored bytes of a metadata record, with `stamp` and `version` (None: the
    record's own)."""
    flags = int(meta.type)
    head = b""
    if meta.expire_ms is not None:
        flags |= _EXPIRE_FLAG
        head = _U64.pack(meta.expire_ms)
    stamp = meta.stamp if stamp is None else stamp
    if stamp:
        flags |= _STAMP_FLAG
        head += stamp
    version = meta.version if version is None else version
    if version:
        flags |= _VERSION_FLAG
        head += _U32.pack(version)
    if meta.type is ValueType.STRING:
        payload = meta.value
    elif meta.type is ValueType.LIST:
        payload = _U64.pack(meta.size) + _U64.pack(meta.head)
    elif meta.type is ValueType.STREAM:
        payload = _U64.pack(meta.size) + meta.value
    else:
        payload = _U64.pack(meta.size)
    return bytes([flags]) + head + payload


def decode_meta(data: bytes) -> Meta:
    """The inverse of `encode_meta`."""
    flags = data[0]
    pos = 1
    expire_ms = None
    if flags & _EXPIRE_FLAG:
        expire_ms = _U64.unpack_from(data, 1)[0]
        pos = 9
    stamp = b""
    if flags & _STAMP_FLAG:
        stamp = data[pos : pos + STAMP_LEN]
        pos += STAMP_LEN
    version = 0
    if flags & _VERSION_FLAG:
        version = _U32.unpack_from(data, pos)[0]
        pos += VERSION_LEN
    code = flags & ~(_EXPIRE_FLAG | _STAMP_FLAG | _VERSION_FLAG)
    kind = _VALUE_TYPES.get(code)
    if kind is None:
        raise ValueError(f"{code} is not a valid ValueType")
    if kind is ValueType.STRING:
        return Meta(kind, expire_ms, value=data[pos:], stamp=stamp)
    size = _U64.unpack_from(data, pos)[0]
    if kind is ValueType.LIST:
        head = _U64.unpack_from(data, pos + 8)[0]
        return Meta(kind, expire_ms, size=size, head=head, stamp=stamp, version=version)
    if kind is ValueType.STREAM:
        value = data[pos + 8 :]
        return Meta(kind, expire_ms, size=size, value=value, stamp=stamp, version=version)
    return Meta(kind, expire_ms, size=size, stamp=stamp, version=version)


def meta_key(key: bytes) -> bytes:
    """The internal key of a Redis key's metadata record."""
    return META_TAG + _SLOT.pack(key_slot(key)) + key


def slot_start(slot: int) -> bytes:
    """The first possible metadata key of `slot` (slot 16384: just past the last slot)."""
    return META_TAG + _SLOT.pack(slot) if slot < 16384 else META_END


def split_meta_key(internal: bytes) -> tuple[int, bytes]:
    """(slot, user key) of a metadata key."""
    return _SLOT.unpack_from(internal, 1)[0], internal[3:]


def field_prefix(key: bytes) -> bytes:
    """The common prefix of the sub-record keys of Redis key `key` (remembered for the
    last short keys: a command on a composite value asks for it once per record)."""
    if len(key) <= _CACHED_KEY_LEN:
        return _short_field_prefix(key)
    return FIELD_TAG + _SLOT.pack(key_slot(key)) + _U32.pack(len(key)) + key


_CACHED_KEY_LEN = 128


@functools.lru_cache(maxsize=256)
def _short_field_prefix(key: bytes) -> bytes:
    return FIELD_TAG + _SLOT.pack(key_slot(key)) + _U32.pack(len(key)) + key


def element_prefix(key: bytes, version: int) -> bytes:
    """The common prefix of the sub-records of incarnation `version` of Redis key `key`."""
    return field_prefix(key) + _U32.pack(version)


def garbage_prefix(key: bytes) -> bytes:
    """The common prefix of the graveyard records of Redis key `key`'s buried versions."""
    return GARBAGE_TAG + field_prefix(key)[1:]


def garbage_key(key: bytes, version: int) -> bytes:
    """The graveyard record of incarnation `version` of Redis key `key`."""
    return garbage_prefix(key) + _U32.pack(version)


def buried_prefix(garbage: bytes) -> bytes:
    """The sub-record prefix (`element_prefix`) a graveyard record's key names."""
    return FIELD_TAG + garbage[1:]


def buried_version(garbage: bytes) -> int:
    """The version a graveyard record's key names."""
    return int(_U32.unpack_from(garbage, len(garbage) - VERSION_LEN)[0])


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def lock_key(key: bytes) -> bytes:
    """The internal key of Redis key `key`'s transaction lock record."""
    return LOCK_TAG + _SLOT.pack(key_slot(key)) + key


def status_key(primary: bytes, start_ts: int) -> bytes:
    """The internal key of the status record of transaction `start_ts`, whose primary key
    is `primary`."""
    return STATUS_TAG + _SLOT.pack(key_slot(primary)) + primary + _U64.pack(start_ts)


STATUS_TS_LEN = 8
"""The length of the start_ts at the end of a status record's key."""


def status_range_key(internal: bytes) -> bytes:
    """The range key (slot | primary key) of a status record's internal key."""
    return internal[1 : len(internal) - STATUS_TS_LEN]


def split_status_key(internal: bytes) -> tuple[bytes, int]:
    """(primary key, start_ts) of a status record's internal key."""
    cut = len(internal) - STATUS_TS_LEN
    return internal[3:cut], int(_U64.unpack_from(internal, cut)[0])


def region_system_prefix(region_id: int) -> bytes:
    """The common prefix of region `region_id`'s system records."""
    return REGION_SYSTEM_TAG + _U64.pack(region_id)


def region_key(region_id: int, name: bytes) -> bytes:
    """The key of region `region_id`'s system record `name` (b"applied", b"now", ...)."""
    return region_system_prefix(region_id) + name


def encode_slot(slot: int) -> bytes:
    """A slot as it appears in internal keys (2 bytes, big-endian)."""
    return _SLOT.pack(slot)


def decode_slot(data: bytes) -> int:
    """The inverse of `encode_slot`."""
    return int(_SLOT.unpack(data)[0])


def encode_u64(value: int) -> bytes:
    """Fixed-width big-endian encoding of a non-negative system counter."""
    return _U64.pack(value)


def decode_u64(data: bytes | None) -> int:
    """The inverse of `encode_u64`; a missing record reads as 0."""
    return 0 if data is None else int(_U64.unpack(data)[0])
