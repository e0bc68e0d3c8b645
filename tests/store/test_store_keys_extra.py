"""COPY, OBJECT and SORT / SORT_RO: tables checked against redis-server 7.0, the thresholds
OBJECT reads from a node's settings, and `strtod` (SORT's score parsing) against libc."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, run_steps

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, Reply, SimpleString
from cairn.store.commands.sort import strtod
from cairn.store.encodings import ObjectSettings

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
    assert list(client.machine.keyspace.scan(b"F", b"G")) == []


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
