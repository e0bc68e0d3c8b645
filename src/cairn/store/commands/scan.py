"""SCAN and HSCAN cursors over the ordered keyspace.

A cursor is a decimal integer, as clients expect, that encodes a position in key order:

* keys: 0 starts (and ends) the scan; 1..16383 means "from the first key of that slot";
  a larger cursor is the big-endian integer of `0x01 | slot (2 bytes) | key` and means
  "after that key", or of `0x02 | slot (2 bytes) | key` and means "from that key on"
  (a region's end bound inside a slot). A reply stops at a slot boundary whenever it can,
  so cursors stay small unless a single slot holds more keys than COUNT.

Regions. A cursor names a position in the global (slot, key) order, never a region, so it
survives splits and merges between calls. `cursor_range_key` is that position as a range
key: the router sends SCAN to the region containing it (a region refuses a cursor outside
its range, like a key). A region walks only its own range; when it runs out, the cursor it
returns is its end bound (slot cursor, "from" cursor, or 0 after the last region), so the
client's next call goes to the next region. A call may therefore return no keys with a
non-zero cursor at a region boundary, which SCAN's contract already allows.
* hash fields: 0 starts; otherwise the integer of `0x01 | field`, "after that field".

Because the position is a key, not an offset, a scan is immune to keys being added or
removed between calls: every key present for the whole scan is returned (exactly once,
in fact; Redis only promises at least once), and a key added or removed meanwhile may or
may not be. COUNT bounds the records visited, expired and filtered ones included, like
Redis' bucket count, so a call may return fewer keys than COUNT, even none, with a non-zero
cursor. Any integer is accepted as a cursor; one not made by Cairn resumes somewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import Array, Bulk, Reply
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.errors import CommandError
from cairn.store.commands.spec import INVALID_CURSOR, SYNTAX
from cairn.store.db import Db
from cairn.store.glob import stringmatch
from cairn.store.layout import META_TAG, slot_start
from cairn.store.scope import Scope
from cairn.store.slot import SLOT_COUNT

_CURSOR_RE = re.compile(rb"[+-]?[0-9]+")
_MARK = b"\x01"
_AT_MARK = b"\x02"
SMALL_HASH = 128
"""Hashes with at most this many fields are returned whole by one HSCAN call (cursor 0),
as Redis does for its compact (listpack) hashes."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """MATCH, COUNT and TYPE of a SCAN-family call."""

    count: int = 10
    pattern: bytes | None = None
    type_name: bytes | None = None

    def matches(self, name: bytes) -> bool:
        """Whether `name` passes MATCH."""
        return self.pattern is None or stringmatch(self.pattern, name)


def parse_cursor(data: bytes) -> int:
    """A cursor argument; `ERR invalid cursor` unless it is a decimal integer (a negative
    one wraps around like C's `strtoul`)."""
    if _CURSOR_RE.fullmatch(data) is None:
        raise fail(INVALID_CURSOR)
    value = int(data)
    return value % 2**64 if value < 0 else value


def parse_options(args: Sequence[bytes], allow_type: bool) -> ScanOptions:
    """The options after the cursor, parsed in Redis' order and with its errors."""
    count, pattern, type_name = 10, None, None
    i = 0
    while i < len(args):
        opt, has_value = args[i].lower(), i + 1 < len(args)
        if opt == b"count" and has_value:
            count = int_arg(args[i + 1])
            if count < 1:
                raise fail(SYNTAX)
        elif opt == b"match" and has_value:
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        elif opt == b"type" and allow_type and has_value:
            type_name = args[i + 1].lower()
        else:
            raise fail(SYNTAX)
        i += 2
    return ScanOptions(count, pattern, type_name)


def _cursor_bytes(cursor: int) -> bytes:
    return cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")


def key_position(cursor: int) -> bytes:
    """The internal position a key cursor resumes at."""
    if cursor < SLOT_COUNT:
        return slot_start(cursor)
    raw = _cursor_bytes(cursor)
    if raw[:1] == _MARK and len(raw) >= 3:
        return META_TAG + raw[1:] + b"\x00"
    if raw[:1] == _AT_MARK and len(raw) >= 3:
        return META_TAG + raw[1:]
    return slot_start(cursor % SLOT_COUNT)


def cursor_range_key(cursor: bytes) -> bytes | None:
    """The range key a SCAN cursor argument resumes at (the router sends the call to the
    region containing it); None for an invalid cursor."""
    try:
        return key_position(parse_cursor(cursor))[1:]
    except CommandError:
        return None


def end_cursor(scope: Scope) -> int:
    """The cursor of the first position after `scope`: where the next region's part of the
    scan starts (0: none, the scan is over)."""
    if not scope.end:
        return 0
    if len(scope.end) == 2 and scope.end != b"\0\0":
        return int.from_bytes(scope.end, "big")
    return int.from_bytes(_AT_MARK + scope.end, "big")


def scan_keys(db: Db, cursor: int, opts: ScanOptions) -> tuple[int, list[bytes]]:
    """One SCAN step: the next cursor and the live keys it returns."""
    position = key_position(cursor)
    db.scope.check_position(position[1:])
    entries = db.walk(position, opts.count)
    keys = [
        e.key
        for e in entries
        if not e.meta.expired(db.now_ms)
        and opts.matches(e.key)
        and (opts.type_name is None or opts.type_name == e.meta.type.type_name.encode())
    ]
    if len(entries) < opts.count:
        return end_cursor(db.scope), keys
    last = entries[-1]
    following = db.walk(last.position + b"\x00", 1)
    if not following:
        return end_cursor(db.scope), keys
    if following[0].slot != last.slot:
        return following[0].slot, keys
    return int.from_bytes(_MARK + last.position[1:], "big"), keys


def field_start(cursor: int) -> bytes:
    """The first field a hash cursor resumes at."""
    raw = _cursor_bytes(cursor)
    return raw[1:] + b"\x00" if raw[:1] == _MARK else b""


def scan_fields(
    db: Db,
    key: bytes,
    size: int,
    cursor: int,
    opts: ScanOptions,
    family: tuple[bytes, bytes] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]]]:
    """One HSCAN step over hash `key` of `size` fields: next cursor and matching pairs.
    `family`: the [prefix, end) of the sub-records walked (a set's members), the prefix
    left out of the names returned and of the cursor; None: every sub-record."""
    prefix, end = family if family is not None else (b"", None)
    whole = size <= SMALL_HASH
    start = prefix if whole else prefix + field_start(cursor)
    rows = db.fields(key, start, None if whole else opts.count + 1, end)
    if prefix:
        rows = [(f[len(prefix) :], v) for f, v in rows]
    more = not whole and len(rows) > opts.count
    rows = rows[: opts.count] if more else rows
    pairs = [(f, v) for f, v in rows if opts.matches(f)]
    return (int.from_bytes(_MARK + rows[-1][0], "big") if more else 0), pairs


def scan_reply(cursor: int, items: Sequence[bytes]) -> Reply:
    """The two-element reply of a SCAN-family call."""
    return Array((Bulk(b"%d" % cursor), Array(tuple(Bulk(i) for i in items))))
