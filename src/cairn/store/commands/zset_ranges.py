"""Sorted-set range commands: ZCOUNT, ZLEXCOUNT, ZRANGE in all its forms (by rank, BYSCORE,
BYLEX, REV, LIMIT, WITHSCORES) with the older ZRANGEBYSCORE, ZREVRANGEBYSCORE,
ZRANGEBYLEX, ZREVRANGEBYLEX and ZREVRANGE, ZRANGESTORE, and the ZREMRANGEBY* removals.

All of them are Redis 7.0's `zrangeGenericCommand` (or `zremrangeGenericCommand`) with
its argument rules and errors in its order: options first, then the range, then the key.
A score or lex range is a pair of positions in one record family, so a range with LIMIT
reads only the members it skips and returns, in either direction; a rank range starts
at its first member found through the order-statistics index, or walks from an end
within reach (`zset_base.by_rank`); counts are differences of ranks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from cairn.resp.reply import Array, ErrorReply, Integer, Reply
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.define import K1, RF, WD, R, W, cmd
from cairn.store.commands.spec import SYNTAX, CommandSpec, Ctx
from cairn.store.commands.zset_base import (
    Scored,
    by_member,
    by_rank,
    by_score,
    count_lex,
    count_scores,
    lookup,
    remove,
    save_size,
    scored_reply,
    set_score,
)
from cairn.store.commands.zset_scores import lex_range, score_range
from cairn.store.layout import Meta
from cairn.store.notifications import GENERIC, ZSET
from cairn.store.zset_records import count_added


class Kind(enum.Enum):
    """What a range counts in."""

    RANK = "rank"
    SCORE = "score"
    LEX = "lex"


_LIMIT_WITH_RANK = ErrorReply(
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
_SCORES_WITH_LEX = ErrorReply(
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
)


@dataclass(slots=True)
class RangeRequest:
    """A parsed ZRANGE-family call. `low`/`high` are the range arguments in (min, max)
    order (REV already swapped them for scores and lex); `limit` -1: no limit."""

    kind: Kind | None
    reverse: bool | None
    withscores: bool = False
    offset: int = 0
    limit: int = -1
    low: bytes = b""
    high: bytes = b""


def _parse_options(request: RangeRequest, options: Sequence[bytes], store: bool) -> None:
    at = 0
    while at < len(options):
        word = options[at].lower()
        if not store and word == b"withscores":
            request.withscores = True
        elif word == b"limit" and at + 2 < len(options):
            request.offset = int_arg(options[at + 1])
            request.limit = int_arg(options[at + 2])
            at += 2
        elif request.reverse is None and word == b"rev":
            request.reverse = True
        elif request.kind is None and word in (b"bylex", b"byscore"):
            request.kind = Kind.LEX if word == b"bylex" else Kind.SCORE
        else:
            raise fail(SYNTAX)
        at += 1


def parse_range(
    args: Sequence[bytes], kind: Kind | None, reverse: bool | None, store: bool
) -> RangeRequest:
    """`args` from the range's min on (min, max, options), for a command whose kind and
    direction are fixed, or None where ZRANGE's options choose them."""
    request = RangeRequest(kind, reverse)
    _parse_options(request, args[2:], store)
    request.kind = request.kind or Kind.RANK
    request.reverse = bool(request.reverse)
    if request.limit != -1 and request.kind is Kind.RANK:
        raise fail(_LIMIT_WITH_RANK)
    if request.withscores and request.kind is Kind.LEX:
        raise fail(_SCORES_WITH_LEX)
    low, high = args[0], args[1]
    if request.reverse and request.kind is not Kind.RANK:
        low, high = high, low
    request.low, request.high = low, high
    return request


@dataclass(frozen=True, slots=True)
class _Span:
    """A parsed range: ranks, or [start, end) positions in one record family."""

    kind: Kind
    first: int = 0
    last: int = 0
    start: bytes = b""
    end: bytes = b""


def _span(request: RangeRequest) -> _Span:
    """The range's bounds, with Redis' errors (before the key is looked up)."""
    if request.kind is Kind.RANK:
        return _Span(Kind.RANK, int_arg(request.low), int_arg(request.high))
    if request.kind is Kind.SCORE:
        scores = score_range(request.low, request.high)
        if scores.is_empty():
            return _Span(Kind.SCORE, start=b"s", end=b"s")
        start, end = scores.bounds()
        return _Span(Kind.SCORE, start=start, end=end)
    start, end = lex_range(request.low, request.high)
    return _Span(Kind.LEX, start=start, end=end)


def rank_bounds(first: int, last: int, size: int) -> tuple[int, int] | None:
    """Redis' sanitising of a rank range over `size` members (negatives from the end);
    None when it is empty."""
    first = max(first + size if first < 0 else first, 0)
    last = last + size if last < 0 else last
    if first > last or first >= size:
        return None
    return first, min(last, size - 1)


def _limited(rows: Iterator[Scored], offset: int, limit: int) -> list[Scored]:
    stop = None if limit < 0 else offset + limit
    return list(islice(rows, offset, stop))


def _select(ctx: Ctx, key: bytes, meta: Meta, request: RangeRequest, span: _Span) -> list[Scored]:
    """The members a parsed range names, in reply order."""
    reverse = bool(request.reverse)
    if span.kind is Kind.RANK:
        bounds = rank_bounds(span.first, span.last, meta.size)
        if bounds is None:
            return []
        return by_rank(ctx.db, key, meta.size, bounds[0], bounds[1], reverse)
    offset, limit = request.offset, request.limit
    if offset < 0 or (offset > 0 and offset >= meta.size) or span.start >= span.end:
        return []
    want = None if limit < 0 else offset + limit
    walk = by_score if span.kind is Kind.SCORE else by_member
    return _limited(walk(ctx.db, key, span.start, span.end, reverse, want), offset, limit)


def store_members(ctx: Ctx, dest: bytes, rows: Iterable[Scored]) -> int:
    """Replace `dest`, whatever it held, by a sorted set of `rows` (deleted if none); the
    number of members. Used by ZRANGESTORE and the *STORE forms of the set algebra."""
    deleted = ctx.db.overwrite(dest)
    size = 0
    fresh: list[bytes] = []
    for member, score in rows:
        set_score(ctx.db, dest, member, score, None, fresh)
        size += 1
    count_added(ctx.db, dest, fresh)
    save_size(ctx.db, dest, None, size)
    if size:
        ctx.notify(ZSET, ctx.name, dest)  # zrangestore, zunionstore, zinterstore, zdiffstore
    elif deleted:
        ctx.notify(GENERIC, "del", dest)
    return size


def _range(ctx: Ctx, args: Sequence[bytes], kind: Kind | None, reverse: bool | None) -> Reply:
    request = parse_range(args[1:], kind, reverse, store=False)
    span = _span(request)
    meta = lookup(ctx, args[0])
    if meta is None:
        return Array(())
    return scored_reply(_select(ctx, args[0], meta, request, span), request.withscores)


def cmd_zrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]."""
    return _range(ctx, args, None, None)


def cmd_zrangebyscore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]."""
    return _range(ctx, args, Kind.SCORE, False)


def cmd_zrevrangebyscore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]."""
    return _range(ctx, args, Kind.SCORE, True)


def cmd_zrangebylex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANGEBYLEX key min max [LIMIT offset count]."""
    return _range(ctx, args, Kind.LEX, False)


def cmd_zrevrangebylex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREVRANGEBYLEX key max min [LIMIT offset count]."""
    return _range(ctx, args, Kind.LEX, True)


def cmd_zrevrange(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREVRANGE key start stop [WITHSCORES]."""
    return _range(ctx, args, Kind.RANK, True)


def cmd_zrangestore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: the size
    of the new `dst` (deleted when the range is empty)."""
    request = parse_range(args[2:], None, None, store=True)
    span = _span(request)
    meta = lookup(ctx, args[1])
    rows = [] if meta is None else _select(ctx, args[1], meta, request, span)
    return Integer(store_members(ctx, args[0], rows))


# -- counts --------------------------------------------------------------------------------


def cmd_zcount(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZCOUNT key min max: members with a score in the range."""
    span = _span(RangeRequest(Kind.SCORE, False, low=args[1], high=args[2]))
    meta = lookup(ctx, args[0])
    if meta is None:
        return Integer(0)
    return Integer(count_scores(ctx.db, args[0], meta.size, span.start, span.end))


def cmd_zlexcount(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZLEXCOUNT key min max: members in the lex range."""
    span = _span(RangeRequest(Kind.LEX, False, low=args[1], high=args[2]))
    meta = lookup(ctx, args[0])
    if meta is None:
        return Integer(0)
    return Integer(count_lex(ctx.db, args[0], meta.size, span.start, span.end))


# -- removals ------------------------------------------------------------------------------


def _remove_range(ctx: Ctx, args: Sequence[bytes], kind: Kind) -> Reply:
    span = _span(RangeRequest(kind, False, low=args[1], high=args[2]))
    key = args[0]
    meta = lookup(ctx, key)
    if meta is None:
        return Integer(0)
    rows: Iterable[Scored]
    if kind is Kind.RANK:
        bounds = rank_bounds(span.first, span.last, meta.size)
        rows = [] if bounds is None else by_rank(ctx.db, key, meta.size, *bounds, False)
    elif kind is Kind.SCORE:
        rows = by_score(ctx.db, key, span.start, span.end)
    else:
        rows = by_member(ctx.db, key, span.start, span.end)
    removed = remove(ctx.db, key, meta, rows)
    if removed:
        ctx.notify(ZSET, ctx.name, key)  # zremrangebyrank, zremrangebyscore, zremrangebylex
        if removed == meta.size:
            ctx.notify(GENERIC, "del", key)
    return Integer(removed)


def cmd_zremrangebyrank(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREMRANGEBYRANK key start stop: how many were removed."""
    return _remove_range(ctx, args, Kind.RANK)


def cmd_zremrangebyscore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREMRANGEBYSCORE key min max."""
    return _remove_range(ctx, args, Kind.SCORE)


def cmd_zremrangebylex(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZREMRANGEBYLEX key min max."""
    return _remove_range(ctx, args, Kind.LEX)


# -- the table -------------------------------------------------------------------------------

_RS = "@read @sortedset @slow"
_WS = "@write @sortedset @slow"
_RANGE = "O(log(N)+M) with M the members returned"


def _doc(since: str, summary: str, complexity: str = _RANGE) -> tuple[str, str, str, str]:
    return ("sorted-set", since, complexity, summary)


COMMANDS: tuple[CommandSpec, ...] = (
    cmd(
        "zcount",
        4,
        RF,
        K1,
        _doc("2.0.0", "Count members in a score range.", "O(min(M, N-M))"),
        "@read @sortedset @fast",
        cmd_zcount,
    ),
    cmd(
        "zlexcount",
        4,
        RF,
        K1,
        _doc("2.8.9", "Count members in a lex range.", "O(min(M, N-M))"),
        "@read @sortedset @fast",
        cmd_zlexcount,
    ),
    cmd("zrange", -4, R, K1, _doc("1.2.0", "Members in a range."), _RS, cmd_zrange),
    cmd(
        "zrangebyscore",
        -4,
        R,
        K1,
        _doc("1.0.5", "Members in a score range."),
        _RS,
        cmd_zrangebyscore,
    ),
    cmd(
        "zrevrangebyscore",
        -4,
        R,
        K1,
        _doc("2.2.0", "Members in a score range, highest first."),
        _RS,
        cmd_zrevrangebyscore,
    ),
    cmd(
        "zrangebylex",
        -4,
        R,
        K1,
        _doc("2.8.9", "Members in a lex range."),
        _RS,
        cmd_zrangebylex,
    ),
    cmd(
        "zrevrangebylex",
        -4,
        R,
        K1,
        _doc("2.8.9", "Members in a lex range, highest first."),
        _RS,
        cmd_zrevrangebylex,
    ),
    cmd(
        "zrevrange",
        -4,
        R,
        K1,
        _doc("1.2.0", "Members in a rank range, highest first."),
        _RS,
        cmd_zrevrange,
    ),
    cmd(
        "zrangestore",
        -5,
        WD,
        (1, 2, 1),
        _doc("6.2.0", "Store a range of a sorted set."),
        _WS,
        cmd_zrangestore,
    ),
    cmd(
        "zremrangebyrank",
        4,
        W,
        K1,
        _doc("2.0.0", "Remove members in a rank range."),
        _WS,
        cmd_zremrangebyrank,
    ),
    cmd(
        "zremrangebyscore",
        4,
        W,
        K1,
        _doc("1.2.0", "Remove members in a score range."),
        _WS,
        cmd_zremrangebyscore,
    ),
    cmd(
        "zremrangebylex",
        4,
        W,
        K1,
        _doc("2.8.9", "Remove members in a lex range."),
        _WS,
        cmd_zremrangebylex,
    ),
)
"""The range commands' table entries."""
