"""Sorted-set commands through `MachineClient`: replies (checked against redis-server 7.0,
see scripts/zsets.txt for the byte-for-byte comparison), errors, key lifecycle (emptied
sets deleted, expiry, DEL, RENAME), blocking outcomes, RESP3 shapes, plain sets as algebra
inputs, ZSCAN paging, and the number of records a range reads."""

from __future__ import annotations

import random
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import NULL, NULL_ARRAY, OK, Array, Bulk, Double, ErrorReply, Integer, Pairs
from cairn.store import order_index, zset_records
from cairn.store.commands import zset_base
from cairn.store.commands.blocking import Blocked
from cairn.store.commands.spec import RANDOM_REPEAT_TOO_MANY
from cairn.store.commands.zset_scores import lex_range, parse_bound, parse_score, score_range
from cairn.store.db import Db
from cairn.store.order_index import OrderIndex

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_FLOAT = ErrorReply("ERR value is not a valid float")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")


def pairs(*items: tuple[bytes, float]) -> Pairs | Array:
    """A WITHSCORES reply (the empty array when there are no members)."""
    return Pairs(tuple((Bulk(m), Double(s)) for m, s in items)) if items else Array(())


BASICS: list[Step] = [
    ("ZADD z 1 a 2 b 3 c", Integer(3)),
    ("ZADD z 0.1 d -0 e inf f", Integer(3)),
    ("ZSCORE z d", Double(0.1)),
    ("ZSCORE z f", Double(float("inf"))),
    ("ZSCORE z nope", NULL),
    ("ZSCORE missing a", NULL),
    ("ZMSCORE z a nope", Array((Double(1.0), NULL))),
    ("ZCARD z", Integer(6)),
    ("ZRANGE z 0 -1", bulks(b"e", b"d", b"a", b"b", b"c", b"f")),
    ("ZRANGE z 1 2 WITHSCORES", pairs((b"d", 0.1), (b"a", 1.0))),
    ("ZRANK z b", Integer(3)),
    ("ZREVRANK z b", Integer(2)),
    ("ZRANK z nope", NULL),
    ("ZCOUNT z (0 3", Integer(4)),
    ("ZINCRBY z 1.5 a", Double(2.5)),
    ("ZADD z NX INCR 1 a", NULL),
    ("ZADD z XX CH 9 a 9 new", Integer(1)),
    ("ZADD z GT 1 a", Integer(0)),
    ("ZADD z INCR inf f", Double(float("inf"))),
    ("ZADD z INCR -inf f", ErrorReply("ERR resulting score is not a number (NaN)")),
    ("ZADD z x a", NOT_FLOAT),
    ("ZADD z NX XX 1 a", ErrorReply("ERR XX and NX options at the same time are not compatible")),
    ("ZREM z a b nope", Integer(2)),
    ("ZPOPMIN z", Array((Bulk(b"e"), Double(0.0)))),
    ("ZPOPMAX z 2", pairs((b"f", float("inf")), (b"c", 3.0))),
    ("ZMPOP 1 z MIN", Array((Bulk(b"z"), Array((Array((Bulk(b"d"), Double(0.1))),))))),
    ("EXISTS z", Integer(0)),
    ("ZMPOP 1 z MIN", NULL_ARRAY),
    ("ZPOPMIN z", Array(())),
]


def test_basics() -> None:
    run_steps(BASICS)


def test_wrong_type_everywhere() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("HSET", "h", "f", "v")
    for line in [
        "ZADD h 1 a",
        "ZINCRBY h 1 a",
        "ZREM h a",
        "ZCARD h",
        "ZSCORE h a",
        "ZRANK h a",
        "ZCOUNT h 0 1",
        "ZLEXCOUNT h - +",
        "ZRANGE h 0 -1",
        "ZRANGESTORE d h 0 -1",
        "ZREMRANGEBYRANK h 0 -1",
        "ZPOPMIN h",
        "ZMPOP 1 h MIN",
        "BZPOPMIN h 0",
        "ZRANDMEMBER h",
        "ZUNION 1 h",
        "ZSCAN h 0",
    ]:
        assert client.call(*line.split()) == WRONGTYPE, line
    assert client.call("HGET", "h", "f") == Bulk(b"v")


def test_emptied_sets_are_deleted() -> None:
    client = MachineClient(clock=FakeClock())
    for emptying in [
        "ZREM z a b",
        "ZPOPMIN z 5",
        "ZREMRANGEBYRANK z 0 -1",
        "ZREMRANGEBYSCORE z -inf +inf",
        "ZREMRANGEBYLEX z - +",
        "ZMPOP 1 z MAX COUNT 2",
        "BZPOPMIN z 0",
    ]:
        client.call("ZADD", "z", "0", "a", "0", "b")
        if emptying.startswith("BZPOPMIN"):
            client.call("ZREM", "z", "a")
        client.call(*emptying.split())
        assert client.call("EXISTS", "z") == Integer(0), emptying
        assert client.call("DBSIZE") == Integer(0), emptying


def test_expiry_del_and_rename() -> None:
    clock = FakeClock()
    client = MachineClient(clock=clock)
    client.call("ZADD", "z", "1", "a", "2", "b")
    client.call("PEXPIRE", "z", "1000")
    assert client.call("ZADD", "z", "3", "c") == Integer(1)
    assert client.call("PTTL", "z") == Integer(1000)
    clock.now += 1000
    assert client.call("ZCARD", "z") == Integer(0)
    assert client.call("ZADD", "z", "5", "x") == Integer(1)
    assert client.call("ZRANGE", "z", "0", "-1") == bulks(b"x")
    assert client.call("RENAME", "z", "y") == OK
    assert client.call("ZSCORE", "y", "x") == Double(5.0)
    assert client.call("ZCARD", "z") == Integer(0)
    assert client.call("DEL", "y") == Integer(1)
    assert client.call("ZRANGE", "y", "0", "-1") == Array(())
    assert client.call("DBSIZE") == Integer(0)


def test_store_commands_replace_any_type_and_drop_the_ttl() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("ZADD", "src", "1", "a", "2", "b")
    client.call("SET", "dst", "x", "EX", "100")
    assert client.call("ZUNIONSTORE", "dst", "1", "src") == Integer(2)
    assert client.call("TYPE", "dst") == client.call("TYPE", "src")
    assert client.call("TTL", "dst") == Integer(-1)
    assert client.call("ZINTERSTORE", "dst", "2", "src", "missing") == Integer(0)
    assert client.call("EXISTS", "dst") == Integer(0)
    assert client.call("DBSIZE") == Integer(1)


def test_blocking_pops_serve_at_once_or_wait_without_writing() -> None:
    client = MachineClient(clock=FakeClock())
    waited = client.call("BZPOPMIN", "a", "b", "1.5")
    assert isinstance(waited, Blocked)
    assert (waited.keys, waited.timeout_ms) == ((b"a", b"b"), 1500)
    waited = client.call("BZMPOP", "0", "2", "a", "b", "MAX", "COUNT", "3")
    assert isinstance(waited, Blocked)
    assert (waited.keys, waited.timeout_ms) == ((b"a", b"b"), 0)
    assert client.call("DBSIZE") == Integer(0)
    client.call("ZADD", "b", "1", "x", "2", "y")
    assert client.call("BZPOPMAX", "a", "b", "0") == Array((Bulk(b"b"), Bulk(b"y"), Double(2.0)))
    assert client.call("BZMPOP", "0", "2", "a", "b", "MIN") == Array(
        (Bulk(b"b"), Array((Array((Bulk(b"x"), Double(1.0))),)))
    )
    assert client.call("BZPOPMIN", "a", "-1") == ErrorReply("ERR timeout is negative")


def test_resp3_shapes() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("ZADD", "z", "1", "a", "2.5", "b")
    ranged = client.call("ZRANGE", "z", "0", "-1", "WITHSCORES")
    assert encode(ranged, 3) == b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
    assert encode(ranged, 2) == b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n"
    assert encode(client.call("ZSCORE", "z", "b"), 3) == b",2.5\r\n"
    assert encode(client.call("ZPOPMIN", "z"), 3) == b"*2\r\n$1\r\na\r\n,1\r\n"
    assert encode(client.call("ZPOPMIN", "z", "1"), 3) == b"*1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"


def test_random_member_counts() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert isinstance(client.call("ZRANDMEMBER", "z"), Bulk)
    drawn = client.call("ZRANDMEMBER", "z", "-50", "WITHSCORES")
    assert isinstance(drawn, Pairs) and len(drawn.pairs) == 50
    scores = {b"a": 1.0, b"b": 2.0, b"c": 3.0}
    assert all(scores[m.value] == s.value for m, s in drawn.pairs)  # type: ignore[union-attr]
    distinct = client.call("ZRANDMEMBER", "z", "2")
    assert isinstance(distinct, Array) and len({i.value for i in distinct.items}) == 2  # type: ignore[union-attr]
    whole = client.call("ZRANDMEMBER", "z", "9")
    assert isinstance(whole, Array) and len(whole.items) == 3
    assert client.call("ZRANDMEMBER", "z", "-100000") != RANDOM_REPEAT_TOO_MANY
    assert client.call("ZRANDMEMBER", "z", "-100001") == RANDOM_REPEAT_TOO_MANY
    assert client.call("ZRANDMEMBER", "missing", "-3000000000") == RANDOM_REPEAT_TOO_MANY


def _make_set(client: MachineClient, key: bytes, members: list[bytes]) -> None:
    """A plain set, through the set commands."""
    client.call("SADD", key, *members)


def test_plain_sets_are_inputs_with_score_one() -> None:
    client = MachineClient(clock=FakeClock())
    _make_set(client, b"s", [b"a", b"b", b"x"])
    client.call("ZADD", "z", "5", "a", "7", "b", "9", "c")
    assert client.call("ZUNION", "2", "s", "z", "WITHSCORES") == pairs(
        (b"x", 1.0), (b"a", 6.0), (b"b", 8.0), (b"c", 9.0)
    )
    assert client.call("ZINTER", "2", "z", "s", "WEIGHTS", "1", "10", "AGGREGATE", "MAX") == bulks(
        b"a", b"b"
    )
    assert client.call("ZDIFF", "2", "s", "z", "WITHSCORES") == pairs((b"x", 1.0))
    assert client.call("ZINTERCARD", "2", "s", "z") == Integer(2)
    assert client.call("ZDIFFSTORE", "d", "2", "z", "s") == Integer(1)
    assert client.call("ZRANGE", "d", "0", "-1", "WITHSCORES") == pairs((b"c", 9.0))


def test_zscan_pages_a_large_set_exactly_once() -> None:
    client = MachineClient(clock=FakeClock())
    members = [b"m%03d" % i for i in range(300)]
    args: list[bytes] = []
    for i, m in enumerate(members):
        args += [b"%d" % (i % 7), m]
    client.call("ZADD", "z", *args)
    seen: list[bytes] = []
    cursor = b"0"
    while True:
        reply = client.call("ZSCAN", "z", cursor, "COUNT", "40")
        assert isinstance(reply, Array)
        head, batch = reply.items
        assert isinstance(head, Bulk) and isinstance(batch, Array)
        assert len(batch.items) <= 80
        seen += [item.value for item in batch.items[::2]]  # type: ignore[union-attr]
        cursor = head.value
        if cursor == b"0":
            break
    assert sorted(seen) == members


class _Reads:
    """Counts the sub-records handed out by `Db.fields`/`Db.fields_reversed`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        for name in ("fields", "fields_reversed"):
            original = getattr(Db, name)

            def counted(*args: object, _original: object = original, **kw: object) -> object:
                rows = _original(*args, **kw)  # type: ignore[operator]
                self.rows += len(rows)
                return rows

            monkeypatch.setattr(Db, name, counted)


def test_ranges_near_either_end_read_only_what_they_return(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = MachineClient(clock=FakeClock())
    args: list[bytes] = []
    for i in range(5000):
        args += [b"%d" % i, b"m%05d" % i]
    client.call("ZADD", "z", *args)
    reads = _Reads(monkeypatch)
    for line, expected_rows in [
        ("ZRANGE z 0 2", 3),
        ("ZRANGE z -3 -1", 3),
        ("ZREVRANGE z 0 1", 2),
        ("ZRANGEBYSCORE z 100 +inf LIMIT 0 4", 4),
        ("ZREVRANGEBYSCORE z 100 -inf LIMIT 2 4", 6),
        ("ZRANGE z (2000 +inf BYSCORE LIMIT 0 1", 1),
        ("ZRANGEBYLEX z [m04000 + LIMIT 0 2", 2),
    ]:
        reads.rows = 0
        client.call(*line.split())
        assert reads.rows == expected_rows, line
    reads.rows = 0
    client.call("ZPOPMAX", "z", "2")
    assert reads.rows <= 2 + 2 * order_index.LEVELS  # a predecessor count per level each
    reads.rows = 0
    assert client.call("ZRANK", "z", "m04990") == Integer(4990)
    assert reads.rows < 2 * zset_base.CHUNK + 2
    reads.rows = 0
    assert client.call("ZCOUNT", "z", "10", "+inf") == Integer(4988)
    assert reads.rows < 3 * zset_base.CHUNK


def test_ranks_in_the_middle_read_a_few_hundred_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = MachineClient(clock=FakeClock())
    args: list[bytes] = []
    for i in range(8000):
        args += [b"%d" % (i // 2), b"m%05d" % i]
    client.call("ZADD", "z", *args)
    reads = _Reads(monkeypatch)
    for line, expected in [
        ("ZRANK z m04001", Integer(4001)),
        ("ZREVRANK z m04001", Integer(3998)),
        ("ZCOUNT z (1000 3000", Integer(4000)),
        ("ZRANGE z 3000 3001", bulks(b"m03000", b"m03001")),
        ("ZREVRANGE z 3000 3001", bulks(b"m04999", b"m04998")),
    ]:
        reads.rows = 0
        assert client.call(*line.split()) == expected, line
        assert reads.rows < 1200, line
    client.call("ZADD", "lex", *[a for i in range(8000) for a in (b"0", b"m%05d" % i)])
    reads.rows = 0
    assert client.call("ZLEXCOUNT", "lex", "[m02000", "(m06000") == Integer(4000)
    assert reads.rows < 1200
    reads.rows = 0
    assert client.call("ZREMRANGEBYRANK", "z", "3000", "3002") == Integer(3)
    assert reads.rows < 1200
    assert client.call("ZRANGE", "z", "2999", "3000") == bulks(b"m02999", b"m03003")


def test_huge_rank_and_count_arguments_stay_bounded() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("ZADD", "z", "1", "a", "2", "b")
    assert client.call("ZRANGE", "z", "0", "9999999999") == bulks(b"a", b"b")
    assert client.call("ZRANGE", "z", "-9999999999", "-9999999998") == Array(())
    assert client.call("ZPOPMIN", "z", "9223372036854775807") == pairs((b"a", 1.0), (b"b", 2.0))
    assert client.call("ZRANGE", "z", "0", "99999999999999999999") == NOT_INT


# -- a model ------------------------------------------------------------------------------

_SCORES = st.sampled_from(["-inf", "-2", "-1", "0", "0.5", "1", "3", "inf"])
_MEMBERS = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"ab", b"ba"])
_FLAG_SETS = [(), ("NX",), ("XX",), ("GT",), ("LT",), ("XX", "GT"), ("XX", "LT"), ("CH",)]


def _order(model: dict[bytes, float]) -> list[tuple[bytes, float]]:
    return sorted(model.items(), key=lambda kv: (kv[1], kv[0]))


def _model_zadd(
    model: dict[bytes, float], flags: tuple[str, ...], items: list[tuple[str, bytes]]
) -> int:
    changed = added = 0
    for text, member in items:
        score = float(text)
        old = model.get(member)
        if old is None:
            if "XX" not in flags:
                model[member] = score
                added += 1
            continue
        skip = "NX" in flags or ("GT" in flags and score <= old) or ("LT" in flags and score >= old)
        if not skip and score != old:
            model[member] = score
            changed += 1
    return added + changed if "CH" in flags else added


_OPS = st.one_of(
    st.tuples(
        st.just("zadd"),
        st.sampled_from(_FLAG_SETS),
        st.lists(st.tuples(_SCORES, _MEMBERS), min_size=1, max_size=4),
    ),
    st.tuples(st.just("zincrby"), _SCORES, _MEMBERS),
    st.tuples(st.just("zrem"), st.lists(_MEMBERS, min_size=1, max_size=3)),
    st.tuples(st.just("pop"), st.booleans(), st.integers(0, 4)),
    st.tuples(st.just("remrank"), st.integers(-9, 9), st.integers(-9, 9)),
    st.tuples(st.just("remscore"), _SCORES, _SCORES),
)


def _apply(client: MachineClient, model: dict[bytes, float], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "zadd":
        flat = [x for score, member in op[2] for x in (score.encode(), member)]
        got = client.call("ZADD", "z", *op[1], *flat)
        assert got == Integer(_model_zadd(model, op[1], op[2])), op
    elif kind == "zincrby":
        new = model.get(op[2], 0.0) + float(op[1])
        got = client.call("ZINCRBY", "z", op[1], op[2])
        if new != new:
            assert got == ErrorReply("ERR resulting score is not a number (NaN)")
        else:
            assert got == Double(new)
            model[op[2]] = new
    elif kind == "zrem":
        expected = len({m for m in op[1] if m in model})
        for m in op[1]:
            model.pop(m, None)
        assert client.call("ZREM", "z", *op[1]) == Integer(expected)
    elif kind == "pop":
        order = _order(model)[::-1] if op[1] else _order(model)
        taken = order[: op[2]]
        for m, _ in taken:
            del model[m]
        got = client.call("ZPOPMAX" if op[1] else "ZPOPMIN", "z", str(op[2]))
        assert got == (pairs(*taken) if op[2] else Array(())), op
    elif kind == "remrank":
        order = _order(model)
        n = len(order)
        lo, hi = (op[1] + n if op[1] < 0 else op[1]), (op[2] + n if op[2] < 0 else op[2])
        gone = order[max(lo, 0) : hi + 1] if hi >= 0 else []
        for m, _ in gone:
            del model[m]
        assert client.call("ZREMRANGEBYRANK", "z", str(op[1]), str(op[2])) == Integer(len(gone))
    else:
        lo, hi = float(op[1]), float(op[2])
        gone = [m for m, s in model.items() if lo < s <= hi]
        for m in gone:
            del model[m]
        got = client.call("ZREMRANGEBYSCORE", "z", "(" + op[1], op[2])
        assert got == Integer(len(gone)), op


def _check(client: MachineClient, model: dict[bytes, float], data: st.DataObject) -> None:
    order = _order(model)
    assert client.call("ZCARD", "z") == Integer(len(order))
    assert client.call("ZRANGE", "z", "0", "-1", "WITHSCORES") == pairs(*order)
    assert client.call("ZRANGE", "z", "0", "-1", "REV") == bulks(*[m for m, _ in order[::-1]])
    for rank, (member, score) in enumerate(order):
        assert client.call("ZRANK", "z", member) == Integer(rank)
        assert client.call("ZREVRANK", "z", member) == Integer(len(order) - 1 - rank)
        assert client.call("ZSCORE", "z", member) == Double(score)
    first, last = data.draw(st.integers(-10, 10)), data.draw(st.integers(-10, 10))
    n = len(order)
    lo, hi = max(first + n if first < 0 else first, 0), (last + n if last < 0 else last)
    hi = max(hi, -1)
    assert client.call("ZRANGE", "z", str(first), str(last)) == bulks(
        *[m for m, _ in order[lo : hi + 1]]
    )
    assert client.call("ZRANGE", "z", str(first), str(last), "REV") == bulks(
        *[m for m, _ in order[::-1][lo : hi + 1]]
    )
    low, high = data.draw(_SCORES), data.draw(_SCORES)
    inside = [(m, s) for m, s in order if float(low) <= s < float(high)]
    assert client.call("ZCOUNT", "z", low, "(" + high) == Integer(len(inside))
    offset, count = data.draw(st.integers(0, 6)), data.draw(st.integers(-1, 4))
    stop = None if count < 0 else offset + count
    assert client.call(
        "ZRANGEBYSCORE", "z", low, "(" + high, "WITHSCORES", "LIMIT", str(offset), str(count)
    ) == pairs(*inside[offset:stop])
    assert client.call(
        "ZREVRANGEBYSCORE", "z", "(" + high, low, "LIMIT", str(offset), str(count)
    ) == bulks(*[m for m, _ in inside[::-1][offset:stop]])
    bound = data.draw(_MEMBERS)
    assert client.call("ZLEXCOUNT", "z", "[" + bound.decode(), "+") == Integer(
        len([m for m in model if m >= bound])
    )
    if not model:
        assert client.call("EXISTS", "z") == Integer(0)


@settings(max_examples=150, deadline=None)
@given(st.lists(_OPS, max_size=25), st.data())
def test_commands_agree_with_a_model(ops: list[tuple[Any, ...]], data: st.DataObject) -> None:
    with patch.object(zset_base, "CHUNK", 2):
        client = MachineClient(clock=FakeClock())
        model: dict[bytes, float] = {}
        for op in ops:
            _apply(client, model, op)
        _check(client, model, data)


# -- score and range parsing (every case below was checked against redis-server 7.0.15) ------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"1", 1.0),
        (b"-0", -0.0),
        (b"+.5e1", 5.0),
        (b"1.", 1.0),
        (b"0x10", 16.0),
        (b"0x1p-3", 0.125),
        (b"inF", float("inf")),
        (b"-Infinity", float("-inf")),
        (b"4e-320", 4e-320),
        (b" 1", None),
        (b"1 ", None),
        (b"", None),
        (b"nan", None),
        (b"1e400", None),
        (b"1e-400", None),
        (b"0x1p99999", None),
        (b"1_0", None),
        (b"1e", None),
        (b"0x", None),
        (b"1\x00", None),
    ],
)
def test_parse_score_is_string2d(text: bytes, value: float | None) -> None:
    assert parse_score(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b" 1", 1.0),
        (b"", 0.0),
        (b"1e400", float("inf")),
        (b"1e-400", 0.0),
        (b"2\x00junk", 2.0),
        (b"1 ", None),
        (b" ", None),
        (b"nan", None),
        (b"x", None),
    ],
)
def test_parse_bound_is_plain_strtod(text: bytes, value: float | None) -> None:
    assert parse_bound(text) == value


def test_score_range_bounds_in_the_index() -> None:
    closed = score_range(b"1", b"2")
    assert closed.contains(1.0) and closed.contains(2.0) and not closed.is_empty()
    opened = score_range(b"(1", b"(1")
    assert opened.is_empty()
    start, end = score_range(b"(-inf", b"+inf").bounds()
    assert start < end
    low, high = lex_range(b"[b", b"(b")
    assert low >= high


def test_one_pair_zadds_keep_a_deep_index_exact() -> None:
    """`ZADD key score member` (the direct path) on an index of fan-out 2, so that every
    addition and every score change goes through pivots on all levels: the replies, the
    order, every rank and a selection at every rank agree with a model."""
    rng = random.Random(11)
    shape = OrderIndex(zset_records.INDEX, zset_records.INDEX_END, zset_records.COUNTS, 1, 4)
    with patch.object(zset_records, "RANKS", shape):
        client = MachineClient(clock=FakeClock())
        model: dict[bytes, float] = {}
        for _ in range(400):
            member = b"m%d" % rng.randrange(80)
            score = float(rng.randrange(-20, 20))
            text = b"-0" if score == 0 and rng.random() < 0.5 else b"%d" % score
            added = member not in model
            assert client.call("ZADD", "z", text, member) == Integer(int(added))
            model[member] = score
        order = _order(model)
        assert client.call("ZRANGE", "z", "0", "-1", "WITHSCORES") == pairs(*order)
        for rank, (member, _) in enumerate(order):
            assert client.call("ZRANK", "z", member) == Integer(rank)
            assert client.call("ZRANGE", "z", str(rank), str(rank)) == bulks(member)
