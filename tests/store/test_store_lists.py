"""List commands: replies checked against redis-server 7.0 (the byte-for-byte comparison is
`scripts/lists.txt`), the record layout, the cost of each operation in records read and
written, the blocking outcomes, and a queue model driven by hypothesis."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.reply import (
    NULL,
    NULL_ARRAY,
    OK,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Reply,
    SimpleString,
)
from cairn.store import COMMANDS
from cairn.store.commands.blocking import Blocked
from cairn.store.commands.list_store import START_HEAD
from cairn.store.commands.spec import Flag
from cairn.store.keyspace import MemoryKeyspace, write_batch
from cairn.store.layout import (
    VERSION_LEN,
    Meta,
    ValueType,
    element_prefix,
    encode_meta,
    field_prefix,
    meta_key,
)

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
NOT_POSITIVE = ErrorReply("ERR value is out of range, must be positive")
SYNTAX = ErrorReply("ERR syntax error")
RANK_ZERO = ErrorReply(
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
    "second ... or use negative to start from the end of the list"
)
_POS = struct.Struct(">Q")


def _ints(*values: int) -> Array:
    return Array(tuple(Integer(v) for v in values))


BASICS: list[Step] = [
    ("LPUSH l c", Integer(1)),
    ("LPUSH l b a", Integer(3)),
    ("RPUSH l d e", Integer(5)),
    ("LRANGE l 0 -1", bulks(b"a", b"b", b"c", b"d", b"e")),
    ("LLEN l", Integer(5)),
    ("LINDEX l 0", Bulk(b"a")),
    ("LINDEX l -1", Bulk(b"e")),
    ("LINDEX l 5", NULL),
    ("LINDEX missing x", NULL),
    ("LINDEX l x", NOT_INT),
    ("LSET l 1 B", OK),
    ("LSET l -6 x", ErrorReply("ERR index out of range")),
    ("LSET missing 0 x", ErrorReply("ERR no such key")),
    ("LPOP l", Bulk(b"a")),
    ("RPOP l", Bulk(b"e")),
    ("LPOP l 0", Array(())),
    ("RPOP l 2", bulks(b"d", b"c")),
    ("LPOP l -1", NOT_POSITIVE),
    ("LPOP l 9223372036854775807", bulks(b"B")),
    ("EXISTS l", Integer(0)),
    ("LPOP l", NULL),
    ("LPOP l 3", NULL_ARRAY),
    ("LPUSHX l a", Integer(0)),
    ("RPUSHX l a", Integer(0)),
    ("RPUSH l a", Integer(1)),
    ("LPUSHX l z", Integer(2)),
    ("RPUSHX l y x", Integer(4)),
    ("LRANGE l 0 -1", bulks(b"z", b"a", b"y", b"x")),
    ("TYPE l", SimpleString("list")),
]

RANGES: list[Step] = [
    ("RPUSH l a b c d e f", Integer(6)),
    ("LRANGE l 0 9999999999", bulks(b"a", b"b", b"c", b"d", b"e", b"f")),
    ("LRANGE l -9223372036854775808 1", bulks(b"a", b"b")),
    ("LRANGE l -2 9223372036854775807", bulks(b"e", b"f")),
    ("LRANGE l 4 2", Array(())),
    ("LRANGE l 6 9", Array(())),
    ("LRANGE l 0 9223372036854775808", NOT_INT),
    ("LRANGE missing 0 -1", Array(())),
    ("LTRIM l 1 -2", OK),
    ("LRANGE l 0 -1", bulks(b"b", b"c", b"d", b"e")),
    ("LTRIM l -9223372036854775808 9223372036854775807", OK),
    ("LLEN l", Integer(4)),
    ("LTRIM l 3 1", OK),
    ("EXISTS l", Integer(0)),
    ("LTRIM missing 0 1", OK),
    ("EXISTS missing", Integer(0)),
]

EDITS: list[Step] = [
    ("RPUSH l a b a c a", Integer(5)),
    ("LREM l -1 a", Integer(1)),
    ("LRANGE l 0 -1", bulks(b"a", b"b", b"a", b"c")),
    ("LREM l 0 a", Integer(2)),
    ("LREM l 0 zz", Integer(0)),
    ("LREM missing 0 a", Integer(0)),
    ("LINSERT l before c x", Integer(3)),
    ("LINSERT l AFTER c y", Integer(4)),
    ("LINSERT l after zz y", Integer(-1)),
    ("LINSERT l middle c y", SYNTAX),
    ("LINSERT missing before c y", Integer(0)),
    ("LRANGE l 0 -1", bulks(b"b", b"x", b"c", b"y")),
    ("LREM l 0 b", Integer(1)),
    ("LREM l 0 x", Integer(1)),
    ("LREM l 0 c", Integer(1)),
    ("LREM l 0 y", Integer(1)),
    ("EXISTS l", Integer(0)),
]

POSITIONS: list[Step] = [
    ("RPUSH l a b c a b c a", Integer(7)),
    ("LPOS l a", Integer(0)),
    ("LPOS l a RANK -1", Integer(6)),
    ("LPOS l a RANK 2 COUNT 0", _ints(3, 6)),
    ("LPOS l a RANK -2 COUNT 1", _ints(3)),
    ("LPOS l a COUNT 0 MAXLEN 4", _ints(0, 3)),
    ("LPOS l a RANK -9223372036854775808", Integer(6)),
    ("LPOS l a RANK -9223372036854775808 COUNT 1", _ints(6, 3, 0)),
    ("LPOS l a RANK 9223372036854775807", NULL),
    ("LPOS l zz COUNT 2", Array(())),
    ("LPOS missing a", NULL),
    ("LPOS missing a COUNT 0", Array(())),
    ("LPOS missing a RANK 0", RANK_ZERO),
    ("LPOS l a COUNT x", ErrorReply("ERR COUNT can't be negative")),
    ("LPOS l a MAXLEN -1", ErrorReply("ERR MAXLEN can't be negative")),
    ("LPOS l a RANK", SYNTAX),
]

MOVES: list[Step] = [
    ("RPUSH src a b c", Integer(3)),
    ("LMOVE src dst left right", Bulk(b"a")),
    ("RPOPLPUSH src dst", Bulk(b"c")),
    ("LRANGE dst 0 -1", bulks(b"c", b"a")),
    ("LMOVE dst dst left right", Bulk(b"c")),
    ("LRANGE dst 0 -1", bulks(b"a", b"c")),
    ("LMOVE src src right left", Bulk(b"b")),
    ("LRANGE src 0 -1", bulks(b"b")),
    ("LMOVE src dst left up", SYNTAX),
    ("LMOVE missing dst left left", NULL),
    ("RPOPLPUSH src dst", Bulk(b"b")),
    ("EXISTS src", Integer(0)),
    ("RPUSH m1 a b c", Integer(3)),
    ("LMPOP 2 missing m1 right count 2", Array((Bulk(b"m1"), bulks(b"c", b"b")))),
    ("LMPOP 1 m1 left count 5", Array((Bulk(b"m1"), bulks(b"a")))),
    ("LMPOP 1 m1 left", NULL_ARRAY),
    ("LMPOP 0 m1 left", ErrorReply("ERR numkeys should be greater than 0")),
    ("LMPOP 9223372036854775807 m1 left", SYNTAX),
    ("LMPOP 1 m1 left count 0", ErrorReply("ERR count should be greater than 0")),
    ("LMPOP 1 m1 left count 1 count 1", SYNTAX),
]

WRONG_TYPES: list[Step] = [
    ("SET s v", OK),
    ("RPUSH l a", Integer(1)),
    ("LPUSH s a", WRONGTYPE),
    ("RPUSHX s a", WRONGTYPE),
    ("LPOP s", WRONGTYPE),
    ("LPOP s -1", NOT_POSITIVE),
    ("LLEN s", WRONGTYPE),
    ("LINDEX s x", WRONGTYPE),
    ("LSET s x x", WRONGTYPE),
    ("LRANGE s x 0", NOT_INT),
    ("LRANGE s 0 -1", WRONGTYPE),
    ("LTRIM s 0 -1", WRONGTYPE),
    ("LREM s 0 a", WRONGTYPE),
    ("LINSERT s middle a b", SYNTAX),
    ("LINSERT s before a b", WRONGTYPE),
    ("LPOS s a RANK 0", RANK_ZERO),
    ("LPOS s a", WRONGTYPE),
    ("LMOVE s l left left", WRONGTYPE),
    ("LMOVE l s left left", WRONGTYPE),
    ("LMPOP 2 missing s left", WRONGTYPE),
    ("LMPOP 2 l s left", Array((Bulk(b"l"), bulks(b"a")))),
    ("GET s", Bulk(b"v")),
]


def test_list_basics() -> None:
    run_steps(BASICS)


def test_list_ranges_and_trims() -> None:
    run_steps(RANGES)


def test_list_removals_and_inserts() -> None:
    run_steps(EDITS)


def test_lpos() -> None:
    run_steps(POSITIONS)


def test_moves_and_lmpop() -> None:
    run_steps(MOVES)


def test_list_wrong_types() -> None:
    run_steps(WRONG_TYPES)


# -- blocking commands --------------------------------------------------------------------


def test_blocking_commands_serve_at_once_like_their_plain_forms() -> None:
    run_steps(
        [
            ("RPUSH a x y z", Integer(3)),
            ("BLPOP missing a 0", bulks(b"a", b"x")),
            ("BRPOP a 1.5", bulks(b"a", b"z")),
            ("BLMOVE a b left right 0", Bulk(b"y")),
            ("EXISTS a", Integer(0)),
            ("BRPOPLPUSH b a 0", Bulk(b"y")),
            ("BLMPOP 0 2 missing a left count 3", Array((Bulk(b"a"), bulks(b"y")))),
        ]
    )


def test_blocking_commands_wait_on_their_keys_and_write_nothing() -> None:
    client = run_steps(
        [
            ("SET s v", OK),
            ("RPUSH gone x", Integer(1)),
            ("PEXPIRE gone 5", Integer(1)),
            ("@+10", OK),
        ]
    )
    cases = [
        ("BLPOP gone other 0", (b"gone", b"other"), 0),
        ("BRPOP other gone other gone 0", (b"other", b"gone"), 0),
        ("BRPOP gone 1.5", (b"gone",), 1500),
        ("BLMOVE gone s left right 0.0001", (b"gone",), 1),
        ("BRPOPLPUSH gone s 2", (b"gone",), 2000),
        ("BLMPOP 3 2 other gone right count 4", (b"other", b"gone"), 3000),
    ]
    for line, keys, timeout_ms in cases:
        reply = client.call(*line.split())
        assert isinstance(reply, Blocked), line
        assert (reply.keys, reply.timeout_ms) == (keys, timeout_ms), line
    # The expired list met on the way was not purged: the blocked entries wrote nothing.
    assert client.call("DBSIZE") == Integer(2)


def test_blocking_argument_errors_come_in_redis_order() -> None:
    run_steps(
        [
            ("SET s v", OK),
            ("BLPOP s x", ErrorReply("ERR timeout is not a float or out of range")),
            ("BLPOP s -1", ErrorReply("ERR timeout is negative")),
            ("BLPOP missing s 0", WRONGTYPE),
            ("BLMOVE s d up left x", SYNTAX),
            ("BLMOVE s d left left x", ErrorReply("ERR timeout is not a float or out of range")),
            ("BLMOVE s d left left 0", WRONGTYPE),
            ("BRPOPLPUSH s d x", ErrorReply("ERR timeout is not a float or out of range")),
            ("BLMPOP x 0 s left", ErrorReply("ERR numkeys should be greater than 0")),
            ("BLMPOP x 1 s left count 0", ErrorReply("ERR count should be greater than 0")),
            ("BLMPOP x 1 s left", ErrorReply("ERR timeout is not a float or out of range")),
            ("BLMPOP 0 1 s left", WRONGTYPE),
        ]
    )


def test_blocking_flags_and_keys_are_redis_7() -> None:
    for name in ("blpop", "brpop"):
        assert COMMANDS[name].flags == {Flag.WRITE, Flag.NOSCRIPT, Flag.BLOCKING}
    for name in ("blmove", "brpoplpush"):
        assert COMMANDS[name].flags == {Flag.WRITE, Flag.DENYOOM, Flag.NOSCRIPT, Flag.BLOCKING}
    assert COMMANDS["blmpop"].flags == {Flag.WRITE, Flag.BLOCKING, Flag.MOVABLEKEYS}
    assert COMMANDS["lmpop"].flags == {Flag.WRITE, Flag.MOVABLEKEYS}
    assert COMMANDS["blpop"].keys([b"blpop", b"a", b"b", b"0"]) == [b"a", b"b"]
    assert COMMANDS["blmove"].keys([b"blmove", b"a", b"b", b"left", b"left", b"0"]) == [
        b"a",
        b"b",
    ]
    assert COMMANDS["lmpop"].keys([b"lmpop", b"2", b"a", b"b", b"left"]) == [b"a", b"b"]
    assert COMMANDS["blmpop"].keys([b"blmpop", b"0", b"1", b"a", b"left"]) == [b"a"]


# -- keys: expiry, rename, delete ------------------------------------------------------------


def test_list_keeps_its_expiry_and_an_expired_list_starts_empty() -> None:
    client = run_steps(
        [
            ("RPUSH l a b c", Integer(3)),
            ("PEXPIRE l 100", Integer(1)),
            ("LPUSH l z", Integer(4)),
            ("RPOP l", Bulk(b"c")),
            ("LINSERT l after a q", Integer(4)),
            ("LREM l 0 b", Integer(1)),
            ("LTRIM l 0 -1", OK),
            ("LSET l 0 Z", OK),
            ("PTTL l", Integer(100)),
            ("@+100", OK),
            ("LLEN l", Integer(0)),
            ("RPUSH l new", Integer(1)),
            ("LRANGE l 0 -1", bulks(b"new")),
            ("PTTL l", Integer(-1)),
        ]
    )
    assert _field_records(client, b"l") == [(START_HEAD, b"new")]


def test_rename_and_delete_carry_every_record() -> None:
    client = run_steps(
        [
            ("RPUSH l b c", Integer(2)),
            ("LPUSH l a", Integer(3)),
            ("RENAME l m", OK),
            ("LRANGE m 0 -1", bulks(b"a", b"b", b"c")),
            ("LPOP m", Bulk(b"a")),
            ("RPUSH m d", Integer(3)),
            ("LRANGE m 0 -1", bulks(b"b", b"c", b"d")),
            ("EXISTS l", Integer(0)),
        ]
    )
    assert _field_records(client, b"l") == []
    assert client.call("DEL", "m") == Integer(1)
    assert _field_records(client, b"m") == []


# -- the record layout and what each operation costs ----------------------------------------


def _field_records(client: MachineClient, key: bytes) -> list[tuple[int, bytes]]:
    prefix = field_prefix(key)  # every version's records: the live one's, buried ones'
    rows = client.machine.keyspace.scan(prefix, prefix + b"\xff" * 13)
    skip = len(prefix) + VERSION_LEN
    return [(_POS.unpack(k[skip:])[0], v) for k, v in rows if k.startswith(prefix)]


def test_positions_grow_from_the_middle_at_both_ends() -> None:
    client = run_steps([("RPUSH l c d", Integer(2)), ("LPUSH l b a", Integer(4))])
    assert _field_records(client, b"l") == [
        (START_HEAD - 2, b"a"),
        (START_HEAD - 1, b"b"),
        (START_HEAD, b"c"),
        (START_HEAD + 1, b"d"),
    ]
    client.call("LPOP", "l")
    client.call("RPOP", "l")
    assert _field_records(client, b"l") == [(START_HEAD - 1, b"b"), (START_HEAD, b"c")]


def test_a_full_end_of_the_position_space_is_an_error_not_a_crash() -> None:
    client = MachineClient(clock=FakeClock())
    with write_batch(client.machine.keyspace) as batch:
        batch.put(meta_key(b"l"), encode_meta(Meta(ValueType.LIST, size=1, head=0)))
        batch.put(element_prefix(b"l", 0) + _POS.pack(0), b"first")
    full = ErrorReply("ERR list has no room left at that end")
    assert client.call("LPUSH", "l", "x") == full
    assert client.call("LINSERT", "l", "before", "first", "x") == full
    assert client.call("RPUSH", "l", "y") == Integer(2)
    assert client.call("LRANGE", "l", "0", "-1") == bulks(b"first", b"y")


@dataclass
class _Counter:
    """Counts the sub-record reads and writes of one key on a `MemoryKeyspace`."""

    prefix: bytes
    read: int = 0
    written: int = 0
    deleted: int = 0
    scans: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.read = self.written = self.deleted = 0
        self.scans = []


def _spy(client: MachineClient, key: bytes) -> _Counter:
    space = client.machine.keyspace
    assert isinstance(space, MemoryKeyspace)
    counter = _Counter(field_prefix(key))
    get, scan, rscan = space.get, space.scan, space.rscan
    put, delete = space._put, space._delete

    def ours(k: bytes) -> bool:
        return k.startswith(counter.prefix)

    def counted_get(k: bytes) -> bytes | None:
        counter.read += ours(k)
        return get(k)

    def counted(walk: Callable[..., list[tuple[bytes, bytes]]]) -> Callable[..., object]:
        def run(start: bytes, end: bytes | None = None, limit: int | None = None) -> object:
            rows = walk(start, end, limit)
            if ours(start):
                counter.read += len(rows)
                counter.scans.append(len(rows))
            return rows

        return run

    def counted_put(k: bytes, v: bytes) -> bytes | None:
        counter.written += ours(k)
        return put(k, v)

    def counted_delete(k: bytes) -> bytes | None:
        counter.deleted += ours(k)
        return delete(k)

    space.get = counted_get  # type: ignore[method-assign]
    space.scan = counted(scan)  # type: ignore[method-assign,assignment]
    space.rscan = counted(rscan)  # type: ignore[method-assign,assignment]
    space._put = counted_put  # type: ignore[method-assign]
    space._delete = counted_delete  # type: ignore[method-assign]
    return counter


def _cost(client: MachineClient, counter: _Counter, line: str) -> tuple[int, int, int]:
    counter.reset()
    client.call(*line.split())
    return counter.read, counter.written, counter.deleted


def test_every_operation_touches_only_the_records_it_needs() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("RPUSH", "l", *[b"e%d" % i for i in range(2000)])
    spy = _spy(client, b"l")
    assert _cost(client, spy, "LINDEX l 1000") == (1, 0, 0)
    assert _cost(client, spy, "LSET l -3 x") == (0, 1, 0)
    assert _cost(client, spy, "LPUSH l a b") == (0, 2, 0)
    assert _cost(client, spy, "RPUSH l y z") == (0, 2, 0)
    assert _cost(client, spy, "LPOP l") == (1, 0, 1)
    assert _cost(client, spy, "RPOP l 3") == (3, 0, 3)
    assert _cost(client, spy, "LRANGE l 10 19") == (10, 0, 0)
    assert _cost(client, spy, "LRANGE l -5 9999999999") == (5, 0, 0)
    assert _cost(client, spy, "LRANGE l 0 -1") == (2000, 0, 0)
    assert _cost(client, spy, "LTRIM l 3 -4") == (0, 0, 6)
    assert client.call("LLEN", "l") == Integer(1994)
    # A removal or insertion near an end shifts the few records on that side only.
    assert _cost(client, spy, "LREM l -1 e1990")[1:] == (5, 1)
    assert _cost(client, spy, "LINSERT l before e10 new")[1:] == (9, 0)
    # A search stops early: the first match near the head reads one chunk.
    read, _, _ = _cost(client, spy, "LPOS l e20")
    assert read <= 256
    assert _cost(client, spy, "LPOS l zz RANK -1 MAXLEN 3") == (3, 0, 0)


def test_huge_counts_are_bounded_by_the_list() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("RPUSH", "l", "a", "b", "c")
    spy = _spy(client, b"l")
    assert _cost(client, spy, "LRANGE l 0 9999999999") == (3, 0, 0)
    assert client.call("LPOS", "l", "a", "COUNT", "9223372036854775807") == _ints(0)
    assert client.call("RPOP", "l", "9223372036854775807") == bulks(b"c", b"b", b"a")
    assert client.call("EXISTS", "l") == Integer(0)


# -- a queue model ----------------------------------------------------------------------------


def _clamp(size: int, start: int, stop: int) -> tuple[int, int] | None:
    """Redis' range rule, written independently of the store's."""
    start = max(start + size if start < 0 else start, 0)
    stop = stop + size if stop < 0 else stop
    if start > stop or start >= size:
        return None
    return start, min(stop, size - 1)


def _as_bulks(values: list[bytes]) -> Array:
    return Array(tuple(Bulk(v) for v in values))


class _Model:
    """A list as a Python list, answering each command as Redis does."""

    def __init__(self) -> None:
        self.items: list[bytes] = []

    def push(self, left: bool, values: list[bytes]) -> Reply:
        for v in values:
            self.items.insert(0 if left else len(self.items), v)
        return Integer(len(self.items))

    def pop(self, left: bool, count: int | None) -> Reply:
        if not self.items:
            return NULL if count is None else NULL_ARRAY
        n = 1 if count is None else count
        taken = self.items[:n] if left else self.items[::-1][:n]
        self.items = (
            self.items[len(taken) :] if left else self.items[: len(self.items) - len(taken)]
        )
        return Bulk(taken[0]) if count is None else _as_bulks(taken)

    def lrange(self, start: int, stop: int) -> Reply:
        bounds = _clamp(len(self.items), start, stop)
        return _as_bulks([] if bounds is None else self.items[bounds[0] : bounds[1] + 1])

    def ltrim(self, start: int, stop: int) -> Reply:
        bounds = _clamp(len(self.items), start, stop)
        self.items = [] if bounds is None else self.items[bounds[0] : bounds[1] + 1]
        return OK

    def linsert(self, before: bool, pivot: bytes, value: bytes) -> Reply:
        if not self.items:
            return Integer(0)
        if pivot not in self.items:
            return Integer(-1)
        at = self.items.index(pivot)
        self.items.insert(at if before else at + 1, value)
        return Integer(len(self.items))

    def lrem(self, count: int, value: bytes) -> Reply:
        order = list(range(len(self.items)))
        if count < 0:
            order.reverse()
        hits = [i for i in order if self.items[i] == value][: abs(count) or None]
        self.items = [v for i, v in enumerate(self.items) if i not in set(hits)]
        return Integer(len(hits))

    def lset(self, index: int, value: bytes) -> Reply:
        if not self.items:
            return ErrorReply("ERR no such key")
        i = index + len(self.items) if index < 0 else index
        if not 0 <= i < len(self.items):
            return ErrorReply("ERR index out of range")
        self.items[i] = value
        return OK


_VALUES = st.sampled_from([b"a", b"b", b"c", b""])
_INDEXES = st.integers(-9, 9)
_OPS = st.one_of(
    st.tuples(st.sampled_from(["LPUSH", "RPUSH"]), st.lists(_VALUES, min_size=1, max_size=4)),
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), st.none() | st.integers(0, 6)),
    st.tuples(st.sampled_from(["LRANGE", "LTRIM"]), st.tuples(_INDEXES, _INDEXES)),
    st.tuples(st.just("LINSERT"), st.tuples(st.booleans(), _VALUES, _VALUES)),
    st.tuples(st.just("LREM"), st.tuples(st.integers(-3, 3), _VALUES)),
    st.tuples(st.just("LSET"), st.tuples(_INDEXES, _VALUES)),
)


def _run_op(client: MachineClient, model: _Model, op: tuple[str, object]) -> tuple[Reply, Reply]:
    name, arg = op
    if name in ("LPUSH", "RPUSH"):
        assert isinstance(arg, list)
        return client.call(name, "k", *arg), model.push(name == "LPUSH", arg)
    if name in ("LPOP", "RPOP"):
        assert arg is None or isinstance(arg, int)
        extra = [] if arg is None else [str(arg)]
        return client.call(name, "k", *extra), model.pop(name == "LPOP", arg)
    assert isinstance(arg, tuple)
    if name == "LRANGE":
        return client.call(name, "k", str(arg[0]), str(arg[1])), model.lrange(*arg)
    if name == "LTRIM":
        return client.call(name, "k", str(arg[0]), str(arg[1])), model.ltrim(*arg)
    if name == "LINSERT":
        before, pivot, value = arg
        where = "BEFORE" if before else "AFTER"
        return client.call(name, "k", where, pivot, value), model.linsert(before, pivot, value)
    if name == "LREM":
        return client.call(name, "k", str(arg[0]), arg[1]), model.lrem(*arg)
    return client.call(name, "k", str(arg[0]), arg[1]), model.lset(*arg)


def _check_records(client: MachineClient, model: _Model) -> None:
    records = _field_records(client, b"k")
    assert [v for _, v in records] == model.items
    positions = [p for p, _ in records]
    if positions:
        assert positions == list(range(positions[0], positions[0] + len(positions)))
    assert client.call("LLEN", "k") == Integer(len(model.items))


@settings(max_examples=150, deadline=None)
@given(st.lists(_OPS, max_size=40))
def test_list_matches_a_queue_model(ops: list[tuple[str, object]]) -> None:
    client = MachineClient(clock=FakeClock())
    model = _Model()
    for op in ops:
        ours, expected = _run_op(client, model, op)
        assert ours == expected, op
        _check_records(client, model)
    assert client.call("EXISTS", "k") == Integer(int(bool(model.items)))
