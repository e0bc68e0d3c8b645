"""Generic key commands: existence, deletion, expiry, TTL, TYPE, RENAME, KEYS, SCAN, ..."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.scan import parse_cursor, parse_options, scan_keys, scan_reply
from cairn.store.commands.spec import NO_SUCH_KEY, SYNTAX, Ctx, expire_error, text_of
from cairn.store.glob import stringmatch
from cairn.store.layout import slot_start
from cairn.store.numbers import LLONG_MAX

_WALK_CHUNK = 1024
_RANDOM_TRIES = 100
_MAX_SECONDS = LLONG_MAX // 1000
"""Seconds that still fit in ms (C's LLONG_MAX / 1000; LLONG_MIN / 1000 is its negation)."""


def cmd_del(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DEL/UNLINK key [key ...]: the number of keys deleted."""
    return Integer(sum(ctx.db.delete(key) for key in args))


def cmd_exists(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """EXISTS/TOUCH key [key ...]: how many of the keys exist (repeats count again)."""
    return Integer(sum(ctx.db.lookup(key) is not None for key in args))


def cmd_expire_deleted(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """Internal: delete the keys that are expired at this entry's time (active expiry)."""
    return Integer(sum(ctx.db.purge_if_expired(key) for key in args))


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
    else:
        ctx.db.put_meta(args[0], meta.with_expire(when), existed=True)
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
    return Integer(1) if nx else OK


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
