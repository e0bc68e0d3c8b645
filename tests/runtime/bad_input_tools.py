"""Raw-socket tools for the bad-input tests: exchanges, a strict reply reader, RSS probes.

These talk to a node's client port byte by byte, below any Redis client library, so a
test controls exactly what is sent, when, and whether replies are ever read.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cairn.runtime.local_cluster import HOST

PING = b"*1\r\n$4\r\nPING\r\n"


def command(*args: bytes | str) -> bytes:
    """`args` as one RESP multibulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def connect(port: int, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    """A connected TCP socket to 127.0.0.1:`port` with Nagle off (every send is a segment)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    return sock


@dataclass(frozen=True, slots=True)
class Exchange:
    """What came back after sending some bytes: everything received, and whether the
    server closed the connection (EOF or reset) before `timeout` ran out."""

    reply: bytes
    closed: bool


def read_until_closed(sock: socket.socket, timeout: float) -> Exchange:
    """Read everything until the peer closes or `timeout` seconds pass."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Exchange(bytes(received), closed=False)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return Exchange(bytes(received), closed=False)
        except ConnectionResetError:
            return Exchange(bytes(received), closed=True)
        if not chunk:
            return Exchange(bytes(received), closed=True)
        received += chunk


def exchange(port: int, data: bytes, timeout: float = 3.0, half_close: bool = False) -> Exchange:
    """Send `data` on a fresh connection and collect the answer until close or timeout.

    `half_close` shuts our sending side after `data`, so a server waiting for more input
    sees end-of-file.
    """
    with connect(port) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, timeout)


def roundtrip(
    sock: socket.socket, data: bytes, replies: int = 1, timeout: float = 5.0
) -> list[object]:
    """Send `data` and read exactly `replies` replies."""
    sock.sendall(data)
    reader = ReplyReader()
    out: list[object] = []
    deadline = time.monotonic() + timeout
    while len(out) < replies:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {replies} replies: {out!r}")
        reader.feed(chunk)
        out.extend(reader.replies())
    assert len(out) == replies, f"more replies than requests: {out!r}"
    return out


def ping_fresh(port: int) -> None:
    """PING on a brand-new connection must answer PONG."""
    with connect(port) as sock:
        assert roundtrip(sock, PING) == ["PONG"]


class RedisError(str):
    """An error reply (its text without the leading '-')."""


class MalformedReplyError(Exception):
    """The server sent bytes that are not RESP."""


class ReplyReader:
    """A strict incremental RESP2/RESP3 reply parser: any byte out of place is an error.

    Simple strings become `str`, errors `RedisError`, integers `int`, bulks `bytes`,
    nulls `None`, arrays (and RESP3 sets/pushes) `list`, maps `dict`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if self._pos > 1 << 20:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def replies(self) -> Iterator[object]:
        """Every reply complete so far, in order."""
        while True:
            try:
                value, pos = self._value(self._pos)
            except _IncompleteError:
                return
            self._pos = pos
            yield value

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete reply."""
        return len(self._buf) - self._pos

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            raise _IncompleteError
        return bytes(self._buf[pos:end]), end + 2

    def _int(self, text: bytes) -> int:
        if not re.fullmatch(rb"-?[0-9]+", text):
            raise MalformedReplyError(f"not an integer: {text!r}")
        return int(text)

    def _value(self, pos: int) -> tuple[object, int]:
        if pos >= len(self._buf):
            raise _IncompleteError
        kind = bytes(self._buf[pos : pos + 1])
        line, pos = self._line(pos + 1)
        if kind == b"+":
            return line.decode("utf-8", "replace"), pos
        if kind == b"-":
            return RedisError(line.decode("utf-8", "replace")), pos
        if kind in (b":", b"("):
            return self._int(line), pos
        if kind == b",":
            return float(line), pos
        if kind == b"#":
            return line == b"t", pos
        if kind == b"_":
            return None, pos
        if kind in (b"$", b"=", b"!"):
            size = self._int(line)
            if size < 0:
                return None, pos
            if len(self._buf) < pos + size + 2:
                raise _IncompleteError
            if self._buf[pos + size : pos + size + 2] != b"\r\n":
                raise MalformedReplyError(f"bulk of {size} bytes not followed by CRLF")
            return bytes(self._buf[pos : pos + size]), pos + size + 2
        if kind in (b"*", b"~", b">", b"%", b"|"):
            count = self._int(line)
            if count < 0:
                return None, pos
            items = []
            for _ in range(count * (2 if kind in (b"%", b"|") else 1)):
                item, pos = self._value(pos)
                items.append(item)
            if kind in (b"%", b"|"):
                return dict(zip(items[::2], items[1::2], strict=True)), pos
            return items, pos
        raise MalformedReplyError(f"unknown reply type {kind!r}")


class _IncompleteError(Exception):
    """The buffered bytes end inside a reply."""


def rss_mb(pid: int) -> float:
    """The resident set size of process `pid` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for pid {pid}")


def open_files_limit(pid: int) -> tuple[int, int]:
    """Process `pid`'s (soft, hard) RLIMIT_NOFILE, from /proc/<pid>/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise LookupError(f"no open-files limit for pid {pid}")


def info_field(port: int, section: str, name: str) -> str:
    """One field of `INFO <section>`, read over a fresh raw connection."""
    with connect(port) as sock:
        (text,) = roundtrip(sock, command("INFO", section))
    assert isinstance(text, bytes), text
    for line in text.decode().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value
    raise LookupError(f"INFO {section} has no {name}")


def wait_until(predicate: object, timeout: float, what: str) -> None:
    """Poll `predicate()` until true; fail naming `what` after `timeout` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
