"""Helpers shared by the handlers: typed lookups, argument parsing, expiry options."""

from __future__ import annotations

from cairn.resp.reply import NULL, Bulk, ErrorReply, Reply
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import NOT_INTEGER, WRONGTYPE, Ctx, expire_error
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType
from cairn.store.numbers import LLONG_MAX, parse_ll


def fail(reply: ErrorReply) -> CommandError:
    """The exception that ends a command with `reply` (`raise fail(SYNTAX)`)."""
    return CommandError(reply)


def lookup_typed(db: Db, key: bytes, kind: ValueType) -> Meta | None:
    """`key`'s live metadata if it holds `kind`, None if missing; WRONGTYPE otherwise."""
    meta = db.lookup(key)
    if meta is not None and meta.type is not kind:
        raise fail(WRONGTYPE)
    return meta


def get_string(db: Db, key: bytes) -> bytes | None:
    """The string at `key`, None if missing; WRONGTYPE for another type."""
    meta = lookup_typed(db, key, ValueType.STRING)
    return None if meta is None else meta.value


def bulk_or_null(value: bytes | None) -> Reply:
    """A bulk reply, or the null reply for None."""
    return NULL if value is None else Bulk(value)


def int_arg(data: bytes) -> int:
    """A signed 64-bit integer argument; `ERR value is not an integer...` otherwise."""
    value = parse_ll(data)
    if value is None:
        raise fail(NOT_INTEGER)
    return value


def expire_at_ms(ctx: Ctx, data: bytes, unit_ms: int, absolute: bool) -> int:
    """The absolute expiry (ms) an EX/PX/EXAT/PXAT argument names, validated like Redis'
    SET/GETEX: positive, and no overflow once converted and made absolute."""
    value = int_arg(data)
    if value <= 0 or value > LLONG_MAX // unit_ms:
        raise fail(expire_error(ctx.name))
    value *= unit_ms
    if not absolute:
        value += ctx.now_ms
    if value > LLONG_MAX:
        raise fail(expire_error(ctx.name))
    return value
