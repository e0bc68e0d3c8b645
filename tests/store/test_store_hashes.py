"""Hash commands: tables checked against redis-server 7.0 (field order aside: Cairn
returns fields in byte order, Redis in insertion or hash order)."""

from __future__ import annotations

from store_harness import MachineClient, Step, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import NULL, OK, Array, Bulk, ErrorReply, Integer, Map, Pairs

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = ErrorReply("ERR value is not an integer or out of range")
NOT_FLOAT = ErrorReply("ERR value is not a valid float")

BASICS: list[Step] = [
    ("HSET h f1 v1", Integer(1)),
    ("HSET h f1 v1b f2 v2 f3 v3", Integer(2)),
    ("HSET h f4 a f4 b", Integer(1)),
    ("HGET h f4", Bulk(b"b")),
    ("HGET h nope", NULL),
    ("HGET missing f", NULL),
    ("HMGET h f1 nope f2", bulks(b"v1b", None, b"v2")),
    ("HMGET missing a b", bulks(None, None)),
    ("HLEN h", Integer(4)),
    ("HLEN missing", Integer(0)),
    ("HEXISTS h f1", Integer(1)),
    ("HEXISTS h nope", Integer(0)),
    ("HSTRLEN h f1", Integer(3)),
    ("HSTRLEN h nope", Integer(0)),
    ("HSETNX h f1 x", Integer(0)),
    ("HSETNX h f5 x", Integer(1)),
    ("HMSET h f0 z", OK),
    (
        "HGETALL h",
        Map(
            tuple(
                (Bulk(f), Bulk(v))
                for f, v in [
                    (b"f0", b"z"),
                    (b"f1", b"v1b"),
                    (b"f2", b"v2"),
                    (b"f3", b"v3"),
                    (b"f4", b"b"),
                    (b"f5", b"x"),
                ]
            )
        ),
    ),
    ("HKEYS h", bulks(b"f0", b"f1", b"f2", b"f3", b"f4", b"f5")),
    ("HVALS h", bulks(b"z", b"v1b", b"v2", b"v3", b"b", b"x")),
    ("HGETALL missing", Map(())),
    ("HDEL h f1 f1 nope", Integer(1)),
    ("HDEL missing f", Integer(0)),
    ("HLEN h", Integer(5)),
    ("HDEL h f0 f2 f3 f4 f5", Integer(5)),
    ("EXISTS h", Integer(0)),
    ("DBSIZE", Integer(0)),
    ('HSET h "" ""', Integer(1)),
    ('HGET h ""', Bulk(b"")),
    ("HSET h f", ErrorReply("ERR wrong number of arguments for 'hset' command")),
    ("HMSET h f v g", ErrorReply("ERR wrong number of arguments for 'hmset' command")),
]

WRONG_TYPES: list[Step] = [
    ("SET s v", OK),
    ("HSET s f v", WRONGTYPE),
    ("HSETNX s f v", WRONGTYPE),
    ("HGET s f", WRONGTYPE),
    ("HMGET s f", WRONGTYPE),
    ("HMSET s f v", WRONGTYPE),
    ("HGETALL s", WRONGTYPE),
    ("HDEL s f", WRONGTYPE),
    ("HEXISTS s f", WRONGTYPE),
    ("HLEN s", WRONGTYPE),
    ("HKEYS s", WRONGTYPE),
    ("HVALS s", WRONGTYPE),
    ("HSTRLEN s f", WRONGTYPE),
    ("HINCRBY s f 1", WRONGTYPE),
    ("HINCRBY s f x", NOT_INT),
    ("HINCRBYFLOAT s f 1", WRONGTYPE),
    ("HINCRBYFLOAT s f x", NOT_FLOAT),
    ("HSCAN s 0", WRONGTYPE),
    ("HSCAN s x", ErrorReply("ERR invalid cursor")),
]

COUNTERS: list[Step] = [
    ("HINCRBY h f 5", Integer(5)),
    ("HINCRBY h f -10", Integer(-5)),
    ("HINCRBY h f 1.5", NOT_INT),
    ("HSET h big 9223372036854775807", Integer(1)),
    ("HINCRBY h big 1", ErrorReply("ERR increment or decrement would overflow")),
    ("HSET h s abc", Integer(1)),
    ("HINCRBY h s 1", ErrorReply("ERR hash value is not an integer")),
    ("HINCRBYFLOAT h g 0.1", Bulk(b"0.1")),
    ("HINCRBYFLOAT h g 0.2", Bulk(b"0.3")),
    ("HINCRBYFLOAT h g abc", NOT_FLOAT),
    ("HINCRBYFLOAT h g inf", ErrorReply("ERR value is NaN or Infinity")),
    ("HINCRBYFLOAT h g nan", NOT_FLOAT),
    ("HINCRBYFLOAT h s 1", ErrorReply("ERR hash value is not a float")),
    ("HINCRBYFLOAT h f 0.5", Bulk(b"-4.5")),
    ("HSET h huge 1e4932", Integer(1)),
    ("HINCRBYFLOAT h huge 1e4932", ErrorReply("ERR increment would produce NaN or Infinity")),
    ("HLEN h", Integer(5)),
]

SCANS: list[Step] = [
    ("HSET h a 1 b 2 c 3", Integer(3)),
    ("HSCAN h 0", Array((Bulk(b"0"), bulks(b"a", b"1", b"b", b"2", b"c", b"3")))),
    ("HSCAN h 0 COUNT 1", Array((Bulk(b"0"), bulks(b"a", b"1", b"b", b"2", b"c", b"3")))),
    ("HSCAN h 0 MATCH b*", Array((Bulk(b"0"), bulks(b"b", b"2")))),
    ("HSCAN missing 0", Array((Bulk(b"0"), Array(())))),
    ("HSCAN missing 0 COUNT 0", Array((Bulk(b"0"), Array(())))),
    ("HSCAN h 0 COUNT 0", ErrorReply("ERR syntax error")),
    ("HSCAN h 0 TYPE string", ErrorReply("ERR syntax error")),
]


def test_hash_basics() -> None:
    run_steps(BASICS)


def test_hash_wrong_types() -> None:
    run_steps(WRONG_TYPES)


def test_hash_counters() -> None:
    run_steps(COUNTERS)


def test_hash_scans() -> None:
    run_steps(SCANS)


def test_hscan_pages_large_hash() -> None:
    client = run_steps([])
    fields = [b"f%03d" % i for i in range(300)]
    client.call("HSET", "h", *[x for f in fields for x in (f, b"v")])
    seen = _hscan_all(client, count=7)
    assert seen == fields


def _hscan_all(client: MachineClient, count: int) -> list[bytes]:
    cursor, seen, calls = b"0", [], 0
    while True:
        reply = client.call("HSCAN", "h", cursor, "COUNT", str(count))
        assert isinstance(reply, Array)
        head, body = reply.items
        assert isinstance(head, Bulk) and isinstance(body, Array)
        seen += [item.value for item in body.items[::2] if isinstance(item, Bulk)]
        cursor, calls = head.value, calls + 1
        if cursor == b"0":
            return seen
        assert calls < 1000


def test_hset_overwriting_expired_hash_starts_empty() -> None:
    client = run_steps([("HSET h a 1 b 2", Integer(2)), ("PEXPIRE h 5", Integer(1)), ("@+5", OK)])
    assert client.call("HSET", "h", "c", "3") == Integer(1)
    assert client.call("HGETALL", "h") == Map(((Bulk(b"c"), Bulk(b"3")),))
    assert client.call("HLEN", "h") == Integer(1)


RANDFIELD: list[Step] = [
    ("HRANDFIELD missing", NULL),
    ("HRANDFIELD missing 3", Array(())),
    ("HRANDFIELD missing 1 foo", ErrorReply("ERR syntax error")),
    ("HSET h a 1", Integer(1)),
    ("HRANDFIELD h", Bulk(b"a")),
    ("HRANDFIELD h -3", bulks(b"a", b"a", b"a")),
    ("HRANDFIELD h -2 WITHVALUES", Pairs(((Bulk(b"a"), Bulk(b"1")),) * 2)),
    ("HRANDFIELD h 0", Array(())),
    (
        "HRANDFIELD h -9223372036854775808",
        ErrorReply(
            "ERR value is out of range, value must between "
            "-9223372036854775807 and 9223372036854775807"
        ),
    ),
    ("HRANDFIELD h 9223372036854775807 WITHVALUES", ErrorReply("ERR value is out of range")),
    ("HRANDFIELD h 1 WITHVALUES x", ErrorReply("ERR syntax error")),
    (
        "HRANDFIELD h -3000000",
        ErrorReply("ERR count is out of range: at most 100000 elements with repetition"),
    ),
    ("HRANDFIELD h -100001 WITHVALUES", ErrorReply(
        "ERR count is out of range: at most 100000 elements with repetition"
    )),
    ("HRANDFIELD h x", NOT_INT),
    ("SET s v", OK),
    ("HRANDFIELD s", WRONGTYPE),
    ("HRANDFIELD s x", NOT_INT),
    ("HSET h b 2 c 3", Integer(2)),
    ("HRANDFIELD h 5", bulks(b"a", b"b", b"c")),
]


def test_hrandfield() -> None:
    client = run_steps(RANDFIELD)
    for _ in range(20):
        reply = client.call("HRANDFIELD", "h", "2")
        assert isinstance(reply, Array) and len(reply.items) == 2
        assert len(set(reply.items)) == 2 and set(reply.items) <= set(bulks(b"a", b"b", b"c").items)


def test_hrandfield_withvalues_nests_pairs_in_resp3() -> None:
    client = run_steps([("HSET h a 1", Integer(1))])
    reply = client.call("HRANDFIELD", "h", "-2", "WITHVALUES")
    pair = b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert encode(reply, 3) == b"*2\r\n" + pair * 2, "bytes from redis-server 7.0.15"
    assert encode(reply, 2) == b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n1\r\n"
