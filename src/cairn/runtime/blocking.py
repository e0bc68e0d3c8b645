"""The node's side of blocking commands: one client's BLPOP (BZPOPMIN, BLMOVE, ...) from
arrival to reply, on the `Waiters` registry (see `cairn.shard.waiters` for the theory).

Each attempt is an ordinary write request, routed afresh (proposed here when this node
leads the key's region, forwarded otherwise). Its outcome decides:

- served (any reply but `Blocked`): the client gets it;
- `Blocked` (or its bytes, from a forwarded attempt): park until an applied write touches
  a key; after the timeout, the client gets Redis's null array instead;
- an error (TRYAGAIN, UNCERTAIN, ...): the client gets it, as for any write.

The timeout runs from the command's arrival. An attempt in flight when it passes is let
finish, so an element it popped is never dropped: served late rather than lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from cairn.resp.reply import NULL_ARRAY
from cairn.runtime.server import ClientConnection, Done, ReplyValue
from cairn.shard.waiters import Waiter, Waiters, WaitState, wait_keys, wake_keys
from cairn.store import CommandSpec, Flag
from cairn.store.commands.blocking import Blocked, blocked_retry_args, command_timeout_ms
from cairn.store.commands.errors import CommandError
from cairn.store.machine import decode_command

Attempt = Callable[[list[bytes], CommandSpec, int, Done], None]
"""Run one attempt of a command (argv, spec, protocol) as a write request; `Done` gets
its reply."""


def is_blocking(spec: CommandSpec) -> bool:
    """Whether `spec` is a blocking command, served through `BlockingCommands`."""
    return Flag.BLOCKING in spec.flags


class BlockingCommands:
    """Every blocked client of this node, and the wake-ups from its applied entries."""

    def __init__(self, attempt: Attempt, commands: dict[str, CommandSpec]) -> None:
        self.waiters = Waiters()
        self._attempt = attempt
        self._commands = commands

    def start(
        self,
        client: ClientConnection,
        argv: list[bytes],
        spec: CommandSpec,
        protocol: int,
        done: Done,
    ) -> None:
        """Serve the blocking command `argv` for `client`; `done` gets the one reply."""
        loop = asyncio.get_running_loop()
        timeout_ms = _timeout_ms(spec.name, argv)
        expired = [False]
        timer: list[asyncio.TimerHandle | None] = [None]
        waiter: Waiter

        def reply(value: ReplyValue) -> None:
            self.waiters.finish(waiter)
            if timer[0] is not None:
                timer[0].cancel()
            done(value)

        def outcome(value: ReplyValue) -> None:
            if waiter.state is WaitState.DONE:
                return
            retry = _retry_args(value)
            if retry is None:
                reply(value)
            elif expired[0] or _gone(client):
                reply(NULL_ARRAY)
            else:
                if retry:
                    argv[1:] = retry  # XREAD BLOCK ... $: wait after the id it resolved
                self.waiters.blocked(waiter)

        def attempt() -> None:
            if _gone(client):
                reply(NULL_ARRAY)
                return
            # Deferred: a wake-up arrives from inside the apply loop.
            loop.call_soon(self._attempt, argv, spec, protocol, outcome)

        def expire() -> None:
            timer[0] = None
            expired[0] = True
            if waiter.state is WaitState.PARKED:
                reply(NULL_ARRAY)

        waiter = Waiter(wait_keys(spec.name, spec.keys(argv)), attempt)
        if timeout_ms > 0:
            timer[0] = loop.call_later(timeout_ms / 1000, expire)
        self.waiters.add(waiter)

    def on_applied(self, data: bytes) -> None:
        """A command entry was applied on this node: wake the clients it may concern."""
        if not self.waiters:
            return
        try:
            name, args, _ = decode_command(data)
        except ValueError:
            return
        spec = self._commands.get(name)
        if spec is None or not spec.is_write:
            return
        keys = spec.keys([name.encode(), *args])
        self.waiters.touched(wake_keys(name, keys, is_blocking(spec)))


def _timeout_ms(name: str, argv: Sequence[bytes]) -> int:
    """The command's timeout; a malformed one counts as none (the first attempt answers
    Redis's error for it and never blocks)."""
    try:
        return command_timeout_ms(name, argv)
    except CommandError:
        return 0


def _retry_args(value: ReplyValue) -> tuple[bytes, ...] | None:
    """None unless `value` is a `Blocked` outcome (or its bytes, from a forwarded
    attempt); then the arguments later attempts run with (empty: unchanged)."""
    if isinstance(value, Blocked):
        return value.retry_args
    if isinstance(value, bytes) and value.startswith(b"-") and value.endswith(b"\r\n"):
        return blocked_retry_args(value[1:-2].decode("utf-8", "replace"))
    return None


def _gone(client: ClientConnection) -> bool:
    return client.state is None or client.state.closing
