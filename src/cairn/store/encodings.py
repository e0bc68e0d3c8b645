"""What OBJECT ENCODING, REFCOUNT and FREQ report: the representation Redis 7.0 would give a
value, judged from the value as Cairn stores it and a node's `ObjectSettings`.

Cairn keeps every value the same way (a metadata record and one sub-record per element,
`cairn.store.layout`), so there is no encoding to read back. What OBJECT ENCODING answers is
the encoding a *freshly built* Redis 7.0 value with the same contents would have, e.g. after
SET, or after HSET/SADD/ZADD of its elements into an empty key. Redis never converts a
value back to its compact encoding when it shrinks (a hash that once had 600 fields stays
`hashtable` after HDEL), and APPEND/SETRANGE leave a `raw` string; Cairn reports what the
value's current contents would be built as. Redis 7.0's rules, by type:

- string: `int` when it is a 64-bit integer in canonical form (at most 20 bytes, as
  `string2l` accepts), else `embstr` up to 44 bytes, else `raw`;
- list: always `quicklist` (7.0 has no listpack-encoded lists; `list-max-listpack-size`
  sizes the quicklist's nodes);
- hash: `listpack` while it has at most `hash-max-listpack-entries` fields and no field or
  value is longer than `hash-max-listpack-value` bytes, else `hashtable`;
- set: `intset` while every member is an integer and there are at most
  `set-max-intset-entries` of them, else `hashtable` (listpack sets came in Redis 7.2);
- stream: always `stream`;
- sorted set: `listpack` while it has at most `zset-max-listpack-entries` members and none
  is longer than `zset-max-listpack-value` bytes, else `skiplist`.

Cost: the size is in the metadata, so a value over its entry threshold is answered with no
element read; one within it is read element by element until one breaks the rule, at most
the threshold's number of reads (512 by default).

The settings are a node's (CONFIG SET changes them on the node it is sent to); the node
hands them to the read path as one frozen `ObjectSettings` value (`Ctx.settings`), so the
store stays pure and a read is answered with the settings of the node that serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType
from cairn.store.numbers import parse_ll
from cairn.store.set_records import MEMBER as SET_MEMBER
from cairn.store.set_records import MEMBER_END as SET_END
from cairn.store.zset_records import INDEX, MEMBER

EMBSTR_SIZE_LIMIT = 44
"""The longest string Redis keeps `embstr` (OBJ_ENCODING_EMBSTR_SIZE_LIMIT)."""
SHARED_INTEGERS = 10000
"""Integers 0 .. 9999 are shared objects in Redis (OBJ_SHARED_INTEGERS)."""
SHARED_REFCOUNT = 2147483647
"""The refcount OBJECT REFCOUNT shows for a shared object (OBJ_SHARED_REFCOUNT)."""
LFU_INIT_VAL = 5
"""The access counter of a freshly created value under an LFU policy."""
_CHUNK = 256

_FieldTest = Callable[[bytes, bytes], bool]
"""A test of one sub-record (field, value)."""


@dataclass(frozen=True, slots=True)
class ObjectSettings:
    """The node settings OBJECT reads: Redis 7.0's encoding thresholds and the eviction
    settings that decide FREQ/IDLETIME errors and shared integers. Defaults are Redis'."""

    hash_max_listpack_entries: int = 512
    hash_max_listpack_value: int = 64
    set_max_intset_entries: int = 512
    zset_max_listpack_entries: int = 128
    zset_max_listpack_value: int = 64
    maxmemory: int = 0
    maxmemory_policy: str = "noeviction"

    @property
    def lfu(self) -> bool:
        """Whether an LFU policy is selected (FREQ answers, IDLETIME refuses)."""
        return self.maxmemory_policy.endswith("-lfu")

    @property
    def shared_integers(self) -> bool:
        """Whether small integers are shared objects: unless a memory limit is set with an
        LRU or LFU policy (those need a per-object access field)."""
        evicts_by_use = self.maxmemory_policy.endswith(("-lru", "-lfu"))
        return self.maxmemory == 0 or not evicts_by_use


DEFAULT_SETTINGS = ObjectSettings()


def encoding(db: Db, key: bytes, meta: Meta, settings: ObjectSettings) -> str:
    """The encoding Redis 7.0 would give the value of `key` (whose metadata is `meta`) if
    it were built afresh with its current contents (see the module docstring)."""
    kind = meta.type
    if kind is ValueType.STRING:
        return string_encoding(meta.value)
    if kind is ValueType.LIST:
        return "quicklist"
    if kind is ValueType.STREAM:
        return "stream"
    if kind is ValueType.HASH:
        compact = _hash_compact(db, key, meta.size, settings)
        return "listpack" if compact else "hashtable"
    if kind is ValueType.SET:
        compact = meta.size <= settings.set_max_intset_entries and _all_fields(
            db, key, SET_MEMBER, SET_END, lambda field, _: parse_ll(field[1:]) is not None
        )
        return "intset" if compact else "hashtable"
    limit = settings.zset_max_listpack_value
    compact = meta.size <= settings.zset_max_listpack_entries and _all_fields(
        db, key, MEMBER, INDEX, lambda field, _: len(field) - len(MEMBER) <= limit
    )
    return "listpack" if compact else "skiplist"


def string_encoding(value: bytes) -> str:
    """`int`, `embstr` or `raw`, as Redis' SET encodes `value`."""
    if len(value) <= 20 and parse_ll(value) is not None:
        return "int"
    return "embstr" if len(value) <= EMBSTR_SIZE_LIMIT else "raw"


def refcount(meta: Meta, settings: ObjectSettings) -> int:
    """OBJECT REFCOUNT: Redis' shared-object count for a small integer string, else 1."""
    return SHARED_REFCOUNT if is_shared_integer(meta, settings) else 1


def frequency(meta: Meta, settings: ObjectSettings) -> int:
    """OBJECT FREQ under an LFU policy: the counter of a fresh value (Cairn tracks no
    accesses), 0 for a shared integer (Redis' shared objects predate the policy)."""
    return 0 if is_shared_integer(meta, settings) else LFU_INIT_VAL


def is_shared_integer(meta: Meta, settings: ObjectSettings) -> bool:
    """Whether Redis would hold this value as one of its shared integer objects."""
    if meta.type is not ValueType.STRING or not settings.shared_integers:
        return False
    if string_encoding(meta.value) != "int":
        return False
    number = parse_ll(meta.value)
    return number is not None and 0 <= number < SHARED_INTEGERS


def _hash_compact(db: Db, key: bytes, size: int, settings: ObjectSettings) -> bool:
    if size > settings.hash_max_listpack_entries:
        return False
    limit = settings.hash_max_listpack_value
    return _all_fields(
        db, key, b"", None, lambda field, value: len(field) <= limit and len(value) <= limit
    )


def _all_fields(
    db: Db,
    key: bytes,
    start: bytes,
    end: bytes | None,
    ok: _FieldTest,
) -> bool:
    """Whether every sub-record of `key` in [`start`, `end`) passes `ok` (stops at the
    first that does not), read in chunks."""
    position = start
    while rows := db.fields(key, position, _CHUNK, end):
        for field, value in rows:
            if not ok(field, value):
                return False
        position = rows[-1][0] + b"\x00"
        if len(rows) < _CHUNK:
            break
    return True
