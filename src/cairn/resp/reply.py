"""Typed replies: what command handlers return and the RESP encoder turns into bytes.

Handlers never build protocol bytes; they return these values, and the connection's
protocol version (RESP2 or RESP3, chosen by HELLO) decides the encoding: a `Map` is a
flat array in RESP2, `Null` is `$-1` (or `*-1` when `NullArray`), a `Double` is a bulk
string in RESP2, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimpleString:
    """`+OK`-style status reply; must not contain CR or LF."""

    value: str


OK = SimpleString("OK")
PONG = SimpleString("PONG")
QUEUED = SimpleString("QUEUED")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply; `message` starts with the error code, e.g. `ERR ...`, `WRONGTYPE ...`."""

    message: str


@dataclass(frozen=True, slots=True)
class Integer:
    """A signed 64-bit integer reply."""

    value: int


@dataclass(frozen=True, slots=True)
class Bulk:
    """A binary-safe string reply."""

    value: bytes


@dataclass(frozen=True, slots=True)
class NullBulk:
    """The null reply: `$-1` in RESP2, `_` in RESP3."""


@dataclass(frozen=True, slots=True)
class NullArray:
    """The null array: `*-1` in RESP2, `_` in RESP3."""


NULL = NullBulk()
NULL_ARRAY = NullArray()


@dataclass(frozen=True, slots=True)
class Array:
    """An ordered list of replies."""

    items: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class Map:
    """Key-value pairs: `%` in RESP3, a flat array in RESP2."""

    pairs: tuple[tuple[Reply, Reply], ...]


@dataclass(frozen=True, slots=True)
class Pairs:
    """Pairs of replies (a sorted set's members with their scores): an array of
    two-element arrays in RESP3, one flat array in RESP2, as Redis 7.0 sends WITHSCORES."""

    pairs: tuple[tuple[Reply, Reply], ...]


@dataclass(frozen=True, slots=True)
class NestedMap:
    """Key-value pairs sent as a map in RESP3 and as an array of two-element arrays in
    RESP2, as Redis 7.0 sends XREAD's streams."""

    pairs: tuple[tuple[Reply, Reply], ...]


@dataclass(frozen=True, slots=True)
class Set:
    """An unordered collection: `~` in RESP3, an array in RESP2."""

    items: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class Double:
    """A floating point reply: `,` in RESP3, a bulk string in RESP2."""

    value: float


@dataclass(frozen=True, slots=True)
class Boolean:
    """A boolean: `#t`/`#f` in RESP3, the integer 1 or 0 in RESP2."""

    value: bool


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A verbatim string (`=` in RESP3, a bulk string in RESP2), e.g. INFO's text."""

    text: bytes
    format: str = "txt"


@dataclass(frozen=True, slots=True)
class Push:
    """An out-of-band push (`>` in RESP3, an array in RESP2), e.g. pub/sub messages."""

    items: tuple[Reply, ...]


Reply = (
    SimpleString
    | ErrorReply
    | Integer
    | Bulk
    | NullBulk
    | NullArray
    | Array
    | Map
    | Pairs
    | NestedMap
    | Set
    | Double
    | Boolean
    | Verbatim
    | Push
)
