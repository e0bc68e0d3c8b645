"""BITFIELD and BITFIELD_RO: signed and unsigned integers of 1 to 64 bits at any bit offset
of a string, read, written and incremented with Redis' overflow rules; and the bit offset
argument every bitmap command shares.

The whole argument list is parsed (every error found) before the key is looked up; then the
string is grown once to the farthest bit any SET/INCRBY reaches (even if they all fail under
OVERFLOW FAIL, as in Redis) and the operations run in order on one buffer.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import NULL, Array, ErrorReply, Integer, Reply
from cairn.store.commands.common import fail, get_string, int_arg, lookup_typed
from cairn.store.commands.spec import (
    MAX_STRING,
    MAX_WRITE_STRING,
    STRING_LIMIT,
    SYNTAX,
    TOO_BIG,
    Ctx,
)
from cairn.store.commands.strings import store_keep_ttl
from cairn.store.layout import ValueType
from cairn.store.notifications import STRING
from cairn.store.numbers import LLONG_MIN, parse_ll

BIT_OFFSET = ErrorReply("ERR bit offset is not an integer or out of range")
BAD_TYPE = ErrorReply(
    "ERR Invalid bitfield type. Use something like i16 u8. "
    "Note that u64 is not supported but i64 is."
)
BAD_OVERFLOW = ErrorReply("ERR Invalid OVERFLOW type specified")
RO_GET_ONLY = ErrorReply("ERR BITFIELD_RO only supports the GET subcommand")

_U64 = 1 << 64


def bit_offset_arg(data: bytes, bits: int = 0) -> int:
    """A bit offset argument: 0 .. 2**32 - 1 (the last bit of a `MAX_STRING` string).

    With `bits` > 0 (BITFIELD) `#n` means the n-th field of that width, n * bits, the product
    wrapping like Redis' 64-bit multiplication (so `#2305843009213693952` with i8 is 0)."""
    hashed = bits > 0 and data[:1] == b"#"
    value = parse_ll(data[1:] if hashed else data)
    if value is None:
        raise fail(BIT_OFFSET)
    if hashed:
        value = _wrap64(value * bits)
    if value < 0 or value >> 3 >= MAX_STRING:
        raise fail(BIT_OFFSET)
    return value


class Overflow(enum.Enum):
    """What SET and INCRBY do with a result that does not fit the field."""

    WRAP = b"wrap"
    SAT = b"sat"
    FAIL = b"fail"


class OpKind(enum.Enum):
    """A BITFIELD operation (OVERFLOW is not one: it changes the ones after it)."""

    GET = b"get"
    SET = b"set"
    INCRBY = b"incrby"


@dataclass(frozen=True, slots=True)
class FieldOp:
    """One parsed GET/SET/INCRBY: the field (`signed`, `bits` wide at bit `offset`), the
    SET value or INCRBY increment (a signed 64-bit integer) and the overflow rule then in
    force."""

    kind: OpKind
    signed: bool
    bits: int
    offset: int
    arg: int = 0
    overflow: Overflow = Overflow.WRAP

    @property
    def lo(self) -> int:
        """The smallest value the field holds."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """The largest value the field holds."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def _type_arg(data: bytes) -> tuple[bool, int]:
    """`iN` (1..64) or `uN` (1..63), case-sensitive like Redis: (signed?, N)."""
    sign = data[:1]
    bits = parse_ll(data[1:])
    if sign not in (b"i", b"u") or bits is None or bits < 1 or bits > (64 if sign == b"i" else 63):
        raise fail(BAD_TYPE)
    return sign == b"i", bits


_ARGS_AFTER = {OpKind.GET: 2, OpKind.SET: 3, OpKind.INCRBY: 3}


def parse_ops(args: Sequence[bytes]) -> list[FieldOp]:
    """The operations of BITFIELD's arguments after the key, errors in Redis' order."""
    ops: list[FieldOp] = []
    overflow = Overflow.WRAP
    j = 0
    while j < len(args):
        name, left = args[j].lower(), len(args) - j - 1
        if name == b"overflow" and left >= 1:
            try:
                overflow = Overflow(args[j + 1].lower())
            except ValueError:
                raise fail(BAD_OVERFLOW) from None
            j += 2
            continue
        kind = next((k for k in OpKind if k.value == name and left >= _ARGS_AFTER[k]), None)
        if kind is None:
            raise fail(SYNTAX)
        signed, bits = _type_arg(args[j + 1])
        offset = bit_offset_arg(args[j + 2], bits)
        arg = 0 if kind is OpKind.GET else int_arg(args[j + 3])
        ops.append(FieldOp(kind, signed, bits, offset, arg, overflow))
        j += 1 + _ARGS_AFTER[kind]
    return ops


def _window(op: FieldOp) -> tuple[int, int, int]:
    """(first byte, byte count, right shift) of the bytes holding `op`'s field."""
    count = ((op.offset & 7) + op.bits + 7) >> 3
    return op.offset >> 3, count, count * 8 - (op.offset & 7) - op.bits


def read_field(data: bytes | bytearray, op: FieldOp) -> int:
    """The field's value; bits past the end of `data` read as zeros."""
    first, count, shift = _window(op)
    raw = bytes(data[first : first + count]).ljust(count, b"\x00")
    value = int.from_bytes(raw, "big") >> shift & ((1 << op.bits) - 1)
    return value - (1 << op.bits) if op.signed and value >> (op.bits - 1) else value


def write_field(buf: bytearray, op: FieldOp, value: int) -> None:
    """Store `value` (already fitted to the field) into `buf`, which covers the field."""
    first, count, shift = _window(op)
    mask = ((1 << op.bits) - 1) << shift
    word = int.from_bytes(buf[first : first + count], "big")
    word = word & ~mask | (value << shift) & mask
    buf[first : first + count] = word.to_bytes(count, "big")


def _wrap64(value: int) -> int:
    """`value` as C's int64_t arithmetic leaves it (two's complement wrap-around)."""
    return (value - LLONG_MIN) % _U64 + LLONG_MIN


def _overflow(op: FieldOp, value: int, incr: int) -> int:
    """Redis' overflow check of `value` + `incr` in the field: 1 over, -1 under, 0 fits.

    Computed with Redis' 64-bit arithmetic, quirks included: its `max - value` wraps for a
    SET of a far negative value into a wide signed field, which then counts as an overflow
    (OVERFLOW SAT stores the maximum: `SET i63 0 -4611686018427387905` stores 2**62-1)."""
    if not op.signed:
        if value > op.hi or (incr > 0 and incr > _wrap64(op.hi - value)):
            return 1
        return -1 if incr < 0 and incr < _wrap64(-value) else 0
    narrow = op.bits < 64
    up, down = _wrap64(op.hi - value), _wrap64(op.lo - value)
    if value > op.hi or (narrow and incr > up) or (value >= 0 and incr > 0 and incr > up):
        return 1
    if value < op.lo or (narrow and incr < down) or (value < 0 and incr < 0 and incr < down):
        return -1
    return 0


def fit(op: FieldOp, value: int, incr: int = 0) -> int | None:
    """`value` + `incr` as the field stores it under `op.overflow`: wrapped to its width,
    saturated at its bounds, or None (FAIL) when Redis finds it does not fit."""
    direction = _overflow(op, value, incr)
    if direction == 0:
        return value + incr
    if op.overflow is Overflow.FAIL:
        return None
    if op.overflow is Overflow.SAT:
        return op.hi if direction > 0 else op.lo
    wrapped = (value + incr) & ((1 << op.bits) - 1)
    return wrapped - (1 << op.bits) if op.signed and wrapped >> (op.bits - 1) else wrapped


def _apply(buf: bytearray, op: FieldOp) -> tuple[Reply, bool]:
    """Run one operation on `buf`: its reply and whether it changed the field."""
    old = read_field(buf, op)
    if op.kind is OpKind.GET:
        return Integer(old), False
    if op.kind is OpKind.INCRBY:
        new = fit(op, old, op.arg)
    else:
        # An unsigned field is given the value as Redis' uint64_t cast leaves it.
        new = fit(op, op.arg if op.signed else op.arg % _U64)
    if new is None:
        return NULL, False
    write_field(buf, op, new)
    return Integer(new if op.kind is OpKind.INCRBY else old), new != old


def _run(ctx: Ctx, key: bytes, ops: list[FieldOp], read_only: bool) -> Reply:
    writes = [op for op in ops if op.kind is not OpKind.GET]
    if not writes:
        value = get_string(ctx.db, key) or b""
        return Array(tuple(Integer(read_field(value, op)) for op in ops))
    if read_only:
        raise fail(RO_GET_ONLY)
    meta = lookup_typed(ctx.db, key, ValueType.STRING)
    size = max(op.offset + op.bits - 1 for op in writes) // 8 + 1
    if size > MAX_STRING:
        raise fail(TOO_BIG)
    if size > MAX_WRITE_STRING:
        raise fail(STRING_LIMIT)
    old = b"" if meta is None else meta.value
    buf = bytearray(old)
    if len(buf) < size:
        buf.extend(bytes(size - len(buf)))
    replies, changed = [], meta is None or len(buf) > len(old)
    for op in ops:
        reply, op_changed = _apply(buf, op)
        replies.append(reply)
        changed = changed or op_changed
    if changed:
        store_keep_ttl(ctx, key, meta, bytes(buf))
        ctx.notify(STRING, "setbit", key)
    return Array(tuple(replies))


def cmd_bitfield(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BITFIELD key [GET type offset | SET type offset value | INCRBY type offset increment
    | OVERFLOW WRAP|SAT|FAIL] ...: one reply per GET/SET/INCRBY (SET: the old value, INCRBY:
    the new one, nil when OVERFLOW FAIL refused it). The string keeps its TTL.

    Redis grows the string to any bit offset below 2**32 plus the field's width; Cairn
    refuses a write whose string would pass `MAX_STRING` (proto-max-bulk-len) with the
    "string exceeds maximum allowed size" error instead, and one past `MAX_WRITE_STRING`
    (16 MiB) with `STRING_LIMIT`."""
    return _run(ctx, args[0], parse_ops(args[1:]), read_only=False)


def cmd_bitfield_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BITFIELD_RO key [GET type offset] ...: BITFIELD limited to GET."""
    return _run(ctx, args[0], parse_ops(args[1:]), read_only=True)
