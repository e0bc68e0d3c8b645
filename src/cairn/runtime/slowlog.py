"""SLOWLOG GET / LEN / RESET / HELP: this node's log of slow commands, as Redis 7.0 keeps it.

An entry is [id, unix time, duration in microseconds, argv, client address, client name].
argv is cut as Redis cuts it: at most 32 arguments (the last one saying "... (N more
arguments)"), each at most 128 bytes ("... (N more bytes)" appended). The log keeps the
newest `slowlog-max-len` entries; `slowlog-log-slower-than` is the threshold in
microseconds (negative: log nothing, 0: log every command). A duration is measured as
`cairn.runtime.command_stats` explains: arrival at this node to reply.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.resp.reply import OK, Array, Bulk, ErrorReply, Integer, Reply, SimpleString
from cairn.store.numbers import parse_ll

MAX_ARGC = 32
MAX_STRING = 128
HELP = (
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
)
_BAD_COUNT = ErrorReply("ERR count should be greater than or equal to -1")


@dataclass(frozen=True, slots=True)
class SlowEntry:
    """One logged command."""

    id: int
    timestamp: int
    duration_us: int
    argv: tuple[bytes, ...]
    addr: str
    name: str

    def reply(self) -> Reply:
        """The entry as SLOWLOG GET answers it."""
        return Array(
            (
                Integer(self.id),
                Integer(self.timestamp),
                Integer(self.duration_us),
                Array(tuple(Bulk(a) for a in self.argv)),
                Bulk(self.addr.encode()),
                Bulk(self.name.encode()),
            )
        )


def truncate_argv(argv: Sequence[bytes]) -> tuple[bytes, ...]:
    """argv as Redis logs it: 32 arguments, 128 bytes each, at most."""
    count = min(len(argv), MAX_ARGC)
    out = []
    for i in range(count):
        if count != len(argv) and i == count - 1:
            out.append(b"... (%d more arguments)" % (len(argv) - count + 1))
            break
        arg = argv[i]
        if len(arg) > MAX_STRING:
            arg = arg[:MAX_STRING] + b"... (%d more bytes)" % (len(arg) - MAX_STRING)
        out.append(arg)
    return tuple(out)


class SlowLog:
    """The newest `max_len` slow commands, newest first."""

    def __init__(self, max_len: int = 128) -> None:
        self.max_len = max_len
        self.entries: deque[SlowEntry] = deque()
        self._next_id = 0

    def add(self, argv: Sequence[bytes], duration_us: int, now: int, addr: str, name: str) -> None:
        """Log one command (the caller checked the threshold)."""
        entry = SlowEntry(self._next_id, now, duration_us, truncate_argv(argv), addr, name)
        self._next_id += 1
        self.entries.appendleft(entry)
        self.trim()

    def trim(self) -> None:
        """Drop the oldest entries beyond `max_len` (after CONFIG SET slowlog-max-len)."""
        while len(self.entries) > self.max_len:
            self.entries.pop()

    def command(self, args: Sequence[bytes]) -> Reply:
        """SLOWLOG <subcommand> (the arguments after SLOWLOG)."""
        sub = args[0].lower()
        rest = args[1:]
        if sub == b"get" and len(rest) <= 1:
            return self._get(rest)
        if sub in (b"len", b"reset", b"help") and rest:
            return ErrorReply(f"ERR wrong number of arguments for 'slowlog|{sub.decode()}' command")
        if sub == b"len":
            return Integer(len(self.entries))
        if sub == b"reset":
            self.entries.clear()
            return OK
        if sub == b"help":
            return Array(tuple(SimpleString(line) for line in HELP))
        text = args[0].split(b"\0")[0][:128].decode("utf-8", "replace")
        if sub == b"get":
            return ErrorReply(
                f"ERR unknown subcommand or wrong number of arguments for '{text}'. "
                "Try SLOWLOG HELP."
            )
        return ErrorReply(f"ERR unknown subcommand '{text}'. Try SLOWLOG HELP.")

    def _get(self, rest: Sequence[bytes]) -> Reply:
        count = 10
        if rest:
            parsed = _parse_count(rest[0])
            if parsed is None:
                return _BAD_COUNT
            count = len(self.entries) if parsed == -1 else parsed
        return Array(tuple(e.reply() for e in list(self.entries)[:count]))


def _parse_count(raw: bytes) -> int | None:
    """A count Redis accepts: a 64-bit integer (string2ll) >= -1."""
    value = parse_ll(raw)
    return value if value is not None and value >= -1 else None
