"""Test helpers: run commands on a `StoreMachine` as the node would, and compare replies
with a real redis-server in RESP2.

`MachineClient` routes like the server layer: `classify`, then writes through `apply` (as a
Raft entry with a now_ms) and reads through `execute_read`; `resp2` encodes a reply with
the server's own encoder, to compare bytes with Redis.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cairn.resp.codec import encode
from cairn.resp.reply import (
    Array,
    Bulk,
    ErrorReply,
    NullBulk,
    Reply,
)
from cairn.store import StoreMachine, classify, encode_command
from cairn.store.reclaim import RECLAIM_COMMAND
from cairn.store.scripting import ScriptFront


def resp2(reply: Reply) -> bytes:
    """The RESP2 bytes of `reply`, as the server writes them."""
    return encode(reply, 2)


@dataclass
class MachineClient:
    """Sends commands to a `StoreMachine` as the node does; `clock` gives now_ms."""

    clock: Callable[[], int]
    machine: StoreMachine = field(default_factory=StoreMachine)
    index: int = 0
    scripts: ScriptFront = field(default_factory=ScriptFront)
    """The node's script cache and front (EVALSHA becomes EVAL, SCRIPT answered)."""

    def call(self, *argv: bytes | str) -> Reply:
        """The reply to one command."""
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        if args:
            fronted = self.scripts.front(args)
            if not isinstance(fronted, list):
                return fronted
            args = fronted
        spec = classify(args)
        if isinstance(spec, ErrorReply):
            return spec
        now = self.machine.effective_now(self.clock())
        if not spec.is_write:
            return self.machine.execute_read(spec.name, args[1:], now)
        self.index += 1
        return self.machine.apply(self.index, encode_command(spec.name, args[1:], now))

    def apply_internal(self, name: str, *args: bytes) -> Reply:
        """Apply internal command `name` as the leader would propose it."""
        self.index += 1
        now = self.machine.effective_now(self.clock())
        return self.machine.apply(self.index, encode_command(name, list(args), now))

    def reclaim_all(self) -> int:
        """Apply reclaim steps until no deleted value is left (as the leader does); how
        many steps it took."""
        steps = 0
        while self.machine.has_garbage():
            self.apply_internal(RECLAIM_COMMAND)
            steps += 1
        return steps


class RawRedis:
    """A minimal blocking RESP2 client returning each reply's raw bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, argv: Sequence[bytes]) -> bytes:
        """Send one command; its reply's bytes."""
        out = b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)
        self.sock.sendall(out)
        end = self._reply_end(0)
        raw, self.buf = self.buf[:end], self.buf[end:]
        return raw

    def _line(self, pos: int) -> int:
        while (i := self.buf.find(b"\r\n", pos)) < 0:
            self._fill()
        return i

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _reply_end(self, pos: int) -> int:
        eol = self._line(pos)
        kind, head = self.buf[pos : pos + 1], self.buf[pos + 1 : eol]
        if kind == b"$" and int(head) >= 0:
            while len(self.buf) < eol + 2 + int(head) + 2:
                self._fill()
            return eol + 2 + int(head) + 2
        if kind == b"*" and int(head) >= 0:
            pos = eol + 2
            for _ in range(int(head)):
                pos = self._reply_end(pos)
            return pos
        return eol + 2

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def parse_resp2(data: bytes) -> object:
    """RESP2 bytes as nested Python values (bytes, int, None, lists, ("err", msg))."""
    value, _ = _parse(data, 0)
    return value


def _parse(data: bytes, pos: int) -> tuple[object, int]:
    eol = data.index(b"\r\n", pos)
    kind, head = data[pos : pos + 1], data[pos + 1 : eol]
    if kind == b"+":
        return head, eol + 2
    if kind == b"-":
        return ("err", head), eol + 2
    if kind == b":":
        return int(head), eol + 2
    n = int(head)
    if n < 0:
        return None, eol + 2
    if kind == b"$":
        return data[eol + 2 : eol + 2 + n], eol + 4 + n
    items, pos = [], eol + 2
    for _ in range(n):
        item, pos = _parse(data, pos)
        items.append(item)
    return items, pos


def normalize(raw: bytes, tags: frozenset[str], argv: Sequence[bytes]) -> object:
    """What of a reply the comparison looks at, given the script line's tags."""
    if not tags:
        return raw
    value = parse_resp2(raw)
    if "ttl" in tags or "random" in tags:
        return _shape(value)
    if "scan" in tags and isinstance(value, list):
        return ("scan", sorted(value[1]) if isinstance(value[1], list) else value[1])
    if "unordered" in tags and isinstance(value, list):
        if argv[0].lower() == b"hgetall":
            return sorted(zip(value[::2], value[1::2], strict=True))
        return sorted(value, key=repr)
    return value


def _shape(value: object) -> object:
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, tuple):
        return value
    return type(value).__name__


@dataclass
class FakeClock:
    """A settable clock for tests (ms)."""

    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


Step = tuple[str, Reply]


def run_steps(steps: Sequence[Step], client: MachineClient | None = None) -> MachineClient:
    """Run `(command line, expected reply)` steps in order on one machine, asserting each
    reply; a line `"@+1500"` advances the client's clock by 1500 ms instead."""
    from store_script import split_args

    client = client or MachineClient(clock=FakeClock())
    for line, expected in steps:
        if line.startswith("@+"):
            assert isinstance(client.clock, FakeClock)
            client.clock.now += int(line[2:])
            continue
        got = client.call(*split_args(line))
        assert got == expected, f"{line!r}: expected {expected!r}, got {got!r}"
    return client


def bulks(*values: bytes | None) -> Array:
    """An array of bulk strings (None: a null bulk)."""
    return Array(tuple(NullBulk() if v is None else Bulk(v) for v in values))
