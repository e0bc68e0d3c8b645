"""Sorted-set commands on single members: ZADD and ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE,
ZRANK, ZREVRANK, the pops (ZPOPMIN/ZPOPMAX, ZMPOP and their blocking forms), ZRANDMEMBER
and ZSCAN; `COMMANDS` gathers these and the sibling modules' table entries (ranges in
`zset_ranges`, set algebra in `zset_algebra`).

Every member operation is a point read and write of its two records (member and score
index, see `cairn.store.zset_records`) plus the key's metadata; pops walk from the end
they pop. Replies and errors are Redis 7.0's, checked against redis-server 7.0.15.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    Array,
    Bulk,
    Double,
    ErrorReply,
    Integer,
    Reply,
)
from cairn.store.commands import zset_algebra, zset_ranges
from cairn.store.commands.blocking import blocked, parse_timeout
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.define import K1, RF, WDF, WF, R, W, cmd, numkeys_keys
from cairn.store.commands.scan import (
    SMALL_HASH,
    field_start,
    parse_cursor,
    parse_options,
    scan_reply,
)
from cairn.store.commands.spec import (
    RANDOM_REPEAT_LIMIT,
    RANDOM_REPEAT_TOO_MANY,
    SYNTAX,
    CommandSpec,
    Ctx,
    Flag,
)
from cairn.store.commands.zset_base import (
    Scored,
    at_ranks,
    by_member,
    by_rank,
    by_score,
    lookup,
    nested_pairs,
    rank_of,
    remove,
    save_size,
    scored_reply,
    set_score,
)
from cairn.store.commands.zset_scores import score_arg
from cairn.store.db import Db
from cairn.store.layout import Meta
from cairn.store.notifications import GENERIC, ZSET
from cairn.store.numbers import LLONG_MAX, parse_ll
from cairn.store.zset_records import MEMBER, count_added, score_of

NAN_SCORE = ErrorReply("ERR resulting score is not a number (NaN)")
_MUST_BE_POSITIVE = ErrorReply("ERR value is out of range, must be positive")
_NUMKEYS = ErrorReply("ERR numkeys should be greater than 0")
_COUNT = ErrorReply("ERR count should be greater than 0")
ONE = Integer(1)
ZERO = Integer(0)

# -- ZADD, ZINCRBY ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddFlags:
    """ZADD's options."""

    nx: bool = False
    xx: bool = False
    gt: bool = False
    lt: bool = False
    ch: bool = False
    incr: bool = False


_ADD_OPTIONS = frozenset({b"nx", b"xx", b"gt", b"lt", b"ch", b"incr"})
_NO_FLAGS = AddFlags()


def _conflict(flags: AddFlags, pairs: int) -> ErrorReply | None:
    if flags.nx and flags.xx:
        return ErrorReply("ERR XX and NX options at the same time are not compatible")
    if (flags.gt and flags.nx) or (flags.lt and flags.nx) or (flags.gt and flags.lt):
        return ErrorReply("ERR GT, LT, and/or NX options at the same time are not compatible")
    if flags.incr and pairs > 1:
        return ErrorReply("ERR INCR option supports a single increment-element pair")
    return None


def _parse_zadd(args: Sequence[bytes]) -> tuple[AddFlags, list[tuple[float, bytes]]]:
    """ZADD's options and (score, member) pairs, with Redis' errors in Redis' order."""
    at = 1
    seen: set[bytes] = set()
    while at < len(args) and args[at].lower() in _ADD_OPTIONS:
        seen.add(args[at].lower())
        at += 1
    rest = args[at:]
    if not rest or len(rest) % 2:
        raise fail(SYNTAX)
    flags = AddFlags(**{name.decode(): True for name in seen}) if seen else _NO_FLAGS
    error = _conflict(flags, len(rest) // 2) if seen else None
    if error is not None:
        raise fail(error)
    scores = [score_arg(rest[i]) for i in range(0, len(rest), 2)]
    return flags, list(zip(scores, rest[1::2], strict=True))


@dataclass(slots=True)
class _Tally:
    """What a ZADD did: members added, updated, and touched (not skipped by a flag)."""

    added: int = 0
    updated: int = 0
    processed: int = 0
    score: float = 0.0


def _add_one(
    db: Db,
    key: bytes,
    member: bytes,
    score: float,
    flags: AddFlags,
    tally: _Tally,
    deferred: list[bytes] | None,
) -> None:
    """Redis' `zsetAdd` for one member on an existing or just created set (`deferred`:
    see `zset_records.put_member`)."""
    old = score_of(db, key, member)
    if old is None:
        if flags.xx:
            return
        set_score(db, key, member, score, None, deferred)
        tally.added += 1
    else:
        if flags.nx:
            return
        if flags.incr:
            score += old
            if score != score:
                raise fail(NAN_SCORE)
        if (flags.lt and score >= old) or (flags.gt and score <= old):
            return
        if score != old:
            set_score(db, key, member, score, old, deferred)
            tally.updated += 1
    tally.processed += 1
    tally.score = score


def add_members(
    ctx: Ctx, key: bytes, flags: AddFlags, pairs: Sequence[tuple[float, bytes]]
) -> _Tally:
    """Apply ZADD's pairs to `key` (created unless XX); what happened."""
    meta = lookup(ctx, key)
    tally = _Tally()
    if meta is None and flags.xx:
        return tally
    # distinct members are counted in one pass at the end; a member given twice must be
    # counted before its second score replaces the first
    distinct = len(pairs) > 1 and len({member for _, member in pairs}) == len(pairs)
    deferred: list[bytes] | None = [] if distinct else None
    for score, member in pairs:
        _add_one(ctx.db, key, member, score, flags, tally, deferred)
    if deferred:
        count_added(ctx.db, key, deferred)
    if tally.added:
        save_size(ctx.db, key, meta, (0 if meta is None else meta.size) + tally.added)
    if tally.added or tally.updated:
        ctx.notify(ZSET, "zincr" if flags.incr else "zadd", key)
    return tally


def _add_plain(ctx: Ctx, key: bytes, score_data: bytes, member: bytes) -> Reply:
    """``ZADD key score member``, the usual form: what `add_members` does for one pair
    and no option, without the option parsing and the tally (the same errors, in the
    same order: an option name where the score goes is a syntax error, then the score,
    then the key's type)."""
    if score_data.lower() in _ADD_OPTIONS:
        raise fail(SYNTAX)
    score = score_arg(score_data)
    meta = lookup(ctx, key)
    db = ctx.db
    old = None if meta is None else score_of(db, key, member)
    if old is None:
        set_score(db, key, member, score, None)
        save_size(db, key, meta, 1 if meta is None else meta.size + 1)
        ctx.notify(ZSET, "zadd", key)
        return ONE
    if score != old:
        set_score(db, key, member, score, old)
        ctx.notify(ZSET, "zadd", key)
    return ZERO


def cmd_zadd(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]."""
    if len(args) == 3:
        return _add_plain(ctx, args[0], args[1], args[2])
    flags, pairs = _parse_zadd(args)
    tally = add_members(ctx, args[0], flags, pairs)
    if flags.incr:
        return Double(tally.score) if tally.processed else NULL
    return Integer(tally.added + tally.updated if flags.ch else tally.added)


def cmd_zincrby(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZINCRBY key increment member: the new score."""
    increment = score_arg(args[1])
    tally = add_members(ctx, args[0], AddFlags(incr=True), [(increment, args[2])])
    return Double(tally.score)


# -- point reads and removal -------------------------------------------------------------


def cmd_zrem(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREM key member [member ...]: how many were removed; an emptied set is deleted."""
    key = args[0]
    meta = lookup(ctx, key)
    if meta is None:
        return Integer(0)
    gone: dict[bytes, float] = {}
    for member in args[1:]:
        score = score_of(ctx.db, key, member)
        if score is not None:
            gone[member] = score
    return Integer(removed_notified(ctx, key, meta, remove(ctx.db, key, meta, gone.items())))


def removed_notified(ctx: Ctx, key: bytes, meta: Meta, removed: int, event: str = "zrem") -> int:
    """`removed` (members just removed from `key`, `meta` its record before), after
    Redis's notifications: `event` if any went, then del if the set is gone."""
    if removed:
        ctx.notify(ZSET, event, key)
        if removed == meta.size:
            ctx.notify(GENERIC, "del", key)
    return removed


def cmd_zcard(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZCARD key."""
    meta = lookup(ctx, args[0])
    return Integer(0 if meta is None else meta.size)


def _score(ctx: Ctx, key: bytes, member: bytes) -> Reply:
    score = score_of(ctx.db, key, member)
    return NULL if score is None else Double(score)


def cmd_zscore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZSCORE key member: the score (a double in RESP3) or null."""
    return NULL if lookup(ctx, args[0]) is None else _score(ctx, args[0], args[1])


def cmd_zmscore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZMSCORE key member [member ...]."""
    if lookup(ctx, args[0]) is None:
        return Array(tuple(NULL for _ in args[1:]))
    return Array(tuple(_score(ctx, args[0], m) for m in args[1:]))


def _rank(ctx: Ctx, args: Sequence[bytes], reverse: bool) -> Reply:
    meta = lookup(ctx, args[0])
    if meta is None:
        return NULL
    rank = rank_of(ctx.db, args[0], meta.size, args[1], reverse)
    return NULL if rank is None else Integer(rank)


def cmd_zrank(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANK key member: the 0-based rank by ascending score, or null."""
    return _rank(ctx, args, False)


def cmd_zrevrank(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREVRANK key member: the 0-based rank by descending score, or null."""
    return _rank(ctx, args, True)


# -- pops ----------------------------------------------------------------------------------


def pop(ctx: Ctx, key: bytes, meta: Meta, count: int, highest: bool) -> list[Scored]:
    """Remove and return up to `count` members of `key` from its low (or high) end."""
    want = min(count, meta.size)
    rows = list(islice(by_score(ctx.db, key, reverse=highest, want=want), want))
    removed = remove(ctx.db, key, meta, rows, lowest=not highest)
    removed_notified(ctx, key, meta, removed, "zpopmax" if highest else "zpopmin")
    return rows


def _zpop(ctx: Ctx, args: Sequence[bytes], highest: bool) -> Reply:
    if len(args) > 2:
        raise fail(SYNTAX)
    count = None
    if len(args) == 2:
        count = parse_ll(args[1])
        if count is None or count < 0:
            raise fail(_MUST_BE_POSITIVE)
    meta = lookup(ctx, args[0])
    if meta is None or count == 0:
        return Array(())
    rows = pop(ctx, args[0], meta, 1 if count is None else count, highest)
    if count is None:
        return Array((Bulk(rows[0][0]), Double(rows[0][1])))
    return scored_reply(rows, True)


def cmd_zpopmin(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZPOPMIN key [count]: flat member and score without a count, pairs with one."""
    return _zpop(ctx, args, False)


def cmd_zpopmax(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZPOPMAX key [count]."""
    return _zpop(ctx, args, True)


def _first_zset(ctx: Ctx, keys: Sequence[bytes]) -> tuple[bytes, Meta] | None:
    """The first of `keys` that exists (WRONGTYPE if it is not a sorted set)."""
    for key in keys:
        meta = lookup(ctx, key)
        if meta is not None:
            return key, meta
    return None


@dataclass(frozen=True, slots=True)
class _MultiPop:
    """ZMPOP's parsed arguments."""

    keys: tuple[bytes, ...]
    highest: bool
    count: int


def _positive(data: bytes, error: ErrorReply) -> int:
    value = parse_ll(data)
    if value is None or value < 1:
        raise fail(error)
    return value


def _parse_mpop(args: Sequence[bytes]) -> _MultiPop:
    """numkeys key [key ...] MIN|MAX [COUNT count], checked as Redis 7.0 does."""
    numkeys = _positive(args[0], _NUMKEYS)
    if numkeys + 1 >= len(args):
        raise fail(SYNTAX)
    where = args[numkeys + 1].lower()
    if where not in (b"min", b"max"):
        raise fail(SYNTAX)
    count, at = None, numkeys + 2
    while at < len(args):
        if count is None and args[at].lower() == b"count" and at + 1 < len(args):
            count = _positive(args[at + 1], _COUNT)
            at += 2
        else:
            raise fail(SYNTAX)
    return _MultiPop(tuple(args[1 : numkeys + 1]), where == b"max", count or 1)


def _serve_mpop(ctx: Ctx, request: _MultiPop) -> Reply | None:
    found = _first_zset(ctx, request.keys)
    if found is None:
        return None
    key, meta = found
    rows = pop(ctx, key, meta, request.count, request.highest)
    return Array((Bulk(key), nested_pairs(rows)))


def cmd_zmpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: the first non-empty key's
    members, or a null array."""
    served = _serve_mpop(ctx, _parse_mpop(args))
    return NULL_ARRAY if served is None else served


def _bzpop(ctx: Ctx, args: Sequence[bytes], highest: bool) -> Reply:
    timeout_ms = parse_timeout(args[-1])
    keys = tuple(args[:-1])
    for key in keys:
        meta = lookup(ctx, key)
        if meta is not None:
            member, score = pop(ctx, key, meta, 1, highest)[0]
            return Array((Bulk(key), Bulk(member), Double(score)))
    return blocked(keys, timeout_ms)


def cmd_bzpopmin(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BZPOPMIN key [key ...] timeout: key, member and score, or wait (`Blocked`)."""
    return _bzpop(ctx, args, False)


def cmd_bzpopmax(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BZPOPMAX key [key ...] timeout."""
    return _bzpop(ctx, args, True)


def cmd_bzmpop(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: like ZMPOP, or wait."""
    request = _parse_mpop(args[1:])
    timeout_ms = parse_timeout(args[0])
    served = _serve_mpop(ctx, request)
    return blocked(request.keys, timeout_ms) if served is None else served


# -- ZRANDMEMBER ---------------------------------------------------------------------------

_HALF_LONG = LLONG_MAX // 2


def _random_count(args: Sequence[bytes]) -> tuple[int, bool]:
    count = int_arg(args[1])
    if count < -LLONG_MAX:
        raise fail(
            ErrorReply(
                f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}"
            )
        )
    if len(args) > 3 or (len(args) == 3 and args[2].lower() != b"withscores"):
        raise fail(SYNTAX)
    withscores = len(args) == 3
    if withscores and not -_HALF_LONG <= count <= _HALF_LONG:
        raise fail(ErrorReply("ERR value is out of range"))
    if count < -RANDOM_REPEAT_LIMIT:
        raise fail(RANDOM_REPEAT_TOO_MANY)
    return count, withscores


def cmd_zrandmember(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANDMEMBER key [count [WITHSCORES]]: distinct members for a positive count, draws
    with repetition for a negative one (at most `RANDOM_REPEAT_LIMIT`, checked with the
    arguments as HRANDFIELD and SRANDMEMBER do). Picks ranks, then reads them through the
    order-statistics index, or in one walk when they are many (`zset_base.at_ranks`)."""
    key = args[0]
    if len(args) == 1:
        meta = lookup(ctx, key)
        if meta is None:
            return NULL
        rank = ctx.rng.randrange(meta.size)
        return Bulk(by_rank(ctx.db, key, meta.size, rank, rank, False)[0][0])
    count, withscores = _random_count(args)
    meta = lookup(ctx, key)
    if meta is None or count == 0:
        return Array(())
    if count < 0:
        ranks = [ctx.rng.randrange(meta.size) for _ in range(-count)]
    elif count >= meta.size:
        ranks = list(range(meta.size))
    else:
        ranks = ctx.rng.sample(range(meta.size), count)
    found = at_ranks(ctx.db, key, meta.size, ranks)
    return scored_reply((found[r] for r in ranks), withscores)


# -- ZSCAN ----------------------------------------------------------------------------------


def cmd_zscan(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZSCAN key cursor [MATCH pattern] [COUNT count]: members and scores. A set of up to
    128 members comes whole with cursor 0 (as Redis' compact sets); a larger one is paged
    by COUNT members in member order, the cursor naming the last member returned."""
    cursor = parse_cursor(args[1])
    meta = lookup(ctx, args[0])
    if meta is None:
        return scan_reply(0, [])
    opts = parse_options(args[2:], allow_type=False)
    if meta.size <= SMALL_HASH:
        rows, more = list(by_member(ctx.db, args[0])), False
    else:
        start = MEMBER + field_start(cursor)
        rows = list(islice(by_member(ctx.db, args[0], start, want=opts.count + 1), opts.count + 1))
        more = len(rows) > opts.count
        rows = rows[: opts.count]
    items = [x for m, s in rows if opts.matches(m) for x in (m, b"%.17g" % s)]
    next_cursor = int.from_bytes(b"\x01" + rows[-1][0], "big") if more else 0
    return scan_reply(next_cursor, items)


# -- the table --------------------------------------------------------------------------------

_WFS = "@write @sortedset @fast"
_RFS = "@read @sortedset @fast"
_WS = "@write @sortedset @slow"
_BLOCK = frozenset({Flag.WRITE, Flag.NOSCRIPT, Flag.BLOCKING, Flag.FAST})
_BLOCK_SLOW = frozenset({Flag.WRITE, Flag.BLOCKING})
_NONDET = ("nondeterministic_output",)
_LOG = "O(log(N))"


def doc(since: str, summary: str, complexity: str = _LOG) -> tuple[str, str, str, str]:
    """A sorted-set command's (group, since, complexity, summary)."""
    return ("sorted-set", since, complexity, summary)


_OWN = (
    cmd("zadd", -4, WDF, K1, doc("1.2.0", "Add members or update their scores."), _WFS, cmd_zadd),
    cmd("zincrby", 4, WDF, K1, doc("1.2.0", "Add to a member's score."), _WFS, cmd_zincrby),
    cmd("zrem", -3, WF, K1, doc("1.2.0", "Remove members."), _WFS, cmd_zrem),
    cmd("zcard", 2, RF, K1, doc("1.2.0", "The number of members.", "O(1)"), _RFS, cmd_zcard),
    cmd("zscore", 3, RF, K1, doc("1.2.0", "A member's score.", "O(1)"), _RFS, cmd_zscore),
    cmd("zmscore", -3, RF, K1, doc("6.2.0", "Scores of members."), _RFS, cmd_zmscore),
    cmd("zrank", 3, RF, K1, doc("2.0.0", "A member's rank by ascending score."), _RFS, cmd_zrank),
    cmd(
        "zrevrank",
        3,
        RF,
        K1,
        doc("2.0.0", "A member's rank by descending score."),
        _RFS,
        cmd_zrevrank,
    ),
    cmd("zpopmin", -2, WF, K1, doc("5.0.0", "Remove the lowest members."), _WFS, cmd_zpopmin),
    cmd("zpopmax", -2, WF, K1, doc("5.0.0", "Remove the highest members."), _WFS, cmd_zpopmax),
    cmd(
        "zmpop",
        -4,
        W,
        (0, 0, 0),
        doc("7.0.0", "Pop from the first non-empty sorted set."),
        _WS,
        cmd_zmpop,
        key_finder=numkeys_keys(1),
    ),
    cmd(
        "bzpopmin",
        -3,
        _BLOCK,
        (1, -2, 1),
        doc("5.0.0", "Pop the lowest member, or wait."),
        _WFS + " @blocking",
        cmd_bzpopmin,
    ),
    cmd(
        "bzpopmax",
        -3,
        _BLOCK,
        (1, -2, 1),
        doc("5.0.0", "Pop the highest member, or wait."),
        _WFS + " @blocking",
        cmd_bzpopmax,
    ),
    cmd(
        "bzmpop",
        -5,
        _BLOCK_SLOW,
        (0, 0, 0),
        doc("7.0.0", "Pop from the first non-empty sorted set, or wait."),
        _WS + " @blocking",
        cmd_bzmpop,
        key_finder=numkeys_keys(2),
    ),
    cmd(
        "zrandmember",
        -2,
        R,
        K1,
        doc("6.2.0", "Random members.", "O(N) in the size of the set"),
        "@read @sortedset @slow",
        cmd_zrandmember,
        _NONDET,
    ),
    cmd(
        "zscan",
        -3,
        R,
        K1,
        doc("2.8.0", "Iterate over members and scores with a cursor.", "O(COUNT) per call"),
        "@read @sortedset @slow",
        cmd_zscan,
        _NONDET,
    ),
)

COMMANDS: tuple[CommandSpec, ...] = (*_OWN, *zset_ranges.COMMANDS, *zset_algebra.COMMANDS)
"""Every sorted-set command's table entry."""
