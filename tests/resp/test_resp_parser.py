"""The request parser: tables of requests and protocol errors, limits, pipelining.

Every table case runs four ways: fast and reference path, fed whole and byte by byte.
The expected texts and the quirks (a bulk's trailing two bytes unchecked, `*-5` skipped,
a NUL hiding a line end) were checked against redis-server 7.0.15.
"""

from __future__ import annotations

import pytest
from resp_support import Outcome, as_resp, run, run_both

from cairn.resp import (
    NEED_DATA,
    Limits,
    QueryBufferLimitError,
    RemoteProtocolError,
    RequestParser,
)
from cairn.resp.reply import ErrorReply

GET = as_resp([b"GET", b"k"])


def both_ways(data: bytes, limits: Limits | None = None) -> Outcome:
    """The outcome of `data` fed whole and byte by byte (they must agree)."""
    whole = run_both([data], limits)
    assert run_both([data[i : i + 1] for i in range(len(data))], limits) == whole
    return whole


@pytest.mark.parametrize(
    ("data", "commands"),
    [
        (GET, [[b"GET", b"k"]]),
        (GET * 3, [[b"GET", b"k"]] * 3),
        (as_resp([b"SET", b"k", b"a\r\nb"]), [[b"SET", b"k", b"a\r\nb"]]),
        (as_resp([b"SET", b"", b"\x00\xff"]), [[b"SET", b"", b"\x00\xff"]]),
        (b"PING\r\n", [[b"PING"]]),
        (b"PING\n", [[b"PING"]]),
        (b"PING\nPING\r\n", [[b"PING"], [b"PING"]]),
        (b"  SET k 'a b'  \r\n", [[b"SET", b"k", b"a b"]]),
        (b'ECHO "a\\x41\\n\\q"\r\n', [[b"ECHO", b"aA\nq"]]),
        (b"\r\n\n   \r\nPING\r\n", [[b"PING"]]),
        (b"PING\r\r\n", [[b"PING"]]),
        (b"*0\r\nPING\r\n", [[b"PING"]]),
        (b"*-5\r\n" + GET, [[b"GET", b"k"]]),
        (b"*1\r\n$4\r\nPINGxx" + GET, [[b"PING"], [b"GET", b"k"]]),  # trailer not checked
        (b"*1\rX$4\rYPING\r\n", [[b"PING"]]),  # any byte may follow a header's CR
        (b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", [[b"GET", b""]]),
        (b"*1\r\n$4\r\nPI\x00G\r\n", [[b"PI\x00G"]]),
        (GET + b"PING\r\n" + GET, [[b"GET", b"k"], [b"PING"], [b"GET", b"k"]]),
    ],
)
def test_requests(data: bytes, commands: list[list[bytes]]) -> None:
    assert both_ways(data) == Outcome(tuple(tuple(c) for c in commands), None)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"*1\r\n:4\r\n", "expected '$', got ':'"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
        (b"*1\r\n\r\n", "expected '$', got ' '"),
        (b"*1\r\n\n\r\n", "expected '$', got ' '"),
        (b"*2\r\n$3\r\nGET\r\n+OK\r\n", "expected '$', got '+'"),
        (b"*01\r\n", "invalid multibulk length"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"*99999999999\r\n", "invalid multibulk length"),
        (b"*1048577\r\n", "invalid multibulk length"),
        (b"*1\r\n$10000000000\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$01\r\n", "invalid bulk length"),
        (b"*1\r\n$\r\n", "invalid bulk length"),
        (b"*1\r\n$ 1\r\n", "invalid bulk length"),
        (b'SET a "b\r\n', "unbalanced quotes in request"),
        (b"SET a 'b\r\n", "unbalanced quotes in request"),
        (b'ECHO "a"b\r\n', "unbalanced quotes in request"),
        (b"x" * (64 * 1024 + 1), "too big inline request"),
        (b"*" + b"1" * (64 * 1024), "too big mbulk count string"),
        (b"*1\r\n$" + b"1" * (64 * 1024), "too big bulk count string"),
        (b"\x00PING\r\n" + b"x" * (64 * 1024), "too big inline request"),
    ],
)
def test_protocol_errors(data: bytes, error: str) -> None:
    outcome = run_both([data])
    assert outcome == Outcome((), "Protocol error: " + error)
    if len(data) < 1000:
        assert both_ways(data) == outcome


def test_error_reply_is_redis_text_and_sticks() -> None:
    parser = RequestParser()
    parser.feed(GET + b"*1\r\n:4\r\n" + GET)
    assert parser.next_command() == [b"GET", b"k"]
    with pytest.raises(RemoteProtocolError) as caught:
        parser.next_command()
    assert caught.value.error_reply == ErrorReply("ERR Protocol error: expected '$', got ':'")
    parser.feed(GET)
    with pytest.raises(RemoteProtocolError) as again:
        parser.next_command()
    assert again.value is caught.value
    assert parser.failed is caught.value
    assert parser.buffered == 0


def test_non_ascii_byte_in_error_travels_as_surrogate_escape() -> None:
    outcome = run([b"*1\r\n\xff\r\n"])
    assert outcome.error == "Protocol error: expected '$', got '\udcff'"
    assert outcome.error.encode("utf-8", "surrogateescape").endswith(b"'\xff'")


def test_nul_hides_the_line_end_like_strchr() -> None:
    """Redis never sees the end of `\\0PING\\r\\n`: it waits (and errs past 64 KiB)."""
    for fast in (True, False):
        assert run([b"\x00PING\r\n", GET], fast=fast) == Outcome((), None)
        assert run([b"*1\x00\r\n$4\r\nPING\r\n"], fast=fast) == Outcome((), None)


def test_incomplete_input_waits() -> None:
    for prefix in (b"*", b"*2", b"*2\r", b"*2\r\n$3", b"*2\r\n$3\r\nGE", b"*2\r\n$3\r\nGET\r\n"):
        assert both_ways(prefix) == Outcome((), None)


def test_pipeline_comes_out_one_by_one() -> None:
    commands = [[b"SET", b"key:%d" % i, b"v" * (i % 50)] for i in range(1000)]
    parser = RequestParser()
    parser.feed(b"".join(as_resp(c) for c in commands) + b"PING\r\n")
    for command in commands:
        assert parser.next_command() == command
    assert parser.next_command() == [b"PING"]
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == 0


def test_declared_huge_bulk_is_refused_at_once() -> None:
    parser = RequestParser()
    parser.feed(b"*2\r\n$3\r\nSET\r\n$10737418240\r\n")
    with pytest.raises(RemoteProtocolError, match="invalid bulk length"):
        parser.next_command()


def test_declared_huge_array_allocates_nothing() -> None:
    parser = RequestParser()
    parser.feed(b"*1048576\r\n$3\r\nSET\r\n")
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == 3  # the one argument received, nothing per declared element
    parser.feed(b"*")
    assert parser.next_command() is NEED_DATA


def test_custom_limits() -> None:
    limits = Limits(max_bulk_length=5, max_array_length=3, max_inline_length=10)
    assert run_both([as_resp([b"a", b"bbbbb", b"c"])], limits).error is None
    assert run_both([as_resp([b"a", b"bbbbbb"])], limits).error == (
        "Protocol error: invalid bulk length"
    )
    assert run_both([as_resp([b"a"] * 4)], limits).error == (
        "Protocol error: invalid multibulk length"
    )
    assert run_both([b"PING 1234\r\n"], limits).error is None  # 10 bytes with the CR
    assert run_both([b"PING 12345\r\n"], limits).error == "Protocol error: too big inline request"


@pytest.mark.parametrize("field", ["max_bulk_length", "max_buffer", "max_inline_length"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_unauthenticated_limits() -> None:
    parser = RequestParser()
    parser.auth_required = True
    parser.feed(as_resp([b"AUTH", b"x" * 16384]))
    assert parser.next_command() == [b"AUTH", b"x" * 16384]
    parser.feed(as_resp([b"MGET"] + [b"k"] * 10))
    with pytest.raises(RemoteProtocolError, match="unauthenticated multibulk length"):
        parser.next_command()
    parser = RequestParser()
    parser.auth_required = True
    parser.feed(as_resp([b"AUTH", b"x" * 16385]))
    with pytest.raises(RemoteProtocolError, match="unauthenticated bulk length"):
        parser.next_command()


def test_auth_changes_apply_between_commands_of_one_pipeline() -> None:
    """AUTH then a long MSET in one feed: the MSET is judged after AUTH ran, as in Redis."""
    mset = as_resp([b"MSET"] + [b"k"] * 20)
    for fast in (True, False):
        parser = RequestParser(fast=fast)
        parser.auth_required = True
        parser.feed(as_resp([b"AUTH", b"pw"]) + mset)
        assert parser.next_command() == [b"AUTH", b"pw"]
        parser.auth_required = False
        assert parser.next_command() == [b"MSET"] + [b"k"] * 20


def test_becoming_unauthenticated_rechecks_parsed_ahead_commands() -> None:
    parser = RequestParser()
    parser.feed(as_resp([b"RESET"]) + GET + as_resp([b"MSET"] + [b"k"] * 20) + GET)
    assert parser.next_command() == [b"RESET"]
    parser.auth_required = True
    assert parser.next_command() == [b"GET", b"k"]
    with pytest.raises(RemoteProtocolError, match="unauthenticated multibulk length"):
        parser.next_command()


def test_query_buffer_limit_closes_without_reply() -> None:
    limits = Limits(max_buffer=1000)
    seen: list[int] = []
    chunks = [b"*1\r\n$2000\r\n", b"x" * 500, b"x" * 500, b"x" * 500]
    outcome = run(chunks, limits, max_seen=seen)
    assert outcome.error is not None and outcome.error.startswith("query buffer limit")
    assert not outcome.reply
    assert max(seen) <= 1000
    parser = RequestParser(limits)
    parser.feed(b"x" * 1001)
    with pytest.raises(QueryBufferLimitError) as caught:
        parser.next_command()
    assert caught.value.error_reply is None


def test_buffer_limit_counts_half_read_arguments() -> None:
    limits = Limits(max_buffer=100)
    data = as_resp([b"SET", b"k" * 40, b"v" * 40])
    assert run_both([data[:60], data[60:]], limits).error is None
    outcome = run_both([data[:60], data[60:], data], limits)
    assert outcome.error is not None and outcome.error.startswith("query buffer limit")


def test_large_bulk_arriving_in_small_chunks() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = as_resp([b"SET", b"k", value]) + GET
    chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)]
    parser = RequestParser()
    commands = []
    for chunk in chunks:
        parser.feed(chunk)
        while (command := parser.next_command()) is not NEED_DATA:
            commands.append(command)
        assert parser.buffered <= len(data)
    assert commands == [[b"SET", b"k", value], [b"GET", b"k"]]


def test_fast_path_backs_off_on_unusual_commands() -> None:
    """Payloads with CRLF inside defeat the fast path; results stay right either way."""
    odd = as_resp([b"SET", b"k", b"a\r\n$1\r\nb"])
    data = (odd + GET) * 200
    outcome = run_both([data])
    assert outcome.commands == ((b"SET", b"k", b"a\r\n$1\r\nb"), (b"GET", b"k")) * 200


def _feed_all(parser: RequestParser, chunks: list[bytes]) -> list[list[bytes]]:
    commands = []
    for chunk in chunks:
        parser.feed(chunk)
        while (command := parser.next_command()) is not NEED_DATA:
            commands.append(command)
    return commands


@pytest.mark.timeout(5)
def test_slow_senders_cost_linear_time() -> None:
    """A big bulk in small pieces, and long lines byte by byte, are gathered without recopying.

    Recopying the pending input on every feed would move about 64 GB here and time out.
    """
    value = b"v" * (16 * 1024 * 1024)
    data = as_resp([b"SET", b"k", value])
    parser = RequestParser()
    assert _feed_all(parser, [data[i : i + 2048] for i in range(0, len(data), 2048)]) == [
        [b"SET", b"k", value]
    ]
    line = b"ECHO " + b"x" * 60000 + b"\r\n"
    for fast in (True, False):
        assert _feed_all(RequestParser(fast=fast), [bytes([b]) for b in line]) == [
            [b"ECHO", b"x" * 60000]
        ]
    header = b"*" + b"1" * 70000
    parser = RequestParser()
    with pytest.raises(RemoteProtocolError, match="too big mbulk count string"):
        _feed_all(parser, [bytes([b]) for b in header])


def test_bytearray_input_is_copied() -> None:
    parser = RequestParser()
    data = bytearray(GET)
    parser.feed(data)
    data[:] = b"x" * len(data)
    assert parser.next_command() == [b"GET", b"k"]
