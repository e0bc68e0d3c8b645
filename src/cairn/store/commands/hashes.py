"""Hash commands. A hash is a metadata record holding its field count plus one record per
field, so every single-field operation is a point read or write."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, Pairs, Reply
from cairn.store.commands.common import bulk_or_null, fail, int_arg, lookup_typed
from cairn.store.commands.scan import parse_cursor, parse_options, scan_fields, scan_reply
from cairn.store.commands.spec import (
    NOT_FLOAT,
    OVERFLOW,
    RANDOM_REPEAT_LIMIT,
    RANDOM_REPEAT_TOO_MANY,
    SYNTAX,
    Ctx,
    arity_error,
)
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC, HASH
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


def _hash(ctx: Ctx, key: bytes) -> Meta | None:
    return lookup_typed(ctx.db, key, ValueType.HASH)


def _set_fields(ctx: Ctx, key: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> int:
    """Write `pairs` into hash `key` (created if missing); the number of new fields."""
    meta = _hash(ctx, key)
    size = 0 if meta is None else meta.size
    added = 0
    for field, value in pairs:
        if size + added == 0 or ctx.db.get_field(key, field) is None:
            added += 1
        ctx.db.put_field(key, field, value)
    base = meta or Meta(ValueType.HASH)
    ctx.db.put_meta(key, Meta(ValueType.HASH, base.expire_ms, size=size + added), meta is not None)
    return added


def _field_pairs(ctx: Ctx, args: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    if len(args) % 2 == 0:
        raise fail(arity_error(ctx.name))
    return [(args[i], args[i + 1]) for i in range(1, len(args), 2)]


def cmd_hset(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HSET key field value [field value ...]: the number of fields added."""
    added = _set_fields(ctx, args[0], _field_pairs(ctx, args))
    ctx.notify(HASH, "hset", args[0])
    return Integer(added)


def cmd_hmset(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HMSET key field value [field value ...]: OK."""
    _set_fields(ctx, args[0], _field_pairs(ctx, args))
    ctx.notify(HASH, "hset", args[0])
    return OK


def cmd_hsetnx(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HSETNX key field value: 1 if set, 0 if the field existed."""
    meta = _hash(ctx, args[0])
    if meta is not None and ctx.db.get_field(args[0], args[1]) is not None:
        return Integer(0)
    _set_fields(ctx, args[0], [(args[1], args[2])])
    ctx.notify(HASH, "hset", args[0])
    return Integer(1)


def _get_field(ctx: Ctx, key: bytes, field: bytes) -> bytes | None:
    return None if _hash(ctx, key) is None else ctx.db.get_field(key, field)


def cmd_hget(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HGET key field."""
    return bulk_or_null(_get_field(ctx, args[0], args[1]))


def cmd_hmget(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HMGET key field [field ...]."""
    meta = _hash(ctx, args[0])
    if meta is None:
        return Array(tuple(NULL for _ in args[1:]))
    return Array(tuple(bulk_or_null(ctx.db.get_field(args[0], f)) for f in args[1:]))


def _all_fields(ctx: Ctx, key: bytes) -> list[tuple[bytes, bytes]]:
    return [] if _hash(ctx, key) is None else ctx.db.fields(key)


def cmd_hgetall(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HGETALL key: fields and values (a map in RESP3), in field byte order."""
    return Map(tuple((Bulk(f), Bulk(v)) for f, v in _all_fields(ctx, args[0])))


def cmd_hkeys(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HKEYS key."""
    return Array(tuple(Bulk(f) for f, _ in _all_fields(ctx, args[0])))


def cmd_hvals(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HVALS key."""
    return Array(tuple(Bulk(v) for _, v in _all_fields(ctx, args[0])))


def cmd_hdel(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HDEL key field [field ...]: the number removed; an emptied hash is deleted."""
    key = args[0]
    meta = _hash(ctx, key)
    if meta is None:
        return Integer(0)
    removed = 0
    for field in args[1:]:
        if ctx.db.get_field(key, field) is not None:
            ctx.db.delete_field(key, field)
            removed += 1
    if removed:
        ctx.notify(HASH, "hdel", key)
    if removed == meta.size:
        ctx.db.delete(key)
        ctx.notify(GENERIC, "del", key)
    elif removed:
        ctx.db.put_meta(key, Meta(ValueType.HASH, meta.expire_ms, size=meta.size - removed), True)
    return Integer(removed)


def cmd_hexists(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HEXISTS key field."""
    return Integer(int(_get_field(ctx, args[0], args[1]) is not None))


def cmd_hlen(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HLEN key."""
    meta = _hash(ctx, args[0])
    return Integer(0 if meta is None else meta.size)


def cmd_hstrlen(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HSTRLEN key field."""
    value = _get_field(ctx, args[0], args[1])
    return Integer(0 if value is None else len(value))


def cmd_hincrby(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HINCRBY key field increment."""
    key, field = args[0], args[1]
    incr = int_arg(args[2])
    old = _get_field(ctx, key, field)
    current = 0 if old is None else parse_ll(old)
    if current is None:
        raise fail(ErrorReply("ERR hash value is not an integer"))
    result = current + incr
    if not LLONG_MIN <= result <= LLONG_MAX:
        raise fail(OVERFLOW)
    _set_fields(ctx, key, [(field, format_int(result))])
    ctx.notify(HASH, "hincrby", key)
    return Integer(result)


def cmd_hincrbyfloat(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HINCRBYFLOAT key field increment, in extended precision like Redis."""
    key, field = args[0], args[1]
    incr = parse_long_double(args[2])
    if incr is None:
        raise fail(NOT_FLOAT)
    if not is_finite(incr):
        raise fail(ErrorReply("ERR value is NaN or Infinity"))
    old = _get_field(ctx, key, field)
    current = parse_long_double(b"0" if old is None else old)
    if current is None:
        raise fail(ErrorReply("ERR hash value is not a float"))
    result = add_long_double(current, incr)
    if not is_finite(result):
        raise fail(ErrorReply("ERR increment would produce NaN or Infinity"))
    text = format_long_double(result)
    _set_fields(ctx, key, [(field, text)])
    ctx.notify(HASH, "hincrbyfloat", key)
    return Bulk(text)


def cmd_hscan(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HSCAN key cursor [MATCH pattern] [COUNT count]."""
    cursor = parse_cursor(args[1])
    meta = _hash(ctx, args[0])
    if meta is None:
        return scan_reply(0, [])
    opts = parse_options(args[2:], allow_type=False)
    next_cursor, pairs = scan_fields(ctx.db, args[0], meta.size, cursor, opts)
    return scan_reply(next_cursor, [item for pair in pairs for item in pair])


_HALF_LONG = LLONG_MAX // 2


def _randfield_count(args: Sequence[bytes]) -> tuple[int, bool]:
    count = int_arg(args[1])
    if count < -LLONG_MAX:
        raise fail(
            ErrorReply(
                f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}"
            )
        )
    if len(args) > 3 or (len(args) == 3 and args[2].lower() != b"withvalues"):
        raise fail(SYNTAX)
    withvalues = len(args) == 3
    if withvalues and not -_HALF_LONG <= count <= _HALF_LONG:
        raise fail(ErrorReply("ERR value is out of range"))
    if count < -RANDOM_REPEAT_LIMIT:
        raise fail(RANDOM_REPEAT_TOO_MANY)
    return count, withvalues


def cmd_hrandfield(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """HRANDFIELD key [count [WITHVALUES]]: random fields; a negative count may repeat.
    With WITHVALUES, field/value pairs: flat in RESP2, nested in RESP3, as Redis sends them."""
    if len(args) == 1:
        rows = _all_fields(ctx, args[0])
        return Bulk(ctx.rng.choice(rows)[0]) if rows else NULL
    count, withvalues = _randfield_count(args)
    rows = _all_fields(ctx, args[0])
    if not rows or count == 0:
        return Array(())
    if count < 0 or count == 1:
        picked = [ctx.rng.choice(rows) for _ in range(abs(count))]
    elif count >= len(rows):
        picked = rows
    else:
        picked = ctx.rng.sample(rows, count)
    if withvalues:
        return Pairs(tuple((Bulk(f), Bulk(v)) for f, v in picked))
    return Array(tuple(Bulk(f) for f, _ in picked))
