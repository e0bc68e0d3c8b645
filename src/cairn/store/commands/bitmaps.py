"""Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP (BITFIELD is in `bitfield`).

A bitmap is a plain string read as bits, bit 0 being the most significant bit of the first
byte. Strings are stored whole in their metadata record, so a bit write rewrites the value
(bounded by `MAX_STRING`); reads count and search a whole range at once through
`int.from_bytes`, never bit by bit in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.resp.reply import ErrorReply, Integer, Reply
from cairn.store.commands import bitfield
from cairn.store.commands.bitfield import bit_offset_arg
from cairn.store.commands.common import fail, get_string, int_arg, lookup_typed
from cairn.store.commands.define import K1, RF, WD, R, cmd
from cairn.store.commands.spec import MAX_WRITE_STRING, STRING_LIMIT, SYNTAX, CommandSpec, Ctx
from cairn.store.commands.strings import store_keep_ttl
from cairn.store.layout import ValueType
from cairn.store.notifications import GENERIC, STRING
from cairn.store.numbers import parse_ll

BIT_VALUE = ErrorReply("ERR bit is not an integer or out of range")
BIT_ARG = ErrorReply("ERR The bit argument must be 1 or 0.")
NOT_SINGLE = ErrorReply("ERR BITOP NOT must be called with a single source key.")


def _bit_at(value: bytes, offset: int) -> int:
    byte = offset >> 3
    return value[byte] >> (7 - (offset & 7)) & 1 if byte < len(value) else 0


def cmd_setbit(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SETBIT key offset 0|1: the bit's previous value; the string grows zero-padded and
    keeps its TTL. An offset past `MAX_WRITE_STRING` bytes (Redis: 512 MiB) is refused with
    `STRING_LIMIT`."""
    offset = bit_offset_arg(args[1])
    on = parse_ll(args[2])
    if on not in (0, 1):
        raise fail(BIT_VALUE)
    if offset >> 3 >= MAX_WRITE_STRING:
        raise fail(STRING_LIMIT)
    meta = lookup_typed(ctx.db, args[0], ValueType.STRING)
    old = b"" if meta is None else meta.value
    previous = _bit_at(old, offset)
    byte = offset >> 3
    if byte >= len(old) or previous != on:
        buf = bytearray(old)
        if byte >= len(buf):
            buf.extend(bytes(byte + 1 - len(buf)))
        mask = 1 << (7 - (offset & 7))
        buf[byte] = buf[byte] | mask if on else buf[byte] & ~mask
        store_keep_ttl(ctx, args[0], meta, bytes(buf))
        ctx.notify(STRING, "setbit", args[0])
    return Integer(previous)


def cmd_getbit(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """GETBIT key offset: 0 past the end of the string or for a missing key."""
    offset = bit_offset_arg(args[1])
    return Integer(_bit_at(get_string(ctx.db, args[0]) or b"", offset))


_CHUNK = 1 << 16
"""Bytes per step of the scans: big enough for C to do the work, small enough for the cache."""
_SKIP_BLOCKS = {0: bytes(_CHUNK), 0xFF: b"\xff" * _CHUNK}


def _byte_mask(lo: int, hi: int) -> int:
    """The bits `lo`..`hi` (0 = most significant) of one byte."""
    return (0xFF >> lo) & (0xFF << (7 - hi)) & 0xFF


def popcount(value: bytes, lo: int, hi: int) -> int:
    """The set bits among bits `lo`..`hi` (inclusive, within `value`)."""
    first, last = lo >> 3, hi >> 3
    if first == last:
        return (value[first] & _byte_mask(lo & 7, hi & 7)).bit_count()
    count = (value[first] & _byte_mask(lo & 7, 7)).bit_count()
    count += (value[last] & _byte_mask(0, hi & 7)).bit_count()
    view = memoryview(value)
    for at in range(first + 1, last, _CHUNK):
        count += int.from_bytes(view[at : min(at + _CHUNK, last)], "little").bit_count()
    return count


def _first_other(value: bytes, skip: int, lo: int, hi: int) -> int:
    """The index of the first byte of value[lo:hi] other than `skip` (0 or 0xFF), or `hi`:
    whole chunks are compared with a block of `skip` bytes (a memcmp)."""
    block = _SKIP_BLOCKS[skip]
    for at in range(lo, hi, _CHUNK):
        chunk = value[at : min(at + _CHUNK, hi)]
        if chunk != block[: len(chunk)]:
            found = int.from_bytes(chunk, "big") ^ int.from_bytes(block[: len(chunk)], "big")
            return at + len(chunk) - (found.bit_length() + 7) // 8
    return hi


def _in_byte(byte: int, bit: int, lo: int, hi: int) -> int:
    """The first of bits `lo`..`hi` of `byte` equal to `bit`, or -1."""
    for i in range(lo, hi + 1):
        if byte >> (7 - i) & 1 == bit:
            return i
    return -1


def find_bit(value: bytes, bit: int, lo: int, hi: int) -> int:
    """The first bit equal to `bit` among bits `lo`..`hi` (inclusive, within `value`), or -1."""
    first, last = lo >> 3, hi >> 3
    found = _in_byte(value[first], bit, lo & 7, 7 if first < last else hi & 7)
    if found >= 0 or first == last:
        return first * 8 + found if found >= 0 else -1
    at = _first_other(value, 0 if bit else 0xFF, first + 1, last)
    found = _in_byte(value[at], bit, 0, 7 if at < last else hi & 7)
    return at * 8 + found if found >= 0 else -1


def _unit_is_bit(arg: bytes) -> bool:
    """The BYTE|BIT argument of BITCOUNT/BITPOS: whether indexes count bits."""
    unit = arg.lower()
    if unit not in (b"bit", b"byte"):
        raise fail(SYNTAX)
    return unit == b"bit"


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    """Redis' index normalisation: negatives count from `total`, then clipped to it."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    return max(start, 0), min(max(end, 0), total - 1)


def _bit_range(start: int, end: int, is_bit: bool) -> tuple[int, int]:
    return (start, end) if is_bit else (start * 8, end * 8 + 7)


def cmd_bitcount(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BITCOUNT key [start end [BYTE|BIT]]: the set bits in the range.

    As in Redis 7.0 the key is looked up first: a missing key counts 0 whatever follows."""
    value = get_string(ctx.db, args[0])
    if value is None:
        return Integer(0)
    if len(args) == 1:
        return Integer(popcount(value, 0, len(value) * 8 - 1) if value else 0)
    if len(args) not in (3, 4):
        raise fail(SYNTAX)
    start, end = int_arg(args[1]), int_arg(args[2])
    if start < 0 and end < 0 and start > end:
        return Integer(0)
    is_bit = len(args) == 4 and _unit_is_bit(args[3])
    start, end = _clamp(start, end, len(value) * 8 if is_bit else len(value))
    if start > end:
        return Integer(0)
    return Integer(popcount(value, *_bit_range(start, end, is_bit)))


def _bitpos_range(value: bytes, args: Sequence[bytes]) -> tuple[int, int, bool, bool]:
    """BITPOS's range: (start, end, in bits?, end given?), normalised and clipped."""
    if len(args) == 2:
        return 0, len(value) - 1, False, False
    if len(args) > 5:
        raise fail(SYNTAX)
    start = int_arg(args[2])
    is_bit = len(args) == 5 and _unit_is_bit(args[4])
    end = int_arg(args[3]) if len(args) >= 4 else len(value) - 1
    start, end = _clamp(start, end, len(value) * 8 if is_bit else len(value))
    return start, end, is_bit, len(args) >= 4


def cmd_bitpos(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BITPOS key 0|1 [start [end [BYTE|BIT]]]: the first bit with that value, or -1.

    Redis' odd cases: a missing key is all zeros (0 for a clear bit, -1 for a set one);
    looking for 0 without an end treats the string as zero-padded on the right, so a string
    of all ones answers its length in bits; with an end given it answers -1."""
    bit = int_arg(args[1])
    if bit not in (0, 1):
        raise fail(BIT_ARG)
    value = get_string(ctx.db, args[0])
    if value is None:
        return Integer(-1 if bit else 0)
    start, end, is_bit, end_given = _bitpos_range(value, args)
    if start > end:
        return Integer(-1)
    lo, hi = _bit_range(start, end, is_bit)
    found = find_bit(value, bit, lo, hi)
    return Integer(hi + 1 if found < 0 and bit == 0 and not end_given else found)


def _combine(op: bytes, values: list[bytes], at: int, size: int) -> bytes:
    """`size` bytes of the result from byte `at`: the sources' bytes there (zeros past their
    ends) combined by `op`."""
    operands = []
    for value in values:
        part = memoryview(value)[at : at + size]
        padded = part if len(part) == size else bytes(part).ljust(size, b"\x00")
        operands.append(int.from_bytes(padded, "little"))
    result = operands[0]
    for operand in operands[1:]:
        if op == b"and":
            result &= operand
        elif op == b"or":
            result |= operand
        else:
            result ^= operand
    if op == b"not":
        result ^= (1 << (8 * size)) - 1
    return result.to_bytes(size, "little")


def cmd_bitop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BITOP AND|OR|XOR|NOT destkey key [key ...]: the result's length; shorter or missing
    sources count as zero-padded, an empty result deletes the destination (which otherwise
    becomes a plain string without TTL)."""
    op, dest, sources = args[0].lower(), args[1], args[2:]
    if op not in (b"and", b"or", b"xor", b"not"):
        raise fail(SYNTAX)
    if op == b"not" and len(sources) != 1:
        raise fail(NOT_SINGLE)
    values = [get_string(ctx.db, key) or b"" for key in sources]
    size = max(len(v) for v in values)
    if size == 0:
        if ctx.db.delete(dest):
            ctx.notify(GENERIC, "del", dest)
        return Integer(0)
    chunks = [_combine(op, values, at, min(_CHUNK, size - at)) for at in range(0, size, _CHUNK)]
    ctx.db.set_string(dest, b"".join(chunks))
    ctx.notify(STRING, "set", dest)
    return Integer(size)


def _b(since: str, summary: str, complexity: str = "O(1)") -> tuple[str, str, str, str]:
    return ("bitmap", since, complexity, summary)


_ON = "O(N) in the length of the range"

COMMANDS: tuple[CommandSpec, ...] = (
    cmd(
        "setbit",
        4,
        WD,
        K1,
        _b("2.2.0", "Set or clear one bit of a string."),
        "@write @bitmap @slow",
        cmd_setbit,
    ),
    cmd(
        "getbit",
        3,
        RF,
        K1,
        _b("2.2.0", "Read one bit of a string."),
        "@read @bitmap @fast",
        cmd_getbit,
    ),
    cmd(
        "bitcount",
        -2,
        R,
        K1,
        _b("2.6.0", "Count the set bits of a string or a range of it.", _ON),
        "@read @bitmap @slow",
        cmd_bitcount,
    ),
    cmd(
        "bitpos",
        -3,
        R,
        K1,
        _b("2.8.7", "The first set or clear bit of a string or a range of it.", _ON),
        "@read @bitmap @slow",
        cmd_bitpos,
    ),
    cmd(
        "bitop",
        -4,
        WD,
        (2, -1, 1),
        _b("2.6.0", "Combine strings bitwise into a key.", "O(N) in the longest source"),
        "@write @bitmap @slow",
        cmd_bitop,
    ),
    cmd(
        "bitfield",
        -2,
        WD,
        K1,
        _b("3.2.0", "Read, write and add to integer fields of a string.", "O(1) per field"),
        "@write @bitmap @slow",
        bitfield.cmd_bitfield,
    ),
    cmd(
        "bitfield_ro",
        -2,
        RF,
        K1,
        _b("6.0.0", "Read integer fields of a string.", "O(1) per field"),
        "@read @bitmap @fast",
        bitfield.cmd_bitfield_ro,
    ),
)
"""The bitmap group's table entries (gathered into `table.COMMANDS`)."""
