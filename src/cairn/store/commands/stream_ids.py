"""Stream entry ids: `StreamId` (ms, seq), parsed and formatted exactly as Redis 7.0 does.

An id is two unsigned 64-bit numbers written `<ms>-<seq>`. Stored ids are 16 bytes
big-endian (ms then seq), so byte order is id order and a stream's entries come out of an
ordered scan in id order. Parsing follows Redis's `streamGenericParseIDOrReply`: at most
127 bytes, `-` and `+` (the smallest and largest ids) unless strict, `<ms>` alone takes a
default sequence, and each number is read like Redis's `string2ull` (a canonical signed
64-bit integer that is not negative, else what C's `strtoull` accepts in full).
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from cairn.resp.reply import ErrorReply
from cairn.store.commands.common import fail
from cairn.store.numbers import parse_ll

U64_MAX = 2**64 - 1
INVALID_ID = ErrorReply("ERR Invalid stream ID specified as stream command argument")
_ID = struct.Struct(">QQ")
_MAX_ID_LEN = 127
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


class StreamId(NamedTuple):
    """A stream entry id; tuple order is id order."""

    ms: int
    seq: int

    def encode(self) -> bytes:
        """The 16-byte big-endian form stored in sub-record keys."""
        return _ID.pack(self.ms, self.seq)

    def text(self) -> bytes:
        """`<ms>-<seq>`, as replies show it."""
        return b"%d-%d" % (self.ms, self.seq)

    def next(self) -> StreamId | None:
        """The smallest id greater than this one (None: this is the largest)."""
        if self.seq < U64_MAX:
            return StreamId(self.ms, self.seq + 1)
        if self.ms < U64_MAX:
            return StreamId(self.ms + 1, 0)
        return None

    def previous(self) -> StreamId | None:
        """The largest id smaller than this one (None: this is 0-0)."""
        if self.seq > 0:
            return StreamId(self.ms, self.seq - 1)
        if self.ms > 0:
            return StreamId(self.ms - 1, U64_MAX)
        return None


MIN_ID = StreamId(0, 0)
MAX_ID = StreamId(U64_MAX, U64_MAX)


def decode_id(data: bytes) -> StreamId:
    """The inverse of `StreamId.encode` (reads the first 16 bytes)."""
    ms, seq = _ID.unpack_from(data)
    return StreamId(ms, seq)


def parse_u64(data: bytes) -> int | None:
    """An unsigned 64-bit number as Redis's `string2ull` reads it, None if invalid."""
    value = parse_ll(data)
    if value is not None:
        return value if value >= 0 else None
    match = _STRTOULL.fullmatch(data)
    if match is None:
        return None
    number = int(match.group(2))
    if number > U64_MAX:
        return None
    return (-number) % (U64_MAX + 1) if match.group(1) == b"-" else number


def parse_id(
    data: bytes, missing_seq: int = 0, strict: bool = False, seq_star: bool = False
) -> tuple[StreamId, bool]:
    """(id, whether its sequence was given) from an argument; INVALID_ID otherwise.

    `missing_seq` is the sequence of a bare `<ms>`; `strict` refuses `-` and `+`;
    `seq_star` accepts XADD's `<ms>-*` (sequence 0, not given)."""
    if len(data) > _MAX_ID_LEN:
        raise fail(INVALID_ID)
    data = data.partition(b"\0")[0]  # Redis parses a C string copy of the argument
    if data in (b"-", b"+"):
        if strict:
            raise fail(INVALID_ID)
        return (MIN_ID if data == b"-" else MAX_ID), True
    head, dash, tail = data.partition(b"-")
    ms = parse_u64(head)
    if ms is None:
        raise fail(INVALID_ID)
    if not dash:
        return StreamId(ms, missing_seq), True
    if seq_star and tail == b"*":
        return StreamId(ms, 0), False
    seq = parse_u64(tail)
    if seq is None:
        raise fail(INVALID_ID)
    return StreamId(ms, seq), True


def strict_id(data: bytes, missing_seq: int = 0) -> StreamId:
    """An id argument where `-` and `+` are not allowed (XDEL, XSETID, XREAD, MINID)."""
    return parse_id(data, missing_seq, strict=True)[0]


def interval_id(data: bytes, missing_seq: int) -> tuple[StreamId, bool]:
    """(id, exclusive) for a range bound: `(<id>` is exclusive (and strict), else the
    plain form with `-`/`+` allowed (`streamParseIntervalIDOrReply`)."""
    if len(data) > 1 and data[:1] == b"(":
        return strict_id(data[1:], missing_seq), True
    return parse_id(data, missing_seq)[0], False


_BAD_START = ErrorReply("ERR invalid start ID for the interval")
_BAD_END = ErrorReply("ERR invalid end ID for the interval")


def interval_start(data: bytes) -> StreamId:
    """The first id a range starting at bound `data` includes (`(id` excludes `id`)."""
    start, exclusive = interval_id(data, 0)
    if not exclusive:
        return start
    following = start.next()
    if following is None:
        raise fail(_BAD_START)
    return following


def interval_end(data: bytes) -> StreamId:
    """The last id a range ending at bound `data` includes (`(id` excludes `id`)."""
    end, exclusive = interval_id(data, MAX_ID.seq)
    if not exclusive:
        return end
    preceding = end.previous()
    if preceding is None:
        raise fail(_BAD_END)
    return preceding
