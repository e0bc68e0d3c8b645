"""Generic key commands: existence, deletion, expiry, TTL, TYPE, RENAME, COPY, OBJECT, KEYS,
SCAN, ..."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.scan import parse_cursor, parse_options, scan_keys, scan_reply
from cairn.store.commands.spec import (
    NO_SUCH_KEY,
    SYNTAX,
    Ctx,
    arity_error,
    expire_error,
    text_of,
)
from cairn.store.commands.stream_reclaim import reclaim_streams
from cairn.store.encodings import encoding, frequency, refcount
from cairn.store.glob import stringmatch
from cairn.store.layout import slot_start
from cairn.store.notifications import GENERIC
from cairn.store.numbers import LLONG_MAX
from cairn.store.reclaim import RECLAIM_BUDGET

_WALK_CHUNK = 1024
_RANDOM_TRIES = 100
_MAX_SECONDS = LLONG_MAX // 1000
"""Seconds that still fit in ms (C's LLONG_MAX / 1000; LLONG_MIN / 1000 is its negation)."""


def cmd_del(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DEL/UNLINK key [key ...]: the number of keys deleted."""
    deleted = 0
    for key in args:
        if ctx.db.delete(key):
            deleted += 1
            ctx.notify(GENERIC, "del", key)
    return Integer(deleted)


def cmd_exists(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EXISTS/TOUCH key [key ...]: how many of the keys exist (repeats count again)."""
    return Integer(sum(ctx.db.lookup(key) is not None for key in args))


def cmd_expire_deleted(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """Internal: delete the keys that are expired at this entry's time (active expiry)."""
    return Integer(sum(ctx.db.purge_if_expired(key) for key in args))


def cmd_reclaim(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """Internal: cairn.reclaim [stream ...], one bounded step of background reclaim
    (`cairn.store.reclaim`): deletes at most `RECLAIM_BUDGET` records of buried
    incarnations and of the named streams' trimmed entries; how many it deleted.

    Neither kind starves the other: the streams get the first half of the budget, the
    graveyard what they left, the streams again whatever the graveyard left."""
    db = ctx.db
    done = reclaim_streams(db, args, RECLAIM_BUDGET // 2)
    done += db.reclaim(RECLAIM_BUDGET - done)
    if done < RECLAIM_BUDGET:
        done += reclaim_streams(db, args, RECLAIM_BUDGET - done)
    return Integer(done)


_EXPIRE_FLAGS = (b"nx", b"xx", b"gt", b"lt")


def _expire_flags(args: Sequence[bytes]) -> set[bytes]:
    flags: set[bytes] = set()
    for arg in args:
        opt = arg.lower()
        if opt not in _EXPIRE_FLAGS:
            name = text_of(arg.split(b"\0")[0])
            raise fail(ErrorReply(f"ERR Unsupported option {name}"))
        flags.add(opt)
    if b"nx" in flags and flags & {b"xx", b"gt", b"lt"}:
        raise fail(
            ErrorReply("ERR NX and XX, GT or LT options at the same time are not compatible")
        )
    if {b"gt", b"lt"} <= flags:
        raise fail(ErrorReply("ERR GT and LT options at the same time are not compatible"))
    return flags


def _expire_refused(flags: set[bytes], current: int | None, when: int) -> bool:
    if b"nx" in flags and current is not None:
        return True
    if b"xx" in flags and current is None:
        return True
    if b"gt" in flags and (current is None or when <= current):
        return True
    return b"lt" in flags and current is not None and when >= current


def _expire(ctx: Ctx, args: Sequence[bytes], unit_ms: int, relative: bool) -> Reply:
    flags = _expire_flags(args[2:])
    when = int_arg(args[1])
    if unit_ms == 1000 and abs(when) > _MAX_SECONDS:
        raise fail(expire_error(ctx.name))
    when *= unit_ms
    base = ctx.now_ms if relative else 0
    if when > LLONG_MAX - base:
        raise fail(expire_error(ctx.name))
    when += base
    meta = ctx.db.lookup(args[0])
    if meta is None or _expire_refused(flags, meta.expire_ms, when):
        return Integer(0)
    if when <= ctx.now_ms:
        ctx.db.delete(args[0])
        ctx.notify(GENERIC, "del", args[0])
    else:
        ctx.db.put_meta(args[0], meta.with_expire(when), existed=True)
        ctx.notify(GENERIC, "expire", args[0])
    return Integer(1)


def cmd_expire(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EXPIRE key seconds [NX|XX|GT|LT]."""
    return _expire(ctx, args, 1000, relative=True)


def cmd_pexpire(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PEXPIRE key milliseconds [NX|XX|GT|LT]."""
    return _expire(ctx, args, 1, relative=True)


def cmd_expireat(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EXPIREAT key unix-seconds [NX|XX|GT|LT]."""
    return _expire(ctx, args, 1000, relative=False)


def cmd_pexpireat(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PEXPIREAT key unix-ms [NX|XX|GT|LT]."""
    return _expire(ctx, args, 1, relative=False)


def _ttl(ctx: Ctx, key: bytes, in_ms: bool, absolute: bool) -> Reply:
    meta = ctx.db.lookup(key)
    if meta is None:
        return Integer(-2)
    if meta.expire_ms is None:
        return Integer(-1)
    ttl = max(meta.expire_ms if absolute else meta.expire_ms - ctx.now_ms, 0)
    return Integer(ttl if in_ms else (ttl + 500) // 1000)


def cmd_ttl(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """TTL key: seconds left (rounded), -1 persistent, -2 missing."""
    return _ttl(ctx, args[0], in_ms=False, absolute=False)


def cmd_pttl(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PTTL key: milliseconds left, -1 persistent, -2 missing."""
    return _ttl(ctx, args[0], in_ms=True, absolute=False)


def cmd_expiretime(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EXPIRETIME key: the absolute expiry in Unix seconds (rounded), -1, or -2."""
    return _ttl(ctx, args[0], in_ms=False, absolute=True)


def cmd_pexpiretime(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PEXPIRETIME key: the absolute expiry in Unix ms, -1, or -2."""
    return _ttl(ctx, args[0], in_ms=True, absolute=True)


def cmd_persist(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PERSIST key: 1 if a TTL was removed."""
    meta = ctx.db.lookup(args[0])
    if meta is None or meta.expire_ms is None:
        return Integer(0)
    ctx.db.put_meta(args[0], meta.with_expire(None), existed=True)
    ctx.notify(GENERIC, "persist", args[0])
    return Integer(1)


def cmd_type(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """TYPE key: `string`, `hash`, ... or `none`."""
    meta = ctx.db.lookup(args[0])
    return SimpleString("none" if meta is None else meta.type.type_name)


def _rename(ctx: Ctx, args: Sequence[bytes], nx: bool) -> Reply:
    src, dst = args[0], args[1]
    meta = ctx.db.lookup(src)
    if meta is None:
        raise fail(NO_SUCH_KEY)
    if src == dst:
        return Integer(0) if nx else OK
    if ctx.db.lookup(dst) is not None:
        if nx:
            return Integer(0)
        ctx.db.delete(dst)
    fields = ctx.db.fields(src)
    ctx.db.put_meta(dst, meta, existed=False)
    for field, value in fields:
        ctx.db.put_field(dst, field, value)
    ctx.db.delete(src)
    ctx.notify(GENERIC, "rename_from", src)
    ctx.notify(GENERIC, "rename_to", dst)
    return Integer(1) if nx else OK


SAME_OBJECT = ErrorReply("ERR source and destination objects are the same")
DB_OUT_OF_RANGE = ErrorReply("ERR DB index is out of range")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
NOT_AN_INT = ErrorReply(f"ERR value is out of range, value must between {_INT_MIN} and {_INT_MAX}")
"""Redis' `getIntFromObjectOrReply` on a 64-bit integer outside C's int."""


def _copy_options(args: Sequence[bytes]) -> bool:
    """COPY's options after the two keys, in order; whether REPLACE was given."""
    replace = False
    i = 0
    while i < len(args):
        option = args[i].lower()
        if option == b"replace":
            replace = True
        elif option == b"db" and i + 1 < len(args):
            db = int_arg(args[i + 1])
            if not _INT_MIN <= db <= _INT_MAX:
                raise fail(NOT_AN_INT)
            if db != 0:
                raise fail(DB_OUT_OF_RANGE)
            i += 1
        else:
            raise fail(SYNTAX)
        i += 1
    return replace


def cmd_copy(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """COPY source destination [DB destination-db] [REPLACE]: 1 if copied (value, every
    sub-record and the TTL), 0 if the source is missing or the destination exists.

    Cairn has one database, so `DB 0` is the only one accepted: any other index gets
    `ERR DB index is out of range`, as SELECT answers it. (Redis has 16 by default, where
    `DB 1` copies; Redis Cluster answers `ERR Copying to another database is not allowed in
    cluster mode` for 1 .. 15.) O(N) in the value's elements, read and written in chunks.
    """
    src, dst = args[0], args[1]
    replace = _copy_options(args[2:])
    if src == dst:
        raise fail(SAME_OBJECT)
    meta = ctx.db.lookup(src)
    if meta is None:
        return Integer(0)
    if ctx.db.lookup(dst) is not None:
        if not replace:
            return Integer(0)
        ctx.db.delete(dst)
    ctx.db.put_meta(dst, meta, existed=False)
    position = b""
    while rows := ctx.db.fields(src, position, _WALK_CHUNK):
        for field, value in rows:
            ctx.db.put_field(dst, field, value)
        if len(rows) < _WALK_CHUNK:
            break
        position = rows[-1][0] + b"\x00"
    ctx.notify(GENERIC, "copy_to", dst)
    return Integer(1)


_OBJECT_HELP = (
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
)
_POLICY_NOTE = (
    "Please note that when switching between policies at runtime LRU and LFU data will "
    "take some time to adjust."
)
NOT_LFU = ErrorReply(
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. " + _POLICY_NOTE
)
IS_LFU = ErrorReply(
    "ERR An LFU maxmemory policy is selected, idle time not tracked. " + _POLICY_NOTE
)
_OBJECT_KEYED = (b"encoding", b"freq", b"idletime", b"refcount")


def cmd_object(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP.

    ENCODING: the encoding a freshly built Redis 7.0 value with these contents would have
    (`cairn.store.encodings`; Redis never converts a value back, Cairn keeps no encoding).
    IDLETIME is always 0: Cairn keeps no access time (every replica would need to write
    one on every read). FREQ answers only under an LFU `maxmemory-policy`, with a fresh
    value's counter. REFCOUNT is 1, or 2147483647 for Redis' shared integers 0 .. 9999.
    A missing key answers nil. The thresholds and policy are the serving node's CONFIG.
    """
    sub = args[0].lower()
    if sub == b"help":
        if len(args) != 1:
            raise fail(arity_error("object|help"))
        return Array(tuple(SimpleString(line) for line in _OBJECT_HELP))
    if sub not in _OBJECT_KEYED:
        name = text_of(args[0].split(b"\0")[0][:128])
        raise fail(ErrorReply(f"ERR unknown subcommand '{name}'. Try OBJECT HELP."))
    if len(args) != 2:
        raise fail(arity_error(f"object|{sub.decode()}"))
    meta = ctx.db.lookup(args[1])
    if meta is None:
        return NULL
    settings = ctx.settings
    if sub == b"encoding":
        return Bulk(encoding(ctx.db, args[1], meta, settings).encode())
    if sub == b"refcount":
        return Integer(refcount(meta, settings))
    if sub == b"freq":
        if not settings.lfu:
            raise fail(NOT_LFU)
        return Integer(frequency(meta, settings))
    if settings.lfu:
        raise fail(IS_LFU)
    return Integer(0)


def cmd_rename(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RENAME key newkey (the TTL moves with the value)."""
    return _rename(ctx, args, nx=False)


def cmd_renamenx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RENAMENX key newkey: 1 if renamed, 0 if newkey exists."""
    return _rename(ctx, args, nx=True)


def cmd_keys(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """KEYS pattern: every live key matching, in (slot, key) order."""
    pattern = None if args[0] == b"*" else args[0]
    found: list[Reply] = []
    position = ctx.db.start_position
    while entries := ctx.db.walk(position, _WALK_CHUNK):
        for e in entries:
            live = not e.meta.expired(ctx.now_ms)
            if live and (pattern is None or stringmatch(pattern, e.key)):
                found.append(Bulk(e.key))
        position = entries[-1].position + b"\x00"
    return Array(tuple(found))


def cmd_scan(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]."""
    cursor = parse_cursor(args[0])
    opts = parse_options(args[1:], allow_type=True)
    next_cursor, keys = scan_keys(ctx.db, cursor, opts)
    return scan_reply(next_cursor, keys)


def cmd_randomkey(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """RANDOMKEY: a live key near a random position in the keyspace (the scope), or nil."""
    slots = ctx.db.scope.slots()
    start = slot_start(ctx.rng.randrange(slots.start, slots.stop)) + ctx.rng.randbytes(8)
    for position in (start, ctx.db.start_position):
        for e in ctx.db.walk(position, _RANDOM_TRIES):
            if not e.meta.expired(ctx.now_ms):
                return Bulk(e.key)
    return NULL


def cmd_dbsize(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DBSIZE: the number of keys (expired ones not yet deleted included, like Redis); a
    region's machine counts its own (O(1): a count record kept with the keys)."""
    return Integer(ctx.db.key_count())


def cmd_flushdb(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """FLUSHDB/FLUSHALL [ASYNC|SYNC]: delete every key (of the region, in a region)."""
    if len(args) > 1 or (args and args[0].lower() not in (b"sync", b"async")):
        raise fail(SYNTAX)
    ctx.db.clear()
    return OK
