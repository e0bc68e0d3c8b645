"""The sans-I/O parser of client requests: bytes in, argument lists out.

Theory of operation
-------------------
A connection owns one `RequestParser`. The I/O layer calls `feed(data)` with whatever
arrived, then calls `next_command()` until it returns `NEED_DATA`; each other result
is one command's arguments, in order, so a pipeline of many commands in one feed comes
out one by one. A malformed request raises `RemoteProtocolError` carrying Redis' exact
text; the parser then stays failed (every later call raises the same error) and the
connection must answer `error.error_reply` (if any) and close.

Two paths read the same grammar and must agree on every input:

* the reference path (`_next_slow`) is Redis 7's `processMultibulkBuffer` and
  `processInlineBuffer` transcribed: incremental (a half-read command keeps its
  arguments and resumes when more bytes arrive), faithful to Redis' quirks (header
  lines end at `\\r` plus any byte, the two bytes after a bulk are skipped unchecked,
  `*0` and `*-1` are empty commands that are skipped, C's `strchr` stops at a NUL so a
  line with a NUL never ends), and the only place that raises errors;
* the fast path (`_batch`) splits the unparsed bytes on CRLF once and takes every
  complete, well-formed, in-limits command at the head in one go. It never raises: at
  the first thing it does not fully understand it stops and leaves the rest to the
  reference path. It backs off (`_skip`, `_fast_min`) when it keeps failing, so an
  adversarial stream costs amortised linear time.

Memory stays bounded by what was received: nothing is allocated from a declared length
(a `$10000000000` header is refused at once, a `*1000000` header allocates nothing),
and `feed` refuses input that would make the parser hold more than `Limits.max_buffer`
bytes (unparsed input, arguments of the half-read command and parsed commands not yet
taken). While parsing cannot progress (a bulk short of its length, a line without its
end) input is gathered as a list of chunks and joined once, so a slow sender costs
linear time.

One deliberate difference from Redis: a line (inline command or header) longer than
`max_inline_length` is refused even when its end arrived in the same read; Redis, which
reads 16 KiB at a time, refuses it or not depending on how TCP cut the stream.

hiredis was measured as the fast path (validate every header in Python, as Redis' limits
require and hiredis cannot, then let `hiredis.Reader` build the lists) and lost by about
2-3x to the fast path here: the validation scan alone costs about as much as parsing.
Unvalidated hiredis is 4-5x faster than the fast path but would preallocate a list for
any `*<n>` it reads. See bench/resp_speed.py.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Final

from cairn.resp.errors import QueryBufferLimitError, RemoteProtocolError
from cairn.resp.inline import parse_ll, split_inline


class NeedData(enum.Enum):
    """The type of the `NEED_DATA` sentinel."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by `RequestParser.next_command` when no complete command is buffered."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client may send; defaults are Redis 7's.

    Invariant: every field is positive.
    """

    max_bulk_length: int = 512 * 1024 * 1024
    """Longest argument (Redis `proto-max-bulk-len`)."""
    max_array_length: int = 1024 * 1024
    """Most arguments in one command."""
    max_inline_length: int = 64 * 1024
    """Longest inline command or header line (Redis `PROTO_INLINE_MAX_SIZE`)."""
    max_buffer: int = 1024 * 1024 * 1024
    """Most bytes the parser holds for one client (Redis `client-query-buffer-limit`)."""
    unauthenticated_max_array_length: int = 10
    """Most arguments before the client has authenticated (when `auth_required`)."""
    unauthenticated_max_bulk_length: int = 16 * 1024
    """Longest argument before the client has authenticated."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS: Final = Limits()

_STAR: Final = 0x2A
_DOLLAR: Final = 0x24
_CR: Final = 0x0D
_HEADER_CACHE: Final = 4096  # headers `*1..*4096` and `$0..$4096` are looked up, not parsed
_MAX_PENALTY: Final = 256


@lru_cache(maxsize=32)
def _array_headers(limit: int) -> dict[bytes, int]:
    """`{b"*1": 1, ...}` for the counts the fast path accepts without parsing."""
    return {b"*%d" % n: n for n in range(1, min(limit, _HEADER_CACHE) + 1)}


@lru_cache(maxsize=32)
def _bulk_headers(limit: int) -> dict[bytes, int]:
    """`{b"$0": 0, ...}` for the lengths the fast path accepts without parsing."""
    return {b"$%d" % n: n for n in range(min(limit, _HEADER_CACHE) + 1)}


def _header_value(token: bytes, mark: bytes, low: int, high: int) -> int:
    """The number in a `*n`/`$n` header token if Redis accepts it within [low, high], else -1."""
    if not token.startswith(mark):
        return -1
    value = parse_ll(token[1:])
    return value if value is not None and low <= value <= high else -1


def _shown(byte: int) -> str:
    """How Redis' `%c` shows a byte in an error (CR and LF become spaces)."""
    if byte in (0x0D, 0x0A):
        return " "
    return bytes([byte]).decode("utf-8", "surrogateescape")


class RequestParser:
    """Turns a client's byte stream into commands (lists of arguments); see the module doc.

    `auth_required` is set by the server while the client has not authenticated: it
    applies Redis' tighter unauthenticated limits to every command not yet taken.
    """

    __slots__ = (
        "_args",
        "_args_bytes",
        "_arrays",
        "_auth_required",
        "_buf",
        "_bulk_len",
        "_bulks",
        "_chunks",
        "_chunks_len",
        "_error",
        "_fast",
        "_fast_min",
        "_penalty",
        "_pos",
        "_ready",
        "_ready_bytes",
        "_remaining",
        "_skip",
        "_want",
        "_want_line",
        "_withheld",
        "limits",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, fast: bool = True) -> None:
        """`fast=False` disables the fast path (for tests and benchmarks)."""
        self.limits = limits
        self._auth_required = False
        self._buf = b""  # unparsed input starts at _pos
        self._pos = 0
        self._chunks: list[bytes] = []  # input gathered while parsing cannot progress
        self._chunks_len = 0
        self._want = 0  # bytes needed from _pos before the reference path can move on
        self._want_line = b""  # or the line terminator the reference path waits for
        self._args: list[bytes] | None = None  # arguments of a half-read command
        self._args_bytes = 0
        self._remaining = 0  # arguments still expected in _args
        self._bulk_len = -1  # length of the argument being read, -1 before its header
        self._ready: deque[list[bytes]] = deque()  # parsed by the fast path, not yet taken
        self._ready_bytes = 0
        self._error: RemoteProtocolError | None = None
        self._withheld: RemoteProtocolError | None = None  # raised once _ready drains
        self._fast = fast
        self._fast_min = 0  # try the fast path only with at least this much unparsed input
        self._skip = 0  # commands left to the reference path before the fast path retries
        self._penalty = 1
        self._arrays = _array_headers(limits.max_array_length)
        self._bulks = _bulk_headers(limits.max_bulk_length)

    @property
    def buffered(self) -> int:
        """Bytes the parser holds: unparsed input, half-read arguments, untaken commands."""
        unparsed = len(self._buf) - self._pos + self._chunks_len
        return unparsed + self._args_bytes + self._ready_bytes

    @property
    def auth_required(self) -> bool:
        """Whether Redis' unauthenticated limits (10 arguments, 16 KiB each) apply."""
        return self._auth_required

    @auth_required.setter
    def auth_required(self, required: bool) -> None:
        self._auth_required = required
        if required:
            self._recheck_ready()

    @property
    def failed(self) -> RemoteProtocolError | None:
        """The error that stopped this parser, or None while it is healthy."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes. Never raises: an overflow shows at the next `next_command`."""
        if type(data) is not bytes:
            data = bytes(data)  # a caller's buffer may change under us
        if self._error is not None or not data:
            return
        unparsed = len(self._buf) - self._pos
        held = unparsed + self._chunks_len + self._args_bytes + self._ready_bytes + len(data)
        if held > self.limits.max_buffer:
            self._fail(QueryBufferLimitError(held, self.limits.max_buffer))
        elif self._chunks or self._want or self._want_line:
            self._chunks.append(data)
            self._chunks_len += len(data)
            if self._can_progress(data):
                self._join()
        else:
            self._buf = self._buf[self._pos :] + data if unparsed else data
            self._pos = 0

    def _can_progress(self, data: bytes) -> bool:
        """Whether parsing may move now that `data`, the newest chunk, has been gathered.

        While it cannot (a bulk still short of its length, a line still without its
        terminator and within the length limit) input is gathered without copying, so
        a big argument or a line sent byte by byte costs linear time.
        """
        unparsed = len(self._buf) - self._pos + self._chunks_len
        if self._want:
            return unparsed >= self._want
        return self._want_line in data or unparsed > self.limits.max_inline_length

    def next_command(self) -> list[bytes] | NeedData:
        """The next complete command's arguments (never empty), or `NEED_DATA`.

        Raises `RemoteProtocolError` when the input is malformed or over a limit.
        """
        if self._error is not None:
            raise self._error
        if self._ready:  # the hot path of a pipeline: commands parsed ahead
            return self._take()
        if self._withheld is not None:
            self._fail(self._withheld)
            raise self._withheld
        if self._chunks or self._pos >= len(self._buf):
            return NEED_DATA
        if self._fast and self._args is None and self._fast_allowed():
            self._batch()
            if self._ready:
                return self._take()
        try:
            return self._next_slow()
        except RemoteProtocolError as error:
            self._fail(error)
            raise

    # -- shared plumbing -------------------------------------------------------------

    def _join(self) -> None:
        """Make the gathered chunks part of `_buf` (once enough has arrived)."""
        self._buf = b"".join([self._buf[self._pos :], *self._chunks])
        self._pos = 0
        self._chunks.clear()
        self._chunks_len = 0

    def _take(self) -> list[bytes]:
        command = self._ready.popleft()
        if not self._ready:
            self._ready_bytes = 0
        return command

    def _recheck_ready(self) -> None:
        """Apply the unauthenticated limits to commands parsed ahead under the normal ones.

        The first command Redis would refuse, and all after it, are dropped; its error
        is raised when the commands before it have been taken.
        """
        limits = self.limits
        for index, command in enumerate(self._ready):
            if len(command) > limits.unauthenticated_max_array_length:
                message = "Protocol error: unauthenticated multibulk length"
            elif any(len(arg) > limits.unauthenticated_max_bulk_length for arg in command):
                message = "Protocol error: unauthenticated bulk length"
            else:
                continue
            for _ in range(len(self._ready) - index):
                self._ready.pop()
            self._withheld = RemoteProtocolError(message)
            return

    def _fail(self, error: RemoteProtocolError) -> None:
        """Enter the failed state and drop everything buffered."""
        self._error = error
        self._buf = b""
        self._pos = 0
        self._chunks.clear()
        self._chunks_len = 0
        self._args = None
        self._args_bytes = 0
        self._ready.clear()
        self._ready_bytes = 0

    def _completed(self, command: list[bytes]) -> list[bytes]:
        """Bookkeeping when the reference path finishes a command."""
        if self._skip:
            self._skip -= 1
        self._fast_min = 0
        return command

    # -- fast path -------------------------------------------------------------------

    def _fast_allowed(self) -> bool:
        unparsed = len(self._buf) - self._pos
        return (
            unparsed > 0
            and not self._skip
            and unparsed >= self._fast_min
            and not self._auth_required
            and self._buf[self._pos] == _STAR
        )

    def _batch(self) -> None:
        """Queue every complete, well-formed command at the head of the unparsed input.

        A command is taken when its `*n` token is a valid count within limits and each
        of its n `$len` tokens is followed by a token of exactly len bytes; since every
        token ended at CRLF, Redis would read the very same arguments.
        """
        self._want_line = b""
        data = self._buf[self._pos :] if self._pos else self._buf
        tokens = data.split(b"\r\n")
        last = len(tokens) - 1  # tokens[last] is not CRLF-terminated
        arrays_get, bulks_get, ready_append = self._arrays.get, self._bulks.get, self._ready.append
        i, odd = 0, False
        while i < last:
            count = arrays_get(tokens[i]) or self._big_count(tokens[i])
            if count <= 0:
                odd = True
                break
            end = i + 1 + 2 * count
            if end > last:
                break
            args = tokens[i + 2 : end : 2]
            j = i + 1
            for arg in args:
                if bulks_get(tokens[j]) != len(arg) and not self._big_size_is(tokens[j], len(arg)):
                    break
                j += 2
            else:
                ready_append(args)
                i = end
                continue
            odd = True
            break
        consumed = sum(map(len, tokens[:i])) + 2 * i
        self._pos += consumed
        self._ready_bytes += consumed
        self._back_off(odd, i > 0, len(data) - consumed)

    def _big_size_is(self, token: bytes, size: int) -> bool:
        """Whether a `$n` header token beyond the lookup table announces `size` bytes."""
        return _header_value(token, b"$", 0, self.limits.max_bulk_length) == size

    def _big_count(self, token: bytes) -> int:
        """The count of a `*n` header token beyond the lookup table, -1 if refused."""
        return _header_value(token, b"*", 1, self.limits.max_array_length)

    def _back_off(self, odd: bool, progressed: bool, left: int) -> None:
        """Decide when the fast path may try again after a batch."""
        if odd:
            self._skip = self._penalty
            self._penalty = min(2 * self._penalty, _MAX_PENALTY)
            self._fast_min = 0
        else:
            if progressed:
                self._penalty = 1
            self._fast_min = 2 * left + 1

    # -- reference path (Redis' networking.c) -----------------------------------------

    def _next_slow(self) -> list[bytes] | NeedData:
        self._want_line = b""
        while True:
            if self._args is None:
                if self._pos >= len(self._buf):
                    return NEED_DATA
                if self._buf[self._pos] != _STAR:
                    inline = self._read_inline()
                    if inline is NEED_DATA:
                        return NEED_DATA
                    if inline:
                        return self._completed(inline)
                    continue
                started = self._read_count()
                if started is NEED_DATA:
                    return NEED_DATA
                if not started:
                    continue
            command = self._read_bulks()
            if command is NEED_DATA:
                return NEED_DATA
            return self._completed(command)

    def _line_end(self, terminator: bytes, what: str) -> int:
        """Index of the line's terminator from `_pos`, -1 if not yet received.

        Like `strchr`, a NUL before the terminator hides it. A line longer than
        `max_inline_length` (received whole or not) is refused as `too big <what>`.
        """
        buf, pos = self._buf, self._pos
        end = buf.find(terminator, pos)
        stop = end if end >= 0 else len(buf)
        if buf.find(b"\x00", pos, stop) >= 0:
            end, stop = -1, len(buf)
        if stop - pos > self.limits.max_inline_length:
            raise RemoteProtocolError(f"Protocol error: too big {what}")
        if end < 0:
            self._want_line = terminator
        return end

    def _read_inline(self) -> list[bytes] | NeedData:
        """Read one inline command line; an empty list for a blank line."""
        end = self._line_end(b"\n", "inline request")
        if end < 0:
            return NEED_DATA
        buf, pos = self._buf, self._pos
        stop = end - 1 if end > pos and buf[end - 1] == _CR else end
        args = split_inline(buf[pos:stop])
        if args is None:
            raise RemoteProtocolError("Protocol error: unbalanced quotes in request")
        self._pos = end + 1
        return args

    def _read_count(self) -> bool | NeedData:
        """Read a `*<count>` line; True when a command with arguments has started."""
        end = self._line_end(b"\r", "mbulk count string")
        if end < 0 or end + 1 >= len(self._buf):
            return NEED_DATA
        count = parse_ll(self._buf[self._pos + 1 : end])
        if count is None or count > self.limits.max_array_length:
            raise RemoteProtocolError("Protocol error: invalid multibulk length")
        if self._auth_required and count > self.limits.unauthenticated_max_array_length:
            raise RemoteProtocolError("Protocol error: unauthenticated multibulk length")
        self._pos = end + 2
        if count <= 0:
            return False
        self._args = []
        self._remaining = count
        self._bulk_len = -1
        return True

    def _read_bulks(self) -> list[bytes] | NeedData:
        """Read the arguments of the current command, as far as the input goes."""
        args = self._args
        assert args is not None
        while self._remaining:
            if self._bulk_len < 0 and not self._read_bulk_header():
                return NEED_DATA
            size, start = self._bulk_len, self._pos
            if len(self._buf) - start < size + 2:
                self._want = size + 2
                return NEED_DATA
            args.append(self._buf[start : start + size])
            self._args_bytes += size
            self._pos = start + size + 2  # the two bytes after a bulk are not checked
            self._bulk_len = -1
            self._remaining -= 1
            self._want = 0
        self._args = None
        self._args_bytes = 0
        return args

    def _read_bulk_header(self) -> bool:
        """Read a `$<length>` line; False when it has not fully arrived."""
        end = self._line_end(b"\r", "bulk count string")
        if end < 0 or end + 1 >= len(self._buf):
            return False
        first = self._buf[self._pos]
        if first != _DOLLAR:
            raise RemoteProtocolError(f"Protocol error: expected '$', got '{_shown(first)}'")
        size = parse_ll(self._buf[self._pos + 1 : end])
        if size is None or size < 0 or size > self.limits.max_bulk_length:
            raise RemoteProtocolError("Protocol error: invalid bulk length")
        if self._auth_required and size > self.limits.unauthenticated_max_bulk_length:
            raise RemoteProtocolError("Protocol error: unauthenticated bulk length")
        self._pos = end + 2
        self._bulk_len = size
        return True
