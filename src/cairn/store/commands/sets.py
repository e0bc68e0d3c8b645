"""Set commands. A set is a metadata record holding its member count plus, per member, a
member record and a position record pointing at each other (`cairn.store.set_records`:
the positions are exactly ``0 .. size - 1``), so adding, removing or testing one member is
a few point reads and writes, and the members come out of a range scan in byte order.

Random draws (SPOP, SRANDMEMBER) are uniform: a draw picks positions below the size (from
`ctx.rng`, the same on every replica for a write) and reads each position's record, one
point read per member drawn (or, when a draw wants more than a quarter of the positions,
one scan of them all). A removal moves the last position's member into the hole, so SPOP
of one member reads two records and writes four besides the metadata. SRANDMEMBER with a
negative count (with repetition) returns at most `RANDOM_REPEAT_LIMIT` members and refuses
larger counts before reading anything; Redis answers any count (docs/commands.md).

Set algebra replies come out in byte order (Redis' order is unspecified): SINTER walks the
smallest set and probes the others with point reads, as Redis does; SDIFF walks the first
and probes the rest; SUNION reads them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from cairn.resp.reply import NULL, Array, Bulk, ErrorReply, Integer, Reply, Set
from cairn.store.commands.common import fail, int_arg, lookup_typed
from cairn.store.commands.define import K1, KALL, NOKEYS, RF, WD, WDF, WF, R, cmd, numkeys_keys
from cairn.store.commands.scan import parse_cursor, parse_options, scan_fields, scan_reply
from cairn.store.commands.spec import (
    RANDOM_REPEAT_LIMIT,
    RANDOM_REPEAT_TOO_MANY,
    SYNTAX,
    CommandSpec,
    Ctx,
    Handler,
)
from cairn.store.db import Db
from cairn.store.layout import Meta, ValueType
from cairn.store.notifications import GENERIC, SET
from cairn.store.numbers import LLONG_MAX, parse_ll
from cairn.store.set_records import (
    MEMBER,
    MEMBER_END,
    add_many,
    decode_position,
    has,
    member_at,
    position_of,
    positions,
    remove_at,
)
from cairn.store.set_records import members as member_range

_CHUNK = 512
"""Members read per range scan while walking a set."""


_NOT_POSITIVE = ErrorReply("ERR value is out of range, must be positive")
_COUNT_RANGE = ErrorReply(
    f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}"
)
_NUMKEYS = ErrorReply("ERR numkeys should be greater than 0")
_TOO_MANY_KEYS = ErrorReply("ERR Number of keys can't be greater than number of args")
_LIMIT = ErrorReply("ERR LIMIT can't be negative")


# -- reading a set -------------------------------------------------------------------------


def _set(ctx: Ctx, key: bytes) -> Meta | None:
    return lookup_typed(ctx.db, key, ValueType.SET)


def _walk(db: Db, key: bytes) -> Iterator[bytes]:
    """The members of set `key` in byte order, read `_CHUNK` at a time."""
    start = b""
    while True:
        rows = member_range(db, key, start, _CHUNK)
        yield from rows
        if len(rows) < _CHUNK:
            return
        start = rows[-1] + b"\x00"


def _members(db: Db, key: bytes) -> list[bytes]:
    return list(_walk(db, key))


def _at(db: Db, key: bytes, size: int, wanted: Sequence[int]) -> list[bytes]:
    """The members at `wanted` (positions below `size`, repeats allowed) of set `key`, in
    that order: a point read per distinct position, or one scan of every position record
    when more than a quarter of them are wanted (a scan reads a record for less)."""
    distinct = set(wanted)
    if len(distinct) * 4 > size:
        every = [member for _, member in positions(db, key)]
        return [every[p] for p in wanted]
    found = {p: member_at(db, key, p) for p in distinct}
    return [found[p] for p in wanted]


def _draw(ctx: Ctx, key: bytes, size: int, count: int) -> dict[int, bytes]:
    """`count` (< `size`) distinct positions drawn uniformly, each with its member, in
    draw order."""
    drawn = _positions(ctx, size, count)
    return dict(zip(drawn, _at(ctx.db, key, size, drawn), strict=True))


def _positions(ctx: Ctx, size: int, count: int) -> list[int]:
    """`count` distinct positions below `size` drawn by ``ctx.rng.sample``; one is drawn
    by `randrange`, which gives the same position for the same seed (both take one
    ``_randbelow(size)``) at a tenth of the cost."""
    if count == 1:
        return [ctx.rng.randrange(size)]
    return ctx.rng.sample(range(size), count)


# -- single-set commands -------------------------------------------------------------------


def cmd_sadd(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SADD key member [member ...]: the number of members added."""
    key = args[0]
    meta = _set(ctx, key)
    size = 0 if meta is None else meta.size
    fresh: dict[bytes, None] = {}
    for member in args[1:]:
        if member not in fresh and (size == 0 or not has(ctx.db, key, member)):
            fresh[member] = None
    added = len(fresh)
    add_many(ctx.db, key, list(fresh), size)
    if added:
        expire_ms = None if meta is None else meta.expire_ms
        ctx.db.put_meta(key, Meta(ValueType.SET, expire_ms, size=size + added), meta is not None)
        ctx.notify(SET, "sadd", key)
    return Integer(added)


def _remove(ctx: Ctx, key: bytes, meta: Meta, doomed: Mapping[int, bytes], event: str) -> None:
    """Delete the members `doomed` maps their positions to (all present) from set `key`;
    an emptied set is deleted. `event`: the notification (srem, spop), followed by del
    for an emptied set."""
    ctx.notify(SET, event, key)
    if len(doomed) == meta.size:
        ctx.db.delete(key)
        ctx.notify(GENERIC, "del", key)
        return
    remove_at(ctx.db, key, meta.size, doomed)
    ctx.db.put_meta(key, Meta(ValueType.SET, meta.expire_ms, size=meta.size - len(doomed)), True)


def _present(db: Db, key: bytes, members: Sequence[bytes]) -> dict[int, bytes]:
    """The position of each of `members` in set `key` that is in it."""
    found: dict[int, bytes] = {}
    for member in dict.fromkeys(members):
        at = position_of(db, key, member)
        if at is not None:
            found[decode_position(at)] = member
    return found


def cmd_srem(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SREM key member [member ...]: the number removed; an emptied set is deleted."""
    key = args[0]
    meta = _set(ctx, key)
    if meta is None:
        return Integer(0)
    present = _present(ctx.db, key, args[1:])
    if present:
        _remove(ctx, key, meta, present, "srem")
    return Integer(len(present))


def cmd_smembers(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SMEMBERS key: every member (a set in RESP3), in byte order."""
    meta = _set(ctx, args[0])
    return _set_reply([] if meta is None else _members(ctx.db, args[0]))


def cmd_sismember(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SISMEMBER key member: 1 if `member` is in the set."""
    meta = _set(ctx, args[0])
    return Integer(int(meta is not None and has(ctx.db, args[0], args[1])))


def cmd_smismember(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SMISMEMBER key member [member ...]: 1 or 0 per member."""
    key = args[0]
    if _set(ctx, key) is None:
        return Array(tuple(Integer(0) for _ in args[1:]))
    return Array(tuple(Integer(int(has(ctx.db, key, m))) for m in args[1:]))


def cmd_scard(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SCARD key: the number of members."""
    meta = _set(ctx, args[0])
    return Integer(0 if meta is None else meta.size)


def cmd_smove(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SMOVE source destination member: 1 if moved (or already in both when they are the
    same key), 0 if `member` is not in `source`."""
    source, destination, member = args
    src = _set(ctx, source)
    if src is None:
        return Integer(0)
    _set(ctx, destination)  # WRONGTYPE if it holds another type
    present = _present(ctx.db, source, [member])
    if source == destination or not present:
        return Integer(int(bool(present)))
    _remove(ctx, source, src, present, "srem")
    cmd_sadd(ctx, [destination, member])
    return Integer(1)


def cmd_sscan(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SSCAN key cursor [MATCH pattern] [COUNT count]: like HSCAN over the members (a set
    of up to 128 members comes whole, like Redis' compact sets)."""
    cursor = parse_cursor(args[1])
    meta = _set(ctx, args[0])
    if meta is None:
        return scan_reply(0, [])
    opts = parse_options(args[2:], allow_type=False)
    next_cursor, pairs = scan_fields(ctx.db, args[0], meta.size, cursor, opts, (MEMBER, MEMBER_END))
    return scan_reply(next_cursor, [member for member, _ in pairs])


# -- random members ------------------------------------------------------------------------


def cmd_spop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SPOP key [count]: remove and return random members (a set in RESP3 with a count);
    `ctx.rng` of a write is the same on every replica, so they all pop the same ones."""
    if len(args) > 2:
        raise fail(SYNTAX)
    if len(args) == 2:
        return _spop_count(ctx, args[0], _positive_count(args[1]))
    meta = _set(ctx, args[0])
    if meta is None:
        return NULL
    position = _positions(ctx, meta.size, 1)[0]
    member = member_at(ctx.db, args[0], position)
    _remove(ctx, args[0], meta, {position: member}, "spop")
    return Bulk(member)


def _positive_count(data: bytes) -> int:
    value = parse_ll(data)
    if value is None or value < 0:
        raise fail(_NOT_POSITIVE)
    return value


def _spop_count(ctx: Ctx, key: bytes, count: int) -> Reply:
    meta = _set(ctx, key)
    if meta is None or count == 0:
        return Set(())
    if count >= meta.size:
        members = _members(ctx.db, key)
        _remove(ctx, key, meta, dict(enumerate(members)), "spop")  # all: the key goes
        return _set_reply(members)
    popped = _draw(ctx, key, meta.size, count)
    _remove(ctx, key, meta, popped, "spop")
    return _set_reply(list(popped.values()))


def cmd_srandmember(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SRANDMEMBER key [count]: random members; a negative count may repeat them and is
    bounded by `RANDOM_REPEAT_LIMIT` (Redis answers any count; see docs/commands.md)."""
    if len(args) > 2:
        raise fail(SYNTAX)
    if len(args) == 1:
        meta = _set(ctx, args[0])
        if meta is None:
            return NULL
        return Bulk(member_at(ctx.db, args[0], _positions(ctx, meta.size, 1)[0]))
    count = int_arg(args[1])
    if count < -LLONG_MAX:
        raise fail(_COUNT_RANGE)
    if count < -RANDOM_REPEAT_LIMIT:
        raise fail(RANDOM_REPEAT_TOO_MANY)
    meta = _set(ctx, args[0])
    if meta is None or count == 0:
        return Array(())
    return Array(tuple(Bulk(m) for m in _random_members(ctx, args[0], meta.size, count)))


def _random_members(ctx: Ctx, key: bytes, size: int, count: int) -> list[bytes]:
    """SRANDMEMBER's draw: `-count` members with repetition for a negative count, else
    `count` distinct ones (the whole set when `count >= size`)."""
    if count >= size:
        return _members(ctx.db, key)
    if count > 0:
        return list(_draw(ctx, key, size, count).values())
    return _at(ctx.db, key, size, [ctx.rng.randrange(size) for _ in range(-count)])


# -- set algebra -----------------------------------------------------------------------


def _sets(ctx: Ctx, keys: Sequence[bytes]) -> list[Meta | None]:
    """Every key's set metadata (None: missing); WRONGTYPE if any holds another type."""
    return [_set(ctx, key) for key in keys]


def _inter(ctx: Ctx, keys: Sequence[bytes], limit: int = 0) -> list[bytes]:
    """The members common to the sets at `keys`, walking the smallest and probing the
    others; at most `limit` of them (0: all)."""
    metas = _sets(ctx, keys)
    sized = [(m.size, k) for m, k in zip(metas, keys, strict=True) if m is not None]
    if len(sized) < len(keys):
        return []
    smallest = min(sized)[1]
    others = [k for k in dict.fromkeys(keys) if k != smallest]
    common: list[bytes] = []
    for member in _walk(ctx.db, smallest):
        if all(has(ctx.db, k, member) for k in others):
            common.append(member)
            if len(common) == limit:
                break
    return common


def _union(ctx: Ctx, keys: Sequence[bytes]) -> list[bytes]:
    """The members of any of the sets at `keys`, in byte order."""
    metas = _sets(ctx, keys)
    found: set[bytes] = set()
    for key in dict.fromkeys(k for m, k in zip(metas, keys, strict=True) if m is not None):
        found.update(_walk(ctx.db, key))
    return sorted(found)


def _diff(ctx: Ctx, keys: Sequence[bytes]) -> list[bytes]:
    """The members of the first set in none of the others: walks the first, probes the
    rest."""
    metas = _sets(ctx, keys)
    first = keys[0]
    if metas[0] is None or first in keys[1:]:
        return []
    others = [k for m, k in zip(metas[1:], keys[1:], strict=True) if m is not None]
    others = list(dict.fromkeys(others))
    return [
        member for member in _walk(ctx.db, first) if not any(has(ctx.db, k, member) for k in others)
    ]


def _set_reply(members: Sequence[bytes]) -> Reply:
    return Set(tuple(Bulk(m) for m in members))


def _store(ctx: Ctx, destination: bytes, members: Sequence[bytes]) -> Reply:
    """Replace `destination` (any type, expiry dropped) by a set of `members`, or delete it
    when there are none; the size."""
    deleted = ctx.db.overwrite(destination)
    if members:
        ctx.db.put_meta(destination, Meta(ValueType.SET, size=len(members)), False)
        add_many(ctx.db, destination, members, 0)
        ctx.notify(SET, ctx.name, destination)  # sinterstore, sunionstore, sdiffstore
    elif deleted:
        ctx.notify(GENERIC, "del", destination)
    return Integer(len(members))


def cmd_sinter(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SINTER key [key ...]: the intersection; a missing key is the empty set."""
    return _set_reply(_inter(ctx, args))


def cmd_sinterstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SINTERSTORE destination key [key ...]: store the intersection; its size."""
    return _store(ctx, args[0], _inter(ctx, args[1:]))


def cmd_sintercard(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SINTERCARD numkeys key [key ...] [LIMIT limit]: the intersection's size, counting
    stopped at `limit` (0: no limit)."""
    numkeys = parse_ll(args[0])
    if numkeys is None or numkeys < 1:
        raise fail(_NUMKEYS)
    if numkeys > len(args) - 1:
        raise fail(_TOO_MANY_KEYS)
    limit, i = 0, 1 + numkeys
    while i < len(args):
        if args[i].lower() != b"limit" or i + 1 >= len(args):
            raise fail(SYNTAX)
        value = parse_ll(args[i + 1])
        if value is None or value < 0:
            raise fail(_LIMIT)
        limit, i = value, i + 2
    return Integer(len(_inter(ctx, args[1 : 1 + numkeys], limit)))


def cmd_sunion(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SUNION key [key ...]: the union."""
    return _set_reply(_union(ctx, args))


def cmd_sunionstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SUNIONSTORE destination key [key ...]: store the union; its size."""
    return _store(ctx, args[0], _union(ctx, args[1:]))


def cmd_sdiff(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SDIFF key [key ...]: the members of the first set in none of the others."""
    return _set_reply(_diff(ctx, args))


def cmd_sdiffstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """SDIFFSTORE destination key [key ...]: store the difference; its size."""
    return _store(ctx, args[0], _diff(ctx, args[1:]))


# -- table -------------------------------------------------------------------------------

_ON = "O(N) in the members given"
_WF_ACL = "@write @set @fast"
_RF_ACL = "@read @set @fast"
_RS_ACL = "@read @set @slow"
_STORE = (1, -1, 1)
_ORDER = ("nondeterministic_output_order",)
_RANDOM = ("nondeterministic_output",)


def _d(since: str, summary: str, complexity: str = "O(1)") -> tuple[str, str, str, str]:
    return ("set", since, complexity, summary)


def _algebra(name: str, summary: str, handler: Handler) -> CommandSpec:
    return cmd(
        name,
        -2,
        R,
        KALL,
        _d("1.0.0", summary, "O(N) in the members of the sets"),
        _RS_ACL,
        handler,
        _ORDER,
    )


def _storing(name: str, summary: str, handler: Handler) -> CommandSpec:
    return cmd(
        name,
        -3,
        WD,
        _STORE,
        _d("1.0.0", summary, "O(N) in the members of the sets"),
        "@write @set @slow",
        handler,
    )


COMMANDS: tuple[CommandSpec, ...] = (
    cmd("sadd", -3, WDF, K1, _d("1.0.0", "Add members to a set.", _ON), _WF_ACL, cmd_sadd),
    cmd("srem", -3, WF, K1, _d("1.0.0", "Remove members from a set.", _ON), _WF_ACL, cmd_srem),
    cmd(
        "smembers",
        2,
        R,
        K1,
        _d("1.0.0", "Every member of a set.", "O(N) in the size of the set"),
        _RS_ACL,
        cmd_smembers,
        _ORDER,
    ),
    cmd(
        "sismember",
        3,
        RF,
        K1,
        _d("1.0.0", "Whether a member is in a set."),
        _RF_ACL,
        cmd_sismember,
    ),
    cmd(
        "smismember",
        -3,
        RF,
        K1,
        _d("6.2.0", "Whether each of several members is in a set.", _ON),
        _RF_ACL,
        cmd_smismember,
    ),
    cmd("scard", 2, RF, K1, _d("1.0.0", "The number of members of a set."), _RF_ACL, cmd_scard),
    cmd(
        "spop",
        -2,
        WF,
        K1,
        _d("1.0.0", "Remove and return random members.", "O(N) in the size of the set"),
        _WF_ACL,
        cmd_spop,
        _RANDOM,
    ),
    cmd(
        "srandmember",
        -2,
        R,
        K1,
        _d("1.0.0", "Random members of a set.", "O(N) in the size of the set"),
        _RS_ACL,
        cmd_srandmember,
        _RANDOM,
    ),
    cmd(
        "smove",
        4,
        WF,
        (1, 2, 1),
        _d("1.0.0", "Move a member from one set to another."),
        _WF_ACL,
        cmd_smove,
    ),
    _algebra("sinter", "The intersection of sets.", cmd_sinter),
    cmd(
        "sintercard",
        -3,
        R,
        NOKEYS,
        _d("7.0.0", "The size of the intersection of sets.", "O(N) in the smallest set"),
        _RS_ACL,
        cmd_sintercard,
        key_finder=numkeys_keys(1),
    ),
    _algebra("sunion", "The union of sets.", cmd_sunion),
    _algebra("sdiff", "The members of a set in none of the others.", cmd_sdiff),
    _storing("sinterstore", "Store the intersection of sets.", cmd_sinterstore),
    _storing("sunionstore", "Store the union of sets.", cmd_sunionstore),
    _storing("sdiffstore", "Store the difference of sets.", cmd_sdiffstore),
    cmd(
        "sscan",
        -3,
        R,
        K1,
        _d("2.8.0", "Iterate over a set's members with a cursor.", "O(COUNT) per call"),
        _RS_ACL,
        cmd_sscan,
        _RANDOM,
    ),
)
"""The set group's table entries (gathered into `table.COMMANDS`)."""
