"""Stream commands: replies checked against redis-server 7.0 (RESP2 and RESP3 bytes), the
XADD `*` id rule on the entry's now_ms, approximate trimming, XREAD BLOCK's `Blocked`
outcome, and a model test of XADD/XDEL/XTRIM/XRANGE."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from store_harness import FakeClock, MachineClient, Step, bulks, run_steps

from cairn.resp.codec import encode
from cairn.resp.reply import NULL, NULL_ARRAY, OK, Array, Bulk, ErrorReply, Integer, SimpleString
from cairn.store.commands.blocking import Blocked, blocked_retry_args, command_timeout_ms
from cairn.store.commands.stream_ids import parse_u64

WRONGTYPE = ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")


def entry(entry_id: str, *fields: str) -> Array:
    return Array((Bulk(entry_id.encode()), bulks(*(f.encode() for f in fields))))


def three_entries_one_deleted() -> MachineClient:
    return run_steps(
        [
            ("XADD s 1-1 a 1", Bulk(b"1-1")),
            ("XADD s 2-2 b 2", Bulk(b"2-2")),
            ("XADD s 3-3 c 3", Bulk(b"3-3")),
            ("XDEL s 2-2", Integer(1)),
        ]
    )


def test_xinfo_stream_bytes_match_redis_in_both_protocols() -> None:
    client = three_entries_one_deleted()
    info = client.call("XINFO", "STREAM", "s")
    assert encode(info, 3) == (
        b"%10\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes"
        b"\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n3-3\r\n$20\r\nmax-deleted-entry-id\r\n"
        b"$3\r\n2-2\r\n$13\r\nentries-added\r\n:3\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n"
        b"1-1\r\n$6\r\ngroups\r\n:0\r\n$11\r\nfirst-entry\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na"
        b"\r\n$1\r\n1\r\n$10\r\nlast-entry\r\n*2\r\n$3\r\n3-3\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n"
    )
    assert encode(info, 2).startswith(b"*20\r\n$6\r\nlength\r\n:2\r\n")
    full = client.call("XINFO", "STREAM", "s", "FULL")
    assert encode(full, 3) == (
        b"%9\r\n$6\r\nlength\r\n:2\r\n$15\r\nradix-tree-keys\r\n:1\r\n$16\r\nradix-tree-nodes"
        b"\r\n:2\r\n$17\r\nlast-generated-id\r\n$3\r\n3-3\r\n$20\r\nmax-deleted-entry-id\r\n"
        b"$3\r\n2-2\r\n$13\r\nentries-added\r\n:3\r\n$23\r\nrecorded-first-entry-id\r\n$3\r\n"
        b"1-1\r\n$7\r\nentries\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n"
        b"$3\r\n3-3\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n$6\r\ngroups\r\n*0\r\n"
    )


def test_xread_is_a_map_in_resp3_and_pairs_in_resp2() -> None:
    client = three_entries_one_deleted()
    reply = client.call("XREAD", "STREAMS", "s", "0")
    assert encode(reply, 3) == (
        b"%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n"
        b"3-3\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n"
    )
    assert encode(reply, 2).startswith(b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n")
    assert encode(client.call("XREAD", "STREAMS", "s", "9"), 3) == b"_\r\n"
    assert encode(client.call("XRANGE", "s", "-", "+", "COUNT", "0"), 3) == b"_\r\n"
    assert encode(client.call("XREAD", "STREAMS", "s", "9"), 2) == b"*-1\r\n"


def test_auto_ids_follow_now_ms_and_never_go_back() -> None:
    clock = FakeClock(now=5000)
    client = MachineClient(clock=clock)
    assert client.call("XADD", "s", "*", "f", "v") == Bulk(b"5000-0")
    assert client.call("XADD", "s", "*", "f", "v") == Bulk(b"5000-1")
    clock.now = 4000  # a clock step back (e.g. a new leader): the machine's now holds
    assert client.call("XADD", "s", "*", "f", "v") == Bulk(b"5000-2")
    assert client.call("XADD", "s", "9000-7", "f", "v") == Bulk(b"9000-7")
    clock.now = 6000
    assert client.call("XADD", "s", "*", "f", "v") == Bulk(b"9000-8")
    assert client.call("XADD", "s", "9000-*", "f", "v") == Bulk(b"9000-9")
    assert client.call("XADD", "s", "9001-*", "f", "v") == Bulk(b"9001-0")
    clock.now = 20000
    assert client.call("XADD", "s", "*", "f", "v") == Bulk(b"20000-0")
    assert client.call("XLEN", "s") == Integer(8)


def test_approximate_trim_removes_whole_nodes_like_redis() -> None:
    client = MachineClient(clock=FakeClock())
    for i in range(1, 251):
        client.call("XADD", "s", f"{i}-1", "a", "b")
    # Checked against redis-server 7.0: 250 small entries are nodes of 100, 100, 50.
    assert client.call("XTRIM", "s", "MAXLEN", "~", "120") == Integer(100)
    assert client.call("XTRIM", "s", "MAXLEN", "~", "120") == Integer(0)
    assert client.call("XTRIM", "s", "MINID", "~", "150") == Integer(0)
    assert client.call("XTRIM", "s", "MINID", "~", "201") == Integer(100)
    assert client.call("XRANGE", "s", "-", "+", "COUNT", "1") == Array((entry("201-1", "a", "b"),))
    assert client.call("XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "49") == Integer(0)
    assert client.call("XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "50") == Integer(50)
    assert client.call("XLEN", "s") == Integer(0)
    assert client.call("EXISTS", "s") == Integer(1)  # an emptied stream stays


def test_xread_block_waits_with_dollar_resolved() -> None:
    client = three_entries_one_deleted()
    outcome = client.call("XREAD", "BLOCK", "1500", "STREAMS", "s", "nokey", "$", "$")
    assert isinstance(outcome, Blocked)
    assert outcome.keys == (b"s", b"nokey")
    assert outcome.timeout_ms == 1500
    retry = outcome.retry_args
    assert retry == (
        b"BLOCK",
        b"1500",
        b"COUNT",
        b"1000",
        b"STREAMS",
        b"s",
        b"nokey",
        b"3-3",
        b"0-0",
    )
    assert blocked_retry_args(outcome.message) == retry  # what a forwarded attempt carries
    assert client.call("XADD", "s", "4-0", "x", "y") == Bulk(b"4-0")
    served = client.call("XREAD", *retry)
    assert encode(served, 2) == encode(client.call("XREAD", "STREAMS", "s", "3-3"), 2)
    assert isinstance(client.call("XREAD", *retry[:4], b"STREAMS", b"nokey", b"0-0"), Blocked)
    again = client.call("XREAD", "BLOCK", "0", "COUNT", "5", "STREAMS", "s", "4-0")
    assert isinstance(again, Blocked)
    assert again.timeout_ms == 0 and again.retry_args[3] == b"5"


def test_blocking_timeouts() -> None:
    argv = [b"xread", b"COUNT", b"1", b"BLOCK", b"250", b"STREAMS", b"block", b"0"]
    assert command_timeout_ms("xread", argv) == 250
    assert command_timeout_ms("xread", [b"xread", b"STREAMS", b"s", b"0"]) == 0
    assert command_timeout_ms("blpop", [b"blpop", b"l", b"1.5"]) == 1500
    assert blocked_retry_args("ERR something else") is None


def test_wrong_types_expiry_and_rename() -> None:
    steps: list[Step] = [
        ("SET str v", OK),
        ("XADD str 1-1 f v", WRONGTYPE),
        ("XLEN str", WRONGTYPE),
        ("XREAD STREAMS str 0", WRONGTYPE),
        ("XINFO STREAM str", WRONGTYPE),
        ("XADD s 1-1 f v", Bulk(b"1-1")),
        ("LPUSH s x", WRONGTYPE),
        ("TYPE s", SimpleString("stream")),
        ("OBJECT ENCODING s", Bulk(b"stream")),
        ("RENAME s t", OK),
        ("XRANGE t - +", Array((entry("1-1", "f", "v"),))),
        ("XRANGE s - +", Array(())),
        ("PEXPIRE t 100", Integer(1)),
        ("@+100", NULL),
        ("XLEN t", Integer(0)),
        ("EXISTS t", Integer(0)),
        ("XADD t NOMKSTREAM 2-1 f v", NULL),
        ("XADD t 1-1 f v", Bulk(b"1-1")),  # a fresh stream: the old last id is gone
        ("XADD t MAXLEN 0 2-1 f v", Bulk(b"2-1")),
        ("XLEN t", Integer(0)),
        (
            "XADD t 2-1 f v",
            ErrorReply(
                "ERR The ID specified in XADD is equal or smaller than the target stream top item"
            ),
        ),
        ("DEL t", Integer(1)),
        ("DBSIZE", Integer(1)),
    ]
    run_steps(steps)


def test_u64_parsing_like_string2ull() -> None:
    assert parse_u64(b"18446744073709551615") == 2**64 - 1
    assert parse_u64(b"18446744073709551616") is None
    assert parse_u64(b" +7") == 7
    assert parse_u64(b"-1") is None
    assert parse_u64(b"") is None
    assert parse_u64(b"1 ") is None


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 40), st.integers(0, 2)),
        st.tuples(st.just("del"), st.integers(1, 40), st.integers(0, 2)),
        st.tuples(st.just("maxlen"), st.integers(0, 10), st.just(0)),
        st.tuples(st.just("minid"), st.integers(0, 40), st.integers(0, 2)),
        st.tuples(st.just("range"), st.integers(0, 40), st.integers(0, 40)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_model(ops: list[tuple[str, int, int]]) -> None:
    """XADD/XDEL/XTRIM/XRANGE/XREVRANGE agree with a sorted dict of entries."""
    client = MachineClient(clock=FakeClock())
    model: dict[tuple[int, int], bytes] = {}
    last = (0, 0)
    for op, a, b in ops:
        if op == "add":
            got = client.call("XADD", "s", f"{a}-{b}", "f", f"{a}.{b}")
            if (a, b) > last:
                assert got == Bulk(f"{a}-{b}".encode())
                model[(a, b)] = f"{a}.{b}".encode()
                last = (a, b)
            else:
                assert isinstance(got, ErrorReply)
        elif op == "del":
            got = client.call("XDEL", "s", f"{a}-{b}")
            assert got == Integer(1 if model.pop((a, b), None) is not None else 0)
        elif op == "maxlen":
            doomed = sorted(model)[: max(0, len(model) - a)]
            assert client.call("XTRIM", "s", "MAXLEN", str(a)) == Integer(len(doomed))
            for k in doomed:
                del model[k]
        elif op == "minid":
            doomed = [k for k in model if k < (a, b)]
            assert client.call("XTRIM", "s", "MINID", f"{a}-{b}") == Integer(len(doomed))
            for k in doomed:
                del model[k]
        else:
            lo, hi = min(a, b), max(a, b)
            want = [k for k in sorted(model) if lo <= k[0] <= hi]
            expected = Array(tuple(entry(f"{k[0]}-{k[1]}", "f", model[k].decode()) for k in want))
            if model or last != (0, 0):
                assert client.call("XRANGE", "s", str(lo), str(hi)) == expected
                reverse = Array(tuple(reversed(expected.items)))
                assert client.call("XREVRANGE", "s", str(hi), str(lo)) == reverse
    if last != (0, 0):
        assert client.call("XLEN", "s") == Integer(len(model))
        first = min(model) if model else (0, 0)
        info = client.call("XINFO", "STREAM", "s")
        assert encode(info, 2).count(f"{first[0]}-{first[1]}".encode()) >= 1
    else:
        assert client.call("EXISTS", "s") == Integer(0)
    assert client.call("XRANGE", "nokey", "-", "+") == Array(())
    assert client.call("XREAD", "STREAMS", "nokey", "0") == NULL_ARRAY
