"""String commands: (command -> reply) tables run in order on one machine with a fake clock.

Every expected reply here was checked against redis-server 7.0.
"""

from __future__ import annotations

import pytest
from store_harness import Step, bulks, run_steps

from cairn.resp.reply import NULL, OK, Bulk, ErrorReply, Integer

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
NOT_FLOAT = ErrorReply("ERR value is not a valid float")
SYNTAX = ErrorReply("ERR syntax error")
OVERFLOW = ErrorReply("ERR increment or decrement would overflow")
TOO_BIG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
NOW_S = 1_700_000_000


def expire_err(name: str) -> ErrorReply:
    return ErrorReply(f"ERR invalid expire time in '{name}' command")


def arity(name: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


SET_GET: list[Step] = [
    ("GET k", NULL),
    ("SET k v", OK),
    ("GET k", Bulk(b"v")),
    ('SET k "a\\x00b"', OK),
    ("GET k", Bulk(b"a\x00b")),
    ("SET k v NX", NULL),
    ("SET k w XX", OK),
    ("SET n v XX", NULL),
    ("GET n", NULL),
    ("SET k a NX XX", SYNTAX),
    ("SET k a nx nx", NULL),
    ("SET k b GET", Bulk(b"w")),
    ("SET n z GET", NULL),
    ("SET k d NX GET", Bulk(b"b")),
    ("GET k", Bulk(b"b")),
    ("SET k a EX", SYNTAX),
    ("SET k a EX 10 PX 100", SYNTAX),
    ("SET k a EX 10 KEEPTTL", SYNTAX),
    ("SET k a KEEPTTL EX 10", SYNTAX),
    ("SET k a PERSIST", SYNTAX),
    ("SET k a FOO", SYNTAX),
    ("SET k a EX 0", expire_err("set")),
    ("SET k a PX -1", expire_err("set")),
    ("SET k a EXAT 0", expire_err("set")),
    ("SET k a EX abc", NOT_INT),
    ("SET k a EX 9223372036854775807", expire_err("set")),
    ("SET k a PX 9223372036854775807", expire_err("set")),
    ("SET k a EX 0 EX 100", OK),
    ("TTL k", Integer(100)),
    ("SET k b KEEPTTL", OK),
    ("TTL k", Integer(100)),
    ("SET k c", OK),
    ("TTL k", Integer(-1)),
    ("SET k d PX 1500", OK),
    ("PTTL k", Integer(1500)),
    ("TTL k", Integer(2)),
    ("@+1499", OK),
    ("GET k", Bulk(b"d")),
    ("@+1", OK),
    ("GET k", NULL),
    ("EXISTS k", Integer(0)),
    (f"SET k e EXAT {NOW_S + 11}", OK),  # the clock is now NOW_S + 1.5 s
    ("TTL k", Integer(10)),
    (f"SET k e PXAT {NOW_S * 1000 + 1510}", OK),
    ("PTTL k", Integer(10)),
    ("HSET h f v", Integer(1)),
    ("SET h v GET", WRONGTYPE),
    ("SET h v GET EX 0", expire_err("set")),
    ("SET h v", OK),
    ("GET h", Bulk(b"v")),
    ("HGET h f", WRONGTYPE),
]

VARIANTS: list[Step] = [
    ("SETNX k 1", Integer(1)),
    ("SETNX k 2", Integer(0)),
    ("GET k", Bulk(b"1")),
    ("SETEX s 100 v", OK),
    ("TTL s", Integer(100)),
    ("SETEX s 0 v", expire_err("setex")),
    ("SETEX s x v", NOT_INT),
    ("PSETEX p 100 v", OK),
    ("PTTL p", Integer(100)),
    ("PSETEX p -1 v", expire_err("psetex")),
    ("GETSET g 1", NULL),
    ("SETEX g 100 2", OK),
    ("GETSET g 3", Bulk(b"2")),
    ("TTL g", Integer(-1)),
    ("GETDEL g", Bulk(b"3")),
    ("GETDEL g", NULL),
    ("HSET h f v", Integer(1)),
    ("GETSET h x", WRONGTYPE),
    ("GETDEL h", WRONGTYPE),
    ("GET h", WRONGTYPE),
    ("GETEX h", WRONGTYPE),
    ("GETEX k EX 100", Bulk(b"1")),
    ("TTL k", Integer(100)),
    ("GETEX k PERSIST", Bulk(b"1")),
    ("TTL k", Integer(-1)),
    ("GETEX k PX 5", Bulk(b"1")),
    ("PTTL k", Integer(5)),
    (f"GETEX k EXAT {NOW_S + 7}", Bulk(b"1")),
    ("TTL k", Integer(7)),
    ("GETEX k EX 0", expire_err("getex")),
    ("GETEX k PERSIST EX 1", SYNTAX),
    ("GETEX k KEEPTTL", SYNTAX),
    ("GETEX k NX", SYNTAX),
    ("GETEX k GET", SYNTAX),
    ("GETEX missing EX abc", NULL),
    ("GETEX k PXAT 1", Bulk(b"1")),
    ("EXISTS k", Integer(0)),
    ("MSET a 1 b 2", OK),
    ("MGET a b h missing", bulks(b"1", b"2", None, None)),
    ("MSET a", arity("mset")),
    ("MSET a 1 b", arity("mset")),
    ("MSETNX a 1 c 3", Integer(0)),
    ("GET c", NULL),
    ("MSETNX c 3 d 4", Integer(1)),
    ("MSETNX e 1 f", arity("msetnx")),
    ("MGET c d", bulks(b"3", b"4")),
]

COUNTERS: list[Step] = [
    ("INCR c", Integer(1)),
    ("INCRBY c 10", Integer(11)),
    ("DECR c", Integer(10)),
    ("DECRBY c -5", Integer(15)),
    ("INCRBY c abc", NOT_INT),
    ("INCRBY c +1", NOT_INT),
    ("INCRBY c 01", NOT_INT),
    ('INCRBY c " 1"', NOT_INT),
    ("INCRBY c 9223372036854775808", NOT_INT),
    ("DECRBY c -9223372036854775808", ErrorReply("ERR decrement would overflow")),
    ("SET big 9223372036854775806", OK),
    ("INCR big", Integer(9223372036854775807)),
    ("INCR big", OVERFLOW),
    ("SET small -9223372036854775808", OK),
    ("DECR small", OVERFLOW),
    ("SET s abc", OK),
    ("INCR s", NOT_INT),
    ("SET s -0", OK),
    ("INCR s", NOT_INT),
    ("SET t 10", OK),
    ("EXPIRE t 100", Integer(1)),
    ("INCR t", Integer(11)),
    ("TTL t", Integer(100)),
    ("HSET h f v", Integer(1)),
    ("INCR h", WRONGTYPE),
    ("INCRBYFLOAT h 1", WRONGTYPE),
    ("INCRBYFLOAT f 0.1", Bulk(b"0.1")),
    ("INCRBYFLOAT f 0.1", Bulk(b"0.2")),
    ("INCRBYFLOAT f 0.1", Bulk(b"0.3")),
    ("INCRBYFLOAT f -0.3", Bulk(b"0")),
    ("INCRBYFLOAT f 5.0e3", Bulk(b"5000")),
    ("INCRBYFLOAT f 0x1p-2", Bulk(b"5000.25")),
    ("INCRBYFLOAT g 1.23456789012345678901234567890", Bulk(b"1.23456789012345679")),
    ("INCRBYFLOAT g -1.23456789012345678901234567890", Bulk(b"0")),
    ("INCRBYFLOAT g -0.000000000000000006", Bulk(b"-0.00000000000000001")),
    ("INCRBYFLOAT f abc", NOT_FLOAT),
    ('INCRBYFLOAT f ""', NOT_FLOAT),
    ("INCRBYFLOAT f nan", NOT_FLOAT),
    ("INCRBYFLOAT f 1e5000", NOT_FLOAT),
    ("INCRBYFLOAT f 1e-5000", NOT_FLOAT),
    ("INCRBYFLOAT f inf", ErrorReply("ERR increment would produce NaN or Infinity")),
    ("SET s abc", OK),
    ("INCRBYFLOAT s 1", NOT_FLOAT),
    ("SET i 10", OK),
    ("INCRBYFLOAT i 1", Bulk(b"11")),
    ("INCR i", Integer(12)),
]

RANGES: list[Step] = [
    ("APPEND a hello", Integer(5)),
    ('APPEND a " world"', Integer(11)),
    ("STRLEN a", Integer(11)),
    ("STRLEN missing", Integer(0)),
    ("GETRANGE a 0 4", Bulk(b"hello")),
    ("GETRANGE a -5 -1", Bulk(b"world")),
    ("GETRANGE a -100 100", Bulk(b"hello world")),
    ("GETRANGE a 5 3", Bulk(b"")),
    ("GETRANGE a -1 -5", Bulk(b"")),
    ("GETRANGE a 100 200", Bulk(b"")),
    ("GETRANGE missing 0 1", Bulk(b"")),
    ("GETRANGE a x 1", NOT_INT),
    ("GETRANGE missing x 1", NOT_INT),
    ("SETRANGE r 5 abc", Integer(8)),
    ("GET r", Bulk(b"\x00" * 5 + b"abc")),
    ("SETRANGE r 0 XY", Integer(8)),
    ("SETRANGE r 7 longer", Integer(13)),
    ("GET r", Bulk(b"XY\x00\x00\x00ablonger")),
    ('SETRANGE r 0 ""', Integer(13)),
    ('SETRANGE e 3 ""', Integer(0)),
    ("EXISTS e", Integer(0)),
    ("SETRANGE r -1 x", ErrorReply("ERR offset is out of range")),
    ("SETRANGE r 536870912 x", TOO_BIG),
    ("SETRANGE missing 536870912 x", TOO_BIG),
    ("HSET h f v", Integer(1)),
    ("APPEND h x", WRONGTYPE),
    ("STRLEN h", WRONGTYPE),
    ("GETRANGE h 0 1", WRONGTYPE),
    ("SETRANGE h 0 x", WRONGTYPE),
    ('SETRANGE h 0 ""', WRONGTYPE),
]


@pytest.mark.parametrize(
    "steps",
    [SET_GET, VARIANTS, COUNTERS, RANGES],
    ids=["set-get", "variants", "counters", "ranges"],
)
def test_string_commands(steps: list[Step]) -> None:
    run_steps(steps)
