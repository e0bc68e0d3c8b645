"""Sorted-set algebra: ZUNION, ZINTER, ZDIFF, ZINTERCARD and the ZUNIONSTORE, ZINTERSTORE,
ZDIFFSTORE forms, with WEIGHTS, AGGREGATE SUM|MIN|MAX and WITHSCORES.

This is Redis 7.0's `zunionInterDiffGenericCommand`: the keys are checked (a plain set is
an input whose members all score 1) before the options are parsed; the inputs are taken
smallest first (that order decides how floating-point sums round, so it is kept); a
weighted score that is NaN (``0 * inf``) counts as 0, and so does a sum of ``inf`` and
``-inf``. ZINTER walks its smallest input and looks each member up in the others (point
reads); ZUNION and ZDIFF read their inputs whole.

Plain sets are read through `cairn.store.set_records` (`_set_members`, `_set_has`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cairn.resp.reply import ErrorReply, Integer, Reply
from cairn.store import set_records
from cairn.store.commands.common import fail, int_arg
from cairn.store.commands.define import WD, R, cmd, numkeys_keys
from cairn.store.commands.spec import SYNTAX, WRONGTYPE, CommandSpec, Ctx
from cairn.store.commands.zset_base import CHUNK, Scored, by_member, scored_reply
from cairn.store.commands.zset_ranges import store_members
from cairn.store.commands.zset_scores import score_arg
from cairn.store.db import Db
from cairn.store.layout import ValueType
from cairn.store.numbers import parse_ll
from cairn.store.zset_records import score_of

_WEIGHT = ErrorReply("ERR weight value is not a float")
_LIMIT = ErrorReply("ERR LIMIT can't be negative")


class Op(enum.Enum):
    """Which algebra a call does."""

    UNION = "union"
    INTER = "inter"
    DIFF = "diff"


def _sum(a: float, b: float) -> float:
    total = a + b
    return 0.0 if total != total else total


def _min(a: float, b: float) -> float:
    return b if b < a else a


def _max(a: float, b: float) -> float:
    return b if b > a else a


AGGREGATES: dict[bytes, Callable[[float, float], float]] = {
    b"sum": _sum,
    b"min": _min,
    b"max": _max,
}


@dataclass(slots=True)
class Source:
    """One input: a sorted set, a plain set (scores 1) or a missing key (empty)."""

    key: bytes
    kind: ValueType | None
    size: int
    weight: float = 1.0


@dataclass(slots=True)
class Call:
    """A parsed call."""

    sources: list[Source]
    aggregate: Callable[[float, float], float] = _sum
    withscores: bool = False
    limit: int = 0


def _set_members(db: Db, key: bytes) -> Iterator[bytes]:
    """The members of plain set `key`, a chunk of sub-records at a time."""
    start = b""
    while True:
        rows = set_records.members(db, key, start, CHUNK)
        yield from rows
        if len(rows) < CHUNK:
            return
        start = rows[-1] + b"\x00"


def _set_has(db: Db, key: bytes, member: bytes) -> bool:
    return set_records.has(db, key, member)


def members_of(db: Db, source: Source) -> Iterator[Scored]:
    """An input's members with their (unweighted) scores."""
    if source.kind is ValueType.ZSET:
        yield from by_member(db, source.key)
    elif source.kind is ValueType.SET:
        for member in _set_members(db, source.key):
            yield member, 1.0


def score_in(db: Db, source: Source, member: bytes) -> float | None:
    """`member`'s (unweighted) score in an input, None if absent."""
    if source.kind is ValueType.ZSET:
        return score_of(db, source.key, member)
    if source.kind is ValueType.SET:
        return 1.0 if _set_has(db, source.key, member) else None
    return None


def _sources(ctx: Ctx, keys: Sequence[bytes]) -> list[Source]:
    sources = []
    for key in keys:
        meta = ctx.db.lookup(key)
        if meta is not None and meta.type not in (ValueType.ZSET, ValueType.SET):
            raise fail(WRONGTYPE)
        kind = None if meta is None else meta.type
        sources.append(Source(key, kind, 0 if meta is None else meta.size))
    return sources


def _parse_options(call: Call, options: Sequence[bytes], op: Op, store: bool, card: bool) -> None:
    """WEIGHTS, AGGREGATE, WITHSCORES, LIMIT, as each command allows them."""
    algebra = op is not Op.DIFF and not card
    at = 0
    while at < len(options):
        word, remaining = options[at].lower(), len(options) - at
        if algebra and word == b"weights" and remaining > len(call.sources):
            for i, source in enumerate(call.sources):
                source.weight = score_arg(options[at + 1 + i], _WEIGHT)
            at += 1 + len(call.sources)
        elif algebra and word == b"aggregate" and remaining >= 2:
            aggregate = AGGREGATES.get(options[at + 1].lower())
            if aggregate is None:
                raise fail(SYNTAX)
            call.aggregate = aggregate
            at += 2
        elif not store and not card and word == b"withscores":
            call.withscores = True
            at += 1
        elif card and word == b"limit" and remaining >= 2:
            limit = parse_ll(options[at + 1])
            if limit is None or limit < 0:
                raise fail(_LIMIT)
            call.limit = limit
            at += 2
        else:
            raise fail(SYNTAX)


def parse_call(ctx: Ctx, args: Sequence[bytes], op: Op, store: bool, card: bool = False) -> Call:
    """`args` from numkeys on, checked in Redis' order: numkeys, the keys' types, options."""
    numkeys = int_arg(args[0])
    if numkeys < 1:
        raise fail(ErrorReply(f"ERR at least 1 input key is needed for '{ctx.name}' command"))
    if numkeys > len(args) - 1:
        raise fail(SYNTAX)
    call = Call(_sources(ctx, args[1 : 1 + numkeys]))
    _parse_options(call, args[1 + numkeys :], op, store, card)
    return call


def _weighted(score: float, weight: float) -> float:
    value = score * weight
    return 0.0 if value != value else value


def _union(db: Db, call: Call) -> dict[bytes, float]:
    result: dict[bytes, float] = {}
    for source in sorted(call.sources, key=lambda s: s.size):
        for member, score in members_of(db, source):
            value = _weighted(score, source.weight)
            old = result.get(member)
            result[member] = value if old is None else call.aggregate(old, value)
    return result


def _inter_rows(db: Db, call: Call) -> Iterator[Scored]:
    """The intersection's members with aggregated scores, walking the smallest input."""
    first, *others = sorted(call.sources, key=lambda s: s.size)
    if any(s.size == 0 for s in call.sources):
        return
    for member, score in members_of(db, first):
        total = _weighted(score, first.weight)
        for other in others:
            found = score if other.key == first.key else score_in(db, other, member)
            if found is None:
                break
            total = call.aggregate(total, found * other.weight)
        else:
            yield member, total


def _diff(db: Db, call: Call) -> dict[bytes, float]:
    first, *others = call.sources
    result: dict[bytes, float] = {}
    for member, score in members_of(db, first):
        if all(score_in(db, other, member) is None for other in others):
            result[member] = score
    return result


def compute(db: Db, call: Call, op: Op) -> list[Scored]:
    """The result's members by (score, member), as the result sorted set orders them."""
    if op is Op.UNION:
        result = _union(db, call)
    elif op is Op.INTER:
        result = dict(_inter_rows(db, call))
    else:
        result = _diff(db, call)
    return sorted(result.items(), key=lambda row: (row[1], row[0]))


def _read(ctx: Ctx, args: Sequence[bytes], op: Op) -> Reply:
    call = parse_call(ctx, args, op, store=False)
    return scored_reply(compute(ctx.db, call, op), call.withscores)


def _store(ctx: Ctx, args: Sequence[bytes], op: Op) -> Reply:
    call = parse_call(ctx, args[1:], op, store=True)
    return Integer(store_members(ctx, args[0], compute(ctx.db, call, op)))


def cmd_zunion(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]."""
    return _read(ctx, args, Op.UNION)


def cmd_zinter(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]."""
    return _read(ctx, args, Op.INTER)


def cmd_zdiff(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZDIFF numkeys key [key ...] [WITHSCORES]: the first input's members in no other."""
    return _read(ctx, args, Op.DIFF)


def cmd_zunionstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]: dst's size."""
    return _store(ctx, args, Op.UNION)


def cmd_zinterstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZINTERSTORE dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]."""
    return _store(ctx, args, Op.INTER)


def cmd_zdiffstore(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZDIFFSTORE dst numkeys key [key ...]."""
    return _store(ctx, args, Op.DIFF)


def cmd_zintercard(ctx: Ctx, args: Sequence[bytes]) -> Reply:
    """ZINTERCARD numkeys key [key ...] [LIMIT limit]: the intersection's size, counting
    stopped at LIMIT (0: no limit)."""
    call = parse_call(ctx, args, Op.INTER, store=False, card=True)
    count = 0
    for _ in _inter_rows(ctx.db, call):
        count += 1
        if count == call.limit:
            break
    return Integer(count)


_RS = "@read @sortedset @slow"
_WS = "@write @sortedset @slow"
_ALGEBRA = "O(N) in the inputs' sizes plus O(M log M) in the result's"


def _doc(since: str, summary: str) -> tuple[str, str, str, str]:
    return ("sorted-set", since, _ALGEBRA, summary)


_READ_KEYS = numkeys_keys(1)
_STORE_KEYS = numkeys_keys(2, before=(1,))

COMMANDS: tuple[CommandSpec, ...] = (
    cmd(
        "zunion",
        -3,
        R,
        (0, 0, 0),
        _doc("6.2.0", "Union of sorted sets."),
        _RS,
        cmd_zunion,
        key_finder=_READ_KEYS,
    ),
    cmd(
        "zinter",
        -3,
        R,
        (0, 0, 0),
        _doc("6.2.0", "Intersection of sorted sets."),
        _RS,
        cmd_zinter,
        key_finder=_READ_KEYS,
    ),
    cmd(
        "zdiff",
        -3,
        R,
        (0, 0, 0),
        _doc("6.2.0", "Difference of sorted sets."),
        _RS,
        cmd_zdiff,
        key_finder=_READ_KEYS,
    ),
    cmd(
        "zintercard",
        -3,
        R,
        (0, 0, 0),
        _doc("7.0.0", "Size of an intersection."),
        _RS,
        cmd_zintercard,
        key_finder=_READ_KEYS,
    ),
    cmd(
        "zunionstore",
        -4,
        WD,
        (1, 1, 1),
        _doc("2.0.0", "Store a union."),
        _WS,
        cmd_zunionstore,
        key_finder=_STORE_KEYS,
    ),
    cmd(
        "zinterstore",
        -4,
        WD,
        (1, 1, 1),
        _doc("2.0.0", "Store an intersection."),
        _WS,
        cmd_zinterstore,
        key_finder=_STORE_KEYS,
    ),
    cmd(
        "zdiffstore",
        -4,
        WD,
        (1, 1, 1),
        _doc("6.2.0", "Store a difference."),
        _WS,
        cmd_zdiffstore,
        key_finder=_STORE_KEYS,
    ),
)
"""The algebra commands' table entries."""
