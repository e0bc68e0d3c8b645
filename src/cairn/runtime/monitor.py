"""MONITOR: stream every command this node receives from its clients to the monitoring
connections, in redis-server 7.0's line format::

    +1339518083.107412 [0 127.0.0.1:60866] "keys" "*"

Which commands: those received by the node the monitor is connected to, from its own
clients, when they arrive (before they run), as Redis shows the commands its server
receives. A command another node forwards here to its region leader is not shown again:
it was shown by the node its client is connected to. As in Redis, unknown commands and
calls with the wrong number of arguments are not shown, nor admin commands (CONFIG,
SLOWLOG, MONITOR ...); the arguments of AUTH, and HELLO's AUTH username and password,
are shown as "(redacted)".

Bounded: a monitor whose unsent output exceeds `max_backlog` bytes (the node's reply
buffer limit) is dropped, as Redis drops a client over its output buffer limit; the
node never holds more than that for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cairn.runtime.command_info import CommandMeta, flag_names

if TYPE_CHECKING:
    from cairn.runtime.server import ClientConnection, ClientState

REDACTED = b'"(redacted)"'
_ESCAPES = {
    ord("\\"): b"\\\\",
    ord('"'): b'\\"',
    ord("\n"): b"\\n",
    ord("\r"): b"\\r",
    ord("\t"): b"\\t",
    7: b"\\a",
    8: b"\\b",
}


def quote(arg: bytes) -> bytes:
    """Redis' sdscatrepr: the argument in double quotes, escaped as C would print it."""
    out = bytearray(b'"')
    for byte in arg:
        escape = _ESCAPES.get(byte)
        if escape is not None:
            out += escape
        elif 32 <= byte <= 126:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out += b'"'
    return bytes(out)


def redacted(name: str, args: Sequence[bytes]) -> list[bytes]:
    """The quoted arguments of `args` (name first), secrets replaced as Redis 7 does."""
    quoted = [quote(a) for a in args]
    if name == "auth":
        return [quoted[0]] + [REDACTED] * (len(args) - 1)
    if name == "hello":
        for i in range(2, len(args) - 2):
            if args[i].lower() == b"auth":
                quoted[i + 1] = quoted[i + 2] = REDACTED
                break
    return quoted


def monitor_line(now: float, addr: str, name: str, args: Sequence[bytes]) -> bytes:
    """One line as a monitor receives it (a RESP simple string)."""
    micros = int(now * 1_000_000)
    seconds, rest = divmod(micros, 1_000_000)
    head = f"+{seconds}.{rest:06d} [0 {addr}] ".encode()
    return head + b" ".join(redacted(name, args)) + b"\r\n"


class Monitors:
    """The connections in MONITOR mode on this node, fed by `Node.execute`."""

    def __init__(
        self,
        table: Mapping[str, CommandMeta],
        wall_time: Callable[[], float],
        max_backlog: int,
    ) -> None:
        self._shown = {
            name: meta.arity for name, meta in table.items() if "admin" not in flag_names(meta)
        }
        self.wall_time = wall_time
        self.max_backlog = max_backlog
        self.watchers: dict[int, ClientConnection] = {}

    def add(self, conn: ClientConnection) -> None:
        """Start streaming to `conn` (after its MONITOR reply)."""
        assert conn.state is not None
        conn.state.flags.add("monitor")
        self.watchers[conn.state.id] = conn

    def feed(self, sender: ClientState, name: str, args: Sequence[bytes]) -> None:
        """Show one received command to every monitor (if it is one Redis shows)."""
        if not self.watchers:
            return
        arity = self._shown.get(name)
        if arity is None or not (len(args) == arity if arity >= 0 else len(args) >= -arity):
            return
        line = monitor_line(self.wall_time(), sender.addr, name, args)
        for client_id, conn in list(self.watchers.items()):
            state = conn.state
            if state is None or state.closing:
                del self.watchers[client_id]
            elif conn.output_backlog() + len(line) > self.max_backlog:
                del self.watchers[client_id]
                conn.abort()  # a monitor that does not read is dropped, as Redis does
            else:
                conn.push(line)
