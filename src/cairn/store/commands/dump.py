"""DUMP and RESTORE: values in Redis 7.0's serialization format, so keys move between Redis
and Cairn both ways (`cairn.store.rdb` does the bytes).

DUMP serializes the value as Redis 7.0 would a freshly built value with the same contents
(encodings chosen by the node's OBJECT thresholds). Cairn keeps hash fields and set members
in byte order, so a listpack hash is byte-identical to Redis' when Redis received its
fields in that order, and a hashtable hash or set lists its elements in byte order where
Redis' order is its dict's; every payload RESTOREs into Redis with the same contents.
Strings, intsets, sorted sets and RPUSH-built lists come out byte for byte as Redis' do.

RESTORE loads every encoding Redis 7.0 loads for the types Cairn has (`rdb.decode`) and
writes the value through the same records the type's commands use. Streams (entries,
consumer groups, PELs, consumers) go through `cairn.store.rdb_stream` and
`stream_dump` here: byte for byte as Redis 7.0 writes a stream built by XADD, and every
stream payload Redis 7.0 writes loads (its deleted entries dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, OK, Bulk, ErrorReply, Reply
from cairn.store import set_records
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.define import K1, WD, R, cmd
from cairn.store.commands.list_store import START_HEAD, position
from cairn.store.commands.spec import SYNTAX, Ctx
from cairn.store.commands.stream_dump import serialize_stream, write_stream
from cairn.store.db import Db
from cairn.store.encodings import ObjectSettings
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC
from cairn.store.numbers import LLONG_MAX
from cairn.store.rdb import (
    DECODE_BUDGET,
    STREAM_TYPES,
    BadPayloadError,
    PayloadTooLargeError,
    Thresholds,
    Value,
    decode,
    dump_hash,
    dump_list,
    dump_set,
    dump_string,
    dump_zset,
    object_type,
    verify_footer,
)
from cairn.store.rdb_stream import StreamValue, load_stream
from cairn.store.zset_records import by_score, count_added, put_member

BUSYKEY = ErrorReply("BUSYKEY Target key name already exists.")
BAD_FORMAT = ErrorReply("ERR Bad data format")
TOO_LARGE = ErrorReply(
    f"ERR Bad data format: the payload decodes to more than {DECODE_BUDGET} bytes"
    " (Cairn's RESTORE limit)"
)
"""A payload that would decode past `DECODE_BUDGET` (Redis would load it)."""
BAD_PAYLOAD = ErrorReply("ERR DUMP payload version or checksum are wrong")
BAD_TTL = ErrorReply("ERR Invalid TTL value, must be >= 0")
BAD_IDLETIME = ErrorReply("ERR Invalid IDLETIME value, must be >= 0")
BAD_FREQ = ErrorReply("ERR Invalid FREQ value, must be >= 0 and <= 255")


def _thresholds(settings: ObjectSettings) -> Thresholds:
    return Thresholds(
        hash_entries=settings.hash_max_listpack_entries,
        hash_value=settings.hash_max_listpack_value,
        set_intset_entries=settings.set_max_intset_entries,
        zset_entries=settings.zset_max_listpack_entries,
        zset_value=settings.zset_max_listpack_value,
    )


def serialize(db: Db, key: bytes, meta: Meta, settings: ObjectSettings) -> bytes:
    """The DUMP payload of `key` (whose live metadata is `meta`); streams are refused."""
    limits = _thresholds(settings)
    kind = meta.type
    if kind is ValueType.STRING:
        return dump_string(meta.value)
    if kind is ValueType.HASH:
        return dump_hash(db.fields(key), limits)
    if kind is ValueType.LIST:
        return dump_list([value for _, value in db.fields(key)])
    if kind is ValueType.SET:
        return dump_set(set_records.members(db, key), limits)
    if kind is ValueType.ZSET:
        return dump_zset(list(by_score(db, key)), limits)
    return serialize_stream(db, key)


def cmd_dump(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DUMP key: the serialized value (null for a missing key)."""
    meta = ctx.db.lookup(args[0])
    if meta is None:
        return NULL
    return Bulk(serialize(ctx.db, args[0], meta, ctx.settings))


def _parse_options(args: Sequence[bytes]) -> tuple[bool, bool]:
    """(replace, absttl) from RESTORE's options, checked in Redis' order and wording."""
    replace = absttl = False
    idle = freq = False
    j = 3
    while j < len(args):
        option = args[j].lower()
        more = j + 1 < len(args)
        if option == b"replace":
            replace = True
        elif option == b"absttl":
            absttl = True
        elif option == b"idletime" and more and not freq:
            if int_arg(args[j + 1]) < 0:
                raise fail(BAD_IDLETIME)
            idle = True
            j += 1
        elif option == b"freq" and more and not idle:
            if not 0 <= int_arg(args[j + 1]) <= 255:
                raise fail(BAD_FREQ)
            freq = True
            j += 1
        else:
            raise fail(SYNTAX)
        j += 1
    return replace, absttl


def _load(payload: bytes) -> Value | StreamValue:
    if not verify_footer(payload):
        raise fail(BAD_PAYLOAD)
    try:
        if object_type(payload) in STREAM_TYPES:
            return load_stream(payload)
        return decode(payload)
    except PayloadTooLargeError:
        raise fail(TOO_LARGE) from None
    except BadPayloadError:
        raise fail(BAD_FORMAT) from None


def cmd_restore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RESTORE key ttl serialized [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]: create `key`
    from a DUMP payload (IDLETIME and FREQ are checked and ignored: Cairn keeps no access
    times)."""
    key = args[0]
    replace, absttl = _parse_options(args)
    if not replace and ctx.db.lookup(key) is not None:
        raise fail(BUSYKEY)
    ttl = int_arg(args[1])
    if ttl < 0:
        raise fail(BAD_TTL)
    value = _load(args[2])
    deleted = replace and ctx.db.delete(key)
    expire_ms = None
    if ttl:
        expire_ms = ttl if absttl else ttl + ctx.now_ms
        if expire_ms > LLONG_MAX or expire_ms <= ctx.now_ms:
            if deleted:
                ctx.notify(GENERIC, "del", key)
            return OK  # already expired (Redis' sum wraps negative): nothing is created
    if isinstance(value, StreamValue):
        write_stream(ctx.db, key, value, expire_ms)
    else:
        write_value(ctx.db, key, value, expire_ms)
    ctx.notify(GENERIC, "restore", key)
    return OK


def write_value(db: Db, key: bytes, value: Value, expire_ms: int | None) -> None:
    """Create `key` (absent) holding `value`, through each type's own records."""
    kind = value.kind
    if kind is ValueType.STRING:
        db.set_string(key, value.string, expire_ms)
        return
    if kind is ValueType.HASH:
        for field, data in value.pairs:
            db.put_field(key, field, data)
        size = len(value.pairs)
    elif kind is ValueType.SET:
        set_records.add_many(db, key, value.items, 0)
        size = len(value.items)
    elif kind is ValueType.LIST:
        for i, item in enumerate(value.items):
            db.put_field(key, position(START_HEAD + i), item)
        db.put_meta(key, Meta(kind, expire_ms, size=len(value.items), head=START_HEAD), False)
        return
    else:
        fresh: list[bytes] = []
        for member, score in value.scored:
            put_member(db, key, member, 0.0 if score == 0.0 else score, None, fresh)
        count_added(db, key, fresh)
        size = len(value.scored)
    db.put_meta(key, Meta(kind, expire_ms, size=size), False)


_GENERIC = "generic"

COMMANDS = (
    cmd(
        "dump",
        2,
        R,
        K1,
        (_GENERIC, "2.6.0", "O(N) in the value's elements", "Serialize a value."),
        "@keyspace @read @slow",
        cmd_dump,
        ("nondeterministic_output",),
    ),
    cmd(
        "restore",
        -4,
        WD,
        K1,
        (_GENERIC, "2.6.0", "O(N) in the value's elements", "Create a key from a DUMP payload."),
        "@keyspace @write @slow @dangerous",
        cmd_restore,
    ),
)
