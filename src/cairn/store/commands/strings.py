"""String commands: GET, SET and its variants, counters, ranges (GETRANGE, SUBSTR, SETRANGE)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands.common import (
    bulk_or_null,
    expire_at_ms,
    fail,
    get_string,
    int_arg,
    lookup_typed,
)
from cairn.store.commands.spec import (
    MAX_STRING,
    MAX_WRITE_STRING,
    NAN_OR_INF,
    NOT_FLOAT,
    NOT_INTEGER,
    OVERFLOW,
    STRING_LIMIT,
    SYNTAX,
    TOO_BIG,
    Ctx,
    arity_error,
)
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC, STRING
from cairn.store.numbers import (
    LLONG_MAX,
    LLONG_MIN,
    add_long_double,
    format_int,
    format_long_double,
    is_finite,
    parse_ll,
    parse_long_double,
)

_EXPIRE_UNITS = {b"ex": (1000, False), b"px": (1, False), b"exat": (1000, True), b"pxat": (1, True)}


@dataclass(slots=True)
class _Options:
    """SET/GETEX options as Redis' parseExtendedStringArgumentsOrReply collects them."""

    nx: bool = False
    xx: bool = False
    get: bool = False
    keepttl: bool = False
    persist: bool = False
    expire: bytes | None = None
    """The EX/PX/EXAT/PXAT argument (its option is `expire_opt`)."""
    expire_opt: bytes = b""


def _parse_options(args: Sequence[bytes], for_set: bool) -> _Options:
    opts = _Options()
    j = 0
    while j < len(args):
        opt = args[j].lower()
        if opt == b"nx" and not opts.xx and for_set:
            opts.nx = True
        elif opt == b"xx" and not opts.nx and for_set:
            opts.xx = True
        elif opt == b"get" and for_set:
            opts.get = True
        elif opt == b"keepttl" and for_set and not opts.persist and not opts.expire_opt:
            opts.keepttl = True
        elif opt == b"persist" and not for_set and not opts.expire_opt and not opts.keepttl:
            opts.persist = True
        elif (
            opt in _EXPIRE_UNITS
            and not opts.keepttl
            and not opts.persist
            and opts.expire_opt in (b"", opt)
            and j + 1 < len(args)
        ):
            opts.expire_opt, opts.expire = opt, args[j + 1]
            j += 1
        else:
            raise fail(SYNTAX)
        j += 1
    return opts


def _expire_of(ctx: Ctx, opts: _Options) -> int | None:
    if opts.expire is None:
        return None
    unit_ms, absolute = _EXPIRE_UNITS[opts.expire_opt]
    return expire_at_ms(ctx, opts.expire, unit_ms, absolute)


def _set(ctx: Ctx, key: bytes, value: bytes, opts: _Options) -> Reply:
    expire = _expire_of(ctx, opts)
    old = get_string(ctx.db, key) if opts.get else None
    meta = ctx.db.lookup(key)
    if (opts.nx and meta is not None) or (opts.xx and meta is None):
        return bulk_or_null(old) if opts.get else NULL
    if opts.keepttl and meta is not None:
        expire = meta.expire_ms
    ctx.db.set_string(key, value, expire)
    ctx.notify(STRING, "set", key)
    if expire is not None and not opts.keepttl:
        ctx.notify(GENERIC, "expire", key)
    return bulk_or_null(old) if opts.get else OK


def cmd_set(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]."""
    return _set(ctx, args[0], args[1], _parse_options(args[2:], for_set=True))


def cmd_setnx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SETNX key value: 1 if set, 0 if the key existed."""
    if ctx.db.lookup(args[0]) is not None:
        return Integer(0)
    ctx.db.set_string(args[0], args[1])
    ctx.notify(STRING, "set", args[0])
    return Integer(1)


def cmd_setex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SETEX key seconds value."""
    return _set(ctx, args[0], args[2], _Options(expire=args[1], expire_opt=b"ex"))


def cmd_psetex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """PSETEX key milliseconds value."""
    return _set(ctx, args[0], args[2], _Options(expire=args[1], expire_opt=b"px"))


def cmd_get(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GET key."""
    return bulk_or_null(get_string(ctx.db, args[0]))


def cmd_getset(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GETSET key value: set, drop the TTL, return the old value."""
    old = get_string(ctx.db, args[0])
    ctx.db.set_string(args[0], args[1])
    ctx.notify(STRING, "set", args[0])
    return bulk_or_null(old)


def cmd_getdel(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GETDEL key."""
    old = get_string(ctx.db, args[0])
    if old is not None:
        ctx.db.delete(args[0])
        ctx.notify(GENERIC, "del", args[0])
    return bulk_or_null(old)


def cmd_getex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]."""
    opts = _parse_options(args[1:], for_set=False)
    meta = lookup_typed(ctx.db, args[0], ValueType.STRING)
    if meta is None:
        return NULL
    expire = _expire_of(ctx, opts)
    if expire is not None and opts.expire_opt in (b"exat", b"pxat") and expire <= ctx.now_ms:
        ctx.db.delete(args[0])
        ctx.notify(GENERIC, "del", args[0])
    elif expire is not None or (opts.persist and meta.expire_ms is not None):
        ctx.db.put_meta(args[0], meta.with_expire(expire), existed=True)
        ctx.notify(GENERIC, "expire" if expire is not None else "persist", args[0])
    return Bulk(meta.value)


def cmd_mget(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """MGET key [key ...]: nil for missing keys and keys of other types."""
    items: list[Reply] = []
    for key in args:
        meta = ctx.db.lookup(key)
        ok = meta is not None and meta.type is ValueType.STRING
        items.append(Bulk(meta.value) if ok and meta is not None else NULL)
    return Array(tuple(items))


def _pairs(ctx: Ctx, args: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    if len(args) % 2:
        raise fail(arity_error(ctx.name))
    return [(args[i], args[i + 1]) for i in range(0, len(args), 2)]


def cmd_mset(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """MSET key value [key value ...]."""
    for key, value in _pairs(ctx, args):
        ctx.db.set_string(key, value)
        ctx.notify(STRING, "set", key)
    return OK


def cmd_msetnx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """MSETNX key value [key value ...]: all or nothing, only if no key exists."""
    pairs = _pairs(ctx, args)
    if any(ctx.db.lookup(key) is not None for key, _ in pairs):
        return Integer(0)
    for key, value in pairs:
        ctx.db.set_string(key, value)
        ctx.notify(STRING, "set", key)
    return Integer(1)


def store_keep_ttl(ctx: Ctx, key: bytes, meta: Meta | None, value: bytes) -> None:
    """Make `key` the string `value`, keeping the expiry of `meta` (its current record, None
    if missing): what Redis' in-place string edits (APPEND, SETBIT, INCR...) do."""
    expire = None if meta is None else meta.expire_ms
    ctx.db.put_meta(key, Meta(ValueType.STRING, expire, value=value), existed=meta is not None)


def _incr_by(ctx: Ctx, key: bytes, delta: int) -> Reply:
    meta = lookup_typed(ctx.db, key, ValueType.STRING)
    current = 0 if meta is None else parse_ll(meta.value)
    if current is None:
        raise fail(NOT_INTEGER)
    result = current + delta
    if not LLONG_MIN <= result <= LLONG_MAX:
        raise fail(OVERFLOW)
    store_keep_ttl(ctx, key, meta, format_int(result))
    ctx.notify(STRING, "incrby", key)
    return Integer(result)


def cmd_incr(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """INCR key."""
    return _incr_by(ctx, args[0], 1)


def cmd_decr(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DECR key."""
    return _incr_by(ctx, args[0], -1)


def cmd_incrby(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """INCRBY key increment."""
    return _incr_by(ctx, args[0], int_arg(args[1]))


def cmd_decrby(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """DECRBY key decrement."""
    delta = int_arg(args[1])
    if delta == LLONG_MIN:
        raise fail(ErrorReply("ERR decrement would overflow"))
    return _incr_by(ctx, args[0], -delta)


def cmd_incrbyfloat(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """INCRBYFLOAT key increment, in extended precision like Redis' long double."""
    meta = lookup_typed(ctx.db, args[0], ValueType.STRING)
    current = parse_long_double(b"0" if meta is None else meta.value)
    incr = parse_long_double(args[1])
    if current is None or incr is None:
        raise fail(NOT_FLOAT)
    result = add_long_double(current, incr)
    if not is_finite(result):
        raise fail(NAN_OR_INF)
    text = format_long_double(result)
    store_keep_ttl(ctx, args[0], meta, text)
    ctx.notify(STRING, "incrbyfloat", args[0])
    return Bulk(text)


def cmd_append(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """APPEND key value: the new length (at most `MAX_WRITE_STRING`, see SETRANGE)."""
    meta = lookup_typed(ctx.db, args[0], ValueType.STRING)
    old = b"" if meta is None else meta.value
    if meta is not None and len(old) + len(args[1]) > MAX_STRING:
        raise fail(TOO_BIG)
    if len(old) + len(args[1]) > MAX_WRITE_STRING:
        raise fail(STRING_LIMIT)
    store_keep_ttl(ctx, args[0], meta, old + args[1])
    ctx.notify(STRING, "append", args[0])
    return Integer(len(old) + len(args[1]))


def cmd_strlen(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """STRLEN key."""
    value = get_string(ctx.db, args[0])
    return Integer(0 if value is None else len(value))


def cmd_getrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GETRANGE key start end (inclusive, negative counts from the end)."""
    start, end = int_arg(args[1]), int_arg(args[2])
    value = get_string(ctx.db, args[0]) or b""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return Bulk(b"")
    start = max(start + size if start < 0 else start, 0)
    end = max(end + size if end < 0 else end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return Bulk(b"")
    return Bulk(value[start : end + 1])


def cmd_substr(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SUBSTR key start end: GETRANGE under its pre-2.0 name (Redis keeps both)."""
    return cmd_getrange(ctx, args)


def cmd_setrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SETRANGE key offset value: overwrite from `offset`, zero-padding; the new length.

    A string past `MAX_WRITE_STRING` is refused (`STRING_LIMIT`; Redis allows 512 MiB)."""
    offset = int_arg(args[1])
    if offset < 0:
        raise fail(ErrorReply("ERR offset is out of range"))
    key, patch = args[0], args[2]
    meta = lookup_typed(ctx.db, key, ValueType.STRING)
    old = b"" if meta is None else meta.value
    if not patch:
        return Integer(len(old))
    if offset + len(patch) > MAX_STRING:
        raise fail(TOO_BIG)
    if offset + len(patch) > MAX_WRITE_STRING:
        raise fail(STRING_LIMIT)
    padded = old.ljust(offset, b"\x00")
    value = padded[:offset] + patch + padded[offset + len(patch) :]
    store_keep_ttl(ctx, key, meta, value)
    ctx.notify(STRING, "setrange", key)
    return Integer(len(value))
