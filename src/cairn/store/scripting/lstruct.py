"""Redis 7.0's `struct` library (Roberto Ierusalimschy's lua_struct 0.2, as Redis bundles
it), in Python: `pack`, `unpack` and `size` with its format options and error texts, for
Redis's platform (x86-64: little endian native order, int 4 bytes, long and size_t 8,
maximum alignment 8).

Options: ``<`` ``>`` ``=`` byte order, ``!n`` alignment, ``x`` a zero byte, ``b B h H l L T
i[n] I[n]`` integers (``i``/``I`` n bytes, at most 32), ``f d`` floats, ``s`` a
zero-terminated string, ``c[n]`` n bytes (``c0``: the whole string when packing, the size
given by the previous value when unpacking), spaces ignored. A format is at most as long
as its Lua string; the work is linear in it and in the data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_INT_SIZE = 32
MAX_ALIGN = 8
FLT_MAX = 3.4028234663852886e38
_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8, "x": 1}
_INTEGERS = frozenset("bBhHlLTiI")


class StructError(Exception):
    """The library's message; `argument` the argument it names (0: none, a plain error)."""

    def __init__(self, message: str, argument: int = 0) -> None:
        super().__init__(message)
        self.argument = argument


@dataclass
class _Format:
    text: bytes
    pos: int = 0
    little: bool = True
    align: int = 1

    def number(self, default: int) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos : self.pos + 1].isdigit():
            self.pos += 1
        if start == self.pos:
            return default
        value = int(self.text[start : self.pos])
        if value > 2**31 - 1:
            raise StructError("integral size overflow")
        return value

    def size(self, opt: str) -> int:
        if opt in _SIZES:
            return _SIZES[opt]
        if opt == "c":
            return self.number(1)
        if opt in "iI":
            size = self.number(4)
            if size > MAX_INT_SIZE:
                raise StructError(f"integral size {size} is larger than limit of {MAX_INT_SIZE}")
            return size
        return 0

    def to_align(self, length: int, opt: str, size: int) -> int:
        if size == 0 or opt == "c":
            return 0
        size = min(size, self.align)
        return (size - (length & (size - 1))) & (size - 1)

    def control(self, opt: str) -> None:
        if opt == " ":
            return
        if opt in "<>=":
            self.little = opt != ">"
            return
        if opt == "!":
            align = self.number(MAX_ALIGN)
            if align & (align - 1) or align == 0:
                raise StructError(f"alignment {align} is not a power of 2")
            self.align = align
            return
        raise StructError(f"invalid format option '{opt}'", 1)


def _options(fmt: _Format) -> Any:
    while fmt.pos < len(fmt.text):
        opt = chr(fmt.text[fmt.pos])
        fmt.pos += 1
        yield opt, fmt.size(opt)


def _number(args: Sequence[Any], at: int) -> float:
    value = args[at - 1] if at <= len(args) else None
    if isinstance(value, bytes):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    got = "nil" if at > len(args) else _kind(value)  # lua_struct's pack pushed a nil there
    raise StructError(f"number expected, got {got}", at)


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, bytes) else "table"


def _integer(value: float, size: int, little: bool) -> bytes:
    n = int(value) if value == value and abs(value) < 2**64 else 0
    n &= (1 << 64) - 1
    data = (n & ((1 << (8 * size)) - 1) if size < 8 else n).to_bytes(max(size, 8), "little")
    data = data[:size]
    return data if little else data[::-1]


def pack(fmt_text: bytes, args: Sequence[Any]) -> bytes:
    """`struct.pack(fmt, ...)` (`args` after the format)."""
    fmt, out, total, at = _Format(fmt_text), bytearray(), 0, 2
    values = [fmt_text, *args]
    for opt, size in _options(fmt):
        pad = fmt.to_align(total, opt, size)
        out += b"\0" * pad
        total += pad
        if opt in _INTEGERS:
            out += _integer(_number(values, at), size, fmt.little)
            at += 1
        elif opt == "x":
            out += b"\0"
        elif opt in "fd":
            code = ("<" if fmt.little else ">") + opt
            number = _number(values, at)
            if opt == "f" and abs(number) > FLT_MAX and number == number:
                number = math.copysign(math.inf, number)  # C's (float) of a huge double
            out += struct.pack(code, number)
            at += 1
        elif opt in "cs":
            data = values[at - 1] if at <= len(values) else None
            if isinstance(data, int | float) and not isinstance(data, bool):
                data = b"%.14g" % data
            if not isinstance(data, bytes):
                got = "no value" if at > len(values) else _kind(data)
                raise StructError(f"string expected, got {got}", at)
            at += 1
            size = size or len(data)
            if len(data) < size:
                raise StructError("string too short", at)
            out += data[:size]
            if opt == "s":
                out += b"\0"
                size += 1
        else:
            fmt.control(opt)
        total += size
    return bytes(out)


def unpack(fmt_text: bytes, data: bytes, init: int) -> list[Any]:
    """`struct.unpack(fmt, data [, init])`: the values, then the next position."""
    fmt, pos, values = _Format(fmt_text), init - 1, list[Any]()
    if not 0 <= pos <= len(data):
        raise StructError("offset must be 1 or greater", 3)
    for opt, size in _options(fmt):
        pos += fmt.to_align(pos, opt, size)
        if not (size <= len(data) and pos <= len(data) - size):
            raise StructError("data string too short", 2)
        if opt in _INTEGERS:
            raw = data[pos : pos + size]
            n = int.from_bytes(raw if fmt.little else raw[::-1], "little") & ((1 << 64) - 1)
            bits = min(size * 8, 64)
            if opt.islower() and n & (1 << (bits - 1)):
                n -= 1 << bits
            values.append(float(n))
        elif opt in "fd":
            code = ("<" if fmt.little else ">") + opt
            values.append(struct.unpack(code, data[pos : pos + size])[0])
        elif opt == "c":
            if size == 0:
                if not values or not isinstance(values[-1], float):
                    raise StructError("format 'c0' needs a previous size")
                size = int(values.pop())
                if not (size <= len(data) and pos <= len(data) - size):
                    raise StructError("data string too short", 2)
            values.append(data[pos : pos + size])
        elif opt == "s":
            end = data.find(b"\0", pos)
            if end < 0:
                raise StructError("unfinished string in data")
            size = end - pos + 1
            values.append(data[pos:end])
        elif opt != "x":
            fmt.control(opt)
        pos += size
    values.append(pos + 1)
    return values


def size(fmt_text: bytes) -> int:
    """`struct.size(fmt)`."""
    fmt, pos = _Format(fmt_text), 0
    for opt, length in _options(fmt):
        pos += fmt.to_align(pos, opt, length)
        if opt == "s":
            raise StructError("option 's' has no fixed size", 1)
        if opt == "c" and length == 0:
            raise StructError("option 'c0' has no fixed size", 1)
        if opt not in _SIZES and opt not in "ciI":
            fmt.control(opt)
        pos += length
    return pos
