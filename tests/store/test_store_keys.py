"""Generic key commands: deletion, expiry options, TTLs, TYPE, RENAME, KEYS, SCAN, ...

Expected replies checked against redis-server 7.0; times are explicit (fake clock).
"""

from __future__ import annotations

import pytest
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, SimpleString
from cairn.store import classify

SYNTAX = ErrorReply("ERR syntax error")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
NOW_S = 1_700_000_000

DELETE: list[Step] = [
    ("MSET a 1 b 2 c 3", OK),
    ("HSET h f v g w", Integer(2)),
    ("DBSIZE", Integer(4)),
    ("EXISTS a b b missing", Integer(3)),
    ("TOUCH a missing", Integer(1)),
    ("DEL a a missing", Integer(1)),
    ("UNLINK b h", Integer(2)),
    ("HGET h f", NULL),
    ("DBSIZE", Integer(1)),
    ("FLUSHDB FOO", SYNTAX),
    ("FLUSHDB SYNC ASYNC", SYNTAX),
    ("FLUSHALL ASYNC", OK),
    ("DBSIZE", Integer(0)),
    ("RANDOMKEY", NULL),
]

EXPIRY: list[Step] = [
    ("SET k v", OK),
    ("EXPIRE missing 100", Integer(0)),
    ("EXPIRE k abc", NOT_INT),
    ("EXPIRE k 100 FOO", ErrorReply("ERR Unsupported option FOO")),
    ("EXPIRE k abc FOO", ErrorReply("ERR Unsupported option FOO")),
    (
        "EXPIRE k 100 NX XX",
        ErrorReply("ERR NX and XX, GT or LT options at the same time are not compatible"),
    ),
    ("EXPIRE k 100 GT LT", ErrorReply("ERR GT and LT options at the same time are not compatible")),
    ("EXPIRE k 9223372036854775807", ErrorReply("ERR invalid expire time in 'expire' command")),
    ("PEXPIRE k 9223372036854775807", ErrorReply("ERR invalid expire time in 'pexpire' command")),
    ("EXPIREAT k 9223372036854775807", ErrorReply("ERR invalid expire time in 'expireat' command")),
    ("EXPIRE k 100 XX", Integer(0)),
    ("EXPIRE k 100 GT", Integer(0)),
    ("EXPIRE k 100 LT", Integer(1)),
    ("TTL k", Integer(100)),
    ("EXPIRE k 200 NX", Integer(0)),
    ("EXPIRE k 200 GT", Integer(1)),
    ("EXPIRE k 50 GT", Integer(0)),
    ("EXPIRE k 300 LT", Integer(0)),
    ("EXPIRE k 50 LT", Integer(1)),
    ("PTTL k", Integer(50_000)),
    ("EXPIRETIME k", Integer(NOW_S + 50)),
    ("PEXPIRETIME k", Integer((NOW_S + 50) * 1000)),
    ("PERSIST k", Integer(1)),
    ("PERSIST k", Integer(0)),
    ("PERSIST missing", Integer(0)),
    ("TTL k", Integer(-1)),
    ("EXPIRETIME k", Integer(-1)),
    ("TTL missing", Integer(-2)),
    ("PEXPIRETIME missing", Integer(-2)),
    ("PEXPIRE k 1499", Integer(1)),
    ("TTL k", Integer(1)),
    ("PEXPIRE k 1500", Integer(1)),
    ("TTL k", Integer(2)),
    ("@+1499", OK),
    ("PTTL k", Integer(1)),
    ("DBSIZE", Integer(1)),
    ("@+1", OK),
    ("PTTL k", Integer(-2)),
    ("GET k", NULL),
    ("DBSIZE", Integer(1)),
    ("SET k v", OK),
    ("DBSIZE", Integer(1)),
    ("TTL k", Integer(-1)),
    ("EXPIRE k -1", Integer(1)),
    ("EXISTS k", Integer(0)),
    ("DBSIZE", Integer(0)),
    ("SET k v", OK),
    ("EXPIREAT k 1", Integer(1)),
    ("DBSIZE", Integer(0)),
    ("SET k v", OK),
    (f"PEXPIREAT k {(NOW_S + 100) * 1000 + 499}", Integer(1)),
    ("EXPIRETIME k", Integer(NOW_S + 100)),
    (f"PEXPIREAT k {(NOW_S + 100) * 1000 + 500}", Integer(1)),
    ("EXPIRETIME k", Integer(NOW_S + 101)),
    ("HSET h f v", Integer(1)),
    ("EXPIRE h 10", Integer(1)),
    ("HSET h g w", Integer(1)),
    ("TTL h", Integer(10)),
    ("@+10000", OK),
    ("HLEN h", Integer(0)),
    ("HSET h x y", Integer(1)),
    ("HGETALL h", Map(((Bulk(b"x"), Bulk(b"y")),))),
]

RENAME: list[Step] = [
    ("SET a v", OK),
    ("HSET h f v", Integer(1)),
    ("TYPE a", SimpleString("string")),
    ("TYPE h", SimpleString("hash")),
    ("TYPE missing", SimpleString("none")),
    ("RENAME missing x", ErrorReply("ERR no such key")),
    ("RENAMENX missing x", ErrorReply("ERR no such key")),
    ("RENAME a a", OK),
    ("RENAMENX a a", Integer(0)),
    ("EXPIRE a 100", Integer(1)),
    ("RENAME a b", OK),
    ("TTL b", Integer(100)),
    ("EXISTS a", Integer(0)),
    ("RENAME h g", OK),
    ("HGET g f", Bulk(b"v")),
    ("HLEN h", Integer(0)),
    ("RENAMENX b g", Integer(0)),
    ("RENAMENX b c", Integer(1)),
    ("RENAME g c", OK),
    ("TYPE c", SimpleString("hash")),
    ("TTL c", Integer(-1)),
    ("DBSIZE", Integer(1)),
]

KEYS: list[Step] = [
    ("MSET key:1 a key:2 b other c hello d hallo e", OK),
    ("KEYS nomatch*", Array(())),
    ("KEYS h[ae]llo", bulks(b"hello", b"hallo")),
    ("KEYS key:?", bulks(b"key:1", b"key:2")),
    ("SET gone v PX 1", OK),
    ("@+1", OK),
    ("KEYS gone", Array(())),
    ("SCAN abc", ErrorReply("ERR invalid cursor")),
    ('SCAN " 0"', ErrorReply("ERR invalid cursor")),
    ("SCAN 0 COUNT 0", SYNTAX),
    ("SCAN 0 COUNT abc", NOT_INT),
    ("SCAN 0 MATCH", SYNTAX),
    ("SCAN 0 FOO bar", SYNTAX),
    ("SCAN 0 TYPE nosuchtype", Array((Bulk(b"0"), Array(())))),
    ("SCAN 0 MATCH gone", Array((Bulk(b"0"), Array(())))),
    ("SCAN 0 MATCH h*llo COUNT 100", Array((Bulk(b"0"), bulks(b"hello", b"hallo")))),
    ("HSET hh f v", Integer(1)),
    ("SCAN 0 TYPE HASH", Array((Bulk(b"0"), bulks(b"hh")))),
]


@pytest.mark.parametrize(
    "steps", [DELETE, EXPIRY, RENAME, KEYS], ids=["delete", "expiry", "rename", "keys"]
)
def test_key_commands(steps: list[Step]) -> None:
    run_steps(steps)


def test_keys_are_in_slot_order() -> None:
    client = run_steps([("MSET foo 1 bar 2 hello 3", OK)])
    # slots: hello 866, bar 5061, foo 12182
    assert client.call("KEYS", "*") == bulks(b"hello", b"bar", b"foo")


def test_randomkey_returns_a_live_key() -> None:
    client = run_steps([("MSET a 1 b 2 c 3", OK), ("SET d v PX 1", OK), ("@+1", OK)])
    seen = {client.call("RANDOMKEY") for _ in range(50)}
    assert seen <= {Bulk(b"a"), Bulk(b"b"), Bulk(b"c")} and len(seen) >= 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([b"foo"], "ERR unknown command 'foo', with args beginning with: "),
        ([b"foo", b"a", b"b"], "ERR unknown command 'foo', with args beginning with: 'a' 'b' "),
        ([b"FooBar", b"x\r\ny"], "ERR unknown command 'FooBar', with args beginning with: 'x  y' "),
        ([b"get"], "ERR wrong number of arguments for 'get' command"),
        ([b"GET", b"a", b"b"], "ERR wrong number of arguments for 'get' command"),
        ([b"hset", b"h", b"f"], "ERR wrong number of arguments for 'hset' command"),
        (
            [b"cairn.expiredel", b"k"],
            "ERR unknown command 'cairn.expiredel', with args beginning with: 'k' ",
        ),
    ],
)
def test_classify_errors(argv: list[bytes], message: str) -> None:
    assert classify(argv) == ErrorReply(message)


def test_unknown_command_quotes_at_most_about_128_bytes() -> None:
    reply = classify([b"nope", b"a" * 100, b"b" * 100, b"c"])
    expected = "'" + "a" * 100 + "' '" + "b" * 25 + "' "
    assert reply == ErrorReply(f"ERR unknown command 'nope', with args beginning with: {expected}")


def test_classify_finds_spec() -> None:
    spec = classify([b"MSET", b"a", b"1"])
    assert not isinstance(spec, ErrorReply)
    assert spec.name == "mset" and spec.is_write
    assert spec.keys([b"MSET", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]


def test_reads_never_write() -> None:
    client = MachineClient(clock=FakeClock())
    client.call("SET", "k", "v", "PX", "5")
    before = client.machine.keyspace.count()
    assert isinstance(client.clock, FakeClock)
    client.clock.now += 10
    assert client.call("GET", "k") == NULL
    assert client.machine.keyspace.count() == before
