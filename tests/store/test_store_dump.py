"""DUMP and RESTORE against a real redis-server 7.0: payloads move both ways with the same
contents, DUMP is byte-identical where Cairn claims it, corrupted payloads are refused
without a crash, and a hypothesis round trip Cairn -> Cairn keeps every value."""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, RawRedis, bulks, parse_resp2, resp2

from cairn.resp.reply import OK, Bulk, Double, ErrorReply, Integer, NullBulk
from cairn.store import rdb

Call = Callable[..., object]
Argv = list[bytes]

_RNG = random.Random(7)
_RANDOM_BYTES = bytes(_RNG.randrange(256) for _ in range(300))
_TEXT = bytes(_RNG.choice(b"abcde ") for _ in range(5000))


def _b(*parts: object) -> Argv:
    return [p if isinstance(p, bytes) else str(p).encode() for p in parts]


# name -> (commands building key "k", whether Cairn's DUMP is byte-identical to Redis')
CASES: dict[str, tuple[list[Argv], bool]] = {
    "str_small": ([_b("SET", "k", "hello")], True),
    "str_ints": ([_b("SET", "k", "-32768")], True),
    "str_int64": ([_b("SET", "k", "-9223372036854775808")], True),
    "str_compressible": ([_b("SET", "k", _TEXT)], True),
    "str_repeated": ([_b("SET", "k", b"ab" * 40000)], True),
    "str_random": ([_b("SET", "k", _RANDOM_BYTES)], True),
    "str_over_lzf_limit": ([_b("SET", "k", b"abc" * 50000)], False),
    "hll": ([_b("PFADD", "k", *range(300))], True),
    "list_small": ([_b("RPUSH", "k", "a", "1", "-5000", "x" * 70, 2**40)], True),
    "list_nodes": ([_b("RPUSH", "k", *(f"elem{i}" for i in range(3000)))], True),
    "list_big_elements": ([_b("RPUSH", "k", "a" * 9000, "b", "c" * 20000)], True),
    "list_lpush": ([_b("LPUSH", "k", *(f"v{i % 50}" for i in range(2500)))], False),
    "hash_sorted": ([_b("HSET", "k", "a", 1, "b", "two", "c", "x" * 30)], True),
    "hash_unsorted": ([_b("HSET", "k", "z", 1, "a", 2, "m", 3)], False),
    "hash_long_value": ([_b("HSET", "k", "f", "v" * 100, "g", 1)], False),
    "hash_many": ([_b("HSET", "k", *(x for i in range(600) for x in (f"f{i}", i)))], False),
    "set_intset": ([_b("SADD", "k", 1, 2, -3, 70000, 2**40)], True),
    "set_intset_many": ([_b("SADD", "k", *range(400))], True),
    "set_big_ints": ([_b("SADD", "k", *range(600))], False),
    "set_strings": ([_b("SADD", "k", "a", "b", "c", "hello")], False),
    "zset_small": ([_b("ZADD", "k", 1.5, "m", 0.1, "c", 2, "a", "inf", "d", "-inf", "e")], True),
    "zset_many": ([_b("ZADD", "k", *(x for i in range(200) for x in (i * 0.25, f"m{i}")))], True),
    "zset_long_member": ([_b("ZADD", "k", 1, "x" * 80, 2, "b", 2, "a")], True),
}


def _contents(call: Call, key: bytes) -> object:
    """What a value holds, read through ordinary commands (order-free where Redis' is)."""
    kind = call(b"TYPE", key)
    if kind == b"string":
        return kind, call(b"GET", key)
    if kind == b"list":
        return kind, call(b"LRANGE", key, b"0", b"-1")
    if kind == b"hash":
        flat = call(b"HGETALL", key)
        assert isinstance(flat, list)
        return kind, sorted(zip(flat[::2], flat[1::2], strict=True))
    if kind == b"set":
        members = call(b"SMEMBERS", key)
        assert isinstance(members, list)
        return kind, sorted(members)
    if kind == b"zset":
        return kind, call(b"ZRANGE", key, b"0", b"-1", b"WITHSCORES")
    return kind, None


@pytest.fixture(scope="module")
def redis(redis_server_port: int) -> Iterator[Call]:
    conn = RawRedis(redis_server_port)

    def call(*argv: bytes) -> object:
        return parse_resp2(conn.call(list(argv)))

    yield call
    conn.close()


def _cairn() -> tuple[MachineClient, Call]:
    client = MachineClient(clock=lambda: int(time.time() * 1000))

    def call(*argv: bytes) -> object:
        return parse_resp2(resp2(client.call(*argv)))

    return client, call


def _build(call: Call, commands: Sequence[Argv]) -> None:
    call(b"DEL", b"k")
    for argv in commands:
        result = call(*argv)
        assert not (isinstance(result, tuple) and result[0] == "err"), result


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_move_both_ways(redis: Call, name: str) -> None:
    commands, identical = CASES[name]
    _, cairn = _cairn()
    _build(redis, commands)
    _build(cairn, commands)
    expected = _contents(redis, b"k")
    assert _contents(cairn, b"k") == expected

    theirs = redis(b"DUMP", b"k")
    assert isinstance(theirs, bytes)
    assert cairn(b"RESTORE", b"from_redis", b"0", theirs) == b"OK"
    assert _contents(cairn, b"from_redis") == expected

    ours = cairn(b"DUMP", b"k")
    assert isinstance(ours, bytes)
    redis(b"DEL", b"from_cairn")
    assert redis(b"RESTORE", b"from_cairn", b"0", ours) == b"OK"
    assert _contents(redis, b"from_cairn") == expected
    if identical:
        assert ours == theirs
    else:
        assert rdb.decode(ours).kind == rdb.decode(theirs).kind


def test_corrupted_payloads_are_refused(redis: Call) -> None:
    client, _ = _cairn()
    bad_footer = ErrorReply("ERR DUMP payload version or checksum are wrong")
    for name in ("str_compressible", "list_nodes", "hash_sorted", "zset_many", "set_intset"):
        _build(redis, CASES[name][0])
        payload = redis(b"DUMP", b"k")
        assert isinstance(payload, bytes)
        for i in range(1, 9):
            flipped = bytearray(payload)
            flipped[-i] ^= 0x40
            assert client.call("RESTORE", "c", "0", bytes(flipped)) == bad_footer
        for cut in (0, 1, 9, len(payload) // 2, len(payload) - 1):
            assert client.call("RESTORE", "c", "0", payload[:cut]) == bad_footer
        for cut in range(1, min(len(payload) - 10, 60)):
            reply = client.call("RESTORE", "c", "0", rdb.with_footer(payload[: cut]))
            assert reply in (OK, ErrorReply("ERR Bad data format"))
            client.call("DEL", "c")
    assert client.call("EXISTS", "c") == client.call("EXISTS", "nosuch")


def test_unsorted_intset_is_refused_though_redis_takes_it() -> None:
    """Redis 7.0 (sanitize-dump-payload no) loads an unsorted intset into a broken set;
    Cairn checks every payload fully and refuses it."""
    client = MachineClient(clock=FakeClock())
    blob = struct.pack("<II", 2, 2) + struct.pack("<hh", 2, 1)
    payload = rdb.with_footer(b"\x0b" + rdb.encode_string(blob))
    assert client.call("RESTORE", "k", "0", payload) == ErrorReply("ERR Bad data format")


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x81\xff\xff\xff\xff\xff\xff\xff\xffab",  # string of 2**64-1 bytes
        b"\x01\x81\x00\x00\x00\x01\x00\x00\x00\x00ab",  # list of 2**32 elements
        b"\x05\x80\x7f\xff\xff\xffab",  # zset of 2**31 members
        b"\x04\x80\x7f\xff\xff\xffab",  # hash of 2**31 fields
        b"\x00\xc3\x01\x80\x7f\xff\xff\xff\x00",  # LZF claiming 2 GB from 1 byte
        b"\x12\x01\x02\x80\xff\xff\xff\xf0ab",  # quicklist node of 4 GB
        b"\x10\x07\xff\xff\x00\x00\x02\x00\xff",  # listpack header claiming 65535 bytes
    ],
)
def test_huge_declared_lengths_are_refused_before_allocating(body: bytes) -> None:
    with pytest.raises(rdb.BadPayloadError):
        rdb.decode(rdb.with_footer(body))
    client = MachineClient(clock=FakeClock())
    reply = client.call("RESTORE", "k", "0", rdb.with_footer(body))
    assert reply == ErrorReply("ERR Bad data format")


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=80), st.integers(min_value=0), st.integers(0, 255))
def test_mutated_payloads_never_crash(prefix: bytes, where: int, value: int) -> None:
    base = rdb.dump_list([b"a", b"1", b"hello" * 10, prefix])
    body = bytearray(base[:-10])
    body[where % len(body)] = value
    client = MachineClient(clock=FakeClock())
    reply = client.call("RESTORE", "k", "0", rdb.with_footer(bytes(body)))
    assert reply in (OK, ErrorReply("ERR Bad data format"))
    if reply == OK:
        assert client.call("DUMP", "k") != NullBulk()


# -- older encodings, built by hand (Redis 7.0 still loads them) -----------------------------


def _zl_entry(item: bytes | int, prev: int) -> bytes:
    head = bytes([prev]) if prev < 254 else b"\xfe" + struct.pack("<I", prev)
    if isinstance(item, int):
        if 0 <= item <= 12:
            return head + bytes([0xF1 + item])
        if -128 <= item < 128:
            return head + b"\xfe" + struct.pack("<b", item)
        if -(2**15) <= item < 2**15:
            return head + b"\xc0" + struct.pack("<h", item)
        return head + b"\xe0" + struct.pack("<q", item)
    if len(item) < 64:
        return head + bytes([len(item)]) + item
    return head + bytes([0x40 | len(item) >> 8, len(item) & 0xFF]) + item


def _ziplist(items: Sequence[bytes | int]) -> bytes:
    entries, prev, tail = [], 0, 10
    for item in items:
        entry = _zl_entry(item, prev)
        tail = 10 + sum(len(e) for e in entries)
        entries.append(entry)
        prev = len(entry)
    body = b"".join(entries)
    return struct.pack("<IIH", 11 + len(body), tail, len(items)) + body + b"\xff"


def test_ziplist_encodings_restore() -> None:
    client = MachineClient(clock=FakeClock())
    items: list[bytes | int] = [b"a", 5, -100, 3000, 2**40, b"x" * 100]
    lz = rdb.encode_string(_ziplist(items))
    assert client.call("RESTORE", "l", "0", rdb.with_footer(b"\x0a" + lz)) == OK
    want = [b"a", b"5", b"-100", b"3000", b"%d" % 2**40, b"x" * 100]
    assert client.call("LRANGE", "l", "0", "-1") == _bulks(want)
    quick = b"\x0e\x02" + lz + rdb.encode_string(_ziplist([b"tail"]))
    assert client.call("RESTORE", "q", "0", rdb.with_footer(quick)) == OK
    assert client.call("LRANGE", "q", "0", "-1") == _bulks([*want, b"tail"])
    hz = rdb.encode_string(_ziplist([b"f", 1, b"g", b"v"]))
    assert client.call("RESTORE", "h", "0", rdb.with_footer(b"\x0d" + hz)) == OK
    assert client.call("HGET", "h", "f") == Bulk(b"1")
    zz = rdb.encode_string(_ziplist([b"m", b"1.5", b"n", 3]))
    assert client.call("RESTORE", "z", "0", rdb.with_footer(b"\x0c" + zz)) == OK
    assert client.call("ZSCORE", "z", "m") == Double(1.5)
    old_zset = b"\x03\x01\x01m\xfe"  # type ZSET with a text +inf score
    assert client.call("RESTORE", "z1", "0", rdb.with_footer(old_zset)) == OK
    assert client.call("ZSCORE", "z1", "m") == Double(math.inf)


def _bulks(values: Sequence[bytes]) -> object:
    return bulks(*values)


def test_restore_ttl_replace_and_busykey() -> None:
    clock = FakeClock()
    client = MachineClient(clock=clock)
    payload = rdb.dump_string(b"v")
    assert client.call("RESTORE", "k", "5000", payload) == OK
    assert client.call("PTTL", "k") == Integer(5000)
    busy = ErrorReply("BUSYKEY Target key name already exists.")
    assert client.call("RESTORE", "k", "0", payload) == busy
    clock.now += 5000
    assert client.call("RESTORE", "k", "0", payload) == OK  # the old one expired
    assert client.call("TTL", "k") == Integer(-1)
    past = str(clock.now - 1)
    assert client.call("RESTORE", "k", past, payload, "ABSTTL", "REPLACE") == OK
    assert client.call("GET", "k") == NullBulk()
    list_payload = rdb.dump_list([b"a", b"b"])
    client.call("SET", "k", "x")
    assert client.call("RESTORE", "k", "0", list_payload, "REPLACE") == OK
    assert client.call("LRANGE", "k", "0", "-1") == _bulks([b"a", b"b"])
    assert client.call("RESTORE", "k", "-1", payload, "REPLACE") == ErrorReply(
        "ERR Invalid TTL value, must be >= 0"
    )


# -- hypothesis: Cairn -> Cairn ----------------------------------------------------------------

_ELEMENT = st.one_of(
    st.binary(max_size=80),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda n: b"%d" % n),
    st.sampled_from([b"0", b"-0", b"007", b"+1", b"127", b"128", b"4095", b"-4096"]),
)
_SCORE = st.floats(allow_nan=False, width=64)


@settings(max_examples=80, deadline=None)
@given(
    st.one_of(
        st.tuples(st.just("string"), st.lists(_ELEMENT, min_size=1, max_size=1)),
        st.tuples(st.just("list"), st.lists(_ELEMENT, min_size=1, max_size=40)),
        st.tuples(st.just("set"), st.lists(_ELEMENT, min_size=1, max_size=40, unique=True)),
        st.tuples(st.just("hash"), st.lists(_ELEMENT, min_size=1, max_size=40, unique=True)),
        st.tuples(st.just("zset"), st.lists(_ELEMENT, min_size=1, max_size=40, unique=True)),
    ),
    st.lists(_SCORE, min_size=40, max_size=40),
)
def test_round_trip_cairn_to_cairn(spec: tuple[str, list[bytes]], scores: list[float]) -> None:
    kind, elements = spec
    _, cairn = _cairn()
    if kind == b"string":
        cairn(b"SET", b"k", elements[0])
    elif kind == b"list":
        cairn(b"RPUSH", b"k", *elements)
    elif kind == b"set":
        cairn(b"SADD", b"k", *elements)
    elif kind == b"hash":
        cairn(b"HSET", b"k", *(x for e in elements for x in (e, e[::-1])))
    else:
        pairs = [(repr(s).encode(), e) for s, e in zip(scores, elements, strict=False)]
        cairn(b"ZADD", b"k", *(x for pair in pairs for x in pair))
    payload = cairn(b"DUMP", b"k")
    assert isinstance(payload, bytes)
    assert rdb.verify_footer(payload)
    assert cairn(b"RESTORE", b"copy", b"0", payload) == b"OK"
    assert _contents(cairn, b"copy") == _contents(cairn, b"k")
    assert cairn(b"DUMP", b"copy") == payload


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=3, max_size=600))
def test_lzf_round_trip(data: bytes) -> None:
    packed = rdb.lzf_compress(data, len(data) + 64)
    assert packed is not None
    assert rdb.lzf_decompress(packed, len(data)) == data


def test_crc64_check_value() -> None:
    assert rdb.crc64(b"123456789") == 0xE9C6D914C4B8D9CA
