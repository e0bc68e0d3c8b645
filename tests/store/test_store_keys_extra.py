"""COPY, OBJECT and SORT / SORT_RO: tables checked against redis-server 7.0, the thresholds
OBJECT reads from a node's settings, and `strtod` (SORT's score parsing) against libc."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, Reply, SimpleString
from cairn.store import set_records, zset_records
from cairn.store.commands.sort import LIST_ORIGIN, pattern_slot, sort_keys, strtod
from cairn.store.db import Db
from cairn.store.encodings import ObjectSettings
from cairn.store.layout import Meta, ValueType
from cairn.store.slot import key_slot

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
SYNTAX = ErrorReply("ERR syntax error")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
OUT_OF_RANGE = ErrorReply("ERR DB index is out of range")
SAME = ErrorReply("ERR source and destination objects are the same")

COPIES: list[Step] = [
    ("COPY missing dst", Integer(0)),
    ("SET s1 hello", OK),
    ("COPY s1 s2", Integer(1)),
    ("GET s2", Bulk(b"hello")),
    ("COPY s1 s2", Integer(0)),
    ("SET s1 world", OK),
    ("COPY s1 s2 REPLACE", Integer(1)),
    ("GET s2", Bulk(b"world")),
    ("COPY s1 s1", SAME),
    ("COPY s1 s2 DB 0 REPLACE", Integer(1)),
    ("COPY s1 s2 DB 1", OUT_OF_RANGE),
    ("COPY s1 s2 DB 15", OUT_OF_RANGE),
    ("COPY s1 s2 DB -1", OUT_OF_RANGE),
    ("COPY s1 s2 DB x", NOT_INT),
    (
        "COPY s1 s2 DB 2147483648",
        ErrorReply("ERR value is out of range, value must between -2147483648 and 2147483647"),
    ),
    ("COPY s1 s2 DB", SYNTAX),
    ("COPY s1 s2 REPLACE FOO", SYNTAX),
    ("COPY s1 s1 FOO", SYNTAX),
    ("DBSIZE", Integer(2)),
    ("HSET h a 1 b 2", Integer(2)),
    ("COPY h s1", Integer(0)),
    ("COPY h s1 REPLACE", Integer(1)),
    ("TYPE s1", SimpleString("hash")),
    ("HSET s1 c 3", Integer(1)),
    ("HLEN h", Integer(2)),
    ("HLEN s1", Integer(3)),
    ("COPY s2 s1 REPLACE", Integer(1)),
    ("TYPE s1", SimpleString("string")),
    ("HGETALL s1", WRONGTYPE),
    ("DBSIZE", Integer(3)),
]

COPY_EXPIRY: list[Step] = [
    ("SET a v PX 1000", OK),
    ("COPY a b", Integer(1)),
    ("PTTL b", Integer(1000)),
    ("SET c v", OK),
    ("COPY c d", Integer(1)),
    ("PTTL d", Integer(-1)),
    ("SET old x PX 10", OK),
    ("@+500", NULL),
    ("COPY c old", Integer(1)),
    ("GET old", Bulk(b"v")),
    ("@+600", NULL),
    ("COPY a e", Integer(0)),
    ("EXISTS b e", Integer(0)),
    ("DBSIZE", Integer(4)),  # c, d, old, and b: expired, not yet deleted (as Redis counts)
]


def test_copy() -> None:
    run_steps(COPIES)


def test_copy_keeps_the_ttl_and_skips_expired_keys() -> None:
    run_steps(COPY_EXPIRY)


def test_copy_of_a_large_hash_then_rename_and_delete() -> None:
    client = MachineClient(clock=FakeClock())
    pairs = [x for i in range(2500) for x in (b"f%05d" % i, b"v%d" % i)]
    assert client.call("HSET", "big", *pairs) == Integer(2500)
    assert client.call("COPY", "big", "copy") == Integer(1)
    assert client.call("HLEN", "copy") == Integer(2500)
    assert client.call("HGETALL", "copy") == client.call("HGETALL", "big")
    assert client.call("RENAME", "copy", "moved") == OK
    assert client.call("HGET", "moved", "f02499") == Bulk(b"v2499")
    assert client.call("DEL", "big") == Integer(1)
    assert client.call("HLEN", "moved") == Integer(2500)
    assert client.call("DEL", "moved") == Integer(1)
    assert client.call("DBSIZE") == Integer(0)
    assert client.reclaim_all() >= 1  # 2,500 fields each: buried, reclaimed in steps
    assert list(client.machine.keyspace.scan(b"F", b"H")) == []


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), min_size=1, max_size=30))
def test_copy_matches_a_dict_model(fields: dict[bytes, bytes]) -> None:
    client = MachineClient(clock=FakeClock())
    client.call("HSET", "src", *[x for f, v in fields.items() for x in (f, v)])
    assert client.call("COPY", "src", "dst") == Integer(1)
    assert _hash(client, "dst") == fields == _hash(client, "src")
    assert client.call("COPY", "src", "dst") == Integer(0)


def _hash(client: MachineClient, key: str) -> dict[bytes, bytes]:
    reply = client.call("HGETALL", key)
    assert isinstance(reply, Map)
    found = {}
    for name, value in reply.pairs:
        assert isinstance(name, Bulk) and isinstance(value, Bulk)
        found[name.value] = value.value
    return found


OBJECTS: list[Step] = [
    ("OBJECT ENCODING missing", NULL),
    ("OBJECT REFCOUNT missing", NULL),
    ("OBJECT FREQ missing", NULL),
    ("OBJECT IDLETIME missing", NULL),
    ("SET i 12345", OK),
    ("OBJECT ENCODING i", Bulk(b"int")),
    ("SET big 9223372036854775808", OK),
    ("OBJECT ENCODING big", Bulk(b"embstr")),
    ("SET z -0", OK),
    ("OBJECT ENCODING z", Bulk(b"embstr")),
    ("SET s " + "a" * 44, OK),
    ("OBJECT ENCODING s", Bulk(b"embstr")),
    ("SET r " + "a" * 45, OK),
    ("OBJECT ENCODING r", Bulk(b"raw")),
    ("SET n 9999", OK),
    ("OBJECT REFCOUNT n", Integer(2147483647)),
    ("SET n 10000", OK),
    ("OBJECT REFCOUNT n", Integer(1)),
    ("OBJECT REFCOUNT s", Integer(1)),
    ("OBJECT IDLETIME s", Integer(0)),
    (
        "OBJECT FREQ s",
        ErrorReply(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
            "Please note that when switching between policies at runtime LRU and LFU data "
            "will take some time to adjust."
        ),
    ),
    ("OBJECT foo", ErrorReply("ERR unknown subcommand 'foo'. Try OBJECT HELP.")),
    ("OBJECT ENCODING", ErrorReply("ERR wrong number of arguments for 'object|encoding' command")),
    ("OBJECT HELP x", ErrorReply("ERR wrong number of arguments for 'object|help' command")),
    ("HSET h f v", Integer(1)),
    ("OBJECT ENCODING h", Bulk(b"listpack")),
    ("HSET h f " + "v" * 65, Integer(0)),
    ("OBJECT ENCODING h", Bulk(b"hashtable")),
    ("HSET h f short", Integer(0)),
    ("OBJECT ENCODING h", Bulk(b"listpack")),
]


def test_object() -> None:
    client = run_steps(OBJECTS)
    help_reply = client.call("OBJECT", "HELP")
    assert isinstance(help_reply, Array) and len(help_reply.items) == 15


def _read(client: MachineClient, knobs: ObjectSettings, *argv: str) -> Reply:
    """A read served with a node's OBJECT settings, as the node passes them."""
    args = [a.encode() for a in argv]
    now = client.clock()
    return client.machine.execute_read(args[0].lower().decode(), args[1:], now, settings=knobs)


def test_object_encoding_follows_the_node_thresholds() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert _read(client, ObjectSettings(), "OBJECT", "ENCODING", "h") == Bulk(b"listpack")
    small = ObjectSettings(hash_max_listpack_entries=2)
    assert _read(client, small, "OBJECT", "ENCODING", "h") == Bulk(b"hashtable")
    exact = ObjectSettings(hash_max_listpack_entries=3, hash_max_listpack_value=1)
    assert _read(client, exact, "OBJECT", "ENCODING", "h") == Bulk(b"listpack")
    short = ObjectSettings(hash_max_listpack_value=0)
    assert _read(client, short, "OBJECT", "ENCODING", "h") == Bulk(b"hashtable")
    none = ObjectSettings(hash_max_listpack_entries=0)
    assert _read(client, none, "OBJECT", "ENCODING", "h") == Bulk(b"hashtable")


def test_object_freq_and_idletime_follow_the_policy() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "s", "abc")
    client.call("SET", "n", "7")
    lfu = ObjectSettings(maxmemory_policy="allkeys-lfu")
    assert _read(client, lfu, "OBJECT", "FREQ", "s") == Integer(5)
    assert _read(client, lfu, "OBJECT", "FREQ", "n") == Integer(0)
    idle = _read(client, lfu, "OBJECT", "IDLETIME", "s")
    assert isinstance(idle, ErrorReply) and "LFU maxmemory policy is selected" in idle.message
    lru = ObjectSettings(maxmemory_policy="volatile-lru")
    assert _read(client, lru, "OBJECT", "IDLETIME", "s") == Integer(0)
    assert _read(client, lru, "OBJECT", "REFCOUNT", "n") == Integer(2147483647)
    limited = ObjectSettings(maxmemory=1 << 30, maxmemory_policy="allkeys-lru")
    assert _read(client, limited, "OBJECT", "REFCOUNT", "n") == Integer(1)


def test_object_encoding_reads_no_element_over_the_threshold() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("HSET", "h", *[x for i in range(600) for x in (b"f%d" % i, b"v")])
    reads: list[bytes] = []
    keyspace = client.machine.keyspace
    original = keyspace.scan

    def counting_scan(*args: object, **kwargs: object) -> object:
        reads.append(b"scan")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    keyspace.scan = counting_scan  # type: ignore[method-assign]
    assert client.call("OBJECT", "ENCODING", "h") == Bulk(b"hashtable")
    assert reads == []


# -- strtod ----------------------------------------------------------------------------

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_LIBC.strtod.restype = ctypes.c_double
_LIBC.strtod.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
_ERANGE = 34


def _libc_strtod(data: bytes) -> tuple[float, int, bool] | None:
    buf = ctypes.create_string_buffer(data)
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = _LIBC.strtod(buf, ctypes.byref(end))
    erange = ctypes.get_errno() == _ERANGE
    consumed = (ctypes.cast(end, ctypes.c_void_p).value or 0) - ctypes.addressof(buf)
    return None if consumed == 0 else (value, consumed, erange)


def _same(ours: tuple[float, int, bool] | None, theirs: tuple[float, int, bool] | None) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    if ours[1:] != theirs[1:]:
        return False
    if math.isnan(ours[0]) or math.isnan(theirs[0]):
        return math.isnan(ours[0]) and math.isnan(theirs[0])
    return ours[0] == theirs[0] and math.copysign(1, ours[0]) == math.copysign(1, theirs[0])


STRTOD_CASES = [
    b"1e-310",
    b"0x1p-1074",
    b"0x1p-1075",
    b"1e-400",
    b"1e400",
    b"2.2250738585072011e-308",
    b"0x",
    b"0x.p1",
    b"1e",
    b"1e+",
    b" 12",
    b"inf",
    b"-nan",
    b"nan(abc)",
    b"infinit",
    b".",
    b"-.e1",
    b"0x1.8p1",
    b"1_0",
    b"",
    b"  -0x1P-3x",
    b"1e-99999999999",
    b"0x1p99999",
    b"-0",
    b"12\x0034",
    b"\t+7.5e3 ",
    b"1.8e308",
]


def test_strtod_matches_libc_on_edge_cases() -> None:
    for case in STRTOD_CASES:
        assert _same(strtod(case), _libc_strtod(case.split(b"\0")[0])), case


_NUMBERISH = st.text(alphabet="0123456789+-.eEpPxXaAfFinNty ()\t", max_size=14)


@settings(max_examples=400, deadline=None)
@given(_NUMBERISH)
def test_strtod_matches_libc(text: str) -> None:
    data = text.encode()
    assert _same(strtod(data), _libc_strtod(data))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False))
def test_strtod_reads_back_every_double(value: float) -> None:
    for text in (repr(value).encode(), value.hex().encode()):
        assert _same(strtod(text), _libc_strtod(text))


# -- SORT ------------------------------------------------------------------------------------


def _build(client: MachineClient, argv: list[bytes]) -> Reply | None:
    """RPUSH / SADD / ZADD written as records of the layouts (the list, set and sorted-set
    commands land separately), so SORT is tested on every type; None for other commands."""
    name = argv[0].lower()
    if name not in (b"rpush", b"sadd", b"zadd"):
        return None
    machine = client.machine
    batch = machine.keyspace.begin()
    db = Db(machine.keyspace, batch, client.clock())
    key, rest = argv[1], argv[2:]
    meta = db.lookup(key)
    if name == b"rpush":
        head = LIST_ORIGIN if meta is None else meta.head
        size = 0 if meta is None else meta.size
        for i, value in enumerate(rest):
            db.put_field(key, (head + size + i).to_bytes(8, "big"), value)
        db.put_meta(key, Meta(ValueType.LIST, size=size + len(rest), head=head), meta is not None)
    elif name == b"sadd":
        size = 0 if meta is None else meta.size
        for member in rest:
            if not set_records.has(db, key, member):
                set_records.add(db, key, member, size)
                size += 1
        db.put_meta(key, Meta(ValueType.SET, size=size), meta is not None)
    else:
        for i in range(0, len(rest), 2):
            member = rest[i + 1]
            old = zset_records.score_of(db, key, member)
            zset_records.put_member(db, key, member, float(rest[i]), old)
        size = len(zset_records.members(db, key))
        db.put_meta(key, Meta(ValueType.ZSET, size=size), meta is not None)
    batch.commit()
    return Integer(0)


SORT_LINES = """
RPUSH {s}n 3 1 2 10 -5 1.5 1e1 -0 0 +7 " 4" 0x10 inf -inf 1e-5
RPUSH {s}w banana apple cherry apple Apple ""
RPUSH {s}bad 1 abc 2
RPUSH {s}nan 1 nan
RPUSH {s}big 1e400 2
RPUSH {s}tiny 1e-400 2
SADD {s}set 3 1 2 20
SADD {s}ws pear fig kiwi
ZADD {s}z 3 a 1 b 2 c 2 d -1 e
SET {s}w_3 30
SET {s}w_1 -10
SET {s}w_2 20
SET {s}w_10 x
SET {s}w_a 5
SET {s}w_b 1
SET {s}w_c 5
HSET {s}h_1 f one g 11
HSET {s}h_2 f two g 2
HSET {s}h_3 f three
HSET {s}h_a f A
SET {s}str v
HSET {s}hash f v
SORT {s}n
SORT {s}n DESC
SORT {s}n LIMIT 0 3
SORT {s}n LIMIT 2 4 DESC
SORT {s}n LIMIT -1 2
SORT {s}n LIMIT 13 5
SORT {s}n LIMIT 14 5
SORT {s}n LIMIT 15 5
SORT {s}n LIMIT 0 0
SORT {s}n LIMIT 1 -1
SORT {s}n LIMIT -5 -5
SORT {s}n LIMIT 2 100000000000
SORT {s}n LIMIT x 1
SORT {s}n LIMIT 1
SORT {s}n ALPHA
SORT {s}n ALPHA DESC LIMIT 1 3
SORT {s}w ALPHA
SORT {s}w ALPHA DESC
SORT {s}w
SORT {s}bad
SORT {s}bad ALPHA
SORT {s}nan
SORT {s}n BY nosort
SORT {s}n BY nosort DESC
SORT {s}n BY nosort LIMIT 2 3
SORT {s}n BY nosort DESC LIMIT 2 3
SORT {s}n BY nosort LIMIT 20 3
SORT {s}set
SORT {s}set DESC
SORT {s}set BY {s}w_*
SORT {s}set BY {s}w_* DESC GET # GET {s}w_* GET {s}h_*->f
SORT {s}set BY {s}h_*->g
SORT {s}set BY {s}h_*->f ALPHA
SORT {s}set BY {s}h_*->f ALPHA DESC
SORT {s}set BY {s}missing_* GET {s}missing_*
SORT {s}set BY {s}w_* ALPHA
SORT {s}ws ALPHA
SORT {s}ws BY nosort # unordered
SORT {s}ws BY nosort STORE {s}dst
SORT {s}dst BY nosort
SORT {s}set STORE {s}dst
SORT {s}dst BY nosort
TYPE {s}dst
SORT {s}set GET {s}h_*->f STORE {s}dst
SORT {s}dst BY nosort
SORT {s}z
SORT {s}z ALPHA
SORT {s}z BY nosort
SORT {s}z BY nosort DESC
SORT {s}z BY nosort LIMIT 1 2
SORT {s}z BY nosort DESC LIMIT 1 2
SORT {s}z BY nosort LIMIT 9 2
SORT {s}z BY {s}w_* GET # GET {s}w_*
SORT {s}z BY {s}w_* DESC LIMIT 0 2 GET #
SORT {s}z GET {s}h_*->f ALPHA
SORT {s}z BY {s}h_*->f GET {s}h_*->f
SORT {s}z GET {s}h_*-> GET {s}h_*->fx GET {s}h_*->
SORT {s}z GET # GET {s}fixed
SORT {s}missing
SORT {s}missing STORE {s}dst
EXISTS {s}dst
SET {s}dst x
SORT {s}missing STORE {s}dst
EXISTS {s}dst
SET {s}dst x EX 100
SORT {s}n LIMIT 0 2 STORE {s}dst
TTL {s}dst
SORT {s}dst BY nosort
SORT {s}n STORE {s}n
SORT {s}n BY nosort
SORT {s}str
SORT {s}hash
SORT {s}str FOO
SORT {s}n FOO
SORT {s}n STORE
SORT {s}n GET
SORT {s}n BY
SORT_RO {s}n
SORT_RO {s}n DESC LIMIT 1 2
SORT_RO {s}n STORE {s}dst
SORT_RO {s}set BY {s}w_* GET # GET {s}w_*
SORT_RO {s}str
SORT_RO {s}missing
SORT
SORT_RO
SORT {s}big
SORT {s}tiny
"""
"""Redis never clears errno before its strtod: once 1e400 or 1e-400 set ERANGE, every later
numeric SORT of that server fails until some other call resets errno. Those two go last."""


def test_sort_matches_real_redis(redis_server_port: int) -> None:
    from store_harness import RawRedis, normalize, resp2
    from store_script import parse_script

    theirs = RawRedis(redis_server_port)
    theirs.call([b"FLUSHALL"])
    ours = MachineClient(clock=FakeClock())
    mismatches = []
    for line in parse_script(SORT_LINES):
        expected = theirs.call(list(line.argv))
        built = _build(ours, list(line.argv))
        if built is not None:
            continue
        got = resp2(ours.call(*line.argv))
        if normalize(expected, line.tags, line.argv) != normalize(got, line.tags, line.argv):
            mismatches.append(f"{line.argv!r}: redis {expected!r} cairn {got!r}")
    theirs.call([b"FLUSHALL"])
    theirs.close()
    assert not mismatches, "\n".join(mismatches)


def test_sort_refuses_patterns_that_may_reach_another_slot() -> None:
    client = MachineClient(clock=FakeClock())
    _build(client, [b"RPUSH", b"{u}l", b"2", b"1"])
    by = ErrorReply(
        "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may "
        "be in different slots."
    )
    get = ErrorReply(by.message.replace("BY option", "GET option"))
    assert client.call("SORT", "{u}l", "BY", "w_*") == by
    assert client.call("SORT", "{u}l", "BY", "{v}w_*") == by
    assert client.call("SORT", "{u}l", "BY", "{*}w") == by
    assert client.call("SORT", "{u}l", "GET", "x_*") == get
    assert client.call("SORT_RO", "{u}l", "GET", "{u}x_*", "GET", "y_*->f") == get
    assert client.call("SORT", "{u}l", "LIMIT", "x", "1", "BY", "w_*") == NOT_INT
    assert client.call("SORT", "{u}l", "BY", "w_*", "LIMIT", "x", "1") == by
    assert client.call("SORT", "{u}l", "GET", "#", "GET", "fixed", "BY", "const") == bulks(
        b"2", None, b"1", None
    )
    client.call("SET", "{u}w_1", "9")
    assert client.call("SORT", "{u}l", "BY", "{u}w_*", "GET", "{u}w_*") == bulks(None, b"9")


def test_pattern_slot_is_redis_pattern_hash_slot() -> None:
    assert pattern_slot(b"{u}w_*") == key_slot(b"u")
    assert pattern_slot(b"abc") == key_slot(b"abc")
    assert pattern_slot(b"w_*{u}") == -1
    assert pattern_slot(b"{}{u}w_*") == -1
    assert pattern_slot(b"{u\\}w_*") == -1
    assert pattern_slot(b"{}abc") == key_slot(b"{}abc")


def test_sort_keys_finds_the_last_store() -> None:
    assert sort_keys([b"SORT", b"k"]) == [b"k"]
    assert sort_keys([b"SORT", b"k", b"STORE", b"d"]) == [b"k", b"d"]
    assert sort_keys([b"SORT", b"k", b"store", b"d", b"STORE", b"e"]) == [b"k", b"e"]
    assert sort_keys([b"SORT", b"k", b"GET", b"store", b"LIMIT", b"0", b"1"]) == [b"k"]
    assert sort_keys([b"SORT", b"k", b"STORE"]) == [b"k"]
    assert sort_keys([b"SORT", b"k", b"STORE", b"STORE", b"x"]) == [b"k", b"x"]


def test_sort_store_replaces_any_type_and_the_ttl() -> None:
    client = MachineClient(clock=FakeClock())
    _build(client, [b"ZADD", b"{u}z", b"2", b"b", b"1", b"a"])
    client.call("HSET", "{u}d", "f", "v")
    client.call("EXPIRE", "{u}d", "100")
    assert client.call("SORT", "{u}z", "ALPHA", "STORE", "{u}d") == Integer(2)
    assert client.call("TYPE", "{u}d") == SimpleString("list")
    assert client.call("TTL", "{u}d") == Integer(-1)
    assert client.call("OBJECT", "ENCODING", "{u}d") == Bulk(b"quicklist")
    assert client.call("SORT_RO", "{u}d", "BY", "nosort", "DESC") == bulks(b"b", b"a")
    assert client.call("SORT", "{u}none", "STORE", "{u}d") == Integer(0)
    assert client.call("EXISTS", "{u}d") == Integer(0)
    assert client.call("DBSIZE") == Integer(1)


def test_sort_by_constant_reads_only_the_limit() -> None:
    client = MachineClient(clock=FakeClock())
    _build(client, [b"RPUSH", b"l", *[b"%d" % i for i in range(5000)]])
    reads: list[int | None] = []
    original = client.machine.keyspace.scan

    def counting_scan(start: bytes, end: bytes | None, limit: int | None = None) -> object:
        reads.append(limit)
        return original(start, end, limit)

    client.machine.keyspace.scan = counting_scan  # type: ignore[method-assign,assignment]
    got = client.call("SORT_RO", "l", "BY", "nosort", "LIMIT", "4000", "3")
    assert got == bulks(b"4000", b"4001", b"4002")
    assert reads == [3]


def test_object_encoding_of_sets_and_sorted_sets() -> None:
    client = MachineClient(clock=FakeClock())
    _build(client, [b"SADD", b"si", b"1", b"-2", b"30"])
    _build(client, [b"SADD", b"sh", b"1", b"x"])
    _build(client, [b"SADD", b"s0", b"01"])
    _build(client, [b"ZADD", b"zs", b"1", b"a", b"2", b"b"])
    _build(client, [b"ZADD", b"zl", b"1", b"a" * 65])
    _build(client, [b"RPUSH", b"l", b"a"])
    assert client.call("OBJECT", "ENCODING", "si") == Bulk(b"intset")
    assert client.call("OBJECT", "ENCODING", "sh") == Bulk(b"hashtable")
    assert client.call("OBJECT", "ENCODING", "s0") == Bulk(b"hashtable")
    assert client.call("OBJECT", "ENCODING", "zs") == Bulk(b"listpack")
    assert client.call("OBJECT", "ENCODING", "zl") == Bulk(b"skiplist")
    assert client.call("OBJECT", "ENCODING", "l") == Bulk(b"quicklist")
    few = ObjectSettings(set_max_intset_entries=2, zset_max_listpack_entries=1)
    assert _read(client, few, "OBJECT", "ENCODING", "si") == Bulk(b"hashtable")
    assert _read(client, few, "OBJECT", "ENCODING", "zs") == Bulk(b"skiplist")
    assert client.call("COPY", "zs", "zc") == Integer(1)
    assert client.call("SORT_RO", "zc", "BY", "nosort", "DESC") == bulks(b"b", b"a")
    assert client.call("COPY", "l", "lc") == Integer(1)
    assert client.call("SORT_RO", "lc", "BY", "nosort") == bulks(b"a")
