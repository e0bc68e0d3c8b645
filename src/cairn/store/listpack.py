"""Redis 7.0's listpack: the compact list of strings and integers that hashes, sorted sets,
quicklist nodes and stream nodes serialize as. Moved out of `cairn.store.rdb`.

A listpack is a 4-byte total size, a 2-byte element count (65535: "too many to count"),
the entries and a 0xFF terminator. Each entry is an encoding header with its data (7-bit
unsigned, 13/16/24/32/64-bit signed integers, 6-bit/12-bit/32-bit length strings)
followed by its "backlen", the entry's own size in 7-bit groups so the list can be walked
backwards. `lp_entry` encodes a string the way `lpAppend` does (an integer encoding for a
canonical integer, as `lpStringToInt64` accepts it), so what we build is byte-identical
to Redis'. `parse_listpack` reads untrusted bytes: every header, length and backlen is
checked against the blob before anything is sliced. Pure: no I/O.
"""

from __future__ import annotations

import struct

from cairn.store.lzf import BadPayloadError
from cairn.store.numbers import parse_ll

HEADER_SIZE = 6
"""Total size (4 bytes) and element count (2 bytes)."""
COUNT_UNKNOWN = 65535
"""The element count a listpack with that many elements or more records."""
_INT_WIDTHS = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}


def backlen(n: int) -> bytes:
    """lpEncodeBacklen: `n` in 7-bit groups, most significant first, the high bit set on
    every byte but the first (its size thresholds are Redis', 16383 takes 3 bytes)."""
    if n <= 127:
        return bytes([n])
    size = 2 if n < 16383 else 3 if n < 2097151 else 4 if n < 268435455 else 5
    groups = [(n >> (7 * i)) & 127 for i in range(size)]
    return bytes([groups[-1]] + [g | 128 for g in reversed(groups[:-1])])


def _int_head(number: int) -> bytes:
    """The narrowest integer encoding of `number` (a signed 64-bit value)."""
    if 0 <= number <= 127:
        return bytes([number])
    if -4096 <= number <= 4095:
        v = number & 0x1FFF
        return bytes([0xC0 | v >> 8, v & 0xFF])
    if -(1 << 15) <= number < 1 << 15:
        return b"\xf1" + struct.pack("<h", number)
    if -(1 << 23) <= number < 1 << 23:
        return b"\xf2" + (number & 0xFFFFFF).to_bytes(3, "little")
    if -(1 << 31) <= number < 1 << 31:
        return b"\xf3" + struct.pack("<i", number)
    return b"\xf4" + struct.pack("<q", number)


def lp_entry(item: bytes) -> bytes:
    """One entry (header, data, backlen) holding `item` as `lpAppend` stores it."""
    number = parse_ll(item)
    if number is not None:
        head = _int_head(number)
    elif len(item) < 64:
        head = bytes([0x80 | len(item)]) + item
    elif len(item) < 4096:
        head = bytes([0xE0 | len(item) >> 8, len(item) & 0xFF]) + item
    else:
        head = b"\xf0" + struct.pack("<I", len(item)) + item
    return head + backlen(len(head))


def _encode_int(number: int) -> bytes:
    head = _int_head(number)
    return head + backlen(len(head))


_SMALL_INTS = tuple(_encode_int(n) for n in range(-4096, 4096))
"""The entries of the 13-bit integers, precomputed: stream nodes are mostly these."""


def int_entry(number: int) -> bytes:
    """One entry holding the integer `number` (`lpAppendInteger`)."""
    if -4096 <= number < 4096:
        return _SMALL_INTS[number + 4096]
    return _encode_int(number)


def pack(entries: list[bytes], count: int) -> bytes:
    """A listpack of already encoded `entries` holding `count` elements."""
    body = b"".join(entries)
    total = HEADER_SIZE + len(body) + 1
    return struct.pack("<IH", total, min(count, COUNT_UNKNOWN)) + body + b"\xff"


def listpack(items: list[bytes]) -> bytes:
    """A listpack of `items` as lpAppend builds it (integers in their int encodings)."""
    return pack([lp_entry(item) for item in items], len(items))


def int_text(raw: bytes, bits: int) -> bytes:
    """The decimal text of the little-endian two's complement integer `raw`."""
    value = int.from_bytes(raw, "little")
    if value >= 1 << (bits - 1):
        value -= 1 << bits
    return b"%d" % value


def parse_listpack(blob: bytes) -> list[bytes]:
    """The entries of a listpack blob (integers as their decimal text), every header,
    length and backlen checked."""
    if len(blob) < HEADER_SIZE + 1 or blob[-1] != 0xFF:
        raise BadPayloadError("bad listpack")
    total, count = struct.unpack_from("<IH", blob)
    if total != len(blob):
        raise BadPayloadError("bad listpack size")
    pos, end = HEADER_SIZE, len(blob) - 1
    items = []
    while pos < end:
        item, after = _read_entry(blob, pos, end)
        back = backlen(after - pos)
        if after + len(back) > end or blob[after : after + len(back)] != back:
            raise BadPayloadError("bad listpack backlen")
        items.append(item)
        pos = after + len(back)
    if count != COUNT_UNKNOWN and count != len(items):
        raise BadPayloadError("bad listpack count")
    return items


def _slice(blob: bytes, start: int, size: int, end: int) -> bytes:
    if start + size > end:
        raise BadPayloadError("listpack entry overruns")
    return blob[start : start + size]


def _read_entry(blob: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The entry at `pos` (before `end`) and where its data ends (its backlen starts)."""
    b = blob[pos]
    if b < 0x80:
        return b"%d" % b, pos + 1
    if b < 0xC0:
        size = b & 0x3F
        return _slice(blob, pos + 1, size, end), pos + 1 + size
    if b < 0xE0:
        low = _slice(blob, pos + 1, 1, end)
        return int_text(low + bytes([b & 0x1F]), 13), pos + 2
    if b < 0xF0:
        size = (b & 0x0F) << 8 | _slice(blob, pos + 1, 1, end)[0]
        return _slice(blob, pos + 2, size, end), pos + 2 + size
    if b == 0xF0:
        size = struct.unpack("<I", _slice(blob, pos + 1, 4, end))[0]
        return _slice(blob, pos + 5, size, end), pos + 5 + size
    width = _INT_WIDTHS.get(b)
    if width is None:
        raise BadPayloadError("bad listpack encoding")
    return int_text(_slice(blob, pos + 1, width, end), width * 8), pos + 1 + width
