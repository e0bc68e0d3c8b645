"""SORT and SORT_RO over lists, sets and sorted sets, with Redis 7.0's options and replies.

Elements sort by number (each read with C's `strtod`, as Redis reads them: `strtod` below
is glibc's, ERANGE included; ties broken by the element's bytes) or with ALPHA by bytes
(Redis compares with `strcoll`, which in the C locale of a default redis-server is byte
order). `BY pattern` weighs each element by the key (or `key->field` of a hash) the pattern
names with the element in place of its first `*`; `BY` a pattern without `*` sorts nothing
(a list or sorted set keeps its order, DESC reverses it, LIMIT reads only what it selects);
`GET pattern` (and `GET #`, the element) builds the reply; `STORE destination` replaces the
destination with a list of the result (deleted when empty, without TTL) and answers its
length. LIMIT is clamped exactly as Redis clamps it.

Cluster rule. A region's machine may read only its own keys (every replica of a region
must compute the same thing, and other regions are not on the same nodes), so a BY or GET
pattern must name keys of the sorted key's slot: its first `{tag}` closes before any
wildcard and hashes to that slot (`SORT {u}list BY {u}w_*`). Other patterns get Redis
Cluster's error (the 7.2 wording: Redis Cluster 7.0 refused every BY pattern with a `*` and
every GET, `ERR BY option of SORT denied in Cluster mode.`); `GET #` and patterns without a
`*`, which read no key, are always served. The STORE destination is a key of the command
(`sort_keys`), so it is routed with the sorted key (CROSSSLOT across regions).

Cost: the whole value is read and sorted (O(N log N), like Redis), except BY a constant on
a list or sorted set, which reads O(offset + count) records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from cairn.resp.reply import NULL, Array, Bulk, ErrorReply, Integer, Reply
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.spec import SYNTAX, WRONGTYPE, Ctx
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC, LIST
from cairn.store.set_records import MEMBER as SET_MEMBER
from cairn.store.set_records import MEMBER_END as SET_END
from cairn.store.slot import SLOT_COUNT, crc16, key_slot
from cairn.store.zset_records import INDEX, MEMBER, by_score

_SPACE = b" \t\n\v\f\r"
_FLOAT = re.compile(
    rb"([ \t\n\v\f\r]*)([+-]?)(?:"
    rb"(0x(?=\.?[0-9a-f])[0-9a-f]*(?:\.[0-9a-f]*)?(?:p[+-]?[0-9]+)?)"
    rb"|((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)"
    rb"|(inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)"
    rb")",
    re.IGNORECASE,
)
_SMALLEST_NORMAL = 2.2250738585072014e-308


def strtod(data: bytes) -> tuple[float, int, bool] | None:
    """glibc's `strtod` on the C string `data` (it ends at a NUL byte): (value, bytes
    consumed, whether it set ERANGE), or None when nothing converts.

    ERANGE is set on overflow (a finite number too large: the value is +-inf) and on
    underflow (a result that is zero or subnormal and not exact), as glibc does. Decimal
    and hexadecimal forms, `inf`/`infinity` and `nan`/`nan(...)` are read, after leading
    white space, like C; Python's float parsing is correctly rounded, like glibc's.
    """
    match = _FLOAT.match(data.split(b"\0", 1)[0])
    if match is None:
        return None
    negative = match.group(2) == b"-"
    hex_text, dec_text, word = match.group(3), match.group(4), match.group(5)
    if word is not None:
        special = float("nan") if word[:1].lower() == b"n" else float("inf")
        return -special if negative else special, match.end(), False
    is_hex = hex_text is not None
    text = (hex_text if is_hex else dec_text).decode()
    try:
        value = float.fromhex(text) if is_hex else float(text)
    except OverflowError:
        value = float("inf")
    erange = _out_of_range(value, text, is_hex)
    return -value if negative else value, match.end(), erange


def _out_of_range(value: float, text: str, is_hex: bool) -> bool:
    """Whether glibc sets ERANGE for `text` read as `value` (non-negative)."""
    if value == float("inf"):
        return True
    if value >= _SMALLEST_NORMAL:
        return False
    mantissa = text[2:].lower().partition("p")[0] if is_hex else text.lower().partition("e")[0]
    if value == 0.0:
        return any(c not in "0." for c in mantissa)
    exact = _hex_fraction(text) if is_hex else _decimal_fraction(text)
    return exact != Fraction(value)


def _decimal_fraction(text: str) -> Fraction:
    mantissa, _, exponent = text.lower().partition("e")
    whole, _, part = mantissa.partition(".")
    digits = int((whole + part) or "0")
    if digits == 0:
        return Fraction(0)
    return Fraction(digits) * Fraction(10) ** (int(exponent or "0") - len(part))


def _hex_fraction(text: str) -> Fraction:
    mantissa, _, exponent = text[2:].lower().partition("p")
    whole, _, part = mantissa.partition(".")
    digits = int((whole + part) or "0", 16)
    return Fraction(digits) * Fraction(2) ** (int(exponent or "0") - 4 * len(part))


# -- SORT ------------------------------------------------------------------------------------

LIST_ORIGIN = 1 << 63
"""The head position of a list SORT ... STORE writes (the middle of the position space, so
pushes at either end have room)."""
_CHUNK = 1024
_NOT_DOUBLE = ErrorReply("ERR One or more scores can't be converted into double")
_CROSS_SLOT = (
    "option of SORT denied in Cluster mode when keys formed by the pattern may be in "
    "different slots."
)


@dataclass(slots=True)
class _Sort:
    """SORT's options, as parsed."""

    desc: bool = False
    alpha: bool = False
    limit_start: int = 0
    limit_count: int = -1
    by: bytes | None = None
    dontsort: bool = False
    gets: list[bytes] = field(default_factory=list)
    store: bytes | None = None


def _c_string(data: bytes) -> bytes:
    return data.split(b"\0", 1)[0]


def pattern_slot(pattern: bytes) -> int:
    """The one slot every key `pattern` can form falls in, or -1 (Redis' `patternHashSlot`):
    the slot of its first non-empty `{tag}` when that closes before any wildcard, of the
    whole pattern when it has no wildcard at all."""
    start = -1
    for i, byte in enumerate(pattern):
        if byte in b"*?[\\":
            return -1
        if start == -1 and byte == ord("{"):
            start = i
        elif start >= 0 and byte == ord("}"):
            if i == start + 1:
                start = -2
            else:
                return crc16(pattern[start + 1 : i]) & (SLOT_COUNT - 1)
    return crc16(pattern) & (SLOT_COUNT - 1)


def _pattern_allowed(key: bytes, pattern: bytes) -> bool:
    """Whether a BY/GET `pattern` only reads keys in `key`'s slot (so in its region): Cairn
    serves those and refuses the others, as Redis Cluster does since 7.2 (7.0 refused every
    BY pattern with a `*` and every GET). `#` and a pattern without `*` read no key."""
    if pattern == b"#" or b"*" not in _c_string(pattern):
        return True
    return pattern_slot(pattern) == key_slot(key)


def _parse_sort(args: Sequence[bytes], readonly: bool) -> _Sort:
    opts = _Sort()
    j = 1
    while j < len(args):
        left = len(args) - j - 1
        option = args[j].lower()
        if option == b"asc":
            opts.desc = False
        elif option == b"desc":
            opts.desc = True
        elif option == b"alpha":
            opts.alpha = True
        elif option == b"limit" and left >= 2:
            opts.limit_start, opts.limit_count = int_arg(args[j + 1]), int_arg(args[j + 2])
            j += 2
        elif not readonly and option == b"store" and left >= 1:
            opts.store = args[j + 1]
            j += 1
        elif option == b"by" and left >= 1:
            opts.by = args[j + 1]
            opts.dontsort = b"*" not in _c_string(opts.by)
            if not _pattern_allowed(args[0], opts.by):
                raise fail(ErrorReply("ERR BY " + _CROSS_SLOT))
            j += 1
        elif option == b"get" and left >= 1:
            if not _pattern_allowed(args[0], args[j + 1]):
                raise fail(ErrorReply("ERR GET " + _CROSS_SLOT))
            opts.gets.append(args[j + 1])
            j += 1
        else:
            raise fail(SYNTAX)
        j += 1
    return opts


def _lookup_pattern(db: Db, pattern: bytes, element: bytes) -> bytes | None:
    """Redis' `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*`
    becomes the element and the key's string value is read, or with `->field` after the
    `*` that field of the key's hash. None when there is no `*`, no such key, or the key
    holds another type."""
    if pattern == b"#":
        return element
    star = _c_string(pattern).find(b"*")
    if star < 0:
        return None
    arrow = _c_string(pattern).find(b"->", star + 1)
    has_field = arrow >= 0 and arrow + 2 < len(_c_string(pattern))
    end = arrow if has_field else len(pattern)
    key = pattern[:star] + element + pattern[star + 1 : end]
    meta = db.lookup(key)
    if meta is None:
        return None
    if has_field:
        if meta.type is not ValueType.HASH:
            return None
        return db.get_field(key, pattern[arrow + 2 :])
    return meta.value if meta.type is ValueType.STRING else None


def _bounds(size: int, opts: _Sort) -> tuple[int, int]:
    """The first and last index (inclusive) LIMIT selects, exactly as Redis clamps them."""
    start = min(max(opts.limit_start, 0), size)
    count = min(max(opts.limit_count, -1), size)
    end = size - 1 if count < 0 else start + count - 1
    if start >= size:
        start, end = size - 1, size - 2
    return start, min(end, size - 1)


def _position(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _list_range(db: Db, key: bytes, meta: Meta, first: int, last: int, desc: bool) -> list[bytes]:
    """Elements `first` .. `last` of a list, counted from the tail when `desc`."""
    if last < first:
        return []
    count = last - first + 1
    if not desc:
        rows = db.fields(key, _position(meta.head + first), count)
    else:
        top = meta.head + meta.size - first
        rows = db.fields_reversed(key, _position(top - count), count, _position(top))
    return [value for _, value in rows]


def _all_fields(db: Db, key: bytes, start: bytes = b"", end: bytes | None = None) -> list[bytes]:
    """Every sub-record name of `key` in [`start`, `end`), read in chunks."""
    names: list[bytes] = []
    while rows := db.fields(key, start, _CHUNK, end):
        names += (f for f, _ in rows)
        if len(rows) < _CHUNK:
            break
        start = rows[-1][0] + b"\0"
    return names


def _elements(db: Db, key: bytes, meta: Meta | None, opts: _Sort) -> tuple[list[bytes], int, int]:
    """The elements to sort and the output range over them. A list or sorted set with
    nothing to sort (BY a constant) is read only in the range LIMIT selects."""
    if meta is None:
        return [], 0, -1
    start, end = _bounds(meta.size, opts)
    if meta.type is ValueType.LIST:
        if opts.dontsort:
            return _list_range(db, key, meta, start, end, opts.desc), 0, end - start
        return _list_range(db, key, meta, 0, meta.size - 1, False), start, end
    if meta.type is ValueType.SET:
        members = _all_fields(db, key, SET_MEMBER, SET_END)
        return [m[len(SET_MEMBER) :] for m in members], start, end
    if opts.dontsort:
        if end < start:
            return [], 0, -1
        ranked = by_score(db, key, limit=end + 1, reverse=opts.desc)
        return [member for member, _ in ranked][start:], 0, end - start
    members = _all_fields(db, key, MEMBER, INDEX)
    return [m[len(MEMBER) :] for m in members], start, end


def _score(value: bytes | None) -> float | None:
    """A BY value's numeric weight (a missing one weighs 0); None if Redis' strtod check
    refuses it."""
    if value is None:
        return 0.0
    parsed = strtod(value)
    number, end, erange = parsed if parsed is not None else (0.0, 0, False)
    if end != len(_c_string(value)) or erange or math.isnan(number):
        return None
    return number


def _sorted(db: Db, elements: list[bytes], opts: _Sort) -> list[bytes]:
    """`elements` in SORT's order: by number (ties by the element's bytes) or, with ALPHA,
    by bytes (Redis' strcoll in the C locale); BY looks the weights up by pattern."""
    if opts.dontsort:
        return elements
    weights = [_lookup_pattern(db, opts.by, e) if opts.by is not None else e for e in elements]
    if opts.alpha:
        if opts.by is None:
            return sorted(elements, reverse=opts.desc)
        order = sorted(
            range(len(elements)),
            key=lambda i: (weights[i] is not None, weights[i] or b""),
            reverse=opts.desc,
        )
        return [elements[i] for i in order]
    scores = [_score(w) for w in weights]
    if any(s is None for s in scores):
        raise fail(_NOT_DOUBLE)
    pairs = sorted(zip(scores, elements, strict=True), reverse=opts.desc)
    return [element for _, element in pairs]


def _sort(ctx: Ctx, args: Sequence[bytes], readonly: bool) -> Reply:
    opts = _parse_sort(args, readonly)
    meta = ctx.db.lookup(args[0])
    if meta is not None and meta.type not in _SORTABLE:
        raise fail(WRONGTYPE)
    if opts.dontsort and meta is not None and meta.type is ValueType.SET and opts.store:
        opts.dontsort, opts.alpha, opts.by = False, True, None
    elements, start, end = _elements(ctx.db, args[0], meta, opts)
    chosen = _sorted(ctx.db, elements, opts)[start : end + 1] if end >= start else []
    values = _values(ctx.db, chosen, opts)
    if opts.store is None:
        return Array(tuple(NULL if v is None else Bulk(v) for v in values))
    _store_list(ctx, opts.store, [b"" if v is None else v for v in values])
    return Integer(len(values))


_SORTABLE = (ValueType.LIST, ValueType.SET, ValueType.ZSET)


def _values(db: Db, chosen: list[bytes], opts: _Sort) -> list[bytes | None]:
    """The result: the elements, or for each element what every GET pattern names."""
    if not opts.gets:
        return list(chosen)
    return [_lookup_pattern(db, pattern, e) for e in chosen for pattern in opts.gets]


def _store_list(ctx: Ctx, key: bytes, values: list[bytes]) -> None:
    """Make `key` the list `values` (no TTL), or delete it when there are none."""
    db = ctx.db
    deleted = db.overwrite(key)
    if not values:
        if deleted:
            ctx.notify(GENERIC, "del", key)
        return
    db.put_meta(key, Meta(ValueType.LIST, size=len(values), head=LIST_ORIGIN), existed=False)
    for i, value in enumerate(values):
        db.put_field(key, _position(LIST_ORIGIN + i), value)
    ctx.notify(LIST, "sortstore", key)


def cmd_sort(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
    [STORE destination]: a list, set or sorted set's elements sorted (see the module
    docstring), or with STORE their number, stored as a list."""
    return _sort(ctx, args, readonly=False)


def cmd_sort_ro(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SORT_RO: SORT without STORE (a read)."""
    return _sort(ctx, args, readonly=True)


def sort_keys(argv: Sequence[bytes]) -> list[bytes]:
    """SORT's keys: the sorted key and the last STORE destination (Redis' sortGetKeys)."""
    found = list(argv[1:2])
    store = None
    skip = {b"limit": 2, b"get": 1, b"by": 1}
    i = 2
    while i < len(argv):
        option = argv[i].lower()
        if option == b"store" and i + 1 < len(argv):
            store = argv[i + 1]  # the next argument is scanned too, as Redis does
        else:
            i += skip.get(option, 0)
        i += 1
    return found + ([store] if store is not None else [])
