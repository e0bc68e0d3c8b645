"""Bounds audit: every integer-looking argument of every store command, given a huge,
negative or overflowing value, is answered quickly, in little memory, with an error or a
bounded reply (issue 14 "Limits everywhere", issue 11's range checks, defect 3).

`TEMPLATES` names, per command, argument shapes in which `N` stands for the integer
position under test; keys hold small values of every type (`_seed`). A command with no
integer argument is listed in `NO_INTEGER`, so a new command must be placed in one of the
two (the test fails otherwise). Each call runs under a CPU-time and tracemalloc bound.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest
from store_harness import MachineClient, resp2

from cairn.resp.reply import Array, ErrorReply, Integer
from cairn.store import rdb
from cairn.store.commands.spec import MAX_WRITE_STRING
from cairn.store.commands.table import COMMANDS
from cairn.store.rdb import (
    DECODE_BUDGET,
    ELEMENT_COST,
    T_SET_LISTPACK,
    T_STRING,
    BadPayloadError,
    PayloadTooLargeError,
    decode,
    encode_length,
    listpack,
    with_footer,
)

HUGE = (
    b"-3000000000",
    b"9999999999",
    b"4294967296",
    b"536870911",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"-1",
    b"-2147483648",
)
"""The values tried at each integer position."""

CPU_BOUND_S = 0.2
"""The most CPU time one call may take (the store runs on the node's event loop)."""

MEMORY_BOUND = 8 * 1024 * 1024
"""The most memory (tracemalloc peak) one call may allocate."""

REPLY_BOUND = 4 * 1024 * 1024
"""The largest reply one call may produce (RESP2 bytes)."""

TEMPLATES: dict[str, list[str]] = {
    "append": [],
    "bitcount": ["bits N -1", "bits 0 N", "bits N N BIT", "bits 0 N BYTE"],
    "bitfield": [
        "bits GET u8 N",
        "bits SET u8 N 1",
        "bits INCRBY u8 N 1",
        "bits SET i64 N N",
        "bits INCRBY i64 0 N",
        "bits GET uN 0",
        "bits GET u8 #N",
        "bits SET u8 #N 1",
    ],
    "bitfield_ro": ["bits GET u8 N", "bits GET u8 #N", "bits GET iN 0"],
    "bitop": [],
    "bitpos": ["bits 1 N", "bits 0 0 N", "bits 1 N N BIT", "bits 0 N", "bits N"],
    "blmove": ["list list2 LEFT RIGHT N"],
    "blmpop": ["N 1 list LEFT", "0.01 N list LEFT", "0.01 1 list LEFT COUNT N"],
    "blpop": ["list N", "nokey N"],
    "brpop": ["list N"],
    "brpoplpush": ["list list2 N"],
    "bzmpop": ["N 1 zset MIN", "0.01 N zset MIN", "0.01 1 zset MAX COUNT N"],
    "bzpopmax": ["zset N"],
    "bzpopmin": ["zset N"],
    "copy": ["str dst DB N"],
    "decrby": ["num N", "str N"],
    "expire": ["str N", "str N NX"],
    "expireat": ["str N"],
    "geoadd": ["geo N 0 m1", "geo 0 N m1"],
    "geodist": [],
    "georadius": [
        "geo 0 0 N m",
        "geo 0 0 1 km COUNT N",
        "geo 0 0 N km COUNT N ANY",
        "geo N N 1 km",
    ],
    "georadius_ro": ["geo 0 0 N m", "geo 0 0 1 km COUNT N"],
    "georadiusbymember": ["geo a N m", "geo a 1 km COUNT N"],
    "georadiusbymember_ro": ["geo a N m", "geo a 1 km COUNT N"],
    "geosearch": [
        "geo FROMLONLAT 0 0 BYRADIUS N m",
        "geo FROMLONLAT 0 0 BYBOX N N m",
        "geo FROMMEMBER a BYRADIUS 1 km COUNT N",
        "geo FROMLONLAT 0 0 BYRADIUS N km COUNT N ANY",
    ],
    "geosearchstore": [
        "dst geo FROMLONLAT 0 0 BYRADIUS N m",
        "dst geo FROMLONLAT 0 0 BYBOX N N m COUNT N",
    ],
    "getbit": ["bits N", "str N"],
    "getex": ["str EX N", "str PX N", "str EXAT N", "str PXAT N"],
    "getrange": ["str N N", "str 0 N", "str N -1", "nokey 0 N"],
    "hincrby": ["hash f N", "hash n N"],
    "hincrbyfloat": ["hash f N"],
    "hrandfield": ["hash N", "hash N WITHVALUES", "nokey N"],
    "hscan": ["hash N", "hash 0 COUNT N"],
    "incrby": ["num N", "str N"],
    "incrbyfloat": ["num N"],
    "lcs": [],
    "lindex": ["list N"],
    "linsert": [],
    "lmpop": ["N list LEFT", "1 list LEFT COUNT N"],
    "lpop": ["list N", "nokey N"],
    "lpos": ["list a RANK N", "list a COUNT N", "list a MAXLEN N", "list a RANK N COUNT N"],
    "lrange": ["list 0 N", "list N N", "list N -1", "list -N N"],
    "lrem": ["list N a"],
    "lset": ["list N x"],
    "ltrim": ["list 0 N", "list N N", "list N -1"],
    "memory": ["USAGE hash SAMPLES N", "USAGE zset SAMPLES N"],
    "object": [],
    "pexpire": ["str N", "str N GT"],
    "pexpireat": ["str N"],
    "psetex": ["k N v"],
    "restore": ["k N DUMP", "k 0 DUMP IDLETIME N", "k 0 DUMP FREQ N", "k N DUMP ABSTTL"],
    "rpop": ["list N"],
    "scan": ["N", "0 COUNT N", "0 COUNT N TYPE string"],
    "set": ["k v EX N", "k v PX N", "k v EXAT N", "k v PXAT N"],
    "setbit": ["bits N 1", "bits N 0", "str N 1"],
    "setex": ["k N v"],
    "setrange": ["str N x", "nokey N x", "str N ''"],
    "sintercard": ["N set", "1 set LIMIT N"],
    "sort": ["list LIMIT N N", "list LIMIT 0 N", "list LIMIT N 1", "num LIMIT N N"],
    "sort_ro": ["list LIMIT N N", "list LIMIT 0 N"],
    "spop": ["set N", "nokey N"],
    "srandmember": ["set N", "nokey N"],
    "sscan": ["set N", "set 0 COUNT N"],
    "substr": ["str N N", "str 0 N"],
    "xack": [],
    "xadd": [
        "stream MAXLEN N * f v",
        "stream MAXLEN ~ N LIMIT N * f v",
        "stream MINID N * f v",
        "stream N-N f v",
        "stream N f v",
    ],
    "xautoclaim": ["stream grp c N 0", "stream grp c 0 0 COUNT N", "stream grp c 0 N-0"],
    "xclaim": [
        "stream grp c N 1-1",
        "stream grp c 0 1-1 IDLE N",
        "stream grp c 0 1-1 TIME N",
        "stream grp c 0 1-1 RETRYCOUNT N",
        "stream grp c 0 1-1 FORCE RETRYCOUNT N",
    ],
    "xdel": ["stream N-0"],
    "xgroup": ["CREATE stream g2 N", "SETID stream grp N-N", "CREATE stream g3 $ ENTRIESREAD N"],
    "xinfo": ["STREAM stream FULL COUNT N"],
    "xpending": ["stream grp - + N", "stream grp IDLE N - + 10", "stream grp N-0 + 1"],
    "xrange": ["stream - + COUNT N", "stream N +", "stream N-N +"],
    "xread": ["COUNT N STREAMS stream 0", "BLOCK N STREAMS nokey $", "STREAMS stream N"],
    "xreadgroup": [
        "GROUP grp c COUNT N STREAMS stream >",
        "GROUP grp c BLOCK N STREAMS stream >",
        "GROUP grp c STREAMS stream N",
    ],
    "xrevrange": ["stream + - COUNT N", "stream + N"],
    "xsetid": ["stream N-N", "stream 99-0 ENTRIESADDED N MAXDELETEDID 0-1"],
    "xtrim": ["stream MAXLEN N", "stream MAXLEN ~ N LIMIT N", "stream MINID N"],
    "zadd": ["zset N m", "zset INCR N a"],
    "zcount": ["zset N N", "zset -inf N"],
    "zdiff": ["N zset", "1 zset WITHSCORES"],
    "zdiffstore": ["dst N zset"],
    "zincrby": ["zset N a"],
    "zinter": ["N zset", "1 zset WEIGHTS N", "1 zset WEIGHTS N AGGREGATE SUM"],
    "zintercard": ["N zset", "1 zset LIMIT N"],
    "zinterstore": ["dst N zset", "dst 1 zset WEIGHTS N"],
    "zmpop": ["N zset MIN", "1 zset MIN COUNT N"],
    "zmscore": [],
    "zpopmax": ["zset N"],
    "zpopmin": ["zset N", "nokey N"],
    "zrandmember": ["zset N", "zset N WITHSCORES", "nokey N"],
    "zrange": [
        "zset 0 N",
        "zset N N",
        "zset N -1 REV",
        "zset -inf +inf BYSCORE LIMIT N N",
        "zset - + BYLEX LIMIT 0 N",
        "zset N N BYSCORE",
    ],
    "zrangebylex": ["zset - + LIMIT N N", "zset - + LIMIT 0 N"],
    "zrangebyscore": ["zset N N", "zset -inf +inf LIMIT N N", "zset -inf +inf LIMIT 0 N"],
    "zrangestore": ["dst zset 0 N", "dst zset N N", "dst zset -inf +inf BYSCORE LIMIT 0 N"],
    "zremrangebyrank": ["zset 0 N", "zset N N", "zset N -1"],
    "zremrangebyscore": ["zset N N"],
    "zrevrange": ["zset 0 N", "zset N N"],
    "zrevrangebylex": ["zset + - LIMIT N N"],
    "zrevrangebyscore": ["zset N N", "zset +inf -inf LIMIT 0 N"],
    "zscan": ["zset N", "zset 0 COUNT N"],
    "zunion": ["N zset", "1 zset WEIGHTS N"],
    "zunionstore": ["dst N zset", "dst 1 zset WEIGHTS N"],
    "sinterstore": [],
    "lmove": [],
    "eval": ["return N", "return 1 N", "return N str"],
    "eval_ro": ["return N", "return 1 N"],
    "evalsha": ["e0e1f9fabfc9d4800c877a703b823ac0578ff8db N", "0000 N str"],
    "evalsha_ro": ["e0e1f9fabfc9d4800c877a703b823ac0578ff8db N"],
    "fcall": ["nosuchfn N", "nosuchfn 1 N", "nosuchfn N str"],
    "fcall_ro": ["nosuchfn N", "nosuchfn 1 N"],
}
"""Argument shapes per command; `N` is the position under test, `DUMP` a DUMP payload."""

_NO_INTEGER_NAMES = """
    append bitop dbsize decr del dump exists expiretime flushall flushdb geodist geohash geopos
    get getdel getset hdel hexists hget hgetall hkeys hlen hmget hmset hset hsetnx hstrlen hvals
    function incr keys lcs linsert llen lmove lpush lpushx mget mset msetnx object persist
    pexpiretime
    pfadd pfcount pfmerge pttl randomkey rename renamenx rpoplpush rpush rpushx sadd scard script
    sdiff sdiffstore setnx sinter sinterstore sismember smembers smismember smove srem strlen
    sunion sunionstore touch ttl type unlink xack xlen zcard zlexcount zmscore zrank zrem
    zremrangebylex zrevrank zscore
"""
NO_INTEGER = frozenset(_NO_INTEGER_NAMES.split())
"""Commands with no integer argument (a count, index, range, offset, timeout)."""


def _seed(client: MachineClient) -> bytes:
    """Small values of every type; the DUMP payload of a small list."""
    setup = [
        "SET str hello",
        "SET num 10",
        "RPUSH list a b c a",
        "HSET hash f v n 5",
        "SADD set a b c",
        "ZADD zset 1 a 2 b 3 c",
        "SETBIT bits 7 1",
        "GEOADD geo 13.36 38.11 a 15.08 37.50 b",
        "PFADD hll a b",
        "XADD stream 1-1 f v",
        "XGROUP CREATE stream grp 0",
        "XREADGROUP GROUP grp c STREAMS stream >",
    ]
    for line in setup:
        reply = client.call(*line.split())
        assert not isinstance(reply, ErrorReply), (line, reply)
    dump = client.call("DUMP", "list")
    value = getattr(dump, "value", None)
    assert isinstance(value, bytes)
    return value


def _cases() -> Iterator[tuple[str, str]]:
    for name in sorted(TEMPLATES):
        for shape in TEMPLATES[name]:
            yield name, shape


def test_every_command_is_classified() -> None:
    """Each command is audited (`TEMPLATES` has shapes) or has no integer argument."""
    names = {spec.name for spec in COMMANDS.values()} if isinstance(COMMANDS, dict) else set()
    if not names:
        names = {getattr(spec, "name", spec) for spec in COMMANDS}
    names = {str(n).lower() for n in names}
    with_shapes = {n for n, shapes in TEMPLATES.items() if shapes}
    missing = names - with_shapes - NO_INTEGER
    assert not missing, f"unaudited commands: {sorted(missing)}"
    assert not (with_shapes - names), sorted(with_shapes - names)


def _substitute(word: str, value: bytes) -> bytes:
    """`word` with its `N` placeholder replaced (keywords such as NX are left alone)."""
    if word == "N":
        return value
    if word in ("-N",):
        return b"-" + value.lstrip(b"-")
    if word.startswith(("#", "u", "i")) and word[1:] == "N":
        return word[:1].encode() + value
    if word in ("N-N", "N-0"):
        return word.replace("N", value.decode()).encode()
    return word.encode()


def _build(name: str, shape: str, value: bytes, dump: bytes) -> list[bytes]:
    args = [name.upper().encode()]
    for word in shape.split():
        if word == "DUMP":
            args.append(dump)
        elif word == "''":
            args.append(b"")
        else:
            args.append(_substitute(word, value))
    return args


@pytest.mark.parametrize(("name", "shape"), list(_cases()))
def test_huge_integer_arguments_are_bounded(name: str, shape: str) -> None:
    """Every value in `HUGE` at the shape's `N`: quick, small, an error or a small reply."""
    client = MachineClient(clock=lambda: 1_700_000_000_000)
    dump = _seed(client)
    for value in HUGE:
        argv = _build(name, shape, value, dump)
        tracemalloc.start()
        started = time.process_time()
        try:
            reply = client.call(*argv)
            spent = time.process_time() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        size = len(resp2(reply))
        label = b" ".join(a if len(a) < 40 else b"<dump>" for a in argv)
        assert spent < CPU_BOUND_S, (label, spent)
        assert peak < MEMORY_BOUND, (label, peak)
        assert size < REPLY_BOUND, (label, size)


# -- the fixes the audit led to --------------------------------------------------------------

STRING_LIMIT = ErrorReply(
    "ERR string exceeds maximum allowed size (Cairn's string limit is 16777216 bytes)"
)
TOO_BIG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


def _client() -> MachineClient:
    return MachineClient(clock=lambda: 1_700_000_000_000)


def test_strings_grow_to_the_write_limit_and_no_further() -> None:
    """SETRANGE, APPEND, SETBIT and BITFIELD build strings up to `MAX_WRITE_STRING` (16 MiB);
    past it Cairn's error (Redis would build 512 MiB), past 512 MiB Redis' own."""
    client = _client()
    cap = MAX_WRITE_STRING
    assert client.call("SETRANGE", "s", str(cap), "x") == STRING_LIMIT
    assert client.call("SETRANGE", "s", str(512 << 20), "x") == TOO_BIG
    assert client.call("SETBIT", "b", str(cap * 8), "1") == STRING_LIMIT
    assert client.call("BITFIELD", "f", "SET", "u8", str(cap * 8 - 7), "1") == STRING_LIMIT
    assert client.call("EXISTS", "s", "b", "f") == Integer(0)
    assert client.call("SETRANGE", "s", str(cap - 1), "x") == Integer(cap)
    assert client.call("APPEND", "s", "y") == STRING_LIMIT
    assert client.call("STRLEN", "s") == Integer(cap)
    assert client.call("SETBIT", "b", str(cap * 8 - 1), "1") == Integer(0)
    assert client.call("BITFIELD", "f", "SET", "u8", str(cap * 8 - 8), "1") == Array(
        (Integer(0),)
    )


def test_delivery_counts_wrap_like_redis() -> None:
    """XCLAIM RETRYCOUNT 2**63-1 then a claim: Redis' counter wraps to -2**63; Cairn's did
    not fit its record and the write crashed."""
    client = _client()
    client.call("XADD", "s", "1-1", "f", "v")
    client.call("XGROUP", "CREATE", "s", "g", "0")
    client.call("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    top = str(2**63 - 1)
    client.call("XCLAIM", "s", "g", "c", "0", "1-1", "RETRYCOUNT", top, "JUSTID")
    client.call("XCLAIM", "s", "g", "c", "0", "1-1")
    reply = client.call("XPENDING", "s", "g", "-", "+", "10")
    assert isinstance(reply, Array)
    row = reply.items[0]
    assert isinstance(row, Array)
    assert row.items[3] == Integer(-(2**63))


def _payload(body: bytes) -> bytes:
    return with_footer(body)


def test_restore_refuses_a_string_that_decodes_past_the_budget() -> None:
    """An LZF string declaring more than the budget is refused before decompressing."""
    packed = b"\x00a" * 600
    body = bytes([T_STRING, 0xC3]) + encode_length(len(packed)) + encode_length(50_000)
    payload = _payload(body + packed)
    with pytest.raises(PayloadTooLargeError):
        decode(payload, budget=40_000)
    with pytest.raises(BadPayloadError):  # within the budget: decoded (and found bad)
        decode(payload, budget=60_000)


def test_restore_charges_every_element_before_parsing() -> None:
    """A listpack of 20000 small integers costs ELEMENT_COST each: refused under a budget
    that holds its bytes but not its elements, loaded under one that holds both."""
    members = [b"%d" % i for i in range(20_000)]
    blob = listpack(members)
    payload = _payload(bytes([T_SET_LISTPACK]) + encode_length(len(blob)) + blob)
    with pytest.raises(PayloadTooLargeError):
        decode(payload, budget=len(blob) * 4)
    value = decode(payload, budget=len(blob) + len(blob) // 2 * ELEMENT_COST)
    assert len(value.items) == 20_000


def test_restore_answers_the_budget_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """RESTORE of a payload past `DECODE_BUDGET` (lowered here to keep the payload small)
    gets Cairn's error, a Bad data format."""
    monkeypatch.setattr(rdb, "DECODE_BUDGET", 1 << 20)
    assert DECODE_BUDGET == 256 << 20
    packed = bytes(20_000)
    out = (1 << 20) + 1
    body = bytes([T_STRING, 0xC3]) + encode_length(len(packed)) + encode_length(out)
    client = _client()
    reply = client.call("RESTORE", "k", "0", _payload(body + packed))
    assert isinstance(reply, ErrorReply)
    assert reply.message.startswith("ERR Bad data format: the payload decodes to more than")
    assert client.call("EXISTS", "k") == Integer(0)
