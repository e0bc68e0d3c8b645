"""Set commands: tables checked against redis-server 7.0 (member order aside: Cairn returns
members in byte order, Redis in its hash table's order), the random draws, and a model."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Reply, Set, SimpleString
from cairn.store import COMMANDS
from cairn.store.commands import sets
from cairn.store.commands.spec import Ctx
from cairn.store.db import Db
from cairn.store.keyspace import MemoryKeyspace, write_batch

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
SYNTAX = ErrorReply("ERR syntax error")
NOT_POSITIVE = ErrorReply("ERR value is out of range, must be positive")


def members(*values: bytes) -> Set:
    """A set reply of `values` (in the byte order Cairn replies in)."""
    return Set(tuple(Bulk(v) for v in values))


def ints(*values: int) -> Array:
    """An array of integer replies."""
    return Array(tuple(Integer(v) for v in values))


BASICS: list[Step] = [
    ("SADD s b a c", Integer(3)),
    ("SADD s a b d d", Integer(1)),
    ("SCARD s", Integer(4)),
    ("TYPE s", SimpleString("set")),
    ("SMEMBERS s", members(b"a", b"b", b"c", b"d")),
    ("SISMEMBER s a", Integer(1)),
    ("SISMEMBER s z", Integer(0)),
    ("SMISMEMBER s a z d", ints(1, 0, 1)),
    ("SMISMEMBER missing a b", ints(0, 0)),
    ("SISMEMBER missing a", Integer(0)),
    ("SCARD missing", Integer(0)),
    ("SMEMBERS missing", members()),
    ("SREM s a a z", Integer(1)),
    ("SREM missing a", Integer(0)),
    ("SCARD s", Integer(3)),
    ("SREM s b c d", Integer(3)),
    ("EXISTS s", Integer(0)),
    ("DBSIZE", Integer(0)),
    ('SADD s "" "\\x00\\xff"', Integer(2)),
    ('SISMEMBER s ""', Integer(1)),
    ('SISMEMBER s "\\x00"', Integer(0)),
    ("SMEMBERS s", members(b"", b"\x00\xff")),
    ("SADD s", ErrorReply("ERR wrong number of arguments for 'sadd' command")),
]

WRONG_TYPES: list[Step] = [
    ("SET str v", OK),
    ("SADD str a", WRONGTYPE),
    ("SREM str a", WRONGTYPE),
    ("SMEMBERS str", WRONGTYPE),
    ("SISMEMBER str a", WRONGTYPE),
    ("SMISMEMBER str a", WRONGTYPE),
    ("SCARD str", WRONGTYPE),
    ("SPOP str", WRONGTYPE),
    ("SPOP str 0", WRONGTYPE),
    ("SPOP str -1", NOT_POSITIVE),
    ("SRANDMEMBER str", WRONGTYPE),
    ("SRANDMEMBER str 2", WRONGTYPE),
    ("SRANDMEMBER str x", NOT_INT),
    ("SADD s a", Integer(1)),
    ("SMOVE str s a", WRONGTYPE),
    ("SMOVE s str a", WRONGTYPE),
    ("SMOVE missing str a", Integer(0)),
    ("SINTER s str", WRONGTYPE),
    ("SINTER missing str", WRONGTYPE),
    ("SINTERCARD 2 missing str", WRONGTYPE),
    ("SUNION s str", WRONGTYPE),
    ("SDIFF missing str", WRONGTYPE),
    ("SINTERSTORE d s str", WRONGTYPE),
    ("SUNIONSTORE d s str", WRONGTYPE),
    ("SDIFFSTORE d str", WRONGTYPE),
    ("SSCAN str 0", WRONGTYPE),
    ("SSCAN str x", ErrorReply("ERR invalid cursor")),
    ("GET str", Bulk(b"v")),
    ("SMEMBERS s", members(b"a")),
]

SPOPS: list[Step] = [
    ("SPOP missing", NULL),
    ("SPOP missing 3", members()),
    ("SPOP missing -1", NOT_POSITIVE),
    ("SADD s a", Integer(1)),
    ("SPOP s", Bulk(b"a")),
    ("EXISTS s", Integer(0)),
    ("SADD s a b c", Integer(3)),
    ("SPOP s 0", members()),
    ("SPOP s x", NOT_POSITIVE),
    ("SPOP s 9223372036854775808", NOT_POSITIVE),
    ("SPOP s 1 2", SYNTAX),
    ("SPOP s 9223372036854775807", members(b"a", b"b", b"c")),
    ("EXISTS s", Integer(0)),
]

RANDMEMBERS: list[Step] = [
    ("SRANDMEMBER missing", NULL),
    ("SRANDMEMBER missing 3", Array(())),
    ("SRANDMEMBER missing -3", Array(())),
    ("SRANDMEMBER missing x", NOT_INT),
    ("SADD s a", Integer(1)),
    ("SRANDMEMBER s", Bulk(b"a")),
    ("SRANDMEMBER s -3", bulks(b"a", b"a", b"a")),
    ("SRANDMEMBER s 0", Array(())),
    ("SRANDMEMBER s 1 2", SYNTAX),
    (
        "SRANDMEMBER s -9223372036854775808",
        ErrorReply(
            "ERR value is out of range, value must between "
            "-9223372036854775807 and 9223372036854775807"
        ),
    ),
    ("SRANDMEMBER s 9223372036854775808", NOT_INT),
    ("SADD s b c", Integer(2)),
    ("SRANDMEMBER s 3", bulks(b"a", b"b", b"c")),
    ("SRANDMEMBER s 9223372036854775807", bulks(b"a", b"b", b"c")),
    ("SCARD s", Integer(3)),
]

TOO_MANY = ErrorReply("ERR count is out of range: at most 100000 elements with repetition")


def test_set_basics() -> None:
    run_steps(BASICS)


def test_set_wrong_types() -> None:
    run_steps(WRONG_TYPES)


def test_spop() -> None:
    run_steps(SPOPS)


def test_srandmember() -> None:
    run_steps(RANDMEMBERS)


def test_srandmember_refuses_huge_repeated_counts_before_reading() -> None:
    client = run_steps([("SADD s a b", Integer(2))])
    assert client.call("SRANDMEMBER", "s", "-3000000000") == TOO_MANY
    assert client.call("SRANDMEMBER", "s", "-100001") == TOO_MANY
    assert client.call("SRANDMEMBER", "missing", "-3000000000") == TOO_MANY
    reply = client.call("SRANDMEMBER", "s", "-100000")
    assert isinstance(reply, Array) and len(reply.items) == 100_000
    assert set(reply.items) == {Bulk(b"a"), Bulk(b"b")}


def test_random_draws_repeat_and_stay_in_the_set() -> None:
    client = run_steps([("SADD s a b c d e", Integer(5))])
    everything = {Bulk(m) for m in (b"a", b"b", b"c", b"d", b"e")}
    for count in (1, 2, 4):
        reply = client.call("SRANDMEMBER", "s", str(count))
        assert isinstance(reply, Array) and len(set(reply.items)) == count
        assert set(reply.items) <= everything
    reply = client.call("SRANDMEMBER", "s", "-50")
    assert isinstance(reply, Array) and len(reply.items) == 50
    assert set(reply.items) <= everything and len(set(reply.items)) > 1


def test_spop_count_removes_what_it_returns() -> None:
    client = run_steps([("SADD s a b c d e f g", Integer(7))])
    reply = client.call("SPOP", "s", "3")
    assert isinstance(reply, Set) and len(set(reply.items)) == 3
    rest = client.call("SMEMBERS", "s")
    assert isinstance(rest, Set) and len(rest.items) == 4
    assert set(rest.items) | set(reply.items) == {Bulk(bytes([c])) for c in b"abcdefg"}
    assert client.call("SCARD", "s") == Integer(4)


def test_spop_is_the_same_on_every_replica() -> None:
    """A write's draws are seeded by its log index: two machines applying the same log pop
    the same members, and different indexes draw differently."""
    popped = []
    for _ in range(2):
        client = MachineClient(clock=FakeClock())
        client.call("SADD", "s", *[b"m%03d" % i for i in range(200)])
        popped.append([client.call("SPOP", "s", "5"), client.call("SPOP", "s")])
    assert popped[0] == popped[1]
    assert len({popped[0][0], popped[0][1]}) == 2


def test_smove() -> None:
    run_steps(
        [
            ("SADD src a b", Integer(2)),
            ("SADD dst b x", Integer(2)),
            ("PEXPIRE dst 100000", Integer(1)),
            ("SMOVE src dst a", Integer(1)),
            ("SMOVE src dst a", Integer(0)),
            ("SMOVE src src b", Integer(1)),
            ("SMOVE src src a", Integer(0)),
            ("SMOVE src dst b", Integer(1)),
            ("EXISTS src", Integer(0)),
            ("SMEMBERS dst", members(b"a", b"b", b"x")),
            ("PTTL dst", Integer(100000)),
            ("SMOVE dst fresh x", Integer(1)),
            ("SMEMBERS fresh", members(b"x")),
            ("PTTL fresh", Integer(-1)),
            ("SCARD dst", Integer(2)),
        ]
    )


ALGEBRA: list[Step] = [
    ("SADD k1 a b c d", Integer(4)),
    ("SADD k2 c d e", Integer(3)),
    ("SADD k3 d e f a", Integer(4)),
    ("SINTER k1 k2", members(b"c", b"d")),
    ("SINTER k1 k2 k3", members(b"d")),
    ("SINTER k1 k1", members(b"a", b"b", b"c", b"d")),
    ("SINTER k1 missing", members()),
    ("SINTERCARD 2 k1 k2", Integer(2)),
    ("SINTERCARD 2 k1 k2 LIMIT 1", Integer(1)),
    ("SINTERCARD 2 k1 k2 LIMIT 0", Integer(2)),
    ("SINTERCARD 2 k1 k2 LIMIT 1 LIMIT 5", Integer(2)),
    ("SINTERCARD 0 k1", ErrorReply("ERR numkeys should be greater than 0")),
    ("SINTERCARD x k1", ErrorReply("ERR numkeys should be greater than 0")),
    ("SINTERCARD 3 k1 k2", ErrorReply("ERR Number of keys can't be greater than number of args")),
    ("SINTERCARD 1 k1 LIMIT -1", ErrorReply("ERR LIMIT can't be negative")),
    ("SINTERCARD 1 k1 LIMIT", SYNTAX),
    ("SINTERCARD 1 k1 k2", SYNTAX),
    ("SUNION k1 k2 missing", members(b"a", b"b", b"c", b"d", b"e")),
    ("SUNION missing", members()),
    ("SDIFF k1 k2", members(b"a", b"b")),
    ("SDIFF k1 k2 k3", members(b"b")),
    ("SDIFF k1 missing", members(b"a", b"b", b"c", b"d")),
    ("SDIFF k1 k2 k1", members()),
    ("SDIFF missing k1", members()),
    ("SET d str", OK),
    ("EXPIRE d 100", Integer(1)),
    ("SINTERSTORE d k1 k3", Integer(2)),
    ("TYPE d", SimpleString("set")),
    ("TTL d", Integer(-1)),
    ("SMEMBERS d", members(b"a", b"d")),
    ("SUNIONSTORE d d k2", Integer(4)),
    ("SMEMBERS d", members(b"a", b"c", b"d", b"e")),
    ("SDIFFSTORE d d k1", Integer(1)),
    ("SMEMBERS d", members(b"e")),
    ("SDIFFSTORE d d d", Integer(0)),
    ("EXISTS d", Integer(0)),
    ("HSET d f v", Integer(1)),
    ("SINTERSTORE d k1 missing", Integer(0)),
    ("EXISTS d", Integer(0)),
    ("SUNIONSTORE d missing", Integer(0)),
    ("SDIFFSTORE k1 k1 k2", Integer(2)),
    ("SMEMBERS k1", members(b"a", b"b")),
    ("DBSIZE", Integer(3)),
]


def test_set_algebra() -> None:
    run_steps(ALGEBRA)


def test_sintercard_finds_its_keys() -> None:
    spec = COMMANDS["sintercard"]
    assert spec.keys([b"SINTERCARD", b"2", b"a", b"b", b"LIMIT", b"1"]) == [b"a", b"b"]
    assert spec.keys([b"SINTERCARD", b"x", b"a"]) == []
    assert COMMANDS["sinterstore"].keys([b"SINTERSTORE", b"d", b"a", b"b"]) == [b"d", b"a", b"b"]
    assert COMMANDS["smove"].keys([b"SMOVE", b"a", b"b", b"m"]) == [b"a", b"b"]


def test_resp3_reply_types_match_redis() -> None:
    """SMEMBERS, the algebra and SPOP with a count send a RESP3 set (`~`), SRANDMEMBER with
    a count an array, as redis-server 7.0 does (checked with HELLO 3)."""
    client = run_steps([("SADD s a", Integer(1))])
    assert encode(client.call("SMEMBERS", "s"), 3) == b"~1\r\n$1\r\na\r\n"
    assert encode(client.call("SINTER", "s", "missing"), 3) == b"~0\r\n"
    assert encode(client.call("SRANDMEMBER", "s", "-2"), 3) == b"*2\r\n$1\r\na\r\n$1\r\na\r\n"
    assert encode(client.call("SPOP", "missing"), 3) == b"_\r\n"
    assert encode(client.call("SPOP", "s", "0"), 3) == b"~0\r\n"
    assert encode(client.call("SPOP", "s", "1"), 3) == b"~1\r\n$1\r\na\r\n"


def test_expired_set_reads_as_missing_and_is_replaced() -> None:
    client = run_steps(
        [
            ("SADD s a b", Integer(2)),
            ("PEXPIRE s 5", Integer(1)),
            ("@+5", OK),
            ("SCARD s", Integer(0)),
            ("SMEMBERS s", members()),
            ("SISMEMBER s a", Integer(0)),
            ("SADD s c", Integer(1)),
        ]
    )
    assert client.call("SMEMBERS", "s") == members(b"c")
    assert client.call("PTTL", "s") == Integer(-1)


def test_rename_and_del_move_every_member() -> None:
    client = run_steps([])
    many = [b"m%04d" % i for i in range(1500)]
    client.call("SADD", "{t}a", *many)
    assert client.call("RENAME", "{t}a", "{t}b") == OK
    assert client.call("SCARD", "{t}a") == Integer(0)
    assert client.call("SCARD", "{t}b") == Integer(1500)
    assert client.call("SMEMBERS", "{t}b") == members(*many)
    assert client.call("DEL", "{t}b") == Integer(1)
    assert client.call("SMEMBERS", "{t}b") == members()
    assert client.call("SADD", "{t}b", "x") == Integer(1)
    assert client.call("SMEMBERS", "{t}b") == members(b"x")


def _sscan_all(client: MachineClient, key: str, count: int) -> list[bytes]:
    cursor, seen = b"0", []
    for _ in range(1000):
        reply = client.call("SSCAN", key, cursor, "COUNT", str(count))
        assert isinstance(reply, Array)
        head, body = reply.items
        assert isinstance(head, Bulk) and isinstance(body, Array)
        seen += [item.value for item in body.items if isinstance(item, Bulk)]
        cursor = head.value
        if cursor == b"0":
            return seen
    raise AssertionError("SSCAN did not finish")


def test_sscan_pages_a_large_set() -> None:
    client = run_steps([])
    many = [b"m%03d" % i for i in range(300)]
    client.call("SADD", "s", *many)
    assert _sscan_all(client, "s", 7) == many
    small = run_steps([("SADD s a b c", Integer(3))])
    assert small.call("SSCAN", "s", "0", "COUNT", "1") == Array(
        (Bulk(b"0"), bulks(b"a", b"b", b"c"))
    )
    assert small.call("SSCAN", "s", "0", "MATCH", "b") == Array((Bulk(b"0"), bulks(b"b")))
    assert small.call("SSCAN", "missing", "0", "COUNT", "0") == Array((Bulk(b"0"), Array(())))
    assert small.call("SSCAN", "s", "0", "COUNT", "0") == SYNTAX


# -- random draws on large sets: uniform, and reading no more than they need ----------------


class CountingSpace(MemoryKeyspace):
    """A keyspace that counts the records its scans return."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def scan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        rows = super().scan(start, end, limit)
        self.rows += len(rows)
        return rows

    def rscan(
        self, start: bytes, end: bytes | None = None, limit: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        rows = super().rscan(start, end, limit)
        self.rows += len(rows)
        return rows


def _big_set(size: int) -> tuple[CountingSpace, list[bytes]]:
    space = CountingSpace()
    many = [b"m%06d" % i for i in range(size)]
    with write_batch(space) as batch:
        ctx = Ctx(Db(space, batch, 0), 0, "sadd", None)
        sets.cmd_sadd(ctx, [b"s", *many])
    space.rows = 0
    return space, many


def _srandmember(space: CountingSpace, seed: int, *args: bytes) -> Reply:
    ctx = Ctx(Db(space, None, 0), 0, "srandmember", random.Random(seed))
    return sets.cmd_srandmember(ctx, [b"s", *args])


def test_single_draws_read_their_position_and_scan_nothing() -> None:
    space, many = _big_set(5000)
    drawn: set[bytes] = set()
    for seed in range(40):
        reply = _srandmember(space, seed)
        assert isinstance(reply, Bulk) and reply.value in many
        drawn.add(reply.value)
        assert space.rows == 0  # a point read of the drawn position's record
    assert len(drawn) > 35


def test_counted_draws_never_read_more_than_the_set() -> None:
    space, many = _big_set(3000)
    for args in ([b"10"], [b"-10"], [b"2999"], [b"-20000"]):
        reply = _srandmember(space, 7, *args)
        assert isinstance(reply, Array)
        assert space.rows <= len(many)
        space.rows = 0
    reply = _srandmember(space, 7, b"2999")
    assert isinstance(reply, Array) and len(set(reply.items)) == 2999


def test_draws_are_uniform_across_chunks_and_both_halves() -> None:
    space, many = _big_set(1100)
    counts: Counter[bytes] = Counter()
    for seed in range(3):
        reply = _srandmember(space, seed, b"-20000")
        assert isinstance(reply, Array)
        counts.update(item.value for item in reply.items if isinstance(item, Bulk))
    assert set(counts) == set(many)
    expected = 60_000 / len(many)
    assert all(expected / 3 < n < expected * 3 for n in counts.values())
    rank = {m: i for i, m in enumerate(many)}
    deciles = Counter(rank[m] * 10 // len(many) for m in counts.elements())
    assert all(abs(n - 6000) < 600 for n in deciles.values())


def test_distinct_draws_cover_the_set() -> None:
    space, many = _big_set(1200)
    seen: set[bytes] = set()
    for seed in range(60):
        reply = _srandmember(space, seed, b"50")
        assert isinstance(reply, Array) and len(set(reply.items)) == 50
        seen.update(item.value for item in reply.items if isinstance(item, Bulk))
    assert len(seen) > 1000 and seen <= set(many)


# -- a model ---------------------------------------------------------------------------

_KEYS = ["{s}a", "{s}b", "{s}c"]
_MEMBERS = st.sampled_from([b"", b"a", b"b", b"c", b"\x00", b"\xff", b"10", b"x y"])
_KEY = st.sampled_from(_KEYS)
_OPS = st.one_of(
    st.tuples(st.just("SADD"), _KEY, st.lists(_MEMBERS, min_size=1, max_size=4)),
    st.tuples(st.just("SREM"), _KEY, st.lists(_MEMBERS, min_size=1, max_size=4)),
    st.tuples(st.just("SMOVE"), st.lists(_KEY, min_size=2, max_size=2), _MEMBERS),
    st.tuples(st.just("SPOP"), _KEY, st.integers(-1, 5)),
    st.tuples(st.just("SRANDMEMBER"), _KEY, st.integers(-6, 6)),
    st.tuples(
        st.sampled_from(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
        _KEY,
        st.lists(_KEY, min_size=1, max_size=3),
    ),
    st.tuples(
        st.sampled_from(["SINTER", "SUNION", "SDIFF"]), st.lists(_KEY, min_size=1, max_size=3)
    ),
    st.tuples(st.just("SINTERCARD"), st.lists(_KEY, min_size=1, max_size=3), st.integers(0, 4)),
)


def _algebra(op: str, model: dict[str, set[bytes]], keys: Sequence[str]) -> set[bytes]:
    found = [model.get(k, set()) for k in keys]
    if op.startswith("SINTER"):
        return set.intersection(*found)
    if op.startswith("SUNION"):
        return set.union(*found)
    return found[0].difference(*found[1:])


def _run_op(client: MachineClient, model: dict[str, set[bytes]], op: tuple[object, ...]) -> None:
    name = op[0]
    assert isinstance(name, str)
    if name in ("SADD", "SREM"):
        key, given_members = op[1], op[2]
        assert isinstance(key, str) and isinstance(given_members, list)
        current = model.setdefault(key, set())
        before = len(current)
        if name == "SADD":
            current.update(given_members)
        else:
            current.difference_update(given_members)
        expected = abs(len(current) - before)
        assert client.call(name, key, *given_members) == Integer(expected)
    elif name == "SMOVE":
        keys, member = op[1], op[2]
        assert isinstance(keys, list) and isinstance(member, bytes)
        src, dst = model.setdefault(keys[0], set()), model.setdefault(keys[1], set())
        moved = member in src
        if moved:
            src.discard(member)
            dst.add(member)
        assert client.call("SMOVE", keys[0], keys[1], member) == Integer(int(moved))
    elif name == "SPOP":
        _spop(client, model, op)
    elif name == "SRANDMEMBER":
        _srand(client, model, op)
    elif name.endswith("STORE"):
        dest, keys = op[1], op[2]
        assert isinstance(dest, str) and isinstance(keys, list)
        result = _algebra(name, model, keys)
        model[dest] = set(result)
        assert client.call(name, dest, *keys) == Integer(len(result))
    elif name == "SINTERCARD":
        keys, limit = op[1], op[2]
        assert isinstance(keys, list) and isinstance(limit, int)
        size = len(_algebra(name, model, keys))
        expected = min(size, limit) if limit else size
        reply = client.call(name, str(len(keys)), *keys, "LIMIT", str(limit))
        assert reply == Integer(expected)
    else:
        keys = op[1]
        assert isinstance(keys, list)
        assert client.call(name, *keys) == members(*sorted(_algebra(name, model, keys)))


def _spop(client: MachineClient, model: dict[str, set[bytes]], op: tuple[object, ...]) -> None:
    key, count = op[1], op[2]
    assert isinstance(key, str) and isinstance(count, int)
    current = model.setdefault(key, set())
    if count < 0:
        reply = client.call("SPOP", key)
        if not current:
            assert reply == NULL
            return
        assert isinstance(reply, Bulk) and reply.value in current
        current.discard(reply.value)
        return
    reply = client.call("SPOP", key, str(count))
    assert isinstance(reply, Set) and len(reply.items) == min(count, len(current))
    popped = {item.value for item in reply.items if isinstance(item, Bulk)}
    assert len(popped) == len(reply.items) and popped <= current
    current.difference_update(popped)


def _srand(client: MachineClient, model: dict[str, set[bytes]], op: tuple[object, ...]) -> None:
    key, count = op[1], op[2]
    assert isinstance(key, str) and isinstance(count, int)
    current = model.get(key, set())
    reply = client.call("SRANDMEMBER", key, str(count))
    assert isinstance(reply, Array)
    drawn = [item.value for item in reply.items if isinstance(item, Bulk)]
    assert set(drawn) <= current
    if count >= 0:
        assert len(drawn) == len(set(drawn)) == min(count, len(current))
    else:
        assert len(drawn) == (-count if current else 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(_OPS, max_size=30))
def test_sets_agree_with_a_model(ops: list[tuple[object, ...]]) -> None:
    client = MachineClient(clock=FakeClock())
    model: dict[str, set[bytes]] = {}
    for op in ops:
        _run_op(client, model, op)
        for key in _KEYS:
            current = model.get(key, set())
            assert client.call("SCARD", key) == Integer(len(current))
            assert client.call("SMEMBERS", key) == members(*sorted(current))
            assert client.call("EXISTS", key) == Integer(int(bool(current)))
    assert client.call("DBSIZE") == Integer(sum(1 for m in model.values() if m))
