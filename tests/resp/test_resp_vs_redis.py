"""Differential test: the parser against a real redis-server, byte for byte.

A stream of ECHO/PING requests (well formed, quirky, inline with quotes, and finally
something broken) is sent to redis-server; the same stream goes through our parser, a
tiny ECHO/PING evaluator and our encoder. The bytes must match, protocol errors
included. Skipped when redis-server is not installed; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resp_support import as_resp, run

from cairn.resp import encode_many
from cairn.resp.reply import PONG, Bulk, ErrorReply, Reply

if shutil.which("redis-server") is None:  # .ci/run installs it; a missing tool is a failure
    raise RuntimeError("redis-server is not installed: apt-get install redis-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _talk(port: int, data: bytes) -> bytes:
    """Send `data`, half-close, and read until redis closes the connection."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return b""
    received = []
    with conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(65536):
                received.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass  # redis closed on a protocol error with our input unread: a reset
    return b"".join(received)


def _c_string(arg: bytes, limit: int) -> bytes:
    """What `%.*s` prints of an argument: up to the first NUL, at most `limit` bytes."""
    return arg.split(b"\x00", 1)[0][:limit]


def _unknown(args: list[bytes]) -> ErrorReply:
    """Redis 7.0's unknown-command error, built as processCommand builds it."""
    listed = b""
    for arg in args[1:]:
        if len(listed) >= 128:
            break
        listed += b"'" + _c_string(arg, 128 - len(listed)) + b"' "
    text = b"ERR unknown command '%b', with args beginning with: %b" % (
        _c_string(args[0], 128),
        listed,
    )
    return ErrorReply(
        text.replace(b"\r", b" ").replace(b"\n", b" ").decode("utf-8", "surrogateescape")
    )


def _evaluate(args: list[bytes]) -> Reply:
    name = args[0].lower()
    if name == b"ping" and len(args) <= 2:
        return PONG if len(args) == 1 else Bulk(args[1])
    if name == b"echo" and len(args) == 2:
        return Bulk(args[1])
    if name in (b"ping", b"echo"):
        return ErrorReply(f"ERR wrong number of arguments for '{name.decode()}' command")
    return _unknown(args)


def _ours(data: bytes) -> bytes:
    outcome = run([data])
    replies = [_evaluate(list(command)) for command in outcome.commands]
    if outcome.error is not None:
        replies.append(ErrorReply("ERR " + outcome.error))
    return encode_many(replies, 2)


def _quirky(args: list[bytes], trailer: bytes, after_cr: bytes) -> bytes:
    head = b"*%d\r%b" % (len(args), after_cr)
    return head + b"".join(b"$%d\r\n%b%b" % (len(a), a, trailer) for a in args)


word_st = st.binary(max_size=12) | st.sampled_from([b"", b"\r\n", b"\x00", b"x" * 200])
echo_st = st.tuples(st.sampled_from([b"ECHO", b"echo", b"PING"]), word_st).map(list)
token_st = st.sampled_from([b"a", b'"', b"'", b"\\", b" ", b"\t", b"\\x41", b"\\n", b"\v", b"\xff"])
inline_st = st.lists(token_st, max_size=8).map(lambda t: b"ECHO " + b"".join(t) + b"\r\n")
good_st = st.one_of(
    echo_st.map(as_resp),
    st.builds(
        _quirky, echo_st, st.binary(min_size=2, max_size=2), st.binary(min_size=1, max_size=1)
    ),
    inline_st,
    st.sampled_from([b"*0\r\n", b"*-3\r\n", b"\r\n", b"PING\n", b"  \r\n"]),
)
bad_st = st.sampled_from(
    [
        b"",
        b"*1\r\n:1\r\n",
        b"*2\r\n$4\r\nECHO\r\n*1\r\n",
        b"*1\r\n\x80\r\n",
        b"*1\r\n\r\n",
        b"*1\r\n\n\r\n",
        b"*99999999999\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$+5\r\n",
        b"*-0\r\n",
        b'ECHO "x\r\n',
        b"ECHO 'x'y\r\n",
        b"ECHO \x00 x\r\nPING\r\n",
        b"*1\r\n$4\r\nPI\x00G\r\n",
        b"*3\r\n$4\r\nECHO\r\n$1\r\na\r\n$2\r\nbc\r\n",
    ]
) | st.binary(max_size=20)


def test_fixed_cases(redis_server_port: int) -> None:
    for data in (
        b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",
        b"*1\rX$4\r\nPING\r\n",
        b"x" * 70000,
        b"*1\r\n$" + b"1" * 70000,
        b"*" + b"1" * 70000,
    ):
        assert _ours(data) == _talk(redis_server_port, data), data[:40]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(good_st, max_size=6), bad_st)
def test_same_bytes_as_redis(redis_server_port: int, good: list[bytes], bad: bytes) -> None:
    data = b"".join(good) + bad
    assert _ours(data) == _talk(redis_server_port, data)
