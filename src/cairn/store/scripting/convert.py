"""Conversions between command replies and Lua values, both ways, as Redis 7.0 makes them.

Reply → Lua (`reply_to_lua`, what `redis.call` returns), after `redis.setresp(2)` (the
default): integer → number, bulk → string, null bulk and null array → false, status →
``{ok=...}``, error → ``{err=...}``, array → table (nested); RESP3-only replies as RESP2
sends them (a map flattened, a set as an array, a double as its bulk string, a boolean as
1/0). After `redis.setresp(3)`: null → nil, map → ``{map={k=v}}``, set → ``{set={m=true}}``,
double → ``{double=n}``, boolean → true/false, verbatim →
``{verbatim_string={format=..., string=...}}``.

Lua → reply (`lua_to_reply`, what the script returns): string → bulk, number → integer
(truncated towards zero; NaN and out-of-range values give Redis' INT64_MIN), true → 1 and
false → null (RESP3 booleans after `setresp(3)`), nil → null, a table with a string ``err``
→ error, with ``ok`` → status, with ``double`` → double, ``big_number`` → bulk, ``map`` →
map, ``set`` → set, any other table → array of its items 1..n up to the first nil.
"""

from __future__ import annotations

import math
from typing import Any

from cairn.resp.encoder import format_double
from cairn.resp.reply import (
    NULL,
    Array,
    Boolean,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Map,
    NestedMap,
    NullArray,
    NullBulk,
    Pairs,
    Push,
    Reply,
    Set,
    SimpleString,
    Verbatim,
)
from cairn.store.scripting.sandbox import LuaState, lua_error_text, lua_type

MAX_DEPTH = 128
"""How deeply nested a table a script may return (a self-referencing table would recurse
forever); deeper levels become an error reply."""

_INT64_MIN = -(2**63)
_TOO_DEEP = ErrorReply("ERR reached lua stack limit")


def _crlf_to_space(data: bytes) -> str:
    """A status or error text as Redis sends it: CR and LF replaced by spaces."""
    return data.replace(b"\r", b" ").replace(b"\n", b" ").decode("utf-8", "surrogateescape")


def number_to_integer(value: float) -> int:
    """A Lua number as Redis replies with it: `(long long)` of the double."""
    if math.isnan(value) or not (-(2.0**63) <= value < 2.0**63):
        return _INT64_MIN
    return int(value)


# -- reply -> Lua -------------------------------------------------------------------------

_VALUE_COST = 48
"""Bytes a Lua value costs besides its string bytes (a generous estimate: a table slot,
a string header)."""


def lua_size(reply: Reply) -> int:
    """About how many bytes `reply_to_lua` allocates in the Lua state for `reply` (an
    over-estimate, checked before converting: see `LuaState.room`)."""
    total, pending = 0, [reply]
    while pending:
        item = pending.pop()
        total += _VALUE_COST
        match item:
            case Bulk(value) | Verbatim(value, _):
                total += len(value)
            case SimpleString(text) | ErrorReply(text):
                total += len(text) + _VALUE_COST
            case Array(items) | Push(items) | Set(items):
                total += _VALUE_COST
                pending.extend(items)
            case Map(pairs) | NestedMap(pairs) | Pairs(pairs):
                total += _VALUE_COST * (1 + len(pairs))
                for first, second in pairs:
                    pending += (first, second)
            case _:
                pass
    return total


def reply_to_lua(state: LuaState, reply: Reply, resp: int) -> Any:
    """The Lua value `redis.call` returns for `reply` under protocol `resp` (2 or 3)."""
    match reply:
        case Integer(value):
            return value
        case Bulk(value):
            return value
        case SimpleString(value):
            return state.table({b"ok": value.encode("utf-8", "surrogateescape")})
        case ErrorReply(message):
            text = lua_error_text(b"-" + message.encode("utf-8", "surrogateescape"))
            return state.table({b"err": text})
        case NullBulk() | NullArray():
            return None if resp == 3 else False
        case Array(items) | Push(items):
            return state.table([reply_to_lua(state, item, resp) for item in items])
        case Set(items):
            return _set_to_lua(state, items, resp)
        case Map(pairs) | NestedMap(pairs) | Pairs(pairs):
            return _pairs_to_lua(state, reply, pairs, resp)
        case Double(value):
            if resp == 3:
                return state.table({b"double": value})
            return format_double(value)
        case Boolean(value):
            return value if resp == 3 else int(value)
        case Verbatim(text, fmt):
            if resp == 3:
                inner = state.table({b"format": fmt.encode(), b"string": text})
                return state.table({b"verbatim_string": inner})
            return text
    raise TypeError(f"no Lua form for {type(reply).__name__}")


def _set_to_lua(state: LuaState, items: tuple[Reply, ...], resp: int) -> Any:
    if resp == 2:
        return state.table([reply_to_lua(state, item, resp) for item in items])
    members = {reply_to_lua(state, item, resp): True for item in items}
    return state.table({b"set": state.table(members)})


def _pairs_to_lua(
    state: LuaState, reply: Reply, pairs: tuple[tuple[Reply, Reply], ...], resp: int
) -> Any:
    """A map-like reply: a map in RESP3 (`Pairs`, WITHSCORES, is an array of pairs there),
    in RESP2 a flat array (`NestedMap`: an array of pairs)."""
    nested = isinstance(reply, NestedMap) if resp == 2 else isinstance(reply, Pairs)
    if nested:
        return state.table(
            [
                state.table([reply_to_lua(state, k, resp), reply_to_lua(state, v, resp)])
                for k, v in pairs
            ]
        )
    if resp == 2:
        flat: list[Any] = []
        for key, value in pairs:
            flat += (reply_to_lua(state, key, resp), reply_to_lua(state, value, resp))
        return state.table(flat)
    entries = {reply_to_lua(state, k, resp): reply_to_lua(state, v, resp) for k, v in pairs}
    return state.table({b"map": state.table(entries)})


# -- Lua -> reply -------------------------------------------------------------------------


def lua_to_reply(value: Any, resp: int, depth: int = 0) -> Reply:
    """The reply for a value the script returned (see the module docstring)."""
    if depth > MAX_DEPTH:
        return _TOO_DEEP
    if isinstance(value, bool):
        if resp == 3:
            return Boolean(value)
        return Integer(1) if value else NULL
    if isinstance(value, bytes):
        return Bulk(value)
    if isinstance(value, int | float):
        return Integer(number_to_integer(float(value)))
    if lua_type(value) == "table":
        return _table_to_reply(value, resp, depth)
    return NULL


def _table_to_reply(table: Any, resp: int, depth: int) -> Reply:
    err = table[b"err"]
    if isinstance(err, bytes):
        return ErrorReply(_crlf_to_space(err))
    ok = table[b"ok"]
    if isinstance(ok, bytes):
        return SimpleString(_crlf_to_space(ok))
    double = table[b"double"]
    if isinstance(double, int | float) and not isinstance(double, bool):
        return Double(float(double))
    big = table[b"big_number"]
    if isinstance(big, bytes):
        return Bulk(big)
    mapping = table[b"map"]
    if lua_type(mapping) == "table":
        return Map(
            tuple(
                (lua_to_reply(k, resp, depth + 1), lua_to_reply(v, resp, depth + 1))
                for k, v in mapping.items()
            )
        )
    members = table[b"set"]
    if lua_type(members) == "table":
        return Set(tuple(lua_to_reply(k, resp, depth + 1) for k in members))
    items: list[Reply] = []
    position = 1
    while (item := table[position]) is not None:
        items.append(lua_to_reply(item, resp, depth + 1))
        position += 1
    return Array(tuple(items))
