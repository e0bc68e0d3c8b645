"""The reply encoder: typed replies (`cairn.resp.reply`) to RESP2 or RESP3 bytes.

Replies are written into one list of byte strings joined once at the end, so an array of
a million items costs one join, not a million concatenations; bulk strings, the common
item, are handled inline in the aggregate loop rather than through the dispatch table.

Conventions are Redis 7.0's (the version the byte-for-byte tests compare with):
doubles are `%.17g` (`1.1` is `1.1000000000000001`, `3.0` is `3`, infinities are `inf`
and `-inf`); in RESP2 a double is a bulk string, a boolean is `:1`/`:0`, a map and
`Pairs` are flat arrays (RESP3 nests `Pairs` as two-element arrays), a set and a push are
arrays, and both nulls keep their RESP2 forms (`$-1`, `*-1`), while RESP3 writes `_` for
both. Status and error texts are `str`; bytes that are not UTF-8 travel in them as
surrogate escapes (`bytes.decode("utf-8", "surrogateescape")`) and come out as the
original bytes (other lone surrogates as `?`). CR and LF in them become spaces, as Redis
does, so a reply can never break the framing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from cairn.resp.errors import LocalProtocolError
from cairn.resp.reply import (
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

Writer = Callable[[Any, list[bytes]], None]

_SMALL_BULK: Final = 16 * 1024  # below this a bulk is formatted in one piece, above it not copied
_CACHED_STATUS: Final = {s: b"+%s\r\n" % s.encode() for s in ("OK", "PONG", "QUEUED")}


def format_double(value: float) -> bytes:
    """A double as Redis 7.0 prints it in replies (`%.17g`, `inf`, `-inf`, `nan`)."""
    return b"%.17g" % value


def _line(text: str) -> bytes:
    """A status or error text as bytes safe on one RESP line."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no bytes.decode produced
        data = text.encode("utf-8", "replace")
    if b"\r" in data or b"\n" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data


def _bulk_bytes(value: bytes, out: list[bytes]) -> None:
    if len(value) < _SMALL_BULK:
        out.append(b"$%d\r\n%b\r\n" % (len(value), value))
    else:
        out += (b"$%d\r\n" % len(value), value, b"\r\n")


def _simple(reply: SimpleString, out: list[bytes]) -> None:
    cached = _CACHED_STATUS.get(reply.value)
    out.append(cached if cached is not None else b"+%b\r\n" % _line(reply.value))


def _error(reply: ErrorReply, out: list[bytes]) -> None:
    out.append(b"-%b\r\n" % _line(reply.message))


def _integer(reply: Integer, out: list[bytes]) -> None:
    out.append(b":%d\r\n" % reply.value)


def _bulk(reply: Bulk, out: list[bytes]) -> None:
    _bulk_bytes(reply.value, out)


def _items(items: Iterable[Reply], out: list[bytes], writers: dict[type, Writer]) -> None:
    for item in items:
        if type(item) is Bulk:
            value = item.value
            if len(value) < _SMALL_BULK:
                out.append(b"$%d\r\n%b\r\n" % (len(value), value))
                continue
        writers[type(item)](item, out)


def _pairs(
    pairs: Iterable[tuple[Reply, Reply]], out: list[bytes], writers: dict[type, Writer]
) -> None:
    for key, value in pairs:
        writers[type(key)](key, out)
        writers[type(value)](value, out)


# -- RESP2 ------------------------------------------------------------------------------


def _null_bulk2(reply: NullBulk, out: list[bytes]) -> None:
    out.append(b"$-1\r\n")


def _null_array2(reply: NullArray, out: list[bytes]) -> None:
    out.append(b"*-1\r\n")


def _sequence2(reply: Array | Set | Push, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(reply.items))
    _items(reply.items, out, _WRITERS2)


def _map2(reply: Map, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % (2 * len(reply.pairs)))
    _pairs(reply.pairs, out, _WRITERS2)


def _flat_pairs2(reply: Pairs, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % (2 * len(reply.pairs)))
    _pairs(reply.pairs, out, _WRITERS2)


def _nested_map2(reply: NestedMap, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(reply.pairs))
    for key, value in reply.pairs:
        out.append(b"*2\r\n")
        _pairs(((key, value),), out, _WRITERS2)


def _double2(reply: Double, out: list[bytes]) -> None:
    _bulk_bytes(format_double(reply.value), out)


def _boolean2(reply: Boolean, out: list[bytes]) -> None:
    out.append(b":1\r\n" if reply.value else b":0\r\n")


def _verbatim2(reply: Verbatim, out: list[bytes]) -> None:
    _bulk_bytes(reply.text, out)


# -- RESP3 ------------------------------------------------------------------------------


def _null3(reply: NullBulk | NullArray, out: list[bytes]) -> None:
    out.append(b"_\r\n")


def _array3(reply: Array, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(reply.items))
    _items(reply.items, out, _WRITERS3)


def _set3(reply: Set, out: list[bytes]) -> None:
    out.append(b"~%d\r\n" % len(reply.items))
    _items(reply.items, out, _WRITERS3)


def _push3(reply: Push, out: list[bytes]) -> None:
    out.append(b">%d\r\n" % len(reply.items))
    _items(reply.items, out, _WRITERS3)


def _map3(reply: Map | NestedMap, out: list[bytes]) -> None:
    out.append(b"%%%d\r\n" % len(reply.pairs))
    _pairs(reply.pairs, out, _WRITERS3)


def _nested_pairs3(reply: Pairs, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(reply.pairs))
    for key, value in reply.pairs:
        out.append(b"*2\r\n")
        _pairs(((key, value),), out, _WRITERS3)


def _double3(reply: Double, out: list[bytes]) -> None:
    out.append(b",%b\r\n" % format_double(reply.value))


def _boolean3(reply: Boolean, out: list[bytes]) -> None:
    out.append(b"#t\r\n" if reply.value else b"#f\r\n")


def _verbatim3(reply: Verbatim, out: list[bytes]) -> None:
    kind = reply.format.encode("ascii", "replace")
    if len(kind) != 3 or b":" in kind:
        raise LocalProtocolError(f"a verbatim format is three characters, not {reply.format!r}")
    out += (b"=%d\r\n%b:" % (len(reply.text) + 4, kind), reply.text, b"\r\n")


_COMMON: Final[dict[type, Writer]] = {
    SimpleString: _simple,
    ErrorReply: _error,
    Integer: _integer,
    Bulk: _bulk,
}
_WRITERS2: Final[dict[type, Writer]] = {
    **_COMMON,
    NullBulk: _null_bulk2,
    NullArray: _null_array2,
    Array: _sequence2,
    Set: _sequence2,
    Push: _sequence2,
    Map: _map2,
    Pairs: _flat_pairs2,
    NestedMap: _nested_map2,
    Double: _double2,
    Boolean: _boolean2,
    Verbatim: _verbatim2,
}
_WRITERS3: Final[dict[type, Writer]] = {
    **_COMMON,
    NullBulk: _null3,
    NullArray: _null3,
    Array: _array3,
    Set: _set3,
    Push: _push3,
    Map: _map3,
    Pairs: _nested_pairs3,
    NestedMap: _map3,
    Double: _double3,
    Boolean: _boolean3,
    Verbatim: _verbatim3,
}
_BY_PROTOCOL: Final = {2: _WRITERS2, 3: _WRITERS3}


def _writers(protocol: int) -> dict[type, Writer]:
    writers = _BY_PROTOCOL.get(protocol)
    if writers is None:
        raise LocalProtocolError(f"RESP protocol is 2 or 3, not {protocol!r}")
    return writers


def encode(reply: Reply, protocol: int = 2) -> bytes:
    """The bytes of one reply in RESP`protocol` (2 or 3). A subclass of a reply type (the
    store's `Blocked`, an `ErrorReply`) is written as that type."""
    writers = _writers(protocol)
    out: list[bytes] = []
    writer = writers.get(type(reply)) or _inherited(writers, type(reply))
    try:
        writer(reply, out)
    except KeyError as missing:
        raise LocalProtocolError(f"not a reply type: {missing.args[0]!r}") from None
    return out[0] if len(out) == 1 else b"".join(out)


def _inherited(writers: dict[type, Writer], kind: type) -> Writer:
    for base in kind.__mro__[1:]:
        if base in writers:
            return writers[base]
    raise LocalProtocolError(f"not a reply type: {kind!r}")


def encode_many(replies: Iterable[Reply], protocol: int = 2) -> bytes:
    """The bytes of several replies back to back (a pipeline's answers), in one join."""
    writers = _writers(protocol)
    out: list[bytes] = []
    try:
        _items(replies, out, writers)
    except KeyError as missing:
        raise LocalProtocolError(f"not a reply type: {missing.args[0]!r}") from None
    return b"".join(out)
