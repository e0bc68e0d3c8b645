"""CLIENT PAUSE and CLIENT UNPAUSE, with Redis 7.0's semantics, on one node.

Theory of operation. `CLIENT PAUSE timeout [WRITE|ALL]` holds back the commands of this
node's clients until `timeout` milliseconds have passed or `CLIENT UNPAUSE` is sent. In
WRITE mode only the commands that may change data are held (every write command of the
command table, and EXEC, EVAL, EVALSHA, FCALL, PUBLISH, SPUBLISH, PFCOUNT and WAIT, which
Redis holds as "may replicate"); in ALL mode every command is, CLIENT UNPAUSE included, as
in Redis (the timeout ends such a pause). A second pause keeps the more restrictive mode
and the later end, as Redis' `pauseClients` does.

A held command waits in a FIFO; once a client has one waiting, its later commands wait
behind it, so a client's commands still run in the order it sent them (Redis blocks the
whole client). When the pause ends every held command is run again through the node's
entry point, in arrival order. At most `MAX_HELD` commands wait; beyond that a command is
answered `-TRYAGAIN` (an explicit limit instead of unbounded memory).

Writes already admitted when the pause starts are not held: a forwarded command, a
blocking command's next attempt and active expiry go on. `cairn ctl backup` pauses writes
on every node for the instant it opens its snapshots (`cairn.admin.backup_api`), so the
snapshot is a consistent cut across regions.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from cairn.resp.reply import OK, ErrorReply, Reply
from cairn.store import COMMANDS

if TYPE_CHECKING:
    from cairn.runtime.server import ClientConnection, Done

MAX_HELD = 100_000
"""The most commands held back by a pause at once."""
MAY_REPLICATE = frozenset(
    {"exec", "eval", "evalsha", "fcall", "publish", "spublish", "pfcount", "wait", "idempotent"}
)
"""Commands Redis 7.0 holds in WRITE mode although they are not write commands (and Cairn's
IDEMPOTENT prefix, which only wraps writes)."""
TOO_MANY_HELD = ErrorReply("TRYAGAIN writes are paused (CLIENT PAUSE) and too many commands wait")
BAD_MODE = ErrorReply("ERR CLIENT PAUSE mode must be WRITE or ALL")
BAD_TIMEOUT = ErrorReply("ERR timeout is not an integer or out of range")
NEGATIVE_TIMEOUT = ErrorReply("ERR timeout is negative")

Resume = Callable[["ClientConnection", list[bytes], "Done"], None]
"""The node's entry point a held command is run through again."""


class PauseMode(IntEnum):
    """What a pause holds back; a larger value is more restrictive."""

    OFF = 0
    WRITE = 1
    ALL = 2


@dataclass(slots=True)
class ClientPause:
    """This node's pause state and the commands it holds (module docstring)."""

    clock: Callable[[], float] = time.monotonic
    mode: PauseMode = PauseMode.OFF
    end: float = 0.0
    """When the pause ends, on `clock` (seconds)."""
    _held: deque[tuple[ClientConnection, list[bytes], Done]] = field(default_factory=deque)
    _waiting: dict[int, int] = field(default_factory=dict)
    """Per connection (by id()), how many of its commands are held."""
    _timer: asyncio.TimerHandle | None = None
    _resume: Resume | None = None

    def attach(self, resume: Resume) -> None:
        """Run held commands through `resume` when a pause ends."""
        self._resume = resume

    @property
    def active(self) -> bool:
        """Whether a pause holds commands now."""
        return self.mode is not PauseMode.OFF and self.clock() < self.end

    @property
    def held(self) -> int:
        """How many commands wait."""
        return len(self._held)

    def pause(self, timeout_ms: int, mode: PauseMode) -> None:
        """Pause for `timeout_ms` more (keeping a longer or stricter pause in force)."""
        now = self.clock()
        if not self.active:
            self.mode, self.end = PauseMode.OFF, now
        self.mode = max(self.mode, mode)
        self.end = max(self.end, now + timeout_ms / 1000)
        self._arm()

    def unpause(self) -> None:
        """End the pause now and run every held command."""
        self.mode, self.end = PauseMode.OFF, 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release()

    def holds(self, conn: ClientConnection, name: str, args: list[bytes], done: Done) -> bool:
        """Whether command `args` (lowercase `name`) of `conn` is held; if so it is queued
        (or answered TRYAGAIN when `MAX_HELD` wait) and the caller does nothing more."""
        if self.mode is PauseMode.OFF:
            return False
        if not self.active:
            self.unpause()
            return False
        if id(conn) not in self._waiting and not self._pauses(name):
            return False
        if len(self._held) >= MAX_HELD:
            done(TOO_MANY_HELD)
            return True
        self._held.append((conn, args, done))
        self._waiting[id(conn)] = self._waiting.get(id(conn), 0) + 1
        return True

    def _pauses(self, name: str) -> bool:
        if self.mode is PauseMode.ALL:
            return True
        spec = COMMANDS.get(name)
        return (spec is not None and spec.is_write) or name in MAY_REPLICATE

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit tests): `holds` ends the pause lazily
            self._timer = None
            return
        self._timer = loop.call_later(max(0.0, self.end - self.clock()), self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self.clock() >= self.end:
            self.unpause()
        else:
            self._arm()

    def _release(self) -> None:
        held, self._held = self._held, deque()
        self._waiting.clear()
        for conn, args, done in held:
            gone = conn.state is not None and conn.state.closing
            if self._resume is not None and not gone:  # a closed client's commands are dropped
                self._resume(conn, args, done)


def client_pause_command(pause: ClientPause, sub: bytes, rest: Sequence[bytes]) -> Reply:
    """CLIENT PAUSE timeout [WRITE|ALL] (`rest` is the arguments after PAUSE) or CLIENT
    UNPAUSE (arity already checked by the caller), answered as Redis 7.0 does."""
    if sub == b"unpause":
        pause.unpause()
        return OK
    mode = PauseMode.ALL
    if len(rest) == 2:
        word = rest[1].lower()
        if word not in (b"write", b"all"):
            return BAD_MODE
        mode = PauseMode.WRITE if word == b"write" else PauseMode.ALL
    try:
        timeout = int(rest[0])
    except ValueError:
        return BAD_TIMEOUT
    if not rest[0].strip() or rest[0] != str(timeout).encode() or timeout > 2**63 - 1:
        return BAD_TIMEOUT
    if timeout < 0:
        return NEGATIVE_TIMEOUT
    pause.pause(min(timeout, 10**13), mode)
    return OK


def pause_arity_error(sub: bytes, argc: int) -> ErrorReply | None:
    """Redis 7.0's answer to CLIENT PAUSE / UNPAUSE with a wrong argument count (`argc`
    counts CLIENT itself), or None when the count is right."""
    if sub == b"unpause":
        return None if argc == 2 else _wrong_args("unpause")
    if argc in (3, 4):
        return None
    if argc < 3:
        return _wrong_args("pause")
    return ErrorReply(
        "ERR unknown subcommand or wrong number of arguments for 'pause'. Try CLIENT HELP."
    )


def _wrong_args(sub: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for 'client|{sub}' command")
