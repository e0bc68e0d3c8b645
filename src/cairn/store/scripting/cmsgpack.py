"""Redis 7.0's `cmsgpack` (lua_cmsgpack 0.4.0) encodings, in Python: `pack` of Lua
values and `unpack` of MessagePack bytes into Lua values.

Packing as cmsgpack does: a number equal to an int64 is the smallest integer encoding
(positive and negative fixnums, 0xcc-0xcf, 0xd0-0xd3), any other a float32 when exact,
else a float64; strings as fixstr/str8/str16/str32; a table whose keys are exactly 1..n
an array (the empty table too), any other a map; nested past 16 tables, functions and
userdata as nil. Unpacking reads every standard type but the extensions; truncated input
is "Missing bytes in input.", an unknown type "Bad data format in input.". Work is
charged as it goes (`charge`), element by element, so a header that claims four billion
elements costs only what the input really holds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from cairn.store.scripting.sandbox import lua_type

MAX_NESTING = 16
"""Tables nested deeper are packed as nil (cmsgpack's LUACMSGPACK_MAX_NESTING)."""
MAX_UNPACK_DEPTH = 1000  # three Python frames a level: see `libs.RECURSION_LIMIT`
"""How deeply nested a structure `unpack` reads (cmsgpack recurses in C without a
bound; Cairn refuses deeper input as bad data)."""


class MsgpackError(Exception):
    """cmsgpack's error text."""


def _int(n: int) -> bytes:
    if n >= 0:
        if n <= 127:
            return bytes((n,))
        for code, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF), (0xCE, ">I", 2**32 - 1)):
            if n <= top:
                return bytes((code,)) + struct.pack(fmt, n)
        return b"\xcf" + struct.pack(">Q", n)
    if n >= -32:
        return bytes((n & 0xFF,))
    for code, fmt, low in ((0xD0, ">b", -128), (0xD1, ">h", -32768), (0xD2, ">i", -(2**31))):
        if n >= low:
            return bytes((code,)) + struct.pack(fmt, n)
    return b"\xd3" + struct.pack(">q", n)


def _number(value: float) -> bytes:
    finite = not math.isinf(value) and not math.isnan(value)
    if finite and -(2.0**63) <= value < 2.0**63 and int(value) == value:
        return _int(int(value))
    single = struct.unpack(">f", struct.pack(">f", value))[0] if abs(value) < 3.5e38 else None
    if single is not None and (single == value or (math.isnan(value) and math.isnan(single))):
        return b"\xca" + struct.pack(">f", value)
    return b"\xcb" + struct.pack(">d", value)


def _string(data: bytes) -> bytes:
    n = len(data)
    if n < 32:
        return bytes((0xA0 | n,)) + data
    if n <= 0xFF:
        return b"\xd9" + bytes((n,)) + data
    if n <= 0xFFFF:
        return b"\xda" + struct.pack(">H", n) + data
    return b"\xdb" + struct.pack(">I", n) + data


def _header(n: int, fix: int, code16: int) -> bytes:
    if n <= 15:
        return bytes((fix | n,))
    if n <= 0xFFFF:
        return bytes((code16,)) + struct.pack(">H", n)
    return bytes((code16 + 1,)) + struct.pack(">I", n)


def pack(values: tuple[Any, ...], charge: Callable[[int], None]) -> bytes:
    """`cmsgpack.pack(...)`: every value packed, one after another."""
    out: list[bytes] = []
    for value in values:
        _pack(value, 0, out, charge)
    return b"".join(out)


def _pack(value: Any, level: int, out: list[bytes], charge: Callable[[int], None]) -> None:
    charge(1)
    if isinstance(value, bool):
        out.append(b"\xc3" if value else b"\xc2")
    elif isinstance(value, int | float):
        out.append(_number(float(value)))
    elif isinstance(value, bytes):
        charge(len(value) // 1024)  # in values: a byte costs 1/16 of a unit
        out.append(_string(value))
    elif lua_type(value) == "table" and level < MAX_NESTING:
        _table(value, level, out, charge)
    else:
        out.append(b"\xc0")


def _table(table: Any, level: int, out: list[bytes], charge: Callable[[int], None]) -> None:
    keys = list(table.keys())
    charge(len(keys))
    if _is_array(keys):
        out.append(_header(len(keys), 0x90, 0xDC))
        for i in range(1, len(keys) + 1):
            _pack(table[i], level + 1, out, charge)
        return
    out.append(_header(len(keys), 0x80, 0xDE))
    for key in keys:
        _pack(key, level + 1, out, charge)
        _pack(table[key], level + 1, out, charge)


def _is_array(keys: list[Any]) -> bool:
    largest = 0
    for key in keys:
        if isinstance(key, bytes):
            try:
                key = float(key)
            except ValueError:
                return False
        if isinstance(key, bool) or not isinstance(key, int | float):
            return False
        if key <= 0 or key != int(key) or key >= 2**31:
            return False
        largest = max(largest, int(key))
    return largest == len(keys)


# -- unpacking ------------------------------------------------------------------------------

MakeTable = Callable[[Any], Any]
_FIXED = {
    0xCC: ">B",
    0xCD: ">H",
    0xCE: ">I",
    0xCF: ">Q",
    0xD0: ">b",
    0xD1: ">h",
    0xD2: ">i",
    0xD3: ">q",
    0xCA: ">f",
    0xCB: ">d",
}
_SIZED = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}


class _Reader:
    def __init__(self, data: bytes, pos: int, make_table: MakeTable) -> None:
        self.data, self.pos, self.make_table = data, pos, make_table

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MsgpackError("Missing bytes in input.")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def value(self, depth: int) -> Any:
        code = self.take(1)[0]
        if code <= 0x7F:
            return code
        if code >= 0xE0:
            return code - 0x100
        if 0xA0 <= code <= 0xBF:
            return self.take(code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return self.array(code & 0x0F, depth)
        if 0x80 <= code <= 0x8F:
            return self.map(code & 0x0F, depth)
        if code in _FIXED:
            fmt = _FIXED[code]
            value = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
            return float(value) if code == 0xCF else value
        if code in _SIZED:
            fmt = _SIZED[code]
            return self.take(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])
        if code in (0xDC, 0xDD, 0xDE, 0xDF):
            fmt = ">H" if code in (0xDC, 0xDE) else ">I"
            n = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
            return self.array(n, depth) if code <= 0xDD else self.map(n, depth)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if code in simple:
            return simple[code]
        raise MsgpackError("Bad data format in input.")

    def array(self, n: int, depth: int) -> Any:
        if depth >= MAX_UNPACK_DEPTH:
            raise MsgpackError("Bad data format in input.")
        items = [self.value(depth + 1) for _ in range(n)]
        return self.make_table(items)

    def map(self, n: int, depth: int) -> Any:
        if depth >= MAX_UNPACK_DEPTH:
            raise MsgpackError("Bad data format in input.")
        entries: dict[Any, Any] = {}
        for _ in range(n):
            key = self.value(depth + 1)
            value = self.value(depth + 1)
            if key is not None and not (isinstance(key, float) and math.isnan(key)):
                entries[key] = value
        return self.make_table(entries)


def unpack(data: bytes, offset: int, limit: int, make_table: MakeTable) -> tuple[list[Any], int]:
    """The values of `data` from `offset` (at most `limit`, 0: all), and where reading
    stopped."""
    if offset < 0 or limit < 0:
        raise MsgpackError(
            f"Invalid request to unpack with offset of {offset} and limit of {limit}."
        )
    if offset > len(data):
        raise MsgpackError(f"Start offset {offset} greater than input length {len(data)}.")
    reader, values = _Reader(data, offset, make_table), list[Any]()
    while reader.pos < len(data) and (limit == 0 or len(values) < limit):
        values.append(reader.value(0))
    return values, reader.pos
