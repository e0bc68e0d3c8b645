"""Redis 7.0's DUMP payload format (RDB version 10): values to bytes and back.

A payload is an RDB object type byte, the serialized value, the 2-byte little-endian RDB
version and the CRC64 (Jones polynomial, reflected, as Redis' crc64) of everything before
it, little-endian. `encode_*` build a payload the way Redis 7.0 would for a freshly built
value with the same contents (its encoding chosen by the same thresholds, strings
integer-encoded or LZF-compressed exactly as `rdbSaveRawString` does); `decode` parses every
encoding Redis 7.0 can load for the types Cairn has (strings, ziplist/listpack/hashtable
hashes, quicklist and ziplist lists, intset/listpack/hashtable sets, ziplist/listpack/
skiplist sorted sets) and returns a plain `Value`. Streams have their own module,
`cairn.store.rdb_stream`; LZF is `cairn.store.lzf` and the listpack codec
`cairn.store.listpack` (both re-exported here, with `BadPayloadError`).

Every byte of a payload is hostile: each length is checked against the bytes that remain
before anything is allocated, and any inconsistency raises `BadPayloadError` (which RESTORE
turns into Redis' "Bad data format"). Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cairn.store.layout import ValueType
from cairn.store.listpack import int_text, lp_entry
from cairn.store.listpack import listpack as listpack
from cairn.store.listpack import parse_listpack as parse_listpack
from cairn.store.lzf import BadPayloadError as BadPayloadError
from cairn.store.lzf import lzf_compress as lzf_compress
from cairn.store.lzf import lzf_decompress as lzf_decompress
from cairn.store.numbers import parse_ll

_T = TypeVar("_T")

RDB_VERSION = 10

T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST = 10, 11, 12, 13
T_LIST_QUICKLIST, T_STREAM, T_HASH_LISTPACK, T_ZSET_LISTPACK = 14, 15, 16, 17
T_LIST_QUICKLIST_2, T_STREAM_2, T_SET_LISTPACK = 18, 19, 20
STREAM_TYPES = frozenset({T_STREAM, T_STREAM_2})

QUICKLIST_NODE_LIMIT = 8192
"""list-max-listpack-size -2: a quicklist node's listpack holds at most 8 KB."""
LZF_MAX_INPUT = 128 * 1024
"""The longest string DUMP compresses. Redis compresses every string over 20 bytes; this
pure-Python LZF costs about 4 s per MB of incompressible input, so a longer string is
written uncompressed (a valid payload Redis loads the same; only its bytes differ). Every
compact encoding (listpacks, intsets, quicklist nodes) is far below it."""
_LZF_MAX_RATIO = 90
"""LZF expands at most 264 bytes from 3: a declared length above this ratio is a lie."""

DECODE_BUDGET = 256 * 1024 * 1024
"""The most memory one payload may decode to (RESTORE): every string's bytes plus
`ELEMENT_COST` per element, charged before the string is read or decompressed and before
a listpack, ziplist or intset is parsed. A 16 MiB payload of LZF strings could otherwise
expand 90 times (1.4 GB), and a listpack of one-byte integers costs a Python object per
two bytes. The same constant on every replica (RESTORE is applied by each), so it is not a
node setting; `decode(payload, budget)` takes another for tests and tools."""

ELEMENT_COST = 64
"""What one decoded element costs in memory beyond its bytes (a bytes object, its slot in
a list, its share of a pair): the charge per element against `DECODE_BUDGET`."""


class PayloadTooLargeError(BadPayloadError):
    """A payload that would decode past its budget (`DECODE_BUDGET`)."""


class Budget:
    """The memory a payload may still decode to; `charge` refuses what would pass it."""

    __slots__ = ("left",)

    def __init__(self, limit: int | None = None) -> None:
        self.left = DECODE_BUDGET if limit is None else limit

    def charge(self, n: int) -> None:
        """Spend `n` bytes, `PayloadTooLargeError` (before anything is allocated) if they
        are not left."""
        if n > self.left:
            raise PayloadTooLargeError("payload decodes past the budget")
        self.left -= n

    def refund(self, n: int) -> None:
        """Give back `n` bytes charged as an upper bound and not used."""
        self.left += n


@dataclass(slots=True)
class Value:
    """A decoded value: `string` for strings, `items` for lists and sets, `pairs` for
    hashes (field, value), `scored` for sorted sets (member, score)."""

    kind: ValueType
    string: bytes = b""
    items: list[bytes] = field(default_factory=list)
    pairs: list[tuple[bytes, bytes]] = field(default_factory=list)
    scored: list[tuple[bytes, float]] = field(default_factory=list)


# -- CRC64 (Jones, reflected) and the footer ------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    poly = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 bit-reversed
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc64(data: bytes, crc: int = 0) -> int:
    """Redis' crc64 of `data` (crc64(0, "123456789") is 0xe9c6d914c4b8d9ca)."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def with_footer(body: bytes) -> bytes:
    """`body` followed by the RDB version and the CRC64 of both."""
    data = body + struct.pack("<H", RDB_VERSION)
    return data + struct.pack("<Q", crc64(data))


def verify_footer(payload: bytes) -> bool:
    """Whether `payload` ends in a version Redis 7.0 loads (<= 10) and a matching CRC."""
    if len(payload) < 10:
        return False
    version = payload[-10] | payload[-9] << 8
    if version > RDB_VERSION:
        return False
    return int(struct.unpack("<Q", payload[-8:])[0]) == crc64(payload[:-8])


# -- RDB lengths and strings ---------------------------------------------------------------


def encode_length(n: int) -> bytes:
    """rdbSaveLen: 6-bit, 14-bit, 32-bit or 64-bit big-endian forms."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | n >> 8, n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def _encode_int(value: int) -> bytes | None:
    if -(1 << 7) <= value < 1 << 7:
        return b"\xc0" + struct.pack("<b", value)
    if -(1 << 15) <= value < 1 << 15:
        return b"\xc1" + struct.pack("<h", value)
    if -(1 << 31) <= value < 1 << 31:
        return b"\xc2" + struct.pack("<i", value)
    return None


def encode_string(data: bytes) -> bytes:
    """rdbSaveRawString with rdbcompression on: an int encoding for a short canonical
    integer, LZF for a compressible string over 20 bytes (up to `LZF_MAX_INPUT`), else
    length and bytes."""
    if len(data) <= 11:
        number = parse_ll(data)
        if number is not None:
            encoded = _encode_int(number)
            if encoded is not None:
                return encoded
    if 20 < len(data) <= LZF_MAX_INPUT:
        packed = lzf_compress(data, len(data) - 4)
        if packed is not None:
            return b"\xc3" + encode_length(len(packed)) + encode_length(len(data)) + packed
    return encode_length(len(data)) + data


class Reader:
    """A cursor over untrusted bytes: every read is bounds-checked."""

    def __init__(
        self, data: bytes, pos: int = 0, end: int | None = None, budget: Budget | None = None
    ) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.budget = Budget() if budget is None else budget

    def elements(
        self, blob: bytes, min_bytes: int, parse: Callable[[bytes], list[_T]]
    ) -> list[_T]:
        """`parse(blob)` for a blob of elements of at least `min_bytes` each: charged for as
        many as it could hold before parsing, the unused part given back after."""
        upper = len(blob) // min_bytes * ELEMENT_COST
        self.budget.charge(upper)
        parsed = parse(blob)
        self.budget.refund(upper - len(parsed) * ELEMENT_COST)
        return parsed

    @property
    def left(self) -> int:
        """Bytes not yet read."""
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        """The next `n` bytes."""
        if n < 0 or n > self.left:
            raise BadPayloadError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        """The next byte."""
        return self.take(1)[0]

    def length(self) -> tuple[int, bool]:
        """An RDB length, and whether it is a special string encoding (then the value is
        the encoding number)."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return (first & 0x3F) << 8 | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return int(struct.unpack(">I", self.take(4))[0]), False
        if first == 0x81:
            return int(struct.unpack(">Q", self.take(8))[0]), False
        raise BadPayloadError("bad length encoding")

    def count(self, min_bytes: int = 1) -> int:
        """An element count, refused when the remaining bytes cannot hold that many."""
        n, special = self.length()
        if special or n * min_bytes > self.left:
            raise BadPayloadError("count out of range")
        self.budget.charge(n * ELEMENT_COST)
        return n

    def string(self) -> bytes:
        """An RDB string in any encoding."""
        n, special = self.length()
        if not special:
            chunk = self.take(n)  # a slice of the payload: checked against its bytes first
            self.budget.charge(n)
            return chunk
        if n == 0:
            return b"%d" % struct.unpack("<b", self.take(1))[0]
        if n == 1:
            return b"%d" % struct.unpack("<h", self.take(2))[0]
        if n == 2:
            return b"%d" % struct.unpack("<i", self.take(4))[0]
        if n != 3:
            raise BadPayloadError("unknown string encoding")
        packed_len = self.count()
        out_len, special = self.length()
        if special or out_len == 0 or out_len > packed_len * _LZF_MAX_RATIO + 64:
            raise BadPayloadError("bad lzf length")
        self.budget.charge(out_len)
        return lzf_decompress(self.take(packed_len), out_len)


# -- ziplist (older payloads) ----------------------------------------------------------------


def parse_ziplist(blob: bytes) -> list[bytes]:
    """The entries of a ziplist blob (what Redis before 7.0 wrote), checked."""
    if len(blob) < 11 or blob[-1] != 0xFF:
        raise BadPayloadError("bad ziplist")
    total, _tail, count = struct.unpack_from("<IIH", blob)
    if total != len(blob):
        raise BadPayloadError("bad ziplist size")
    r = Reader(blob, 10, len(blob) - 1)
    items = []
    while r.left:
        if r.byte() == 0xFE:
            r.take(4)
        items.append(_zl_read(r))
    if count != 65535 and count != len(items):
        raise BadPayloadError("bad ziplist count")
    return items


def _zl_read(r: Reader) -> bytes:
    b = r.byte()
    kind = b >> 6
    if kind == 0:
        return r.take(b & 0x3F)
    if kind == 1:
        return r.take((b & 0x3F) << 8 | r.byte())
    if b == 0x80:
        return r.take(struct.unpack(">I", r.take(4))[0])
    ints = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}
    if b in ints:
        return int_text(r.take(ints[b]), ints[b] * 8)
    if 0xF1 <= b <= 0xFD:
        return b"%d" % ((b & 0x0F) - 1)
    raise BadPayloadError("bad ziplist encoding")


# -- intset ------------------------------------------------------------------------------------


def intset(numbers: list[int]) -> bytes:
    """An intset blob of `numbers` (sorted, the narrowest width that holds them all)."""
    width = 2
    for n in numbers:
        if not -(1 << 15) <= n < 1 << 15:
            width = 4 if -(1 << 31) <= n < 1 << 31 and width <= 4 else 8
    fmt = {2: "<h", 4: "<i", 8: "<q"}[width]
    body = b"".join(struct.pack(fmt, n) for n in sorted(numbers))
    return struct.pack("<II", width, len(numbers)) + body


def parse_intset(blob: bytes) -> list[bytes]:
    """The members of an intset blob, checked (width, length, strictly ascending)."""
    if len(blob) < 8:
        raise BadPayloadError("bad intset")
    width, count = struct.unpack_from("<II", blob)
    fmt = {2: "<h", 4: "<i", 8: "<q"}.get(width)
    if fmt is None or len(blob) != 8 + width * count:
        raise BadPayloadError("bad intset size")
    numbers = [struct.unpack_from(fmt, blob, 8 + i * width)[0] for i in range(count)]
    if any(a >= b for a, b in itertools.pairwise(numbers)):
        raise BadPayloadError("intset not sorted")
    return [b"%d" % n for n in numbers]


# -- values to payloads ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The encoding thresholds DUMP follows (Redis' defaults; a node's OBJECT settings)."""

    hash_entries: int = 512
    hash_value: int = 64
    set_intset_entries: int = 512
    zset_entries: int = 128
    zset_value: int = 64


def dump_string(value: bytes) -> bytes:
    """The payload of a string."""
    return with_footer(bytes([T_STRING]) + encode_string(value))


def dump_hash(pairs: list[tuple[bytes, bytes]], limits: Thresholds) -> bytes:
    """The payload of a hash: a listpack in the given order while small, else a table."""
    small = len(pairs) <= limits.hash_entries and all(
        len(f) <= limits.hash_value and len(v) <= limits.hash_value for f, v in pairs
    )
    if small:
        flat = [x for pair in pairs for x in pair]
        return with_footer(bytes([T_HASH_LISTPACK]) + encode_string(listpack(flat)))
    body = b"".join(encode_string(f) + encode_string(v) for f, v in pairs)
    return with_footer(bytes([T_HASH]) + encode_length(len(pairs)) + body)


def dump_set(members: list[bytes], limits: Thresholds) -> bytes:
    """The payload of a set: an intset when every member is an integer and few enough."""
    numbers = [parse_ll(m) for m in members]
    if len(members) <= limits.set_intset_entries and None not in numbers:
        blob = intset([n for n in numbers if n is not None])
        return with_footer(bytes([T_SET_INTSET]) + encode_string(blob))
    body = b"".join(encode_string(m) for m in members)
    return with_footer(bytes([T_SET]) + encode_length(len(members)) + body)


def score_text(score: float) -> bytes:
    """Redis 7.0's d2string: what a listpack sorted set stores as a member's score."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    if score == 0:
        return b"0"
    if -4503599627370495 < score < 4503599627370496 and score == int(score):
        return b"%d" % int(score)
    return b"%.17g" % score


def dump_zset(scored: list[tuple[bytes, float]], limits: Thresholds) -> bytes:
    """The payload of a sorted set, `scored` in (score, member) order: a listpack while
    small, else ZSET_2 with the members from the highest down, binary doubles."""
    small = len(scored) <= limits.zset_entries and all(
        len(m) <= limits.zset_value for m, _ in scored
    )
    if small:
        flat = [x for m, s in scored for x in (m, score_text(s))]
        return with_footer(bytes([T_ZSET_LISTPACK]) + encode_string(listpack(flat)))
    body = b"".join(encode_string(m) + struct.pack("<d", s) for m, s in reversed(scored))
    return with_footer(bytes([T_ZSET_2]) + encode_length(len(scored)) + body)


def _node_allows(node_bytes: int, item: bytes) -> bool:
    """_quicklistNodeAllowInsert for list-max-listpack-size -2 (Redis 7.0.15 estimates an
    entry's overhead as 8 bytes)."""
    return node_bytes + len(item) + 8 <= QUICKLIST_NODE_LIMIT


def quicklist_nodes(items: list[bytes]) -> list[list[bytes]]:
    """How RPUSH of `items` into a new list fills quicklist nodes (8 KB listpacks)."""
    nodes: list[list[bytes]] = []
    node_bytes = 0
    for item in items:
        if not nodes or not _node_allows(node_bytes, item):
            nodes.append([])
            node_bytes = 7
        nodes[-1].append(item)
        node_bytes += len(lp_entry(item))
    return nodes


def dump_list(items: list[bytes]) -> bytes:
    """The payload of a list: quicklist 2 with packed listpack nodes."""
    nodes = quicklist_nodes(items)
    body = b"".join(b"\x02" + encode_string(listpack(node)) for node in nodes)
    return with_footer(bytes([T_LIST_QUICKLIST_2]) + encode_length(len(nodes)) + body)


# -- payloads to values --------------------------------------------------------------------------


def object_type(payload: bytes) -> int:
    """The RDB object type of a (footer-checked) payload."""
    if len(payload) <= 10:
        raise BadPayloadError("empty payload")
    return payload[0]


def decode(payload: bytes, budget: int | None = None) -> Value:
    """The value a footer-checked payload holds; `BadPayloadError` for anything malformed,
    empty, duplicated, or of a type Cairn does not load (see module docstring);
    `PayloadTooLargeError` (a `BadPayloadError`) for one that decodes past `budget`
    (default `DECODE_BUDGET`)."""
    r = Reader(payload, 1, len(payload) - 10, Budget(budget or DECODE_BUDGET))
    kind = object_type(payload)
    if kind == T_STRING:
        return Value(ValueType.STRING, string=r.string())
    if kind in (T_LIST, T_LIST_ZIPLIST, T_LIST_QUICKLIST, T_LIST_QUICKLIST_2):
        items = _list_items(r, kind)
        return Value(ValueType.LIST, items=_nonempty(items))
    if kind in (T_SET, T_SET_INTSET, T_SET_LISTPACK):
        items = _set_members(r, kind)
        if len(set(items)) != len(items):
            raise BadPayloadError("duplicate set member")
        return Value(ValueType.SET, items=_nonempty(items))
    if kind in (T_HASH, T_HASH_ZIPLIST, T_HASH_LISTPACK):
        pairs = _pairs(r, kind == T_HASH, kind == T_HASH_LISTPACK)
        if len({f for f, _ in pairs}) != len(pairs):
            raise BadPayloadError("duplicate hash field")
        return Value(ValueType.HASH, pairs=_nonempty(pairs))
    if kind in (T_ZSET, T_ZSET_2, T_ZSET_ZIPLIST, T_ZSET_LISTPACK):
        scored = _zset_members(r, kind)
        if len({m for m, _ in scored}) != len(scored):
            raise BadPayloadError("duplicate sorted set member")
        return Value(ValueType.ZSET, scored=_nonempty(scored))
    raise BadPayloadError("unsupported object type")


def _nonempty(items: list[_T]) -> list[_T]:
    if not items:
        raise BadPayloadError("empty value")
    return items


def _list_items(r: Reader, kind: int) -> list[bytes]:
    if kind == T_LIST:
        return [r.string() for _ in range(r.count())]
    if kind == T_LIST_ZIPLIST:
        return r.elements(r.string(), 2, parse_ziplist)
    items: list[bytes] = []
    for _ in range(r.count()):
        if kind == T_LIST_QUICKLIST:
            node = r.elements(r.string(), 2, parse_ziplist)
        else:
            container = r.count(0)
            blob = r.string()
            if container == 1:
                node = [blob]
            elif container == 2:
                node = r.elements(blob, 2, parse_listpack)
            else:
                raise BadPayloadError("bad quicklist container")
        if not node:
            raise BadPayloadError("empty quicklist node")
        items.extend(node)
    return items


def _set_members(r: Reader, kind: int) -> list[bytes]:
    if kind == T_SET:
        return [r.string() for _ in range(r.count())]
    if kind == T_SET_INTSET:
        return r.elements(r.string(), 2, parse_intset)
    return r.elements(r.string(), 2, parse_listpack)


def _pairs(r: Reader, table: bool, packed: bool) -> list[tuple[bytes, bytes]]:
    if table:
        return [(r.string(), r.string()) for _ in range(r.count(2))]
    flat = r.elements(r.string(), 2, parse_listpack if packed else parse_ziplist)
    if len(flat) % 2:
        raise BadPayloadError("odd pair count")
    return list(zip(flat[::2], flat[1::2], strict=True))


def _zset_members(r: Reader, kind: int) -> list[tuple[bytes, float]]:
    if kind == T_ZSET_2:
        rows = [(r.string(), struct.unpack("<d", r.take(8))[0]) for _ in range(r.count(9))]
    elif kind == T_ZSET:
        rows = [(r.string(), _text_score(r)) for _ in range(r.count(2))]
    else:
        blob = r.string()
        flat = r.elements(blob, 2, parse_listpack if kind == T_ZSET_LISTPACK else parse_ziplist)
        if len(flat) % 2:
            raise BadPayloadError("odd pair count")
        rows = [(flat[i], _parse_score(flat[i + 1])) for i in range(0, len(flat), 2)]
    if any(math.isnan(s) for _, s in rows):
        raise BadPayloadError("NaN score")
    return rows


def _text_score(r: Reader) -> float:
    """rdbLoadDoubleValue: a length byte (253 NaN, 254 +inf, 255 -inf) and ASCII."""
    n = r.byte()
    if n == 253:
        return math.nan
    if n == 254:
        return math.inf
    if n == 255:
        return -math.inf
    return _parse_score(r.take(n))


def _parse_score(text: bytes) -> float:
    try:
        value = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadPayloadError("bad score") from None
    if not text or text.strip() != text or b"_" in text:
        raise BadPayloadError("bad score")
    return value
